//! The Consul-compatible HTTP API subset, on the registry's port, for the clients and tools
//! written for Consul (Prometheus' `consul_sd_configs`, py-consul, the Go client, …). Each
//! handler translates Consul's request into a registry operation and the result into Consul's
//! JSON; policy, ownership, health and storage are the registry's, as for every front end.
//!
//! How Consul's nouns map (README, "A Consul-compatible API"):
//! - a datacenter (`?dc=`) is a network; without one, the first network served;
//! - a service registered through the agent endpoint is a REST registration whose id is the
//!   service's `ID` (default its `Name`); a `TTL` check is its TTL (renewed by
//!   `/v1/agent/check/pass/service:<ID>`), an `HTTP` or `TCP` check its health check, and one
//!   with no check lives until deregistered;
//! - a node is the registry that holds the instance;
//! - `X-Consul-Index` is the network's revision (one more per change), and a blocking query
//!   (`?index=&wait=`) waits on it, woken by the directory's change itself.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::http::{bearer, flag, header, parse_body, ApiResult};
use super::listener::RemoteAddr;
use super::ops::{self, Caller, HttpCaller, Registering};
use super::state::RegistryState;
use crate::error::{Error, Result};
use crate::model::{
    Endpoint, HealthCheck, Instance, InstanceId, NetworkName, Registration, ServiceName, Status,
    WireDuration,
};

/// How long a registration without a check lives: Consul keeps such a service until it is
/// deregistered; netget's REST registrations all have a lifetime.
const NO_CHECK_TTL: Duration = Duration::from_secs(365 * 24 * 3600);

/// What Consul's `wait` defaults to.
const DEFAULT_WAIT: Duration = Duration::from_secs(300);

/// The caller, with Consul's token header as well as a bearer token.
fn consul_caller(remote: &RemoteAddr, headers: &HeaderMap, query: &Query) -> HttpCaller {
    HttpCaller {
        token: header(headers, "x-consul-token")
            .or_else(|| bearer(headers))
            .or_else(|| query.token.clone()),
        origin: header(headers, "origin"),
        remote: remote.0,
    }
}

/// The query parameters Consul's clients send; those netget has no use for (`stale`,
/// `consistent`, `cached`, `near`, `node-meta`, …) are accepted and ignored, as Consul does with
/// parameters an endpoint does not know.
#[derive(Debug, Default)]
struct Query {
    dc: Option<String>,
    index: Option<u64>,
    wait: Option<Duration>,
    passing: bool,
    tags: Vec<String>,
    token: Option<String>,
}

fn parse_query(raw: Option<&str>) -> Result<Query> {
    let mut q = Query::default();
    for (k, v) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        match k.as_ref() {
            // An empty `dc` is the default datacenter, as in Consul.
            "dc" if v.is_empty() => q.dc = None,
            "dc" => q.dc = Some(v.into_owned()),
            "index" => {
                let index = v.parse().ok().filter(|i| *i <= i64::MAX as u64);
                q.index = Some(index.ok_or_else(|| {
                    Error::InvalidInput(format!(
                        "index={v:?} must be a whole number, the X-Consul-Index of an earlier answer"
                    ))
                })?)
            }
            "wait" => q.wait = Some(consul_duration("wait", &v)?.0),
            "passing" => q.passing = flag(&k, &v)?,
            "tag" => q.tags.push(v.into_owned()),
            "token" => q.token = Some(v.into_owned()),
            _ => {}
        }
    }
    Ok(q)
}

/// What every request says of itself: its query, who asks, and the network its `dc` names.
fn asked(
    s: &RegistryState,
    remote: &RemoteAddr,
    headers: &HeaderMap,
    raw: Option<&str>,
) -> Result<(Query, HttpCaller, NetworkName)> {
    let q = parse_query(raw)?;
    let who = consul_caller(remote, headers, &q);
    let network = network_of(s, q.dc.as_deref())?;
    Ok((q, who, network))
}

/// A datacenter as the OpenAPI document describes it: a network name, or empty (the default).
pub struct DatacenterSchema;

impl utoipa::PartialSchema for DatacenterSchema {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .max_length(Some(crate::model::MAX_NAME_LEN))
            .pattern(Some(r"^([A-Za-z0-9][A-Za-z0-9_\-\.]*)?$"))
            .into()
    }
}

impl utoipa::ToSchema for DatacenterSchema {}

/// The network a datacenter names: `dc`, or the first network served.
fn network_of(state: &RegistryState, dc: Option<&str>) -> Result<NetworkName> {
    match dc {
        Some(dc) => NetworkName::new(dc),
        None => state
            .config
            .networks
            .first()
            .map(|n| n.name.clone())
            .ok_or_else(|| Error::Internal("the registry serves no network".into())),
    }
}

