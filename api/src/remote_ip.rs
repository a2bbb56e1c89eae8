//! `web.clientRemoteIP`: the client's address behind reverse proxies.
//!
//! Login and user-code throttling count failures per client address. Behind a reverse proxy
//! every connection comes from the proxy, so without this one client's failures would throttle
//! everybody. A forwarding header (`X-Forwarded-For`, `X-Real-IP`, `Forwarded`...) names the
//! client, but anyone can send one. So the header counts only on connections from
//! `trustedProxies`. Then the client is the right-most address in it that is not a trusted proxy
//! itself: each proxy appends the address it saw, so everything left of the last untrusted hop
//! could have been written by the client.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::ConnectInfo;
use http::{Extensions, HeaderMap, HeaderName};

/// A trusted network: an address and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl Network {
    /// `10.0.0.0/8`, `2001:db8::/32`, or a single address (`192.168.1.10`).
    fn parse(s: &str) -> Option<Self> {
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a.parse::<IpAddr>().ok()?, Some(p.parse::<u8>().ok()?)),
            None => (s.trim().parse::<IpAddr>().ok()?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(Self { addr, prefix })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                prefix_eq(u128::from(u32::from(net)) << 96, u128::from(u32::from(ip)) << 96, self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => prefix_eq(u128::from(net), u128::from(ip), self.prefix),
            _ => false,
        }
    }
}

/// Whether the first `prefix` bits of two left-aligned addresses are equal.
fn prefix_eq(a: u128, b: u128, prefix: u8) -> bool {
    prefix == 0 || (a ^ b) >> (128 - u32::from(prefix)) == 0
}

/// An IPv4 address seen as IPv4-mapped IPv6 (`::ffff:10.0.0.1`, a dual-stack socket) is the
/// IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Which header names the client, and which peers may set it.
#[derive(Debug, Clone, Default)]
pub struct RemoteIpPolicy {
    header: Option<HeaderName>,
    trusted: Vec<Network>,
}

impl RemoteIpPolicy {
    /// From `web.clientRemoteIP.header` and `.trustedProxies` (already validated as networks by
    /// the config; an invalid one is reported here as well).
    pub fn new(header: Option<&str>, trusted_proxies: &[String]) -> Result<Self, String> {
        let header = header
            .map(|h| {
                HeaderName::from_bytes(h.trim().as_bytes())
                    .map_err(|_| format!("web.clientRemoteIP.header: {h:?} is not an HTTP header name"))
            })
            .transpose()?;
        let trusted = trusted_proxies
            .iter()
            .enumerate()
            .map(|(i, s)| {
                Network::parse(s).ok_or_else(|| {
                    format!("web.clientRemoteIP.trustedProxies[{i}]: {s:?} is not an IP network such as 10.0.0.0/8")
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { header, trusted })
    }

    /// Whether a header is configured that no peer may set (no `trustedProxies`): the header is
    /// then ignored, which an operator should hear about.
    pub fn header_without_proxies(&self) -> bool {
        self.header.is_some() && self.trusted.is_empty()
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|n| n.contains(ip))
    }

    /// The client's address: the peer's, unless the peer is a trusted proxy and the header
    /// names the client (the right-most address in it that is not a trusted proxy; when every
    /// address is one, the left-most).
    pub(crate) fn client_ip(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = peer.map(canonical)?;
        let Some(name) = &self.header else { return Some(peer) };
        if !self.trusts(peer) {
            return Some(peer);
        }
        // Every hop, in order, over all lines of the header.
        let mut hops = Vec::new();
        for value in headers.get_all(name) {
            let Ok(value) = value.to_str() else { return Some(peer) };
            hops.extend(value.split(','));
        }
        let mut client = peer;
        for hop in hops.into_iter().rev() {
            // A hop that is not an address before any untrusted one: nothing left of it can be
            // believed, so the client is the last proxy that was.
            let Some(ip) = parse_hop(hop).map(canonical) else { break };
            client = ip;
            if !self.trusts(ip) {
                break;
            }
        }
        Some(client)
    }
}

/// One hop of a forwarding header: `203.0.113.7`, `203.0.113.7:1234`, `2001:db8::1`,
/// `[2001:db8::1]:1234`, or RFC 7239's `for=...` (quoted or not, other pairs ignored).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    let hop =
        match hop.split(';').map(str::trim).find_map(|p| {
            p.split_once('=').filter(|(k, _)| k.trim().eq_ignore_ascii_case("for")).map(|(_, v)| v)
        }) {
            Some(v) => v.trim().trim_matches('"'),
            None if hop.contains('=') => return None,
            None => hop,
        };
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(sa) = hop.parse::<SocketAddr>() {
        return Some(sa.ip());
    }
    hop.strip_prefix('[').and_then(|h| h.strip_suffix(']')).and_then(|h| h.parse().ok())
}

/// The client's address for a request: the policy the web router installed (none: the peer's
/// address), applied to the connection's address.
pub(crate) fn of_request(extensions: &Extensions, headers: &HeaderMap) -> String {
    let peer = extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(a)| a.ip());
    let ip = match extensions.get::<Arc<RemoteIpPolicy>>() {
        Some(policy) => policy.client_ip(peer, headers),
        None => peer.map(canonical),
    };
    ip.map(|ip| ip.to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn headers(name: &str, values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(HeaderName::from_bytes(name.as_bytes()).unwrap(), v.parse().unwrap());
        }
        h
    }

