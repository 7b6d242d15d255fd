//! Who gets a connection: the registry's listener.
//!
//! It accepts TCP (and completes TLS handshakes in their own tasks, so one slow or hostile client
//! cannot stall `accept` for everyone else), and holds every connection to two caps — one for
//! the whole registry, kept below the process's open-file limit with room to spare for the store,
//! outgoing health checks and cluster links, and one per client address — so that no client,
//! however many sockets it opens, can take the registry away from the others. A connection over a
//! cap is answered `NETGET_RATE_LIMITED` and closed at once; a slot is given back when its
//! connection (or the WebSocket session it became) is dropped.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};

use crate::config::{RegistryConfig, TlsFiles};
use crate::error::{Error, Result};

/// How long a client has to complete the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a refused client is given to take its answer before the socket is closed.
const REFUSAL_WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// Refusals being written at once; past this a refused connection is closed without an answer,
/// so a flood of refused connections cannot hold file descriptors itself.
const MAX_REFUSALS_IN_FLIGHT: usize = 64;

/// A connection as the server sees it: plain or TLS.
pub trait Conn: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Conn for T {}

/// The peer's address, as handlers extract it (`ConnectInfo<RemoteAddr>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteAddr(pub SocketAddr);

impl axum::extract::connect_info::Connected<RemoteAddr> for RemoteAddr {
    fn connect_info(remote: RemoteAddr) -> Self {
        remote
    }
}

/// The caps on open connections (HTTP and WebSocket sessions together).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnLimits {
    /// Most connections open at once, after [`ConnLimits::within_open_files`].
    pub total: usize,
    /// Most connections open at once from one IP address.
    pub per_ip: usize,
}

impl ConnLimits {
    /// The configured caps, with the total kept below `open_files` (the process's limit): an
    /// eighth of it, and at least 64, stays free for everything else the registry opens.
    pub fn within_open_files(config: &RegistryConfig, open_files: u64) -> ConnLimits {
        let reserve = (open_files / 8).max(64);
        let room = usize::try_from(open_files.saturating_sub(reserve)).unwrap_or(usize::MAX);
        ConnLimits {
            total: config.max_connections.min(room).max(1),
            per_ip: config.max_connections_per_ip.max(1),
        }
    }
}

/// Raises the soft limit on open files to the hard limit, as servers do at start, and returns
/// the limit in force (raising is best effort: where it fails, the current limit stands).
pub fn raise_open_file_limit() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(error = %e, "cannot raise the open-file limit");
            rlimit::getrlimit(rlimit::Resource::NOFILE)
                .map(|(soft, _)| soft)
                .unwrap_or(1024)
        }
    }
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// Counts open connections against [`ConnLimits`].
#[derive(Debug)]
pub struct Gate {
    limits: ConnLimits,
    counts: Mutex<Counts>,
    refusing: Arc<Semaphore>,
}

impl Gate {
    /// A gate with these caps.
    pub fn new(limits: ConnLimits) -> Arc<Gate> {
        Arc::new(Gate {
            limits,
            counts: Mutex::new(Counts::default()),
            refusing: Arc::new(Semaphore::new(MAX_REFUSALS_IN_FLIGHT)),
        })
    }

    /// Connections open now.
    #[cfg(test)]
    fn open(&self) -> usize {
        self.lock().total
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A slot for a connection from `ip`, or the error that refuses it.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Slot> {
        let mut c = self.lock();
        if c.total >= self.limits.total {
            return Err(Error::RateLimited(format!(
                "the registry holds its maximum of {} connections; try again shortly or use \
                 another registry node",
                self.limits.total
            )));
        }
        let n = c.per_ip.entry(ip).or_default();
        if *n >= self.limits.per_ip {
            return Err(Error::RateLimited(format!(
                "{ip} holds its maximum of {} connections to this registry; reuse connections \
                 (HTTP keep-alive, one session per node) or raise [limits] max_connections_per_ip",
                self.limits.per_ip
            )));
        }
        *n += 1;
        c.total += 1;
        Ok(Slot {
            gate: self.clone(),
            ip,
        })
    }

    /// Answers a refused plain-TCP connection with its error as an HTTP response, then closes
    /// it; in the background, bounded in time and in number.
    fn refuse(self: &Arc<Self>, mut tcp: TcpStream, err: Error) {
        let Ok(permit) = self.refusing.clone().try_acquire_owned() else {
            return; // dropped: closed without an answer
        };
        tokio::spawn(async move {
            let body = serde_json::json!({ "error": err.to_body() }).to_string();
            let status = hyper::StatusCode::from_u16(err.http_status())
                .unwrap_or(hyper::StatusCode::TOO_MANY_REQUESTS);
            let answer = format!(
                "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\nretry-after: 1\r\n\
                 connection: close\r\ncontent-length: {}\r\n\r\n{body}",
                status.as_u16(),
                status.canonical_reason().unwrap_or(""),
                body.len()
            );
            let _ = tokio::time::timeout(REFUSAL_WRITE_TIMEOUT, async {
                let _ = tcp.write_all(answer.as_bytes()).await;
                let _ = tcp.shutdown().await;
            })
            .await;
            drop(permit);
        });
    }
}

/// A connection's place under the caps, given back when dropped.
#[derive(Debug)]
pub struct Slot {
    gate: Arc<Gate>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = self.gate.lock();
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                c.per_ip.remove(&self.ip);
            }
        }
    }
}

