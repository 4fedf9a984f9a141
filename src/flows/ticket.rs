//! The life of a queue ticket at the counters (rules Q5, Q7, Q8):
//! decisions only, no I/O, no clock (the business day is passed in).
//!
//! ```text
//!            call next                 serve
//! waiting ─────────────► called ──────────────► served
//!    ▲                   │  ▲ │
//!    │     transfer      │  └─┘ recall (announced again)
//!    ├───────────────────┤
//!    │                   │ skip (过号)
//!    │    reactivate     ▼
//!    └──────────────── skipped   (same business day only)
//! ```
//!
//! * **Call next** ([`pick_next`]) takes the oldest waiting ticket (by
//!   issue time, then issue order) of the first service in the counter's
//!   service order that has one: a counter serving `["vip", "personal"]`
//!   calls every waiting VIP ticket before any personal one.
//! * A counter has at most one **current** ticket (called by it and not
//!   yet served, skipped or transferred); recall, skip, transfer and serve
//!   act on it, and "call next" is refused while it has one, so no ticket
//!   is left called and forgotten.
//! * **Transfer** puts the current ticket back to waiting in another
//!   service: it keeps its number (`A023` stays `A023`) and its issue time,
//!   so it waits in its new queue as long as it has already waited.
//! * **Reactivate** puts a skipped ticket back to waiting on the business
//!   day it was issued, and only then; it keeps its issue time too, so the
//!   customer who stepped out is called again soon.
//! * Numbers are never reused (rule Q2 holds in the store): no transition
//!   changes a ticket's number, and a served or skipped ticket keeps it.
//!
//! The store applies a [`Transition`] in one transaction with its event
//! and its audit record (rule Q8) before anyone is told.

use chrono::NaiveDate;

// The vocabulary is the store's (it applies transitions in its
// transactions and imports nothing above it); the rules are here.
pub use crate::store::{
    Candidate, CounterAction, EventKind, LifecycleError, LifecycleRules, TicketFacts, TicketState,
    Transition,
};

/// The rules the store applies inside its transactions.
pub const RULES: LifecycleRules = LifecycleRules {
    pick_next,
    may_call_next,
    transition,
};

/// Rule Q5: which waiting ticket "call next" at a counter serving
/// `services` (in its order) takes: the index in `waiting` of the oldest
/// ticket of the first service that has one.
pub fn pick_next(services: &[String], waiting: &[Candidate]) -> Option<usize> {
    services.iter().find_map(|service| {
        waiting
            .iter()
            .enumerate()
            .filter(|(_, c)| &c.service_id == service)
            .min_by_key(|(_, c)| (c.issued_at_ms, c.seq))
            .map(|(i, _)| i)
    })
}

/// Rule Q5: a counter may call the next ticket only without a current one.
pub fn may_call_next(counter: &str, current_number: Option<&str>) -> Result<(), LifecycleError> {
    match current_number {
        Some(number) => Err(LifecycleError::StillServing {
            counter: counter.to_string(),
            number: number.to_string(),
        }),
        None => Ok(()),
    }
}

