//! Encryption at rest of the outbox's personal data.
//!
//! ChaCha20-Poly1305 with a 256-bit key read from a key file (64 hex digits,
//! mode 0600, never in the database), a fresh random 96-bit nonce per row,
//! and the change id as associated data: a payload copied onto another row
//! fails to open, as does any edited byte.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use kiosk_corebank::{ChangeKind, ChangeRequest, SecretFileProblem, read_secret_file};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

use crate::Error;

/// Bytes of a key.
const KEY_LEN: usize = 32;
/// Bytes of a nonce.
pub(super) const NONCE_LEN: usize = 12;

/// The payload key, ready to seal and open (zeroized on drop by the crate).
pub(super) struct PayloadCipher {
    aead: ChaCha20Poly1305,
    key_check: String,
}

impl PayloadCipher {
    /// Read the key file, refusing one that group or others can access.
    pub(super) fn load(path: &Path) -> Result<PayloadCipher, Error> {
        let key_err = |reason: String| Error::KeyFile {
            path: path.to_path_buf(),
            reason,
        };
        // Checked on the file opened, with its owner (kiosk_corebank's
        // one check for every key file).
        let text = read_secret_file(path, 4096).map_err(|problem| match problem {
            SecretFileProblem::OpenToOthers { mode } => Error::KeyFileMode {
                path: path.to_path_buf(),
                mode,
            },
            other => key_err(other.to_string()),
        })?;
        let hex_digits = text.trim_ascii();
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        if hex_digits.len() != 2 * KEY_LEN
            || hex::decode_to_slice(hex_digits, key.as_mut_slice()).is_err()
        {
            // Never quote the file: it is the key.
            return Err(key_err(format!(
                "must hold exactly {} hex digits (generate one with kioskctl or `openssl rand -hex 32`)",
                2 * KEY_LEN
            )));
        }
        Ok(PayloadCipher::from_key(&key))
    }

    fn from_key(key: &[u8; KEY_LEN]) -> PayloadCipher {
        let mut check = Sha256::new();
        check.update(b"kiosk store key check v1\0");
        check.update(key);
        let key_check = hex::encode(&check.finalize()[..16]);
        PayloadCipher {
            aead: ChaCha20Poly1305::new(Key::from_slice(key)),
            key_check,
        }
    }

    /// A fingerprint of the key (a hash: reveals nothing of it).
    pub(super) fn key_check(&self) -> &str {
        &self.key_check
    }

    /// Seal `plaintext` for the row of `change_id`: `(nonce, ciphertext)`.
    pub(super) fn seal(
        &self,
        change_id: &str,
        plaintext: &[u8],
    ) -> Result<([u8; NONCE_LEN], Vec<u8>), Error> {
        let nonce: [u8; NONCE_LEN] = rand::random();
        let sealed = self
            .aead
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: change_id.as_bytes(),
                },
            )
            .map_err(|_| Error::InvalidChange("payload too large to encrypt".into()))?;
        Ok((nonce, sealed))
    }

    /// Open a sealed payload of `change_id`'s row; `None` if it does not
    /// authenticate (edited, damaged, another row's, another key's).
    pub(super) fn open(
        &self,
        change_id: &str,
        nonce: &[u8],
        sealed: &[u8],
    ) -> Option<Zeroizing<Vec<u8>>> {
        if nonce.len() != NONCE_LEN {
            return None;
        }
        self.aead
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: change_id.as_bytes(),
                },
            )
            .ok()
            .map(Zeroizing::new)
    }

    /// Seal a whole change (its JSON, as the core bank will get it).
    pub(super) fn seal_change(
        &self,
        change: &ChangeRequest,
    ) -> Result<([u8; NONCE_LEN], Vec<u8>), Error> {
        let json = Zeroizing::new(
            serde_json::to_vec(change)
                .map_err(|_| Error::InvalidChange("cannot be serialised".into()))?,
        );
        self.seal(&change.change_id, &json)
    }

    /// Open a whole change; `None` if it does not authenticate or parse, or
    /// is not the change of that row.
    pub(super) fn open_change(
        &self,
        change_id: &str,
        nonce: &[u8],
        sealed: &[u8],
    ) -> Option<SecretChange> {
        let json = self.open(change_id, nonce, sealed)?;
        let change: ChangeRequest = serde_json::from_slice(&json).ok()?;
        let change = SecretChange(change);
        (change.change_id == change_id).then_some(change)
    }
}