/// A connection holding its slot for as long as it lives, through an upgrade to a WebSocket.
struct Tracked {
    io: Box<dyn Conn>,
    _slot: Slot,
    /// Until the client's first byte: hyper's header timeout starts only once a request has
    /// begun, so a client that connects and sends nothing is timed out here.
    first_byte: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Tracked {
    fn new(io: Box<dyn Conn>, slot: Slot, first_byte_within: Duration) -> Tracked {
        Tracked {
            io,
            _slot: slot,
            first_byte: Some(Box::pin(tokio::time::sleep(first_byte_within))),
        }
    }
}

impl AsyncRead for Tracked {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let read = Pin::new(&mut this.io).poll_read(cx, buf);
        if let Some(deadline) = &mut this.first_byte {
            match &read {
                Poll::Ready(Ok(())) if buf.filled().len() > before => this.first_byte = None,
                Poll::Pending if deadline.as_mut().poll(cx).is_ready() => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "no request within the header timeout",
                    )));
                }
                _ => {}
            }
        }
        read
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// The registry's listener: accepts TCP under the [`Gate`], sets `TCP_NODELAY` (small pushes
/// must not wait for Nagle), and with TLS completes the handshake before handing the
/// connection over.
pub struct RegistryListener {
    local: SocketAddr,
    gate: Arc<Gate>,
    header_timeout: Duration,
    plain: Option<TcpListener>,
    tls_rx: Option<mpsc::Receiver<(Box<dyn Conn>, RemoteAddr)>>,
    accept_task: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for RegistryListener {
    fn drop(&mut self) {
        if let Some(t) = &self.accept_task {
            t.abort();
        }
    }
}

/// Accepts one TCP connection under the gate: `None` when it was refused (and answered).
async fn accept_tcp(listener: &TcpListener, gate: &Arc<Gate>, tls: bool) -> Option<Accepted> {
    let (tcp, peer) = match listener.accept().await {
        Ok(c) => c,
        Err(e) => {
            // Out of file descriptors and the like: back off instead of spinning.
            tracing::warn!(error = %e, "accept failed");
            tokio::time::sleep(Duration::from_millis(50)).await;
            return None;
        }
    };
    match gate.admit(peer.ip()) {
        Ok(slot) => {
            let _ = tcp.set_nodelay(true);
            Some(Accepted { tcp, peer, slot })
        }
        Err(e) => {
            tracing::debug!(%peer, error = %e, "connection refused");
            // A TLS client could not read a plain answer: it is only closed.
            if !tls {
                gate.refuse(tcp, e);
            }
            None
        }
    }
}

struct Accepted {
    tcp: TcpStream,
    peer: SocketAddr,
    slot: Slot,
}

impl RegistryListener {
    /// Wraps a bound listener; with `tls`, connections are served over rustls.
    pub fn new(
        listener: TcpListener,
        tls: Option<&TlsFiles>,
        gate: Arc<Gate>,
        header_timeout: Duration,
    ) -> Result<RegistryListener> {
        let local = listener
            .local_addr()
            .map_err(|e| Error::Io(format!("listener has no address: {e}")))?;
        let Some(files) = tls else {
            return Ok(RegistryListener {
                local,
                gate,
                header_timeout,
                plain: Some(listener),
                tls_rx: None,
                accept_task: None,
            });
        };
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(crate::tls::server_config(files)?));
        let (tx, rx) = mpsc::channel(1024);
        let task_gate = gate.clone();
        let task = tokio::spawn(async move {
            loop {
                let Some(Accepted { tcp, peer, slot }) =
                    accept_tcp(&listener, &task_gate, true).await
                else {
                    continue;
                };
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => {
                            let io = Tracked::new(Box::new(stream), slot, header_timeout);
                            let _ = tx
                                .send((Box::new(io) as Box<dyn Conn>, RemoteAddr(peer)))
                                .await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(RegistryListener {
            local,
            gate,
            header_timeout,
            plain: None,
            tls_rx: Some(rx),
            accept_task: Some(task),
        })
    }

    /// The address it is bound to (known since it was bound, so this cannot fail).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Whether connections are TLS.
    pub fn is_tls(&self) -> bool {
        self.tls_rx.is_some()
    }

    /// The next admitted connection.
    pub async fn accept(&mut self) -> (Box<dyn Conn>, RemoteAddr) {
        loop {
            if let Some(rx) = &mut self.tls_rx {
                match rx.recv().await {
                    Some(c) => return c,
                    None => std::future::pending::<()>().await,
                }
            }
            if let Some(l) = &self.plain {
                if let Some(Accepted { tcp, peer, slot }) = accept_tcp(l, &self.gate, false).await {
                    let io = Tracked::new(Box::new(tcp), slot, self.header_timeout);
                    return (Box::new(io), RemoteAddr(peer));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_total_cap_leaves_an_eighth_of_the_open_files_and_at_least_64() {
        let c = RegistryConfig::new();
        let at = |n| ConnLimits::within_open_files(&c, n).total;
        assert_eq!(at(1_048_576), c.max_connections);
        assert_eq!(at(8_192), 8_192 - 1_024);
        assert_eq!(at(200), 200 - 64);
        assert_eq!(at(10), 1);
    }

    #[test]
    fn slots_are_counted_per_address_and_given_back_when_dropped() {
        let gate = Gate::new(ConnLimits {
            total: 3,
            per_ip: 2,
        });
        let (a, b): (IpAddr, IpAddr) = ("127.0.0.1".parse().unwrap(), "127.0.0.2".parse().unwrap());
        let a1 = gate.admit(a).unwrap();
        let _a2 = gate.admit(a).unwrap();
        assert_eq!(gate.admit(a).unwrap_err().code(), "NETGET_RATE_LIMITED");
        let _b1 = gate.admit(b).unwrap();
        assert!(gate
            .admit(b)
            .unwrap_err()
            .to_string()
            .contains("maximum of 3 connections"));
        drop(a1);
        assert_eq!(gate.open(), 2);
        assert!(gate.admit(a).is_ok());
    }
}
