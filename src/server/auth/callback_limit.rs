//! How many sign-in callbacks one client address may send: each one can cost a call to the
//! provider's token endpoint (whose quota is the whole user pool's, and Cognito throttles it),
//! so nobody outside may spend it for everyone. Counts per address in fixed one-minute
//! windows; never looks at what the callback carries.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::HeaderMap;
use ipnet::IpNet;
use tokio::time::Instant;

use crate::proxy::ClientInfo;

/// Callbacks one address may send per `WINDOW`. A person signs in a few times an hour; a
/// whole office behind one NAT at nine in the morning stays well under it.
const CALLBACKS_PER_WINDOW: u32 = 30;
const WINDOW: Duration = Duration::from_secs(60);

/// Callback counts by client address, forgotten a window after the first one.
pub(super) struct CallbackLimit {
    windows: moka::sync::Cache<IpAddr, Arc<Window>>,
}

struct Window {
    started: Instant,
    count: AtomicU32,
}

impl CallbackLimit {
    pub(super) fn new() -> CallbackLimit {
        CallbackLimit {
            windows: moka::sync::Cache::builder()
                // Under a flood of addresses the oldest counts go first: some slip through,
                // the table does not grow.
                .max_capacity(100_000)
                .time_to_live(WINDOW)
                .build(),
        }
    }

    /// Counts one callback from `address`: `Err(retry_after)` when it is one too many.
    pub(super) fn admit(&self, address: IpAddr) -> Result<(), Duration> {
        let window = self.windows.get_with(limited_key(address), || {
            Arc::new(Window {
                started: Instant::now(),
                count: AtomicU32::new(0),
            })
        });
        if window.count.fetch_add(1, Ordering::Relaxed) < CALLBACKS_PER_WINDOW {
            return Ok(());
        }
        let left = WINDOW.saturating_sub(window.started.elapsed());
        Err(left.max(Duration::from_secs(1)))
    }
}

/// The address a callback is counted against: the peer, or, when the peer is a trusted proxy,
/// the nearest address in X-Forwarded-For that is not one (all users behind a load balancer
/// would otherwise share one count), when `server.trusted_forwarded_headers` lists it.
pub(super) fn client_address(
    client: &ClientInfo,
    headers: &HeaderMap,
    trusted: &[IpNet],
) -> IpAddr {
    if !client.believe.for_ {
        return client.ip;
    }
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect::<Vec<_>>();
    forwarded
        .iter()
        .rev()
        .filter_map(|a| a.trim().parse::<IpAddr>().ok())
        .map(|a| a.to_canonical())
        .find(|a| !trusted.iter().any(|net| net.contains(a)))
        .unwrap_or(client.ip)
}

/// One IPv6 host has a /64 to pick addresses from: it is counted as one.
fn limited_key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_its_callbacks_per_minute_and_then_a_time_to_wait() {
        let limit = CallbackLimit::new();
        let a: IpAddr = "192.0.2.7".parse().unwrap();
        for _ in 0..CALLBACKS_PER_WINDOW {
            assert!(limit.admit(a).is_ok());
        }
        let wait = limit.admit(a).expect_err("one too many");
        assert!(wait <= WINDOW && wait >= Duration::from_secs(1));
        assert!(
            limit.admit("192.0.2.8".parse().unwrap()).is_ok(),
            "another address"
        );
        // Addresses of one IPv6 /64 share a count.
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        for _ in 0..CALLBACKS_PER_WINDOW {
            assert!(limit.admit(v6).is_ok());
        }
        assert!(limit.admit("2001:db8::ffff".parse().unwrap()).is_err());
    }

    #[test]
    fn behind_a_trusted_proxy_the_forwarded_client_is_counted() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            "203.0.113.5, 198.51.100.9, 10.1.1.1".parse().unwrap(),
        );
        let proxy = ClientInfo::new(
            "10.0.0.2".parse().unwrap(),
            true,
            false,
            crate::config::ForwardedTrust::DEFAULT,
        );
        assert_eq!(
            client_address(&proxy, &h, &trusted),
            "198.51.100.9".parse::<IpAddr>().unwrap(),
            "the nearest untrusted address: the ones before it are the client's to write"
        );
        let direct = ClientInfo::new(
            "192.0.2.1".parse().unwrap(),
            false,
            false,
            crate::config::ForwardedTrust::DEFAULT,
        );
        assert_eq!(
            client_address(&direct, &h, &trusted),
            "192.0.2.1".parse::<IpAddr>().unwrap(),
            "an untrusted peer's X-Forwarded-For is not believed"
        );
    }
}