/// Waits, for a blocking query, until the network's revision moves past `index` (or `wait`
/// runs out, bounded by `[limits] max_blocking_wait`); returns the revision to answer with.
/// An `index` ahead of the revision (another registry's, or one before a restart) is answered
/// at once, so the client starts again from the current one, as Consul's clients do.
async fn blocking(
    state: &RegistryState,
    caller: Caller<'_>,
    network: &NetworkName,
    q: &Query,
) -> Result<u64> {
    let mut revision = ops::revision(state, caller, network)?;
    let now = *revision.borrow_and_update();
    let Some(index) = q.index.filter(|i| *i == now) else {
        return Ok(now);
    };
    let wait = q
        .wait
        .unwrap_or(DEFAULT_WAIT)
        .min(state.config.limits.max_blocking_wait);
    let mut shutdown = state.shutdown_rx.clone();
    // Counted while waiting, also when the client goes away and the wait is dropped.
    struct Waiting<'a>(&'a prometheus_client::metrics::gauge::Gauge);
    impl Drop for Waiting<'_> {
        fn drop(&mut self) {
            self.0.dec();
        }
    }
    state.metrics.blocking_queries.inc();
    let waiting = Waiting(&state.metrics.blocking_queries);
    tokio::select! {
        _ = tokio::time::timeout(wait, revision.wait_for(|r| *r != index)) => {}
        _ = shutdown.wait_for(|s| *s) => {}
    }
    drop(waiting);
    let now = *revision.borrow();
    Ok(now)
}

/// A JSON answer with the headers Consul's clients read (the Go client fails without
/// `X-Consul-LastContact`).
fn consul_json<T: Serialize>(index: u64, body: &T) -> Response {
    let mut r = Json(body).into_response();
    let h = r.headers_mut();
    h.insert("x-consul-index", HeaderValue::from(index.max(1)));
    h.insert("x-consul-knownleader", HeaderValue::from_static("true"));
    h.insert("x-consul-lastcontact", HeaderValue::from_static("0"));
    r
}

/// Metadata as Consul's string map: strings as they are, other values as JSON text.
fn meta_strings(i: &Instance) -> BTreeMap<String, String> {
    i.metadata
        .to_map()
        .into_iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => (k, s),
            other => (k, other.to_string()),
        })
        .collect()
}

/// A node, as Consul describes one.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct ConsulNode {
    #[serde(rename = "ID")]
    id: String,
    /// The registry holding the instance.
    node: String,
    address: String,
    /// The network.
    datacenter: String,
    tagged_addresses: BTreeMap<String, String>,
    meta: BTreeMap<String, String>,
}

/// Service weights.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct ConsulWeights {
    passing: u32,
    warning: u32,
}

/// A service instance, as Consul's health endpoint describes one.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct ConsulService {
    #[serde(rename = "ID")]
    id: String,
    service: String,
    tags: Vec<String>,
    address: String,
    port: u16,
    meta: BTreeMap<String, String>,
    weights: ConsulWeights,
    enable_tag_override: bool,
}

/// A check's state.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct ConsulCheck {
    node: String,
    #[serde(rename = "CheckID")]
    check_id: String,
    name: String,
    /// `passing`, `warning` or `critical`.
    status: String,
    notes: String,
    output: String,
    #[serde(rename = "ServiceID")]
    service_id: String,
    service_name: String,
    service_tags: Vec<String>,
    /// `ttl`, `http`, `tcp`, or empty for a session's instance.
    r#type: String,
}

/// One entry of `/v1/health/service/{name}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct HealthEntry {
    node: ConsulNode,
    service: ConsulService,
    checks: Vec<ConsulCheck>,
}

/// One entry of `/v1/catalog/service/{name}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct CatalogEntry {
    #[serde(rename = "ID")]
    id: String,
    node: String,
    address: String,
    datacenter: String,
    tagged_addresses: BTreeMap<String, String>,
    node_meta: BTreeMap<String, String>,
    #[serde(rename = "ServiceID")]
    service_id: String,
    service_name: String,
    service_tags: Vec<String>,
    service_address: String,
    service_port: u16,
    service_meta: BTreeMap<String, String>,
    service_weights: ConsulWeights,
    service_enable_tag_override: bool,
    create_index: u64,
    modify_index: u64,
}

