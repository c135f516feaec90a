//! `setup`: fetch the issuer's clusters and merge exec entries for them into a kubeconfig; with a
//! machine source (`--machine`, `--identity-token`), one machine-mode context for `--cluster`.

use std::io::{self};

use credential_shared::text::Untrusted;

use crate::base::clock::Clock;
use crate::base::machine::{IdentitySource, MachineSource};
use crate::base::target::TokenCacheKind;
use crate::cli;
use crate::error::Error;
use crate::issuer::IssuerClient;

/// `setup`: fetch the issuer's clusters and merge exec entries for them into a kubeconfig.
pub(super) fn setup(args: &cli::SetupArgs, clock: &dyn Clock) -> Result<(), Error> {
    use crate::kubeconfig::setup::{self, ExecSettings, Written};
    let client = IssuerClient::new(&args.issuer, args.issuer_ca.as_deref())?;
    // Discovery first: a URL that is not an issuer's (an API server's, say) is named as such.
    client.discover()?;
    let mut list = client.clusters()?;
    let machine = match args.machine.source() {
        Some(source) => {
            machine_cluster(args, &mut list)?;
            Some(machine_args(&source, args))
        }
        None => None,
    };
    let home = crate::base::env::home_dir();
    let Some(path) = setup::target_path(
        args.output.as_deref(),
        crate::base::env::var_os(crate::base::env::KUBECONFIG).as_deref(),
        home.as_deref(),
    ) else {
        return Err(setup::SetupError::Io {
            action: "find a home directory for",
            path: "~/.kube/config".into(),
            source: io::Error::from(io::ErrorKind::NotFound),
        }
        .into());
    };
    // The kubeconfig is used from other directories: record an absolute CA path.
    let issuer_ca = args
        .issuer_ca
        .as_ref()
        .map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()));
    let exec = ExecSettings {
        command: args.command.clone(),
        issuer: args.issuer.as_str().to_owned(),
        issuer_ca,
        file_cache: args.token_cache == Some(TokenCacheKind::File),
        machine,
    };
    let before = setup::read(&path)?;
    let (doc, skipped) = setup::merge(before.clone(), &path, &list, &exec)?;
    for name in &skipped {
        eprintln!(
            "note: skipped cluster \"{}\": the issuer does not publish its API server URL",
            Untrusted::new(name)
        );
    }
    match setup::write(&path, before.as_ref(), &doc, clock.now())? {
        Written::Unchanged => {
            eprintln!("{} is already up to date.", Untrusted::long(path.display()));
        }
        Written::Created => eprintln!("Wrote {}.", Untrusted::long(path.display())),
        Written::Updated { backup } => eprintln!(
            "Updated {} (previous version kept as {}).",
            Untrusted::long(path.display()),
            Untrusted::long(backup.display())
        ),
    }
    let names: Vec<String> = list
        .clusters
        .iter()
        .filter(|c| c.server.is_some())
        .map(|c| setup::context_name(&c.name, &exec))
        .collect();
    // What the person may do depends on their grants, which setup does not know: asking the
    // API server what is allowed works for everyone who can sign in.
    eprintln!(
        "Contexts: {}. Try: kubectl --context {} auth can-i --list (what you may do there; \
         add --namespace NAME for a namespace your grants name)",
        Untrusted::long(names.join(", ")),
        Untrusted::new(names.first().map(String::as_str).unwrap_or_default())
    );
    Ok(())
}

/// Machine mode: keeps only `--cluster` of the issuer's list, with `--server` and
/// `--certificate-authority` filling in (or overriding) what the issuer publishes; a cluster
/// the issuer does not list needs `--server`.
fn machine_cluster(
    args: &cli::SetupArgs,
    list: &mut credential_shared::api::ClusterList,
) -> Result<(), Error> {
    let Some(cluster) = &args.cluster else {
        return Err(crate::kubeconfig::TargetError::Missing("--cluster").into());
    };
    let mut info = list
        .clusters
        .iter()
        .find(|c| c.name == *cluster)
        .cloned()
        .unwrap_or_else(|| credential_shared::api::ClusterInfo {
            name: cluster.clone(),
            ..Default::default()
        });
    if let Some(server) = &args.server {
        info.server = Some(server.clone());
    }
    if let Some(ca) = &args.certificate_authority {
        use base64::Engine as _;
        let pem = std::fs::read(ca).map_err(|source| setup_io("read", ca, source))?;
        info.certificate_authority_data =
            Some(base64::engine::general_purpose::STANDARD.encode(pem));
    }
    list.clusters = vec![info];
    Ok(())
}

fn setup_io(action: &'static str, path: &std::path::Path, source: io::Error) -> Error {
    crate::kubeconfig::setup::SetupError::Io {
        action,
        path: path.to_owned(),
        source,
    }
    .into()
}

/// The machine-mode `get` flags for the entry: paths made absolute (kubectl runs the plugin
/// from any directory).
fn machine_args(source: &MachineSource, args: &cli::SetupArgs) -> Vec<String> {
    let absolute = |p: &std::path::Path| {
        std::fs::canonicalize(p)
            .or_else(|_| std::path::absolute(p))
            .unwrap_or_else(|_| p.to_owned())
    };
    let source = match source {
        MachineSource::Key { machine, key } => MachineSource::Key {
            machine: machine.clone(),
            key: absolute(key),
        },
        MachineSource::Identity {
            token: IdentitySource::File(path),
            audience,
        } => MachineSource::Identity {
            token: IdentitySource::File(absolute(path)),
            audience: audience.clone(),
        },
        other @ MachineSource::Identity { .. } => other.clone(),
    };
    let mut out = source.args();
    if let Some(file) = &args.machine.token_cache_file {
        out.push("--token-cache-file".to_owned());
        out.push(absolute(file).to_string_lossy().into_owned());
    }
    out
}
