//! Customer flows as logic without I/O: they take what happened (a choice,
//! a number from the store, a printer's answer, the time) and say what to
//! do and what to tell the customer. The daemon does the I/O around them.
//!
//! * [`id_rules`]: the ID card rules (I1–I7, I9, the bank's
//!   `self_service.id_update`), in one place for every flow.
//! * [`queue`]: the queue ticket (rules Q1–Q4), and what a queue machine
//!   does with a swiped card (rule Q3, with [`id_rules`]).
//! * [`ticket`]: a ticket's life at the counters (rules Q5, Q8): call,
//!   recall, skip, reactivate, transfer, serve.
//! * [`queue_report`]: the daily queue statistics (rule Q9).
//! * [`flow`]: what both customer flows share: one [`flow::Input`], one
//!   [`flow::Effect`], the [`flow::Flow`] trait the session drives, the
//!   settings, the outcome, the slip, the idle clock.
//! * [`id_update`]: the ID validity update at a smart teller (rules I1–I9,
//!   C1, C3), a state machine in rumqttc's `state.rs` style: inputs in,
//!   effects out.
//! * [`phone`]: the mobile number change (rules P1–P7, C3), the same way.
//! * [`messages`]: every refusal's stable code and its Chinese and English
//!   text.

pub mod flow;
pub mod id_rules;
pub mod id_update;
pub mod messages;
pub mod phone;
pub mod queue;
pub mod queue_report;
pub mod ticket;
