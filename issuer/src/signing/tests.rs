//! Tests of the signing keys: both sources, rotation and retention, the JWKS, signing and
//! verification.

use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use credential_shared::oauth::{AccessTokenClaims, Jwks};
use ring::rand::SystemRandom;
use time::macros::datetime;
use time::OffsetDateTime;

use super::database::{key_context, new_sealed_key};
use super::*;
use crate::secrets::seal::Sealer;
use crate::secrets::secret::Secret;
use crate::store::{Store, StoredSigningKey};

const T0: OffsetDateTime = datetime!(2025-01-01 00:00:00 UTC);
/// After every time these tests stamp a key with: every key's time has come.
const LATER: OffsetDateTime = time::macros::datetime!(2100-01-01 00:00 UTC);
const HOUR: Duration = Duration::from_secs(3600);

fn claims() -> AccessTokenClaims {
    AccessTokenClaims {
        grants: Vec::new(),
        upstream_checked_at: None,
        iss: "https://issuer.test".into(),
        sub: "user-1".into(),
        aud: "prod".into(),
        iat: 1_735_689_600,
        nbf: 1_735_689_600,
        exp: 1_735_690_200,
        jti: "jti-1".into(),
        preferred_username: "alice".into(),
        email: Some("alice@example.test".into()),
        groups: vec!["admins".into()],
        cluster: Some("prod".into()),
        sid: None,
    }
}

fn json(claims: &AccessTokenClaims) -> serde_json::Value {
    serde_json::to_value(claims).unwrap_or_else(|e| panic!("claims to json: {e}"))
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"))
}

fn open(dir: &Path, now: OffsetDateTime) -> Signer {
    Signer::open(dir, now).unwrap_or_else(|e| panic!("open {}: {e}", dir.display()))
}

/// Reloads `signer` at `now`, failing the test on an error; whether the keys changed.
async fn reloaded(signer: &Signer, now: OffsetDateTime) -> bool {
    signer
        .reload(now)
        .await
        .unwrap_or_else(|e| panic!("reload: {e}"))
}

fn rotate_ok(dir: &Path, now: OffsetDateTime) -> KeyInfo {
    rotate(dir, now, HOUR).unwrap_or_else(|e| panic!("rotate: {e}"))
}

fn file(key: &KeyInfo) -> &Path {
    key.path
        .as_deref()
        .unwrap_or_else(|| panic!("key {} has no file", key.kid))
}

fn kids(jwks: &Jwks) -> Vec<&str> {
    jwks.keys.iter().map(|k| k.kid.as_str()).collect()
}

fn b64_json(part: &str) -> serde_json::Value {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .unwrap_or_else(|e| panic!("base64 {part}: {e}"));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("json {part}: {e}"))
}

fn parts(token: &str) -> [&str; 3] {
    let parts: Vec<&str> = token.split('.').collect();
    parts
        .try_into()
        .unwrap_or_else(|p| panic!("not three parts: {p:?}"))
}

#[test]
fn sign_then_verify_round_trips() {
    let tmp = tempdir();
    let signer = open(&tmp.path().join("keys"), T0);
    let token = signer
        .sign(&claims())
        .unwrap_or_else(|e| panic!("sign: {e}"));

    let [header, _, signature] = parts(&token);
    assert_eq!(
        b64_json(header),
        serde_json::json!({"alg": "ES256", "typ": "JWT", "kid": signer.active_kid()})
    );
    // JWS wants the fixed r || s encoding, not DER.
    assert_eq!(
        URL_SAFE_NO_PAD.decode(signature).map(|s| s.len()).ok(),
        Some(64)
    );

    let jwks = signer.jwks(T0, HOUR);
    let got = verify(&jwks, &token).unwrap_or_else(|e| panic!("verify: {e}"));
    assert_eq!(json(&got), json(&claims()));
}

