//! The HTTP front end: the REST API, `/metrics`, the dashboard and netget.js, and the upgrade to
//! WebSocket sessions, on one port.
//!
//! Every request passes the gate first (per-IP rate, browser origins, CORS). Handlers turn paths,
//! queries, headers and bodies into calls of the registry's operations (`ops`) and their results
//! into JSON answers; errors become `{"error": {"code", "message"}}` with the fitting status.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{ConnectInfo, Path, RawQuery, Request, State, WebSocketUpgrade};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use utoipa::OpenApi as _;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::cluster::ClusterSummary;
use super::directory::InstanceKey;
use super::listener::RemoteAddr;
use super::ops::{self, Caller, HttpCaller, Registering};
use super::state::RegistryState;
use crate::error::{Error, Result};
use crate::model::{
    Discovery, Instance, InstanceId, NetworkName, Registration, ServiceName, ServiceSummary, Status,
};
use crate::security::OriginPolicy;

/// The HTTP routes of a registry.
pub(super) fn router(state: Arc<RegistryState>) -> Router {
    // A body over the protocol limit but under the transport limit is read whole and refused
    // with NETGET_TOO_LARGE: refusing it unread closed the connection while the client was still
    // writing, and the client saw a broken pipe instead of the 413.
    let body_limit = axum::extract::DefaultBodyLimit::max(transport_limit(&state));
    let (routes, _) = documented().split_for_parts();
    routes
        .fallback(not_found)
        .layer(body_limit)
        .layer(axum::middleware::from_fn_with_state(state.clone(), gate))
        .with_state(state)
}

/// Every route, each with its OpenAPI operation: a route is added here, through `routes!`,
/// which needs the handler's `#[utoipa::path]` (a test holds this file to it).
fn documented() -> OpenApiRouter<Arc<RegistryState>> {
    OpenApiRouter::with_openapi(super::openapi::ApiDoc::openapi())
        .routes(routes!(health))
        .routes(routes!(networks))
        .routes(routes!(services))
        .routes(routes!(discover))
        .routes(routes!(prometheus_targets))
        .routes(routes!(register, deregister))
        .routes(routes!(heartbeat))
        .routes(routes!(cluster))
        .routes(routes!(ws))
        .routes(routes!(metrics))
        .routes(routes!(openapi_json))
        .routes(routes!(handshaker_js))
        .routes(routes!(dashboard))
        .routes(routes!(super::consul::agent_self))
        .routes(routes!(super::consul::catalog_services))
        .routes(routes!(super::consul::catalog_service))
        .routes(routes!(super::consul::health_service))
        .routes(routes!(super::consul::agent_register))
        .routes(routes!(super::consul::agent_deregister))
        .routes(routes!(super::consul::agent_check_pass))
}

/// The OpenAPI document of every route [`router`] serves.
pub fn openapi() -> serde_json::Value {
    let mut doc = serde_json::to_value(documented().into_openapi()).unwrap_or_default();
    super::openapi::add_rules(&mut doc);
    doc
}

/// The OpenAPI 3.1 document of this API, generated from the handlers (this one included).
#[utoipa::path(get, path = "/v1/openapi.json", tag = "registry",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json", body = Object)))]
async fn openapi_json() -> Response {
    static DOC: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let doc = DOC.get_or_init(|| openapi().to_string());
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        doc.as_str(),
    )
        .into_response()
}

