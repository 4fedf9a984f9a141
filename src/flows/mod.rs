//! Customer flows as logic without I/O: they take what happened (a choice,
//! a number from the store, a printer's answer, the time) and say what to
//! do and what to tell the customer. The daemon does the I/O around them.
//!
//! * [`queue`]: the queue ticket (rules Q1–Q4), and rule I7 as a queue
//!   machine applies it to a swiped card.
//! * [`id_update`]: the ID validity update at a smart teller (rules I1–I9,
//!   C1, C3), a state machine in rumqttc's `state.rs` style: inputs in,
//!   effects out; also the pieces both customer flows share
//!   ([`id_update::FlowSettings`], [`id_update::Outcome`], ...).
//! * [`phone`]: the mobile number change (rules P1–P7, C3), the same way.
//! * [`messages`]: every refusal's stable code and its Chinese and English
//!   text.

pub mod id_update;
pub mod messages;
pub mod phone;
pub mod queue;
