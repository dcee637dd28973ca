//! Encryption of stored credentials with AES-256-GCM.
//!
//! A sealed value is a 12-byte random nonce followed by the ciphertext and
//! its tag. The binding id is the associated data, so a sealed value copied
//! onto another binding's row fails to open.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use rand::RngCore;

/// An invalid key, or a sealed value that cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("the encryption key must be 32 bytes encoded as Base64 (44 characters); generate one with `openssl rand -base64 32`")]
    InvalidKey,
    #[error("a stored value could not be decrypted: the encryption key differs from the one it was written with, or the value is damaged")]
    Undecryptable,
}

/// Seals and opens values with one key.
#[derive(Clone)]
pub struct Sealer {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("Sealer(***)")
    }
}

impl Sealer {
    /// Builds a sealer from a Base64-encoded 32-byte key.
    pub fn from_base64(key: &str) -> Result<Self, CryptoError> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(key.trim())
            .map_err(|_| CryptoError::InvalidKey)?;
        Self::from_bytes(&bytes)
    }

    /// Builds a sealer from a raw 32-byte key.
    pub fn from_bytes(key: &[u8]) -> Result<Self, CryptoError> {
        let cipher = Aes256Gcm::new_from_slice(key).map_err(|_| CryptoError::InvalidKey)?;
        Ok(Sealer { cipher })
    }

    /// Returns a new random key, Base64-encoded.
    pub fn generate_key() -> String {
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        base64::engine::general_purpose::STANDARD.encode(key)
    }

    /// Encrypts `plaintext`, bound to `context`.
    pub fn seal(&self, context: &str, plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let payload = Payload {
            msg: plaintext,
            aad: context.as_bytes(),
        };
        let ciphertext = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), payload)
            .expect("AES-GCM encryption of an in-memory buffer cannot fail");
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&ciphertext);
        sealed
    }

    /// Decrypts what [`Sealer::seal`] produced for the same `context`.
    pub fn open(&self, context: &str, sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if sealed.len() < 12 {
            return Err(CryptoError::Undecryptable);
        }
        let (nonce, ciphertext) = sealed.split_at(12);
        let payload = Payload {
            msg: ciphertext,
            aad: context.as_bytes(),
        };
        self.cipher
            .decrypt(Nonce::from_slice(nonce), payload)
            .map_err(|_| CryptoError::Undecryptable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_value_opens_with_same_context() {
        let sealer = Sealer::from_base64(&Sealer::generate_key()).unwrap();
        let sealed = sealer.seal("binding-1", b"password");
        assert!(!sealed.windows(8).any(|window| window == b"password"));
        assert_eq!(sealer.open("binding-1", &sealed).unwrap(), b"password");
        assert!(sealer.open("binding-2", &sealed).is_err());
    }

    #[test]
    fn other_key_cannot_open() {
        let first = Sealer::from_base64(&Sealer::generate_key()).unwrap();
        let second = Sealer::from_base64(&Sealer::generate_key()).unwrap();
        assert!(second.open("b", &first.seal("b", b"x")).is_err());
    }

    #[test]
    fn short_keys_are_rejected() {
        assert!(Sealer::from_base64("c2hvcnQ=").is_err());
    }
}
