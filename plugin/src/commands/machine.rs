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

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;
    use crate::base::clock::fake::FakeClock;
    use crate::base::machine::{IdentitySource, MachineSource};
    use crate::exit::EXIT_USAGE;
    use crate::flow::machine::tests::{granted, issuer_answers, target};
    use crate::issuer::tests::serve;

    /// Machine mode works end to end with no keyring and no person's cache: the issuer is
    /// asked once, the token cache file answers the second call (nothing listens any more),
    /// and its mode is 0600.
    #[test]
    fn get_exchanges_once_then_answers_from_the_token_cache_file() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let token = dir.path().join("ci.jwt");
        std::fs::write(&token, "eyJ.ci.jwt").unwrap_or_else(|e| panic!("{e}"));
        let cache_file = dir.path().join("kube-token.json");
        let (base, server) = serve(|base| issuer_answers(base, granted("https://api:6443")));
        let mut target = target(
            &base,
            MachineSource::Identity {
                token: IdentitySource::File(token),
                audience: None,
            },
        );
        target.token_cache_file = Some(cache_file.clone());
        let clock = FakeClock::at(10_000);
        get(&target, false, &clock).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(server.join().unwrap_or_default().len(), 2);
        let mode = std::fs::metadata(&cache_file).map(|m| m.permissions().mode() & 0o777);
        assert_eq!(mode.ok(), Some(0o600));
        get(&target, false, &clock).unwrap_or_else(|e| panic!("from the file: {e}"));
        // Forced (kubectl's retry after a 401): the issuer is asked, and it is gone.
        let err = get(&target, true, &clock).err();
        assert!(matches!(err, Some(Error::Issuer(_))), "{err:?}");
        // Near its end the cached token is not reused either.
        let late = FakeClock::at(10_000 + 271);
        assert!(get(&target, false, &late).is_err());
    }

    #[test]
    fn keygen_writes_a_private_key_0600_and_never_overwrites() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let out = dir.path().join("bot.pem");
        keygen(&out).unwrap_or_else(|e| panic!("{e}"));
        let mode = std::fs::metadata(&out).map(|m| m.permissions().mode() & 0o777);
        assert_eq!(mode.ok(), Some(0o600));
        let pem = std::fs::read(&out).unwrap_or_default();
        assert!(pem.starts_with(b"-----BEGIN PRIVATE KEY-----\n"));
        let key = MachineKey::from_pem(&pem).unwrap_or_else(|e| panic!("{e}"));
        assert!(key
            .public_key_pem()
            .starts_with("-----BEGIN PUBLIC KEY-----\n"));
        let err = keygen(&out).err().unwrap_or_else(|| panic!("overwrote"));
        assert_eq!(err.exit_code(), EXIT_USAGE);
        assert!(err.to_string().contains("already exists"), "{err}");
        assert_eq!(
            std::fs::read(&out).unwrap_or_default(),
            pem,
            "the key is unchanged"
        );
        let missing_dir = dir.path().join("no/such/dir/k.pem");
        assert!(keygen(&missing_dir).is_err());
        assert!(KEYGEN_HINT.contains(
            "credential-issuer machine add NAME --public-key FILE --group G --cluster C --until DATE"
        ));
    }
}
