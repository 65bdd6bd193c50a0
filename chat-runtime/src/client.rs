//! Who is calling, for limits per client address: the peer's address, or —
//! when the peer is a trusted proxy — the address it says it forwarded for
//! (`X-Forwarded-For`, the rightmost entry that is not itself a trusted
//! proxy: entries further left are the client's own claims). IPv6 addresses
//! count per /64, the block one host is usually given. Also [`Counter`]:
//! what each key (a user, an address) holds open, capped.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};

use ipnet::IpNet;

/// The address a client is counted under (the server puts it in each
/// request's extensions).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientAddr(IpAddr);

impl ClientAddr {
    /// A request that came from no socket (served in-process).
    pub const UNKNOWN: Self = Self(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));

    /// The client behind `peer`: itself, unless it is one of `trusted`, then
    /// the nearest hop of `forwarded_for` (an `X-Forwarded-For` value) that
    /// is not trusted. Unreadable hops end the walk.
    pub fn resolve(peer: IpAddr, forwarded_for: Option<&str>, trusted: &[IpNet]) -> Self {
        let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
        let mut client = canonical(peer);
        if is_trusted(&client) {
            for hop in forwarded_for.unwrap_or("").rsplit(',') {
                let Ok(ip) = hop.trim().parse::<IpAddr>() else {
                    break;
                };
                client = canonical(ip);
                if !is_trusted(&client) {
                    break;
                }
            }
        }
        Self(match client {
            IpAddr::V6(v6) => IpAddr::V6(per_64(v6)),
            v4 => v4,
        })
    }
}

impl std::fmt::Display for ClientAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn per_64(ip: Ipv6Addr) -> Ipv6Addr {
    Ipv6Addr::from(ip.to_bits() & !((1u128 << 64) - 1))
}

/// How many of something each key holds open, at most `cap` each.
#[derive(Debug)]
pub struct Counter<K> {
    open: Mutex<HashMap<K, usize>>,
    cap: usize,
}

/// One unit a key holds; given back on drop.
#[derive(Debug)]
pub struct Held<K: Hash + Eq>(Arc<Counter<K>>, K);

impl<K: Hash + Eq + Clone> Counter<K> {
    pub fn new(cap: usize) -> Arc<Self> {
        Arc::new(Self {
            open: Mutex::default(),
            cap,
        })
    }

    /// One more for `key`, or `None` when it holds `cap` already.
    pub fn take(self: &Arc<Self>, key: K) -> Option<Held<K>> {
        let mut open = self.open.lock().expect("counter lock");
        let n = open.entry(key.clone()).or_insert(0);
        if *n >= self.cap {
            if *n == 0 {
                open.remove(&key);
            }
            return None;
        }
        *n += 1;
        Some(Held(self.clone(), key))
    }

    /// Keys holding anything (each entry is removed at zero).
    #[cfg(test)]
    fn keys(&self) -> usize {
        self.open.lock().expect("counter lock").len()
    }
}

impl<K: Hash + Eq> Drop for Held<K> {
    fn drop(&mut self) {
        let mut open = self.0.open.lock().expect("counter lock");
        if let Some(n) = open.get_mut(&self.1) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let c = ClientAddr::resolve(ip("203.0.113.7"), Some("1.2.3.4"), &nets(&["10.0.0.0/8"]));
        assert_eq!(c.to_string(), "203.0.113.7");
    }

    #[test]
    fn behind_trusted_proxies_the_nearest_untrusted_hop_is_the_client() {
        let trusted = nets(&["10.0.0.0/8"]);
        // The client claimed 6.6.6.6 itself; the ingress saw 198.51.100.9.
        let xff = "6.6.6.6, 198.51.100.9, 10.1.2.3";
        let c = ClientAddr::resolve(ip("10.0.0.5"), Some(xff), &trusted);
        assert_eq!(c.to_string(), "198.51.100.9");
        // Nothing forwarded: the proxy itself.
        let c = ClientAddr::resolve(ip("10.0.0.5"), None, &trusted);
        assert_eq!(c.to_string(), "10.0.0.5");
        // Garbage ends the walk at the last readable hop.
        let c = ClientAddr::resolve(ip("10.0.0.5"), Some("junk, 10.9.9.9"), &trusted);
        assert_eq!(c.to_string(), "10.9.9.9");
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let a = ClientAddr::resolve(ip("2001:db8:1:2::1"), None, &[]);
        let b = ClientAddr::resolve(ip("2001:db8:1:2:ffff::9"), None, &[]);
        assert_eq!(a, b);
        assert_ne!(a, ClientAddr::resolve(ip("2001:db8:1:3::1"), None, &[]));
        let mapped = ClientAddr::resolve(ip("::ffff:192.0.2.1"), None, &[]);
        assert_eq!(mapped.to_string(), "192.0.2.1");
    }

    #[test]
    fn a_counter_caps_each_key_and_forgets_keys_at_zero() {
        let counter = Counter::new(2);
        let a1 = counter.take("a").unwrap();
        let _a2 = counter.take("a").unwrap();
        assert!(counter.take("a").is_none());
        let b = counter.take("b").unwrap();
        drop(a1);
        assert!(counter.take("a").is_some(), "a slot came back");
        drop(b);
        assert_eq!(counter.keys(), 1);
        let none = Counter::new(0);
        assert!(none.take("x").is_none());
        assert_eq!(none.keys(), 0, "a refusal leaves nothing behind");
    }
}