fn health_entry(i: &Instance) -> HealthEntry {
    let endpoint = Endpoint::of(&i.address);
    let host = endpoint
        .as_ref()
        .map(Endpoint::host_text)
        .unwrap_or_else(|| i.address.clone());
    let port = endpoint.as_ref().map(|e| e.port).unwrap_or(0);
    let tags = i.tags.to_vec();
    // Without an active check an instance lives by its TTL (REST) or its keepalives (a
    // session): a TTL check, either way.
    let kind = match &i.health {
        Some(h) if h.http.is_some() => "http",
        Some(_) => "tcp",
        None => "ttl",
    };
    HealthEntry {
        node: ConsulNode {
            id: String::new(),
            node: i.registry.to_string(),
            address: host.clone(),
            datacenter: i.network.to_string(),
            tagged_addresses: BTreeMap::new(),
            meta: BTreeMap::new(),
        },
        checks: vec![ConsulCheck {
            node: i.registry.to_string(),
            check_id: format!("service:{}", i.id),
            name: format!("Service '{}' check", i.name),
            status: i.status.as_str().to_string(),
            notes: String::new(),
            output: i
                .last_check
                .as_ref()
                .map(|c| c.output.clone())
                .unwrap_or_default(),
            service_id: i.id.to_string(),
            service_name: i.name.to_string(),
            service_tags: tags.clone(),
            r#type: kind.to_string(),
        }],
        service: ConsulService {
            id: i.id.to_string(),
            service: i.name.to_string(),
            tags,
            address: host,
            port,
            meta: meta_strings(i),
            weights: ConsulWeights {
                passing: i.weight,
                warning: 1,
            },
            enable_tag_override: false,
        },
    }
}

fn catalog_entry(i: &Instance, index: u64) -> CatalogEntry {
    let HealthEntry { node, service, .. } = health_entry(i);
    CatalogEntry {
        id: node.id,
        node: node.node,
        address: node.address,
        datacenter: node.datacenter,
        tagged_addresses: node.tagged_addresses,
        node_meta: node.meta,
        service_id: service.id,
        service_name: service.service,
        service_tags: service.tags,
        service_address: service.address,
        service_port: service.port,
        service_meta: service.meta,
        service_weights: service.weights,
        service_enable_tag_override: false,
        create_index: index,
        modify_index: index,
    }
}

/// `/v1/agent/self`: who answers, and its datacenter.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct AgentSelf {
    config: AgentConfig,
    member: AgentMember,
}

/// The agent's configuration, as far as clients read it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct AgentConfig {
    /// The first network served.
    datacenter: String,
    /// The registry's id.
    node_name: String,
    #[serde(rename = "NodeID")]
    node_id: String,
    server: bool,
    revision: String,
    /// netget's version.
    version: String,
}

/// The agent as a member of its cluster.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct AgentMember {
    name: String,
    addr: String,
    port: u16,
    status: u8,
    tags: BTreeMap<String, String>,
}

const REFUSED: &str =
    "Refused: `{\"error\": {\"code\", \"message\"}}` with the status that fits the code";

/// Who answers: the registry, as a Consul agent (`Config.Datacenter` is the first network).
#[utoipa::path(get, path = "/v1/agent/self", tag = "consul",
    responses((status = 200, description = "The agent", body = AgentSelf)))]
pub(super) async fn agent_self(State(s): State<Arc<RegistryState>>) -> ApiResult<Response> {
    let dc = network_of(&s, None)?;
    let answer = AgentSelf {
        config: AgentConfig {
            datacenter: dc.to_string(),
            node_name: s.registry_id.to_string(),
            node_id: String::new(),
            server: true,
            revision: "netget".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        },
        member: AgentMember {
            name: s.registry_id.to_string(),
            addr: s.config.listen.ip().to_string(),
            port: s.config.listen.port(),
            status: 1,
            tags: BTreeMap::new(),
        },
    };
    Ok(consul_json(1, &answer))
}

/// The services of a datacenter (network), each with the tags its instances carry.
#[utoipa::path(get, path = "/v1/catalog/services", tag = "consul",
    params(("dc" = Option<DatacenterSchema>, Query, description = "The network (empty or left out: the first served)"),
        ("index" = Option<u64>, Query, description = "Block until the network's revision moves past this X-Consul-Index"),
        ("wait" = Option<crate::model::DurationSchema>, Query, description = "How long to block at most (default 5m)"),
        ("x-consul-token" = Option<String>, Header, description = "A token, for networks whose policy is `token`")),
    responses((status = 200, description = "Service names with their tags", body = BTreeMap<String, Vec<String>>), (status = "default", description = REFUSED, body = super::openapi::ErrorAnswer)))]
