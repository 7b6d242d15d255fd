//! The registry: one port for the HTTP API and the WebSocket endpoint, over one directory.
//!
//! [`Registry::spawn`] binds, starts serving in the background and hands back a
//! [`RegistryHandle`]; [`Registry::spawn_on`] serves an already-bound listener (tests bind port
//! 0). Shutdown tells every session to close, answers in-flight HTTP requests, then waits for
//! the sessions to finish removing their instances.
//!
//! - `state`: what a registry holds ([`RegistryState`]).
//! - `ops`: the one pipeline of operations every front end calls (its doc gives the order of
//!   a registration's steps); `owner`: who owns an instance and who may change it.
//! - front ends, which translate and call `ops`: `http` (the HTTP API, the dashboard and the
//!   WebSocket upgrade), `session` (one WebSocket session), `dns` (names of services over
//!   DNS, `--dns-listen`), `consul` (Consul's HTTP API, the common subset), `prometheus`
//!   (Prometheus' HTTP service discovery);
//!   `listener` decides who gets a
//!   connection at all (caps per address and in total, under the open-file limit).
//! - what `ops` works with: [`directory`] (instances and watch channels), `channels`
//!   (publish/subscribe), `health` (active checks), [`store`] (what survives a restart),
//!   `metrics` (`/metrics`).

mod channels;
mod cluster;
mod consul;
pub mod directory;
mod dns;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod health;
mod http;
pub(crate) mod listener;
mod metrics;
mod openapi;
mod ops;
mod outbox;
mod owner;
mod prometheus;
mod session;
mod state;
#[cfg(feature = "testsuite")]
pub mod store;
#[cfg(not(feature = "testsuite"))]
mod store;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::Instant;

pub use cluster::{ClusterSummary, Member};
pub use directory::{Directory, Owner};
pub use http::openapi;

use crate::config::RegistryConfig;
use crate::error::{Error, Result};
use listener::{ConnLimits, Gate, RegistryListener};
use state::RegistryState;
use store::Store;

/// A running registry. Dropping it does not stop the registry; call [`RegistryHandle::shutdown`].
#[derive(Debug)]
pub struct RegistryHandle {
    addr: SocketAddr,
    dns_addr: Option<SocketAddr>,
    tls: bool,
    state: Arc<RegistryState>,
    shutdown_tx: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<()>>,
}

impl RegistryHandle {
    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where the registry answers DNS queries (UDP and TCP), when it does.
    pub fn dns_addr(&self) -> Option<SocketAddr> {
        self.dns_addr
    }

    /// The domain DNS names are under (`netget.`).
    pub fn dns_domain(&self) -> &str {
        &self.state.config.dns.domain
    }

    /// `http://IP:PORT` (or `https://`), what clients use as a registry node.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// The registries of its cluster as gossip shows them (this one first); empty when it
    /// does not gossip.
    pub async fn cluster_members(&self) -> Vec<Member> {
        self.state.cluster_members().await.unwrap_or_default()
    }

    /// The registry's id.
    pub fn registry_id(&self) -> &str {
        &self.state.registry_id
    }

    /// The networks served, as `name (policy)`.
    pub fn networks(&self) -> Vec<String> {
        self.state
            .directory
            .networks()
            .iter()
            .map(|n| {
                let policy = self.state.guard.policy(n).map(|p| p.name()).unwrap_or("?");
                format!("{n} ({policy})")
            })
            .collect()
    }

    /// The registry's directory, for tests that set up what no front end would make (behind
    /// the `testsuite` feature: everything else goes through the registry's operations).
    #[cfg(feature = "testsuite")]
    pub fn directory(&self) -> &Arc<Directory> {
        &self.state.directory
    }

    /// Fault injection (behind the `testsuite` feature): the next `n` delta frames this
    /// registry's replication links would send are dropped, as a lost message would be, so
    /// tests can show the revision check repairing the gap.
    #[cfg(feature = "testsuite")]
    pub fn drop_replication_frames(&self, n: usize) {
        self.state
            .links
            .drop_frames
            .store(n, std::sync::atomic::Ordering::Relaxed);
    }

