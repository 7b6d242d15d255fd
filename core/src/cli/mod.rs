//! The `netget` command line: run a registry, register, discover, watch, make keys, benchmark.
//!
//! Client commands talk to a registry over its HTTP API (`register`, `deregister`, `discover`,
//! `services`) or a WebSocket session (`watch`); human output by default, `--json` for scripts.

pub(crate) mod bench;
mod demo;
mod soak;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use sha2::{Digest, Sha256};

use crate::client::rest::RestClient;
use crate::client::{Netget, NetgetOptions, NodeType};
use crate::config::{RegistryConfig, DEFAULT_REGISTRY_URL};
use crate::error::{Error, Result};
use crate::identity::NodeKey;
use crate::model::{EventKind, Instance, Registration, Status, WireDuration, DEFAULT_NETWORK};
use crate::registry::Registry;
use crate::security::NetworkConfig;

/// netget: service registry and discovery.
#[derive(Debug, Parser)]
#[command(name = "netget", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a registry node (HTTP API and WebSocket on one port).
    Registry(RegistryArgs),
    /// Register an instance over HTTP (it lives for its TTL unless renewed).
    Register(RegisterArgs),
    /// Remove an instance.
    Deregister(DeregisterArgs),
    /// Find the instances of a service.
    Discover(DiscoverArgs),
    /// List the services of a network with instance counts.
    Services(ServicesArgs),
    /// Print every change to a service as it happens (Ctrl-C to stop).
    Watch(WatchArgs),
    /// Show the registries of a registry's cluster: id, live or not, URL, gossip address,
    /// revision, and for peers the replication lag (revisions not applied yet).
    Cluster(ClusterArgs),
    /// Make an Ed25519 node key.
    Keygen(KeygenArgs),
    /// Run a registry with demo services registering and discovering each other.
    Demo(DemoArgs),
    /// Drive a registry with load and print throughput, latency and memory.
    Bench(bench::BenchArgs),
    /// Hold many sessions with churn and watchers on registries it starts, for a chosen time,
    /// reporting memory, open files, watch latency and errors; then optionally a flood from
    /// one address while another measures its latency.
    Soak(soak::SoakArgs),
}

#[derive(Debug, Args)]
struct RegistryArgs {
    /// Configuration file (netget.toml); the flags below override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Address to listen on (port 0 picks a free port; the URL is printed). Default 127.0.0.1:7700.
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// Data directory (the registry's identity key lives here). Default ./netget-data.
    #[arg(long = "data")]
    data: Option<PathBuf>,
    /// A network to serve as open (repeatable); replaces the configured networks.
    #[arg(long = "network")]
    networks: Vec<String>,
    /// Silence after which a session and its instances are removed (default 5s).
    #[arg(long, value_parser = parse_duration)]
    session_timeout: Option<WireDuration>,
    /// TLS certificate chain (PEM): serve https:// and wss://.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// A browser origin allowed to use the registry (repeatable; `*` for any).
    #[arg(long = "cors-origin")]
    cors_origins: Vec<String>,
    /// A peer registry to join, by URL (repeatable); registries gossip over UDP on the same
    /// host and port number.
    #[arg(long = "join")]
    join: Vec<String>,
    /// Where to gossip with peer registries (UDP; default: the --listen address, when --join
    /// is given). Give it on the first registry of a cluster, which joins no one itself.
    #[arg(long)]
    gossip_listen: Option<std::net::SocketAddr>,
    /// The URL peer registries should use for this one (default: its own URL).
    #[arg(long)]
    advertise: Option<String>,
    /// Answer DNS queries for services on this address, UDP and TCP (e.g. 127.0.0.1:8600;
    /// port 0 picks one, printed at start). Names: <name>.<network>.netget (README).
    #[arg(long)]
    dns_listen: Option<std::net::SocketAddr>,
}

