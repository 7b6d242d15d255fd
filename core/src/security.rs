//! Who may do what: network policies, name ownership, the conditional filter, browser origins
//! and rate limits. Every check the registry makes about a caller lives here, so HTTP and
//! WebSocket apply exactly the same rules.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::error::{Error, Result};
use crate::model::{NetworkName, ServiceName};

/// How a network decides who may join it. Serialized (`{"policy": "open" | "token" | "keys",
/// ...}`) as the store keeps it.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "policy")]
pub enum Policy {
    /// Anyone may read and write.
    #[default]
    Open,
    /// Every request (HTTP or WebSocket hello) must carry one of these tokens.
    Token {
        /// Accepted join tokens.
        tokens: Vec<String>,
    },
    /// Only sessions signed by an allow-listed key may join; each key may be bound to the
    /// service names it may register. HTTP callers need one of `tokens` (if any).
    Keys {
        /// Allowed node keys.
        keys: Vec<KeyGrant>,
        /// Tokens for HTTP access (reads and writes) to this network.
        tokens: Vec<String>,
    },
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Tokens are secrets: count them, never print them.
        match self {
            Policy::Open => write!(f, "Open"),
            Policy::Token { tokens } => write!(f, "Token({} tokens)", tokens.len()),
            Policy::Keys { keys, tokens } => write!(f, "Keys({keys:?}, {} tokens)", tokens.len()),
        }
    }
}

impl Policy {
    /// The policy's name on the wire: `open`, `token` or `keys`.
    pub fn name(&self) -> &'static str {
        match self {
            Policy::Open => "open",
            Policy::Token { .. } => "token",
            Policy::Keys { .. } => "keys",
        }
    }
}

/// One allow-listed key of a `keys` network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyGrant {
    /// Ed25519 public key, standard base64.
    pub public_key: String,
    /// Service names this key may register; absent means any name not claimed by another key.
    #[serde(default)]
    pub services: Option<Vec<ServiceName>>,
}

/// A network a registry serves, with its policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkConfig {
    /// The network's name.
    pub name: NetworkName,
    /// Who may join it.
    pub policy: Policy,
}

impl NetworkConfig {
    /// An open network.
    pub fn open(name: &str) -> Result<NetworkConfig> {
        Ok(NetworkConfig {
            name: NetworkName::new(name)?,
            policy: Policy::Open,
        })
    }
}

/// Compares a presented token with the accepted ones in constant time: both sides are hashed
/// first, so neither how much of a token matched nor its length shows in the time taken.
pub fn token_matches(accepted: &[String], presented: &str) -> bool {
    use sha2::{Digest, Sha256};
    let p = Sha256::digest(presented.as_bytes());
    let mut found = 0u8;
    for t in accepted {
        let a = Sha256::digest(t.as_bytes());
        found |= u8::from(bool::from(a.as_slice().ct_eq(p.as_slice())));
    }
    found == 1
}

/// What the conditional filter is asked about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FilterKind {
    /// A WebSocket session is being opened.
    Handshake,
    /// An instance is being registered (over HTTP or a session).
    Register,
    /// A message is being published on a channel.
    Publish,
}

/// Everything the filter may base its decision on.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FilterRequest {
    /// Handshake or registration.
    pub kind: FilterKind,
    /// The network.
    pub network: String,
    /// The node's public key (sessions only).
    pub public_key: Option<String>,
    /// The browser origin, if the request carried one.
    pub origin: Option<String>,
    /// The caller's address.
    pub remote_addr: String,
    /// The token presented, if any.
    pub token: Option<String>,
    /// `service`, `client`, … as the node said (handshakes only).
    pub node_type: Option<String>,
    /// Service name (registrations only).
    pub service: Option<String>,
    /// Instance id (registrations only).
    pub instance_id: Option<String>,
    /// Address (registrations only).
    pub address: Option<String>,
    /// Instance metadata (registrations only).
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// Channel name (publications only).
    pub channel: Option<String>,
    /// The published data (publications only).
    pub data: Option<serde_json::Value>,
}

