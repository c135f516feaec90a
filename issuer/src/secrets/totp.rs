//! Time-based one-time passwords (RFC 6238 over RFC 4226), the second factor of local accounts:
//! HMAC-SHA1, 30-second steps, 6 digits, one step of clock skew either way. Pure functions: the
//! caller passes the time, and remembers the last step an account used (replay refusal).

use ring::hmac;

use crate::secrets::secret::{constant_time_eq, random_bytes, Secret};

/// Length of one time step in seconds.
pub const STEP_SECS: i64 = 30;
/// Digits of a code.
pub const DIGITS: u32 = 6;
/// Steps accepted before and after the current one (clock skew of the person's phone).
pub const SKEW_STEPS: i64 = 1;
/// Bytes of a new secret (160 bits, as RFC 4226 recommends).
pub const SECRET_BYTES: usize = 20;

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// A new random secret, base32 encoded (what authenticator apps accept).
#[must_use]
pub fn new_secret() -> Secret {
    Secret::new(base32_encode(&random_bytes(SECRET_BYTES)))
}

/// RFC 4648 base32 without padding.
#[must_use]
pub fn base32_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(BASE32[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(BASE32[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

/// Decodes base32 (case-insensitive; spaces and `=` padding ignored). `None` if invalid.
#[must_use]
pub fn base32_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for c in text.chars().filter(|c| !c.is_whitespace() && *c != '=') {
        let c = c.to_ascii_uppercase();
        let v = BASE32.iter().position(|&b| char::from(b) == c)?;
        buffer = (buffer << 5) | u32::try_from(v).ok()?;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((buffer >> bits) & 0xff).ok()?);
        }
    }
    Some(out)
}

/// The time step containing `unix_secs`.
#[must_use]
pub fn step_at(unix_secs: i64) -> i64 {
    unix_secs.div_euclid(STEP_SECS)
}

/// The code of `step` for `key` (RFC 4226 HOTP with the step as counter), zero-padded.
#[must_use]
pub fn code_at_step(key: &[u8], step: i64) -> String {
    let k = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, key);
    let counter = u64::try_from(step).unwrap_or(0).to_be_bytes();
    let tag = hmac::sign(&k, &counter);
    let mac = tag.as_ref();
    let offset = usize::from(mac.last().copied().unwrap_or(0) & 0x0f);
    let word = mac
        .get(offset..offset + 4)
        .and_then(|s| <[u8; 4]>::try_from(s).ok())
        .map_or(0, u32::from_be_bytes)
        & 0x7fff_ffff;
    format!(
        "{:0width$}",
        word % 10_u32.pow(DIGITS),
        width = DIGITS as usize
    )
}

/// The code for `key` at `unix_secs`.
#[must_use]
pub fn code_at(key: &[u8], unix_secs: i64) -> String {
    code_at_step(key, step_at(unix_secs))
}

/// What a code is worth at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// It is the code of this step, not used before: record the step.
    Valid(i64),
    /// It is the right code, but of a step already used (at or before the last used one):
    /// typically the code that just proved the enrolment or the last sign-in, still on the
    /// person's screen. The next code appears in `wait_secs` seconds.
    Reused {
        /// Seconds until the app shows a code of a step after the last used one.
        wait_secs: i64,
    },
    /// Not a code of any step around now.
    Wrong,
}

/// Checks `code` against the steps around `unix_secs`. A valid step must be recorded by the
/// caller and refused afterwards (a code works once); steps at or before `last_used_step` are
/// [`Verdict::Reused`]. Every candidate is compared in constant time.
#[must_use]
pub fn check(key: &[u8], code: &str, unix_secs: i64, last_used_step: Option<i64>) -> Verdict {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Verdict::Wrong;
    }
    let now = step_at(unix_secs);
    let mut found = None;
    let mut reused = false;
    for step in (now - SKEW_STEPS)..=(now + SKEW_STEPS) {
        let matches = constant_time_eq(&code_at_step(key, step), &code);
        let fresh = last_used_step.is_none_or(|last| step > last);
        if matches && fresh && found.is_none() {
            found = Some(step);
        }
        reused |= matches && !fresh;
    }
    match (found, reused, last_used_step) {
        (Some(step), _, _) => Verdict::Valid(step),
        (None, true, Some(last)) => Verdict::Reused {
            // The first step that counts again is `last + 1`; it starts at `(last + 1) * 30`.
            wait_secs: ((last + 1) * STEP_SECS - unix_secs).max(1),
        },
        _ => Verdict::Wrong,
    }
}

/// Checks `code` as [`check`] does: the matching step, which the caller must record, or
/// `None` (wrong or already used).
#[must_use]
pub fn verify(key: &[u8], code: &str, unix_secs: i64, last_used_step: Option<i64>) -> Option<i64> {
    match check(key, code, unix_secs, last_used_step) {
        Verdict::Valid(step) => Some(step),
        Verdict::Reused { .. } | Verdict::Wrong => None,
    }
}

