//! kiosk-escpos tests: exact command bytes, documents, encodings, status
//! vectors, property tests, and the device loop against the printer
//! simulator (`device`). The transport alone is tested against the
//! simulator in `kiosk-sim` (`sim/tests/printer.rs`); `transports` runs
//! the device loop over TCP and a USB printer-class stand-in.

mod asb;
mod commands;
mod config;
mod device;
mod document;
mod encoding;
mod props;
mod raster;
mod status;
mod transports;
