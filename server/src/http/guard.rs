//! The edge's gatekeepers, applied before any work: bearer tokens (hashed,
//! compared in constant time), per-client rate limits (429), and admission
//! control: a bounded number of queries at once, a bounded queue behind
//! them, and 503 with `Retry-After` beyond that.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota};
use http::{HeaderMap, header};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::{Semaphore, SemaphorePermit};

use super::error::{ApiError, Code};
use crate::config::Limits;

/// Which repositories a request may see.
#[derive(Debug, Clone)]
pub enum Scope {
    /// Every repository (an unscoped token, or no tokens configured).
    All,
    /// Those whose names match (a token limited in the token file).
    Only(globset::GlobSet),
}

impl Scope {
    /// Whether `repo` is visible.
    pub fn allows(&self, repo: &str) -> bool {
        match self {
            Scope::All => true,
            Scope::Only(set) => set.is_match(repo),
        }
    }
}

/// A set of accepted bearer tokens, kept as sha256 hashes so comparisons
/// take the same time whatever the token's length or content, each with
/// the repositories it may see.
#[derive(Clone, Default)]
pub struct Tokens {
    entries: Vec<([u8; 32], Scope)>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tokens({})", self.entries.len())
    }
}

impl Tokens {
    /// Unscoped tokens from their plain text.
    pub fn new<'a>(tokens: impl IntoIterator<Item = &'a String>) -> Self {
        Self {
            entries: tokens
                .into_iter()
                .map(|t| (Sha256::digest(t.as_bytes()).into(), Scope::All))
                .collect(),
        }
    }

    /// Search tokens, each with its scope (globs already checked when the
    /// settings were read; one that does not compile sees nothing).
    pub fn search(tokens: &[crate::config::SearchToken]) -> Self {
        Self {
            entries: tokens
                .iter()
                .map(|t| {
                    let scope = match &t.repos {
                        None => Scope::All,
                        Some(globs) => {
                            let mut set = globset::GlobSetBuilder::new();
                            for g in globs {
                                if let Ok(g) = globset::Glob::new(g) {
                                    set.add(g);
                                }
                            }
                            Scope::Only(set.build().unwrap_or_else(|_| globset::GlobSet::empty()))
                        }
                    };
                    (Sha256::digest(t.token.as_bytes()).into(), scope)
                })
                .collect(),
        }
    }

    /// Whether any token is configured.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether some token sees only some repositories.
    pub fn any_scoped(&self) -> bool {
        self.entries
            .iter()
            .any(|(_, scope)| matches!(scope, Scope::Only(_)))
    }

    /// The scope of `presented`, if it is one of the tokens. Every stored
    /// hash is compared, so timing says nothing about which one matched.
    pub fn accepts(&self, presented: &[u8]) -> Option<Scope> {
        let hash: [u8; 32] = Sha256::digest(presented).into();
        let mut found = None;
        for (i, (h, _)) in self.entries.iter().enumerate() {
            let hit: bool = h.ct_eq(&hash).into();
            if hit && found.is_none() {
                found = Some(i);
            }
        }
        found.map(|i| self.entries[i].1.clone())
    }

    /// Checks the request's `Authorization: Bearer` header; the scope of
    /// the token it carries. With no tokens configured, every request sees
    /// everything.
    pub fn check(&self, headers: &HeaderMap, what: &str) -> Result<Scope, ApiError> {
        if self.is_empty() {
            return Ok(Scope::All);
        }
        let Some(presented) = bearer(headers) else {
            return Err(ApiError {
                challenge: true,
                ..ApiError::new(
                    Code::Unauthorized,
                    format!("{what} needs a token: send `Authorization: Bearer <token>`"),
                )
            });
        };
        self.accepts(presented).ok_or_else(|| ApiError {
            challenge: true,
            ..ApiError::new(
                Code::Unauthorized,
                format!("the token is not valid for {what}"),
            )
        })
    }

    /// The scope of a request's token, if it carries a valid one (for
    /// unauthenticated endpoints that say more to a token holder).
    pub fn scope_of(&self, headers: &HeaderMap) -> Option<Scope> {
        if self.is_empty() {
            return Some(Scope::All);
        }
        self.accepts(bearer(headers)?)
    }
}

/// The token of an `Authorization: Bearer <token>` header.
fn bearer(headers: &HeaderMap) -> Option<&[u8]> {
    let value = headers.get(header::AUTHORIZATION)?.as_bytes();
    let (scheme, token) = value.split_at(value.iter().position(|&b| b == b' ')?);
    scheme
        .eq_ignore_ascii_case(b"bearer")
        .then(|| token.trim_ascii())
        .filter(|t| !t.is_empty())
}

/// Per-client token buckets (GCRA), keyed by address.
pub struct RateLimit {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    checks: AtomicU64,
}

impl std::fmt::Debug for RateLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RateLimit")
    }
}

/// Every this many checks, forget clients whose buckets are full again, so
/// the table does not grow with every address ever seen.
const RETAIN_EVERY: u64 = 4096;

