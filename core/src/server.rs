//! The registry server: one port for the HTTP API and the WebSocket endpoint.
//!
//! [`Registry::spawn`] binds, starts serving in the background and hands back a
//! [`RegistryHandle`]; [`run`] serves an already-bound listener until a shutdown future resolves
//! (tests bind port 0 and pass the listener). Shutdown tells every session to close, answers
//! in-flight HTTP requests, then waits for the sessions to finish removing their instances.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{ConnectInfo, Path, RawQuery, Request, State, WebSocketUpgrade};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

use crate::config::RegistryConfig;
use crate::directory::{Directory, Owner};
use crate::error::{Error, Result};
use crate::identity::{NodeKey, REGISTRY_KEY_FILE};
use crate::model::{Instance, InstanceId, NetworkName, Registration, ServiceName};
use crate::security::{run_filter, FilterKind, FilterRequest, Guard, OriginPolicy};
use crate::session;
use crate::store::Store;
use crate::tls::{RegistryListener, RemoteAddr};

/// State shared by every request and session of one registry.
#[derive(Debug)]
pub struct Shared {
    /// The directory this registry serves.
    pub directory: Arc<Directory>,
    /// Configuration as started.
    pub config: RegistryConfig,
    /// The registry's identity key.
    pub key: NodeKey,
    /// The registry's id (derived from its key): what nodes sign, what instances carry.
    pub registry_id: Arc<str>,
    /// Policies, name claims and per-IP limits.
    pub guard: Guard,
    /// Publish/subscribe channels.
    pub channels: crate::channels::Channels,
    /// What the registry counts, for `/metrics`.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The active health checks of the instances this registry owns.
    pub health: Arc<crate::health::Health>,
    /// Where REST registrations, name claims and policies are kept across restarts.
    pub store: Store,
    /// Source of session ids.
    next_session: AtomicU64,
    /// Caps concurrent sessions; a permit is held for a session's lifetime.
    pub sessions: Arc<Semaphore>,
    /// Flips to `true` when the registry starts shutting down.
    pub shutdown_rx: watch::Receiver<bool>,
}

impl Shared {
    /// A fresh session id.
    pub fn next_session_id(&self) -> u64 {
        self.next_session.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Sessions open right now.
    pub fn open_sessions(&self) -> usize {
        self.config.max_sessions - self.sessions.available_permits()
    }
}

/// A running registry. Dropping it does not stop the registry; call [`RegistryHandle::shutdown`].
#[derive(Debug)]
pub struct RegistryHandle {
    addr: SocketAddr,
    tls: bool,
    shared: Arc<Shared>,
    shutdown_tx: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<()>>,
}

impl RegistryHandle {
    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://IP:PORT` (or `https://`), what clients use as a registry node.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// The registry's id.
    pub fn registry_id(&self) -> &str {
        &self.shared.registry_id
    }

    /// The networks served, as `name (policy)`.
    pub fn networks(&self) -> Vec<String> {
        self.shared
            .directory
            .networks()
            .iter()
            .map(|n| {
                let policy = self.shared.guard.policy(n).map(|p| p.name()).unwrap_or("?");
                format!("{n} ({policy})")
            })
            .collect()
    }

    /// The registry's directory (for embedding and tests).
    pub fn directory(&self) -> &Arc<Directory> {
        &self.shared.directory
    }

    /// Stops accepting, closes every session (removing its instances), answers in-flight
    /// requests, and returns once all of that is done.
    pub async fn shutdown(self) -> Result<()> {
        let _ = self.shutdown_tx.send(true);
        self.task
            .await
            .map_err(|e| Error::Internal(format!("registry task failed: {e}")))?
    }

    /// Waits until the registry stops (after a shutdown signal from elsewhere).
    pub async fn wait(self) -> Result<()> {
        self.task
            .await
            .map_err(|e| Error::Internal(format!("registry task failed: {e}")))?
    }

