//! Transport security: the registry's rustls configuration (from PEM files) and the client-side
//! one (system roots, or a given CA file). The registry's listener is `registry/listener.rs`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::TlsFiles;
use crate::error::{Error, Result};

/// The crypto provider used everywhere (ring: pure Rust + asm, no C toolchain beyond cc).
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_pem_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| {
            Error::Io(format!(
                "cannot read certificate file {}: {e}",
                path.display()
            ))
        })?
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| Error::InvalidInput(format!("bad PEM in {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(Error::InvalidInput(format!(
            "no certificate in {}",
            path.display()
        )));
    }
    Ok(certs)
}

/// The rustls server configuration from PEM files.
pub fn server_config(files: &TlsFiles) -> Result<rustls::ServerConfig> {
    let certs = read_pem_certs(&files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| {
        Error::InvalidInput(format!(
            "cannot read private key {}: {e}",
            files.key.display()
        ))
    })?;
    rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Internal(format!("TLS setup: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            Error::InvalidInput(format!("TLS certificate and key do not fit together: {e}"))
        })
}

/// The rustls client configuration: the system's roots, plus `ca` (a PEM file) when given.
/// With a CA file, only that CA is trusted — what a private deployment wants.
pub fn client_config(ca: Option<&Path>) -> Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    match ca {
        Some(path) => {
            for cert in read_pem_certs(path)? {
                roots.add(cert).map_err(|e| {
                    Error::InvalidInput(format!("bad CA certificate in {}: {e}", path.display()))
                })?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                let _ = roots.add(cert);
            }
        }
    }
    Ok(Arc::new(config_with(roots)?))
}

fn config_with(roots: rustls::RootCertStore) -> Result<rustls::ClientConfig> {
    Ok(rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Internal(format!("TLS setup: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// The connector of the hyper clients (REST client, health checks): plain HTTP, and HTTPS
/// trusting `ca` (or the system roots) when `https` — otherwise no roots at all, since the
/// connector type wants a TLS config even for plain HTTP.
pub fn http_connector(
    ca: Option<&Path>,
    https: bool,
) -> Result<hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>> {
    let tls = if https {
        (*client_config(ca)?).clone()
    } else {
        config_with(rustls::RootCertStore::empty())?
    };
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.set_nodelay(true);
    http.enforce_http(false);
    http.set_connect_timeout(Some(Duration::from_secs(5)));
    Ok(hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http))
}

/// Describes a failure to reach the registry at `url` for a person, from the error and its
/// causes: a registry answering `https://` or `wss://` in plain text and an untrusted
/// certificate each say what to do about it.
pub fn describe_tls_error(url: &str, e: &(dyn std::error::Error + 'static)) -> Error {
    if answered_in_plain_text(e) {
        let plain = url
            .replacen("https://", "http://", 1)
            .replacen("wss://", "ws://", 1);
        return Error::Unreachable(format!(
            "the registry at {url} answered in plain HTTP, not TLS: use {plain}"
        ));
    }
    // hyper hides the cause (refused, TLS) in the source chain; show all of it, each cause once
    // (tungstenite's errors already repeat their source in their own text).
    let mut text = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        let cause = inner.to_string();
        if !text.contains(&cause) {
            text = format!("{text}: {cause}");
        }
        src = inner.source();
    }
    if text.contains("certificate")
        || text.contains("UnknownIssuer")
        || text.contains("NotValidForName")
    {
        Error::Unreachable(format!(
            "TLS certificate of {url} is not trusted ({text}); give the registry's CA with the `ca` option (--ca FILE)"
        ))
    } else {
        Error::Unreachable(format!("cannot connect to registry {url}: {text}"))
    }
}

/// Whether rustls gave up because the first bytes back were not a TLS record: what a plain
/// HTTP server's answer to a TLS greeting looks like.
fn answered_in_plain_text(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(e);
    while let Some(e) = next {
        if matches!(
            rustls_error(e),
            Some(rustls::Error::InvalidMessage(
                rustls::InvalidMessage::InvalidContentType
            ))
        ) {
            return true;
        }
        next = e.source();
    }
    false
}

/// The rustls error `e` is or wraps. It travels inside `io::Error`s (one per layer of
/// connector), whose `source()` skips the error they wrap, so those are opened one by one.
fn rustls_error<'e>(e: &'e (dyn std::error::Error + 'static)) -> Option<&'e rustls::Error> {
    if let Some(tls) = e.downcast_ref::<rustls::Error>() {
        return Some(tls);
    }
    let inner = e.downcast_ref::<std::io::Error>()?.get_ref()?;
    rustls_error(inner)
}
