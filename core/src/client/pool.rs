//! Keep-alive HTTP/1.1 connections to one registry, each driven by the task that uses it.
//!
//! hyper's pooled client runs every connection as a task of its own and hands each request to it
//! over a channel, behind a pool keyed by a hashed origin: two task wake-ups per request (the
//! connection's, then the caller's) and a lock. A [`RestClient`](super::rest::RestClient) talks
//! to one origin, so this pool is a stack of idle connections: a request takes one, drives the
//! connection itself while it waits for the answer, and puts it back.

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper::{Request, StatusCode, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
// tokio's clock, as the registry's own timeouts use: on a paused clock both move together.
use tokio::time::Instant;

/// What a connection reads and writes: TCP, with TLS for `https://`.
type Io = hyper_rustls::MaybeHttpsStream<hyper_util::rt::TokioIo<tokio::net::TcpStream>>;

/// An error of the connection, of TLS or of HTTP.
pub(crate) type Failure = Box<dyn std::error::Error + Send + Sync>;

/// Why a request got no whole answer.
#[derive(Debug)]
pub(crate) enum Failed {
    /// The registry could not be reached, or took the request and said nothing.
    Reaching(Failure),
    /// An answer began and could not be read to its end.
    Reading(Failure),
}

/// Idle connections kept at most; more in use at once are closed when they are done.
const MAX_IDLE: usize = 256;

/// One open connection.
struct Conn {
    tx: http1::SendRequest<Full<Bytes>>,
    /// The connection's state machine: it reads and writes only while polled, so a request
    /// polls it beside its own answer.
    driver: Pin<Box<http1::Connection<Io, Full<Bytes>>>>,
}

/// The connections to one origin that are open and not in use.
pub(crate) struct Pool {
    connector: HttpsConnector<HttpConnector>,
    /// `scheme://authority` of the registry.
    origin: Uri,
    /// The `Host` header every request carries.
    host: hyper::header::HeaderValue,
    /// How long an idle connection is kept: well under a registry's own idle close (its header
    /// timeout, 10 s by default), so a request is not sent on one the server is closing.
    idle_timeout: Duration,
    idle: Mutex<Vec<(Conn, Instant)>>,
}

impl Pool {
    /// A pool for `origin` (`http://h:p` or `https://h:p`), connecting with `connector`.
    pub(crate) fn new(
        connector: HttpsConnector<HttpConnector>,
        origin: Uri,
        idle_timeout: Duration,
    ) -> Result<Pool, Failure> {
        let authority = origin
            .authority()
            .ok_or_else(|| format!("{origin} names no host"))?;
        // Host is the authority without any `user:password@`.
        let host = authority.as_str().rsplit('@').next().unwrap_or_default();
        let host = hyper::header::HeaderValue::from_str(host)?;
        Ok(Pool {
            connector,
            origin,
            host,
            idle_timeout,
            idle: Mutex::new(Vec::new()),
        })
    }

    /// Sends `req` and returns the status and whole body. The request's URI is its path and
    /// query; the pool adds `Host`. On a reused connection that turns out closed (the server
    /// closed it while it sat idle, and the close had not been seen yet), the request goes once
    /// more on a new connection: when it was never written, whatever its method; when it was
    /// written but nothing came back, only if its method is idempotent.
    pub(crate) async fn send(
        &self,
        mut req: Request<Full<Bytes>>,
    ) -> Result<(StatusCode, Bytes), Failed> {
        req.headers_mut()
            .insert(hyper::header::HOST, self.host.clone());
        if let Some(conn) = self.checkout() {
            let again = req.method().is_idempotent().then(|| copy(&req));
            match exchange(conn, req).await {
                Ok((answer, conn)) => {
                    self.checkin(conn);
                    return Ok(answer);
                }
                Err(Exchange::Unsent(unsent, _)) => req = *unsent,
                Err(Exchange::NoAnswer(e)) => match again {
                    Some(copy) => req = copy,
                    None => return Err(Failed::Reaching(e)),
                },
                Err(Exchange::Broken(e)) => return Err(Failed::Reading(e)),
            }
        }
        let conn = self.connect().await.map_err(Failed::Reaching)?;
        match exchange(conn, req).await {
            Ok((answer, conn)) => {
                self.checkin(conn);
                Ok(answer)
            }
            Err(Exchange::Unsent(_, e) | Exchange::NoAnswer(e)) => Err(Failed::Reaching(e)),
            Err(Exchange::Broken(e)) => Err(Failed::Reading(e)),
        }
    }

    /// An idle connection that is still open, if any; expired and closed ones are dropped.
    fn checkout(&self) -> Option<Conn> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        while let Some((mut conn, since)) = idle.pop() {
            if self.expired(since) || conn.tx.is_closed() {
                continue;
            }
            // Polled once: a connection the server closed while it sat idle ends here.
            if (&mut conn.driver).now_or_never().is_some() {
                continue;
            }
            return Some(conn);
        }
        None
    }

    /// Whether a connection idle since `since` is past its time.
    fn expired(&self, since: Instant) -> bool {
        since.elapsed() >= self.idle_timeout
    }

    fn checkin(&self, conn: Conn) {
        if conn.tx.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        // Requests take the connection put back last, so the ones at the bottom are those idle
        // longest: expired, they are closed here rather than left half-closed by the registry.
        let expired = idle
            .iter()
            .take_while(|(_, since)| self.expired(*since))
            .count();
        idle.drain(..expired);
        if idle.len() < MAX_IDLE {
            idle.push((conn, Instant::now()));
        }
    }

    async fn connect(&self) -> Result<Conn, Failure> {
        let io = tower::ServiceExt::oneshot(self.connector.clone(), self.origin.clone()).await?;
        let (tx, driver) = http1::handshake(io).await?;
        Ok(Conn {
            tx,
            driver: Box::pin(driver),
        })
    }
}

