//! What a registry counts, and `/metrics` in the OpenMetrics text format Prometheus scrapes.
//!
//! Counters and histograms are updated where things happen (sessions, the HTTP API, watch
//! forwarders, health checks); gauges that describe the directory (instances per network and
//! status, sessions) are read from it at scrape time, so they can never drift.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use super::cluster::ClusterSummary;
use super::directory::Directory;

type Labels = Vec<(&'static str, String)>;

/// Every metric of one registry. Cheap to share; all updates are atomic.
pub struct Metrics {
    registry: Registry,
    sessions: Gauge,
    instances: Family<Labels, Gauge>,
    /// Registries of the cluster by state (`live`, `dead`), this one included; read at scrape.
    cluster_members: Family<Labels, Gauge>,
    /// Live peer registries whose network policies differ from this one's; read at scrape.
    cluster_policy_mismatches: Gauge,
    /// Registrations accepted, by transport (`websocket`, `http`).
    pub registrations: Family<Labels, Counter>,
    /// Instances removed, by reason (`request`, `session`, `expired`, `critical`).
    pub deregistrations: Family<Labels, Counter>,
    /// Discovery queries answered, by transport.
    pub discovery_requests: Family<Labels, Counter>,
    /// The `http` and `websocket` series of `discovery_requests`, resolved once: discovery is
    /// the hottest path, and resolving a labelled series costs two allocations and a lookup.
    discovered_by: [Counter; 2],
    watch_subscribers: Gauge,
    watchers: AtomicI64,
    /// Watch events pushed to sessions.
    pub watch_events: Counter,
    /// Time from a change in the directory to its push being handed to each watcher's socket.
    pub push_latency: Histogram,
    /// Health check results, by kind (`http`, `tcp`) and result (`passing`, `warning`,
    /// `critical`).
    pub checks: Family<Labels, Counter>,
    /// Health check probe durations, by kind.
    pub check_duration: Family<Labels, Histogram>,
    /// Requests refused, by error code.
    pub rejected: Family<Labels, Counter>,
    /// Channel messages published.
    pub channel_messages: Counter,
    /// Replication frames, by direction (`sent`, `received`) and kind (`delta`, `snapshot`,
    /// `relay`).
    replication: Family<Labels, Counter>,
    /// Times a gap in a peer's revisions made this registry reload its snapshot.
    pub replication_repairs: Counter,
    /// REST registrations of lost peers this registry adopted.
    pub adopted: Counter,
    /// How many revisions of each live peer are not applied here yet; read at scrape.
    replication_lag: Family<Labels, Gauge>,
    /// DNS queries answered, by response code (`NoError`, `NXDomain`, `Refused`, …).
    dns_queries: Family<Labels, Counter>,
    /// Blocking queries of the Consul-compatible API waiting now.
    pub blocking_queries: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

fn latency_histogram() -> Histogram {
    // 50 µs .. ~3 s
    Histogram::new(exponential_buckets(0.00005, 2.0, 16))
}

impl Metrics {
    /// All metric families, registered under their Prometheus names.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("netget");
        let discovery_requests: Family<Labels, Counter> = Family::default();
        let transport = |t: &str| {
            discovery_requests
                .get_or_create(&vec![("transport", t.to_string())])
                .clone()
        };
        let discovered_by = [transport("http"), transport("websocket")];
        let m = Metrics {
            sessions: Gauge::default(),
            instances: Family::default(),
            cluster_members: Family::default(),
            cluster_policy_mismatches: Gauge::default(),
            registrations: Family::default(),
            deregistrations: Family::default(),
            discovery_requests,
            discovered_by,
            watch_subscribers: Gauge::default(),
            watchers: AtomicI64::new(0),
            watch_events: Counter::default(),
            push_latency: latency_histogram(),
            checks: Family::default(),
            check_duration: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            rejected: Family::default(),
            channel_messages: Counter::default(),
            replication: Family::default(),
            replication_repairs: Counter::default(),
            adopted: Counter::default(),
            replication_lag: Family::default(),
            dns_queries: Family::default(),
            blocking_queries: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register("sessions", "Open WebSocket sessions", m.sessions.clone());
        registry.register(
            "cluster_members",
            "Registries of the cluster as gossip shows them, by state, this one included",
            m.cluster_members.clone(),
        );
        registry.register(
            "cluster_policy_mismatches",
            "Live peer registries whose networks or policies differ from this one's",
            m.cluster_policy_mismatches.clone(),
        );
        registry.register(
            "instances",
            "Registered instances by network and status",
            m.instances.clone(),
        );
        registry.register(
            "registrations",
            "Registrations accepted, by transport",
            m.registrations.clone(),
        );
        registry.register(
            "deregistrations",
            "Instances removed, by reason",
            m.deregistrations.clone(),
        );
        registry.register(
            "discovery_requests",
            "Discovery queries answered, by transport",
            m.discovery_requests.clone(),
        );
        registry.register(
            "watch_subscribers",
            "Watch subscriptions open on sessions",
            m.watch_subscribers.clone(),
        );
        registry.register(
            "watch_events_pushed",
            "Watch events pushed to sessions",
            m.watch_events.clone(),
        );
        registry.register(
            "watch_push_latency_seconds",
            "Time from a directory change to its event being handed to a watcher's connection",
            m.push_latency.clone(),
        );
        registry.register(
            "health_checks",
            "Health check results, by kind and result",
            m.checks.clone(),
        );
        registry.register(
            "health_check_duration_seconds",
            "Health check probe durations, by kind",
            m.check_duration.clone(),
        );
        registry.register(
            "rejected_requests",
            "Requests refused, by error code",
            m.rejected.clone(),
        );
        registry.register(
            "channel_messages_published",
            "Channel messages published",
            m.channel_messages.clone(),
        );
        registry.register(
            "replication_frames",
            "Replication frames between registries, by direction and kind",
            m.replication.clone(),
        );
        registry.register(
            "replication_repairs",
            "Snapshots reloaded because a peer's revision showed a gap",
            m.replication_repairs.clone(),
        );
        registry.register(
            "cluster_adopted",
            "REST registrations of lost peer registries this registry adopted",
            m.adopted.clone(),
        );
        registry.register(
            "replication_lag_revisions",
            "Revisions of each live peer registry not applied here yet",
            m.replication_lag.clone(),
        );
        registry.register(
            "dns_queries",
            "DNS queries answered, by response code",
            m.dns_queries.clone(),
        );
        registry.register(
            "consul_blocking_queries",
            "Blocking queries of the Consul-compatible API waiting now",
            m.blocking_queries.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Adds the store writer's counts (commits, operations, commit durations).
    pub fn register_store(&mut self, stats: &super::store::StoreStats) {
        self.registry.register(
            "store_commits",
            "Store transactions committed, each with one fsync",
            stats.commits.clone(),
        );
        self.registry.register(
            "store_writes",
            "Operations carried by store commits",
            stats.writes.clone(),
        );
        self.registry.register(
            "store_commit_duration_seconds",
            "Time of each store commit, fsync included",
            stats.commit_seconds.clone(),
        );
    }

    /// Counts one more (or one fewer) watch subscription.
    pub fn watchers(&self, delta: i64) {
        let now = self.watchers.fetch_add(delta, Ordering::Relaxed) + delta;
        self.watch_subscribers.set(now);
    }

    /// Counts a refusal under its code.
    pub fn reject(&self, code: &'static str) {
        self.rejected
            .get_or_create(&vec![("code", code.to_string())])
            .inc();
    }

    /// Counts an accepted registration.
    pub fn registered(&self, transport: &'static str) {
        self.registrations
            .get_or_create(&vec![("transport", transport.to_string())])
            .inc();
    }

    /// Counts removals.
    pub fn deregistered(&self, reason: &'static str, n: usize) {
        if n > 0 {
            self.deregistrations
                .get_or_create(&vec![("reason", reason.to_string())])
                .inc_by(n as u64);
        }
    }

    /// Counts a DNS query under its answer's response code.
    pub fn dns_query(&self, code: impl std::fmt::Debug) {
        self.dns_queries
            .get_or_create(&vec![("code", format!("{code:?}"))])
            .inc();
    }

    /// Counts a discovery query.
    pub fn discovered(&self, transport: &'static str) {
        match transport {
            "http" => self.discovered_by[0].inc(),
            "websocket" => self.discovered_by[1].inc(),
            other => self
                .discovery_requests
                .get_or_create(&vec![("transport", other.to_string())])
                .inc(),
        };
    }

    /// Counts one replication frame.
    pub fn replication_frame(&self, direction: &'static str, kind: &'static str) {
        self.replication
            .get_or_create(&vec![
                ("direction", direction.to_string()),
                ("kind", kind.to_string()),
            ])
            .inc();
    }

    /// Records one health check.
    pub fn checked(&self, kind: &'static str, result: &'static str, took: Duration) {
        self.checks
            .get_or_create(&vec![
                ("kind", kind.to_string()),
                ("result", result.to_string()),
            ])
            .inc();
        self.check_duration
            .get_or_create(&vec![("kind", kind.to_string())])
            .observe(took.as_secs_f64());
    }

    /// The exposition: refreshes the directory gauges, then encodes everything.
    pub fn render(
        &self,
        directory: &Directory,
        sessions: usize,
        cluster: Option<&ClusterSummary>,
    ) -> String {
        self.sessions.set(sessions as i64);
        if let Some(c) = cluster {
            for (peer, lag) in &c.lag {
                self.replication_lag
                    .get_or_create(&vec![("peer", peer.clone())])
                    .set(i64::try_from(*lag).unwrap_or(i64::MAX));
            }
            for (state, n) in [("live", c.live), ("dead", c.dead)] {
                self.cluster_members
                    .get_or_create(&vec![("state", state.to_string())])
                    .set(n as i64);
            }
            self.cluster_policy_mismatches
                .set(c.policies_differ.len() as i64);
        }
        for (network, counts) in directory.status_counts() {
            for (status, n) in ["passing", "warning", "critical"].into_iter().zip(counts) {
                self.instances
                    .get_or_create(&vec![
                        ("network", network.to_string()),
                        ("status", status.to_string()),
                    ])
                    .set(n as i64);
            }
        }
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