impl FilterRequest {
    /// A request of `kind` from `remote_addr` in `network`; every other field is empty, for the
    /// caller to fill in what it knows.
    pub fn new(kind: FilterKind, network: &str, remote_addr: String) -> FilterRequest {
        FilterRequest {
            kind,
            network: network.to_string(),
            public_key: None,
            origin: None,
            remote_addr,
            token: None,
            node_type: None,
            service: None,
            instance_id: None,
            address: None,
            metadata: serde_json::Map::new(),
            channel: None,
            data: None,
        }
    }
}

/// The filter's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Go ahead.
    Allow,
    /// Refuse; the reason reaches the caller in a `NETGET_DENIED` error.
    Deny(String),
}

impl Decision {
    /// Reads a filter's answer as the Python and JS packages receive it: `true` or
    /// `{"allow": true}` allows; `false` or `{"allow": false, "reason": "..."}` denies. Anything
    /// else denies too (an explicit allow is required), saying what was returned.
    pub fn from_value(v: &serde_json::Value) -> Decision {
        use serde_json::Value;
        match v {
            Value::Bool(true) => Decision::Allow,
            Value::Bool(false) => Decision::Deny("denied".into()),
            Value::Object(o) => match (o.get("allow"), o.get("reason").and_then(Value::as_str)) {
                (Some(Value::Bool(true)), _) => Decision::Allow,
                (Some(Value::Bool(false)), reason) => {
                    Decision::Deny(reason.unwrap_or("denied").to_string())
                }
                _ => Decision::Deny("the filter's answer has no boolean \"allow\"".into()),
            },
            other => Decision::Deny(format!(
                "the filter returned {other}; return true/false or {{allow, reason}}"
            )),
        }
    }
}

/// A future returned by a filter.
pub type FilterFuture = Pin<Box<dyn Future<Output = Decision> + Send>>;

/// An application's conditional filter: called on every handshake and registration.
pub type Filter = Arc<dyn Fn(FilterRequest) -> FilterFuture + Send + Sync>;

/// Wraps an async closure as a [`Filter`].
pub fn filter_fn<F, Fut>(f: F) -> Filter
where
    F: Fn(FilterRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Decision> + Send + 'static,
{
    Arc::new(move |req| Box::pin(f(req)))
}

/// How long a filter may take before the request is denied.
pub const FILTER_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs the filter (if any) with a time bound; a filter that panics or times out denies.
///
/// The request is built only when a filter is set: without one (the usual case) a registration
/// pays nothing for it.
pub async fn run_filter(
    filter: Option<&Filter>,
    req: impl FnOnce() -> FilterRequest,
) -> Result<()> {
    let Some(filter) = filter else {
        return Ok(());
    };
    let fut = std::panic::AssertUnwindSafe(filter(req()));
    let decision =
        tokio::time::timeout(FILTER_TIMEOUT, futures_util::FutureExt::catch_unwind(fut)).await;
    match decision {
        Ok(Ok(Decision::Allow)) => Ok(()),
        Ok(Ok(Decision::Deny(reason))) => Err(Error::Denied(format!(
            "denied by the registry's filter: {reason}"
        ))),
        Ok(Err(_)) => Err(Error::Denied("denied: the registry's filter failed".into())),
        Err(_) => Err(Error::Denied(format!(
            "denied: the registry's filter did not answer within {FILTER_TIMEOUT:?}"
        ))),
    }
}

/// Which browser origins may use the registry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OriginPolicy {
    /// Origins allowed besides the registry's own (`*` allows every origin).
    pub allowed: Vec<String>,
}

impl OriginPolicy {
    /// Whether a request with this `Origin` (and `Host`) header may proceed. Requests without
    /// an origin (non-browser clients) always may; a page served by the registry itself
    /// (origin host equal to the `Host` header) always may.
    pub fn allows(&self, origin: Option<&str>, host: Option<&str>) -> bool {
        let Some(origin) = origin else {
            return true;
        };
        if self
            .allowed
            .iter()
            .any(|a| a == "*" || a.trim_end_matches('/') == origin)
        {
            return true;
        }
        let origin_host = origin.split_once("://").map(|(_, h)| h).unwrap_or(origin);
        host.is_some_and(|h| h.eq_ignore_ascii_case(origin_host))
    }

