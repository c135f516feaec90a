//! Where a device authorization came from, and what the consent page makes of it. The device
//! flow is the sign-in that phishing abuses (RFC 8628 section 5.4): an attacker starts a flow
//! and sends the victim a real link. These rules let the page say who is asking and warn when
//! the address that asked is not the one approving, and let an operator accept device
//! authorizations only from chosen networks. Pure: the caller gives addresses and times.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

/// Longest `User-Agent` kept with a device authorization, in characters.
pub const MAX_USER_AGENT: usize = 256;

/// An address as the issuer compares it: an IPv4-mapped IPv6 address (`::ffff:192.0.2.7`, what
/// a dual-stack listener reports for an IPv4 peer) is the IPv4 address it maps.
#[must_use]
pub fn parse_addr(text: &str) -> Option<IpAddr> {
    text.trim()
        .parse::<IpAddr>()
        .ok()
        .map(|ip| ip.to_canonical())
}

/// Whether the browser approving a code is where the code was requested from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The same address.
    Same,
    /// Another address, or one of the two is not known: the page warns and asks for an
    /// explicit confirmation (an address that cannot be compared is not evidence of safety).
    Different,
}

/// Compares the address that requested a code with the approving browser's, as IPs.
#[must_use]
pub fn compare(requested: &str, approving: &str) -> Origin {
    match (parse_addr(requested), parse_addr(approving)) {
        (Some(a), Some(b)) if a == b => Origin::Same,
        _ => Origin::Different,
    }
}

/// The `User-Agent` to keep: as given, but decoded as UTF-8 (invalid bytes replaced), without
/// NUL (PostgreSQL refuses it in text) and cut to [`MAX_USER_AGENT`] characters; `None` when
/// nothing is left.
#[must_use]
pub fn bound_user_agent(raw: &[u8]) -> Option<String> {
    let text: String = String::from_utf8_lossy(raw)
        .chars()
        .filter(|c| *c != '\0')
        .take(MAX_USER_AGENT)
        .collect();
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

/// How long ago a code was issued, coarsely, for a person: "12 seconds ago", "3 minutes ago".
/// Codes live minutes, so hours are shown as minutes; a time in the future (clock skew between
/// replicas) reads as "just now".
#[must_use]
pub fn age(elapsed: Duration) -> String {
    let secs = elapsed.as_secs();
    let plural = |n: u64, unit: &str| {
        if n == 1 {
            format!("1 {unit} ago")
        } else {
            format!("{n} {unit}s ago")
        }
    };
    if secs < 5 {
        "just now".to_owned()
    } else if secs < 60 {
        plural(secs, "second")
    } else {
        plural(secs / 60, "minute")
    }
}

/// One network of `[device_flow] allowed_networks`: an address and a prefix length, with no
/// bit set past the prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

/// Why a network does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetworkError {
    /// Not `ADDRESS/PREFIX` or `ADDRESS`.
    #[error("`{0}` is not a network: write an address and a prefix length, e.g. `10.0.0.0/8` or `2001:db8::/32`")]
    Syntax(String),
    /// The prefix is longer than the address.
    #[error("`{0}`: the prefix length must be at most {1} for this address")]
    Prefix(String, u8),
    /// Bits are set past the prefix, so the network is ambiguous.
    #[error("`{given}` has bits set past its prefix; the network is `{network}`")]
    HostBits {
        /// As written.
        given: String,
        /// The network it lies in.
        network: String,
    },
}

