//! Where an instance's address points, for the front ends that must say it in another form
//! (DNS records, Prometheus targets, Consul's `Address` and `Port`).

use std::net::IpAddr;

/// The host of an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// An IP address.
    Ip(IpAddr),
    /// A host name, as written (`db.internal`).
    Name(String),
}

/// The host and port of an instance's address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The scheme, lowercase, when the address has one (`http`).
    pub scheme: Option<String>,
    /// The host.
    pub host: Host,
    /// The port, written or the scheme's default.
    pub port: u16,
}

impl Endpoint {
    /// The endpoint of an address (`http://10.0.0.5:8080`, `10.0.0.5:8080`, `db.internal:5432`,
    /// `https://api.example.com`, `ws://[::1]:7700/v1`); the port from the scheme when none is
    /// written. `None` for an address with no port to tell, or no host.
    pub fn of(address: &str) -> Option<Endpoint> {
        let (scheme, rest) = match address.split_once("://") {
            Some((s, r)) => (Some(s.to_ascii_lowercase()), r),
            None => (None, address),
        };
        let authority = rest.split(['/', '?', '#']).next()?;
        let authority = authority.rsplit('@').next()?;
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6.split_once(']')?;
            (h, after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) if !h.contains(':') => (h, Some(p)),
                // A bare IPv6 address has colons and no port.
                Some(_) | None => (authority, None),
            }
        };
        let port = match port {
            Some(p) => p.parse().ok()?,
            None => match scheme.as_deref() {
                Some("http" | "ws") => 80,
                Some("https" | "wss") => 443,
                _ => return None,
            },
        };
        if host.is_empty() {
            return None;
        }
        let host = match host.parse::<IpAddr>() {
            Ok(ip) => Host::Ip(ip),
            Err(_) => Host::Name(host.to_string()),
        };
        Some(Endpoint { scheme, host, port })
    }

    /// `host:port`, with an IPv6 host in brackets.
    pub fn host_port(&self) -> String {
        match &self.host {
            Host::Ip(IpAddr::V6(v6)) => format!("[{v6}]:{}", self.port),
            Host::Ip(ip) => format!("{ip}:{}", self.port),
            Host::Name(n) => format!("{n}:{}", self.port),
        }
    }

    /// The host alone, as text.
    pub fn host_text(&self) -> String {
        match &self.host {
            Host::Ip(ip) => ip.to_string(),
            Host::Name(n) => n.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hp(a: &str) -> Option<String> {
        Endpoint::of(a).map(|e| e.host_port())
    }

    #[test]
    fn addresses_give_host_and_port_with_the_schemes_default() {
        assert_eq!(hp("http://10.0.0.5:8080"), Some("10.0.0.5:8080".into()));
        assert_eq!(hp("10.0.0.5:9000"), Some("10.0.0.5:9000".into()));
        assert_eq!(hp("https://10.0.0.5/x"), Some("10.0.0.5:443".into()));
        assert_eq!(hp("ws://[::1]:7700/v1"), Some("[::1]:7700".into()));
        assert_eq!(hp("http://user@10.1.2.3"), Some("10.1.2.3:80".into()));
        assert_eq!(hp("db.internal:5432"), Some("db.internal:5432".into()));
        let e = Endpoint::of("HTTPS://api.example.com").unwrap();
        assert_eq!(e.scheme.as_deref(), Some("https"));
        assert_eq!(e.host, Host::Name("api.example.com".into()));
        assert_eq!(hp("10.0.0.5"), None, "no port, no scheme");
        assert_eq!(hp("http://10.0.0.5:99999"), None);
        assert_eq!(hp("http://:80"), None);
        assert_eq!(hp("fd00::1"), None);
    }
}