    /// A sender that triggers shutdown, for signal handlers.
    pub fn shutdown_trigger(&self) -> watch::Sender<bool> {
        self.shutdown_tx.clone()
    }
}

/// Entry point for starting a registry.
pub struct Registry;

impl Registry {
    /// Binds `config.listen` and serves in the background.
    pub async fn spawn(config: RegistryConfig) -> Result<RegistryHandle> {
        let listener = TcpListener::bind(config.listen).await.map_err(|e| {
            Error::Io(format!(
                "cannot listen on {}: {e} (is another registry running there? use --listen with another port, or port 0)",
                config.listen
            ))
        })?;
        Registry::spawn_on(listener, config).await
    }

    /// Serves an already-bound listener in the background.
    pub async fn spawn_on(listener: TcpListener, config: RegistryConfig) -> Result<RegistryHandle> {
        let addr = listener
            .local_addr()
            .map_err(|e| Error::Io(format!("listener has no address: {e}")))?;
        check_timing(&config)?;
        let mut config = config;
        let data_dir = config.data_dir.clone();
        let (store, loaded) = tokio::task::spawn_blocking(move || Store::open(&data_dir))
            .await
            .map_err(|e| Error::Internal(format!("store open failed: {e}")))??;
        if config.networks_configured {
            store.set_networks(&config.networks).await?;
        } else if !loaded.networks.is_empty() {
            config.networks = loaded.networks.clone();
        }
        let listener = RegistryListener::new(listener, config.tls.as_ref())?;
        let tls = listener.is_tls();
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let shared = build_shared(config, shutdown_rx.clone(), store)?;
        restore(&shared, loaded);
        let mut stop = shutdown_rx;
        let task = tokio::spawn(run(listener, shared.clone(), async move {
            let _ = stop.wait_for(|s| *s).await;
        }));
        Ok(RegistryHandle {
            addr,
            tls,
            shared,
            shutdown_tx,
            task,
        })
    }
}

/// Refuses settings that would break every session (a zero timeout panics tokio's interval; a
/// ping interval at or above the timeout closes live sessions).
fn check_timing(c: &RegistryConfig) -> Result<()> {
    if c.session_timeout.is_zero()
        || c.ping_interval.is_zero()
        || c.ping_interval >= c.session_timeout
    {
        return Err(Error::InvalidInput(format!(
            "session timeout {:?} and ping interval {:?}: both must be above 0 and the ping interval below the timeout",
            c.session_timeout, c.ping_interval
        )));
    }
    if c.handshake_timeout.is_zero() || c.challenge_ttl.is_zero() {
        return Err(Error::InvalidInput(
            "handshake timeout and challenge TTL must be above 0".into(),
        ));
    }
    Ok(())
}

/// Puts what the store held back in place: REST registrations (with their checks; their TTL
/// clocks restart now) and name claims. Session registrations return as their nodes reconnect.
fn restore(shared: &Arc<Shared>, loaded: crate::store::Loaded) {
    shared.guard.restore_claims(loaded.claims);
    let mut restored = 0usize;
    for record in loaded.rest {
        let owner = Owner::Rest {
            ttl: record.ttl_ms.map(Duration::from_millis),
            token: record.token.map(Arc::from),
        };
        let mut instance = record.instance;
        instance.registry = shared.registry_id.clone();
        match shared.directory.register(instance, owner) {
            Ok(done) => {
                shared.health.track(&done.instance);
                restored += 1;
            }
            Err(e) => tracing::warn!(error = %e, "a stored registration was not restored"),
        }
    }
    if restored > 0 {
        tracing::info!(restored, "REST registrations restored from the store");
    }
    let store = shared.store.clone();
    shared
        .directory
        .on_rest_removed(move |instance| store.forget_rest(instance));
}

fn build_shared(
    config: RegistryConfig,
    shutdown_rx: watch::Receiver<bool>,
    store: Store,
) -> Result<Arc<Shared>> {
    let key = match &config.key {
        Some(k) => k.clone(),
        None => NodeKey::load_or_create(&config.data_dir, REGISTRY_KEY_FILE)?,
    };
    let registry_id = key.short_id();
    let names: Vec<NetworkName> = config.networks.iter().map(|n| n.name.clone()).collect();
    let directory = Arc::new(Directory::new(&registry_id, &names));
    let guard = Guard::new(&config.networks, config.limits.clone());
    let mut metrics = crate::metrics::Metrics::new();
    metrics.register_store(store.stats());
    let metrics = Arc::new(metrics);
    let health = crate::health::Health::new(directory.clone(), metrics.clone())?;
    Ok(Arc::new(Shared {
        store,
        guard,
        channels: Default::default(),
        metrics,
        health,
        directory,
        sessions: Arc::new(Semaphore::new(config.max_sessions)),
        config,
        key,
        registry_id: Arc::from(registry_id),
        next_session: AtomicU64::new(0),
        shutdown_rx,
    }))
}

/// Serves `listener` until `shutdown` resolves, then drains sessions.
pub async fn run(
    listener: RegistryListener,
    shared: Arc<Shared>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    tracing::info!(addr = ?axum::serve::Listener::local_addr(&listener).ok().map(|a| a.0), tls = listener.is_tls(), registry = %shared.registry_id, "registry listening");
    let reaper = tokio::spawn(reap(shared.clone()));
    let app = router(shared.clone());
    let serve = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<RemoteAddr>(),
    )
    .with_graceful_shutdown(shutdown);
    let served = serve.await;
    reaper.abort();
    shared.health.stop_all();
    // Sessions watch the same signal and close themselves, each releasing its permit when it
    // has removed its instances; holding every permit means all are done. Bounded so a wedged
    // peer cannot hold shutdown forever.
    let all = u32::try_from(shared.config.max_sessions).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(Duration::from_secs(5), shared.sessions.acquire_many(all)).await;
    tracing::info!("registry stopped");
    served.map_err(|e| Error::Io(format!("server error: {e}")))
}

