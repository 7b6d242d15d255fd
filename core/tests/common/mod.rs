//! Helpers shared by the integration tests: registries in-process or as child processes,
//! bounded waiting, raw protocol sessions.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use netget::identity::{hello_payload, NodeKey, PROTOCOL};
use netget::wire::ServerMessage;
use netget::{Registry, RegistryConfig, RegistryHandle};
use tokio_tungstenite::tungstenite::Message;

/// The `netget` binary built for these tests.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_netget")
}

/// An in-process registry on 127.0.0.1:0 with its own temp data dir.
pub async fn registry() -> (RegistryHandle, tempfile::TempDir) {
    registry_with(|c| c).await
}

/// An in-process registry with a tweaked config.
pub async fn registry_with(
    f: impl FnOnce(RegistryConfig) -> RegistryConfig,
) -> (RegistryHandle, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = f(RegistryConfig::ephemeral(dir.path().to_path_buf()));
    (Registry::spawn(config).await.unwrap(), dir)
}

/// A REST registration at `address` that lives 10 minutes: long enough never to expire in a test.
pub fn durable(address: &str) -> netget::model::Registration {
    netget::model::Registration {
        address: address.into(),
        ttl: Some(netget::model::WireDuration(Duration::from_secs(600))),
        ..Default::default()
    }
}

/// A child process killed (SIGKILL) and reaped when dropped, so a failing test leaves nothing.
pub struct ChildGuard {
    pub child: Child,
    pub url: String,
    pub first_line: String,
    /// The stdout lines after the first, as they come.
    lines: std::sync::mpsc::Receiver<String>,
    _dir: Option<tempfile::TempDir>,
}

impl ChildGuard {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(ok.success(), "kill -{sig} failed");
    }

    /// The next stdout line after those already read, if one comes within `within`.
    pub fn next_line(&self, within: Duration) -> Option<String> {
        self.lines.recv_timeout(within).ok()
    }

    /// Waits (bounded) for the process to exit and returns its exit status.
    pub fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(s) = self.child.try_wait().unwrap() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `netget ARGS…`, reads its first stdout line (within 15 s), and returns the guard.
/// The URL is the first `http://` word of that line, if any.
pub fn spawn_netget(args: &[&str]) -> ChildGuard {
    let mut cmd = Command::new(bin());
    cmd.args(args);
    spawn_command(cmd, args)
}

/// Runs `cmd` (whose stdout's first line names its URL, as `netget registry` prints it) as a
/// guarded child; `what` names it in a failure.
pub fn spawn_command(mut cmd: Command, what: &[&str]) -> ChildGuard {
    let args = what;
    let mut child = cmd
        .env("NETGET_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // Every line is read, whether a test wants it or not, so the child never blocks on a
        // full pipe.
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let first_line = match rx.recv_timeout(Duration::from_secs(15)) {
        Ok(l) => l,
        // It ended without a line: the caller's assertions on it say what went wrong.
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => String::new(),
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            let _ = child.kill();
            panic!("netget {args:?} printed nothing within 15 s");
        }
    };
    let url = first_line
        .split_whitespace()
        .find(|w| w.starts_with("http://") || w.starts_with("https://"))
        .unwrap_or("")
        .to_string();
    ChildGuard {
        child,
        url,
        first_line,
        lines: rx,
        _dir: None,
    }
}

/// A registry as a child process on 127.0.0.1:0 with a temp data dir.
pub fn spawn_registry(extra: &[&str]) -> ChildGuard {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_string();
    let mut args = vec!["registry", "--listen", "127.0.0.1:0", "--data", &data];
    args.extend_from_slice(extra);
    let mut g = spawn_netget(&args);
    assert!(
        g.url.contains("://127.0.0.1:"),
        "unexpected first line: {}",
        g.first_line
    );
    g._dir = Some(dir);
    g
}

