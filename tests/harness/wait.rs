//! Waiting for a condition with a deadline, the only way the harness waits for anything.
//!
//! A fixed `sleep` is either too short on a loaded CI machine or wastes time everywhere else;
//! polling a real condition (a port answers, a name is owned on the bus, the API server accepts a
//! token) is both fast and reliable, and its failure message says what was last observed.

use std::time::{Duration, Instant};

/// What one look at the condition found.
#[derive(Debug)]
pub enum Check<T> {
    /// The condition holds; stop waiting.
    Done(T),
    /// Not yet; the text says what was observed, for the timeout message.
    Retry(String),
    /// It can never hold (a process died): stop waiting and fail with this text.
    Fail(String),
}

/// Calls `check` until it returns [`Check::Done`], backing off from 50 ms to 500 ms between
/// looks. Returns the error text when `check` fails or `timeout` passes.
pub fn until<T>(
    what: &str,
    timeout: Duration,
    check: impl FnMut() -> Check<T>,
) -> Result<T, String> {
    poll(
        what,
        timeout,
        Duration::from_millis(50),
        Duration::from_millis(500),
        check,
    )
}

/// Like [`until`], but looks exactly every `interval` (a protocol may demand it, as RFC 8628
/// does for polling the token endpoint).
pub fn every<T>(
    what: &str,
    timeout: Duration,
    interval: Duration,
    check: impl FnMut() -> Check<T>,
) -> Result<T, String> {
    poll(what, timeout, interval, interval, check)
}

fn poll<T>(
    what: &str,
    timeout: Duration,
    first_pause: Duration,
    max_pause: Duration,
    mut check: impl FnMut() -> Check<T>,
) -> Result<T, String> {
    let deadline = Instant::now() + timeout;
    let mut pause = first_pause;
    loop {
        match check() {
            Check::Done(v) => return Ok(v),
            Check::Fail(why) => return Err(format!("{what}: {why}")),
            Check::Retry(last) => {
                let now = Instant::now();
                if now >= deadline {
                    return Err(format!(
                        "{what}: not reached within {timeout:?}; last observed: {last}"
                    ));
                }
                // Waiting between two looks at a condition, never instead of looking.
                std::thread::sleep(pause.min(deadline - now));
                pause = (pause * 2).min(max_pause);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_the_value_once_the_condition_holds() {
        let mut n = 0;
        let got = until("counter reaches 3", Duration::from_secs(5), || {
            n += 1;
            if n == 3 {
                Check::Done(n)
            } else {
                Check::Retry(format!("n = {n}"))
            }
        });
        assert_eq!(got, Ok(3));
    }

    #[test]
    fn timeout_names_the_condition_and_the_last_observation() {
        let got: Result<(), String> =
            until("the moon turns blue", Duration::from_millis(120), || {
                Check::Retry("still grey".into())
            });
        let err = got.err().unwrap_or_default();
        assert!(
            err.contains("the moon turns blue") && err.contains("still grey"),
            "{err}"
        );
    }

    #[test]
    fn failure_stops_at_once() {
        let got: Result<(), String> = until("x", Duration::from_secs(60), || {
            Check::Fail("process died".into())
        });
        assert_eq!(got, Err("x: process died".to_owned()));
    }
}