    /// Stops accepting, closes every session (removing its instances), answers in-flight
    /// requests, and returns once all of that is done.
    pub async fn shutdown(self) -> Result<()> {
        let closed = self.state.store.closed();
        let RegistryHandle {
            state,
            shutdown_tx,
            task,
            ..
        } = self;
        let _ = shutdown_tx.send(true);
        let stopped = task
            .await
            .map_err(|e| Error::Internal(format!("registry task failed: {e}")));
        drop(state);
        // The store lets go of its file once the last holder of the registry's state has (a
        // lingering connection holds it a moment longer): waited for, bounded, so a registry
        // started again at once on the same data dir finds it free.
        let _ = tokio::time::timeout(Duration::from_secs(5), closed).await;
        stopped?
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
        // Once per process: every registry in it shares the one limit.
        static OPEN_FILES: OnceLock<u64> = OnceLock::new();
        let open_files = *OPEN_FILES.get_or_init(listener::raise_open_file_limit);
        let limits = ConnLimits::within_open_files(&config, open_files);
        tracing::debug!(?limits, open_files, "connection caps");
        let listener = RegistryListener::new(
            listener,
            config.tls.as_ref(),
            Gate::new(limits),
            config.header_timeout,
        )?;
        let tls = listener.is_tls();
        let dns = match config.dns.listen {
            Some(at) => Some(dns::bind(at).await?),
            None => None,
        };
        let dns_addr = dns.as_ref().map(|d| d.local_addr()).transpose()?;
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let state = RegistryState::new(config, shutdown_rx.clone(), store)?;
        ops::restore(&state, loaded);
        let url = format!("{}://{addr}", if tls { "https" } else { "http" });
        let membership = cluster::Membership::start(
            &state.config.cluster,
            &state.registry_id,
            addr,
            &url,
            cluster::policies_digest(&state.config.networks),
            state.epoch,
        )
        .await?;
        if let Some(m) = membership {
            let _ = state.cluster.set(m);
        }
        let mut stop = shutdown_rx;
        if let (Some(bound), Some(at)) = (dns, dns_addr) {
            tracing::info!(addr = %at, domain = %state.config.dns.domain, "DNS listening (UDP and TCP)");
            tokio::spawn(dns::serve(bound, state.clone()));
        }
        let task = tokio::spawn(run(listener, state.clone(), async move {
            let _ = stop.wait_for(|s| *s).await;
        }));
        Ok(RegistryHandle {
            addr,
            dns_addr,
            tls,
            state,
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

/// Serves `listener` until `shutdown` resolves, then drains sessions.
async fn run(
    listener: RegistryListener,
    state: Arc<RegistryState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    tracing::info!(addr = %listener.local_addr(), tls = listener.is_tls(), registry = %state.registry_id, "registry listening");
    let reaper = tokio::spawn(reap(state.clone()));
    let followers = tokio::spawn(cluster::follow_peers(state.clone()));
    serve(
        listener,
        http::router(state.clone()),
        state.config.header_timeout,
        shutdown,
    )
    .await;
    reaper.abort();
    // It ends its links itself on the shutdown signal; waited for so that nothing holds the
    // registry's state (and its store's lock) once `shutdown` returns.
    let _ = followers.await;
    state.health.stop_all();
    if let Some(m) = state.cluster.get() {
        m.stop();
    }
    // Sessions watch the same signal and close themselves, each releasing its permit when it
    // has removed its instances; holding every permit means all are done. Bounded so a wedged
    // peer cannot hold shutdown forever.
    let all = u32::try_from(state.config.max_sessions).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(Duration::from_secs(5), state.sessions.acquire_many(all)).await;
    tracing::info!("registry stopped");
    Ok(())
}

/// How long shutdown waits for in-flight HTTP requests to be answered.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves HTTP/1.1 (with upgrades to WebSocket) on every admitted connection until `shutdown`,
/// then answers what is in flight. hyper itself, not `axum::serve`, so that a request's line
/// and headers must arrive within `header_timeout`: a client that opens a connection and sends
/// nothing (or half a request) no longer holds it for ever.
async fn serve(
    mut listener: RegistryListener,
    app: axum::Router,
    header_timeout: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    use tower::ServiceExt;
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(header_timeout);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut conns = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let (io, remote) = tokio::select! {
            c = listener.accept() => c,
            () = &mut shutdown => break,
        };
        while conns.try_join_next().is_some() {}
        let svc = app.clone().map_request(
            move |mut req: axum::extract::Request<hyper::body::Incoming>| {
                req.extensions_mut()
                    .insert(axum::extract::ConnectInfo(remote));
                req
            },
        );
        let conn = http
            .serve_connection(
                hyper_util::rt::TokioIo::new(io),
                hyper_util::service::TowerToHyperService::new(svc),
            )
            .with_upgrades();
        let mut stop = stop_rx.clone();
        conns.spawn(async move {
            // An upgraded connection ends here at the upgrade; its session watches shutdown
            // itself.
            let mut conn = std::pin::pin!(conn);
            let ended = tokio::select! {
                r = conn.as_mut() => r,
                () = async { let _ = stop.wait_for(|s| *s).await; } => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = ended {
                tracing::debug!(peer = %remote.0, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!("in-flight HTTP requests still open after {DRAIN_TIMEOUT:?}; closing");
    }
}

/// Removes expired REST registrations every 250 ms and drops idle service entries now and then.
async fn reap(state: Arc<RegistryState>) {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut rounds = 0u64;
    loop {
        tick.tick().await;
        ops::expire(&state, Instant::now());
        rounds += 1;
        if rounds.is_multiple_of(240) {
            state.directory.sweep();
            state.channels.sweep();
        }
    }
}
