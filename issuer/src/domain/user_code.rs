//! User codes as RFC 8628 section 6.1 recommends: 8 characters from a 20-letter consonant
//! alphabet (no vowels, so no words; no look-alike letters), shown as `XXXX-XXXX`, accepted in
//! any case with or without the dash. 20^8 ≈ 2.6e10 codes, and entry is rate limited.

/// The RFC's base-20 alphabet.
pub const ALPHABET: &[u8; 20] = b"BCDFGHJKLMNPQRSTVWXZ";
/// Characters in a code (without the dash).
pub const LEN: usize = 8;

/// Builds a code from random bytes by rejection sampling (no modulo bias). Returns `None` when
/// `random` runs out before 8 characters are drawn; callers pass 32 bytes, which fails with
/// probability below 1e-40.
#[must_use]
pub fn from_random(random: &[u8]) -> Option<String> {
    let mut out = String::with_capacity(LEN);
    for &b in random {
        // 240 = 12 * 20: bytes at or above it would bias the first letters.
        if b < 240 {
            out.push(char::from(ALPHABET[usize::from(b % 20)]));
            if out.len() == LEN {
                return Some(out);
            }
        }
    }
    None
}

/// Normalizes what a person typed: drops dashes and spaces, uppercases. `None` if the result
/// is not 8 characters of the alphabet.
#[must_use]
pub fn normalize(input: &str) -> Option<String> {
    let code: String = input
        .chars()
        .filter(|c| *c != '-' && !c.is_whitespace())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    (code.len() == LEN && code.bytes().all(|b| ALPHABET.contains(&b))).then_some(code)
}

/// Display form, `WDJB-MJHT`.
#[must_use]
pub fn display(normalized: &str) -> String {
    if normalized.len() == LEN && normalized.is_ascii() {
        format!("{}-{}", &normalized[..4], &normalized[4..])
    } else {
        normalized.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_codes_use_only_the_alphabet() {
        let bytes: Vec<u8> = (0..=255).collect();
        let code = from_random(&bytes).unwrap_or_default();
        assert_eq!(code.len(), 8);
        assert!(code.bytes().all(|b| ALPHABET.contains(&b)));
        assert_eq!(from_random(&[250, 251, 1]), None);
    }

    #[test]
    fn normalization() {
        let check = |input: &str, want: Option<&str>| {
            assert_eq!(normalize(input).as_deref(), want, "{input:?}");
        };
        check("WDJB-MJHT", Some("WDJBMJHT"));
        check("wdjb-mjht", Some("WDJBMJHT"));
        check("wdjbmjht", Some("WDJBMJHT"));
        check(" WDJB MJHT ", Some("WDJBMJHT"));
        check("WDJB-MJH", None);
        check("WDJB-MJHA", None); // vowel
        check("WDJB-MJHT1", None);
        check("", None);
        check("ÄDJB-MJHT", None);
        assert_eq!(display("WDJBMJHT"), "WDJB-MJHT");
    }
}