#[test]
fn jwk_is_p256_with_rfc7638_thumbprint_as_kid() {
    let tmp = tempdir();
    let signer = open(tmp.path(), T0);
    let jwks = signer.jwks(T0, HOUR);
    let [jwk] = jwks.keys.as_slice() else {
        panic!("expected one key, got {jwks:?}")
    };
    assert_eq!(
        (
            jwk.kty.as_str(),
            jwk.crv.as_str(),
            jwk.alg.as_str(),
            jwk.use_.as_str()
        ),
        ("EC", "P-256", "ES256", "sig")
    );
    for coordinate in [&jwk.x, &jwk.y] {
        assert_eq!(
            URL_SAFE_NO_PAD.decode(coordinate).map(|c| c.len()).ok(),
            Some(32)
        );
    }
    let canonical = serde_json::json!({"crv": jwk.crv, "kty": jwk.kty, "x": jwk.x, "y": jwk.y});
    // serde_json's map is ordered by key, which is the order RFC 7638 wants.
    let canonical = serde_json::to_string(&canonical).unwrap_or_default();
    let thumbprint = ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes());
    assert_eq!(jwk.kid, URL_SAFE_NO_PAD.encode(thumbprint));
    assert_eq!(jwk.kid.len(), 43, "full SHA-256, not truncated");
    assert_eq!(jwk.kid, signer.active_kid());
}

#[test]
fn verify_rejects_tampering_unknown_kids_and_other_algorithms() {
    let tmp = tempdir();
    let signer = open(&tmp.path().join("a"), T0);
    let jwks = signer.jwks(T0, HOUR);
    let token = signer
        .sign(&claims())
        .unwrap_or_else(|e| panic!("sign: {e}"));
    let [header, _, signature] = parts(&token);

    let mut forged = claims();
    forged.groups = vec!["system:masters".into()];
    let forged_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap_or_default());
    let tampered = format!("{header}.{forged_payload}.{signature}");
    assert!(matches!(verify(&jwks, &tampered), Err(Error::BadSignature)));

    let other = open(&tmp.path().join("b"), T0);
    let other_token = other
        .sign(&claims())
        .unwrap_or_else(|e| panic!("sign: {e}"));
    let err = verify(&jwks, &other_token);
    assert!(
        matches!(&err, Err(Error::UnknownKid(k)) if *k == other.active_kid()),
        "{err:?}"
    );

    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims()).unwrap_or_default());
    for alg in ["none", "HS256", "RS256", "ES384"] {
        let header = URL_SAFE_NO_PAD.encode(
            serde_json::json!({"alg": alg, "typ": "JWT", "kid": signer.active_kid()}).to_string(),
        );
        for sig in ["", signature] {
            let token = format!("{header}.{payload}.{sig}");
            let err = verify(&jwks, &token);
            assert!(
                matches!(&err, Err(Error::UnsupportedAlgorithm(a)) if a == alg),
                "alg {alg}: {err:?}"
            );
        }
    }

    for malformed in ["", "a.b", "a.b.c.d", &format!("{token}.")] {
        assert!(verify(&jwks, malformed).is_err(), "{malformed:?} accepted");
    }
    // Padding is not base64url as JWS defines it.
    assert!(matches!(
        verify(&jwks, &format!("{token}=")),
        Err(Error::Base64 {
            part: "signature",
            ..
        })
    ));
}

