//! Machine mode's commands: `get` for a CI job or a machine (from its token cache file, else
//! through [`crate::flow::machine`]) and `machine keygen`, which makes the key a registered
//! machine signs with.

use std::io::Write as _;
use std::path::Path;

use crate::base::clock::Clock;
use crate::base::machine::MachineTarget;
use crate::cache::{self, MachineKeyId, TokenFile};
use crate::error::Error;
use crate::flow::exec;
use crate::flow::machine::obtain;
use crate::issuer::assertion::MachineKey;

/// `get` in machine mode: the token from `--token-cache-file` while it is good for more than
/// 30 s (unless `force`, kubectl's retry after a refusal), else a new one from the issuer,
/// checked against the API server kubectl is about to call, stored, printed.
pub(super) fn get(target: &MachineTarget, force: bool, clock: &dyn Clock) -> Result<(), Error> {
    let info = exec::read_exec_info()?;
    let file = target.token_cache_file.as_deref().map(TokenFile::new);
    let key = MachineKeyId::new(
        target.issuer.as_str(),
        &target.cluster,
        &target.source.cache_name(),
        info.cluster.as_ref(),
    );
    if let (Some(file), false) = (&file, force) {
        if let Some(entry) = file.load(&key, clock.now())? {
            exec::check_api_server(&info, &entry, &target.cluster)?;
            return exec::print_credential(info.version, &entry);
        }
    }
    let entry = obtain(target, clock)?;
    // A token for another API server than kubectl's is neither handed out nor kept.
    exec::check_api_server(&info, &entry, &target.cluster)?;
    if let Some(file) = &file {
        file.store(&key, &entry)?;
    }
    exec::print_credential(info.version, &entry)
}

/// The hint `machine keygen` prints on stderr: how to register the key.
pub(crate) const KEYGEN_HINT: &str =
    "Register the public key at the issuer (save it to a file first):\n  \
    credential-issuer machine add NAME --public-key FILE --group G --cluster C --until DATE";

/// `machine keygen --out PATH`: a new P-256 key, the private half to `out` (0600, never over
/// an existing file), the public half on stdout.
pub(super) fn keygen(out: &Path) -> Result<(), Error> {
    let new = MachineKey::generate().map_err(Error::Assertion)?;
    let failed = |reason: String| Error::KeygenWrite {
        path: out.to_owned(),
        reason,
    };
    match cache::write_named(out, new.private_pem.expose().as_bytes(), false) {
        Ok(None) => {}
        Ok(Some(refusal)) => return Err(failed(refusal.why.to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Err(failed(
            "it already exists; keygen never overwrites a key (remove it, or choose another --out)"
                .to_owned(),
        )),
        Err(e) => return Err(failed(e.to_string())),
    }
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(new.public_pem.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(Error::Stdout)?;
    eprintln!("{KEYGEN_HINT}");
    Ok(())
}