/// How an exchange failed.
enum Exchange {
    /// The connection could not take the request, which was not written: here it is back.
    Unsent(Box<Request<Full<Bytes>>>, Failure),
    /// The request went out, or may have, and no answer came back.
    NoAnswer(Failure),
    /// An answer began and was cut short or could not be read.
    Broken(Failure),
}

/// A copy of `req` to send again (its body is shared, not copied).
fn copy(req: &Request<Full<Bytes>>) -> Request<Full<Bytes>> {
    let mut again = Request::new(req.body().clone());
    *again.method_mut() = req.method().clone();
    *again.uri_mut() = req.uri().clone();
    *again.headers_mut() = req.headers().clone();
    again
}

/// Sends `req` on `conn` and reads the whole answer, polling the connection meanwhile; gives the
/// connection back for reuse.
async fn exchange(
    conn: Conn,
    req: Request<Full<Bytes>>,
) -> Result<((StatusCode, Bytes), Conn), Exchange> {
    let Conn { mut tx, mut driver } = conn;
    match drive(driver.as_mut(), tx.ready()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(Exchange::Unsent(Box::new(req), e.into())),
        Err(ended) => return Err(Exchange::Unsent(Box::new(req), ended)),
    }
    let mut sending = std::pin::pin!(tx.try_send_request(req));
    let response = match drive(driver.as_mut(), &mut sending).await {
        Ok(Ok(response)) => response,
        Ok(Err(refused)) => return Err(not_taken(refused, None)),
        Err(ended) => {
            // The connection ended first (the registry closed it). Dropping it settles the
            // request it held: given back if it was never written.
            drop(driver);
            return Err(match sending.now_or_never() {
                Some(Err(refused)) => not_taken(refused, Some(ended)),
                // Answered or not, the connection is gone before the whole answer.
                Some(Ok(_)) | None => Exchange::NoAnswer(ended),
            });
        }
    };
    let status = response.status();
    let body = drive(driver.as_mut(), response.into_body().collect())
        .await
        .map_err(Exchange::Broken)?
        .map_err(|e| Exchange::Broken(e.into()))?
        .to_bytes();
    Ok(((status, body), Conn { tx, driver }))
}

/// A request the connection did not take: back to be sent again if it was never written. The
/// error is `ended`'s when the connection's end is what refused it.
fn not_taken(
    mut refused: hyper::client::conn::TrySendError<Request<Full<Bytes>>>,
    ended: Option<Failure>,
) -> Exchange {
    let unsent = refused.take_message();
    let error = ended.unwrap_or_else(|| refused.into_error().into());
    match unsent {
        Some(req) => Exchange::Unsent(Box::new(req), error),
        None => Exchange::NoAnswer(error),
    }
}

