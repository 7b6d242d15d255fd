//! Latency distributions and the few helpers both sides share.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde::Serialize;

/// A latency distribution, microseconds.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Latency {
    /// Samples taken (events received over all watchers).
    pub samples: usize,
    /// Events the writer sent.
    pub events: usize,
    /// Watchers.
    pub watchers: usize,
    /// Events that never arrived within the time bound (or came as a snapshot instead).
    pub missed: usize,
    /// Percentiles.
    pub p50_us: f64,
    /// 99th.
    pub p99_us: f64,
    /// 99.9th.
    pub p999_us: f64,
    /// Largest.
    pub max_us: f64,
    /// The sorted samples, thinned to at most 2,000 points (first and last kept), for the plot.
    pub sorted_us: Vec<f64>,
}

impl Latency {
    /// Summarises `samples`.
    pub fn of(mut samples: Vec<Duration>, events: usize, watchers: usize) -> Latency {
        samples.sort_unstable();
        let us: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e6).collect();
        let pct = |p: f64| -> f64 {
            if us.is_empty() {
                return f64::NAN;
            }
            us[((us.len() as f64 * p) as usize).min(us.len() - 1)]
        };
        let sorted_us = thin(&us, 2_000);
        Latency {
            samples: us.len(),
            events,
            watchers,
            missed: (events * watchers).saturating_sub(us.len()),
            p50_us: pct(0.50),
            p99_us: pct(0.99),
            p999_us: pct(0.999),
            max_us: us.last().copied().unwrap_or(f64::NAN),
            sorted_us,
        }
    }
}

/// When each write of the watch phase was sent, by sequence number; filled by the writer, read
/// by the watchers without a lock.
pub type SentAt = std::sync::Arc<Vec<OnceLock<Instant>>>;

/// An empty [`SentAt`] for `events` writes.
pub fn sent_at(events: usize) -> SentAt {
    std::sync::Arc::new((0..events).map(|_| OnceLock::new()).collect())
}

/// The sample for the event carrying `seq`, received at `now`.
pub fn sample(sent: &SentAt, seq: Option<u64>, now: Instant) -> Option<Duration> {
    let t = sent.get(usize::try_from(seq?).ok()?)?.get()?;
    Some(now.saturating_duration_since(*t))
}

/// The value an instance is stored under in etcd, and sent in a netget registration: the same
/// ~200 bytes of metadata, tags, address and version (`netget::testsuite::payload`).
pub fn etcd_value(i: usize, seq: Option<u64>) -> Vec<u8> {
    let mut reg = netget::testsuite::payload(i);
    if let Some(s) = seq {
        reg.metadata.insert("seq".into(), s.into());
    }
    serde_json::to_vec(&reg).unwrap_or_default()
}

/// Splits `0..n` into `parts` strided index lists (`part`, `part + parts`, …).
pub fn strided(range: std::ops::Range<usize>, parts: usize, part: usize) -> Vec<usize> {
    range.skip(part).step_by(parts.max(1)).collect()
}

/// CPU time a phase cost the registry and the load generator (this process).
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PhaseCpu {
    /// Operations the phase did (registrations, queries, events delivered).
    pub ops: usize,
    /// Wall-clock time, milliseconds.
    pub wall_ms: f64,
    /// Registry (netget or etcd) CPU, milliseconds (10 ms resolution).
    pub registry_cpu_ms: f64,
    /// Load generator CPU, milliseconds (10 ms resolution).
    pub loadgen_cpu_ms: f64,
    /// Registry CPU per operation, microseconds.
    pub registry_us_per_op: f64,
    /// Load generator CPU per operation, microseconds.
    pub loadgen_us_per_op: f64,
    /// Bytes the registry had written to storage per operation (`write_bytes` of
    /// `/proc/<pid>/io`; data still in the page cache is counted when it is flushed).
    pub registry_disk_bytes_per_op: f64,
}

/// Measures [`PhaseCpu`] from `/proc/<pid>/stat` (utime + stime).
pub struct CpuMeter {
    pid: Option<u32>,
    registry: Option<u64>,
    loadgen: Option<u64>,
    disk: Option<u64>,
    start: Instant,
}

