//! kiosk-escpos tests: exact command bytes, documents, encodings, status
//! vectors, property tests. The transport is tested against the printer
//! simulator in `kiosk-sim` (`sim/tests/printer.rs`).

mod commands;
mod config;
mod document;
mod encoding;
mod props;
mod status;
