//! A full disk under the SQLite store, for real: a 2 MiB tmpfs, filled. Every rotation that
//! was answered must be durable, every one that was not must fail, and the store must recover
//! by itself once there is room again.

use super::*;
use crate::store::sessions::tests::next;

/// A small tmpfs mounted for one test, unmounted on drop. Mounting needs root (CI runs as root).
pub(crate) struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    pub(crate) fn mount(size: &str) -> Self {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .unwrap_or_else(|e| panic!("run mount: {e}"));
        assert!(
            out.status.success(),
            "this test fills a real {size} tmpfs and needs to mount one: run it as root (CI and \
             tests/run.sh do), or inside `unshare --user --map-root-user --mount`: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self { dir }
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a filler file until the disk is full, then gives back `slack` bytes of it.
    pub(crate) fn fill(&self, slack: u64) -> std::path::PathBuf {
        use std::io::Write as _;
        let path = self.path().join("filler");
        let mut f = std::fs::File::create(&path).unwrap_or_else(|e| panic!("{e}"));
        let block = vec![0u8; 4096];
        while f.write_all(&block).is_ok() {}
        let _ = f.sync_all();
        let len = f.metadata().map_or(0, |m| m.len());
        f.set_len(len.saturating_sub(slack))
            .unwrap_or_else(|e| panic!("{e}"));
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answered_rotations_survive_a_full_disk_and_the_store_recovers() {
    let disk = SmallDisk::mount("8m");
    let path = disk.path().join("issuer.db");
    let store = Store::open_sqlite(&path)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let now = OffsetDateTime::now_utc();
    store
        .create_user(
            &NewUser {
                id: "u".into(),
                username: "u".into(),
                email: None,
                password_hash: None,
                groups: vec!["g".into()],
            },
            now,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let sessions = 40;
    for i in 0..sessions {
        let sess = Session {
            id: format!("s{i}"),
            user_id: "u".into(),
            client_id: "c".into(),
            cluster: "k".into(),
            created_at: now,
            expires_at: now + time::Duration::hours(1),
            revoked_at: None,
        };
        store
            .create_session(&sess, &format!("t{i}-0"))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    // A large detail, as for a person in many groups: each answered rotation adds an audit row
    // of some kilobytes, so the database grows until the disk is full.
    let detail: &'static str =
        Box::leak(format!(r#"{{"groups":["{}"],"grants":[]}}"#, "g".repeat(3000)).into_boxed_str());
    let by = Presenter {
        client_id: "c",
        client_addr: "a",
        request_id: "r",
        token_detail: detail,
    };
    // The live token of each session, as its client would hold it: moved on only when a
    // rotation was answered.
    let mut live: Vec<String> = (0..sessions).map(|i| format!("t{i}-0")).collect();
    let filler = disk.fill(1024 * 1024);
    let mut answered = 0;
    let mut failed = 0;
    for round in 1..=20 {
        // As the server does every second; it may fail too while the disk is full.
        let _ = store.checkpoint().await;
        let mut tasks = Vec::new();
        for (i, old) in live.iter().enumerate() {
            let s = store.clone();
            let old = old.clone();
            let new = format!("t{i}-{round}");
            tasks.push(tokio::spawn(async move {
                let r = s.rotate_refresh(&old, next(&new), now, by).await;
                (i, new, r)
            }));
        }
        for t in tasks {
            let (i, new, r) = t.await.unwrap_or_else(|e| panic!("{e}"));
            match r {
                Ok(RotateOutcome::Rotated(..)) => {
                    answered += 1;
                    live[i] = new;
                }
                Ok(other) => panic!("session {i}: {other:?}"),
                Err(e) => {
                    assert_eq!(e.fault(), Some(Fault::DiskFull), "{}", cause_chain(&e));
                    failed += 1;
                }
            }
        }
    }
    eprintln!("disk full: {answered} answered, {failed} failed");
    assert!(failed > 0, "the disk never filled: the test proves nothing");
    assert!(answered > 0, "nothing was answered before the disk filled");
    // Another process sees every answered rotation while the disk is still full.
    let other = Store::open_sqlite(&path)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for (i, token) in live.iter().enumerate() {
        let found = other
            .session_by_refresh(token)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            found.is_some(),
            "session {i}: answered token {token} is not in the database"
        );
    }
    drop(other);
    // Room again: the store recovers by itself.
    std::fs::remove_file(&filler).unwrap_or_else(|e| panic!("{e}"));
    store
        .checkpoint()
        .await
        .unwrap_or_else(|e| panic!("checkpoint with room again: {e}"));
    for (i, old) in live.clone().iter().enumerate() {
        if i % 8 == 0 {
            store
                .checkpoint()
                .await
                .unwrap_or_else(|e| panic!("checkpoint: {}", cause_chain(&e)));
        }
        let new = format!("t{i}-after");
        match store.rotate_refresh(old, next(&new), now, by).await {
            Ok(RotateOutcome::Rotated(..)) => live[i] = new,
            other => panic!("session {i} after the disk had room again: {other:?}"),
        }
    }
    // Audit sealing works again too.
    assert!(
        store
            .seal_audit(SEAL_BATCH)
            .await
            .unwrap_or_else(|e| panic!("seal: {e}"))
            > 0
    );
    // Another process (a restart) sees every answered rotation, each with its audit row.
    drop(store);
    let again = Store::open_sqlite(&path)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        again.count_events("refresh").await.unwrap_or_default(),
        answered + sessions,
        "one audit row per answered rotation, none for a failed one"
    );
    for (i, token) in live.iter().enumerate() {
        let found = again
            .session_by_refresh(token)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            found.is_some(),
            "session {i}: answered token {token} was lost"
        );
    }
}
