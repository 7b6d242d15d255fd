//! The one error type of netget, with a stable code per variant.
//!
//! Every surface (HTTP, WebSocket, CLI, the Python and Node bindings) reports errors by
//! [`Error::code`], so the codes are part of the public contract: never rename one.

use std::time::Duration;

/// Why an operation failed. Each variant maps to one stable `NETGET_*` code and one HTTP status.
///
/// Every variant carries the full message for a person, so an error rebuilt from the wire
/// (see [`Error::from_wire`]) reads exactly as the registry wrote it.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// A field, name or value a caller sent is not acceptable (the message says which and why).
    #[error("{0}")]
    InvalidInput(String),
    /// A message or body is not valid JSON, or not the JSON shape expected.
    #[error("{0}")]
    MalformedJson(String),
    /// A WebSocket message of a type this protocol version does not know.
    #[error("{0}")]
    UnknownMessage(String),
    /// A frame, body or field is larger than the registry accepts.
    #[error("{0}")]
    TooLarge(String),
    /// The caller proved no right to do this (missing or wrong credentials, bad signature).
    #[error("{0}")]
    Unauthorized(String),
    /// A handshake answered a challenge that was not issued to this session or was already used.
    #[error("{0}")]
    ChallengeReplayed(String),
    /// A handshake answered a challenge that has expired.
    #[error("{0}")]
    ChallengeExpired(String),
    /// The caller is known but may not touch this resource (e.g. another session's instance).
    #[error("{0}")]
    Forbidden(String),
    /// The registry's conditional filter refused; the message carries its reason.
    #[error("{0}")]
    Denied(String),
    /// The network, service or instance does not exist (or is not visible to the caller).
    #[error("{0}")]
    NotFound(String),
    /// The registry does not serve this network.
    #[error("{0}")]
    UnknownNetwork(String),
    /// The peer speaks a protocol version this build does not.
    #[error("{0}")]
    UnsupportedVersion(String),
    /// A message arrived out of order (e.g. a request before the handshake finished).
    #[error("{0}")]
    Protocol(String),
    /// Too many requests from one session or address.
    #[error("{0}")]
    RateLimited(String),
    /// No registry could be reached.
    #[error("{0}")]
    Unreachable(String),
    /// An operation did not complete in time.
    #[error("{0}")]
    Timeout(String),
    /// The client or registry is stopped or stopping.
    #[error("{0}")]
    Closed(String),
    /// A local file (key, data dir) could not be read or written.
    #[error("{0}")]
    Io(String),
    /// A bug or an unexpected state on the registry side.
    #[error("{0}")]
    Internal(String),
}

/// Every variant with its code, in one table so `code()` and `from_wire()` cannot drift apart.
type Constructor = fn(String) -> Error;

const CODES: &[(&str, Constructor)] = &[
    ("NETGET_INVALID_INPUT", Error::InvalidInput),
    ("NETGET_MALFORMED_JSON", Error::MalformedJson),
    ("NETGET_UNKNOWN_MESSAGE", Error::UnknownMessage),
    ("NETGET_TOO_LARGE", Error::TooLarge),
    ("NETGET_UNAUTHORIZED", Error::Unauthorized),
    ("NETGET_CHALLENGE_REPLAYED", Error::ChallengeReplayed),
    ("NETGET_CHALLENGE_EXPIRED", Error::ChallengeExpired),
    ("NETGET_FORBIDDEN", Error::Forbidden),
    ("NETGET_DENIED", Error::Denied),
    ("NETGET_NOT_FOUND", Error::NotFound),
    ("NETGET_UNKNOWN_NETWORK", Error::UnknownNetwork),
    ("NETGET_UNSUPPORTED_VERSION", Error::UnsupportedVersion),
    ("NETGET_PROTOCOL", Error::Protocol),
    ("NETGET_RATE_LIMITED", Error::RateLimited),
    ("NETGET_UNREACHABLE", Error::Unreachable),
    ("NETGET_TIMEOUT", Error::Timeout),
    ("NETGET_CLOSED", Error::Closed),
    ("NETGET_IO", Error::Io),
    ("NETGET_INTERNAL", Error::Internal),
];