#[tokio::test]
async fn rotate_activates_the_new_key_and_retires_the_old_one_after_retain() {
    let tmp = tempdir();
    let dir = tmp.path();
    let signer = open(dir, T0);
    let first = signer.active_kid();
    let old_token = signer
        .sign(&claims())
        .unwrap_or_else(|e| panic!("sign: {e}"));

    let t1 = T0 + Duration::from_secs(60);
    let second = rotate_ok(dir, t1);
    assert!(reloaded(&signer, LATER).await);
    assert_eq!(signer.active_kid(), second.kid);
    assert_ne!(second.kid, first);

    // Within `retain` of the rotation both keys are published, active first, and a token
    // signed by the old key still verifies.
    let jwks = signer.jwks(t1 + HOUR - Duration::from_secs(1), HOUR);
    assert_eq!(kids(&jwks), [second.kid.as_str(), first.as_str()]);
    assert!(verify(&jwks, &old_token).is_ok());
    // Once `retain` has passed, the old key is gone.
    let jwks = signer.jwks(t1 + HOUR, HOUR);
    assert_eq!(kids(&jwks), [second.kid.as_str()]);
    assert!(matches!(
        verify(&jwks, &old_token),
        Err(Error::UnknownKid(_))
    ));

    // A rotation within `retain` keeps the superseded key's file; a later one deletes the
    // files of keys retired by then.
    let third = rotate_ok(dir, t1 + Duration::from_secs(60));
    let on_disk: Vec<String> = list(dir)
        .unwrap_or_else(|e| panic!("list: {e}"))
        .into_iter()
        .map(|k| k.kid)
        .collect();
    assert_eq!(
        on_disk,
        [first.clone(), second.kid.clone(), third.kid.clone()]
    );
    let fourth = rotate_ok(dir, t1 + Duration::from_secs(60) + HOUR);
    let on_disk: Vec<String> = list(dir)
        .unwrap_or_else(|e| panic!("list: {e}"))
        .into_iter()
        .map(|k| k.kid)
        .collect();
    assert_eq!(on_disk, [third.kid.clone(), fourth.kid.clone()]);
}

#[tokio::test]
async fn signer_verifies_with_its_loaded_keys_including_retained_old_ones() {
    let tmp = tempdir();
    let dir = tmp.path();
    let signer = open(dir, T0);
    let old_token = signer
        .sign(&claims())
        .unwrap_or_else(|e| panic!("sign: {e}"));
    let got = signer
        .verify(&old_token, T0, HOUR)
        .unwrap_or_else(|e| panic!("verify: {e}"));
    assert_eq!(json(&got), json(&claims()));

    let t1 = T0 + Duration::from_secs(60);
    rotate_ok(dir, t1);
    assert!(reloaded(&signer, LATER).await);
    let new_token = signer
        .sign(&claims())
        .unwrap_or_else(|e| panic!("sign: {e}"));
    // The superseded key verifies for `retain` after the rotation, then no more.
    let late = t1 + HOUR - Duration::from_secs(1);
    assert!(signer.verify(&old_token, late, HOUR).is_ok());
    assert!(matches!(
        signer.verify(&old_token, t1 + HOUR, HOUR),
        Err(Error::UnknownKid(_))
    ));
    assert!(signer.verify(&new_token, t1 + HOUR, HOUR).is_ok());

    // Another issuer's token and a tampered one are refused.
    let other = open(&tmp.path().join("other"), T0);
    let foreign = other
        .sign(&claims())
        .unwrap_or_else(|e| panic!("sign: {e}"));
    assert!(matches!(
        signer.verify(&foreign, t1, HOUR),
        Err(Error::UnknownKid(_))
    ));
    let [header, _, signature] = parts(&new_token);
    let mut forged = claims();
    forged.preferred_username = "admin".into();
    let forged = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap_or_default());
    assert!(matches!(
        signer.verify(&format!("{header}.{forged}.{signature}"), t1, HOUR),
        Err(Error::BadSignature)
    ));
}

#[tokio::test]
async fn reload_picks_up_a_rotation_by_another_process() {
    let tmp = tempdir();
    let dir = tmp.path().join("keys");
    let signer = open(&dir, T0);
    assert!(!reloaded(&signer, LATER).await);

    let new = rotate_ok(&dir, T0 + HOUR);
    assert!(reloaded(&signer, LATER).await);
    assert_eq!(signer.active_kid(), new.kid);
    assert!(!reloaded(&signer, LATER).await);

    let token = signer
        .sign(&claims())
        .unwrap_or_else(|e| panic!("sign: {e}"));
    let [header, ..] = parts(&token);
    assert_eq!(b64_json(header)["kid"], new.kid.as_str());
    assert!(verify(&signer.jwks(T0 + HOUR, HOUR), &token).is_ok());
}