/// Write a new random key file at `path` with mode 0600 (the demo, tests,
/// and `kioskctl` at installation). Refuses to overwrite an existing file:
/// losing the key loses every queued change.
pub fn generate_key_file(path: &Path) -> Result<(), Error> {
    let key_err = |e: std::io::Error| Error::KeyFile {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    rand::fill(key.as_mut_slice());
    let mut text = Zeroizing::new(hex::encode(key.as_slice()));
    text.push('\n');
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(key_err)?;
    // The umask can only take bits away; make sure of 0600 anyway.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(key_err)?;
    file.write_all(text.as_bytes()).map_err(key_err)?;
    file.sync_all().map_err(key_err)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(key_err)?;
    }
    Ok(())
}

/// A decrypted change from the outbox: the request the core bank will get.
///
/// Holds personal data, so: `Debug` shows only the change id, its kind and
/// the bank's customer id; dropping it overwrites every personal field; it
/// is not `Clone` (one copy, owned by whoever delivers it).
pub struct SecretChange(ChangeRequest);

impl SecretChange {
    /// Wrap a change (takes ownership: the fields are wiped on drop).
    pub fn new(change: ChangeRequest) -> SecretChange {
        SecretChange(change)
    }

    /// The request, to hand to the core-bank client.
    pub fn request(&self) -> &ChangeRequest {
        &self.0
    }

    /// `id_validity` or `mobile`.
    pub fn kind_name(&self) -> &'static str {
        kind_name(&self.0.kind)
    }
}

impl std::ops::Deref for SecretChange {
    type Target = ChangeRequest;

    fn deref(&self) -> &ChangeRequest {
        &self.0
    }
}

impl std::fmt::Debug for SecretChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretChange")
            .field("change_id", &self.0.change_id)
            .field("customer_id", &self.0.customer_id)
            .field("kind", &self.kind_name())
            .finish_non_exhaustive()
    }
}

impl Drop for SecretChange {
    fn drop(&mut self) {
        // A new kind of change fails to compile here until its fields are
        // listed: on purpose.
        match &mut self.0.kind {
            ChangeKind::IdValidity { id_validity: v } => {
                v.id_number.zeroize();
                v.valid_from.zeroize();
                v.valid_until.zeroize();
                v.issuer.zeroize();
                v.card_evidence.sam_id.zeroize();
                v.card_evidence.card_uid.zeroize();
            }
            ChangeKind::Mobile { mobile: m } => {
                m.new_mobile.zeroize();
                m.otp_proof.zeroize();
            }
        }
    }
}

/// The spec's name of a change's kind.
pub(crate) fn kind_name(kind: &ChangeKind) -> &'static str {
    match kind {
        ChangeKind::IdValidity { .. } => "id_validity",
        ChangeKind::Mobile { .. } => "mobile",
    }
}

#[cfg(test)]
mod tests {
    use super::super::Store;
    use super::super::testutil::*;
    use super::*;