impl Error {
    /// The stable code of this error, as every surface reports it.
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidInput(_) => "NETGET_INVALID_INPUT",
            Error::MalformedJson(_) => "NETGET_MALFORMED_JSON",
            Error::UnknownMessage(_) => "NETGET_UNKNOWN_MESSAGE",
            Error::TooLarge(_) => "NETGET_TOO_LARGE",
            Error::Unauthorized(_) => "NETGET_UNAUTHORIZED",
            Error::ChallengeReplayed(_) => "NETGET_CHALLENGE_REPLAYED",
            Error::ChallengeExpired(_) => "NETGET_CHALLENGE_EXPIRED",
            Error::Forbidden(_) => "NETGET_FORBIDDEN",
            Error::Denied(_) => "NETGET_DENIED",
            Error::NotFound(_) => "NETGET_NOT_FOUND",
            Error::UnknownNetwork(_) => "NETGET_UNKNOWN_NETWORK",
            Error::UnsupportedVersion(_) => "NETGET_UNSUPPORTED_VERSION",
            Error::Protocol(_) => "NETGET_PROTOCOL",
            Error::RateLimited(_) => "NETGET_RATE_LIMITED",
            Error::Unreachable(_) => "NETGET_UNREACHABLE",
            Error::Timeout(_) => "NETGET_TIMEOUT",
            Error::Closed(_) => "NETGET_CLOSED",
            Error::Io(_) => "NETGET_IO",
            Error::Internal(_) => "NETGET_INTERNAL",
        }
    }

    /// The HTTP status that fits this error.
    pub fn http_status(&self) -> u16 {
        match self {
            Error::InvalidInput(_)
            | Error::MalformedJson(_)
            | Error::UnknownMessage(_)
            | Error::UnsupportedVersion(_)
            | Error::Protocol(_) => 400,
            Error::TooLarge(_) => 413,
            Error::Unauthorized(_) | Error::ChallengeReplayed(_) | Error::ChallengeExpired(_) => {
                401
            }
            Error::Forbidden(_) | Error::Denied(_) => 403,
            Error::NotFound(_) | Error::UnknownNetwork(_) => 404,
            Error::RateLimited(_) => 429,
            Error::Unreachable(_) => 502,
            Error::Timeout(_) => 504,
            Error::Closed(_) => 503,
            Error::Io(_) | Error::Internal(_) => 500,
        }
    }

    /// Rebuilds an error from a code and message received from a registry, so a client reports
    /// the registry's refusal with the registry's code. A code this build does not know becomes
    /// `Internal`, keeping the code in the message.
    pub fn from_wire(code: &str, message: String) -> Error {
        match CODES.iter().find(|(c, _)| *c == code) {
            Some((_, make)) => make(message),
            None => Error::Internal(format!("{code}: {message}")),
        }
    }

    /// The JSON error body of the HTTP API and of WebSocket error messages.
    pub fn to_body(&self) -> ErrorBody {
        ErrorBody {
            code: self.code().to_string(),
            message: self.to_string(),
        }
    }

    /// A frame, body or field over its size limit.
    pub fn too_large(what: &str, size: usize, limit: usize) -> Error {
        Error::TooLarge(format!(
            "{what} is {size} bytes, over the limit of {limit} bytes"
        ))
    }

    /// A network this registry does not serve.
    pub fn unknown_network(network: &str) -> Error {
        Error::UnknownNetwork(format!(
            "network {network:?} is not served by this registry; a registry with no \
             configuration serves only \"development\" (configure more networks with --config)"
        ))
    }

    /// An operation that did not finish in time.
    pub fn timeout(what: &str, after: Duration) -> Error {
        Error::Timeout(format!("{what} timed out after {after:?}"))
    }
}

/// `{"code": "...", "message": "..."}` as sent on the wire.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct ErrorBody {
    /// A stable `NETGET_*` code.
    pub code: String,
    /// What went wrong and what to do about it, for a person.
    pub message: String,
}

impl From<ErrorBody> for Error {
    fn from(body: ErrorBody) -> Error {
        Error::from_wire(&body.code, body.message)
    }
}

/// Shorthand used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The longest start of `s` that fits in `max` bytes without splitting a character: for
/// messages that must stay short (a close frame's reason, an echoed input).
pub(crate) fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_through_the_wire_form() {
        let errors = [
            Error::InvalidInput("x".into()),
            Error::Unauthorized("x".into()),
            Error::NotFound("x".into()),
            Error::Forbidden("x".into()),
            Error::ChallengeReplayed("x".into()),
            Error::Unreachable("x".into()),
            Error::too_large("frame", 10, 5),
            Error::unknown_network("prod"),
        ];
        for e in errors {
            let back = Error::from(e.to_body());
            assert_eq!(back.code(), e.code());
            assert_eq!(back.to_string(), e.to_string());
        }
    }

    #[test]
    fn every_code_in_the_table_maps_back_to_itself() {
        for (code, make) in CODES {
            assert_eq!(make("m".into()).code(), *code);
        }
    }
}