impl Network {
    /// `10.0.0.0/8`, `2001:db8::/32`, or one address (`192.0.2.7`, a /32 or /128). An
    /// IPv4-mapped IPv6 network is refused as ambiguous; write the IPv4 network.
    pub fn parse(text: &str) -> Result<Self, NetworkError> {
        let syntax = || NetworkError::Syntax(text.to_owned());
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| syntax())?;
        if addr.to_canonical() != addr {
            return Err(syntax());
        }
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) if !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse::<u8>().map_err(|_| syntax())?
            }
            Some(_) => return Err(syntax()),
        };
        if prefix > max {
            return Err(NetworkError::Prefix(text.to_owned(), max));
        }
        let net = Self { addr, prefix };
        let masked = net.masked(addr);
        if masked != addr {
            return Err(NetworkError::HostBits {
                given: text.to_owned(),
                network: Self {
                    addr: masked,
                    prefix,
                }
                .to_string(),
            });
        }
        Ok(net)
    }

    /// `ip` with the bits past this network's prefix cleared (of the same family).
    fn masked(self, ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V4(v4) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V4((u32::from(v4) & mask).into())
            }
            IpAddr::V6(v6) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V6((u128::from(v6) & mask).into())
            }
        }
    }

    /// Whether `ip` (IPv4-mapped addresses as IPv4) lies in this network.
    #[must_use]
    pub fn contains(self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        ip.is_ipv4() == self.addr.is_ipv4() && self.masked(ip) == self.addr
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Where device authorizations may come from: `[device_flow] allowed_networks`. Empty: from
/// anywhere.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedNetworks(pub Vec<Network>);

impl AllowedNetworks {
    /// Whether a device authorization from `addr` (as the listener reported it) is allowed. An
    /// address that does not parse is allowed only when every address is.
    #[must_use]
    pub fn allows(&self, addr: &str) -> bool {
        if self.0.is_empty() {
            return true;
        }
        parse_addr(addr).is_some_and(|ip| self.0.iter().any(|n| n.contains(ip)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_compare_as_ips() {
        for (requested, approving, want) in [
            ("192.0.2.7", "192.0.2.7", Origin::Same),
            ("::ffff:192.0.2.7", "192.0.2.7", Origin::Same),
            ("192.0.2.7", "::ffff:192.0.2.7", Origin::Same),
            ("2001:db8::1", "2001:0db8:0:0::1", Origin::Same),
            ("127.0.0.2", "127.0.0.1", Origin::Different),
            ("unknown", "unknown", Origin::Different),
            ("192.0.2.7", "unknown", Origin::Different),
            ("", "192.0.2.7", Origin::Different),
        ] {
            assert_eq!(
                compare(requested, approving),
                want,
                "{requested} vs {approving}"
            );
        }
    }

    #[test]
    fn networks_parse_strictly_and_match_mapped_addresses() {
        let n = |s: &str| Network::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        let ip = |s: &str| s.parse::<IpAddr>().unwrap_or_else(|e| panic!("{s}: {e}"));
        assert!(n("10.0.0.0/8").contains(ip("10.200.1.1")));
        assert!(n("10.0.0.0/8").contains(ip("::ffff:10.1.2.3")));
        assert!(!n("10.0.0.0/8").contains(ip("11.0.0.1")));
        assert!(n("0.0.0.0/0").contains(ip("203.0.113.9")));
        assert!(!n("0.0.0.0/0").contains(ip("2001:db8::1")));
        assert!(n("127.0.0.1").contains(ip("127.0.0.1")));
        assert!(!n("127.0.0.1/32").contains(ip("127.0.0.2")));
        assert!(n("2001:db8::/32").contains(ip("2001:db8:ffff::1")));
        assert!(n("::/0").contains(ip("::1")));
        assert_eq!(n("192.168.0.0/16").to_string(), "192.168.0.0/16");
        for bad in [
            "",
            "10.0.0.0/",
            "10.0.0.0/x",
            "10.0.0.0/+8",
            "10.0.0.0/8/8",
            "10.0.0/8",
            "example.com",
            "10.0.0.0 /8",
            "::ffff:10.0.0.0/104",
            "10.0.0.0/0008",
        ] {
            assert!(
                matches!(Network::parse(bad), Err(NetworkError::Syntax(_))),
                "{bad:?} parsed"
            );
        }
        assert_eq!(
            Network::parse("10.0.0.0/33"),
            Err(NetworkError::Prefix("10.0.0.0/33".into(), 32))
        );
        assert!(matches!(
            Network::parse("::/129"),
            Err(NetworkError::Prefix(..))
        ));
        let e = Network::parse("10.1.2.3/8").err().map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some("`10.1.2.3/8` has bits set past its prefix; the network is `10.0.0.0/8`")
        );
    }

    #[test]
    fn an_empty_list_allows_everything_else_only_its_networks() {
        let any = AllowedNetworks::default();
        assert!(any.allows("203.0.113.9") && any.allows("unknown"));
        let some = AllowedNetworks(vec![
            Network::parse("10.0.0.0/8").unwrap_or_else(|e| panic!("{e}")),
            Network::parse("127.0.0.1/32").unwrap_or_else(|e| panic!("{e}")),
        ]);
        assert!(some.allows("10.9.9.9") && some.allows("::ffff:127.0.0.1"));
        assert!(!some.allows("127.0.0.2") && !some.allows("unknown") && !some.allows(""));
    }

    #[test]
    fn ages_are_coarse() {
        for (secs, want) in [
            (0, "just now"),
            (4, "just now"),
            (5, "5 seconds ago"),
            (59, "59 seconds ago"),
            (60, "1 minute ago"),
            (119, "1 minute ago"),
            (600, "10 minutes ago"),
            (7200, "120 minutes ago"),
        ] {
            assert_eq!(age(Duration::from_secs(secs)), want, "{secs}");
        }
    }

    #[test]
    fn user_agents_are_kept_as_given_but_bounded() {
        assert_eq!(bound_user_agent(b""), None);
        assert_eq!(bound_user_agent(b"  "), None);
        assert_eq!(
            bound_user_agent(b"<b>curl/8</b> \x1b[31m").as_deref(),
            Some("<b>curl/8</b> \x1b[31m")
        );
        assert_eq!(bound_user_agent(b"a\0b").as_deref(), Some("ab"));
        assert_eq!(bound_user_agent(b"\xff ua").as_deref(), Some("\u{fffd} ua"));
        let long = "é".repeat(1000);
        let kept = bound_user_agent(long.as_bytes()).unwrap_or_default();
        assert_eq!(kept.chars().count(), MAX_USER_AGENT);
    }
}
