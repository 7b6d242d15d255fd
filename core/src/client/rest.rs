//! A small client for a registry's HTTP API, used by the CLI, the load tool and tests.
//!
//! It speaks HTTP/1.1 with keep-alive over its own pool of hyper connections (`pool`) and turns
//! the registry's JSON error bodies back into [`Error`]s with the registry's own codes.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, StatusCode};
use serde::de::DeserializeOwned;

use super::pool::{Failed, Pool};

use crate::error::{Error, ErrorBody, Result};
use crate::model::{Discovery, Instance, Registration, ServiceSummary};

/// The value of the unlabelled series `name` in OpenMetrics `text`, if present.
pub fn metric_value(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(name)?
            .strip_prefix(' ')?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    })
}

/// How long an idle connection is kept for the next request.
const IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(4);

/// A handle to one registry's HTTP API. Cheap to clone; connections are pooled.
#[derive(Clone)]
pub struct RestClient {
    base: String,
    /// The path of `base`, if it has one, without its last `/`.
    prefix: String,
    pool: Arc<Pool>,
    timeout: Duration,
    token: Option<String>,
    /// Sent with every request besides the token (a registry forwarding a request marks it).
    headers: Vec<(&'static str, String)>,
}

impl std::fmt::Debug for RestClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token is a secret: never in logs.
        f.debug_struct("RestClient")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

/// Percent-encodes one path segment or query value: every byte but RFC 3986's unreserved
/// characters becomes `%XX`. Not form encoding, whose `+` for a space is a literal `+` in a path.
fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl RestClient {
    /// A client for the registry at `base` (`http://127.0.0.1:7700`, `https://…`), trusting
    /// the system's roots for https.
    pub fn new(base: &str) -> Result<RestClient> {
        RestClient::with_tls(base, None)
    }

    /// The same, trusting only the CA in `ca` (PEM) for https when given.
    pub fn with_tls(base: &str, ca: Option<&std::path::Path>) -> Result<RestClient> {
        let base = base.trim_end_matches('/');
        let base = if let Some(rest) = base.strip_prefix("ws://") {
            format!("http://{}", rest.trim_end_matches("/v1/ws"))
        } else if let Some(rest) = base.strip_prefix("wss://") {
            format!("https://{}", rest.trim_end_matches("/v1/ws"))
        } else if base.starts_with("http://") || base.starts_with("https://") {
            base.to_string()
        } else {
            format!("http://{base}")
        };
        let connector = crate::tls::http_connector(ca, base.starts_with("https://"))?;
        let parsed: hyper::Uri = base
            .parse()
            .map_err(|e| Error::InvalidInput(format!("registry URL {base:?}: {e}")))?;
        let prefix = parsed.path().trim_end_matches('/').to_string();
        let mut origin = hyper::Uri::builder();
        if let Some(scheme) = parsed.scheme() {
            origin = origin.scheme(scheme.clone());
        }
        if let Some(authority) = parsed.authority() {
            origin = origin.authority(authority.clone());
        }
        let origin = origin
            .path_and_query("/")
            .build()
            .map_err(|e| Error::InvalidInput(format!("registry URL {base:?}: {e}")))?;
        // Idle connections are dropped well before a registry closes them (its header timeout,
        // default 10 s): a request sent on one the server is closing at that moment would fail.
        let pool = Pool::new(connector, origin, IDLE_CONNECTION_TIMEOUT)
            .map_err(|e| Error::InvalidInput(format!("registry URL {base:?}: {e}")))?;
        Ok(RestClient {
            base,
            prefix,
            pool: Arc::new(pool),
            timeout: Duration::from_secs(10),
            token: None,
            headers: Vec::new(),
        })
    }

    /// Sends `Authorization: Bearer <token>` with every request.
    pub fn token(mut self, token: Option<String>) -> RestClient {
        self.token = token;
        self
    }

    /// Sends `name: value` with every request.
    pub fn header(mut self, name: &'static str, value: String) -> RestClient {
        self.headers.push((name, value));
        self
    }

    /// The registry's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends one request and returns the body, with the registry's errors decoded.
    pub async fn send(&self, method: Method, path: &str, body: Option<Vec<u8>>) -> Result<Bytes> {
        let (status, bytes) = self.raw(method, path, body).await?;
        if status.is_success() {
            return Ok(bytes);
        }
        #[derive(serde::Deserialize)]
        struct Wrapped {
            error: ErrorBody,
        }
        match serde_json::from_slice::<Wrapped>(&bytes) {
            Ok(w) => Err(w.error.into()),
            Err(_) => Err(Error::Internal(format!(
                "registry answered {status}: {}",
                String::from_utf8_lossy(&bytes)
            ))),
        }
    }

    /// Sends one request and returns status and body whatever they are (tests of bad input use
    /// it directly).
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(StatusCode, Bytes)> {
        let url = format!("{}{}", self.base, path);
        // A registry behind a path (`http://proxy/netget`) keeps it in front of every request's.
        let target = match self.prefix.is_empty() {
            true => std::borrow::Cow::Borrowed(path),
            false => std::borrow::Cow::Owned(format!("{}{path}", self.prefix)),
        };
        let mut req = Request::builder().method(method).uri(target.as_ref());
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        if let Some(t) = &self.token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        for (name, value) in &self.headers {
            req = req.header(*name, value);
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| Error::InvalidInput(format!("bad request to {url}: {e}")))?;
        tokio::time::timeout(self.timeout, self.pool.send(req))
            .await
            .map_err(|_| Error::timeout(&format!("request to {url}"), self.timeout))?
            .map_err(|e| match e {
                Failed::Reaching(e) => crate::tls::describe_tls_error(&self.base, &*e),
                Failed::Reading(e) => {
                    Error::Unreachable(format!("reading answer from {}: {e}", self.base))
                }
            })
    }

    async fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<T> {
        let bytes = self.send(method, path, body).await?;
        // Checked as UTF-8 once, whole, rather than string by string as `from_slice` does.
        let text = std::str::from_utf8(&bytes)
            .map_err(|e| Error::Protocol(format!("registry sent a body that is not UTF-8: {e}")))?;
        serde_json::from_str(text)
            .map_err(|e| Error::Protocol(format!("registry sent unexpected JSON: {e}")))
    }

    /// `GET /health`.
    pub async fn health(&self) -> Result<serde_json::Value> {
        self.json(Method::GET, "/health", None).await
    }

    /// `GET /metrics`: the OpenMetrics text.
    pub async fn metrics(&self) -> Result<String> {
        let body = self.send(Method::GET, "/metrics", None).await?;
        String::from_utf8(body.to_vec())
            .map_err(|e| Error::Protocol(format!("registry sent metrics that are not UTF-8: {e}")))
    }

    /// The value of the unlabelled series `name` in [`RestClient::metrics`], if present.
    pub async fn metric(&self, name: &str) -> Result<Option<f64>> {
        Ok(metric_value(&self.metrics().await?, name))
    }

    /// `GET /v1/networks/{network}/services`.
    pub async fn services(&self, network: &str) -> Result<Vec<ServiceSummary>> {
        #[derive(serde::Deserialize)]
        struct Answer {
            services: Vec<ServiceSummary>,
        }
        let a: Answer = self
            .json(
                Method::GET,
                &format!("/v1/networks/{}/services", enc(network)),
                None,
            )
            .await?;
        Ok(a.services)
    }

    /// `GET /v1/networks/{network}/services/{name}?healthy=..&tag=..`.
    pub async fn discover(
        &self,
        network: &str,
        name: &str,
        healthy_only: bool,
        tags: &[String],
    ) -> Result<Discovery> {
        let mut path = format!(
            "/v1/networks/{}/services/{}?healthy={healthy_only}",
            enc(network),
            enc(name)
        );
        for t in tags {
            path.push_str("&tag=");
            path.push_str(&enc(t));
        }
        self.json(Method::GET, &path, None).await
    }

    /// `PUT /v1/networks/{network}/services/{name}/instances/{id}`.
    pub async fn register(
        &self,
        network: &str,
        name: &str,
        id: &str,
        reg: &Registration,
    ) -> Result<Instance> {
        let body = serde_json::to_vec(reg).map_err(|e| Error::Internal(format!("encode: {e}")))?;
        self.json(Method::PUT, &instance_path(network, name, id), Some(body))
            .await
    }

    /// `PUT .../instances/{id}/heartbeat`.
    pub async fn heartbeat(&self, network: &str, name: &str, id: &str) -> Result<Instance> {
        self.json(
            Method::PUT,
            &format!("{}/heartbeat", instance_path(network, name, id)),
            None,
        )
        .await
    }

    /// `DELETE .../instances/{id}`.
    pub async fn deregister(&self, network: &str, name: &str, id: &str) -> Result<Instance> {
        self.json(Method::DELETE, &instance_path(network, name, id), None)
            .await
    }
}

/// `/v1/networks/{network}/services/{name}/instances/{id}`, each part percent-encoded.
pub(crate) fn instance_path(network: &str, name: &str, id: &str) -> String {
    format!(
        "/v1/networks/{}/services/{}/instances/{}",
        enc(network),
        enc(name),
        enc(id)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_percent_encoded_not_form_encoded() {
        assert_eq!(enc("my web"), "my%20web");
        assert_eq!(enc("a+b/c?d"), "a%2Bb%2Fc%3Fd");
        assert_eq!(enc("web-1.v_2~x"), "web-1.v_2~x");
        assert_eq!(enc("é"), "%C3%A9");
        assert_eq!(
            instance_path("development", "my web", "i:1"),
            "/v1/networks/development/services/my%20web/instances/i%3A1"
        );
    }
}
