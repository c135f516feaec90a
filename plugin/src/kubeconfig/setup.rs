//! The kubeconfig `kubectl credential setup` writes: one context per cluster the issuer serves,
//! whose user runs this plugin, and no secret at all.
//!
//! Merging into an existing kubeconfig replaces only the entries this command owns (marked with
//! a `kubectl-credential` extension); an entry of the same name that someone else wrote is never
//! overwritten. Other entries, and every other key, are carried over as they were. Running it
//! twice changes nothing (and writes nothing); before changing an existing file a backup is
//! kept next to it.

use std::path::{Path, PathBuf};

use credential_shared::api::{ClusterInfo, ClusterList};
use credential_shared::text::Untrusted;
use serde_norway::{Mapping, Value};

/// The extension name that marks an entry as written by `setup`.
pub(crate) const EXTENSION: &str = "kubectl-credential";

/// What the exec entries should say besides the cluster.
#[derive(Debug, Clone)]
pub(crate) struct ExecSettings {
    /// The plugin command kubectl runs (`kubectl-credential`, or an absolute path).
    pub(crate) command: String,
    /// `--issuer`.
    pub(crate) issuer: String,
    /// `--issuer-ca`, when the issuer's CA is private.
    pub(crate) issuer_ca: Option<PathBuf>,
    /// `--token-cache file`, when chosen at setup.
    pub(crate) file_cache: bool,
    /// Machine mode: the `get` flags of the machine source (and `--token-cache-file`). Such an
    /// entry never asks a person (`interactiveMode: Never`), and its user and context are named
    /// `CLUSTER-machine...` so that a person's entries for the cluster stay as they are.
    pub(crate) machine: Option<Vec<String>>,
}

