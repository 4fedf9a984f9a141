//! Files that hold a secret: the core bank's HMAC key and the store's
//! payload key. One check for all of them, made on
//! the file as opened (not on its path, which could be swapped between a
//! check and the read): a regular file, owned by the user the daemon runs
//! as (or root), that neither its group nor others may read or write, and
//! of a sane size. The bytes come back in a buffer that is wiped on drop.

use std::fmt;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use zeroize::Zeroizing;

/// Why a secret file was refused. Never quotes the file's contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretFileProblem {
    /// It cannot be opened or read (the OS's reason).
    Unreadable(String),
    NotAFile,
    /// Its group or others may access it.
    OpenToOthers {
        mode: u32,
    },
    /// Another user owns it (and could change it).
    NotOwned {
        uid: u32,
    },
    /// Larger than the limit given.
    TooLarge {
        limit: u64,
    },
}

impl fmt::Display for SecretFileProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretFileProblem::Unreadable(e) => write!(f, "cannot be read: {e}"),
            SecretFileProblem::NotAFile => f.write_str("is not a regular file"),
            SecretFileProblem::OpenToOthers { mode } => write!(
                f,
                "is open to its group or others (mode {mode:o}): a key file must be mode 0600"
            ),
            SecretFileProblem::NotOwned { uid } => write!(
                f,
                "is owned by uid {uid}, not by the user kioskd runs as (uid {}) or root",
                nix::unistd::geteuid()
            ),
            SecretFileProblem::TooLarge { limit } => write!(f, "is larger than {limit} bytes"),
        }
    }
}

/// Read the secret file at `path`, at most `limit` bytes, after checking
/// the opened file (module docs).
pub fn read_secret_file(path: &Path, limit: u64) -> Result<Zeroizing<Vec<u8>>, SecretFileProblem> {
    let unreadable = |e: std::io::Error| SecretFileProblem::Unreadable(e.to_string());
    let file = std::fs::File::open(path).map_err(unreadable)?;
    let meta = file.metadata().map_err(unreadable)?;
    if !meta.is_file() {
        return Err(SecretFileProblem::NotAFile);
    }
    let owner = meta.uid();
    if owner != 0 && owner != nix::unistd::geteuid().as_raw() {
        return Err(SecretFileProblem::NotOwned { uid: owner });
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(SecretFileProblem::OpenToOthers { mode });
    }
    let mut bytes = Zeroizing::new(Vec::new());
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    if bytes.len() as u64 > limit {
        return Err(SecretFileProblem::TooLarge { limit });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn secret(dir: &Path, mode: u32) -> std::path::PathBuf {
        let path = dir.join("key");
        std::fs::write(&path, b"00112233").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        path
    }

    #[test]
    fn a_private_file_of_ours_is_read() {
        let dir = tempfile::tempdir().expect("dir");
        let path = secret(dir.path(), 0o600);
        assert_eq!(
            read_secret_file(&path, 64).expect("read").as_slice(),
            b"00112233"
        );
        assert_eq!(
            read_secret_file(&path, 4),
            Err(SecretFileProblem::TooLarge { limit: 4 })
        );
    }

    #[test]
    fn a_file_open_to_others_or_not_a_file_is_refused() {
        let dir = tempfile::tempdir().expect("dir");
        let path = secret(dir.path(), 0o640);
        assert_eq!(
            read_secret_file(&path, 64),
            Err(SecretFileProblem::OpenToOthers { mode: 0o640 })
        );
        assert_eq!(
            read_secret_file(dir.path(), 64),
            Err(SecretFileProblem::NotAFile)
        );
        assert!(matches!(
            read_secret_file(&dir.path().join("missing"), 64),
            Err(SecretFileProblem::Unreadable(_))
        ));
    }

    /// Hardening, second round, item 7: a key file another user owns is
    /// refused, whatever its mode (that user could swap the key). Needs
    /// root to give the file away; as another user it is refused already
    /// when the file is not ours, which this checks too.
    #[test]
    fn hardening_7_a_key_file_owned_by_another_user_is_refused() {
        let dir = tempfile::tempdir().expect("dir");
        let path = secret(dir.path(), 0o600);
        let euid = nix::unistd::geteuid().as_raw();
        if euid == 0 {
            std::os::unix::fs::chown(&path, Some(4242), None).expect("chown as root");
            assert_eq!(
                read_secret_file(&path, 64),
                Err(SecretFileProblem::NotOwned { uid: 4242 })
            );
            // Root's own files are fine.
            std::os::unix::fs::chown(&path, Some(0), None).expect("chown back");
            assert!(read_secret_file(&path, 64).is_ok());
        } else {
            // Not root: the file is ours; a root-owned file is accepted.
            assert!(read_secret_file(&path, 64).is_ok());
        }
    }
}
