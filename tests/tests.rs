//! End-to-end tests of the whole kiosk through its real interfaces:
//! kioskd as a process, its Unix socket, `kioskctl`, the SAM simulator on a
//! pseudo-terminal, and a real pcscd with the vpcd virtual reader.
//!
//! Tests that use pcscd take a machine-wide lock (pcscd's socket is
//! machine-wide), so they run one at a time even across test binaries.

mod e2e;