pub(super) async fn catalog_services(
    State(s): State<Arc<RegistryState>>,
    ConnectInfo(remote): ConnectInfo<RemoteAddr>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let (q, who, network) = asked(&s, &remote, &headers, raw.as_deref())?;
    let index = blocking(&s, Caller::Http(&who), &network, &q).await?;
    let all = ops::instances(&s, Caller::Http(&who), &network, None, false, &[])?;
    let mut services: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for i in &all {
        let tags = services.entry(i.name.to_string()).or_default();
        for t in i.tags.iter() {
            if !tags.iter().any(|have| have == t) {
                tags.push(t.to_string());
            }
        }
    }
    Ok(consul_json(index, &services))
}

/// What the catalog and health queries of one service share: the query, the index to answer
/// with (after blocking, when asked), and the service's instances of the query's tags.
async fn service_query(
    s: &RegistryState,
    remote: &RemoteAddr,
    headers: &HeaderMap,
    name: &str,
    raw: Option<&str>,
) -> Result<(Query, u64, Vec<Arc<Instance>>)> {
    let name = ServiceName::new(name)?;
    let (q, who, network) = asked(s, remote, headers, raw)?;
    let index = blocking(s, Caller::Http(&who), &network, &q).await?;
    let found = ops::instances(s, Caller::Http(&who), &network, Some(&name), false, &q.tags)?;
    Ok((q, index, found))
}

/// The instances of a service.
#[utoipa::path(get, path = "/v1/catalog/service/{name}", tag = "consul",
    params(("name" = ServiceName, Path, description = "The service name"),
        ("dc" = Option<DatacenterSchema>, Query, description = "The network (empty or left out: the first served)"),
        ("tag" = Option<Vec<String>>, Query, description = "A tag every instance must carry (repeatable)"),
        ("index" = Option<u64>, Query, description = "Block until the network's revision moves past this X-Consul-Index"),
        ("wait" = Option<crate::model::DurationSchema>, Query, description = "How long to block at most (default 5m)"),
        ("x-consul-token" = Option<String>, Header, description = "A token, for networks whose policy is `token`")),
    responses((status = 200, description = "The service's instances", body = Vec<CatalogEntry>), (status = "default", description = REFUSED, body = super::openapi::ErrorAnswer)))]
pub(super) async fn catalog_service(
    State(s): State<Arc<RegistryState>>,
    ConnectInfo(remote): ConnectInfo<RemoteAddr>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let (_, index, found) = service_query(&s, &remote, &headers, &name, raw.as_deref()).await?;
    let entries: Vec<CatalogEntry> = found.iter().map(|i| catalog_entry(i, index)).collect();
    Ok(consul_json(index, &entries))
}

/// The instances of a service with their checks; `passing` keeps those whose check passes.
#[utoipa::path(get, path = "/v1/health/service/{name}", tag = "consul",
    params(("name" = ServiceName, Path, description = "The service name"),
        ("dc" = Option<DatacenterSchema>, Query, description = "The network (empty or left out: the first served)"),
        ("passing" = Option<super::http::QueryFlag>, Query, description = "Only instances whose check is passing"),
        ("tag" = Option<Vec<String>>, Query, description = "A tag every instance must carry (repeatable)"),
        ("index" = Option<u64>, Query, description = "Block until the network's revision moves past this X-Consul-Index"),
        ("wait" = Option<crate::model::DurationSchema>, Query, description = "How long to block at most (default 5m)"),
        ("x-consul-token" = Option<String>, Header, description = "A token, for networks whose policy is `token`")),
    responses((status = 200, description = "The service's instances and their checks", body = Vec<HealthEntry>), (status = "default", description = REFUSED, body = super::openapi::ErrorAnswer)))]
pub(super) async fn health_service(
    State(s): State<Arc<RegistryState>>,
    ConnectInfo(remote): ConnectInfo<RemoteAddr>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let (q, index, found) = service_query(&s, &remote, &headers, &name, raw.as_deref()).await?;
    let entries: Vec<HealthEntry> = found
        .iter()
        .filter(|i| !q.passing || i.status == Status::Passing)
        .map(|i| health_entry(i))
        .collect();
    Ok(consul_json(index, &entries))
}