/// Why setup could not merge.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SetupError {
    /// The existing kubeconfig is not YAML.
    #[error("{} is not a valid kubeconfig: {}", Untrusted::long(path.display()), Untrusted::long(source))]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's error.
        #[source]
        source: serde_norway::Error,
    },
    /// A `clusters`/`users`/`contexts` key is not a list, or an entry has no name.
    #[error(
        "{}: `{key}` is not a list of named entries; fix or move the file, or use --output",
        Untrusted::long(path.display())
    )]
    Shape {
        /// The file.
        path: PathBuf,
        /// The key.
        key: &'static str,
    },
    /// An entry of the same name exists and was not written by setup.
    #[error("{} already has a {kind} named {:?} that kubectl-credential did not write; rename it, or write a separate file with --output", Untrusted::long(path.display()), Untrusted::new(name))]
    Conflict {
        /// The file.
        path: PathBuf,
        /// `cluster`, `user` or `context`.
        kind: &'static str,
        /// The name.
        name: String,
    },
    /// The issuer serves no cluster with a known API server.
    #[error("the issuer lists no cluster with an API server URL; ask its operator to set `server` for each cluster")]
    NoClusters,
    /// Reading or writing a file failed.
    #[error("cannot {action} {}", Untrusted::long(path.display()))]
    Io {
        /// What was attempted.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Serializing failed (not expected).
    #[error("cannot write the kubeconfig: {0}")]
    Serialize(#[source] serde_norway::Error),
}

fn s(v: &str) -> Value {
    Value::String(v.to_owned())
}

fn map(pairs: Vec<(&str, Value)>) -> Value {
    let mut m = Mapping::new();
    for (k, v) in pairs {
        m.insert(s(k), v);
    }
    Value::Mapping(m)
}

fn marker() -> Value {
    Value::Sequence(vec![map(vec![
        ("name", s(EXTENSION)),
        ("extension", map(vec![("managed", Value::Bool(true))])),
    ])])
}

/// The user entry name for a cluster.
pub(crate) fn user_name(cluster: &str) -> String {
    format!("{cluster}-credential")
}

/// The context name for a cluster: the cluster's name, or `CLUSTER-machine` for machine mode.
pub(crate) fn context_name(cluster: &str, exec: &ExecSettings) -> String {
    if exec.machine.is_some() {
        format!("{cluster}-machine")
    } else {
        cluster.to_owned()
    }
}

fn user_name_for(cluster: &str, exec: &ExecSettings) -> String {
    if exec.machine.is_some() {
        format!("{cluster}-machine-credential")
    } else {
        user_name(cluster)
    }
}

fn cluster_entry(c: &ClusterInfo, server: &str) -> Value {
    let mut fields = vec![("server", s(server))];
    if let Some(ca) = &c.certificate_authority_data {
        fields.push(("certificate-authority-data", s(ca)));
    }
    fields.push(("extensions", marker()));
    map(vec![("name", s(&c.name)), ("cluster", map(fields))])
}

fn user_entry(c: &ClusterInfo, exec: &ExecSettings) -> Value {
    let mut args = vec![
        s("get"),
        s("--issuer"),
        s(&exec.issuer),
        s("--cluster"),
        s(&c.name),
    ];
    if let Some(ca) = &exec.issuer_ca {
        args.push(s("--issuer-ca"));
        args.push(s(&ca.to_string_lossy()));
    }
    if let Some(machine) = &exec.machine {
        args.extend(machine.iter().map(|a| s(a)));
    } else if exec.file_cache {
        args.push(s("--token-cache"));
        args.push(s("file"));
    }
    let interactive = if exec.machine.is_some() {
        "Never"
    } else {
        "IfAvailable"
    };
    let exec_map = map(vec![
        ("apiVersion", s(credential_shared::exec_credential::API_VERSION_V1)),
        ("command", s(&exec.command)),
        ("args", Value::Sequence(args)),
        ("interactiveMode", s(interactive)),
        ("provideClusterInfo", Value::Bool(true)),
        (
            "installHint",
            s("kubectl-credential logs you in to this cluster. Install it from your platform team's \
               instructions (or `cargo install kubectl-credential`) and put it on your PATH."),
        ),
    ]);
    map(vec![
        ("name", s(&user_name_for(&c.name, exec))),
        (
            "user",
            map(vec![("exec", exec_map), ("extensions", marker())]),
        ),
    ])
}

fn context_entry(c: &ClusterInfo, exec: &ExecSettings) -> Value {
    map(vec![
        ("name", s(&context_name(&c.name, exec))),
        (
            "context",
            map(vec![
                ("cluster", s(&c.name)),
                ("user", s(&user_name_for(&c.name, exec))),
                ("extensions", marker()),
            ]),
        ),
    ])
}

/// Whether an entry (`{name, cluster|user|context: {..., extensions}}`) carries our marker.
fn is_ours(entry: &Value, inner: &str) -> bool {
    entry
        .get(inner)
        .and_then(|v| v.get("extensions"))
        .and_then(Value::as_sequence)
        .is_some_and(|exts| {
            exts.iter()
                .any(|e| e.get("name").and_then(Value::as_str) == Some(EXTENSION))
        })
}

/// Puts `entry` into the list `key` of `doc`, replacing our own entry of that name.
fn upsert(
    doc: &mut Mapping,
    path: &Path,
    key: &'static str,
    inner: &'static str,
    entry: Value,
) -> Result<(), SetupError> {
    let shape = || SetupError::Shape {
        path: path.to_owned(),
        key,
    };
    let list = doc
        .entry(s(key))
        .or_insert_with(|| Value::Sequence(Vec::new()));
    if list.is_null() {
        *list = Value::Sequence(Vec::new());
    }
    let list = list.as_sequence_mut().ok_or_else(shape)?;
    let name = entry
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let mut found = None;
    for (i, existing) in list.iter().enumerate() {
        let existing_name = existing
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(shape)?;
        if existing_name == name {
            if !is_ours(existing, inner) {
                return Err(SetupError::Conflict {
                    path: path.to_owned(),
                    kind: inner,
                    name,
                });
            }
            found = Some(i);
        }
    }
    match found {
        Some(i) => list[i] = entry,
        None => list.push(entry),
    }
    Ok(())
}

/// Merges the issuer's clusters into `existing` (or a new kubeconfig). Clusters without an API
/// server URL are skipped and returned by name.
pub(crate) fn merge(
    existing: Option<Value>,
    path: &Path,
    list: &ClusterList,
    exec: &ExecSettings,
) -> Result<(Value, Vec<String>), SetupError> {
    let mut doc = match existing {
        Some(Value::Mapping(m)) => m,
        Some(Value::Null) | None => Mapping::new(),
        Some(_) => {
            return Err(SetupError::Shape {
                path: path.to_owned(),
                key: "(top level)",
            })
        }
    };
    doc.entry(s("apiVersion")).or_insert_with(|| s("v1"));
    doc.entry(s("kind")).or_insert_with(|| s("Config"));
    let mut skipped = Vec::new();
    let mut first = None;
    for c in &list.clusters {
        let Some(server) = c.server.as_deref() else {
            skipped.push(c.name.clone());
            continue;
        };
        upsert(
            &mut doc,
            path,
            "clusters",
            "cluster",
            cluster_entry(c, server),
        )?;
        upsert(&mut doc, path, "users", "user", user_entry(c, exec))?;
        upsert(
            &mut doc,
            path,
            "contexts",
            "context",
            context_entry(c, exec),
        )?;
        first.get_or_insert_with(|| context_name(&c.name, exec));
    }
    let Some(first) = first else {
        return Err(SetupError::NoClusters);
    };
    let current = doc
        .get("current-context")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if current.is_empty() {
        doc.insert(s("current-context"), s(&first));
    }
    Ok((Value::Mapping(doc), skipped))
}

/// The kubeconfig file to merge into: `--output`, else the first file of `KUBECONFIG`, else
/// `~/.kube/config`.
pub(crate) fn target_path(
    output: Option<&Path>,
    kubeconfig_env: Option<&std::ffi::OsStr>,
    home: Option<&Path>,
) -> Option<PathBuf> {
    if let Some(o) = output {
        return Some(o.to_owned());
    }
    if let Some(list) = kubeconfig_env {
        if let Some(first) = std::env::split_paths(list).find(|p| !p.as_os_str().is_empty()) {
            return Some(first);
        }
    }
    home.map(|h| h.join(".kube").join("config"))
}

/// What `write` did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Written {
    /// The file already said this; nothing was written.
    Unchanged,
    /// A new file.
    Created,
    /// An existing file was changed; its previous content is in the backup.
    Updated {
        /// The backup.
        backup: PathBuf,
    },
}