#[tokio::test]
async fn rotations_within_one_second_stay_ordered() {
    let tmp = tempdir();
    let dir = tmp.path();
    let signer = open(dir, T0);
    let a = rotate_ok(dir, T0);
    let b = rotate_ok(dir, T0);
    assert!(b.created_at > a.created_at && a.created_at > T0);
    let on_disk = list(dir).unwrap_or_else(|e| panic!("list: {e}"));
    assert_eq!(on_disk.len(), 3);
    assert_eq!(on_disk.last().map(|k| &k.kid), Some(&b.kid));
    assert!(reloaded(&signer, LATER).await);
    assert_eq!(signer.active_kid(), b.kid);
}

#[test]
fn open_reuses_existing_keys_and_ignores_unrelated_files() {
    let tmp = tempdir();
    let dir = tmp.path();
    let first = open(dir, T0).active_kid();
    for (name, contents) in [("README", "hello"), (".x.p8.0123.tmp", "half a key")] {
        fs::write(dir.join(name), contents).unwrap_or_else(|e| panic!("write {name}: {e}"));
    }
    fs::create_dir(dir.join("sub.p8")).unwrap_or_else(|e| panic!("mkdir: {e}"));
    let again = open(dir, T0 + HOUR);
    assert_eq!(again.active_kid(), first);
    assert_eq!(list(dir).map(|l| l.len()).ok(), Some(1));
}

#[cfg(unix)]
#[test]
fn key_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempdir();
    let dir = tmp.path().join("keys");
    let _signer = open(&dir, T0);
    rotate_ok(&dir, T0 + HOUR);
    let mode = |p: &Path| {
        let metadata = fs::metadata(p).unwrap_or_else(|e| panic!("stat {}: {e}", p.display()));
        metadata.permissions().mode() & 0o777
    };
    assert_eq!(mode(&dir), 0o700);
    let keys = list(&dir).unwrap_or_else(|e| panic!("list: {e}"));
    assert_eq!(keys.len(), 2);
    for key in keys {
        let path = file(&key);
        assert_eq!(mode(path), 0o600, "{}", path.display());
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        assert_eq!(
            name,
            format!("{:012}-{}.p8", key.created_at.unix_timestamp(), key.kid)
        );
    }
}

#[test]
fn debug_prints_no_key_material() {
    let tmp = tempdir();
    let signer = open(tmp.path(), T0);
    let debug = format!("{signer:?}");
    assert!(debug.contains(&signer.active_kid()), "{debug}");
    let keys = list(tmp.path()).unwrap_or_else(|e| panic!("list: {e}"));
    let der = keys
        .first()
        .map(|k| fs::read(file(k)).unwrap_or_default())
        .unwrap_or_default();
    assert!(der.len() > 100, "key file is PKCS#8 DER");
    let hex = der.iter().fold(String::new(), |mut hex, b| {
        let _ = std::fmt::Write::write_fmt(&mut hex, format_args!("{b:02x}"));
        hex
    });
    let standard = base64::engine::general_purpose::STANDARD.encode(&der);
    let bytes = format!("{:?}", &der[..]);
    let inner = bytes.trim_start_matches('[').trim_end_matches(']');
    for encoded in [
        hex.as_str(),
        &standard,
        &URL_SAFE_NO_PAD.encode(&der),
        inner,
    ] {
        assert!(!debug.contains(encoded), "{debug}");
    }
}

#[tokio::test]
async fn a_corrupt_key_file_is_an_error_naming_it() {
    let tmp = tempdir();
    let dir = tmp.path();
    let signer = open(dir, T0);
    let corrupt = dir.join("000000000001-AAAA.p8");
    fs::write(&corrupt, b"not a key").unwrap_or_else(|e| panic!("write: {e}"));

    let err = Signer::open(dir, T0)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains(&corrupt.display().to_string()), "{err}");
    // A running signer keeps its keys when a reload fails.
    let err = signer
        .reload(LATER)
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains(&corrupt.display().to_string()), "{err}");
    assert!(signer.sign(&claims()).is_ok());
    let err = list(dir).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains(&corrupt.display().to_string()), "{err}");

    // A real key under another key's name, and a badly named key, are errors too.
    fs::remove_file(&corrupt).unwrap_or_else(|e| panic!("rm: {e}"));
    let real = file(&list(dir).unwrap_or_default().remove(0)).to_owned();
    for name in ["000000000001-AAAA.p8", "mykey.p8"] {
        let path = dir.join(name);
        fs::copy(&real, &path).unwrap_or_else(|e| panic!("cp: {e}"));
        let err = Signer::open(dir, T0)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains(&path.display().to_string()), "{err}");
        fs::remove_file(&path).unwrap_or_else(|e| panic!("rm: {e}"));
    }
}

