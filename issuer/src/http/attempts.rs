//! Attempt limits for handlers: reserve before checking, give back on success.
//!
//! Every guessable secret (user code, password, TOTP code) is checked only after an attempt
//! was reserved in each of its counters ([`crate::store::Store::reserve_attempt`], one atomic
//! statement each), so a burst of concurrent guesses on any number of replicas gets at most
//! the limit checked. A refused request is told when the window ends (`Retry-After`).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use std::time::Duration;
use time::OffsetDateTime;

use super::error::PageError;
use crate::service::state::AppState;
use crate::store::{Attempt, Store};
use crate::telemetry::metrics::Failure;

/// One counter of a limited action: its key and its limit per window.
pub(super) struct Counter<'a> {
    /// The counter's key, e.g. `password:user:jane`.
    pub(super) key: &'a str,
    /// Attempts allowed per window.
    pub(super) limit: u32,
}

/// The two counters of a guess at one account's secret (a password, a TOTP code, an
/// invitation's code): the client address, which may try four times the account's limit over
/// all accounts, then the account.
pub(super) fn address_and_account<'a>(
    addr_key: &'a str,
    account_key: &'a str,
    limit: u32,
) -> [Counter<'a>; 2] {
    [
        Counter {
            key: addr_key,
            limit: limit.saturating_mul(4),
        },
        Counter {
            key: account_key,
            limit,
        },
    ]
}

/// Attempts reserved in every counter of one request.
#[derive(Debug)]
pub(super) struct Reserved(Vec<Attempt>);

impl Reserved {
    /// The attempt succeeded: it does not count against any of its counters.
    pub(super) async fn release(&self, store: &Store) -> Result<(), crate::store::Error> {
        for a in &self.0 {
            store.release_attempt(a).await?;
        }
        Ok(())
    }
}

/// Reserves one attempt in each counter, in order. The first counter over its limit refuses
/// the request; the attempts reserved before it are given back (they were not checked).
pub(super) async fn reserve(
    store: &Store,
    now: OffsetDateTime,
    window: Duration,
    counters: &[Counter<'_>],
) -> Result<Result<Reserved, Attempt>, crate::store::Error> {
    let mut reserved = Vec::with_capacity(counters.len());
    for c in counters {
        let a = store.reserve_attempt(c.key, now, window, c.limit).await?;
        if !a.allowed {
            Reserved(reserved).release(store).await?;
            return Ok(Err(a));
        }
        reserved.push(a);
    }
    Ok(Ok(Reserved(reserved)))
}

/// "Try again in 3 minutes." for a refused attempt.
pub(super) fn try_again(a: &Attempt) -> String {
    match a.retry_minutes() {
        1 => "Try again in a minute.".to_owned(),
        n => format!("Try again in {n} minutes."),
    }
}

/// The answer to a guess its counters refused: counted as rate limited, then the page `render`
/// makes of the message (`why`, when to try again, then `then` if any) as a 429 with
/// `Retry-After`.
pub(super) fn refused(
    state: &AppState,
    a: &Attempt,
    why: &str,
    then: Option<&str>,
    render: impl FnOnce(&str) -> Result<String, PageError>,
) -> Result<Response, PageError> {
    state.metrics().failure(Failure::RateLimited);
    let mut msg = format!("{why} {}", try_again(a));
    if let Some(then) = then {
        msg.push(' ');
        msg.push_str(then);
    }
    Ok(refused_page(a, render(&msg)?))
}

/// A 429 page with `Retry-After`.
fn refused_page(a: &Attempt, html: String) -> Response {
    let mut res = (StatusCode::TOO_MANY_REQUESTS, Html(html)).into_response();
    res.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from(a.retry_after.as_secs()),
    );
    res
}
