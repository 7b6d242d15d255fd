//! REST changes of a replica — an update, a heartbeat, a removal sent to a registry that only
//! holds a copy — go to the registry that owns it, so a REST client may talk to any registry of
//! the cluster. Forwarded once: a forwarded request is answered where it arrives.

use axum::body::Bytes;
use hyper::{Method, StatusCode};

use super::super::state::RegistryState;
use crate::client::rest::RestClient;
use crate::error::Result;

/// The header a forwarding registry adds (its id); a request carrying it is never forwarded
/// again.
pub(crate) const FORWARDED_BY: &str = "netget-forwarded-by";

/// Sends the request to the owner at `owner_url` and returns its answer as it is.
pub(crate) async fn forward(
    state: &RegistryState,
    owner_url: &str,
    method: Method,
    path: &str,
    token: Option<String>,
    body: Option<Vec<u8>>,
) -> Result<(StatusCode, Bytes)> {
    RestClient::with_tls(owner_url, super::peer_ca(&state.config))?
        .token(token)
        .header(FORWARDED_BY, state.registry_id.to_string())
        .raw(method, path, body)
        .await
}