    /// The refusal for an origin not on the list.
    pub fn refusal(origin: &str) -> Error {
        Error::Forbidden(format!(
            "origin {origin:?} is not allowed; add it to [cors] allowed_origins in the registry's config"
        ))
    }
}

/// A token bucket: `rate` requests per second on average, bursts of up to `burst`.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl RateLimiter {
    /// A full bucket. A rate of 0 means unlimited.
    pub fn new(rate: u32, burst: u32) -> RateLimiter {
        RateLimiter {
            rate: f64::from(rate),
            burst: f64::from(burst.max(rate).max(1)),
            tokens: f64::from(burst.max(rate).max(1)),
            last: Instant::now(),
        }
    }

    /// Refills for the time since the last call; whether a token is there (always, unlimited).
    fn refill(&mut self, now: Instant) -> bool {
        if self.rate == 0.0 {
            return true;
        }
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.tokens >= 1.0
    }

    /// Whether a token is there, without taking it.
    pub fn has(&mut self, now: Instant) -> bool {
        self.refill(now)
    }

    /// Takes one token if there is one.
    pub fn try_take(&mut self, now: Instant) -> bool {
        if self.rate == 0.0 {
            return true;
        }
        if self.refill(now) {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Limits on what one caller may do, all configurable (see README, "Limits").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Requests per second one WebSocket session may send (0: unlimited).
    pub session_rate: u32,
    /// Burst allowance of a session.
    pub session_burst: u32,
    /// Requests per second from one IP address, HTTP and WebSocket together (0: unlimited).
    pub ip_rate: u32,
    /// Burst allowance of an IP address.
    pub ip_burst: u32,
    /// A session with no instances, no watches and no requests for this long is closed.
    pub idle_timeout: Duration,
    /// Failed authentications (a wrong or missing token, a key not allowed) one IP address may
    /// make per second once its burst is spent (0: unlimited); past that, every attempt from it
    /// is refused before its token is even compared, so guessing tokens gets nowhere.
    pub failed_auth_rate: u32,
    /// Failed authentications an IP address may make at once.
    pub failed_auth_burst: u32,
    /// The longest a blocking query of the Consul-compatible API waits (Consul's own cap).
    pub max_blocking_wait: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            session_rate: 1_000,
            session_burst: 5_000,
            ip_rate: 20_000,
            ip_burst: 50_000,
            idle_timeout: Duration::from_secs(300),
            failed_auth_rate: 1,
            failed_auth_burst: 30,
            max_blocking_wait: Duration::from_secs(600),
        }
    }
}

/// Most IP addresses tracked by the per-IP limiter before idle ones are forgotten.
const MAX_TRACKED_IPS: usize = 65_536;

/// A service name claimed by a key in a `keys` network: the key, and when it claimed it (ms
/// since the Unix epoch, by the clock of the registry that took the claim).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The claiming key.
    pub key: Arc<str>,
    /// When.
    pub at: u64,
}

impl Claim {
    /// Of two claims of one name (made on two registries of a cluster before either heard of
    /// the other), the one that holds everywhere: the earlier, then the smaller key.
    pub fn beats(&self, other: &Claim) -> bool {
        (self.at, &self.key) < (other.at, &other.key)
    }
}

/// What merging a claim from a peer registry did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Merged {
    /// Nothing: the same claim, one that beats it, or not a claimable name here.
    Unchanged,
    /// A new claim of a free name.
    Taken,
    /// It beat the claim held here, which `loser` had made: the loser's instances of the name
    /// must go.
    Replaced { loser: Arc<str> },
}

/// The registry's gatekeeper: policies, name claims and per-IP rate limits.
#[derive(Debug)]
pub struct Guard {
    networks: HashMap<NetworkName, Policy>,
    /// In `keys` networks, the key that first registered each service name owns it.
    claims: Mutex<HashMap<(NetworkName, ServiceName), Claim>>,
    ip_limits: Mutex<HashMap<IpAddr, RateLimiter>>,
    /// Each address's budget of failed authentications.
    auth_failures: Mutex<HashMap<IpAddr, RateLimiter>>,
    limits: Limits,
}