/// Every request passes here first: the per-IP rate limit, the browser origin check, and CORS
/// headers (preflight included) for origins on the allow-list.
async fn gate(
    State(s): State<Arc<RegistryState>>,
    ConnectInfo(remote): ConnectInfo<RemoteAddr>,
    request: Request,
    next: Next,
) -> Response {
    if let Err(e) = s.guard.take_ip(remote.0.ip()) {
        s.metrics.reject(e.code());
        return ApiError(e).into_response();
    }
    let origin = header(request.headers(), "origin");
    let host = header(request.headers(), "host");
    if !s.config.origins.allows(origin.as_deref(), host.as_deref()) {
        s.metrics.reject("NETGET_FORBIDDEN");
        return ApiError(OriginPolicy::refusal(origin.as_deref().unwrap_or(""))).into_response();
    }
    let preflight = request.method() == Method::OPTIONS;
    let mut response = if preflight {
        StatusCode::NO_CONTENT.into_response()
    } else {
        next.run(request).await
    };
    if let Some(RefusedWith(code)) = response.extensions().get::<RefusedWith>() {
        s.metrics.reject(code);
    }
    if let Some(origin) = origin {
        let h = response.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&origin) {
            h.insert("access-control-allow-origin", v);
        }
        h.insert("vary", HeaderValue::from_static("Origin"));
        if preflight {
            h.insert(
                "access-control-allow-methods",
                HeaderValue::from_static("GET, PUT, DELETE, OPTIONS"),
            );
            h.insert(
                "access-control-allow-headers",
                HeaderValue::from_static("authorization, content-type"),
            );
            h.insert("access-control-max-age", HeaderValue::from_static("600"));
        }
    }
    response
}

pub(super) fn header(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// The bearer token of a request, if any.
pub(super) fn bearer(h: &HeaderMap) -> Option<String> {
    let v = header(h, "authorization")?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_string())
}

/// An error as an HTTP answer: `{"error": {"code", "message"}}` with the fitting status.
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e)
    }
}

/// The code of an error answer, left in the response's extensions for the metrics.
#[derive(Debug, Clone, Copy)]
struct RefusedWith(&'static str);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.0.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::json!({ "error": self.0.to_body() });
        let mut response = (status, Json(body)).into_response();
        response.extensions_mut().insert(RefusedWith(self.0.code()));
        response
    }
}

/// Prometheus / OpenMetrics text: instances, sessions, registrations, discovery, watch pushes,
/// health checks, store commits, replication.
#[utoipa::path(get, path = "/metrics", tag = "registry",
    responses((status = 200, description = "OpenMetrics text", content_type = "application/openmetrics-text", body = String)))]
async fn metrics(State(s): State<Arc<RegistryState>>) -> Response {
    let cluster = cluster_summary(&s).await;
    let body = s
        .metrics
        .render(&s.directory, s.open_sessions(), cluster.as_ref());
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// The browser handshaker (`core/web/netget.js`), for `<script src="http://REGISTRY/netget.js">`.
#[utoipa::path(get, path = "/netget.js", tag = "registry",
    responses((status = 200, description = "The browser handshaker script", content_type = "text/javascript", body = String)))]
async fn handshaker_js() -> Response {
    (
        [
            (
                axum::http::header::CONTENT_TYPE,
                "text/javascript; charset=utf-8",
            ),
            (axum::http::header::CACHE_CONTROL, "no-cache"),
        ],
        include_str!("../../web/netget.js"),
    )
        .into_response()
}

/// The live dashboard (`core/web/dashboard.html`), built on netget.js.
#[utoipa::path(get, path = "/", tag = "registry",
    responses((status = 200, description = "The dashboard page", content_type = "text/html", body = String)))]
async fn dashboard() -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "text/html; charset=utf-8")],
        include_str!("../../web/dashboard.html"),
    )
        .into_response()
}

pub(super) type ApiResult<T> = std::result::Result<T, ApiError>;

async fn not_found(method: Method, uri: axum::http::Uri) -> ApiError {
    if let Some(e) = super::consul::unsupported(&method, uri.path()) {
        return ApiError(e);
    }
    ApiError(Error::NotFound(
        "no such endpoint; see the HTTP API in README.md (e.g. GET /v1/networks)".into(),
    ))
}

