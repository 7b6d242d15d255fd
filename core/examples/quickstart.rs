//! The README's "Quick start: Rust", compiled and run: `cargo run -p netget-core --example
//! quickstart`. It starts a cluster of two registries on free ports and a `DatabaseService`
//! node, then runs the README's lines (between the `README-BEGIN` and `README-END` markers)
//! against them.
//! `core/tests/readme.rs` checks that the README block is exactly those lines, and runs them.

use std::error::Error;

use netget::{Registry, RegistryConfig};

/// The README's quick start; `registries` are the URLs of running registries.
pub async fn quickstart(registries: &[&str]) -> Result<(Option<String>, String), Box<dyn Error>> {
    // README-BEGIN
    use netget::{Netget, NetgetOptions};

    // `registries`: registry URLs, e.g. &["http://127.0.0.1:7700", "http://127.0.0.1:7701"]
    let options = NetgetOptions::service("orders", "http://127.0.0.1:8000", registries);
    let node = Netget::new(options)?; // several registries = failover
    node.register_with_network().await?; // re-registered after any reconnect
    let db = node.discover_service_node("DatabaseService").await?; // one healthy instance or None
    let mut watch = node.watch("DatabaseService")?; // `up` for each current instance, then changes
    let event = watch.next().await.ok_or("the node was stopped")?; // event.kind, event.instance
    println!("{:?} {}", event.kind, event.instance.address); // e.g. "Up http://127.0.0.1:5432"
    node.stop().await?; // deregisters at once

    // README-END
    let first = format!("{:?} {}", event.kind, event.instance.address);
    Ok((db.map(|i| i.address.clone()), first))
}

/// A cluster of two registries on free ports and a `DatabaseService` node, then
/// [`quickstart`]. Runs in a temporary directory, where the `orders` node keeps its key
/// (`./netget-data/node.key`).
pub async fn run() -> Result<(Option<String>, String), Box<dyn Error>> {
    let dir = tempfile::tempdir()?;
    let before = std::env::current_dir()?;
    std::env::set_current_dir(dir.path())?;
    let mut first = RegistryConfig::ephemeral(dir.path().join("primary"));
    first.cluster.gossip_listen = Some("127.0.0.1:0".parse()?);
    let primary = Registry::spawn(first).await?;
    let mut second = RegistryConfig::ephemeral(dir.path().join("backup"));
    second.cluster.join = vec![primary.url()];
    let backup = Registry::spawn(second).await?;
    let db = netget::Netget::new(netget::NetgetOptions {
        data_dir: None,
        ..netget::NetgetOptions::service(
            "DatabaseService",
            "http://127.0.0.1:5432",
            &[&primary.url()],
        )
    })?;
    db.register_with_network().await?;
    // The node may start on either registry (nodes spread over a cluster): wait until the
    // backup serves the database too (bounded).
    let rest = netget::client::rest::RestClient::new(&backup.url())?;
    for _ in 0..300 {
        let found = rest
            .discover("development", "DatabaseService", true, &[])
            .await?;
        if !found.instances.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let outcome = quickstart(&[&primary.url(), &backup.url()]).await;
    db.stop().await?;
    primary.shutdown().await?;
    backup.shutdown().await?;
    std::env::set_current_dir(before)?;
    outcome
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    run().await?;
    Ok(())
}
