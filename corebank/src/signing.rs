//! Request signing: `X-Signature` = lowercase hex of HMAC-SHA256 with the
//! kiosk's shared key over
//! `METHOD "\n" PATH "\n" X-Timestamp "\n" X-Nonce "\n" hex(SHA-256(body))`.
//! PATH has no host and no query; the body is empty for GET.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// The shared key. Its bytes never appear in `Debug`.
#[derive(Clone)]
pub struct SigningKey(Vec<u8>);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(..)")
    }
}

impl Drop for SigningKey {
    fn drop(&mut self) {
        // zeroize's writes are not optimised away, unlike a plain loop.
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

impl SigningKey {
    pub fn new(bytes: impl Into<Vec<u8>>) -> SigningKey {
        SigningKey(bytes.into())
    }

    /// A key file holds the key as hex (whitespace around it ignored) or,
    /// failing that, as raw bytes.
    pub fn from_file_contents(contents: &[u8]) -> SigningKey {
        let text = String::from_utf8_lossy(contents);
        match hex::decode(text.trim()) {
            Ok(bytes) if !bytes.is_empty() => SigningKey(bytes),
            _ => SigningKey(contents.to_vec()),
        }
    }

    /// The signature of one request.
    pub fn sign(
        &self,
        method: &str,
        path: &str,
        timestamp_ms: &str,
        nonce: &str,
        body: &[u8],
    ) -> Signature {
        let mut mac = self.mac();
        mac.update(&string_to_sign(method, path, timestamp_ms, nonce, body));
        Signature(hex::encode(mac.finalize().into_bytes()))
    }

    /// Check a signature in constant time.
    pub fn verify(
        &self,
        method: &str,
        path: &str,
        timestamp_ms: &str,
        nonce: &str,
        body: &[u8],
        signature_hex: &str,
    ) -> bool {
        let Ok(given) = hex::decode(signature_hex) else {
            return false;
        };
        let mut mac = self.mac();
        mac.update(&string_to_sign(method, path, timestamp_ms, nonce, body));
        mac.verify_slice(&given).is_ok()
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC takes keys of any length.
        HmacSha256::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"))
    }
}

/// A lowercase-hex signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature(pub String);

/// The bytes the signature covers.
pub fn string_to_sign(
    method: &str,
    path: &str,
    timestamp_ms: &str,
    nonce: &str,
    body: &[u8],
) -> Vec<u8> {
    let body_hash = hex::encode(Sha256::digest(body));
    format!("{method}\n{path}\n{timestamp_ms}\n{nonce}\n{body_hash}").into_bytes()
}

/// A fresh nonce: 16 random bytes, hex.
pub fn new_nonce() -> String {
    let bytes: [u8; 16] = rand::random();
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_an_independent_computation() {
        // Computed with Python: hmac.new(b"secret", msg, sha256).hexdigest() where
        // msg = b"GET\n/v1/health\n1763880000000\n00112233445566778899aabbccddeeff\n" + sha256(b"").hexdigest()
        let key = SigningKey::new(b"secret".to_vec());
        let sig = key.sign(
            "GET",
            "/v1/health",
            "1763880000000",
            "00112233445566778899aabbccddeeff",
            b"",
        );
        assert_eq!(sig.0, VECTOR_GET_HEALTH);
        assert!(key.verify(
            "GET",
            "/v1/health",
            "1763880000000",
            "00112233445566778899aabbccddeeff",
            b"",
            &sig.0
        ));
    }

    #[test]
    fn any_change_breaks_the_signature() {
        let key = SigningKey::new(b"secret".to_vec());
        let sig = key.sign("POST", "/v1/changes", "1", "ab", b"{}");
        assert!(!key.verify("POST", "/v1/changes", "1", "ab", b"{ }", &sig.0));
        assert!(!key.verify("POST", "/v1/change", "1", "ab", b"{}", &sig.0));
        assert!(!key.verify("GET", "/v1/changes", "1", "ab", b"{}", &sig.0));
        assert!(!key.verify("POST", "/v1/changes", "2", "ab", b"{}", &sig.0));
        assert!(!key.verify("POST", "/v1/changes", "1", "ac", b"{}", &sig.0));
        assert!(!SigningKey::new(b"other".to_vec()).verify(
            "POST",
            "/v1/changes",
            "1",
            "ab",
            b"{}",
            &sig.0
        ));
        assert!(!key.verify("POST", "/v1/changes", "1", "ab", b"{}", "zz"));
    }

    #[test]
    fn key_files_hold_hex_or_raw_bytes() {
        let hex_key = SigningKey::from_file_contents(b"736563726574\n");
        let raw_key = SigningKey::from_file_contents(b"secret");
        let a = hex_key.sign("GET", "/", "1", "n", b"");
        let b = raw_key.sign("GET", "/", "1", "n", b"");
        assert_eq!(a, b);
    }

    const VECTOR_GET_HEALTH: &str =
        "08dac9a41269d414af7900b4d64be25dfa8e0d6ea13755a7b3d908bdd16d3f69";
}