/// The `otpauth://` URI authenticator apps read from the QR code (Google Authenticator's
/// key-URI format): label `ISSUER:ACCOUNT`, the base32 secret, and the parameters above.
#[must_use]
pub fn otpauth_uri(issuer: &str, account: &str, secret_base32: &Secret) -> Secret {
    let enc = |s: &str| -> String {
        url::form_urlencoded::byte_serialize(s.as_bytes())
            .collect::<String>()
            .replace('+', "%20")
    };
    Secret::new(format!(
        "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
        enc(issuer),
        enc(account),
        secret_base32.expose(),
        enc(issuer),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B, SHA-1 rows: the seed is the ASCII string "12345678901234567890"
    /// and the codes are 8 digits; the 6-digit code is their last six digits (the same
    /// truncation modulo 10^6).
    #[test]
    fn rfc6238_appendix_b_vectors() {
        let key = b"12345678901234567890";
        let table = [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ];
        for (t, eight) in table {
            assert_eq!(code_at(key, t), eight[2..], "T = {t}");
        }
    }

    #[test]
    fn base32_round_trips_and_matches_rfc4648() {
        assert_eq!(base32_encode(b"foobar"), "MZXW6YTBOI");
        assert_eq!(base32_encode(b"f"), "MY");
        assert_eq!(
            base32_decode("mzxw 6ytb oi======").as_deref(),
            Some(&b"foobar"[..])
        );
        assert_eq!(base32_decode("MZ1W"), None);
        let s = new_secret();
        assert_eq!(s.expose().len(), 32);
        assert_eq!(
            base32_decode(s.expose()).map(|b| b.len()),
            Some(SECRET_BYTES)
        );
    }

    #[test]
    fn verify_allows_one_step_of_skew_and_refuses_replay() {
        let key = b"12345678901234567890";
        let t = 1_111_111_111;
        let now = step_at(t);
        assert_eq!(verify(key, &code_at(key, t), t, None), Some(now));
        assert_eq!(verify(key, &code_at(key, t - 30), t, None), Some(now - 1));
        assert_eq!(verify(key, &code_at(key, t + 30), t, None), Some(now + 1));
        assert_eq!(verify(key, &code_at(key, t - 60), t, None), None);
        assert_eq!(verify(key, &code_at(key, t + 60), t, None), None);
        // Replay: the step was used already, or a later one was.
        assert_eq!(verify(key, &code_at(key, t), t, Some(now)), None);
        assert_eq!(verify(key, &code_at(key, t - 30), t, Some(now - 1)), None);
        assert_eq!(
            verify(key, &code_at(key, t + 30), t, Some(now)),
            Some(now + 1)
        );
        // Garbage.
        assert_eq!(verify(key, "12345", t, None), None);
        assert_eq!(verify(key, "abcdef", t, None), None);
        let spaced = format!("{} {}", &code_at(key, t)[..3], &code_at(key, t)[3..]);
        assert_eq!(verify(key, &spaced, t, None), Some(now));
    }

    #[test]
    fn a_used_code_is_told_apart_from_a_wrong_one_with_the_wait() {
        let key = b"12345678901234567890";
        // 10 s into a step whose code was just used (to enrol, say).
        let t = 1_111_111_110;
        let now = step_at(t);
        let start = now * STEP_SECS;
        let at = start + 10;
        assert_eq!(
            check(key, &code_at(key, at), at, Some(now)),
            Verdict::Reused { wait_secs: 20 }
        );
        // The next code is valid, even before its step starts here (skew).
        assert_eq!(
            check(key, &code_at_step(key, now + 1), at, Some(now)),
            Verdict::Valid(now + 1)
        );
        // A wrong code stays wrong, and says nothing of a wait.
        let wrong = (0..10)
            .map(|d| format!("{d}{d}{d}{d}{d}{d}"))
            .find(|c| (now - 2..=now + 2).all(|s| code_at_step(key, s) != *c))
            .unwrap_or_default();
        assert_eq!(check(key, &wrong, at, Some(now)), Verdict::Wrong);
        assert_eq!(check(key, &wrong, at, None), Verdict::Wrong);
        // A phone one step ahead used the next step already: wait for the one after it.
        assert_eq!(
            check(key, &code_at_step(key, now + 1), at, Some(now + 1)),
            Verdict::Reused { wait_secs: 50 }
        );
        assert_eq!(check(key, "12a456", at, Some(now)), Verdict::Wrong);
    }

    #[test]
    fn otpauth_uri_has_the_key_uri_format() {
        let uri = otpauth_uri(
            "issuer.example.com",
            "alice b",
            &Secret::new("JBSWY3DPEHPK3PXP"),
        );
        assert_eq!(
            uri.expose(),
            "otpauth://totp/issuer.example.com:alice%20b?secret=JBSWY3DPEHPK3PXP&issuer=issuer.example.com&algorithm=SHA1&digits=6&period=30"
        );
        assert_eq!(format!("{uri:?}"), "[redacted]");
    }
}
