//! Integration tests of the simulators through their real interfaces:
//! a pty opened as a serial port, TCP as vpcd speaks it, pcscd, and HTTP
//! for the core-bank simulator.

mod control;
mod corebank;
mod pcscd;
mod sam;
mod support;
mod vicc;
