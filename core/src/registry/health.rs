//! Active health checks: the registry probes the instances it owns and keeps their status.
//!
//! One task per checked instance, started when it registers with a `health` definition and ended
//! when it goes away. Tasks start at a random point of their interval, so ten thousand checks
//! declared at once do not probe at once, and a semaphore bounds the probes in flight. A status
//! flips only after `failuresBeforeCritical` (default 2) failing or `successBeforePassing`
//! (default 1) passing probes in a row, so one lost probe flips nothing; every transition reaches
//! watchers as `changed`, and an instance critical for `deregisterCriticalAfter` is removed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::directory::{Directory, InstanceKey};
use super::metrics::Metrics;
use crate::model::{HealthCheck, Instance, Status};

/// Probes in flight at once, whatever the number of checked instances.
const MAX_CONCURRENT_PROBES: usize = 256;

/// Finished check handles are never swept below this many.
const MIN_SWEEP: usize = 64;

/// What one probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// The status the probe indicates.
    pub status: Status,
    /// For a person: `HTTP 200`, `connection refused`, …
    pub output: String,
}

/// The health checker of one registry.
pub struct Health {
    directory: Arc<Directory>,
    metrics: Arc<Metrics>,
    permits: Arc<Semaphore>,
    http: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
    /// The running check of each instance, with the definition it runs.
    tasks: Mutex<HashMap<InstanceKey, (HealthCheck, JoinHandle<()>)>>,
    /// Size of `tasks` at which finished handles are swept next.
    sweep_at: AtomicUsize,
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Health")
            .field("checks", &self.running())
            .finish()
    }
}

impl Health {
    /// A checker writing its results into `directory`; it probes http:// and, trusting the
    /// system's roots, https:// URLs.
    pub fn new(
        directory: Arc<Directory>,
        metrics: Arc<Metrics>,
    ) -> crate::error::Result<Arc<Health>> {
        let connector = crate::tls::http_connector(None, true)?;
        Ok(Arc::new(Health {
            directory,
            metrics,
            permits: Arc::new(Semaphore::new(MAX_CONCURRENT_PROBES)),
            http: Client::builder(TokioExecutor::new()).build(connector),
            tasks: Mutex::new(HashMap::new()),
            sweep_at: AtomicUsize::new(MIN_SWEEP),
        }))
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<InstanceKey, (HealthCheck, JoinHandle<()>)>> {
        self.tasks.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Checks running now.
    pub fn running(&self) -> usize {
        self.lock()
            .values()
            .filter(|(_, t)| !t.is_finished())
            .count()
    }

    /// Starts (or keeps, or restarts with a new definition, or stops) the check of an instance
    /// that was just registered.
    pub fn track(self: &Arc<Self>, instance: &Instance) {
        let key = instance.key();
        let mut tasks = self.lock();
        // Checks end on their own when their instance goes; their handles are swept here, but
        // only when the map has doubled since the last sweep, so tracking stays O(1) amortized
        // however many checks run (a sweep per registration would scan all of them).
        if tasks.len() >= self.sweep_at.load(Ordering::Relaxed) {
            tasks.retain(|_, (_, t)| !t.is_finished());
            self.sweep_at
                .store((tasks.len() * 2).max(MIN_SWEEP), Ordering::Relaxed);
        }
        match &instance.health {
            None => {
                if let Some((_, t)) = tasks.remove(&key) {
                    t.abort();
                }
            }
            Some(check) => {
                if tasks
                    .get(&key)
                    .is_some_and(|(c, t)| c == &**check && !t.is_finished())
                {
                    return;
                }
                let check = HealthCheck::clone(check);
                let task = tokio::spawn(run(self.clone(), key.clone(), check.clone()));
                if let Some((_, old)) = tasks.insert(key, (check, task)) {
                    old.abort();
                }
            }
        }
    }

    /// Stops every check (registry shutdown).
    pub fn stop_all(&self) {
        for (_, (_, t)) in self.lock().drain() {
            t.abort();
        }
    }

    /// Runs one probe of `check`.
    pub async fn probe(&self, check: &HealthCheck) -> Probe {
        let timeout = check.timeout();
        if let Some(url) = &check.http {
            let request = hyper::Request::get(url.as_str())
                .header("user-agent", "netget-health/1")
                .body(Empty::new());
            let request = match request {
                Ok(r) => r,
                Err(e) => return critical(format!("bad health URL: {e}")),
            };
            match tokio::time::timeout(timeout, self.http.request(request)).await {
                Err(_) => critical(format!("no answer within {timeout:?}")),
                Ok(Err(e)) => critical(format!("HTTP GET failed: {}", root_cause(&e))),
                Ok(Ok(resp)) => {
                    let code = resp.status();
                    let output = format!("HTTP {}", code.as_u16());
                    let status = if code.is_success() {
                        Status::Passing
                    } else if code.as_u16() == 429 {
                        Status::Warning
                    } else {
                        Status::Critical
                    };
                    Probe { status, output }
                }
            }
        } else if let Some(addr) = &check.tcp {
            match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr.as_str())).await
            {
                Err(_) => critical(format!("TCP connect to {addr} timed out after {timeout:?}")),
                Ok(Err(e)) => critical(format!("TCP connect to {addr} failed: {e}")),
                Ok(Ok(_)) => Probe {
                    status: Status::Passing,
                    output: format!("TCP connect to {addr}: success"),
                },
            }
        } else {
            critical("no http or tcp target".into())
        }
    }
}