#[derive(Debug, Args)]
struct ClusterArgs {
    #[command(flatten)]
    target: Target,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Options every client command shares.
#[derive(Debug, Args)]
struct Target {
    /// Registry URL.
    #[arg(long, env = "NETGET_REGISTRY", hide_env_values = true, default_value = DEFAULT_REGISTRY_URL)]
    registry: String,
    /// Network.
    #[arg(long, default_value = DEFAULT_NETWORK)]
    network: String,
    /// Token for networks whose policy needs one.
    #[arg(long, env = "NETGET_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// CA certificate (PEM) to trust for an https:// registry instead of the system's roots.
    #[arg(long)]
    ca: Option<PathBuf>,
}

impl Target {
    fn rest(&self) -> Result<RestClient> {
        Ok(RestClient::with_tls(&self.registry, self.ca.as_deref())?.token(self.token.clone()))
    }

    /// Node options for this target (registry, network, token, CA).
    fn options(&self, base: NetgetOptions) -> NetgetOptions {
        NetgetOptions {
            network: self.network.clone(),
            registry_nodes: vec![self.registry.clone()],
            token: self.token.clone(),
            tls_ca: self.ca.clone(),
            ..base
        }
    }
}

#[derive(Debug, Args)]
struct RegisterArgs {
    /// Service name.
    name: String,
    /// Where clients reach the instance.
    #[arg(long)]
    address: String,
    #[command(flatten)]
    target: Target,
    /// Instance id (default: derived from name and address, so re-running updates it).
    #[arg(long)]
    id: Option<String>,
    /// A tag (repeatable).
    #[arg(long = "tag")]
    tags: Vec<String>,
    /// Metadata as key=value (repeatable).
    #[arg(long = "meta", value_parser = parse_kv)]
    meta: Vec<(String, String)>,
    /// Version of the instance.
    #[arg(long = "service-version")]
    service_version: Option<String>,
    /// Time to live without a heartbeat.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    ttl: WireDuration,
    /// Print the stored instance as JSON.
    #[arg(long)]
    json: bool,
    /// Register over a WebSocket session and stay registered while this command runs
    /// (Ctrl-C deregisters; if the process dies the instance vanishes with its session).
    #[arg(long)]
    hold: bool,
    /// With --hold: the node's key file (default: `node.key` in the user's data dir,
    /// `$XDG_DATA_HOME/netget` or `~/.local/share/netget`, created if missing).
    #[arg(long, requires = "hold")]
    key: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct DeregisterArgs {
    /// Service name.
    name: String,
    /// Instance id.
    id: String,
    #[command(flatten)]
    target: Target,
}

#[derive(Debug, Args)]
struct DiscoverArgs {
    /// Service name.
    name: String,
    #[command(flatten)]
    target: Target,
    /// Include critical instances.
    #[arg(long)]
    all: bool,
    /// Only instances with this tag (repeatable).
    #[arg(long = "tag")]
    tags: Vec<String>,
    /// JSON output.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct ServicesArgs {
    #[command(flatten)]
    target: Target,
    /// JSON output.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct WatchArgs {
    /// Service name.
    name: String,
    #[command(flatten)]
    target: Target,
    /// One JSON event per line.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct KeygenArgs {
    /// Write the key here (mode 0600) instead of printing it.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct DemoArgs {
    /// Address for the demo registry.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: std::net::SocketAddr,
    /// Keep running (Ctrl-C to stop) instead of exiting after the tour.
    #[arg(long)]
    forever: bool,
}

fn parse_duration(s: &str) -> std::result::Result<WireDuration, String> {
    WireDuration::parse(s).map_err(|e| e.to_string())
}

fn parse_kv(s: &str) -> std::result::Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("{s:?} is not key=value"))
}

/// Parses `args` and runs the command; returns the process exit code.
pub fn main_with_args(args: impl IntoIterator<Item = String>) -> i32 {
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    init_logging(matches!(cli.command, Command::Registry(_)));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return 1;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error [{}]: {e}", e.code());
            1
        }
    }
}