/// Whether the registry is up, and ready (in a cluster: every live peer's snapshot loaded).
#[utoipa::path(get, path = "/health", tag = "registry",
    responses((status = 200, description = "Up (the status code stays 200 while not ready)", body = HealthAnswer)))]
async fn health(State(s): State<Arc<RegistryState>>) -> Json<HealthAnswer> {
    let cluster = cluster_summary(&s).await;
    Json(HealthAnswer {
        status: Status::Passing,
        registry_id: s.registry_id.to_string(),
        version: env!("CARGO_PKG_VERSION"),
        sessions: s.open_sessions(),
        instances: s.directory.counts().iter().map(|(_, n)| n).sum(),
        // Serving the whole directory (in a cluster: every live peer's snapshot loaded).
        ready: cluster.as_ref().is_none_or(|c| c.ready),
        cluster,
    })
}

/// The answer of `GET /health`.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct HealthAnswer {
    /// Always `passing` when the registry answers at all.
    status: Status,
    /// This registry's id.
    registry_id: String,
    /// netget's version.
    version: &'static str,
    /// Open WebSocket sessions.
    sessions: usize,
    /// Instances in the directory, every network.
    instances: usize,
    /// Whether it serves the whole directory (in a cluster: every live peer's snapshot loaded).
    ready: bool,
    /// The cluster at a glance, when this registry gossips.
    #[serde(skip_serializing_if = "Option::is_none")]
    cluster: Option<ClusterSummary>,
}

/// The answer of `GET /v1/networks`.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct NetworksAnswer {
    /// The networks the caller may see.
    networks: Vec<NetworkCount>,
}

/// A network and its instance count.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct NetworkCount {
    name: NetworkName,
    instances: usize,
}

/// The answer of `GET /v1/networks/{network}/services`.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct ServicesAnswer {
    network: NetworkName,
    services: Vec<ServiceSummary>,
}

/// The answer of `GET /v1/cluster`.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct ClusterAnswer {
    /// This registry's id.
    registry_id: String,
    /// Every registry gossip knows of, this one first.
    members: Vec<super::cluster::Member>,
}

/// The cluster at a glance, when this registry gossips.
async fn cluster_summary(s: &RegistryState) -> Option<ClusterSummary> {
    Some(ClusterSummary::of(&s.cluster_members().await?))
}

/// The networks this caller may see, with their instance counts.
#[utoipa::path(get, path = "/v1/networks", tag = "discovery", params(("authorization" = Option<String>, Header, description = "`Bearer TOKEN`, for networks whose policy is `token`")),
    responses((status = 200, description = "The networks", body = NetworksAnswer)))]
async fn networks(State(s): State<Arc<RegistryState>>, headers: HeaderMap) -> Json<NetworksAnswer> {
    let networks = ops::networks(&s, bearer(&headers).as_deref())
        .into_iter()
        .map(|(name, instances)| NetworkCount { name, instances })
        .collect();
    Json(NetworksAnswer { networks })
}

/// The registries of this one's cluster, as gossip shows them (this one first).
#[utoipa::path(get, path = "/v1/cluster", tag = "registry",
    responses((status = 200, description = "The cluster's registries (this one alone when it does not gossip)", body = ClusterAnswer)))]
async fn cluster(State(s): State<Arc<RegistryState>>) -> Json<ClusterAnswer> {
    Json(ClusterAnswer {
        registry_id: s.registry_id.to_string(),
        members: s.cluster_members().await.unwrap_or_default(),
    })
}

/// The caller of a request, for the registry's operations.
fn caller(remote: &RemoteAddr, headers: &HeaderMap) -> HttpCaller {
    HttpCaller {
        token: bearer(headers),
        origin: header(headers, "origin"),
        remote: remote.0,
    }
}

/// The network, service and instance named in a path.
fn instance_key(network: &str, name: &str, id: &str) -> Result<InstanceKey> {
    Ok((
        NetworkName::new(network)?,
        ServiceName::new(name)?,
        InstanceId::new(id)?,
    ))
}

