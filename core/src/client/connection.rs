//! One WebSocket session from a node to a registry: connect, answer the challenge, then send
//! and receive protocol messages. The [`Netget`](super::Netget) client and the load tool build on
//! it; it knows nothing of failover or caching.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::error::{Error, Result};
use crate::identity::{hello_payload, NodeKey, PROTOCOL};
use crate::model::NetworkName;
use crate::wire::{ClientMessage, ServerMessage};

/// How much one read of a session's socket asks for, bytes. tungstenite zero-fills this much of
/// its read buffer before every read: at its default, 128 KiB, that memset was a quarter of the
/// CPU a watcher spent receiving one event (a 0.5 KB frame). A frame larger than this still
/// arrives whole, over several reads.
const READ_CHUNK: usize = 8 * 1024;

/// The socket type of a client session.
pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What the registry said in its `welcome`.
#[derive(Debug, Clone)]
pub struct Welcome {
    /// The session's id on that registry.
    pub session_id: u64,
    /// The registry's id.
    pub registry_id: String,
    /// How often the registry pings (so the client knows when silence means death).
    pub ping_interval: Duration,
    /// The registry's liveness timeout.
    pub session_timeout: Duration,
    /// The network's policy (`open`, `token`, `keys`).
    pub policy: String,
}

/// An open, authenticated session.
pub struct Connection {
    /// The socket, after the handshake.
    pub socket: Socket,
    /// The registry's welcome.
    pub welcome: Welcome,
    /// The `ws://…/v1/ws` URL connected to.
    pub url: String,
}

/// Turns a registry node as users write it (`http://h:p`, `https://h:p`, `ws://h:p`,
/// `ws://h:p/v1/ws`, `h:p`) into the WebSocket endpoint URL.
pub fn ws_url(registry: &str) -> Result<String> {
    let r = registry.trim().trim_end_matches('/');
    let (scheme, rest) = match r.split_once("://") {
        Some(("http", rest)) | Some(("ws", rest)) => ("ws", rest),
        Some(("https", rest)) | Some(("wss", rest)) => ("wss", rest),
        Some((other, _)) => {
            return Err(Error::InvalidInput(format!(
                "registry node {registry:?} has scheme {other:?}; use http://, https://, ws:// or wss://"
            )))
        }
        None => ("ws", r),
    };
    if rest.is_empty() || rest.chars().any(char::is_whitespace) {
        return Err(Error::InvalidInput(format!(
            "registry node {registry:?} is not a URL like http://127.0.0.1:7700"
        )));
    }
    if rest.contains('/') {
        Ok(format!("{scheme}://{rest}"))
    } else {
        Ok(format!("{scheme}://{rest}/v1/ws"))
    }
}

/// What a node needs to open a session.
#[derive(Clone)]
pub struct Dial {
    /// The network to join.
    pub network: NetworkName,
    /// The node's key.
    pub key: NodeKey,
    /// A join token, for networks that need one.
    pub token: Option<String>,
    /// `service` or `client`.
    pub node_type: &'static str,
    /// rustls configuration for `wss://` (system roots when absent).
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Bound on connecting plus the handshake.
    pub timeout: Duration,
    /// The local address to connect from (the system's choice when absent): a host with several
    /// addresses picks one, and a load test spreads its connections over several so that one
    /// address's ephemeral ports do not run out.
    pub local_address: Option<std::net::IpAddr>,
}

impl Dial {
    /// Defaults for `network` with a fresh key: no token, system roots, 10 s.
    pub fn new(network: NetworkName, key: NodeKey) -> Dial {
        Dial {
            network,
            key,
            token: None,
            node_type: "service",
            tls: None,
            timeout: Duration::from_secs(10),
            local_address: None,
        }
    }
}