/// Logs to stderr; `NETGET_LOG` sets the filter (e.g. `NETGET_LOG=debug`), and
/// `NETGET_LOG_FORMAT=json` writes one JSON object per line. By default a registry logs at info
/// and the client commands only warnings, so their output stays readable.
pub fn init_logging(verbose: bool) {
    let default = if verbose { "warn,netget=info" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("NETGET_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Colour codes are for a person at a terminal; in a log file they are noise.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = if std::env::var("NETGET_LOG_FORMAT").is_ok_and(|f| f == "json") {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Registry(a) => registry(a).await,
        Command::Register(a) => register(a).await,
        Command::Deregister(a) => {
            let rest = a.target.rest()?;
            let gone = rest.deregister(&a.target.network, &a.name, &a.id).await?;
            println!("deregistered {} {} ({})", gone.name, gone.id, gone.address);
            Ok(())
        }
        Command::Discover(a) => discover(a).await,
        Command::Services(a) => services(a).await,
        Command::Cluster(a) => cluster(a).await,
        Command::Watch(a) => watch(a).await,
        Command::Keygen(a) => {
            let key = NodeKey::generate()?;
            match a.out {
                Some(path) => {
                    key.save(&path)?;
                    println!("wrote {}", path.display());
                    println!("public key: {}", key.public_key());
                }
                None => {
                    print!("{}", key.to_text());
                    eprintln!("public key: {}", key.public_key());
                }
            }
            Ok(())
        }
        Command::Demo(a) => demo::demo(a).await,
        Command::Bench(a) => bench::run(a).await,
        Command::Soak(a) => soak::run(a).await,
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

async fn registry(a: RegistryArgs) -> Result<()> {
    let mut config = match &a.config {
        Some(path) => RegistryConfig::from_file(path)?,
        None => RegistryConfig::new(),
    };
    if let Some(t) = a.session_timeout {
        config = config.with_session_timeout(t.0);
    }
    if let Some(l) = a.listen {
        config.listen = l;
    }
    if let Some(d) = a.data {
        config.data_dir = d;
    }
    if let (Some(cert), Some(key)) = (a.tls_cert, a.tls_key) {
        config.tls = Some(crate::config::TlsFiles { cert, key });
    }
    config.origins.allowed.extend(a.cors_origins);
    config.cluster.join.extend(a.join);
    if a.gossip_listen.is_some() {
        config.cluster.gossip_listen = a.gossip_listen;
    }
    if a.advertise.is_some() {
        config.cluster.advertise = a.advertise;
    }
    if a.dns_listen.is_some() {
        config.dns.listen = a.dns_listen;
    }
    if !a.networks.is_empty() {
        config.networks = a
            .networks
            .iter()
            .map(|n| NetworkConfig::open(n))
            .collect::<Result<_>>()?;
        config.networks_configured = true;
    }
    let handle = Registry::spawn(config).await?;
    let networks = handle.networks();
    // Tests and tools read this first line to learn the port.
    println!(
        "netget registry listening on {} (registry id {}, networks: {})",
        handle.url(),
        handle.registry_id(),
        networks.join(", ")
    );
    if let Some(dns) = handle.dns_addr() {
        println!(
            "netget DNS answering on {dns} (UDP and TCP; names under {})",
            handle.dns_domain()
        );
    }
    shutdown_signal().await;
    eprintln!("shutting down: closing sessions");
    handle.shutdown().await
}

/// The id a CLI registration gets when none is given: stable for one name and address.
fn cli_instance_id(name: &str, address: &str) -> String {
    let d = Sha256::digest(format!("{name}\0{address}").as_bytes());
    d[..8].iter().map(|b| format!("{b:02x}")).collect()
}

async fn register(a: RegisterArgs) -> Result<()> {
    if a.hold {
        return register_and_hold(a).await;
    }
    let rest = a.target.rest()?;
    let id =
        a.id.clone()
            .unwrap_or_else(|| cli_instance_id(&a.name, &a.address));
    let reg = Registration {
        address: a.address.clone(),
        tags: a.tags.clone(),
        metadata: a
            .meta
            .iter()
            .map(|(k, v)| (k.clone(), v.clone().into()))
            .collect(),
        version: a.service_version.clone(),
        weight: None,
        ttl: Some(a.ttl),
        health: None,
        signature: None,
        signed_at: None,
    };
    let inst = rest.register(&a.target.network, &a.name, &id, &reg).await?;
    if a.json {
        println!("{}", to_json(&inst)?);
    } else {
        println!("registered {} {} at {} (ttl {}; renew with PUT {}/v1/networks/{}/services/{}/instances/{}/heartbeat)",
            inst.name, inst.id, inst.address, a.ttl, rest.base(), inst.network, inst.name, inst.id);
    }
    Ok(())
}

async fn register_and_hold(a: RegisterArgs) -> Result<()> {
    let mut opts = a
        .target
        .options(NetgetOptions::service(&a.name, &a.address, &[]));
    if let Some(path) = &a.key {
        opts.key = Some(NodeKey::load(path)?);
    }
    for (k, v) in &a.meta {
        opts.metadata.insert(k.clone(), v.clone().into());
    }
    if !a.tags.is_empty() {
        opts.metadata.insert("tags".into(), a.tags.clone().into());
    }
    if let Some(v) = &a.service_version {
        opts.metadata.insert("version".into(), v.clone().into());
    }
    if let Some(id) = &a.id {
        opts.metadata.insert("id".into(), id.clone().into());
    }
    let node = Netget::new(opts)?;
    let inst = node.register_with_network().await?;
    if a.json {
        println!(
            "{}",
            serde_json::to_string(&inst).map_err(|e| Error::Internal(e.to_string()))?
        );
    } else {
        println!(
            "registered {} {} at {} (held by this session; Ctrl-C to deregister)",
            inst.name, inst.id, inst.address
        );
    }
    shutdown_signal().await;
    node.stop().await
}

fn event_name(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Up => "up",
        EventKind::Down => "down",
        EventKind::Changed => "changed",
    }
}

/// `v` as indented JSON. Instance metadata is kept as compact JSON text, which serde_json's
/// pretty printer copies through as it is; so the whole is encoded compactly and indented
/// afterwards (going through `serde_json::Value` instead would sort every object's keys).
fn to_json<T: serde::Serialize>(v: &T) -> Result<String> {
    let compact = serde_json::to_string(v).map_err(|e| Error::Internal(format!("encode: {e}")))?;
    indent_json(&compact)
}

/// Compact JSON text laid out by `serde_json`'s pretty printer, keys in their order. (Metadata is
/// kept as JSON text, which the pretty printer would copy through on one line; and through
/// `serde_json::Value` every object's keys would come out sorted.)
fn indent_json(compact: &str) -> Result<String> {
    let mut out = Vec::with_capacity(compact.len() * 2);
    let mut from = serde_json::Deserializer::from_str(compact);
    serde_transcode::transcode(&mut from, &mut serde_json::Serializer::pretty(&mut out))
        .map_err(|e| Error::Internal(format!("encode: {e}")))?;
    String::from_utf8(out).map_err(|e| Error::Internal(format!("encode: {e}")))
}

/// An instance on one line: id, address, `status` when it has one, and what else it carries.
/// A `down` event's instance has none: it is gone, and the status it last had (usually
/// `passing`) would read as its current one.
fn describe(i: &Instance, status: Option<Status>) -> String {
    let mut s = format!("{:<24} {:<32}", i.id.as_str(), i.address);
    if let Some(status) = status {
        s.push_str(&format!(" {:<9}", format!("{status:?}").to_lowercase()));
    }
    if !i.tags.is_empty() {
        s.push_str(&format!(" tags={}", i.tags.joined()));
    }
    if let Some(v) = &i.version {
        s.push_str(&format!(" version={v}"));
    }
    if let Some(c) = &i.last_check {
        let ago = crate::model::now_millis().saturating_sub(c.at) as f64 / 1000.0;
        s.push_str(&format!(" last check: {} ({ago:.1}s ago)", c.output));
    }
    s.trim_end().to_string()
}

async fn discover(a: DiscoverArgs) -> Result<()> {
    let rest = a.target.rest()?;
    let found = rest
        .discover(&a.target.network, &a.name, !a.all, &a.tags)
        .await?;
    if a.json {
        println!("{}", to_json(&found)?);
        return Ok(());
    }
    if found.instances.is_empty() {
        println!(
            "no instances of {} in network {}",
            found.name, found.network
        );
        return Ok(());
    }
    println!(
        "{} in {} ({} instance{}):",
        found.name,
        found.network,
        found.instances.len(),
        if found.instances.len() == 1 { "" } else { "s" }
    );
    for i in &found.instances {
        println!("  {}", describe(i, Some(i.status)));
    }
    Ok(())
}

async fn services(a: ServicesArgs) -> Result<()> {
    let rest = a.target.rest()?;
    let list = rest.services(&a.target.network).await?;
    if a.json {
        println!(
            "{}",
            to_json(&serde_json::json!({ "network": a.target.network, "services": list }))?
        );
        return Ok(());
    }
    if list.is_empty() {
        println!("no services in network {}", a.target.network);
    }
    for s in list {
        println!(
            "{:<32} {} instance(s), {} healthy",
            s.name.as_str(),
            s.instances,
            s.healthy
        );
    }
    Ok(())
}

async fn cluster(a: ClusterArgs) -> Result<()> {
    let rest = a.target.rest()?;
    let body = rest.send(hyper::Method::GET, "/v1/cluster", None).await?;
    let answer: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| Error::Protocol(format!("the registry's /v1/cluster is not JSON: {e}")))?;
    if a.json {
        println!("{}", to_json(&answer)?);
        return Ok(());
    }
    let members = answer["members"].as_array().cloned().unwrap_or_default();
    if members.is_empty() {
        println!("this registry is not in a cluster (start it with --join or --gossip-listen)");
    }
    for m in members {
        let text = |k: &str| m[k].as_str().unwrap_or("-").to_string();
        let state = if m["live"].as_bool() == Some(true) {
            "live"
        } else {
            "dead"
        };
        let this = if m["this"].as_bool() == Some(true) {
            " (this registry)"
        } else {
            ""
        };
        // Revision as the member gossips it; for peers, how many of those this registry has
        // not applied yet (or that it does not follow it over a link).
        let revision = m["revision"].as_u64();
        let replication = match (m["linked"].as_bool(), m["replicated"].as_u64()) {
            _ if !this.is_empty() => String::new(),
            (Some(true), Some(applied)) => {
                format!(" lag {}", revision.unwrap_or(0).saturating_sub(applied))
            }
            _ => " not linked".to_string(),
        };
        println!(
            "{:<14} {:<5} {:<28} gossip {} rev {}{replication}{this}",
            text("id"),
            state,
            text("url"),
            text("gossip"),
            revision.map_or_else(|| "-".to_string(), |r| r.to_string()),
        );
    }
    Ok(())
}

async fn watch(a: WatchArgs) -> Result<()> {
    let node = Netget::new(a.target.options(NetgetOptions {
        node_type: NodeType::Client,
        data_dir: None,
        ..NetgetOptions::default()
    }))?;
    node.start().await?;
    let mut w = node.watch(&a.name)?;
    eprintln!(
        "watching {} in {} (Ctrl-C to stop)",
        a.name, a.target.network
    );
    let stop = shutdown_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            ev = w.next() => {
                let Some(ev) = ev else { break };
                if a.json {
                    println!("{}", serde_json::to_string(&ev).map_err(|e| Error::Internal(e.to_string()))?);
                } else {
                    let status = match ev.kind {
                        EventKind::Down => None,
                        EventKind::Up | EventKind::Changed => Some(ev.instance.status),
                    };
                    println!("{:<8} {}", event_name(ev.kind), describe(&ev.instance, status));
                }
            }
            _ = &mut stop => break,
        }
    }
    node.stop().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indented_json_is_laid_out_as_serde_json_lays_it_out() {
        let v = serde_json::json!({
            "a": {"b": [1, {"c": null}], "empty": {}, "none": []},
            "text": "braces {[,:]} and \"quotes\" and a \\ backslash",
            "n": -1.5,
        });
        let compact = serde_json::to_string(&v).unwrap();
        let pretty = serde_json::to_string_pretty(&v).unwrap();
        assert_eq!(indent_json(&compact).unwrap(), pretty);
    }

    #[test]
    fn every_option_read_from_the_environment_hides_its_value_in_help() {
        fn check(cmd: &clap::Command, path: &str) {
            for arg in cmd.get_arguments() {
                if arg.get_env().is_some() {
                    assert!(
                        arg.is_hide_env_values_set(),
                        "{path} --{}: add hide_env_values = true",
                        arg.get_id()
                    );
                }
            }
            for sub in cmd.get_subcommands() {
                check(sub, &format!("{path} {}", sub.get_name()));
            }
        }
        check(&<Cli as clap::CommandFactory>::command(), "netget");
    }
}