/// A registry process on 127.0.0.1:0 over `data` (kept by the caller, so a test can restart it
/// on the same store), with `extra` flags.
pub fn registry_on(data: &std::path::Path, extra: &[&str]) -> ChildGuard {
    let mut args = vec![
        "registry",
        "--listen",
        "127.0.0.1:0",
        "--data",
        data.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let g = spawn_netget(&args);
    assert!(g.url.starts_with("http://127.0.0.1:"), "{}", g.first_line);
    g
}

/// Polls `cond` every 20 ms until it holds or `within` passes; returns the time it took. Time is
/// the runtime's: on a paused clock, `within` is virtual too.
pub async fn wait_until<F, Fut>(within: Duration, mut cond: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = tokio::time::Instant::now();
    while start.elapsed() < within {
        if cond().await {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

pub type Raw =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens a raw WebSocket to a registry and reads its challenge: (socket, registry id, nonce).
pub async fn raw_connect(url: &str) -> (Raw, String, String) {
    let ws = netget::client::ws_url(url).unwrap();
    let (mut socket, _) = tokio_tungstenite::connect_async(ws).await.unwrap();
    match raw_recv(&mut socket).await {
        ServerMessage::Challenge {
            registry_id, nonce, ..
        } => (socket, registry_id, nonce),
        other => panic!("expected challenge, got {other:?}"),
    }
}

/// A signed hello for `network` answering `nonce`, as JSON text.
pub fn hello(key: &NodeKey, registry_id: &str, network: &str, nonce: &str) -> String {
    serde_json::json!({
        "type": "hello", "protocol": PROTOCOL, "network": network,
        "publicKey": key.public_key(), "nonce": nonce,
        "signature": key.sign(&hello_payload(registry_id, network, nonce)),
    })
    .to_string()
}

/// A raw session that completed the handshake.
pub async fn raw_session(url: &str, network: &str) -> Raw {
    let (mut s, rid, nonce) = raw_connect(url).await;
    s.send(Message::text(hello(
        &NodeKey::generate().unwrap(),
        &rid,
        network,
        &nonce,
    )))
    .await
    .unwrap();
    match raw_recv(&mut s).await {
        ServerMessage::Welcome { .. } => s,
        other => panic!("expected welcome, got {other:?}"),
    }
}

/// Next protocol message (bounded to 5 s), skipping control frames.
pub async fn raw_recv(s: &mut Raw) -> ServerMessage {
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match s.next().await.expect("stream ended").expect("read error") {
                Message::Text(t) => return serde_json::from_str(&t).unwrap(),
                Message::Close(c) => panic!("closed: {c:?}"),
                _ => {}
            }
        }
    })
    .await
    .expect("no message within 5 s")
}

/// Reads until the registry closes the socket (bounded); returns the close code.
pub async fn raw_close_code(s: &mut Raw) -> Option<u16> {
    tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(frame) = s.next().await {
            match frame {
                Ok(Message::Close(Some(c))) => return Some(u16::from(c.code)),
                Ok(Message::Close(None)) => return None,
                Ok(_) => {}
                Err(_) => return None,
            }
        }
        None
    })
    .await
    .expect("socket not closed within 5 s")
}

/// Sends a text frame.
pub async fn raw_send(s: &mut Raw, text: &str) {
    s.send(Message::text(text.to_string())).await.unwrap();
}

/// The error code of an `error` message, panicking on anything else.
pub fn error_code(m: &ServerMessage) -> String {
    match m {
        ServerMessage::Error { error, .. } => error.code.clone(),
        other => panic!("expected an error, got {other:?}"),
    }
}

/// A CA and a server certificate for 127.0.0.1, written as PEM files.
pub fn make_pki(
    dir: &std::path::Path,
) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "netget test CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, &ca_key);
    let srv_key = rcgen::KeyPair::generate().unwrap();
    let srv_params =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .unwrap();
    let srv_cert = srv_params.signed_by(&srv_key, &issuer).unwrap();
    let (ca, cert, key) = (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    );
    std::fs::write(&ca, ca_cert.pem()).unwrap();
    std::fs::write(&cert, srv_cert.pem()).unwrap();
    std::fs::write(&key, srv_key.serialize_pem()).unwrap();
    (ca, cert, key)
}
