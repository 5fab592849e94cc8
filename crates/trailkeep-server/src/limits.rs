//! Rate limits: a token bucket per API key and one per client address, so that one runaway integration
//! cannot take the service from everyone else, and one source cannot try keys without end.
//!
//! The address bucket is checked for every request (before authentication, so unknown and revoked keys
//! spend it too) by the [`limit_by_address`] middleware; the key bucket is checked by the `Principal`
//! extractor once it knows which key is calling. Liveness, readiness and metrics are never limited. A
//! request over a limit answers 429 `rate_limited` with `Retry-After` in whole seconds and is counted in
//! `trailkeep_rate_limited_total{limit="key"|"ip"}`.
//!
//! The buckets are `governor`'s keyed GCRA limiters (a token bucket expressed as a theoretical arrival
//! time, one atomic word per key) in a `DashMap`. The client address is the TCP peer: `X-Forwarded-For`
//! is not trusted, so behind a reverse proxy every request shares the proxy's bucket. IPv6 clients are
//! grouped by their /64, the block one subscriber usually holds, so that walking through addresses does
//! not buy fresh buckets.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::{Arc, Weak};
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::AppState;
use crate::error::ApiError;

/// Paths that answer whatever the load: probes and scrapes must not be throttled into failing.
const EXEMPT_PATHS: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// How often buckets that have refilled completely are dropped, which bounds the memory a flood of
/// distinct addresses can take.
const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// One limit: a sustained rate and the burst allowed above it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests a second, refilled continuously.
    pub per_second: NonZeroU32,
    /// How many requests may arrive at once after a quiet spell: the bucket's size.
    pub burst: NonZeroU32,
}

impl RateLimit {
    fn quota(self) -> Quota {
        Quota::per_second(self.per_second).allow_burst(self.burst)
    }
}

/// Which bucket ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Which {
    Key,
    Ip,
}

impl Which {
    fn label(self) -> &'static str {
        match self {
            Which::Key => "key",
            Which::Ip => "ip",
        }
    }
}

struct Buckets<K: std::hash::Hash + Eq + Clone> {
    limiter: DefaultKeyedRateLimiter<K>,
    limit: RateLimit,
    which: Which,
}

impl<K: std::hash::Hash + Eq + Clone> Buckets<K> {
    fn new(limit: RateLimit, which: Which) -> Buckets<K> {
        Buckets { limiter: RateLimiter::dashmap(limit.quota()), limit, which }
    }

    /// Takes a token from `key`'s bucket, or says how long until one is there, in whole seconds (at least
    /// one, as `Retry-After` counts).
    fn take(&self, key: &K) -> Result<(), Duration> {
        self.limiter
            .check_key(key)
            .map_err(|not_until| whole_seconds(not_until.wait_time_from(self.limiter.clock().now())))
    }

    fn refused(&self, retry_after: Duration) -> ApiError {
        metrics::counter!("trailkeep_rate_limited_total", "limit" => self.which.label()).increment(1);
        let whose = match self.which {
            Which::Key => "this API key",
            Which::Ip => "this client address",
        };
        let RateLimit { per_second, burst } = self.limit;
        ApiError::rate_limited(
            format!(
                "{whose} is over its rate limit of {per_second} requests a second (bursts of {burst}); retry in {} s",
                retry_after.as_secs()
            ),
            retry_after,
        )
    }
}

/// The service's buckets; a limit that is off has none.
pub struct RateLimits {
    per_key: Option<Buckets<String>>,
    per_ip: Option<Buckets<IpAddr>>,
}

impl RateLimits {
    pub fn new(per_key: Option<RateLimit>, per_ip: Option<RateLimit>) -> RateLimits {
        // Registered at zero, so that the series exists (and `rate()` works) before the first refusal.
        for which in [Which::Key, Which::Ip] {
            metrics::counter!("trailkeep_rate_limited_total", "limit" => which.label()).increment(0);
        }
        RateLimits {
            per_key: per_key.map(|l| Buckets::new(l, Which::Key)),
            per_ip: per_ip.map(|l| Buckets::new(l, Which::Ip)),
        }
    }

    /// Spends one request of the key `key_id` (its id, never its secret).
    pub fn check_key(&self, key_id: &str) -> Result<(), ApiError> {
        let Some(buckets) = &self.per_key else { return Ok(()) };
        buckets.take(&key_id.to_owned()).map_err(|retry_after| {
            tracing::debug!(key_id, retry_after = retry_after.as_secs(), "rate limited by key");
            buckets.refused(retry_after)
        })
    }