/// Runs `work` while polling the connection it needs, until `work` is done; an error if the
/// connection ends first and `work` has no result then.
async fn drive<T>(
    mut driver: Pin<&mut http1::Connection<Io, Full<Bytes>>>,
    work: impl Future<Output = T>,
) -> Result<T, Failure> {
    let mut work = std::pin::pin!(work);
    tokio::select! {
        biased;
        done = &mut work => Ok(done),
        ended = driver.as_mut() => match work.now_or_never() {
            // A connection that ends settles what was waiting on it (a refused request comes
            // back with its message): that result is the one to give.
            Some(done) => Ok(done),
            None => Err(match ended {
                Ok(()) => "the registry closed the connection".into(),
                Err(e) => e.into(),
            }),
        },
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use hyper::service::service_fn;
    use hyper::Response;

    use super::*;

    /// A real HTTP/1.1 server on loopback (hyper's) that answers every request with the port
    /// the connection came from, counting the connections it accepts; with `close`, it closes
    /// each connection after one answer (`Connection: close`).
    async fn server(close: bool) -> (Uri, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let origin = format!("http://{}", listener.local_addr().unwrap())
            .parse()
            .unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((tcp, peer)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let answer = service_fn(move |req: Request<hyper::body::Incoming>| async move {
                    if req.uri().path() != "/" {
                        // What reached the server: the path and the Host header.
                        let host = req.headers().get(hyper::header::HOST).cloned();
                        let seen = format!("{} {:?}", req.uri().path(), host);
                        return Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(seen))));
                    }
                    let mut r = Response::new(Full::new(Bytes::from(peer.port().to_string())));
                    if close {
                        r.headers_mut()
                            .insert(hyper::header::CONNECTION, "close".parse().unwrap());
                    }
                    Ok::<_, Infallible>(r)
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tcp), answer),
                );
            }
        });
        (origin, accepted)
    }

    fn pool(origin: Uri, idle_timeout: Duration) -> Pool {
        Pool::new(
            crate::tls::http_connector(None, false).unwrap(),
            origin,
            idle_timeout,
        )
        .unwrap()
    }

    async fn get(pool: &Pool) -> String {
        let req = Request::get("/").body(Full::default()).unwrap();
        let (status, body) = pool.send(req).await.unwrap();
        assert_eq!(status, StatusCode::OK);
        String::from_utf8(body.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn requests_one_after_another_reuse_one_connection() {
        let (origin, accepted) = server(false).await;
        let pool = pool(origin, Duration::from_secs(4));
        let first = get(&pool).await;
        for _ in 0..5 {
            assert_eq!(
                get(&pool).await,
                first,
                "the same client port: one connection"
            );
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn requests_at_once_open_connections_that_all_return_to_the_pool() {
        let (origin, accepted) = server(false).await;
        let pool = Arc::new(pool(origin, Duration::from_secs(4)));
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let pool = pool.clone();
            tasks.push(tokio::spawn(async move { get(&pool).await }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let opened = accepted.load(Ordering::SeqCst);
        assert!(
            (1..=8).contains(&opened),
            "{opened} connections for 8 requests"
        );
        assert_eq!(pool.idle.lock().unwrap().len(), opened);
        get(&pool).await;
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            opened,
            "reused, none opened"
        );
    }

    #[tokio::test]
    async fn a_connection_the_server_closes_is_replaced_without_an_error() {
        let (origin, accepted) = server(true).await;
        let pool = pool(origin, Duration::from_secs(4));
        let ports: Vec<String> = [get(&pool).await, get(&pool).await, get(&pool).await].into();
        assert_eq!(accepted.load(Ordering::SeqCst), 3);
        assert!(ports[0] != ports[1] && ports[1] != ports[2], "{ports:?}");
    }

    #[tokio::test]
    async fn a_connection_closed_without_a_word_is_replaced_whatever_the_method() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        // One answer per connection, then the connection is closed, with no `Connection:
        // close` in the answer: the next request may meet the close only once it is queued on
        // the connection, and a POST (not idempotent) is sent again only if it was not written.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let origin = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let _ = tcp.read(&mut buf).await;
                let _ = tcp
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    .await;
                let _ = tcp.shutdown().await;
            }
        });
        let pool = pool(origin.parse().unwrap(), Duration::from_secs(4));
        for _ in 0..3 {
            assert_eq!(get(&pool).await, "ok");
            let req = Request::post("/").body(Full::default()).unwrap();
            let (status, body) = pool.send(req).await.unwrap();
            assert_eq!((status, &body[..]), (StatusCode::OK, &b"ok"[..]));
        }
    }

    #[tokio::test]
    async fn a_registry_behind_a_path_gets_it_in_front_of_every_request_and_host_has_no_password() {
        let (origin, _) = server(false).await;
        let base = origin.to_string().replace("http://", "http://user:secret@");
        let rest = crate::client::rest::RestClient::new(&format!("{base}netget/")).unwrap();
        let (status, body) = rest.raw(hyper::Method::GET, "/health", None).await.unwrap();
        assert_eq!(status, StatusCode::OK);
        let seen = String::from_utf8(body.to_vec()).unwrap();
        let authority = origin.authority().unwrap().as_str().to_string();
        assert_eq!(seen, format!("/netget/health Some({authority:?})"));
    }

    #[tokio::test]
    async fn an_idle_connection_past_the_idle_timeout_is_not_reused() {
        let (origin, accepted) = server(false).await;
        let pool = pool(origin, Duration::ZERO);
        get(&pool).await;
        get(&pool).await;
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_registry_that_is_not_there_is_an_error_not_a_hang() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let origin = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let pool = pool(origin.parse().unwrap(), Duration::from_secs(4));
        let req = Request::get("/").body(Full::default()).unwrap();
        let Failed::Reaching(e) = pool.send(req).await.unwrap_err() else {
            panic!("not reaching the registry is a failure to reach it")
        };
        assert!(
            e.to_string().contains("refused") || e.source().is_some(),
            "{e}"
        );
    }
}