fn disk_bytes(pid: Option<u32>) -> Option<u64> {
    let io = std::fs::read_to_string(format!("/proc/{}/io", pid?)).ok()?;
    io.lines()
        .find(|l| l.starts_with("write_bytes:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// CPU clock ticks (1/100 s) a process has used: `pid` is a number or `self`.
pub(crate) fn ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the parenthesised command name, utime and stime are the 12th and 13th fields.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

impl CpuMeter {
    /// Starts measuring the registry `pid` and this process.
    pub fn start(pid: Option<u32>) -> CpuMeter {
        CpuMeter {
            pid,
            registry: pid.and_then(|p| ticks(&p.to_string())),
            loadgen: ticks("self"),
            disk: disk_bytes(pid),
            start: Instant::now(),
        }
    }

    /// The phase's CPU, for `ops` operations.
    pub fn stop(&self, ops: usize) -> PhaseCpu {
        // Linux reports CPU time in clock ticks of 1/100 s.
        let ms = |a: Option<u64>, b: Option<u64>| match (a, b) {
            (Some(a), Some(b)) => b.saturating_sub(a) as f64 * 10.0,
            _ => f64::NAN,
        };
        let registry_cpu_ms = ms(self.registry, self.pid.and_then(|p| ticks(&p.to_string())));
        let loadgen_cpu_ms = ms(self.loadgen, ticks("self"));
        let per = |v: f64| v * 1000.0 / ops.max(1) as f64;
        let disk = match (self.disk, disk_bytes(self.pid)) {
            (Some(a), Some(b)) => b.saturating_sub(a) as f64 / ops.max(1) as f64,
            _ => f64::NAN,
        };
        PhaseCpu {
            ops,
            wall_ms: self.start.elapsed().as_secs_f64() * 1000.0,
            registry_cpu_ms,
            loadgen_cpu_ms,
            registry_us_per_op: per(registry_cpu_ms),
            loadgen_us_per_op: per(loadgen_cpu_ms),
            registry_disk_bytes_per_op: disk,
        }
    }
}

impl PhaseCpu {
    /// The same phase with the load generator's CPU measured elsewhere (another process: wrk).
    pub fn with_loadgen(mut self, cpu_ms: f64) -> PhaseCpu {
        self.loadgen_cpu_ms = cpu_ms;
        self.loadgen_us_per_op = cpu_ms * 1000.0 / self.ops.max(1) as f64;
        self
    }
}

/// At most about `points` of the sorted `us`, evenly strided, first and last kept.
fn thin(us: &[f64], points: usize) -> Vec<f64> {
    let step = us.len().div_ceil(points.max(1)).max(1);
    let mut kept: Vec<f64> = us.iter().step_by(step).copied().collect();
    if let (Some(last), Some(k)) = (us.last(), kept.last()) {
        if last != k {
            kept.push(*last);
        }
    }
    kept
}

/// The mean of several rounds' figures: every number is averaged over the rounds; the sorted
/// latency samples of the rounds are merged (and thinned again) for the plot.
pub fn mean_of<T: Serialize + serde::de::DeserializeOwned>(
    rounds: &[T],
) -> Result<T, serde_json::Error> {
    let values = rounds
        .iter()
        .map(serde_json::to_value)
        .collect::<Result<Vec<_>, _>>()?;
    serde_json::from_value(mean_value(&values))
}

fn mean_value(values: &[serde_json::Value]) -> serde_json::Value {
    use serde_json::Value;
    let Some(first) = values.first() else {
        return Value::Null;
    };
    match first {
        Value::Number(n) if n.is_u64() && values.iter().all(Value::is_u64) => {
            let sum: u64 = values.iter().filter_map(Value::as_u64).sum();
            Value::from(sum / values.len() as u64)
        }
        Value::Number(_) => {
            let nums: Vec<f64> = values.iter().filter_map(Value::as_f64).collect();
            Value::from(nums.iter().sum::<f64>() / nums.len().max(1) as f64)
        }
        Value::Object(map) => Value::Object(
            map.keys()
                .map(|k| {
                    let col: Vec<Value> = values.iter().filter_map(|v| v.get(k).cloned()).collect();
                    (k.clone(), mean_value(&col))
                })
                .collect(),
        ),
        Value::Array(_) => {
            // Sorted samples: merge, sort, thin.
            let mut all: Vec<f64> = values
                .iter()
                .filter_map(Value::as_array)
                .flatten()
                .filter_map(Value::as_f64)
                .collect();
            all.sort_by(f64::total_cmp);
            Value::from(thin(&all, 2_000))
        }
        other => other.clone(),
    }
}
