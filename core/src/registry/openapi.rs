//! The OpenAPI 3.1 document of the HTTP API (`GET /v1/openapi.json`), generated from the
//! handlers' `#[utoipa::path]` annotations and the types they read and answer, so it cannot
//! drift from what the registry serves: the router is built from the same annotated handlers
//! (`http::router`), and a route cannot be added without one (see the tests).

use utoipa::OpenApi;

use crate::error::ErrorBody;

/// What every refused request answers, with the status that fits its code (see `NETGET_*` in
/// README.md): `{"error": {"code", "message"}}`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorAnswer {
    /// The error.
    pub error: ErrorBody,
}

/// The document's frame: what the annotations do not say.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "netget registry HTTP API",
        description = "Service registry and discovery: register instances over REST (with a TTL \
            and heartbeats, or health checks), discover and list services per network. Long-lived \
            nodes use the WebSocket protocol netget/1 at /v1/ws instead (PROTOCOL.md).",
        license(name = "MIT", identifier = "MIT")
    ),
    // Schemas that parameters refer to by name (a reference with no schema behind it leaves the
    // parameter unchecked by tools that read the document).
    components(schemas(
        ErrorAnswer,
        super::http::QueryFlag,
        super::consul::DatacenterSchema
    )),
    tags(
        (name = "discovery", description = "Networks, services and their instances"),
        (name = "registration", description = "REST registrations: register, heartbeat, deregister"),
        (name = "registry", description = "The registry itself: health, cluster, metrics, documents")
    )
)]
pub struct ApiDoc;

/// Adds to `doc` the rules the derives cannot state: a health check names exactly one probe,
/// `http` or `tcp` (so a request the document calls valid is one the registry accepts).
pub fn add_rules(doc: &mut serde_json::Value) {
    // A Consul check is a TTL, an HTTP or a TCP check; a registration gives it once.
    if let Some(check) = doc.pointer_mut("/components/schemas/AgentCheck") {
        let kind = |name: &str, others: [&str; 2]| {
            serde_json::json!({
                "required": [name],
                "properties": {
                    name: { "type": "string" },
                    others[0]: { "type": "null" },
                    others[1]: { "type": "null" }
                }
            })
        };
        check["oneOf"] = serde_json::json!([
            kind("TTL", ["HTTP", "TCP"]),
            kind("HTTP", ["TTL", "TCP"]),
            kind("TCP", ["TTL", "HTTP"])
        ]);
    }
    if let Some(reg) = doc.pointer_mut("/components/schemas/AgentServiceRegistration") {
        reg["not"] = serde_json::json!({
            "required": ["Check", "Checks"],
            "properties": {
                "Check": { "type": "object" },
                "Checks": { "type": "array", "minItems": 1 }
            }
        });
    }
    let Some(check) = doc.pointer_mut("/components/schemas/HealthCheck") else {
        return;
    };
    let probe = |name: &str, pattern: &str, other: &str| {
        serde_json::json!({
            "required": [name],
            "properties": {
                name: { "type": "string", "pattern": pattern, "maxLength": 1024 },
                other: { "type": "null" }
            }
        })
    };
    check["oneOf"] = serde_json::json!([
        probe("http", "^https?://", "tcp"),
        probe("tcp", "^[^/]+:[0-9]+$", "http")
    ]);
}