/// A service registration as Consul's agent takes it. Keys are read as Consul reads them:
/// in any case, and with or without underscores (`Name`, `name`, `enable_tag_override`).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct AgentServiceRegistration {
    /// The instance id (default: the name).
    #[serde(rename = "ID")]
    id: Option<InstanceId>,
    /// The service name.
    name: ServiceName,
    #[schema(value_type = Option<Vec<crate::model::TagSchema>>, max_items = 32)]
    tags: Option<Vec<String>>,
    /// The host (default: the address the request came from).
    #[schema(
        min_length = 1,
        max_length = 1000,
        pattern = r"^[^\s\x00-\x1f\x7f-\x9f]+$"
    )]
    address: Option<String>,
    #[serde(default, deserialize_with = "crate::model::whole_u32")]
    #[schema(maximum = 65535)]
    port: Option<u32>,
    meta: Option<BTreeMap<String, String>>,
    /// The service's check (netget runs one per service: `Check`, or `Checks` with one).
    check: Option<AgentCheck>,
    /// The service's check, as a list of one.
    #[schema(max_items = 1)]
    checks: Option<Vec<AgentCheck>>,
    weights: Option<AgentWeights>,
    /// Accepted and ignored.
    #[allow(dead_code)]
    enable_tag_override: Option<bool>,
}

/// Weights of a registration.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct AgentWeights {
    /// The instance's weight.
    #[serde(default, deserialize_with = "crate::model::whole_u32")]
    #[schema(maximum = 10000)]
    passing: Option<u32>,
    /// Accepted and ignored.
    #[serde(default, deserialize_with = "crate::model::whole_u32")]
    #[allow(dead_code)]
    warning: Option<u32>,
}

/// A check of a registration: `TTL`, or `HTTP` or `TCP` with an `Interval`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct AgentCheck {
    /// Accepted; netget calls a service's check `service:<ID>` whatever it is given, and
    /// `/v1/agent/check/pass` takes that (or the ID alone).
    #[serde(rename = "CheckID")]
    #[allow(dead_code)]
    check_id: Option<String>,
    /// Accepted and ignored.
    #[allow(dead_code)]
    name: Option<String>,
    /// Accepted and ignored.
    #[allow(dead_code)]
    notes: Option<String>,
    /// Accepted and ignored (a check starts passing).
    #[allow(dead_code)]
    status: Option<String>,
    /// A TTL check: the service renews it with `/v1/agent/check/pass` (one of `TTL`, `HTTP`,
    /// `TCP`).
    #[serde(rename = "TTL")]
    #[schema(value_type = Option<crate::model::DurationSchema>)]
    ttl: Option<String>,
    /// An HTTP check's URL.
    #[serde(rename = "HTTP")]
    #[schema(max_length = 1024, pattern = "^https?://")]
    http: Option<String>,
    /// A TCP check's `host:port`.
    #[serde(rename = "TCP")]
    #[schema(max_length = 1024, pattern = "^[^/]+:[0-9]+$")]
    tcp: Option<String>,
    #[schema(value_type = Option<crate::model::DurationSchema>)]
    interval: Option<String>,
    #[schema(value_type = Option<crate::model::DurationSchema>)]
    timeout: Option<String>,
    #[schema(value_type = Option<crate::model::DurationSchema>)]
    deregister_critical_service_after: Option<String>,
    #[serde(default, deserialize_with = "crate::model::whole_u32")]
    #[schema(minimum = 1, maximum = 100)]
    success_before_passing: Option<u32>,
    #[serde(default, deserialize_with = "crate::model::whole_u32")]
    #[schema(minimum = 1, maximum = 100)]
    failures_before_critical: Option<u32>,
}

/// The keys Consul's agent knows, by their lowercase form without underscores.
const KEYS: &[&str] = &[
    "ID",
    "Name",
    "Tags",
    "Address",
    "Port",
    "Meta",
    "Check",
    "Checks",
    "Weights",
    "EnableTagOverride",
    "Passing",
    "Warning",
    "CheckID",
    "Notes",
    "Status",
    "TTL",
    "HTTP",
    "TCP",
    "Interval",
    "Timeout",
    "DeregisterCriticalServiceAfter",
    "SuccessBeforePassing",
    "FailuresBeforeCritical",
];

/// Consul's spelling of the keys of `v` (an object, and the objects under `Check`, `Checks`
/// and `Weights`); `Meta`'s own keys are the user's and stay as they are.
fn canonical_keys(v: serde_json::Value) -> serde_json::Value {
    let serde_json::Value::Object(map) = v else {
        return v;
    };
    let mut out = serde_json::Map::new();
    for (k, v) in map {
        let folded: String = k.chars().filter(|c| *c != '_').collect();
        let key = KEYS
            .iter()
            .find(|known| known.eq_ignore_ascii_case(&folded))
            .map(|known| known.to_string())
            .unwrap_or(k);
        let v = match (key.as_str(), v) {
            ("Check" | "Weights", v) => canonical_keys(v),
            ("Checks", serde_json::Value::Array(a)) => {
                serde_json::Value::Array(a.into_iter().map(canonical_keys).collect())
            }
            (_, v) => v,
        };
        out.insert(key, v);
    }
    serde_json::Value::Object(out)
}