#[test]
fn signer_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Signer>();
}

// Keys in the database.

fn database(store: &Store, key: u8) -> KeySource {
    KeySource::Database {
        store: store.clone(),
        sealer: Arc::new(Sealer::from_key(&[key; 32])),
    }
}

async fn open_db(source: &KeySource, now: OffsetDateTime) -> Signer {
    Signer::open_source(source.clone(), now)
        .await
        .unwrap_or_else(|e| panic!("open: {e}"))
}

async fn rows(store: &Store) -> Vec<StoredSigningKey> {
    store
        .signing_keys()
        .await
        .unwrap_or_else(|e| panic!("rows: {e}"))
}

fn config(dir: &Path) -> crate::config::Config {
    crate::config::Config::from_parts(
        crate::config::FileConfig::default(),
        &crate::config::Overrides::default(),
        || Some(dir.to_owned()),
    )
    .unwrap_or_else(|e| panic!("config: {e}"))
}

#[tokio::test]
async fn two_signers_on_one_database_see_a_rotation_by_the_cli() {
    let (store, dir) = crate::store::test_support::temp_store().await;
    let source = database(&store, 7);
    let a = open_db(&source, T0).await;
    let b = open_db(&source, T0).await;
    assert_eq!(a.active_kid(), b.active_kid());
    assert_eq!(rows(&store).await.len(), 1, "one first key, not one each");
    assert!(!dir.path().join("keys").exists(), "no key files");
    let old_token = a.sign(&claims()).unwrap_or_else(|e| panic!("sign: {e}"));
    let (gen_a, gen_b) = (a.generation(), b.generation());

    let config = config(dir.path());
    let t1 = T0 + Duration::from_secs(60);
    let new = crate::service::admin::rotate_keys(&source, &config, t1)
        .await
        .unwrap_or_else(|e| panic!("rotate: {e}"));
    assert_eq!(new.path, None);
    for signer in [&a, &b] {
        assert!(reloaded(signer, LATER).await);
        assert_eq!(signer.active_kid(), new.kid);
        assert!(!reloaded(signer, LATER).await);
    }
    assert_ne!(a.generation(), gen_a, "the webhook's token cache drops");
    assert_ne!(b.generation(), gen_b);

    let retain = config.key_retention();
    let jwks = |s: &Signer| serde_json::to_value(s.jwks(t1, retain)).unwrap_or_default();
    assert_eq!(jwks(&a), jwks(&b));
    assert_eq!(
        kids(&a.jwks(t1, retain)).len(),
        2,
        "the old key stays published"
    );
    let new_token = b.sign(&claims()).unwrap_or_else(|e| panic!("sign: {e}"));
    for token in [&old_token, &new_token] {
        assert!(a.verify(token, t1, retain).is_ok());
        assert!(b.verify(token, t1, retain).is_ok());
    }

    let listed = crate::service::admin::list_keys(&source)
        .await
        .unwrap_or_else(|e| panic!("list: {e}"));
    let listed: Vec<&str> = listed.iter().map(|k| k.kid.as_str()).collect();
    let old_kid = kids(&a.jwks(t1, retain))[1].to_owned();
    assert_eq!(listed, [old_kid.as_str(), new.kid.as_str()]);

    // A rotation once `retain` has passed since the new key began to sign deletes the
    // retired key's row.
    let newest =
        crate::service::admin::rotate_keys(&source, &config, t1 + PUBLISH_BEFORE_SIGNING + retain)
            .await
            .unwrap_or_else(|e| panic!("rotate: {e}"));
    let left: Vec<String> = rows(&store).await.into_iter().map(|r| r.kid).collect();
    assert_eq!(left, [new.kid.clone(), newest.kid.clone()]);
    assert!(reloaded(&a, LATER).await);
    assert_eq!(a.active_kid(), newest.kid);
}