impl Guard {
    /// A guard for these networks and limits.
    pub fn new(networks: &[NetworkConfig], limits: Limits) -> Guard {
        Guard {
            networks: networks
                .iter()
                .map(|n| (n.name.clone(), n.policy.clone()))
                .collect(),
            claims: Mutex::new(HashMap::new()),
            ip_limits: Mutex::new(HashMap::new()),
            auth_failures: Mutex::new(HashMap::new()),
            limits,
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The policy of a served network, or `NETGET_UNKNOWN_NETWORK`.
    pub fn policy(&self, network: &NetworkName) -> Result<&Policy> {
        self.networks
            .get(network)
            .ok_or_else(|| Error::unknown_network(network.as_str()))
    }

    /// Checks an HTTP write (register, heartbeat, deregister): as [`Guard::check_http`], and
    /// `keys` networks take registrations only from signed sessions of allowed keys, so their
    /// key bindings and name claims cannot be sidestepped over HTTP.
    pub fn check_http_write(&self, network: &NetworkName, token: Option<&str>) -> Result<()> {
        self.check_http(network, token)?;
        if let Policy::Keys { .. } = self.policy(network)? {
            return Err(Error::Forbidden(format!(
                "network {:?} takes registrations only over signed WebSocket sessions of allowed keys; its tokens grant HTTP reads",
                network.as_str()
            )));
        }
        Ok(())
    }

    /// Checks an HTTP caller's bearer token for `network` (reads and writes alike).
    pub fn check_http(&self, network: &NetworkName, token: Option<&str>) -> Result<()> {
        match self.policy(network)? {
            Policy::Open => Ok(()),
            Policy::Token { tokens } => check_token(network, tokens, token),
            Policy::Keys { tokens, .. } => {
                if tokens.is_empty() {
                    Err(Error::Unauthorized(format!(
                        "network {:?} admits only signed WebSocket sessions of allow-listed keys; use a node with an allowed key",
                        network.as_str()
                    )))
                } else {
                    check_token(network, tokens, token)
                }
            }
        }
    }

    /// Whether an HTTP caller with this token may see `network` (for `GET /v1/networks`).
    pub fn visible(&self, network: &NetworkName, token: Option<&str>) -> bool {
        self.check_http(network, token).is_ok()
    }

    /// Checks a session's hello: its token or key must be admitted by the network's policy.
    pub fn check_session(
        &self,
        network: &NetworkName,
        public_key: &str,
        token: Option<&str>,
    ) -> Result<()> {
        match self.policy(network)? {
            Policy::Open => Ok(()),
            Policy::Token { tokens } => check_token(network, tokens, token),
            Policy::Keys { keys, .. } => {
                if keys.iter().any(|k| k.public_key == public_key) {
                    Ok(())
                } else {
                    Err(Error::Unauthorized(format!(
                        "key {public_key} is not on the allow-list of network {:?}",
                        network.as_str()
                    )))
                }
            }
        }
    }

    /// Checks that a session's key may register `service` in `network`, and claims the name
    /// for that key in `keys` networks so no other key can take it over. Returns the claim when
    /// it made a new one (which the caller persists and replicates).
    pub fn check_service(
        &self,
        network: &NetworkName,
        public_key: &str,
        service: &ServiceName,
    ) -> Result<Option<Claim>> {
        let Policy::Keys { keys, .. } = self.policy(network)? else {
            return Ok(None);
        };
        let grant = keys
            .iter()
            .find(|k| k.public_key == public_key)
            .ok_or_else(|| {
                Error::Unauthorized(format!(
                    "key {public_key} is not on the allow-list of network {:?}",
                    network.as_str()
                ))
            })?;
        if let Some(bound) = &grant.services {
            // Explicitly bound keys (several may share a service) need no claim.
            return if bound.contains(service) {
                Ok(None)
            } else {
                Err(Error::Forbidden(format!(
                    "key {public_key} may register only {:?} in network {:?}, not {:?}",
                    bound.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
                    network.as_str(),
                    service.as_str()
                )))
            };
        }
        let taken = || {
            Error::Forbidden(format!(
                "service name {:?} in network {:?} belongs to another key",
                service.as_str(),
                network.as_str()
            ))
        };
        if keys
            .iter()
            .any(|k| k.services.as_ref().is_some_and(|s| s.contains(service)))
        {
            return Err(taken());
        }
        // An unbound key claims a free name by registering it first; no other key may then.
        let mut claims = self.claims.lock().unwrap_or_else(|e| e.into_inner());
        match claims.get(&(network.clone(), service.clone())) {
            Some(owner) if owner.key.as_ref() == public_key => Ok(None),
            Some(_) => Err(taken()),
            None => {
                let claim = Claim {
                    key: Arc::from(public_key),
                    at: crate::model::now_millis(),
                };
                claims.insert((network.clone(), service.clone()), claim.clone());
                Ok(Some(claim))
            }
        }
    }

    /// Merges a claim a peer registry took: kept when the name is free here or the claim beats
    /// the one held here (see [`Claim::beats`]); so every registry ends with the same claim.
    pub fn merge_claim(
        &self,
        network: &NetworkName,
        service: &ServiceName,
        claim: Claim,
    ) -> Merged {
        if !matches!(self.networks.get(network), Some(Policy::Keys { .. })) {
            return Merged::Unchanged;
        }
        let mut claims = self.claims.lock().unwrap_or_else(|e| e.into_inner());
        match claims.entry((network.clone(), service.clone())) {
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(claim);
                Merged::Taken
            }
            std::collections::hash_map::Entry::Occupied(mut o) => {
                if claim.beats(o.get()) && claim.key != o.get().key {
                    let loser = o.insert(claim).key;
                    Merged::Replaced { loser }
                } else {
                    Merged::Unchanged
                }
            }
        }
    }

    /// Every claim held, for a peer's snapshot.
    pub fn claims(&self) -> Vec<(NetworkName, ServiceName, Claim)> {
        let claims = self.claims.lock().unwrap_or_else(|e| e.into_inner());
        claims
            .iter()
            .map(|((n, s), c)| (n.clone(), s.clone(), c.clone()))
            .collect()
    }

    /// Restores claims loaded from the store.
    pub fn restore_claims(
        &self,
        loaded: impl IntoIterator<Item = (NetworkName, ServiceName, Claim)>,
    ) {
        let mut claims = self.claims.lock().unwrap_or_else(|e| e.into_inner());
        for (n, s, c) in loaded {
            claims.insert((n, s), c);
        }
    }

    /// Counts one request from `ip`; `NETGET_RATE_LIMITED` when over the per-IP rate.
    pub fn take_ip(&self, ip: IpAddr) -> Result<()> {
        if self.limits.ip_rate == 0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut map = self.ip_limits.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_TRACKED_IPS && !map.contains_key(&ip) {
            // Forget addresses quiet for a while; a full bucket is the same as no entry.
            map.retain(|_, b| now.saturating_duration_since(b.last) < Duration::from_secs(10));
        }
        let bucket = map
            .entry(ip)
            .or_insert_with(|| RateLimiter::new(self.limits.ip_rate, self.limits.ip_burst));
        if bucket.try_take(now) {
            Ok(())
        } else {
            Err(Error::RateLimited(format!(
                "more than {} requests per second from {ip}; slow down",
                self.limits.ip_rate
            )))
        }
    }
}

impl Guard {
    /// Runs `check` (a token or key check) for a caller at `ip`, within the address's budget of
    /// failed authentications: an address that spent it is refused with `NETGET_RATE_LIMITED`
    /// before `check` runs, and each `NETGET_UNAUTHORIZED` from `check` spends one.
    pub fn authenticate(&self, ip: IpAddr, check: impl FnOnce() -> Result<()>) -> Result<()> {
        let (rate, burst) = (self.limits.failed_auth_rate, self.limits.failed_auth_burst);
        if rate == 0 {
            return check();
        }
        let now = Instant::now();
        {
            let mut map = self.auth_failures.lock().unwrap_or_else(|e| e.into_inner());
            if map.get_mut(&ip).is_some_and(|b| !b.has(now)) {
                return Err(Error::RateLimited(format!(
                    "too many failed authentications from {ip}; each address may fail {burst} at once and then {rate} per second"
                )));
            }
        }
        let result = check();
        if let Err(Error::Unauthorized(_)) = &result {
            let mut map = self.auth_failures.lock().unwrap_or_else(|e| e.into_inner());
            if map.len() >= MAX_TRACKED_IPS && !map.contains_key(&ip) {
                // A bucket refilled for a minute is as good as none.
                map.retain(|_, b| now.saturating_duration_since(b.last) < Duration::from_secs(60));
            }
            map.entry(ip)
                .or_insert_with(|| RateLimiter::new(rate, burst))
                .try_take(now);
        }
        result
    }
}

fn check_token(network: &NetworkName, accepted: &[String], presented: Option<&str>) -> Result<()> {
    match presented {
        None => Err(Error::Unauthorized(format!(
            "network {:?} needs a token: send `Authorization: Bearer <token>` (HTTP) or \"token\" in the hello",
            network.as_str()
        ))),
        Some(t) if token_matches(accepted, t) => Ok(()),
        Some(_) => Err(Error::Unauthorized(format!(
            "the token is not valid for network {:?}",
            network.as_str()
        ))),
    }
}

/// The remote address as the filter sees it.
pub fn remote_string(addr: &SocketAddr) -> String {
    addr.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> NetworkName {
        NetworkName::new(s).unwrap()
    }

    fn guard() -> Guard {
        Guard::new(
            &[
                NetworkConfig::open("development").unwrap(),
                NetworkConfig {
                    name: net("production"),
                    policy: Policy::Token {
                        tokens: vec!["s3cret".into()],
                    },
                },
                NetworkConfig {
                    name: net("staging"),
                    policy: Policy::Keys {
                        keys: vec![
                            KeyGrant {
                                public_key: "K1".into(),
                                services: Some(vec![ServiceName::new("orders").unwrap()]),
                            },
                            KeyGrant {
                                public_key: "K2".into(),
                                services: None,
                            },
                            KeyGrant {
                                public_key: "K3".into(),
                                services: None,
                            },
                        ],
                        tokens: vec![],
                    },
                },
            ],
            Limits::default(),
        )
    }

    #[test]
    fn tokens_grant_only_their_own_network() {
        let g = guard();
        assert!(g.check_http(&net("development"), None).is_ok());
        assert_eq!(
            g.check_http(&net("production"), None).unwrap_err().code(),
            "NETGET_UNAUTHORIZED"
        );
        assert_eq!(
            g.check_http(&net("production"), Some("wrong"))
                .unwrap_err()
                .code(),
            "NETGET_UNAUTHORIZED"
        );
        assert!(g.check_http(&net("production"), Some("s3cret")).is_ok());
        assert!(g.check_http(&net("staging"), Some("s3cret")).is_err());
        assert_eq!(
            g.check_http(&net("qa"), None).unwrap_err().code(),
            "NETGET_UNKNOWN_NETWORK"
        );
    }

    #[test]
    fn keys_are_bound_to_their_services_and_names_cannot_be_taken_over() {
        let g = guard();
        let s = net("staging");
        let orders = ServiceName::new("orders").unwrap();
        let billing = ServiceName::new("billing").unwrap();
        assert!(g.check_session(&s, "K1", None).is_ok());
        assert!(g.check_session(&s, "K9", None).is_err());
        assert!(
            g.check_service(&s, "K1", &orders).unwrap().is_none(),
            "bound keys claim nothing"
        );
        assert_eq!(
            g.check_service(&s, "K1", &billing).unwrap_err().code(),
            "NETGET_FORBIDDEN"
        );
        // K2 may register any name, but not one bound to K1, and not one K3 claimed first.
        assert_eq!(
            g.check_service(&s, "K2", &orders).unwrap_err().code(),
            "NETGET_FORBIDDEN"
        );
        assert!(g.check_service(&s, "K3", &billing).is_ok());
        assert_eq!(
            g.check_service(&s, "K2", &billing).unwrap_err().code(),
            "NETGET_FORBIDDEN"
        );
        assert!(g.check_service(&s, "K3", &billing).is_ok());
    }

    #[test]
    fn of_two_claims_of_one_name_the_earlier_holds_everywhere_then_the_smaller_key() {
        let claim = |key: &str, at| Claim {
            key: Arc::from(key),
            at,
        };
        let s = net("staging");
        let billing = ServiceName::new("billing").unwrap();
        // Two registries took different claims of the same name; each merges the other's.
        let (here, there) = (guard(), guard());
        let mine = here.check_service(&s, "K2", &billing).unwrap().unwrap();
        let theirs = claim("K3", mine.at.saturating_sub(5));
        assert_eq!(
            there.merge_claim(&s, &billing, theirs.clone()),
            Merged::Taken
        );
        assert_eq!(
            there.merge_claim(&s, &billing, mine.clone()),
            Merged::Unchanged
        );
        assert_eq!(
            here.merge_claim(&s, &billing, theirs.clone()),
            Merged::Replaced {
                loser: Arc::from("K2")
            }
        );
        assert_eq!(here.claims(), there.claims());
        assert_eq!(
            here.check_service(&s, "K2", &billing).unwrap_err().code(),
            "NETGET_FORBIDDEN"
        );
        // At the same time: the smaller key.
        assert!(claim("K2", 7).beats(&claim("K3", 7)));
        assert!(!claim("K3", 7).beats(&claim("K2", 7)));
        // Open networks claim nothing.
        assert_eq!(
            here.merge_claim(&net("development"), &billing, claim("K1", 1)),
            Merged::Unchanged
        );
    }

    #[test]
    fn token_comparison_needs_an_exact_match() {
        let accepted = vec!["abc".to_string(), "defg".to_string()];
        assert!(token_matches(&accepted, "defg"));
        assert!(!token_matches(&accepted, "def"));
        assert!(!token_matches(&accepted, "abcd"));
        assert!(!token_matches(&[], ""));
    }

    #[test]
    fn origins_allow_same_origin_listed_and_originless_requests() {
        let p = OriginPolicy {
            allowed: vec!["http://localhost:3000".into()],
        };
        assert!(p.allows(None, Some("127.0.0.1:7700")));
        assert!(p.allows(Some("http://localhost:3000"), Some("127.0.0.1:7700")));
        assert!(p.allows(Some("http://127.0.0.1:7700"), Some("127.0.0.1:7700")));
        assert!(!p.allows(Some("http://evil.example"), Some("127.0.0.1:7700")));
        assert!(OriginPolicy {
            allowed: vec!["*".into()]
        }
        .allows(Some("http://x"), None));
    }

    #[test]
    fn the_rate_limiter_refills_over_time() {
        let mut r = RateLimiter::new(10, 2);
        let t = Instant::now();
        assert!(r.try_take(t));
        assert!(r.try_take(t));
        assert!(r.try_take(t));
        // burst is max(rate, burst) = 10
        for _ in 0..7 {
            assert!(r.try_take(t));
        }
        assert!(!r.try_take(t));
        assert!(r.try_take(t + Duration::from_millis(150)));
        assert!(RateLimiter::new(0, 0).try_take(t));
    }

    #[test]
    fn filter_answers_from_the_bindings_read_as_decisions() {
        use serde_json::json;
        assert_eq!(Decision::from_value(&json!(true)), Decision::Allow);
        assert_eq!(
            Decision::from_value(&json!({"allow": true})),
            Decision::Allow
        );
        assert_eq!(
            Decision::from_value(&json!({"allow": false, "reason": "no"})),
            Decision::Deny("no".into())
        );
        assert!(matches!(
            Decision::from_value(&json!(false)),
            Decision::Deny(_)
        ));
        assert!(matches!(
            Decision::from_value(&json!(null)),
            Decision::Deny(_)
        ));
        assert!(matches!(
            Decision::from_value(&json!("yes")),
            Decision::Deny(_)
        ));
    }
}