impl RateLimit {
    /// `None` when the limits set no rate.
    pub fn new(limits: &Limits) -> Option<Self> {
        let rate = NonZeroU32::new(limits.rate_limit_per_second)?;
        let burst = NonZeroU32::new(limits.rate_limit_burst)
            .unwrap_or_else(|| rate.saturating_mul(NonZeroU32::MIN.saturating_add(1)));
        Some(Self {
            limiter: DefaultKeyedRateLimiter::keyed(Quota::per_second(rate).allow_burst(burst)),
            checks: AtomicU64::new(0),
        })
    }

    /// Takes one token from `client`'s bucket, or says when to come back.
    pub fn check(&self, client: IpAddr) -> Result<(), ApiError> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % RETAIN_EVERY == RETAIN_EVERY - 1 {
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
        }
        self.limiter.check_key(&client).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.limiter.clock().now());
            ApiError {
                retry_after: Some(wait.as_secs_f64().ceil().max(1.0) as u64),
                ..ApiError::new(
                    Code::RateLimited,
                    format!(
                        "too many requests from {client}; slow down (retry in {} ms)",
                        wait.as_millis().max(1)
                    ),
                )
            }
        })
    }
}

/// Admission control for queries.
#[derive(Debug)]
pub struct Admission {
    slots: Semaphore,
    queued: AtomicUsize,
    max_queued: usize,
    queue_timeout: Duration,
}

/// Leaves the queue when dropped, also when the request is abandoned.
struct InQueue<'a>(&'a AtomicUsize);

impl Drop for InQueue<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Admission {
    /// From the limits.
    pub fn new(limits: &Limits) -> Self {
        Self {
            slots: Semaphore::new(limits.max_concurrent),
            queued: AtomicUsize::new(0),
            max_queued: limits.max_queued,
            queue_timeout: limits.queue_timeout,
        }
    }

    /// A slot to run one query in: at once if one is free, after waiting in
    /// the queue if there is room, else 503.
    pub async fn enter(&self) -> Result<SemaphorePermit<'_>, ApiError> {
        if let Ok(permit) = self.slots.try_acquire() {
            return Ok(permit);
        }
        if self.queued.fetch_add(1, Ordering::AcqRel) >= self.max_queued {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            return Err(ApiError::unavailable(
                Code::Overloaded,
                "the server is at capacity and its queue is full; retry shortly",
                1,
            ));
        }
        let _in_queue = InQueue(&self.queued);
        match tokio::time::timeout(self.queue_timeout, self.slots.acquire()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(ApiError::unavailable(
                Code::Overloaded,
                format!(
                    "no query slot freed up within {} ms; retry shortly",
                    self.queue_timeout.as_millis()
                ),
                1,
            )),
        }
    }

    /// Queries waiting for a slot now.
    #[cfg(test)]
    fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderValue, StatusCode};

    fn headers(auth: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(auth).unwrap());
        h
    }

    #[test]
    fn bearer_tokens_are_checked_exactly() {
        let t = Tokens::new(&["s3cret-token-0123456789".to_string()]);
        assert!(
            t.check(&headers("Bearer s3cret-token-0123456789"), "search")
                .is_ok()
        );
        assert!(
            t.check(&headers("bearer  s3cret-token-0123456789 "), "search")
                .is_ok()
        );
        for bad in [
            "Bearer s3cret-token-012345678",
            "Basic s3cret-token-0123456789",
            "Bearer",
            "s3cret-token-0123456789",
        ] {
            let e = t.check(&headers(bad), "search").unwrap_err();
            assert_eq!(
                (e.status, e.challenge),
                (StatusCode::UNAUTHORIZED, true),
                "{bad}"
            );
        }
        assert!(t.check(&HeaderMap::new(), "search").is_err());
    }

    #[test]
    fn a_client_over_its_rate_gets_429_with_retry_after_and_others_do_not() {
        let limits = Limits {
            rate_limit_per_second: 1,
            rate_limit_burst: 2,
            ..Limits::default()
        };
        let r = RateLimit::new(&limits).unwrap();
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        assert!(r.check(a).is_ok() && r.check(a).is_ok());
        let e = r.check(a).unwrap_err();
        assert_eq!(e.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(e.retry_after.is_some_and(|s| s >= 1));
        assert!(r.check(b).is_ok(), "another client has its own bucket");
        assert!(
            RateLimit::new(&Limits::default()).is_none(),
            "off by default"
        );
    }

    #[tokio::test]
    async fn admission_queues_then_refuses_with_503() {
        let limits = Limits {
            max_concurrent: 1,
            max_queued: 1,
            queue_timeout: Duration::from_millis(100),
            ..Limits::default()
        };
        let a = Admission::new(&limits);
        let held = a.enter().await.unwrap();
        // One may wait; it times out because the slot is never released.
        let waiting = a.enter();
        let refused = async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            assert_eq!(a.queued(), 1);
            a.enter().await
        };
        let (w, r) = tokio::join!(waiting, refused);
        let (w, r) = (w.unwrap_err(), r.unwrap_err());
        assert_eq!(
            (w.status, r.status),
            (
                StatusCode::SERVICE_UNAVAILABLE,
                StatusCode::SERVICE_UNAVAILABLE
            )
        );
        assert!(w.message.contains("within") && r.message.contains("queue is full"));
        assert_eq!(a.queued(), 0);
        drop(held);
        assert!(a.enter().await.is_ok());
    }
}