/// Removes expired REST registrations every 250 ms and drops idle service entries now and then.
async fn reap(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut rounds = 0u64;
    loop {
        tick.tick().await;
        let expired = shared.directory.expire(Instant::now());
        shared.metrics.deregistered("expired", expired);
        rounds += 1;
        if rounds % 240 == 0 {
            shared.directory.sweep();
            shared.channels.sweep();
        }
    }
}

/// The HTTP routes of a registry.
pub fn router(shared: Arc<Shared>) -> Router {
    let body_limit = axum::extract::DefaultBodyLimit::max(shared.config.max_frame);
    Router::new()
        .route("/health", get(health))
        .route("/v1/networks", get(networks))
        .route("/v1/networks/{network}/services", get(services))
        .route("/v1/networks/{network}/services/{name}", get(discover))
        .route(
            "/v1/networks/{network}/services/{name}/instances/{id}",
            put(register).delete(deregister),
        )
        .route(
            "/v1/networks/{network}/services/{name}/instances/{id}/heartbeat",
            put(heartbeat),
        )
        .route("/v1/ws", get(ws))
        .route("/metrics", get(metrics))
        .route("/netget.js", get(handshaker_js))
        .route("/", get(dashboard))
        .fallback(not_found)
        .layer(body_limit)
        .layer(axum::middleware::from_fn_with_state(shared.clone(), gate))
        .with_state(shared)
}

/// Every request passes here first: the per-IP rate limit, the browser origin check, and CORS
/// headers (preflight included) for origins on the allow-list.
async fn gate(
    State(s): State<Arc<Shared>>,
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

fn header(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// The bearer token of a request, if any.
fn bearer(h: &HeaderMap) -> Option<String> {
    let v = header(h, "authorization")?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_string())
}

/// Who a REST caller is, for ownership: a digest of its token (never the token itself).
fn rest_owner(token: Option<&str>, ttl: Option<Duration>) -> Owner {
    Owner::Rest {
        ttl,
        token: token.map(|t| Arc::from(crate::identity::token_digest(t))),
    }
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

async fn metrics(State(s): State<Arc<Shared>>) -> Response {
    let body = s.metrics.render(&s.directory, s.open_sessions());
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
async fn handshaker_js() -> Response {
    (
        [
            (
                axum::http::header::CONTENT_TYPE,
                "text/javascript; charset=utf-8",
            ),
            (axum::http::header::CACHE_CONTROL, "no-cache"),
        ],
        include_str!("../web/netget.js"),
    )
        .into_response()
}

/// The live dashboard (`core/web/dashboard.html`), built on netget.js.
async fn dashboard() -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "text/html; charset=utf-8")],
        include_str!("../web/dashboard.html"),
    )
        .into_response()
}