/// The services of a network, with instance counts by status.
#[utoipa::path(get, path = "/v1/networks/{network}/services", tag = "discovery",
    params(("network" = NetworkName, Path, description = "The network (`development` unless configured)"), ("authorization" = Option<String>, Header, description = "`Bearer TOKEN`, for networks whose policy is `token`")),
    responses((status = 200, description = "The services", body = ServicesAnswer), (status = "default", description = "Refused: `{\"error\": {\"code\", \"message\"}}` with the status that fits the code", body = super::openapi::ErrorAnswer)))]
async fn services(
    State(s): State<Arc<RegistryState>>,
    ConnectInfo(remote): ConnectInfo<RemoteAddr>,
    Path(network): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Json<ServicesAnswer>> {
    let network = NetworkName::new(&network)?;
    let services = ops::services(&s, Caller::Http(&caller(&remote, &headers)), &network)?;
    Ok(Json(ServicesAnswer { network, services }))
}

/// `?healthy=true|false&tag=a&tag=b` (also `all=true` for every status).
struct DiscoverQuery {
    healthy_only: bool,
    tags: Vec<String>,
}

/// A query flag as the OpenAPI document describes it: the values [`flag`] takes, the empty one
/// included (`?passing`, as Consul's clients send it, means true).
pub struct QueryFlag;

impl utoipa::PartialSchema for QueryFlag {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .enum_values(Some(["true", "false", "1", "0", ""]))
            .into()
    }
}

impl utoipa::ToSchema for QueryFlag {}

/// A query parameter that is a flag: `true`, `1` or empty (present), or `false`, `0`.
pub(super) fn flag(key: &str, value: &str) -> Result<bool> {
    match value {
        "true" | "1" | "" => Ok(true),
        "false" | "0" => Ok(false),
        other => Err(Error::InvalidInput(format!(
            "query parameter {key}={other:?} must be true or false"
        ))),
    }
}

fn parse_discover_query(raw: Option<&str>) -> Result<DiscoverQuery> {
    let mut q = DiscoverQuery {
        healthy_only: true,
        tags: Vec::new(),
    };
    for (k, v) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "healthy" => q.healthy_only = flag(&k, &v)?,
            "all" => q.healthy_only = !flag(&k, &v)?,
            "tag" => q.tags.push(v.into_owned()),
            other => {
                return Err(Error::InvalidInput(format!(
                    "unknown query parameter {other:?}; use healthy, all or tag"
                )))
            }
        }
    }
    Ok(q)
}

/// The instances of a service: healthy ones (passing or warning) unless `all`, carrying every
/// `tag` given.
#[utoipa::path(get, path = "/v1/networks/{network}/services/{name}", tag = "discovery",
    params(("network" = NetworkName, Path, description = "The network (`development` unless configured)"), ("name" = ServiceName, Path, description = "The service name"),
        ("healthy" = Option<QueryFlag>, Query, description = "Only healthy instances (default true)"),
        ("all" = Option<QueryFlag>, Query, description = "Every instance, critical ones too"),
        ("tag" = Option<Vec<String>>, Query, description = "A tag every instance must carry (repeatable)"),
        ("authorization" = Option<String>, Header, description = "`Bearer TOKEN`, for networks whose policy is `token`")),
    responses((status = 200, description = "The service's instances", body = Discovery), (status = "default", description = "Refused: `{\"error\": {\"code\", \"message\"}}` with the status that fits the code", body = super::openapi::ErrorAnswer)))]
async fn discover(
    State(s): State<Arc<RegistryState>>,
    ConnectInfo(remote): ConnectInfo<RemoteAddr>,
    Path((network, name)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let network = NetworkName::new(&network)?;
    let name = ServiceName::new(&name)?;
    let q = parse_discover_query(query.as_deref())?;
    let who = caller(&remote, &headers);
    let answer = ops::discover(
        &s,
        Caller::Http(&who),
        &network,
        &name,
        q.healthy_only,
        &q.tags,
    )?;
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/json"),
        )],
        answer.into_body(),
    )
        .into_response())
}