fn duration(what: &str, v: &Option<String>) -> Result<Option<WireDuration>> {
    v.as_deref().map(|s| consul_duration(what, s)).transpose()
}

/// A duration as Consul's clients write one (`500ms`, `30s`, `5m`, `1h`) and the OpenAPI
/// document describes it: a whole number above 0, with its unit.
fn consul_duration(what: &str, v: &str) -> Result<WireDuration> {
    let digits = v.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let most = match &v[digits.len()..] {
        "ms" | "s" => 9,
        "m" => 7,
        "h" => 5,
        _ => 0,
    };
    let whole = !digits.is_empty()
        && digits.len() <= most
        && !digits.starts_with('0')
        && digits.bytes().all(|b| b.is_ascii_digit());
    if !whole {
        return Err(Error::InvalidInput(format!(
            "{what} {v:?}: write a whole number above 0 with its unit, e.g. 30s or 5m"
        )));
    }
    WireDuration::parse(v)
}

/// A Consul registration as a netget one.
fn to_registration(
    r: AgentServiceRegistration,
    remote: std::net::IpAddr,
) -> Result<(ServiceName, InstanceId, Registration)> {
    let name = r.name;
    let id = match r.id {
        Some(id) => id,
        None => InstanceId::new(name.as_str())?,
    };
    let checks = r.checks.unwrap_or_default();
    let check =
        match (r.check, checks.len()) {
            (Some(_), 1..) => return Err(Error::InvalidInput(
                "give the check as Check or as Checks, not both: netget runs one check per service"
                    .into(),
            )),
            (_, 2..) => {
                return Err(Error::InvalidInput(
                    "netget runs one check per service: Checks may hold one".into(),
                ))
            }
            (Some(c), _) => Some(c),
            (None, _) => checks.into_iter().next(),
        };
    let (mut ttl, mut health) = (None, None);
    if let Some(c) = check {
        match (&c.ttl, &c.http, &c.tcp) {
            (Some(_), None, None) => ttl = duration("TTL", &c.ttl)?,
            (None, Some(_), None) | (None, None, Some(_)) => {
                health = Some(HealthCheck {
                    http: c.http.clone(),
                    tcp: c.tcp.clone(),
                    interval: duration("Interval", &c.interval)?,
                    timeout: duration("Timeout", &c.timeout)?,
                    deregister_critical_after: duration(
                        "DeregisterCriticalServiceAfter",
                        &c.deregister_critical_service_after,
                    )?,
                    success_before_passing: c.success_before_passing,
                    failures_before_critical: c.failures_before_critical,
                })
            }
            _ => {
                return Err(Error::InvalidInput(
                    "a check has one of TTL, HTTP or TCP (netget runs no scripts, gRPC or Docker \
                     checks)"
                        .into(),
                ))
            }
        }
    }
    if ttl.is_none() && health.is_none() {
        ttl = Some(WireDuration(NO_CHECK_TTL));
    }
    let host = r.address.unwrap_or_else(|| remote.to_string());
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host
    };
    let address = match r.port {
        Some(p) if p > u32::from(u16::MAX) => {
            return Err(Error::InvalidInput(format!("Port {p} is over 65535")))
        }
        Some(p) => format!("{host}:{p}"),
        None => host,
    };
    let registration = Registration {
        address,
        tags: r.tags.unwrap_or_default(),
        metadata: r
            .meta
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, serde_json::Value::String(v)))
            .collect(),
        weight: r.weights.and_then(|w| w.passing),
        ttl,
        health,
        ..Registration::default()
    };
    Ok((name, id, registration))
}

/// Registers a service as Consul's agent does: a REST registration in the datacenter's network.
#[utoipa::path(put, path = "/v1/agent/service/register", tag = "consul",
    params(("dc" = Option<DatacenterSchema>, Query, description = "The network (empty or left out: the first served)"),
        ("x-consul-token" = Option<String>, Header, description = "A token, for networks whose policy is `token`")),
    request_body(content = AgentServiceRegistration, content_type = "application/json"),
    responses((status = 200, description = "Registered (an empty body)"), (status = "default", description = REFUSED, body = super::openapi::ErrorAnswer)))]
pub(super) async fn agent_register(
    State(s): State<Arc<RegistryState>>,
    ConnectInfo(remote): ConnectInfo<RemoteAddr>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let (_, who, network) = asked(&s, &remote, &headers, raw.as_deref())?;
    let value: serde_json::Value = parse_body(&s, body)?;
    let r: AgentServiceRegistration = serde_json::from_value(canonical_keys(value))
        .map_err(|e| Error::InvalidInput(format!("bad Consul service registration: {e}")))?;
    let (name, id, registration) = to_registration(r, remote.0.ip())?;
    ops::register(
        &s,
        Caller::Http(&who),
        Registering {
            network,
            name,
            id: Some(id),
            registration,
        },
    )
    .await?;
    Ok(().into_response())
}