/// Replicas reload at different moments: a rotated key is published by every replica
/// before any of them signs with it, and every replica accepts it meanwhile.
#[tokio::test]
async fn a_rotated_database_key_is_published_before_it_signs() {
    let (store, dir) = crate::store::test_support::temp_store().await;
    let source = database(&store, 7);
    let (early, late) = (open_db(&source, T0).await, open_db(&source, T0).await);
    let old = early.active_kid();
    let config = config(dir.path());
    let retain = config.key_retention();
    let t1 = T0 + HOUR;
    let new = crate::service::admin::rotate_keys(&source, &config, t1)
        .await
        .unwrap_or_else(|e| panic!("rotate: {e}"));
    // Both reload right after the rotation: they publish the new key, still sign with the old.
    for s in [&early, &late] {
        assert!(reloaded(s, t1).await);
        assert_eq!(s.active_kid(), old);
        assert!(kids(&s.jwks(t1, retain)).contains(&new.kid.as_str()));
    }
    // `early` reloads once the new key's time has come and signs with it; `late` has not
    // reloaded yet, still signs with the old key, and accepts tokens of the new one.
    let due = t1 + PUBLISH_BEFORE_SIGNING;
    assert!(reloaded(&early, due).await);
    assert_eq!(early.active_kid(), new.kid);
    let token = early
        .sign(&claims())
        .unwrap_or_else(|e| panic!("sign: {e}"));
    assert_eq!(late.active_kid(), old);
    assert!(late.verify(&token, due, retain).is_ok());
    // Nothing changes before the time (no rebuild on every reload), then `late` switches.
    assert!(!late
        .reload(t1 + Duration::from_secs(1))
        .await
        .unwrap_or(true));
    assert!(reloaded(&late, due).await);
    assert_eq!(late.active_kid(), new.kid);
}

/// Asserts that loading fails for key `kid` with an error saying so, which shows no key
/// material, and that a running signer keeps its keys.
async fn assert_refused(source: &KeySource, running: &Signer, kid: &str, secrets: &[String]) {
    let err = Signer::open_source(source.clone(), T0)
        .await
        .err()
        .unwrap_or_else(|| panic!("a damaged key row was accepted"));
    let text = format!("{err} / {:?} / {:?}", std::error::Error::source(&err), err);
    assert!(text.contains(kid), "{text}");
    assert!(text.contains("database"), "{text}");
    for secret in secrets {
        assert!(!text.contains(secret.as_str()), "key material in {text}");
    }
    // A running signer read these rows before, when they were sound: the same kids and
    // times are not decrypted again, and it keeps signing.
    assert!(matches!(running.reload(LATER).await, Ok(false)));
    assert!(running.sign(&claims()).is_ok(), "keeps signing");
    assert!(source.list().await.is_err(), "keys list shows it too");
}

