//! The daily queue statistics (rule Q9): per service and per counter,
//! tickets, served, skipped, waiting time (issued → first call) and service
//! time (the call that was served → served), each as median, p90 and
//! maximum. Pure: the store hands in one [`TicketTimes`] per ticket of the
//! day.
//!
//! * A ticket counts for the service it is in at the end (a transferred
//!   ticket counts for the service it was moved to) and for the counter
//!   that called it last.
//! * Percentiles are nearest-rank: the p-th percentile of `n` sorted
//!   values is the value at rank `ceil(p/100 · n)`; the median is p50, the
//!   lower middle value for an even `n`. No interpolation, so every figure
//!   is a time some customer actually had.
//! * Times are whole seconds, rounded to the nearest.
//!
//! Nothing personal goes in or out: service ids, counter ids, times.

use std::collections::BTreeMap;

use crate::store::TicketState;

pub use crate::store::TicketTimes;
pub use kiosk_proto::{QueueReportRow as ReportRow, Spread};

/// The nearest-rank `p`-th percentile of `sorted` (ascending), ms.
fn percentile(sorted: &[u64], p: u64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let n = sorted.len() as u64;
    let rank = (p * n).div_ceil(100).max(1);
    sorted.get(usize::try_from(rank - 1).ok()?).copied()
}

fn seconds(ms: u64) -> u64 {
    (ms + 500) / 1000
}

fn spread(mut ms: Vec<u64>) -> Spread {
    ms.sort_unstable();
    Spread {
        median_s: percentile(&ms, 50).map(seconds),
        p90_s: percentile(&ms, 90).map(seconds),
        max_s: ms.last().copied().map(seconds),
    }
}

fn between(from: i64, to: Option<i64>) -> Option<u64> {
    to.and_then(|to| u64::try_from(to - from).ok())
}

fn row(service: Option<String>, counter: Option<String>, tickets: &[&TicketTimes]) -> ReportRow {
    ReportRow {
        service,
        counter,
        tickets: u32::try_from(tickets.len()).unwrap_or(u32::MAX),
        served: count(tickets, TicketState::Served),
        skipped: count(tickets, TicketState::Skipped),
        waiting: spread(
            tickets
                .iter()
                .filter_map(|t| between(t.issued_at_ms, t.first_called_at_ms))
                .collect(),
        ),
        service_time: spread(
            tickets
                .iter()
                .filter(|t| t.state == TicketState::Served)
                .filter_map(|t| t.called_at_ms.and_then(|c| between(c, t.served_at_ms)))
                .collect(),
        ),
    }
}

fn count(tickets: &[&TicketTimes], state: TicketState) -> u32 {
    u32::try_from(tickets.iter().filter(|t| t.state == state).count()).unwrap_or(u32::MAX)
}

/// Rule Q9: one row per service (`services` in their configured order,
/// every one of them, also without tickets), then one per counter that
/// called any ticket (by id).
pub fn daily_report(services: &[String], tickets: &[TicketTimes]) -> Vec<ReportRow> {
    let mut rows: Vec<ReportRow> = services
        .iter()
        .map(|s| {
            let of: Vec<&TicketTimes> = tickets.iter().filter(|t| &t.service_id == s).collect();
            row(Some(s.clone()), None, &of)
        })
        .collect();
    let mut by_counter: BTreeMap<&str, Vec<&TicketTimes>> = BTreeMap::new();
    for t in tickets {
        if let Some(c) = &t.counter {
            by_counter.entry(c.as_str()).or_default().push(t);
        }
    }
    rows.extend(
        by_counter
            .into_iter()
            .map(|(c, of)| row(None, Some(c.to_string()), &of)),
    );
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(
        service: &str,
        counter: Option<&str>,
        state: TicketState,
        issued: i64,
        first: Option<i64>,
        called: Option<i64>,
        served: Option<i64>,
    ) -> TicketTimes {
        TicketTimes {
            service_id: service.into(),
            counter: counter.map(str::to_string),
            state,
            issued_at_ms: issued,
            first_called_at_ms: first,
            called_at_ms: called,
            served_at_ms: served,
        }
    }

    #[test]
    fn rule_q9_percentiles_are_nearest_rank() {
        let ms: Vec<u64> = (1..=10).map(|s| s * 1000).collect();
        let s = spread(ms);
        assert_eq!((s.median_s, s.p90_s, s.max_s), (Some(5), Some(9), Some(10)));
        let one = spread(vec![1_400]);
        assert_eq!(
            (one.median_s, one.p90_s, one.max_s),
            (Some(1), Some(1), Some(1))
        );
        assert_eq!(spread(Vec::new()), Spread::default());
        let two = spread(vec![2_000, 60_000]);
        assert_eq!((two.median_s, two.p90_s), (Some(2), Some(60)));
    }

    #[test]
    fn rule_q9_per_service_and_per_counter_tickets_served_skipped_and_times() {
        use TicketState::*;
        let tickets = [
            // Waited 60 s, served in 120 s at counter 1.
            t(
                "personal",
                Some("1"),
                Served,
                0,
                Some(60_000),
                Some(60_000),
                Some(180_000),
            ),
            // Waited 30 s, recalled at 90 s, served at 100 s (10 s service).
            t(
                "personal",
                Some("2"),
                Served,
                0,
                Some(30_000),
                Some(90_000),
                Some(100_000),
            ),
            // Skipped at counter 1 after waiting 10 s.
            t(
                "personal",
                Some("1"),
                Skipped,
                0,
                Some(10_000),
                Some(10_000),
                None,
            ),
            // Still waiting.
            t("personal", None, Waiting, 0, None, None, None),
            // Transferred to VIP after a call at counter 2: waits again.
            t(
                "vip",
                Some("2"),
                Waiting,
                0,
                Some(20_000),
                Some(20_000),
                None,
            ),
        ];
        let services = ["personal".to_string(), "corporate".into(), "vip".into()];
        let rows = daily_report(&services, &tickets);
        let keys: Vec<_> = rows
            .iter()
            .map(|r| (r.service.as_deref(), r.counter.as_deref()))
            .collect();
        assert_eq!(
            keys,
            [
                (Some("personal"), None),
                (Some("corporate"), None),
                (Some("vip"), None),
                (None, Some("1")),
                (None, Some("2")),
            ]
        );
        let personal = &rows[0];
        assert_eq!(
            (personal.tickets, personal.served, personal.skipped),
            (4, 2, 1)
        );
        assert_eq!(
            (
                personal.waiting.median_s,
                personal.waiting.p90_s,
                personal.waiting.max_s
            ),
            (Some(30), Some(60), Some(60))
        );
        assert_eq!(
            (personal.service_time.median_s, personal.service_time.max_s),
            (Some(10), Some(120))
        );
        assert_eq!((rows[1].tickets, rows[1].waiting.max_s), (0, None));
        let c1 = &rows[3];
        assert_eq!((c1.tickets, c1.served, c1.skipped), (2, 1, 1));
        assert_eq!(c1.service_time.max_s, Some(120));
        let c2 = &rows[4];
        assert_eq!((c2.tickets, c2.served, c2.waiting.max_s), (2, 1, Some(30)));
    }
}
