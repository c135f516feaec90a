//! What a repeated call means. A caller that asks again for the token it already received
//! (`handout` recognises it) is either kubectl after a 401, whose token must be replaced at
//! once, or a client that runs the plugin for every configuration load (the official Python
//! client does, without caching), whose token still works and must not be rotated. The caller's
//! pid cannot tell them apart; the API server can: before refreshing, the plugin asks it
//! whether it still accepts the token (`issuer::api_server`), and refreshes only when it does
//! not, or when it cannot say.
//!
//! Only the repeated call asks: a first hand-out stays a cache read with no network.

use credential_shared::exec_credential::ExecCluster;

use crate::base::secret::Secret;
use crate::cache::Entry;
use crate::issuer::api_server::{ApiServer, NoEvidence, Verdict};

/// Asks whether a server accepts a token (a trait, so that the decision is tested without one).
pub(crate) trait TokenCheck {
    /// What the server `cluster` names says about `token`.
    fn verdict(&self, cluster: &ExecCluster, token: &Secret) -> Verdict;
}

/// The real check: a `SelfSubjectAccessReview` at the API server the caller named.
pub(crate) struct AskApiServer;

impl TokenCheck for AskApiServer {
    fn verdict(&self, cluster: &ExecCluster, token: &Secret) -> Verdict {
        match ApiServer::new(cluster) {
            Ok(server) => server.review(token),
            Err(why) => Verdict::Unknown(why),
        }
    }
}

/// What `get` does on a repeated call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Repeated {
    /// The server accepts the token: hand the same one out again (a client that re-runs the
    /// plugin), no refresh.
    HandOutAgain,
    /// Refresh, as kubectl's retry after a 401 needs.
    Refresh(Why),
}

/// Why a repeated call refreshes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Why {
    /// The token is in its last moments (past `Entry::refresh_at`): replaced anyway.
    Expiring,
    /// The API server answered 401 for it.
    Refused,
    /// No evidence (no cluster information, no CA data, unreachable, another answer): what the
    /// plugin did before it asked, so that kubectl's retry still recovers at once.
    NoEvidence(NoEvidence),
}

/// Decides a repeated call for `entry`'s token, at `now`, from what `check` learns from the API
/// server in `cluster` (the caller's `KUBERNETES_EXEC_INFO`). The server is asked only for a
/// token that is still fresh and only when the caller named a server.
pub(crate) fn decide(
    cluster: Option<&ExecCluster>,
    entry: &Entry,
    now: i64,
    check: &dyn TokenCheck,
) -> Repeated {
    if !entry.is_fresh(now) {
        return Repeated::Refresh(Why::Expiring);
    }
    let Some(cluster) = cluster else {
        return Repeated::Refresh(Why::NoEvidence(NoEvidence::NoClusterInfo));
    };
    match check.verdict(cluster, &entry.access_token) {
        Verdict::Accepted => Repeated::HandOutAgain,
        Verdict::Refused => Repeated::Refresh(Why::Refused),
        Verdict::Unknown(why) => Repeated::Refresh(Why::NoEvidence(why)),
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;
    use crate::flow::session::tests::{entry, NOW};

    /// Answers `verdict`, counting the questions.
    struct Fake {
        verdict: Verdict,
        asked: Cell<u32>,
    }

    impl TokenCheck for Fake {
        fn verdict(&self, _cluster: &ExecCluster, _token: &Secret) -> Verdict {
            self.asked.set(self.asked.get() + 1);
            self.verdict
        }
    }

    /// One row: the caller's cluster info, the token's expiry, the server's answer; the
    /// decision and whether the server was asked.
    fn check(
        cluster: Option<&ExecCluster>,
        exp: i64,
        verdict: Verdict,
        want: Repeated,
        asked: bool,
    ) {
        let fake = Fake {
            verdict,
            asked: Cell::new(0),
        };
        let got = decide(cluster, &entry(exp, Some("RT"), None), NOW, &fake);
        assert_eq!(got, want, "{cluster:?} exp={exp} {verdict:?}");
        assert_eq!(
            fake.asked.get(),
            u32::from(asked),
            "{cluster:?} {verdict:?}"
        );
    }

    #[test]
    fn a_repeated_call_refreshes_unless_the_api_server_still_accepts_the_token() {
        let cluster = ExecCluster {
            server: "https://api:6443".to_owned(),
            certificate_authority_data: Some("Q0E=".to_owned()),
            tls_server_name: None,
        };
        let fresh = NOW + 600;
        let unknown = |why| Verdict::Unknown(why);
        let refresh_unknown = |why| Repeated::Refresh(Why::NoEvidence(why));
        // The Python client re-running the plugin: the token works, hand it out again.
        check(
            Some(&cluster),
            fresh,
            Verdict::Accepted,
            Repeated::HandOutAgain,
            true,
        );
        // kubectl's retry after a 401: refresh.
        check(
            Some(&cluster),
            fresh,
            Verdict::Refused,
            Repeated::Refresh(Why::Refused),
            true,
        );
        // No evidence: refresh, as before the question was asked.
        for why in [
            NoEvidence::NoCa,
            NoEvidence::BadCa,
            NoEvidence::NotHttps,
            NoEvidence::TlsServerName,
            NoEvidence::Unreachable,
            NoEvidence::OtherAnswer(403),
            NoEvidence::OtherAnswer(500),
            NoEvidence::OtherAnswer(302),
        ] {
            check(
                Some(&cluster),
                fresh,
                unknown(why),
                refresh_unknown(why),
                true,
            );
        }
        // No cluster info (`provideClusterInfo` off): nobody to ask.
        check(
            None,
            fresh,
            Verdict::Accepted,
            refresh_unknown(NoEvidence::NoClusterInfo),
            false,
        );
        // A token in its last moments is replaced whatever the server would say (the margin
        // of a 10-minute token is 60 s).
        for exp in [NOW + 60, NOW + 1, NOW - 1] {
            check(
                Some(&cluster),
                exp,
                Verdict::Accepted,
                Repeated::Refresh(Why::Expiring),
                false,
            );
        }
    }
}
