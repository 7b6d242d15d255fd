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
use axum::extract::{ConnectInfo, Path, RawQuery, State, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::serve::ListenerExt;
use axum::{Json, Router};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

use crate::config::RegistryConfig;
use crate::directory::{Directory, Owner};
use crate::error::{Error, Result};
use crate::identity::{NodeKey, REGISTRY_KEY_FILE};
use crate::model::{Instance, InstanceId, NetworkName, Registration, ServiceName};
use crate::session;

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
    pub registry_id: String,
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
    shared: Arc<Shared>,
    shutdown_tx: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<()>>,
}

impl RegistryHandle {
    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://IP:PORT`, what clients use as a registry node.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The registry's id.
    pub fn registry_id(&self) -> &str {
        &self.shared.registry_id
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
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let shared = build_shared(config, shutdown_rx.clone())?;
        let mut stop = shutdown_rx;
        let task = tokio::spawn(run(listener, shared.clone(), async move {
            let _ = stop.wait_for(|s| *s).await;
        }));
        Ok(RegistryHandle {
            addr,
            shared,
            shutdown_tx,
            task,
        })
    }
}

fn build_shared(config: RegistryConfig, shutdown_rx: watch::Receiver<bool>) -> Result<Arc<Shared>> {
    let key = match &config.key {
        Some(k) => k.clone(),
        None => NodeKey::load_or_create(&config.data_dir, REGISTRY_KEY_FILE)?,
    };
    let registry_id = key.short_id();
    let directory = Arc::new(Directory::new(&registry_id, &config.networks));
    Ok(Arc::new(Shared {
        directory,
        sessions: Arc::new(Semaphore::new(config.max_sessions)),
        config,
        key,
        registry_id,
        next_session: AtomicU64::new(0),
        shutdown_rx,
    }))
}

/// Serves `listener` until `shutdown` resolves, then drains sessions.
pub async fn run(
    listener: TcpListener,
    shared: Arc<Shared>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    tracing::info!(addr = ?listener.local_addr().ok(), registry = %shared.registry_id, "registry listening");
    let reaper = tokio::spawn(reap(shared.clone()));
    let app = router(shared.clone());
    // Small frames (events, answers) must leave at once: without TCP_NODELAY, Nagle's algorithm
    // meets the peer's delayed ACK and a push can wait tens of milliseconds.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let serve = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown);
    let served = serve.await;
    reaper.abort();
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
        shared.directory.expire(Instant::now());
        rounds += 1;
        if rounds % 240 == 0 {
            shared.directory.sweep();
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
        .fallback(not_found)
        .layer(body_limit)
        .with_state(shared)
}

/// An error as an HTTP answer: `{"error": {"code", "message"}}` with the fitting status.
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.0.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::json!({ "error": self.0.to_body() });
        (status, Json(body)).into_response()
    }
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

async fn networks(State(s): State<Arc<Shared>>) -> Json<serde_json::Value> {
    let list: Vec<_> = s
        .directory
        .counts()
        .into_iter()
        .map(|(name, instances)| serde_json::json!({ "name": name, "instances": instances }))
        .collect();
    Json(serde_json::json!({ "networks": list }))
}

fn network_of(s: &Shared, raw: &str) -> Result<NetworkName> {
    let n = NetworkName::new(raw)?;
    s.directory.check_network(&n)?;
    Ok(n)
}

async fn services(
    State(s): State<Arc<Shared>>,
    Path(network): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let network = network_of(&s, &network)?;
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
) -> ApiResult<Response> {
    let network = network_of(&s, &network)?;
    let name = ServiceName::new(&name)?;
    let q = parse_discover_query(query.as_deref())?;
    let found = s
        .directory
        .discover(&network, &name, q.healthy_only, &q.tags)?;
    Ok(Json(found).into_response())
}

fn instance_key(
    s: &Shared,
    network: &str,
    name: &str,
    id: &str,
) -> Result<(NetworkName, ServiceName, InstanceId)> {
    Ok((
        network_of(s, network)?,
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
    Path((network, name, id)): Path<(String, String, String)>,
    body: std::result::Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let (network, name, id) = instance_key(&s, &network, &name, &id)?;
    let reg: Registration = parse_body(&s, body)?;
    reg.validate()?;
    let ttl = reg.ttl.map(|d| d.0).unwrap_or(s.config.default_ttl);
    if ttl.is_zero() {
        return Err(Error::InvalidInput("ttl must be more than 0".into()).into());
    }
    let instance = Instance::from_registration(network, name, id, reg, &s.registry_id);
    let done = s.directory.register(instance, Owner::Rest { ttl })?;
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
) -> ApiResult<Json<Arc<Instance>>> {
    let key = instance_key(&s, &network, &name, &id)?;
    Ok(Json(s.directory.heartbeat(&key)?))
}

async fn deregister(
    State(s): State<Arc<Shared>>,
    Path((network, name, id)): Path<(String, String, String)>,
) -> ApiResult<Json<Arc<Instance>>> {
    let key = instance_key(&s, &network, &name, &id)?;
    let by = Owner::Rest {
        ttl: s.config.default_ttl,
    };
    Ok(Json(s.directory.deregister(&key, &by)?))
}

async fn ws(
    State(s): State<Arc<Shared>>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
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
        .on_upgrade(move |socket| async move {
            session::serve(socket, s, remote, origin).await;
            drop(permit);
        }))
}
