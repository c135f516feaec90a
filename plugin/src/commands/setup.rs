//! `setup`: fetch the issuer's clusters and merge exec entries for them into a kubeconfig.

use std::io::{self};

use credential_shared::text::Untrusted;

use crate::base::clock::Clock;
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
    let list = client.clusters()?;
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
    let names: Vec<&str> = list
        .clusters
        .iter()
        .filter(|c| c.server.is_some())
        .map(|c| c.name.as_str())
        .collect();
    // What the person may do depends on their grants, which setup does not know: asking the
    // API server what is allowed works for everyone who can sign in.
    eprintln!(
        "Contexts: {}. Try: kubectl --context {} auth can-i --list (what you may do there; \
         add --namespace NAME for a namespace your grants name)",
        Untrusted::long(names.join(", ")),
        Untrusted::new(names.first().copied().unwrap_or_default())
    );
    Ok(())
}