    /// Spends one request of the client at `ip`.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), ApiError> {
        let Some(buckets) = &self.per_ip else { return Ok(()) };
        let client = client_of(ip);
        buckets.take(&client).map_err(|retry_after| {
            tracing::debug!(client = %client, retry_after = retry_after.as_secs(), "rate limited by address");
            buckets.refused(retry_after)
        })
    }

    /// Drops buckets that are full again: they hold nothing a new bucket would not.
    pub fn forget_idle(&self) {
        if let Some(b) = &self.per_key {
            b.limiter.retain_recent();
            b.limiter.shrink_to_fit();
        }
        if let Some(b) = &self.per_ip {
            b.limiter.retain_recent();
            b.limiter.shrink_to_fit();
        }
    }
}

/// `wait` rounded up to whole seconds, at least one: a client that waits what `Retry-After` says finds a
/// token.
fn whole_seconds(wait: Duration) -> Duration {
    Duration::from_secs((wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1))
}

/// The bucket an address spends from: an IPv4 address itself (also when mapped into IPv6), an IPv6
/// address's /64.
fn client_of(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

/// Drops idle buckets every few seconds for as long as `limits` is in use.
pub fn forget_idle_buckets(limits: &Arc<RateLimits>) {
    let limits: Weak<RateLimits> = Arc::downgrade(limits);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SWEEP_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(limits) = limits.upgrade() else { return };
            limits.forget_idle();
        }
    });
}

/// Applies the per-address limit to every request but the health endpoints. A request that arrived
/// without a peer address (a router driven in-process, without `serve`) is not limited by address.
pub async fn limit_by_address(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    if !EXEMPT_PATHS.contains(&request.uri().path())
        && let Some(ConnectInfo(peer)) = request.extensions().get::<ConnectInfo<SocketAddr>>()
        && let Err(refused) = state.rate_limits.check_ip(peer.ip())
    {
        return refused.into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;

    use super::*;

    fn limit(per_second: u32, burst: u32) -> Option<RateLimit> {
        Some(RateLimit { per_second: NonZeroU32::new(per_second).unwrap(), burst: NonZeroU32::new(burst).unwrap() })
    }

    #[test]
    fn a_key_gets_its_burst_then_429_with_a_whole_second_retry_after() {
        let limits = RateLimits::new(limit(1, 3), None);
        for _ in 0..3 {
            limits.check_key("key-a").unwrap();
        }
        let refused = limits.check_key("key-a").unwrap_err();
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(refused.code, "rate_limited");
        assert_eq!(refused.retry_after, Some(Duration::from_secs(1)));
        assert!(refused.message.contains("API key"), "{}", refused.message);
        limits.check_key("key-b").unwrap();
    }

    #[test]
    fn retry_after_is_whole_seconds_rounded_up_and_at_least_one() {
        assert_eq!(whole_seconds(Duration::ZERO), Duration::from_secs(1));
        assert_eq!(whole_seconds(Duration::from_millis(200)), Duration::from_secs(1));
        assert_eq!(whole_seconds(Duration::from_millis(1_200)), Duration::from_secs(2));
        assert_eq!(whole_seconds(Duration::from_secs(3)), Duration::from_secs(3));
    }

    #[test]
    fn an_address_over_its_burst_is_refused_whatever_the_key() {
        let limits = RateLimits::new(None, limit(1, 2));
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        limits.check_ip(ip).unwrap();
        limits.check_ip(ip).unwrap();
        let refused = limits.check_ip(ip).unwrap_err();
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(refused.message.contains("client address"), "{}", refused.message);
        limits.check_ip("192.0.2.8".parse().unwrap()).unwrap();
    }

    #[test]
    fn a_limit_that_is_off_never_refuses() {
        let limits = RateLimits::new(None, None);
        for _ in 0..10_000 {
            limits.check_key("key").unwrap();
            limits.check_ip(IpAddr::from([127, 0, 0, 1])).unwrap();
        }
    }

    #[test]
    fn ipv6_clients_share_a_bucket_per_64_and_mapped_ipv4_is_ipv4() {
        let limits = RateLimits::new(None, limit(1, 1));
        limits.check_ip("2001:db8:1:2::1".parse().unwrap()).unwrap();
        assert!(limits.check_ip("2001:db8:1:2:ffff::9".parse().unwrap()).is_err());
        limits.check_ip("2001:db8:1:3::1".parse().unwrap()).unwrap();
        limits.check_ip("198.51.100.1".parse().unwrap()).unwrap();
        assert!(limits.check_ip("::ffff:198.51.100.1".parse().unwrap()).is_err());
    }

    #[test]
    fn idle_buckets_are_forgotten() {
        let limits = RateLimits::new(None, limit(1_000_000, 1));
        limits.check_ip("192.0.2.1".parse().unwrap()).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        limits.forget_idle();
        assert!(limits.per_ip.as_ref().unwrap().limiter.is_empty());
    }
}
