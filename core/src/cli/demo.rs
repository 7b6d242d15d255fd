//! `netget demo`: the main job, end to end in one process.

use std::time::Duration;

use super::{describe, event_name, shutdown_signal, DemoArgs};
use crate::client::rest::RestClient;
use crate::client::{Netget, NetgetOptions};
use crate::config::RegistryConfig;
use crate::error::Result;
use crate::registry::Registry;

/// The main job, end to end in one process: a registry, three services of two kinds
/// registering, a client discovering and watching them, and a service leaving.
pub(super) async fn demo(a: DemoArgs) -> Result<()> {
    let data = std::env::temp_dir().join(format!("netget-demo-{}", std::process::id()));
    let mut config = RegistryConfig::new();
    config.listen = a.listen;
    config.data_dir = data.clone();
    let registry = Registry::spawn(config).await?;
    let url = registry.url();
    println!("▶ registry listening on {url} (network \"development\")");

    let mut services = Vec::new();
    for (name, port, version) in [
        ("greeter", 8081, "1.0.0"),
        ("greeter", 8082, "1.1.0"),
        ("DatabaseService", 5432, "2.0.0"),
    ] {
        let mut opts = NetgetOptions::service(name, &format!("http://127.0.0.1:{port}"), &[&url]);
        opts.data_dir = Some(data.clone());
        opts.metadata.insert("version".into(), version.into());
        opts.metadata
            .insert("description".into(), format!("demo {name}").into());
        let node = Netget::new(opts)?;
        let inst = node.register_with_network().await?;
        println!("▶ {name} registered as {} at {}", inst.id, inst.address);
        services.push(node);
    }

    let client = Netget::new(NetgetOptions {
        data_dir: None,
        ..NetgetOptions::client(&[&url])
    })?;
    let mut watch = client.watch("greeter")?;
    let all = client
        .discover_service_nodes("greeter", &Default::default())
        .await?;
    println!("▶ client discovered {} greeter instance(s):", all.len());
    for i in &all {
        println!("    {}", describe(i, Some(i.status)));
    }
    if let Some(db) = client.discover_service_node("DatabaseService").await? {
        println!("▶ client discovered DatabaseService at {}", db.address);
    }
    // Drain the initial `up` events, then show a live change.
    while tokio::time::timeout(Duration::from_millis(200), watch.next())
        .await
        .is_ok_and(|e| e.is_some())
    {}
    println!("▶ stopping one greeter…");
    if let Some(first) = services.first() {
        first.stop().await?;
    }
    if let Ok(Some(ev)) = tokio::time::timeout(Duration::from_secs(5), watch.next()).await {
        println!(
            "▶ watcher saw: {} {} ({})",
            event_name(ev.kind),
            ev.instance.id,
            ev.instance.address
        );
    }
    let left = client
        .discover_service_nodes("greeter", &Default::default())
        .await?;
    println!("▶ greeter instances now: {}", left.len());
    let rest = RestClient::new(&url)?;
    for s in rest.services("development").await? {
        println!("    {:<20} {} instance(s)", s.name.as_str(), s.instances);
    }
    if a.forever {
        println!("▶ registry stays up at {url} — try `netget services --registry {url}` (Ctrl-C to stop)");
        shutdown_signal().await;
    }
    for s in &services {
        s.stop().await?;
    }
    client.stop().await?;
    registry.shutdown().await?;
    let _ = std::fs::remove_dir_all(&data);
    println!("▶ done");
    Ok(())
}