type ApiResult<T> = std::result::Result<T, ApiError>;

async fn not_found() -> ApiError {
    ApiError(Error::NotFound(
        "no such endpoint; see the HTTP API in README.md (e.g. GET /v1/networks)".into(),
    ))
}

async fn health(State(s): State<Arc<Shared>>) -> Json<serde_json::Value> {
    let instances: usize = s.directory.counts().iter().map(|(_, n)| n).sum();
    Json(serde_json::json!({
        "status": "passing",
        "registryId": s.registry_id,
        "version": env!("CARGO_PKG_VERSION"),
        "sessions": s.open_sessions(),
        "instances": instances,
    }))
}

async fn networks(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Json<serde_json::Value> {
    let token = bearer(&headers);
    let list: Vec<_> = s
        .directory
        .counts()
        .into_iter()
        .filter(|(name, _)| s.guard.visible(name, token.as_deref()))
        .map(|(name, instances)| serde_json::json!({ "name": name, "instances": instances }))
        .collect();
    Json(serde_json::json!({ "networks": list }))
}

/// The network named in the path, after checking the caller's token against its policy.
fn network_of(s: &Shared, raw: &str, headers: &HeaderMap) -> Result<NetworkName> {
    let n = NetworkName::new(raw)?;
    s.guard.check_http(&n, bearer(headers).as_deref())?;
    Ok(n)
}

/// The key of an instance named in the path, for a write: checks the policy for writes.
fn writable_instance(
    s: &Shared,
    network: &str,
    name: &str,
    id: &str,
    headers: &HeaderMap,
) -> Result<(NetworkName, ServiceName, InstanceId)> {
    let key = instance_key(s, network, name, id, headers)?;
    s.guard
        .check_http_write(&key.0, bearer(headers).as_deref())?;
    Ok(key)
}

async fn services(
    State(s): State<Arc<Shared>>,
    Path(network): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Json<serde_json::Value>> {
    let network = network_of(&s, &network, &headers)?;
    let services = s.directory.services(&network)?;
    Ok(Json(
        serde_json::json!({ "network": network, "services": services }),
    ))
}

/// `?healthy=true|false&tag=a&tag=b` (also `all=true` for every status).
struct DiscoverQuery {
    healthy_only: bool,
    tags: Vec<String>,
}

fn parse_discover_query(raw: Option<&str>) -> Result<DiscoverQuery> {
    let mut q = DiscoverQuery {
        healthy_only: true,
        tags: Vec::new(),
    };
    for (k, v) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        let flag = || match v.as_ref() {
            "true" | "1" | "" => Ok(true),
            "false" | "0" => Ok(false),
            other => Err(Error::InvalidInput(format!(
                "query parameter {k}={other:?} must be true or false"
            ))),
        };
        match k.as_ref() {
            "healthy" => q.healthy_only = flag()?,
            "all" => q.healthy_only = !flag()?,
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

async fn discover(
    State(s): State<Arc<Shared>>,
    Path((network, name)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let network = network_of(&s, &network, &headers)?;
    let name = ServiceName::new(&name)?;
    let q = parse_discover_query(query.as_deref())?;
    let body = s
        .directory
        .discover_encoded(&network, &name, q.healthy_only, &q.tags)?
        .into_body();
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response())
}

fn instance_key(
    s: &Shared,
    network: &str,
    name: &str,
    id: &str,
    headers: &HeaderMap,
) -> Result<(NetworkName, ServiceName, InstanceId)> {
    Ok((
        network_of(s, network, headers)?,
        ServiceName::new(name)?,
        InstanceId::new(id)?,
    ))
}

/// Reads a JSON body, telling apart "not JSON" from "JSON of the wrong shape".
fn parse_body<T: serde::de::DeserializeOwned>(
    s: &Shared,
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
    serde_json::from_slice(&body).map_err(|e| {
        if e.is_syntax() || e.is_eof() {
            Error::MalformedJson(format!("request body is not valid JSON: {e}"))
        } else {
            Error::InvalidInput(format!("bad registration: {e}"))
        }
    })
}

async fn register(
    State(s): State<Arc<Shared>>,
    ConnectInfo(remote): ConnectInfo<RemoteAddr>,
    Path((network, name, id)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let (network, name, id) = writable_instance(&s, &network, &name, &id, &headers)?;
    let reg: Registration = parse_body(&s, body)?;
    reg.validate()?;
    if reg.signature.is_some() || reg.signed_at.is_some() {
        return Err(Error::InvalidInput(
            "signed registrations go over a WebSocket session, where the key is known".into(),
        )
        .into());
    }
    // A registration lives by its TTL, or — when it declares an active health check and no
    // TTL — by that check alone.
    let ttl = match (reg.ttl, &reg.health) {
        (Some(t), _) => Some(t.0),
        (None, Some(_)) => None,
        (None, None) => Some(s.config.default_ttl),
    };
    if ttl.is_some_and(|t| t.is_zero()) {
        return Err(Error::InvalidInput("ttl must be more than 0".into()).into());
    }
    let token = bearer(&headers);
    run_filter(s.config.filter.as_ref(), || FilterRequest {
        origin: header(&headers, "origin"),
        token: token.clone(),
        service: Some(name.to_string()),
        instance_id: Some(id.to_string()),
        address: Some(reg.address.clone()),
        metadata: reg.metadata.clone(),
        ..FilterRequest::new(FilterKind::Register, network.as_str(), remote.0.to_string())
    })
    .await?;
    let instance = Instance::from_registration(network, name, id, reg, s.registry_id.clone());
    let owner = rest_owner(token.as_deref(), ttl);
    let digest = match &owner {
        Owner::Rest { token, .. } => token.as_deref().map(str::to_string),
        Owner::Session { .. } => None,
    };
    let done = s.directory.register(instance, owner)?;
    // Queued right after the directory change (so the store sees changes in their order) and
    // acknowledged only once on disk.
    if let Err(e) = s
        .store
        .put_rest(&done.instance, ttl, digest.as_deref())
        .await
    {
        let key = (
            done.instance.network.clone(),
            done.instance.name.clone(),
            done.instance.id.clone(),
        );
        s.directory.evict(&key);
        return Err(e.into());
    }
    s.metrics.registered("http");
    s.health.track(&done.instance);
    let status = if done.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(done.instance)).into_response())
}

async fn heartbeat(
    State(s): State<Arc<Shared>>,
    Path((network, name, id)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> ApiResult<Json<Arc<Instance>>> {
    let key = writable_instance(&s, &network, &name, &id, &headers)?;
    let by = rest_owner(bearer(&headers).as_deref(), None);
    Ok(Json(s.directory.heartbeat(&key, &by)?))
}

async fn deregister(
    State(s): State<Arc<Shared>>,
    Path((network, name, id)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> ApiResult<Json<Arc<Instance>>> {
    let key = writable_instance(&s, &network, &name, &id, &headers)?;
    let by = rest_owner(bearer(&headers).as_deref(), None);
    let gone = s.directory.deregister(&key, &by)?;
    s.store.delete_rest(&gone).await?;
    s.metrics.deregistered("request", 1);
    Ok(Json(gone))
}

/// Read buffer of each session's WebSocket, bytes.
const WS_READ_BUFFER: usize = 8 * 1024;

async fn ws(
    State(s): State<Arc<Shared>>,
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
    // The transport limit sits well above the protocol limit so an oversized frame is still read
    // and refused with NETGET_TOO_LARGE instead of a bare connection reset.
    let hard_limit = s.config.max_frame.saturating_mul(16).max(1 << 20);
    Ok(upgrade
        .max_message_size(hard_limit)
        .max_frame_size(hard_limit)
        // tungstenite's default read buffer (128 KiB, zero-filled on the first read) made every
        // idle session cost ~140 KB of RSS: 1.4 GB for 10k sessions. Registry frames are small;
        // a larger one grows the buffer for as long as it needs.
        .read_buffer_size(WS_READ_BUFFER)
        .on_upgrade(move |socket| async move {
            session::serve(socket, s, remote.0, origin, permit).await;
        }))
}
