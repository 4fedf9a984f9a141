pub mod api;
pub mod config_check;
pub mod flows;
pub mod harness;
pub mod pcsc;
pub mod queue;
pub mod sam_serial;
pub mod sync;
