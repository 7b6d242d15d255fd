//! Liveness from the other side's frames: when a peer counts as gone, on either end of a
//! session or a replication link.

use std::time::Duration;

use tokio::time::{Instant, Interval, MissedTickBehavior};

/// Tracks when a peer was last heard from and judges, at periodic checks, whether it has been
/// silent for too long; so that this process's own pause is not taken for the peer's silence.
///
/// A process can stop running without its peers stopping: stolen time on a VM, a loaded
/// machine, swapping, a laptop's sleep, a debugger. Meanwhile the peer's frames wait in the
/// kernel, and when the process runs again its overdue checks and those frames are ready at
/// once. A check that comes late by more than half a period is therefore passed over, once:
/// the next one, a period later, judges with whatever has been read by then. (Judging at once
/// closed dozens of live sessions after a pause shorter than their timeout.)
#[derive(Debug)]
pub struct Liveness {
    limit: Duration,
    period: Duration,
    last_seen: Instant,
    passed_over: bool,
}

impl Liveness {
    /// A peer heard from now, gone once silent for more than `limit`, checked every `period`.
    pub fn new(limit: Duration, period: Duration) -> Liveness {
        Liveness {
            limit,
            period,
            last_seen: Instant::now(),
            passed_over: false,
        }
    }

    /// The ticks to check at: now, then every `period`, a late one followed by the next a
    /// whole period later (not by a burst of the missed ones, which would judge before the
    /// frames are read).
    pub fn checks(&self) -> Interval {
        let mut every = tokio::time::interval(self.period);
        every.set_missed_tick_behavior(MissedTickBehavior::Delay);
        every
    }

    /// A frame arrived.
    pub fn heard(&mut self) {
        self.last_seen = Instant::now();
    }

    /// At the check that was due at `due` (the instant its tick gives): whether the peer has
    /// been silent past the limit.
    pub fn is_gone(&mut self, due: Instant) -> bool {
        if due.elapsed() > self.period / 2 && !self.passed_over {
            self.passed_over = true;
            return false;
        }
        self.passed_over = false;
        self.last_seen.elapsed() > self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_peer_silent_past_the_limit_is_gone_at_the_next_punctual_check() {
        let mut l = Liveness::new(Duration::from_millis(1500), Duration::from_millis(500));
        let mut checks = l.checks();
        let mut gone_at = None;
        for _ in 0..10 {
            let due = checks.tick().await;
            if l.is_gone(due) {
                gone_at = Some(due);
                break;
            }
        }
        // Checks at 0, 0.5, 1.0, 1.5, 2.0 s: the first past 1.5 s of silence is at 2.0 s.
        assert_eq!(
            gone_at.map(|d| d.elapsed()),
            Some(Duration::ZERO),
            "judged on time"
        );
        assert!(l.last_seen.elapsed() >= Duration::from_millis(2000));
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_heard_from_is_not_gone() {
        let mut l = Liveness::new(Duration::from_millis(1500), Duration::from_millis(500));
        let mut checks = l.checks();
        for _ in 0..20 {
            let due = checks.tick().await;
            l.heard();
            assert!(!l.is_gone(due));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_check_late_because_this_process_was_paused_is_passed_over_once() {
        let mut l = Liveness::new(Duration::from_millis(1500), Duration::from_millis(500));
        let mut checks = l.checks();
        let due = checks.tick().await;
        assert!(!l.is_gone(due));
        // Paused for 1.8 s: nothing ran, so the next check comes late, past the limit.
        tokio::time::advance(Duration::from_millis(1800)).await;
        let late = checks.tick().await;
        assert!(late.elapsed() > Duration::from_millis(250));
        assert!(!l.is_gone(late), "a late check is passed over");
        // What the peer sent meanwhile is read before the next check, a period later.
        l.heard();
        let next = checks.tick().await;
        assert_eq!(next.elapsed(), Duration::ZERO);
        assert!(!l.is_gone(next));
    }

    #[tokio::test(start_paused = true)]
    async fn late_checks_one_after_another_still_judge_every_other_time() {
        let mut l = Liveness::new(Duration::from_millis(1500), Duration::from_millis(500));
        let mut checks = l.checks();
        let mut judged = 0;
        for _ in 0..6 {
            tokio::time::advance(Duration::from_millis(900)).await;
            let due = checks.tick().await;
            if l.is_gone(due) {
                judged += 1;
                break;
            }
        }
        assert_eq!(
            judged, 1,
            "a starved process still gives up on a silent peer"
        );
    }
}
