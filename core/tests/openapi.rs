//! The OpenAPI document (`GET /v1/openapi.json`) describes exactly what the registry serves:
//! OpenAPI 3.1, every documented operation answered by a real route, and no route added
//! outside the documented router.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use netget::client::rest::RestClient;

/// The source of the HTTP front end, where every route is declared.
const HTTP_RS: &str = include_str!("../src/registry/http.rs");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registry_serves_its_openapi_3_1_document() {
    let (reg, _d) = common::registry().await;
    let rest = RestClient::new(&reg.url()).unwrap();
    let (status, body) = rest
        .raw(hyper::Method::GET, "/v1/openapi.json", None)
        .await
        .unwrap();
    assert_eq!(status, 200);
    let served: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(served["openapi"], "3.1.0");
    assert_eq!(served["info"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(
        served,
        serde_json::to_value(netget::registry::openapi()).unwrap()
    );
    // The error body every refusal carries is described once and used by the operations.
    assert!(served["components"]["schemas"]["ErrorAnswer"].is_object());
    let register = &served["paths"]["/v1/networks/{network}/services/{name}/instances/{id}"]["put"];
    assert!(
        register["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            .as_str()
            .unwrap()
            .ends_with("/Registration")
    );
    assert!(register["responses"]["default"].is_object(), "{register}");
    reg.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_operation_is_served() {
    let (reg, _d) = common::registry().await;
    let rest = RestClient::new(&reg.url()).unwrap();
    let doc = serde_json::to_value(netget::registry::openapi()).unwrap();
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 12, "{:?}", paths.keys());
    let mut tried = 0;
    for (path, ops) in paths {
        let concrete = path
            .replace("{network}", "development")
            .replace("{name}", "web")
            .replace("{id}", "w1");
        for method in ops.as_object().unwrap().keys() {
            let m = hyper::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let (status, body) = rest.raw(m, &concrete, None).await.unwrap();
            let text = String::from_utf8_lossy(&body);
            assert!(
                status != 405 && !text.contains("no such endpoint"),
                "{method} {path} is documented but not served: {status} {text}"
            );
            tried += 1;
        }
    }
    assert!(tried >= 13, "{tried} operations");
    reg.shutdown().await.unwrap();
}

#[test]
fn no_route_is_added_outside_the_documented_router() {
    // `routes!` needs the handler's #[utoipa::path]; these would add a route without one.
    for bypass in [".route(", ".route_service(", ".nest(", ".merge("] {
        assert!(
            !HTTP_RS.contains(bypass),
            "http.rs adds a route with `{bypass}`: declare it with #[utoipa::path] and add it \
             through `routes!` so that /v1/openapi.json documents it"
        );
    }
    let documented = HTTP_RS.matches(".routes(routes!(").count();
    let operations: usize = serde_json::to_value(netget::registry::openapi()).unwrap()["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|ops| ops.as_object().unwrap().len())
        .sum();
    assert!(operations >= documented, "{operations} < {documented}");
}