/// `?service=a&service=b&tag=t&healthy=true`: which instances Prometheus is told of.
struct TargetsQuery {
    services: Vec<ServiceName>,
    tags: Vec<String>,
    healthy_only: bool,
}

fn parse_targets_query(raw: Option<&str>) -> Result<TargetsQuery> {
    let mut q = TargetsQuery {
        services: Vec::new(),
        tags: Vec::new(),
        healthy_only: false,
    };
    for (k, v) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "service" => q.services.push(ServiceName::new(&v)?),
            "tag" => q.tags.push(v.into_owned()),
            "healthy" => q.healthy_only = flag(&k, &v)?,
            other => {
                return Err(Error::InvalidInput(format!(
                    "unknown query parameter {other:?}; use service, tag or healthy"
                )))
            }
        }
    }
    Ok(q)
}

/// The network's instances as Prometheus HTTP service discovery targets (`http_sd_configs`):
/// one target group per instance, every status unless `healthy`, `[]` when there are none.
#[utoipa::path(get, path = "/v1/networks/{network}/prometheus", tag = "discovery",
    params(("network" = NetworkName, Path, description = "The network (`development` unless configured)"),
        ("service" = Option<Vec<ServiceName>>, Query, description = "Only these services (repeatable)"),
        ("tag" = Option<Vec<String>>, Query, description = "A tag every instance must carry (repeatable)"),
        ("healthy" = Option<QueryFlag>, Query, description = "Only healthy instances (default false: every status, labelled)"),
        ("authorization" = Option<String>, Header, description = "`Bearer TOKEN`, for networks whose policy is `token`")),
    responses((status = 200, description = "Target groups", body = Vec<super::prometheus::TargetGroup>), (status = "default", description = "Refused: `{\"error\": {\"code\", \"message\"}}` with the status that fits the code", body = super::openapi::ErrorAnswer)))]
async fn prometheus_targets(
    State(s): State<Arc<RegistryState>>,
    ConnectInfo(remote): ConnectInfo<RemoteAddr>,
    Path(network): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Json<Vec<super::prometheus::TargetGroup>>> {
    let network = NetworkName::new(&network)?;
    let q = parse_targets_query(query.as_deref())?;
    let who = caller(&remote, &headers);
    let all = ops::instances(
        &s,
        Caller::Http(&who),
        &network,
        None,
        q.healthy_only,
        &q.tags,
    )?;
    let picked = all
        .iter()
        .map(|i| i.as_ref())
        .filter(|i| q.services.is_empty() || q.services.contains(&i.name));
    Ok(Json(super::prometheus::target_groups(picked)))
}

/// The largest frame or body read at all. It sits well above the protocol limit (`max_frame`) so
/// that an oversized one is still read and refused with NETGET_TOO_LARGE instead of a bare
/// connection reset; only beyond it is the connection cut.
fn transport_limit(s: &RegistryState) -> usize {
    s.config.max_frame.saturating_mul(16).max(1 << 20)
}

/// Reads a JSON body, telling apart "not JSON" from "JSON of the wrong shape".
pub(super) fn parse_body<T: serde::de::DeserializeOwned>(
    s: &RegistryState,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Result<T> {
    let body = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => Error::TooLarge(format!(
            "request body is over the limit of {} bytes",
            s.config.max_frame
        )),
        _ => Error::InvalidInput(format!("cannot read request body: {e}")),
    })?;
    if body.len() > s.config.max_frame {
        return Err(Error::too_large(
            "request body",
            body.len(),
            s.config.max_frame,
        ));
    }
    decode_body(&body)
}

