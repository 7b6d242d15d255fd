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

/// The coarse kind of an error: what a binding turns into one exception class (Python's
/// `netget.errors`). Several codes share a family; [`Family::Other`] is the base class only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// Something the caller sent is not acceptable.
    InvalidInput,
    /// The caller proved no right (credentials, signature, challenge).
    Unauthorized,
    /// The caller is known but may not touch this resource.
    Forbidden,
    /// The registry's filter refused.
    Denied,
    /// No such network, service or instance.
    NotFound,
    /// No registry could be reached, or the node is stopped.
    Unreachable,
    /// An operation did not complete in time.
    Timeout,
    /// Too many requests.
    RateLimited,
    /// No finer family (local I/O, internal errors): the base class.
    Other,
}

/// One stable code: the string every surface reports and the family it belongs to.
#[derive(Debug, Clone, Copy)]
pub struct Code {
    /// The stable `NETGET_*` string.
    pub code: &'static str,
    /// The coarse kind a binding maps to one exception class.
    pub family: Family,
    /// Builds the variant from a message (for [`Error::from_wire`]).
    make: fn(String) -> Error,
}

/// The one table of codes: `code()`, `family()`, [`CODES`] and `from_wire()` are generated from
/// it, so a variant cannot have a code in one place and not in another (a variant missing here
/// is a non-exhaustive match; a row without a variant does not compile).
macro_rules! codes {
    ($($variant:ident => $code:literal, $family:ident;)+) => {
        /// Every code in declaration order, with its family: what the bindings expose as their
        /// list of codes (`error_codes()` in Python, `errorCodes()` in Node).
        pub const CODES: &[Code] = &[
            $(Code { code: $code, family: Family::$family, make: Error::$variant },)+
        ];

        impl Error {
            /// The stable code of this error, as every surface reports it.
            pub fn code(&self) -> &'static str {
                match self {
                    $(Error::$variant(_) => $code,)+
                }
            }

            /// The coarse kind of this error (one exception class per family in Python).
            pub fn family(&self) -> Family {
                match self {
                    $(Error::$variant(_) => Family::$family,)+
                }
            }
        }
    };
}

codes! {
    InvalidInput => "NETGET_INVALID_INPUT", InvalidInput;
    MalformedJson => "NETGET_MALFORMED_JSON", InvalidInput;
    UnknownMessage => "NETGET_UNKNOWN_MESSAGE", InvalidInput;
    TooLarge => "NETGET_TOO_LARGE", InvalidInput;
    Unauthorized => "NETGET_UNAUTHORIZED", Unauthorized;
    ChallengeReplayed => "NETGET_CHALLENGE_REPLAYED", Unauthorized;
    ChallengeExpired => "NETGET_CHALLENGE_EXPIRED", Unauthorized;
    Forbidden => "NETGET_FORBIDDEN", Forbidden;
    Denied => "NETGET_DENIED", Denied;
    NotFound => "NETGET_NOT_FOUND", NotFound;
    UnknownNetwork => "NETGET_UNKNOWN_NETWORK", NotFound;
    UnsupportedVersion => "NETGET_UNSUPPORTED_VERSION", InvalidInput;
    Protocol => "NETGET_PROTOCOL", InvalidInput;
    RateLimited => "NETGET_RATE_LIMITED", RateLimited;
    Unreachable => "NETGET_UNREACHABLE", Unreachable;
    Timeout => "NETGET_TIMEOUT", Timeout;
    Closed => "NETGET_CLOSED", Unreachable;
    Io => "NETGET_IO", Other;
    Internal => "NETGET_INTERNAL", Other;
}

impl Error {
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
        match CODES.iter().find(|c| c.code == code) {
            Some(c) => (c.make)(message),
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
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq, utoipa::ToSchema)]
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
        for c in CODES {
            let e = (c.make)("m".into());
            assert_eq!(e.code(), c.code);
            assert_eq!(e.family(), c.family);
        }
        let mut codes: Vec<_> = CODES.iter().map(|c| c.code).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), CODES.len(), "a code is listed twice");
    }

    /// PROTOCOL.md's table of error codes lists exactly the codes of [`CODES`], in order.
    #[test]
    fn the_protocol_documents_every_code() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../PROTOCOL.md");
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let table = text
            .split("## Error codes")
            .nth(1)
            .and_then(|rest| rest.split("\n## ").next())
            .unwrap_or_else(|| panic!("{path} has no \"## Error codes\" section"));
        let documented: Vec<&str> = table
            .lines()
            .filter_map(|l| l.strip_prefix("| `"))
            .filter_map(|l| l.split('`').next())
            .collect();
        let codes: Vec<&str> = CODES.iter().map(|c| c.code).collect();
        assert_eq!(documented, codes, "PROTOCOL.md, \"Error codes\"");
    }

    /// Every `NETGET_*` name the documents mention is a code of [`CODES`] or one of netget's
    /// environment variables: a renamed or removed code cannot linger in the docs.
    #[test]
    fn the_docs_mention_only_real_codes() {
        const NOT_CODES: &[&str] = &[
            "NETGET_",    // the prefix alone, as in `NETGET_...`
            "NETGET_LOG", // environment variables
            "NETGET_LOG_FORMAT",
            "NETGET_REGISTRY",
            "NETGET_TOKEN",
            "NETGET_PROD_TOKENS", // README's example of `tokens_env`
        ];
        for doc in ["README.md", "PROTOCOL.md", "SECURITY.md"] {
            let path = format!("{}/../{doc}", env!("CARGO_MANIFEST_DIR"));
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            for (at, _) in text.match_indices("NETGET_") {
                let name: String = text[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_uppercase() || *c == '_')
                    .collect();
                assert!(
                    NOT_CODES.contains(&name.as_str()) || CODES.iter().any(|c| c.code == name),
                    "{doc} mentions {name}, which is not an error code (a new environment \
                     variable? add it to NOT_CODES)"
                );
            }
        }
    }
}