#[tokio::test]
async fn a_tampered_or_moved_key_row_is_refused() {
    let (store, _dir) = crate::store::test_support::temp_store().await;
    let source = database(&store, 7);
    let signer = open_db(&source, T0).await;
    source
        .rotate(T0 + HOUR, HOUR)
        .await
        .unwrap_or_else(|e| panic!("rotate: {e}"));
    let original = rows(&store).await;
    let [a, b] = original.as_slice() else {
        panic!("expected two keys, got {original:?}")
    };
    let sealer = Sealer::from_key(&[7; 32]);
    let der_b64 = |row: &StoredSigningKey| {
        let text = std::str::from_utf8(&row.sealed_key).unwrap_or_default();
        sealer
            .open(text, &key_context(&row.kid, row.created_at))
            .map_or_else(|e| panic!("open: {e}"), |s| s.expose().to_owned())
    };
    // What must never appear in an error: the sealed text, and the key in the encodings a
    // careless message might use.
    let mut secrets = Vec::new();
    for row in [a, b] {
        let der = STANDARD.decode(der_b64(row)).unwrap_or_default();
        assert!(der.len() > 100);
        secrets.push(String::from_utf8_lossy(&row.sealed_key).into_owned());
        secrets.push(der_b64(row));
        secrets.push(URL_SAFE_NO_PAD.encode(&der));
        secrets.push(crate::secrets::secret::hex(&der));
    }
    assert!(signer.reload(LATER).await.unwrap_or_else(|e| panic!("{e}")));

    // One byte altered.
    let mut altered = a.sealed_key.clone();
    let last = altered.len() - 2;
    altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
    store
        .set_sealed_signing_key_for_tests(&a.kid, &altered)
        .await;
    assert_refused(&source, &signer, &a.kid, &secrets).await;

    // b's sealed key copied into a's row.
    store
        .set_sealed_signing_key_for_tests(&a.kid, &b.sealed_key)
        .await;
    assert_refused(&source, &signer, &a.kid, &secrets).await;

    // b's key sealed for a's row (by someone holding the encryption key): the kid check.
    let forged = sealer
        .seal(&Secret::new(der_b64(b)), &key_context(&a.kid, a.created_at))
        .unwrap_or_else(|e| panic!("seal: {e}"));
    store
        .set_sealed_signing_key_for_tests(&a.kid, forged.as_bytes())
        .await;
    assert_refused(&source, &signer, &a.kid, &secrets).await;
    let err = source.list().await.err().map(|e| e.to_string());
    assert!(
        err.as_deref().is_some_and(|e| e.contains(&b.kid)),
        "{err:?}"
    );

    // Restored, every row opens again; under another encryption key none does, and the
    // error says to restore the key file.
    store
        .set_sealed_signing_key_for_tests(&a.kid, &a.sealed_key)
        .await;
    assert!(source.list().await.is_ok());
    let err = Signer::open_source(database(&store, 8), T0).await.err();
    let chain = err
        .as_ref()
        .and_then(|e| std::error::Error::source(e))
        .map(ToString::to_string)
        .unwrap_or_default();
    assert!(
        chain.contains("restore the old encryption key file"),
        "{chain}"
    );
}

#[tokio::test]
async fn replicas_starting_together_sign_with_the_same_first_key() {
    let (store, dir) = crate::store::test_support::temp_store().await;
    // A second store on the same file: another process, with its own connections.
    let other = dir.open().await.unwrap_or_else(|e| panic!("open: {e}"));
    let (one, two) = (database(&store, 7), database(&other, 7));
    let (a, b) = tokio::join!(
        Signer::open_source(one.clone(), T0),
        Signer::open_source(two.clone(), T0)
    );
    let (a, b) = (
        a.unwrap_or_else(|e| panic!("open: {e}")),
        b.unwrap_or_else(|e| panic!("open: {e}")),
    );
    assert_eq!(a.active_kid(), b.active_kid());
    assert_eq!(rows(&store).await.len(), 1);

    // Should two keys of the same second ever be in the table (written by hand, or by two
    // rotations at once), every replica still picks the same one.
    let (store, _dir) = crate::store::test_support::temp_store().await;
    let source = database(&store, 7);
    let KeySource::Database { sealer, .. } = &source else {
        unreachable!()
    };
    let rng = SystemRandom::new();
    let mut kids = Vec::new();
    for _ in 0..2 {
        let (info, sealed) = new_sealed_key(sealer, T0.unix_timestamp(), &rng)
            .unwrap_or_else(|e| panic!("key: {e}"));
        store
            .insert_signing_key(&info.kid, info.created_at, &sealed)
            .await
            .unwrap_or_else(|e| panic!("insert: {e}"));
        kids.push(info.kid);
    }
    kids.sort();
    let a = open_db(&source, T0).await;
    let b = open_db(&database(&store, 7), T0).await;
    assert_eq!(a.active_kid(), kids[1]);
    assert_eq!(b.active_kid(), kids[1]);
}
