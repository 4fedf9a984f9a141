//! The daemon's clock for timers: the wall clock read once, when the
//! clock is started, then moved on by the monotonic clock. A session's
//! idle timeout and OTP timers and the sync worker's back-off count real
//! seconds even when the wall clock is stepped meanwhile (NTP, a
//! technician): a step forward does not end a customer's session or
//! every back-off at once, a step back does not hold them for hours
//! (issue "hardening, second round", item 4). Wall times it hands out are
//! still wall times (stored, shown, sent to the bank); a restart reads the
//! wall clock again.

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use crate::sync::Clock;

/// Wall time at the start plus monotonic time since (module docs).
#[derive(Debug, Clone, Copy)]
pub struct SteadyClock {
    wall_at_start: DateTime<Utc>,
    mono_at_start: tokio::time::Instant,
}

impl SteadyClock {
    /// A clock that starts at the wall clock's now.
    pub fn start() -> SteadyClock {
        SteadyClock::starting_at(Utc::now())
    }

    /// A clock that starts at `wall` (tests).
    pub fn starting_at(wall: DateTime<Utc>) -> SteadyClock {
        SteadyClock {
            wall_at_start: wall,
            mono_at_start: tokio::time::Instant::now(),
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        let gone = TimeDelta::from_std(self.mono_at_start.elapsed()).unwrap_or(TimeDelta::MAX);
        self.wall_at_start
            .checked_add_signed(gone)
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }
}

impl Clock for SteadyClock {
    fn now_ms(&self) -> i64 {
        self.now().timestamp_millis()
    }

    fn sleep_until(&self, at_ms: Option<i64>) -> impl Future<Output = ()> + Send {
        let wait = at_ms.map(|at| u64::try_from(at - self.now_ms()).unwrap_or(0));
        async move {
            match wait {
                Some(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
                None => std::future::pending().await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wall(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("time")
            .with_timezone(&Utc)
    }

    /// Clock steps (hardening, second round, item 4): the clock moves
    /// exactly as far as monotonic time, whatever the wall clock does
    /// meanwhile. Sessions time their idle and OTP timers with it.
    #[tokio::test(start_paused = true)]
    async fn clock_steps_leave_the_session_clock_on_monotonic_time() {
        let clock = SteadyClock::starting_at(wall("2025-03-14T02:00:00Z"));
        tokio::time::advance(Duration::from_secs(95)).await;
        assert_eq!(clock.now(), wall("2025-03-14T02:01:35Z"));
    }

    /// Hardening, second round, item 4: the sync worker's back-off is
    /// timed on the same clock: a retry due in 30 s comes after 30 s of
    /// monotonic time and not before, with the wall clock far from the
    /// clock's start (as after a step).
    #[tokio::test(start_paused = true)]
    async fn hardening_4_sync_back_off_follows_the_monotonic_clock() {
        let clock = SteadyClock::starting_at(wall("2020-01-01T00:00:00Z"));
        let due = clock.now_ms() + 30_000;
        let started = tokio::time::Instant::now();
        clock.sleep_until(Some(due)).await;
        assert_eq!(started.elapsed(), Duration::from_secs(30));
        assert!(clock.now_ms() >= due);
    }
}