/// A TCP connection to the host of `url` (a `ws://` or `wss://` URL) made from `local`.
async fn connect_from(local: std::net::IpAddr, url: &str) -> Result<TcpStream> {
    let uri: tokio_tungstenite::tungstenite::http::Uri = url
        .parse()
        .map_err(|e| Error::InvalidInput(format!("bad registry URL {url}: {e}")))?;
    let host = uri
        .host()
        .ok_or_else(|| Error::InvalidInput(format!("no host in {url}")))?
        .trim_start_matches('[')
        .trim_end_matches(']');
    let port = uri
        .port_u16()
        .unwrap_or(if uri.scheme_str() == Some("wss") {
            443
        } else {
            80
        });
    let unreachable = |e: std::io::Error| Error::Unreachable(format!("{url} from {local}: {e}"));
    let mut last = None;
    for to in tokio::net::lookup_host((host, port))
        .await
        .map_err(unreachable)?
    {
        if to.is_ipv4() != local.is_ipv4() {
            continue;
        }
        let socket = if to.is_ipv4() {
            tokio::net::TcpSocket::new_v4()
        } else {
            tokio::net::TcpSocket::new_v6()
        }
        .map_err(unreachable)?;
        socket
            .bind(std::net::SocketAddr::new(local, 0))
            .map_err(unreachable)?;
        match socket.connect(to).await {
            Ok(stream) => {
                stream.set_nodelay(true).map_err(unreachable)?;
                return Ok(stream);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(match last {
        Some(e) => unreachable(e),
        None => Error::Unreachable(format!(
            "{url} has no address of the family of the local address {local}"
        )),
    })
}

impl Connection {
    /// Connects to `registry` and completes the handshake, within `dial.timeout`.
    pub async fn open(registry: &str, dial: &Dial) -> Result<Connection> {
        let url = ws_url(registry)?;
        tokio::time::timeout(
            dial.timeout,
            Connection::open_inner(registry, url.clone(), dial),
        )
        .await
        .map_err(|_| {
            Error::Unreachable(format!(
                "registry {url} did not complete the handshake within {:?}",
                dial.timeout
            ))
        })?
    }

    async fn open_inner(registry: &str, url: String, dial: &Dial) -> Result<Connection> {
        let config = WebSocketConfig::default()
            .max_message_size(Some(16 << 20))
            .read_buffer_size(READ_CHUNK);
        let connector = if url.starts_with("wss://") {
            let tls = match &dial.tls {
                Some(t) => t.clone(),
                None => crate::tls::client_config(None)?,
            };
            Some(tokio_tungstenite::Connector::Rustls(tls))
        } else {
            None
        };
        let (mut socket, _) = match dial.local_address {
            None => {
                tokio_tungstenite::connect_async_tls_with_config(
                    &url,
                    Some(config),
                    true,
                    connector,
                )
                .await
            }
            Some(local) => {
                let stream = connect_from(local, &url).await?;
                tokio_tungstenite::client_async_tls_with_config(
                    &url,
                    stream,
                    Some(config),
                    connector,
                )
                .await
            }
        }
        // Named as the user wrote it, so advice like "use http://…" fits what they typed.
        .map_err(|e| crate::tls::describe_tls_error(registry, &e))?;
        let challenge = recv(&mut socket).await?;
        let (registry_id, nonce) = match challenge {
            ServerMessage::Challenge {
                protocol,
                registry_id,
                nonce,
                ..
            } => {
                if protocol != PROTOCOL {
                    return Err(Error::UnsupportedVersion(format!(
                        "registry {url} speaks {protocol}; this client speaks {PROTOCOL}"
                    )));
                }
                (registry_id, nonce)
            }
            ServerMessage::Error { error, .. } => return Err(error.into()),
            other => {
                return Err(Error::Protocol(format!(
                    "expected a challenge, got {other:?}"
                )))
            }
        };
        let network = &dial.network;
        let hello = ClientMessage::Hello {
            protocol: PROTOCOL.to_string(),
            network: network.clone(),
            public_key: dial.key.public_key(),
            signature: dial
                .key
                .sign(&hello_payload(&registry_id, network.as_str(), &nonce)),
            nonce,
            node_type: Some(dial.node_type.to_string()),
            token: dial.token.clone(),
        };
        send(&mut socket, &hello).await?;
        match recv(&mut socket).await? {
            ServerMessage::Welcome {
                session_id,
                registry_id,
                ping_interval,
                session_timeout,
                policy,
                ..
            } => Ok(Connection {
                socket,
                welcome: Welcome {
                    session_id,
                    registry_id,
                    ping_interval: ping_interval.0,
                    session_timeout: session_timeout.0,
                    policy: policy.unwrap_or_else(|| "open".into()),
                },
                url,
            }),
            ServerMessage::Error { error, .. } => Err(error.into()),
            other => Err(Error::Protocol(format!("expected welcome, got {other:?}"))),
        }
    }
}

/// Sends one message.
pub async fn send(socket: &mut Socket, msg: &ClientMessage) -> Result<()> {
    let text = serde_json::to_string(msg).map_err(|e| Error::Internal(format!("encode: {e}")))?;
    socket
        .send(Message::text(text))
        .await
        .map_err(|e| Error::Unreachable(format!("send failed: {e}")))
}

/// Receives the next protocol message, skipping control frames.
pub async fn recv(socket: &mut Socket) -> Result<ServerMessage> {
    loop {
        let frame = socket
            .next()
            .await
            .ok_or_else(|| Error::Unreachable("registry closed the connection".into()))?
            .map_err(|e| Error::Unreachable(format!("connection lost: {e}")))?;
        if let Some(m) = decode(frame)? {
            return Ok(m);
        }
    }
}

/// Decodes one frame: `None` for control frames, an error for a close.
pub fn decode(frame: Message) -> Result<Option<ServerMessage>> {
    match frame {
        Message::Text(t) => ServerMessage::parse(&t)
            .map(Some)
            .map_err(|e| Error::Protocol(format!("registry sent an unreadable message: {e}"))),
        Message::Close(c) => Err(Error::Unreachable(match c {
            Some(c) => format!(
                "registry closed the session ({}): {}",
                u16::from(c.code),
                c.reason
            ),
            None => "registry closed the session".into(),
        })),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_connection_with_a_local_address_comes_from_that_address() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}/v1/ws", listener.local_addr().unwrap());
        let local: std::net::IpAddr = [127, 0, 0, 3].into();
        let (accepted, dialed) = tokio::join!(listener.accept(), connect_from(local, &url));
        let (_server, peer) = accepted.unwrap();
        assert_eq!(peer.ip(), local);
        assert_eq!(dialed.unwrap().local_addr().unwrap().ip(), local);
        // An address of the other family cannot reach the registry: said, not hung.
        let e = connect_from([0u16, 0, 0, 0, 0, 0, 0, 1].into(), &url)
            .await
            .unwrap_err();
        assert_eq!(e.code(), "NETGET_UNREACHABLE", "{e}");
    }

    #[test]
    fn registry_urls_map_to_the_websocket_endpoint() {
        assert_eq!(
            ws_url("http://127.0.0.1:7700").unwrap(),
            "ws://127.0.0.1:7700/v1/ws"
        );
        assert_eq!(
            ws_url("https://r.example:443/").unwrap(),
            "wss://r.example:443/v1/ws"
        );
        assert_eq!(ws_url("ws://h:1/v1/ws").unwrap(), "ws://h:1/v1/ws");
        assert_eq!(ws_url("127.0.0.1:9").unwrap(), "ws://127.0.0.1:9/v1/ws");
        assert_eq!(
            ws_url("ftp://x").unwrap_err().code(),
            "NETGET_INVALID_INPUT"
        );
    }
}