    #[test]
    fn generated_key_files_are_private_and_load() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("k");
        generate_key_file(&path).expect("generate");
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        PayloadCipher::load(&path).expect("load");
        let e = generate_key_file(&path).expect_err("no overwrite");
        assert!(matches!(e, Error::KeyFile { .. }), "{e}");
    }

    #[test]
    fn a_key_file_readable_by_others_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("k");
        generate_key_file(&path).expect("generate");
        for mode in [0o644, 0o640, 0o604, 0o660, 0o601] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
            let e = PayloadCipher::load(&path).err().expect("refused");
            assert!(
                matches!(e, Error::KeyFileMode { mode: m, .. } if m == mode),
                "{mode:o}: {e}"
            );
            assert!(e.to_string().contains("chmod 600"), "{e}");
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).expect("chmod");
        PayloadCipher::load(&path).expect("0400 is fine");
        // And through Store::open.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let e = Store::open(&dir.path().join("db"), &path, &Default::default()).expect_err("mode");
        assert!(matches!(e, Error::KeyFileMode { .. }), "{e}");
    }

    /// Hardening, second round, item 7: the store key is checked like the
    /// core bank's, on the file opened and with its owner: a key another
    /// user owns (and could swap) is refused.
    #[test]
    fn hardening_7_a_store_key_owned_by_another_user_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("k");
        generate_key_file(&path).expect("generate");
        PayloadCipher::load(&path).expect("our own key");
        if nix::unistd::geteuid().is_root() {
            std::os::unix::fs::chown(&path, Some(4242), None).expect("chown as root");
            let e = PayloadCipher::load(&path).err().expect("refused");
            assert!(matches!(e, Error::KeyFile { .. }), "{e}");
            assert!(e.to_string().contains("uid 4242"), "{e}");
        }
    }

    #[test]
    fn malformed_or_missing_key_files_are_refused_without_quoting_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("k");
        let e = PayloadCipher::load(&path).err().expect("missing");
        assert!(matches!(e, Error::KeyFile { .. }), "{e}");
        for text in ["abcd", &"zz".repeat(32), &"ab".repeat(33)] {
            std::fs::write(&path, text).expect("write");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
            let e = PayloadCipher::load(&path).err().expect("malformed");
            assert!(matches!(e, Error::KeyFile { .. }), "{e}");
            assert!(!e.to_string().contains(text), "{e}");
        }
        // Surrounding whitespace is fine.
        std::fs::write(&path, format!("  {}\n\n", "0f".repeat(32))).expect("write");
        PayloadCipher::load(&path).expect("hex with whitespace");
    }

    #[test]
    fn sealed_changes_open_only_for_their_own_row() {
        let c = PayloadCipher::from_key(&[7; KEY_LEN]);
        let change = id_change("C1");
        let (nonce, sealed) = c.seal_change(&change).expect("seal");
        let back = c
            .open_change(&change.change_id, &nonce, &sealed)
            .expect("open");
        assert_eq!(*back, change);
        // Another row's id as associated data.
        assert!(c.open_change("someone-else", &nonce, &sealed).is_none());
        // Any flipped bit.
        for i in [0, sealed.len() / 2, sealed.len() - 1] {
            let mut bad = sealed.clone();
            bad[i] ^= 1;
            assert!(c.open_change(&change.change_id, &nonce, &bad).is_none());
        }
        let mut bad_nonce = nonce;
        bad_nonce[0] ^= 1;
        assert!(
            c.open_change(&change.change_id, &bad_nonce, &sealed)
                .is_none()
        );
        // Another key.
        let other = PayloadCipher::from_key(&[8; KEY_LEN]);
        assert!(
            other
                .open_change(&change.change_id, &nonce, &sealed)
                .is_none()
        );
        // Nonces are fresh per record.
        let (nonce2, sealed2) = c.seal_change(&change).expect("seal");
        assert_ne!(nonce, nonce2);
        assert_ne!(sealed, sealed2);
    }

    #[test]
    fn secret_changes_redact_themselves() {
        for change in [id_change("C1"), mobile_change("C1")] {
            let secret = SecretChange::new(change);
            let shown = format!("{secret:?} {secret:#?}");
            assert!(shown.contains(&secret.change_id), "{shown}");
            for personal in [ID_NUMBER, MOBILE, "北京", "proof-abc", "0123456789ABCDEF"] {
                assert!(!shown.contains(personal), "{shown}");
            }
        }
    }
}