fn critical(output: String) -> Probe {
    Probe {
        status: Status::Critical,
        output,
    }
}

fn root_cause(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        text = format!("{text}: {inner}");
        src = inner.source();
    }
    text
}

/// The status a run of probes settles on: a new status needs `threshold` probes in a row.
#[derive(Debug)]
struct Debounce {
    current: Status,
    pending: Option<(Status, u32)>,
}

impl Debounce {
    fn observe(&mut self, observed: Status, check: &HealthCheck) -> Status {
        if observed == self.current {
            self.pending = None;
            return self.current;
        }
        let count = match self.pending {
            Some((s, n)) if s == observed => n + 1,
            _ => 1,
        };
        let threshold = if observed == Status::Passing {
            check.success_before_passing.unwrap_or(1)
        } else {
            check.failures_before_critical.unwrap_or(2)
        };
        if count >= threshold {
            self.current = observed;
            self.pending = None;
        } else {
            self.pending = Some((observed, count));
        }
        self.current
    }
}

async fn run(health: Arc<Health>, key: InstanceKey, check: HealthCheck) {
    let interval = check.interval();
    let kind = if check.http.is_some() { "http" } else { "tcp" };
    // Spread: start somewhere in the first interval.
    let jitter = Duration::from_millis(fastrand::u64(..=interval.as_millis() as u64));
    tokio::time::sleep(jitter).await;
    let mut state = Debounce {
        current: health
            .directory
            .get(&key)
            .map(|i| i.status)
            .unwrap_or_default(),
        pending: None,
    };
    let mut critical_since: Option<Instant> = None;
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let started = Instant::now();
        let probe = {
            let Ok(_permit) = health.permits.clone().acquire_owned().await else {
                return;
            };
            health.probe(&check).await
        };
        health
            .metrics
            .checked(kind, probe.status.as_str(), started.elapsed());
        let status = state.observe(probe.status, &check);
        match health.directory.record_check(&key, status, probe.output) {
            Err(_) => return, // the instance is gone: so is its check
            Ok(before) if before != status => {
                tracing::info!(service = %key.1, id = %key.2, from = ?before, to = ?status, "health status changed");
            }
            Ok(_) => {}
        }
        critical_since = match (status, critical_since) {
            (Status::Critical, None) => Some(Instant::now()),
            (Status::Critical, since) => since,
            _ => None,
        };
        if let (Some(since), Some(limit)) = (critical_since, check.deregister_critical_after) {
            if since.elapsed() >= limit.0 {
                tracing::info!(service = %key.1, id = %key.2, "critical for {:?}: removed", limit.0);
                if health.directory.evict(&key) {
                    health.metrics.deregistered("critical", 1);
                }
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_failed_probe_does_not_flip_a_status_but_two_do() {
        let check = HealthCheck::default();
        let mut d = Debounce {
            current: Status::Passing,
            pending: None,
        };
        assert_eq!(d.observe(Status::Critical, &check), Status::Passing);
        assert_eq!(d.observe(Status::Passing, &check), Status::Passing);
        assert_eq!(d.observe(Status::Critical, &check), Status::Passing);
        assert_eq!(d.observe(Status::Critical, &check), Status::Critical);
        assert_eq!(
            d.observe(Status::Passing, &check),
            Status::Passing,
            "one success recovers"
        );
        assert_eq!(d.observe(Status::Warning, &check), Status::Passing);
        assert_eq!(
            d.observe(Status::Critical, &check),
            Status::Passing,
            "a different failure restarts the count"
        );
        let strict = HealthCheck {
            success_before_passing: Some(3),
            ..Default::default()
        };
        let mut d = Debounce {
            current: Status::Critical,
            pending: None,
        };
        assert_eq!(d.observe(Status::Passing, &strict), Status::Critical);
        assert_eq!(d.observe(Status::Passing, &strict), Status::Critical);
        assert_eq!(d.observe(Status::Passing, &strict), Status::Passing);
    }
}
