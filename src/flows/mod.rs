//! Customer flows as logic without I/O: they take what happened (a choice,
//! a number from the store, a printer's answer, the time) and say what to
//! do and what to tell the customer. The daemon does the I/O around them.
//!
//! * [`queue`]: the queue ticket (rules Q1–Q4), and rule I7 as a queue
//!   machine applies it to a swiped card.

pub mod queue;