/// The instances of the network with this id: one for what the Consul API registered (an id is
/// a service's there); several only where netget's own API gave one id to several services, and
/// then Consul's endpoints act on all of them.
fn by_id(
    s: &RegistryState,
    who: &HttpCaller,
    network: &NetworkName,
    id: &str,
) -> Result<Vec<(NetworkName, ServiceName, InstanceId)>> {
    let found: Vec<_> = match InstanceId::new(id) {
        Ok(id) => ops::instances(s, Caller::Http(who), network, None, false, &[])?
            .iter()
            .filter(|i| i.id == id)
            .map(|i| (i.network.clone(), i.name.clone(), id.clone()))
            .collect(),
        Err(_) => Vec::new(),
    };
    if found.is_empty() {
        return Err(Error::NotFound(format!(
            "no service with ID {id:?} in {:?}",
            network.as_str()
        )));
    }
    Ok(found)
}

/// Deregisters a service registered through the agent (or over REST) by its id.
#[utoipa::path(put, path = "/v1/agent/service/deregister/{id}", tag = "consul",
    params(("id" = InstanceId, Path, description = "The service's ID"),
        ("dc" = Option<DatacenterSchema>, Query, description = "The network (empty or left out: the first served)"),
        ("x-consul-token" = Option<String>, Header, description = "A token, for networks whose policy is `token`")),
    responses((status = 200, description = "Deregistered (an empty body)"), (status = "default", description = REFUSED, body = super::openapi::ErrorAnswer)))]
pub(super) async fn agent_deregister(
    State(s): State<Arc<RegistryState>>,
    ConnectInfo(remote): ConnectInfo<RemoteAddr>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let (_, who, network) = asked(&s, &remote, &headers, raw.as_deref())?;
    for key in by_id(&s, &who, &network, &id)? {
        ops::deregister(&s, Caller::Http(&who), &key).await?;
    }
    Ok(().into_response())
}

/// Marks a TTL check passing: renews the TTL of the service whose check it is.
#[utoipa::path(put, path = "/v1/agent/check/pass/{check}", tag = "consul",
    params(("check" = String, Path, description = "`service:<ID>` (or the service's ID)"),
        ("dc" = Option<DatacenterSchema>, Query, description = "The network (empty or left out: the first served)"),
        ("x-consul-token" = Option<String>, Header, description = "A token, for networks whose policy is `token`")),
    responses((status = 200, description = "Renewed (an empty body)"), (status = "default", description = REFUSED, body = super::openapi::ErrorAnswer)))]
pub(super) async fn agent_check_pass(
    State(s): State<Arc<RegistryState>>,
    ConnectInfo(remote): ConnectInfo<RemoteAddr>,
    Path(check): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let (_, who, network) = asked(&s, &remote, &headers, raw.as_deref())?;
    let id = check.strip_prefix("service:").unwrap_or(&check);
    for key in by_id(&s, &who, &network, id)? {
        ops::heartbeat(&s, Caller::Http(&who), &key)?;
    }
    Ok(().into_response())
}

/// The first segments of Consul's API paths (`/v1/agent/…`, `/v1/kv/…`).
const CONSUL_PATHS: &[&str] = &[
    "acl",
    "agent",
    "catalog",
    "config",
    "connect",
    "coordinate",
    "event",
    "health",
    "kv",
    "operator",
    "query",
    "session",
    "snapshot",
    "status",
    "txn",
];

