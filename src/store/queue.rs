//! Queue ticket counters (rule Q2): numbers restart every business day per
//! service and are never issued twice, even across a crash or power loss.

use chrono::NaiveDate;

use super::{Result, Store};
use crate::Error;

impl Store {
    /// Take the next ticket number of `service` (its letter, e.g. `A`) on
    /// `business_day`: 1 for the day's first ticket. Durable when it
    /// returns, so a number handed out is never handed out again.
    pub fn next_ticket_number(&self, service: &str, business_day: NaiveDate) -> Result<u32> {
        if service.trim().is_empty() {
            return Err(Error::InvalidChange("queue service is empty".into()));
        }
        let day = business_day.format("%Y-%m-%d").to_string();
        self.write(|tx| {
            let n: i64 = tx.query_row(
                "INSERT INTO queue_counter (service, business_day, last_number)
                 VALUES (?1, ?2, 1)
                 ON CONFLICT (service, business_day)
                 DO UPDATE SET last_number = last_number + 1
                 RETURNING last_number",
                [service, day.as_str()],
                |r| r.get(0),
            )?;
            Ok(u32::try_from(n).unwrap_or(u32::MAX))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    #[test]
    fn numbers_count_per_service_and_day_and_survive_a_restart() {
        let t = TestDir::new();
        let day1 = NaiveDate::from_ymd_opt(2026, 11, 23).expect("date");
        let day2 = day1.succ_opt().expect("date");
        let store = t.open();
        assert_eq!(store.next_ticket_number("A", day1).expect("n"), 1);
        assert_eq!(store.next_ticket_number("A", day1).expect("n"), 2);
        assert_eq!(store.next_ticket_number("B", day1).expect("n"), 1);
        assert_eq!(store.next_ticket_number("A", day2).expect("n"), 1);
        drop(store);
        let store = t.open();
        assert_eq!(store.next_ticket_number("A", day1).expect("n"), 3);
        assert!(store.next_ticket_number(" ", day1).is_err());
    }

    #[test]
    fn concurrent_takers_never_get_the_same_number() {
        let t = TestDir::new();
        let day = NaiveDate::from_ymd_opt(2026, 11, 23).expect("date");
        let store = std::sync::Arc::new(t.open());
        // Two stores on one file (two connections) and threads on each.
        let other = std::sync::Arc::new(t.open());
        let threads: Vec<_> = (0..4)
            .map(|i| {
                let s = if i % 2 == 0 {
                    store.clone()
                } else {
                    other.clone()
                };
                std::thread::spawn(move || {
                    (0..25)
                        .map(|_| s.next_ticket_number("A", day).expect("n"))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all: Vec<u32> = threads
            .into_iter()
            .flat_map(|h| h.join().expect("thread"))
            .collect();
        all.sort_unstable();
        assert_eq!(all, (1..=100).collect::<Vec<_>>());
    }
}
