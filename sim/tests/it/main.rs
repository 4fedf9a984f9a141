//! Integration tests of the simulators through their real interfaces:
//! a pty opened as a serial port, TCP as vpcd speaks it, and pcscd.

mod control;
mod pcscd;
mod sam;
mod support;
mod vicc;