/// Decodes a JSON body that is within the limits. Pure, so the fuzz target `registration` runs
/// exactly what a `PUT` body goes through.
pub(crate) fn decode_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T> {
    serde_json::from_slice(body).map_err(|e| {
        if e.is_syntax() || e.is_eof() {
            Error::MalformedJson(format!("request body is not valid JSON: {e}"))
        } else {
            Error::InvalidInput(format!("bad registration: {e}"))
        }
    })
}

/// Registers (201) or updates (200) a REST instance; it lives for its `ttl` (default 30 s)
/// from each heartbeat, or while its health check passes.
#[utoipa::path(put, path = "/v1/networks/{network}/services/{name}/instances/{id}", tag = "registration",
    params(("network" = NetworkName, Path, description = "The network (`development` unless configured)"), ("name" = ServiceName, Path, description = "The service name"), ("id" = InstanceId, Path, description = "The instance id"), ("authorization" = Option<String>, Header, description = "`Bearer TOKEN`, for networks whose policy is `token`")),
    request_body(content = Registration, content_type = "application/json"),
    responses(
        (status = 201, description = "Registered", body = Instance),
        (status = 200, description = "Updated", body = Instance),
        (status = "default", description = "Refused: `{\"error\": {\"code\", \"message\"}}` with the status that fits the code", body = super::openapi::ErrorAnswer)))]
async fn register(
    State(s): State<Arc<RegistryState>>,
    ConnectInfo(remote): ConnectInfo<RemoteAddr>,
    Path((network, name, id)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let (network, name, id) = instance_key(&network, &name, &id)?;
    let key = (network, name, id);
    let raw = body.as_ref().ok().map(|b| b.to_vec());
    if let Some(answer) = forwarded(&s, &headers, &key, Method::PUT, "", raw).await? {
        return Ok(answer);
    }
    let (network, name, id) = key;
    let registration: Registration = parse_body(&s, body)?;
    let who = caller(&remote, &headers);
    let request = Registering {
        network,
        name,
        id: Some(id),
        registration,
    };
    let done = ops::register(&s, Caller::Http(&who), request).await?;
    let status = if done.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(done.instance)).into_response())
}

/// Renews a REST instance's TTL (and brings a critical one back to passing).
#[utoipa::path(put, path = "/v1/networks/{network}/services/{name}/instances/{id}/heartbeat", tag = "registration",
    params(("network" = NetworkName, Path, description = "The network (`development` unless configured)"), ("name" = ServiceName, Path, description = "The service name"), ("id" = InstanceId, Path, description = "The instance id"), ("authorization" = Option<String>, Header, description = "`Bearer TOKEN`, for networks whose policy is `token`")),
    responses((status = 200, description = "Renewed", body = Instance), (status = "default", description = "Refused: `{\"error\": {\"code\", \"message\"}}` with the status that fits the code", body = super::openapi::ErrorAnswer)))]
async fn heartbeat(
    State(s): State<Arc<RegistryState>>,
    ConnectInfo(remote): ConnectInfo<RemoteAddr>,
    Path((network, name, id)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let key = instance_key(&network, &name, &id)?;
    if let Some(answer) = forwarded(&s, &headers, &key, Method::PUT, "/heartbeat", None).await? {
        return Ok(answer);
    }
    let who = caller(&remote, &headers);
    Ok(Json(ops::heartbeat(&s, Caller::Http(&who), &key)?).into_response())
}

/// Removes an instance (a REST one: only with the token that registered it).
#[utoipa::path(delete, path = "/v1/networks/{network}/services/{name}/instances/{id}", tag = "registration",
    params(("network" = NetworkName, Path, description = "The network (`development` unless configured)"), ("name" = ServiceName, Path, description = "The service name"), ("id" = InstanceId, Path, description = "The instance id"), ("authorization" = Option<String>, Header, description = "`Bearer TOKEN`, for networks whose policy is `token`")),
    responses((status = 200, description = "Removed: the instance as it was", body = Instance), (status = "default", description = "Refused: `{\"error\": {\"code\", \"message\"}}` with the status that fits the code", body = super::openapi::ErrorAnswer)))]
