//! The time a comparison may take. Past it, the side in progress stops before its next phase
//! (a phase under way is never cut short) and the table shows the rounds completed, marked as
//! partial: a slow machine costs the rounds it could not finish, never the ones it did.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::Opts;

static DEADLINE: OnceLock<Instant> = OnceLock::new();

/// The budget ran out before a phase could start: the round it belongs to is incomplete.
#[derive(Debug)]
pub struct Spent {
    /// The phase that was not started.
    pub phase: String,
}

impl std::fmt::Display for Spent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the time budget ran out before {}", self.phase)
    }
}

impl std::error::Error for Spent {}

/// Starts the clock: phases begun later than `budget` from now are refused with [`Spent`].
pub fn start(budget: Duration) {
    let _ = DEADLINE.set(Instant::now() + budget);
}

/// `Err(Spent)` once the budget is spent (never, if no budget was started).
pub fn check(phase: &str) -> crate::Res<()> {
    match DEADLINE.get() {
        Some(d) if Instant::now() >= *d => Err(Box::new(Spent {
            phase: phase.to_string(),
        })),
        _ => Ok(()),
    }
}

/// Whether an error of a round is the budget running out (the rounds before it stand).
pub fn is_spent(e: &(dyn std::error::Error + Send + Sync + 'static)) -> bool {
    e.is::<Spent>()
}

/// The default budget: the work the options ask for, at the rates of a slow machine of this
/// kind (about half of those measured on the machine of BENCHMARKS.md), plus half again. It grows
/// with every count and every round, where a fixed limit abandoned runs that were merely slow.
pub fn default_for(o: &Opts) -> Duration {
    let n = |v: usize| v as f64;
    // etcd's phases, the slow side: lease + put registrations, durable registrations and bare
    // puts, linearizable and serializable discovery, the 10k leases opened, expired and revoked.
    let etcd_work = n(o.large) / 2_500.0
        + 2.0 * n(o.durable) / 2_500.0
        + 2.0 * n(o.queries) / 4_000.0
        + n(o.killed) / 2_000.0
        + o.etcd_ttl as f64
        + n(o.killed) / 500.0;
    // What both sides spend alike: paced watch writes, the fixed-length wrk phases, start-up.
    let paced = (o.events_one as f64 * o.pace_ms as f64
        + o.events_many as f64 * o.pace_many_ms as f64)
        / 1000.0
        + 2.0 * (o.wrk_secs as f64 + 1.0)
        + 5.0;
    // netget does the same work in well under a fifth of etcd's time.
    let round = etcd_work * 1.2 + 2.0 * paced;
    Duration::from_secs_f64(round * o.rounds.max(1) as f64 * 1.5)
}
