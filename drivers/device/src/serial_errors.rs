//! What a serial port's errors mean, for every driver on a serial line
//! (the SAM, the printer): one reading of the OS's answers, so both
//! drivers call an unplugged USB-serial adapter the same thing.

use std::io::ErrorKind;

/// After an I/O error on an open port: is the device gone? serialport
/// maps EIO/ENXIO/ENODEV to `Other` and a hang-up to `BrokenPipe`;
/// `NotFound` is ENOENT; on a serial line all of them mean the adapter
/// was pulled.
pub fn is_gone(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::Other
            | ErrorKind::BrokenPipe
            | ErrorKind::NotFound
            | ErrorKind::UnexpectedEof
            | ErrorKind::ConnectionReset
            | ErrorKind::PermissionDenied
    )
}

/// An error that only means "nothing yet": try again.
pub fn is_transient(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::TimedOut | ErrorKind::Interrupted | ErrorKind::WouldBlock
    )
}

/// A port that cannot be opened because the device is not there (or not
/// ours yet: udev has not set its group), as opposed to a bad setting.
pub fn open_means_unplugged(kind: serialport::ErrorKind) -> bool {
    matches!(
        kind,
        serialport::ErrorKind::NoDevice
            | serialport::ErrorKind::Io(ErrorKind::NotFound)
            | serialport::ErrorKind::Io(ErrorKind::PermissionDenied)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unplugged_adapter_reads_as_gone_and_a_timeout_as_transient() {
        for kind in [ErrorKind::Other, ErrorKind::BrokenPipe, ErrorKind::NotFound] {
            assert!(is_gone(kind), "{kind:?}");
        }
        assert!(!is_gone(ErrorKind::TimedOut));
        assert!(is_transient(&std::io::Error::from(ErrorKind::TimedOut)));
        assert!(!is_transient(&std::io::Error::from(ErrorKind::BrokenPipe)));
        assert!(open_means_unplugged(serialport::ErrorKind::NoDevice));
        assert!(!open_means_unplugged(serialport::ErrorKind::InvalidInput));
    }
}