async fn deregister(
    State(s): State<Arc<RegistryState>>,
    ConnectInfo(remote): ConnectInfo<RemoteAddr>,
    Path((network, name, id)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let key = instance_key(&network, &name, &id)?;
    if let Some(answer) = forwarded(&s, &headers, &key, Method::DELETE, "", None).await? {
        return Ok(answer);
    }
    let who = caller(&remote, &headers);
    Ok(Json(ops::deregister(&s, Caller::Http(&who), &key).await?).into_response())
}

/// When the instance at `key` is a replica of a live peer's, that peer's answer to the same
/// request (`suffix` after the instance's path), unless the request was forwarded already.
async fn forwarded(
    s: &RegistryState,
    headers: &HeaderMap,
    key: &InstanceKey,
    method: Method,
    suffix: &str,
    body: Option<Vec<u8>>,
) -> Result<Option<Response>> {
    if headers.contains_key(super::cluster::FORWARDED_BY) {
        return Ok(None);
    }
    let Some(owner) = ops::owner_elsewhere(s, key).await else {
        return Ok(None);
    };
    let path = format!(
        "{}{suffix}",
        crate::client::rest::instance_path(key.0.as_str(), key.1.as_str(), key.2.as_str())
    );
    let (status, answer) =
        super::cluster::forward(s, &owner, method, &path, bearer(headers), body).await?;
    Ok(Some(
        (
            status,
            [(
                axum::http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            answer,
        )
            .into_response(),
    ))
}

/// Read buffer of each session's WebSocket, bytes: held for the session's life, so it is what
/// an idle session costs most (8 KiB was 40 % of a session's heap; 2 KiB then 1 KiB of its
/// ~11 KB). Most frames are well under it (a registration with its metadata is ~0.5 KB); a
/// larger one grows the buffer. Pipelined registrations read two frames a syscall instead of
/// four: no change in their rate measured (`netget bench`, alternated).
const WS_READ_BUFFER: usize = 1024;

/// The WebSocket endpoint of the netget/1 protocol (PROTOCOL.md): sessions of service and client
/// nodes, browsers (netget.js) and peer registries.
#[utoipa::path(get, path = "/v1/ws", tag = "registry",
    responses((status = 101, description = "Switched to a WebSocket session"), (status = "default", description = "Refused: `{\"error\": {\"code\", \"message\"}}` with the status that fits the code", body = super::openapi::ErrorAnswer)))]
async fn ws(
    State(s): State<Arc<RegistryState>>,
    ConnectInfo(remote): ConnectInfo<RemoteAddr>,
    headers: HeaderMap,
    upgrade: std::result::Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    let upgrade = upgrade.map_err(|e| {
        Error::Protocol(format!(
            "/v1/ws is a WebSocket endpoint ({e}); connect with a WebSocket client"
        ))
    })?;
    let permit = s.sessions.clone().try_acquire_owned().map_err(|_| {
        Error::RateLimited(format!(
            "the registry holds its maximum of {} sessions; try another registry node",
            s.config.max_sessions
        ))
    })?;
    let origin = headers
        .get("origin")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let hard_limit = transport_limit(&s);
    Ok(upgrade
        .max_message_size(hard_limit)
        .max_frame_size(hard_limit)
        // tungstenite's default read buffer (128 KiB, zero-filled on the first read) made every
        // idle session cost ~140 KB of RSS: 1.4 GB for 10k sessions. Registry frames are small;
        // a larger one grows the buffer for as long as it needs.
        .read_buffer_size(WS_READ_BUFFER)
        .on_upgrade(move |socket| async move {
            super::session::serve(socket, s, remote.0, origin, permit).await;
        }))
}