/// For a path of Consul's API that netget does not serve, a refusal naming it and what is
/// supported; `None` for any other path.
pub(super) fn unsupported(method: &axum::http::Method, path: &str) -> Option<Error> {
    let first = path.strip_prefix("/v1/")?.split('/').next()?;
    if !CONSUL_PATHS.contains(&first) {
        return None;
    }
    Some(Error::NotFound(format!(
        "{method} {} is not part of netget's Consul-compatible API; it serves GET /v1/agent/self, \
         /v1/catalog/services, /v1/catalog/service/{{name}}, /v1/health/service/{{name}} and PUT \
         /v1/agent/service/register, /v1/agent/service/deregister/{{id}}, \
         /v1/agent/check/pass/{{check}} (README)",
        path
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_read_in_any_case_and_with_underscores_but_meta_keys_stay() {
        let v = serde_json::json!({
            "name": "web", "id": "w1", "address": "10.0.0.5", "port": 8080,
            "enable_tag_override": true, "meta": {"Zone_Name": "a"},
            "checks": [{"ttl": "10s"}], "weights": {"passing": 3}
        });
        let r: AgentServiceRegistration = serde_json::from_value(canonical_keys(v)).unwrap();
        let (name, id, reg) = to_registration(r, "127.0.0.1".parse().unwrap()).unwrap();
        assert_eq!((name.as_str(), id.as_str()), ("web", "w1"));
        assert_eq!(reg.address, "10.0.0.5:8080");
        assert_eq!(reg.ttl, Some(WireDuration(Duration::from_secs(10))));
        assert_eq!(reg.weight, Some(3));
        assert_eq!(reg.metadata["Zone_Name"], "a");
    }

    #[test]
    fn checks_map_to_netget_checks_and_what_netget_cannot_run_is_refused() {
        let parse = |v: serde_json::Value| {
            serde_json::from_value::<AgentServiceRegistration>(canonical_keys(v))
                .map_err(|e| e.to_string())
                .and_then(|r| {
                    to_registration(r, "10.1.1.1".parse().unwrap()).map_err(|e| e.to_string())
                })
        };
        let (_, id, reg) = parse(serde_json::json!({
            "Name": "api", "Port": 80,
            "Check": {"HTTP": "http://10.1.1.1/health", "Interval": "5s", "DeregisterCriticalServiceAfter": "1m"}
        }))
        .unwrap();
        assert_eq!(id.as_str(), "api", "the id defaults to the name");
        assert_eq!(
            reg.address, "10.1.1.1:80",
            "the host defaults to the caller's"
        );
        assert_eq!(reg.ttl, None);
        let h = reg.health.unwrap();
        assert_eq!(h.http.as_deref(), Some("http://10.1.1.1/health"));
        assert_eq!(
            h.deregister_critical_after,
            Some(WireDuration(Duration::from_secs(60)))
        );
        let (_, _, reg) = parse(serde_json::json!({"Name": "bare"})).unwrap();
        assert_eq!(
            reg.ttl,
            Some(WireDuration(NO_CHECK_TTL)),
            "no check: until deregistered"
        );
        let e = parse(
            serde_json::json!({"Name": "x", "Check": {"Args": ["/bin/true"], "Interval": "5s"}}),
        )
        .unwrap_err();
        assert!(e.contains("unknown field `Args`"), "{e}");
        let e = parse(serde_json::json!({"Name": "x", "Connect": {}})).unwrap_err();
        assert!(e.contains("unknown field `Connect`"), "{e}");
        let e = parse(serde_json::json!({"Name": "x", "Checks": [{"TTL": "5s"}, {"TTL": "6s"}]}))
            .unwrap_err();
        assert!(e.contains("Checks may hold one"), "{e}");
        let e = parse(
            serde_json::json!({"Name": "x", "Check": {"TTL": "5s"}, "Checks": [{"TTL": "6s"}]}),
        )
        .unwrap_err();
        assert!(e.contains("not both"), "{e}");
        let e =
            parse(serde_json::json!({"Name": "x", "Check": {"TTL": "5s", "HTTP": "http://a/"}}))
                .unwrap_err();
        assert!(e.contains("one of TTL, HTTP or TCP"), "{e}");
        let e = parse(serde_json::json!({"Name": ""})).unwrap_err();
        assert!(e.contains("invalid service name"), "{e}");
    }

    #[test]
    fn the_query_takes_consuls_parameters_and_ignores_those_it_has_no_use_for() {
        let q = parse_query(Some(
            "dc=prod&index=42&wait=2m&passing=1&tag=a&tag=b&stale&near=_agent",
        ))
        .unwrap();
        assert_eq!(q.dc.as_deref(), Some("prod"));
        assert_eq!(q.index, Some(42));
        assert_eq!(q.wait, Some(Duration::from_secs(120)));
        assert!(q.passing);
        assert_eq!(q.tags, ["a", "b"]);
        assert!(parse_query(Some("index=x")).is_err());
        assert!(parse_query(Some("wait=forever")).is_err());
        assert!(
            parse_query(Some("wait=0.5")).is_err(),
            "a wait needs its unit"
        );
        assert!(parse_query(Some("wait=0s")).is_err());
        assert!(parse_query(Some("wait=1.5s")).is_err());
        assert!(parse_query(Some("index=9223372036854775808")).is_err());
        assert_eq!(
            parse_query(Some("wait=500ms")).unwrap().wait,
            Some(Duration::from_millis(500))
        );
        assert_eq!(
            parse_query(Some("dc=")).unwrap().dc,
            None,
            "empty: the default"
        );
    }
}