    fn xff(trusted: &[&str]) -> RemoteIpPolicy {
        let trusted: Vec<String> = trusted.iter().map(|s| (*s).to_owned()).collect();
        RemoteIpPolicy::new(Some("X-Forwarded-For"), &trusted).unwrap()
    }

    #[test]
    fn the_header_counts_only_from_trusted_proxies() {
        let p = xff(&["10.0.0.0/8"]);
        let h = headers("x-forwarded-for", &["198.51.100.7"]);
        assert_eq!(p.client_ip(Some(ip("10.1.2.3")), &h), Some(ip("198.51.100.7")));
        // A client talking to the server directly cannot name another address.
        assert_eq!(p.client_ip(Some(ip("203.0.113.1")), &h), Some(ip("203.0.113.1")));
        // No header from the proxy: the proxy.
        assert_eq!(p.client_ip(Some(ip("10.1.2.3")), &HeaderMap::new()), Some(ip("10.1.2.3")));
        // No policy: always the peer.
        let none = RemoteIpPolicy::default();
        assert_eq!(none.client_ip(Some(ip("10.1.2.3")), &h), Some(ip("10.1.2.3")));
        // A header without trusted proxies is never believed.
        let lonely = xff(&[]);
        assert!(lonely.header_without_proxies());
        assert_eq!(lonely.client_ip(Some(ip("10.1.2.3")), &h), Some(ip("10.1.2.3")));
    }

    #[test]
    fn the_client_is_the_rightmost_untrusted_hop() {
        let p = xff(&["10.0.0.0/8", "192.168.1.10"]);
        let proxy = Some(ip("10.0.0.1"));
        // What the client wrote itself (left) is ignored.
        let h = headers("x-forwarded-for", &["1.2.3.4, 198.51.100.7, 192.168.1.10"]);
        assert_eq!(p.client_ip(proxy, &h), Some(ip("198.51.100.7")));
        // Several header lines are one list, in order.
        let h = headers("x-forwarded-for", &["1.2.3.4", "198.51.100.8 , 10.9.9.9"]);
        assert_eq!(p.client_ip(proxy, &h), Some(ip("198.51.100.8")));
        // Every hop a trusted proxy: the left-most.
        let h = headers("x-forwarded-for", &["10.0.0.5, 10.0.0.6"]);
        assert_eq!(p.client_ip(proxy, &h), Some(ip("10.0.0.5")));
        // Garbage right of the client: the last proxy, never the garbage's left side.
        let h = headers("x-forwarded-for", &["198.51.100.7, not-an-ip"]);
        assert_eq!(p.client_ip(proxy, &h), proxy);
        let h = headers("x-forwarded-for", &["198.51.100.7, not-an-ip, 10.0.0.9"]);
        assert_eq!(p.client_ip(proxy, &h), Some(ip("10.0.0.9")));
        // Garbage the client wrote left of itself does not matter.
        let h = headers("x-forwarded-for", &["<script>, 198.51.100.7, 10.0.0.9"]);
        assert_eq!(p.client_ip(proxy, &h), Some(ip("198.51.100.7")));
    }

    #[test]
    fn hops_with_ports_brackets_and_rfc_7239() {
        assert_eq!(parse_hop(" 203.0.113.7:4711"), Some(ip("203.0.113.7")));
        assert_eq!(parse_hop("2001:db8::1"), Some(ip("2001:db8::1")));
        assert_eq!(parse_hop("[2001:db8::1]:443"), Some(ip("2001:db8::1")));
        assert_eq!(parse_hop("[2001:db8::1]"), Some(ip("2001:db8::1")));
        assert_eq!(parse_hop("for=192.0.2.60;proto=http;by=203.0.113.43"), Some(ip("192.0.2.60")));
        assert_eq!(parse_hop(r#"For="[2001:db8:cafe::17]:4711""#), Some(ip("2001:db8:cafe::17")));
        assert_eq!(parse_hop("proto=https"), None);
        assert_eq!(parse_hop("unknown"), None);
        let p = RemoteIpPolicy::new(Some("Forwarded"), &["10.0.0.0/8".into()]).unwrap();
        let h = headers("forwarded", &["for=198.51.100.7;proto=https, for=10.0.0.2"]);
        assert_eq!(p.client_ip(Some(ip("10.0.0.1")), &h), Some(ip("198.51.100.7")));
    }

    #[test]
    fn networks() {
        let n = |s: &str| Network::parse(s).unwrap();
        assert!(n("10.0.0.0/8").contains(ip("10.255.0.1")));
        assert!(!n("10.0.0.0/8").contains(ip("11.0.0.1")));
        assert!(n("192.168.1.10").contains(ip("192.168.1.10")));
        assert!(!n("192.168.1.10").contains(ip("192.168.1.11")));
        assert!(n("0.0.0.0/0").contains(ip("8.8.8.8")));
        assert!(n("2001:db8::/32").contains(ip("2001:db8:1::5")));
        assert!(!n("2001:db8::/32").contains(ip("2001:db9::5")));
        // A dual-stack socket reports IPv4 peers as IPv4-mapped IPv6.
        assert!(n("127.0.0.0/8").contains(ip("::ffff:127.0.0.2")));
        assert!(!n("10.0.0.0/8").contains(ip("2001:db8::1")));
        for bad in ["10.0.0.0/33", "::/129", "10.0.0/8", "example.com", "10.0.0.0/x", ""] {
            assert_eq!(Network::parse(bad), None, "{bad}");
        }
        assert!(RemoteIpPolicy::new(Some("X-Forwarded-For"), &["10.0.0.0/33".into()]).is_err());
        assert!(RemoteIpPolicy::new(Some("bad header"), &[]).is_err());
    }
}