/// Reads the kubeconfig at `path`, if there is one.
pub(crate) fn read(path: &Path) -> Result<Option<Value>, SetupError> {
    match std::fs::read_to_string(path) {
        Ok(text) if text.trim().is_empty() => Ok(None),
        Ok(text) => serde_norway::from_str(&text)
            .map(Some)
            .map_err(|source| SetupError::Parse {
                path: path.to_owned(),
                source,
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(SetupError::Io {
            action: "read",
            path: path.to_owned(),
            source,
        }),
    }
}

/// Writes `doc` to `path` unless it already holds exactly that; keeps a backup of a file it
/// changes (`<file>.backup-<unix seconds>`); the new file is written to a temporary file (mode
/// 0600) and renamed into place, so a crash never leaves half a kubeconfig.
pub(crate) fn write(
    path: &Path,
    before: Option<&Value>,
    doc: &Value,
    now_unix: i64,
) -> Result<Written, SetupError> {
    if before == Some(doc) {
        return Ok(Written::Unchanged);
    }
    let io = |action, p: &Path| {
        let p = p.to_owned();
        move |source| SetupError::Io {
            action,
            path: p,
            source,
        }
    };
    let text = serde_norway::to_string(doc).map_err(SetupError::Serialize)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io("create the directory of", path))?;
    }
    let result = if before.is_some() {
        let mut name = path.as_os_str().to_owned();
        name.push(format!(".backup-{now_unix}"));
        let backup = PathBuf::from(name);
        std::fs::copy(path, &backup).map_err(io("back up", path))?;
        Written::Updated { backup }
    } else {
        Written::Created
    };
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = PathBuf::from(tmp_name);
    {
        use std::io::Write as _;
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts.open(&tmp).map_err(io("create", &tmp))?;
        f.write_all(text.as_bytes()).map_err(io("write", &tmp))?;
        f.sync_all().map_err(io("write", &tmp))?;
    }
    std::fs::rename(&tmp, path).map_err(io("replace", path))?;
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list() -> ClusterList {
        ClusterList {
            issuer: "https://issuer.example".into(),
            clusters: vec![
                ClusterInfo {
                    name: "prod".into(),
                    server: Some("https://prod:6443".into()),
                    certificate_authority_data: Some("Q0E=".into()),
                    audience: "kubernetes".into(),
                },
                ClusterInfo {
                    name: "lab".into(),
                    server: None,
                    certificate_authority_data: None,
                    audience: "lab".into(),
                },
            ],
        }
    }

    fn exec() -> ExecSettings {
        ExecSettings {
            command: "kubectl-credential".into(),
            issuer: "https://issuer.example".into(),
            issuer_ca: None,
            file_cache: false,
            machine: None,
        }
    }

    /// A machine context: its own user and context names, the machine flags in `args`, and
    /// never interactive.
    #[test]
    fn a_machine_entry_runs_get_in_machine_mode_and_never_asks() {
        let exec = ExecSettings {
            machine: Some(vec![
                "--machine".into(),
                "bot".into(),
                "--machine-key".into(),
                "/etc/bot.pem".into(),
            ]),
            file_cache: true,
            ..exec()
        };
        let mut one = list();
        one.clusters.truncate(1);
        let (doc, _) = merge(None, Path::new("k"), &one, &exec).unwrap_or_else(|e| panic!("{e}"));
        let text = serde_norway::to_string(&doc).unwrap_or_default();
        assert!(text.contains("name: prod-machine-credential"), "{text}");
        assert!(text.contains("current-context: prod-machine"), "{text}");
        assert!(text.contains("interactiveMode: Never"), "{text}");
        assert!(!text.contains("--token-cache\n"), "{text}");
        let user = &doc["users"][0]["user"]["exec"]["args"];
        let args: Vec<&str> = user
            .as_sequence()
            .map(|s| s.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        assert_eq!(
            args,
            [
                "get",
                "--issuer",
                "https://issuer.example",
                "--cluster",
                "prod",
                "--machine",
                "bot",
                "--machine-key",
                "/etc/bot.pem"
            ]
        );
    }

    const UNRELATED: &str = r"
apiVersion: v1
kind: Config
preferences: {colors: true}
current-context: kind
clusters:
- name: kind
  cluster: {server: 'https://127.0.0.1:1234', insecure-skip-tls-verify: true}
users:
- name: kind-admin
  user: {token: keep-me}
contexts:
- name: kind
  context: {cluster: kind, user: kind-admin, namespace: dev}
";

    #[test]
    fn merges_without_touching_other_entries_and_is_idempotent() {
        let path = Path::new("/tmp/kubeconfig");
        let before: Value = serde_norway::from_str(UNRELATED).unwrap_or_else(|e| panic!("{e}"));
        let (once, skipped) =
            merge(Some(before.clone()), path, &list(), &exec()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(skipped, ["lab"]);
        // Everything that was there is still there, unchanged.
        for key in ["clusters", "users", "contexts"] {
            for entry in before[key].as_sequence().unwrap_or(&Vec::new()) {
                assert!(
                    once[key].as_sequence().is_some_and(|l| l.contains(entry)),
                    "{key}: lost {entry:?}"
                );
            }
        }
        assert_eq!(once["preferences"], before["preferences"]);
        assert_eq!(once["current-context"].as_str(), Some("kind"));
        let user = &once["users"][1]["user"]["exec"];
        assert_eq!(user["interactiveMode"].as_str(), Some("IfAvailable"));
        assert_eq!(user["provideClusterInfo"].as_bool(), Some(true));
        assert!(user["installHint"]
            .as_str()
            .is_some_and(|h| h.contains("install")));
        let text = serde_norway::to_string(&once).unwrap_or_default();
        assert_eq!(
            text.matches("token:").count(),
            1,
            "the only token is the unrelated one"
        );
        let (twice, _) =
            merge(Some(once.clone()), path, &list(), &exec()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(once, twice, "a second run must change nothing");
    }

    #[test]
    fn never_overwrites_an_entry_it_did_not_write() {
        let mine = "clusters:\n- name: prod\n  cluster: {server: 'https://elsewhere'}\n";
        let v: Value = serde_norway::from_str(mine).unwrap_or_else(|e| panic!("{e}"));
        let r = merge(Some(v), Path::new("/k"), &list(), &exec());
        assert!(
            matches!(
                r,
                Err(SetupError::Conflict {
                    kind: "cluster",
                    ..
                })
            ),
            "{r:?}"
        );
    }

    #[test]
    fn empty_file_and_first_context() {
        let (doc, _) =
            merge(None, Path::new("/k"), &list(), &exec()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(doc["current-context"].as_str(), Some("prod"));
        assert_eq!(
            doc["contexts"][0]["context"]["user"].as_str(),
            Some("prod-credential")
        );
        assert_eq!(
            doc["clusters"][0]["cluster"]["certificate-authority-data"].as_str(),
            Some("Q0E=")
        );
    }

    #[test]
    fn no_usable_cluster_is_an_error() {
        let mut l = list();
        l.clusters.retain(|c| c.server.is_none());
        assert!(matches!(
            merge(None, Path::new("/k"), &l, &exec()),
            Err(SetupError::NoClusters)
        ));
    }

    #[test]
    fn malformed_kubeconfigs_are_errors_not_panics() {
        for bad in ["clusters: 3", "clusters:\n- {cluster: {}}", "- a\n- b"] {
            let v: Value = serde_norway::from_str(bad).unwrap_or_else(|e| panic!("{e}"));
            assert!(
                merge(Some(v), Path::new("/k"), &list(), &exec()).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn target_path_honours_kubeconfig() {
        let home = Path::new("/home/u");
        assert_eq!(
            target_path(None, None, Some(home)),
            Some(home.join(".kube/config"))
        );
        let env = std::ffi::OsString::from("/a/one:/b/two");
        assert_eq!(
            target_path(None, Some(&env), Some(home)),
            Some(PathBuf::from("/a/one"))
        );
        assert_eq!(
            target_path(Some(Path::new("/o")), Some(&env), Some(home)),
            Some(PathBuf::from("/o"))
        );
    }

    #[test]
    fn write_keeps_a_backup_and_skips_unchanged() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("config");
        std::fs::write(&path, UNRELATED).unwrap_or_else(|e| panic!("{e}"));
        let before = read(&path).unwrap_or_else(|e| panic!("{e}"));
        let (doc, _) =
            merge(before.clone(), &path, &list(), &exec()).unwrap_or_else(|e| panic!("{e}"));
        let w = write(&path, before.as_ref(), &doc, 42).unwrap_or_else(|e| panic!("{e}"));
        let backup = dir.path().join("config.backup-42");
        assert_eq!(
            w,
            Written::Updated {
                backup: backup.clone()
            }
        );
        assert_eq!(
            std::fs::read_to_string(&backup).unwrap_or_default(),
            UNRELATED
        );
        let again = read(&path).unwrap_or_else(|e| panic!("{e}"));
        let (doc2, _) =
            merge(again.clone(), &path, &list(), &exec()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            write(&path, again.as_ref(), &doc2, 43).unwrap_or_else(|e| panic!("{e}")),
            Written::Unchanged
        );
        assert!(!dir.path().join("config.backup-43").exists());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).map_or(0, |m| m.permissions().mode() & 0o777);
            assert_eq!(mode, 0o600);
        }
    }
}
