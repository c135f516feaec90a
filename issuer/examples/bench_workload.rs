//! Makes a CI platform for the token-exchange load test (`bench/exchange.sh`): an ES256 key,
//! its JWKS for a plain file server on loopback, and COUNT distinct GitHub-shaped identity
//! tokens (each with its own `jti`, so none is a replay), one per line.
//!
//! Usage: `cargo run --release -p credential-issuer --example bench_workload -- ISSUER_URL
//! AUDIENCE COUNT OUT_DIR` (writes `OUT_DIR/jwks.json` and `OUT_DIR/tokens.txt`).

use std::io::Write as _;
use std::path::PathBuf;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair as _, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::json;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(issuer), Some(audience), Some(count), Some(out)) =
        (args.next(), args.next(), args.next(), args.next())
    else {
        anyhow::bail!("usage: bench_workload ISSUER_URL AUDIENCE COUNT OUT_DIR");
    };
    let count: usize = count.parse()?;
    let out = PathBuf::from(out);
    std::fs::create_dir_all(&out)?;
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        .map_err(|_| anyhow::anyhow!("could not generate a P-256 key"))?;
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
        .map_err(|_| anyhow::anyhow!("could not load the generated key"))?;
    // Uncompressed point: 0x04 || x || y.
    let point = key.public_key().as_ref();
    anyhow::ensure!(point.len() == 65, "unexpected public key encoding");
    let jwks = json!({"keys": [{
        "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": "bench-1",
        "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
        "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
    }]});
    std::fs::write(out.join("jwks.json"), jwks.to_string())?;
    let header =
        URL_SAFE_NO_PAD.encode(json!({"alg": "ES256", "kid": "bench-1", "typ": "JWT"}).to_string());
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut file = std::io::BufWriter::new(std::fs::File::create(out.join("tokens.txt"))?);
    for i in 0..count {
        let claims = json!({
            "iss": issuer, "aud": audience, "iat": now, "nbf": now, "exp": now + 3600,
            "jti": format!("bench-{i}"),
            "sub": "repo:acme/deploy:environment:production",
            "repository": "acme/deploy", "ref": "refs/heads/main",
            "environment": "production", "run_id": i.to_string(), "actor": "bench",
        });
        let input = format!("{header}.{}", URL_SAFE_NO_PAD.encode(claims.to_string()));
        let sig = key
            .sign(&rng, input.as_bytes())
            .map_err(|_| anyhow::anyhow!("signing failed"))?;
        writeln!(file, "{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))?;
    }
    file.flush()?;
    Ok(())
}
