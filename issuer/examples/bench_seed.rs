//! Seeds a data directory with login sessions for the refresh-grant load test
//! (`bench/refresh.sh`): each session's first refresh token is written to a file, one per
//! line, so the load generator can start as many independent refresh chains.
//!
//! Usage: `cargo run --release -p credential-issuer --example bench_seed -- DATA_DIR COUNT OUT_FILE`
//! (SQLite in `DATA_DIR`; with `CREDENTIAL_ISSUER_DATABASE_URL=postgres://...`, that database).

use std::io::Write as _;
use std::path::PathBuf;

use credential_issuer::secrets::secret::{hash, random_token};
use credential_issuer::store::{Location, NewUser, PostgresOptions, Session, Store};

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(dir), Some(count), Some(out)) = (args.next(), args.next(), args.next()) else {
        anyhow::bail!("usage: bench_seed DATA_DIR COUNT OUT_FILE");
    };
    let dir = PathBuf::from(dir);
    let count: usize = count.parse()?;
    std::fs::create_dir_all(&dir)?;
    let store = match std::env::var("CREDENTIAL_ISSUER_DATABASE_URL") {
        Ok(url) if !url.is_empty() => {
            Store::open(&Location::Postgres(PostgresOptions {
                url,
                max_connections: 4,
                schema: None,
            }))
            .await?
        }
        _ => Store::open_sqlite(&dir.join("issuer.db")).await?,
    };
    let now = time::OffsetDateTime::now_utc();
    let user_id = format!("u-bench-{}", random_token(6).expose());
    store
        .create_user(
            &NewUser {
                id: user_id.clone(),
                username: format!(
                    "bench-{}",
                    random_token(6)
                        .expose()
                        .to_lowercase()
                        .replace(['-', '_'], "x")
                ),
                email: None,
                password_hash: None,
                groups: vec!["bench".into(), "k8s-readers".into()],
            },
            now,
        )
        .await?;
    let mut file = std::io::BufWriter::new(std::fs::File::create(&out)?);
    for _ in 0..count {
        let refresh = random_token(32);
        let session = Session {
            id: random_token(12).expose().to_owned(),
            user_id: user_id.clone(),
            client_id: "kubectl-credential".into(),
            cluster: "default".into(),
            created_at: now,
            expires_at: now + time::Duration::hours(12),
            revoked_at: None,
        };
        store
            .create_session(&session, &hash(refresh.expose()))
            .await?;
        writeln!(file, "{}", refresh.expose())?;
    }
    file.flush()?;
    eprintln!("seeded {count} sessions; refresh tokens in {out}");
    Ok(())
}