/// Rule Q5: the transition `action` by `counter` makes on `ticket`
/// (the counter's current ticket, the one picked by [`pick_next`], or for
/// a reactivation the skipped ticket named). `today` is the queue's
/// business day; `known_service` says whether a service id is configured.
pub fn transition(
    ticket: &TicketFacts,
    number: &str,
    action: &CounterAction,
    counter: &str,
    today: NaiveDate,
    known_service: &dyn Fn(&str) -> bool,
) -> Result<Transition, LifecycleError> {
    let own_current =
        ticket.state == TicketState::Called && ticket.counter.as_deref() == Some(counter);
    let keep = |kind, state, counter: Option<String>| Transition {
        kind,
        state,
        service_id: ticket.service_id.clone(),
        counter,
        first_call: false,
    };
    let no_current = || LifecycleError::NoCurrentTicket {
        counter: counter.to_string(),
    };
    match action {
        CounterAction::CallNext => {
            if ticket.state != TicketState::Waiting {
                return Err(LifecycleError::NobodyWaiting {
                    counter: counter.to_string(),
                });
            }
            Ok(Transition {
                first_call: ticket.counter.is_none(),
                ..keep(
                    EventKind::Called,
                    TicketState::Called,
                    Some(counter.to_string()),
                )
            })
        }
        CounterAction::Recall if own_current => Ok(keep(
            EventKind::Recalled,
            TicketState::Called,
            Some(counter.to_string()),
        )),
        CounterAction::Skip if own_current => Ok(keep(
            EventKind::Skipped,
            TicketState::Skipped,
            Some(counter.to_string()),
        )),
        CounterAction::Serve if own_current => Ok(keep(
            EventKind::Served,
            TicketState::Served,
            Some(counter.to_string()),
        )),
        CounterAction::Transfer { to_service } if own_current => {
            if !known_service(to_service) {
                return Err(LifecycleError::UnknownService {
                    service: to_service.clone(),
                });
            }
            if *to_service == ticket.service_id {
                return Err(LifecycleError::SameService {
                    number: number.to_string(),
                    service: to_service.clone(),
                });
            }
            Ok(Transition {
                kind: EventKind::Transferred,
                state: TicketState::Waiting,
                service_id: to_service.clone(),
                counter: None,
                first_call: false,
            })
        }
        CounterAction::Recall
        | CounterAction::Skip
        | CounterAction::Serve
        | CounterAction::Transfer { .. } => Err(no_current()),
        CounterAction::Reactivate => {
            if ticket.state != TicketState::Skipped {
                return Err(LifecycleError::NotSkipped {
                    number: number.to_string(),
                    state: ticket.state.as_str(),
                });
            }
            if ticket.business_day != today {
                return Err(LifecycleError::OtherDay {
                    number: number.to_string(),
                });
            }
            Ok(keep(EventKind::Reactivated, TicketState::Waiting, None))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 12, d).expect("date")
    }

    fn facts(state: TicketState, counter: Option<&str>) -> TicketFacts {
        TicketFacts {
            state,
            service_id: "personal".into(),
            business_day: day(5),
            counter: counter.map(str::to_string),
        }
    }

    fn known(s: &str) -> bool {
        ["personal", "corporate", "vip"].contains(&s)
    }

    fn apply(
        t: &TicketFacts,
        action: CounterAction,
        counter: &str,
    ) -> Result<Transition, LifecycleError> {
        transition(t, "A001", &action, counter, day(5), &known)
    }

    fn cand(service: &str, at: i64, seq: i64) -> Candidate {
        Candidate {
            service_id: service.into(),
            issued_at_ms: at,
            seq,
        }
    }

    #[test]
    fn rule_q5_call_next_takes_the_oldest_ticket_in_the_counters_service_order() {
        let waiting = [
            cand("personal", 100, 1),
            cand("vip", 300, 3),
            cand("vip", 200, 2),
            cand("corporate", 50, 4),
        ];
        let vip_first = ["vip".to_string(), "personal".to_string()];
        assert_eq!(pick_next(&vip_first, &waiting), Some(2), "the older VIP");
        let personal_only = ["personal".to_string()];
        assert_eq!(pick_next(&personal_only, &waiting), Some(0));
        // Ties on the same millisecond go by issue order.
        let tie = [cand("personal", 100, 9), cand("personal", 100, 7)];
        assert_eq!(pick_next(&personal_only, &tie), Some(1));
        assert_eq!(pick_next(&["none".to_string()], &waiting), None);
        assert_eq!(pick_next(&vip_first, &[]), None);
    }

    #[test]
    fn rule_q5_a_counter_calls_the_next_only_without_a_current_ticket() {
        assert!(may_call_next("3", None).is_ok());
        let e = may_call_next("3", Some("A001")).expect_err("refused");
        assert_eq!(e.code(), "still_serving");
        assert!(e.to_string().contains("A001"));
    }

    #[test]
    fn rule_q5_waiting_called_recalled_served() {
        let waiting = facts(TicketState::Waiting, None);
        let called = apply(&waiting, CounterAction::CallNext, "3").expect("call");
        assert_eq!(
            (
                called.kind,
                called.state,
                called.counter.as_deref(),
                called.first_call
            ),
            (EventKind::Called, TicketState::Called, Some("3"), true)
        );
        let current = facts(TicketState::Called, Some("3"));
        let recalled = apply(&current, CounterAction::Recall, "3").expect("recall");
        assert_eq!(
            (recalled.kind, recalled.state),
            (EventKind::Recalled, TicketState::Called)
        );
        assert!(recalled.kind.is_call() && called.kind.is_call());
        let served = apply(&current, CounterAction::Serve, "3").expect("serve");
        assert_eq!(
            (served.kind, served.state),
            (EventKind::Served, TicketState::Served)
        );
        // Served is the end: nothing more for it.
        let done = facts(TicketState::Served, Some("3"));
        for action in [
            CounterAction::Recall,
            CounterAction::Skip,
            CounterAction::Serve,
        ] {
            assert_eq!(
                apply(&done, action, "3").expect_err("done").code(),
                "no_current_ticket"
            );
        }
        assert_eq!(
            apply(&done, CounterAction::CallNext, "3")
                .expect_err("not waiting")
                .code(),
            "nobody_waiting"
        );
    }

    #[test]
    fn rule_q5_skipped_tickets_are_reactivated_the_same_business_day_only() {
        let current = facts(TicketState::Called, Some("3"));
        let skipped = apply(&current, CounterAction::Skip, "3").expect("skip");
        assert_eq!(
            (skipped.kind, skipped.state),
            (EventKind::Skipped, TicketState::Skipped)
        );
        let t = facts(TicketState::Skipped, Some("3"));
        // Any counter may reactivate it (the customer comes back to any).
        let again = apply(&t, CounterAction::Reactivate, "5").expect("reactivate");
        assert_eq!(
            (again.kind, again.state, again.counter),
            (EventKind::Reactivated, TicketState::Waiting, None)
        );
        // A reactivated ticket is called again, but it is not its first call.
        let waiting_again = TicketFacts {
            counter: Some("3".into()),
            ..facts(TicketState::Waiting, None)
        };
        assert!(
            !apply(&waiting_again, CounterAction::CallNext, "5")
                .expect("call")
                .first_call
        );
        let yesterday = TicketFacts {
            business_day: day(4),
            ..t.clone()
        };
        assert_eq!(
            apply(&yesterday, CounterAction::Reactivate, "3")
                .expect_err("other day")
                .code(),
            "other_day"
        );
        let w = facts(TicketState::Waiting, None);
        assert_eq!(
            apply(&w, CounterAction::Reactivate, "3")
                .expect_err("not skipped")
                .code(),
            "not_skipped"
        );
    }

    #[test]
    fn rule_q5_a_transfer_keeps_number_and_issue_time_and_waits_in_the_new_service() {
        let current = facts(TicketState::Called, Some("3"));
        let moved = apply(
            &current,
            CounterAction::Transfer {
                to_service: "corporate".into(),
            },
            "3",
        )
        .expect("transfer");
        assert_eq!(
            (
                moved.kind,
                moved.state,
                moved.service_id.as_str(),
                moved.counter
            ),
            (
                EventKind::Transferred,
                TicketState::Waiting,
                "corporate",
                None
            )
        );
        let to = |s: &str| CounterAction::Transfer {
            to_service: s.into(),
        };
        assert_eq!(
            apply(&current, to("nope"), "3")
                .expect_err("unknown")
                .code(),
            "unknown_service"
        );
        assert_eq!(
            apply(&current, to("personal"), "3")
                .expect_err("same")
                .code(),
            "same_service"
        );
        // The transferred ticket keeps its issue time: among the new
        // service's waiting tickets it comes before younger ones.
        let waiting = [cand("corporate", 500, 8), cand("corporate", 100, 1)];
        assert_eq!(pick_next(&["corporate".to_string()], &waiting), Some(1));
    }

    #[test]
    fn rule_q8_a_counter_acts_only_on_its_own_current_ticket() {
        let others = facts(TicketState::Called, Some("3"));
        for action in [
            CounterAction::Recall,
            CounterAction::Skip,
            CounterAction::Serve,
            CounterAction::Transfer {
                to_service: "vip".into(),
            },
        ] {
            let e = apply(&others, action.clone(), "4").expect_err("not its ticket");
            assert_eq!(e.code(), "no_current_ticket", "{}", action.as_str());
        }
    }

    #[test]
    fn states_and_event_kinds_round_trip() {
        for s in [
            TicketState::Waiting,
            TicketState::Called,
            TicketState::Served,
            TicketState::Skipped,
        ] {
            assert_eq!(TicketState::parse(s.as_str()), Some(s));
        }
        for k in EventKind::ALL {
            assert_eq!(EventKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(TicketState::parse("gone"), None);
    }
}
