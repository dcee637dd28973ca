//! HTTP Basic authentication of platforms.
//!
//! Several users may be configured at once, so that credentials can be
//! rotated without downtime. Passwords are given in plain text or as bcrypt
//! (`$2b$...`) or Argon2 (`$argon2id$...`) hashes. Plain passwords are
//! compared in constant time. Hash checks are slow by design, so a header
//! that passed one is remembered by its SHA-256 digest and later requests
//! with it skip the hash.

use std::collections::HashSet;
use std::sync::RwLock;

use argon2::password_hash::PasswordHash;
use argon2::PasswordVerifier;
use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// How many verified headers of hashed passwords are remembered.
const VERIFIED_CACHE_LIMIT: usize = 1024;

/// A password as configured.
#[derive(Clone)]
pub enum Password {
    Plain(String),
    /// A bcrypt or Argon2 hash in its usual string form.
    Hash(String),
}

impl std::fmt::Debug for Password {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Password::Plain(_) => formatter.write_str("Password::Plain(***)"),
            Password::Hash(_) => formatter.write_str("Password::Hash(***)"),
        }
    }
}

impl Password {
    /// Reads a configured password: hashes are recognised by their prefix.
    pub fn from_config(value: &str) -> Self {
        if value.starts_with("$2a$")
            || value.starts_with("$2b$")
            || value.starts_with("$2y$")
            || value.starts_with("$argon2")
        {
            Password::Hash(value.to_owned())
        } else {
            Password::Plain(value.to_owned())
        }
    }

    /// Returns whether a hash string can be parsed, for checks at start-up.
    pub fn is_valid(&self) -> bool {
        match self {
            Password::Plain(_) => true,
            Password::Hash(hash) if hash.starts_with("$argon2") => PasswordHash::new(hash).is_ok(),
            Password::Hash(hash) => hash.parse::<bcrypt::HashParts>().is_ok(),
        }
    }
}

/// One broker user.
#[derive(Debug, Clone)]
pub struct Credential {
    pub username: String,
    pub password: Password,
}

/// Checks `Authorization` headers against the configured users.
#[derive(Debug, Default)]
pub struct Authenticator {
    credentials: Vec<Credential>,
    verified: RwLock<HashSet<[u8; 32]>>,
}

impl Authenticator {
    /// Builds an authenticator. With no credentials every request passes,
    /// which only a broker behind other authentication should use.
    pub fn new(credentials: Vec<Credential>) -> Self {
        Authenticator {
            credentials,
            verified: RwLock::default(),
        }
    }

    /// Returns true when no credentials are configured.
    pub fn is_open(&self) -> bool {
        self.credentials.is_empty()
    }

    /// Returns whether an `Authorization` header value names a configured user.
    pub fn verify(&self, header: Option<&[u8]>) -> bool {
        if self.is_open() {
            return true;
        }
        let Some(header) = header else {
            return false;
        };

        let digest: [u8; 32] = Sha256::digest(header).into();
        if self.verified.read().is_ok_and(|set| set.contains(&digest)) {
            return true;
        }

        let Some((username, password)) = decode_basic(header) else {
            return false;
        };
        let mut accepted = false;
        let mut hashed = false;
        for credential in &self.credentials {
            // Every user is compared, so the time taken does not tell which matched.
            let name_matches: bool = digest_eq(credential.username.as_bytes(), username.as_bytes());
            let password_matches = match &credential.password {
                Password::Plain(expected) => digest_eq(expected.as_bytes(), password.as_bytes()),
                Password::Hash(hash) if name_matches => {
                    hashed = true;
                    verify_hash(hash, &password)
                }
                Password::Hash(_) => false,
            };
            accepted |= name_matches & password_matches;
        }

        if accepted && hashed {
            if let Ok(mut set) = self.verified.write() {
                if set.len() >= VERIFIED_CACHE_LIMIT {
                    set.clear();
                }
                set.insert(digest);
            }
        }
        accepted
    }
}

fn digest_eq(left: &[u8], right: &[u8]) -> bool {
    let left = Sha256::digest(left);
    let right = Sha256::digest(right);
    left.ct_eq(&right).into()
}

fn verify_hash(hash: &str, password: &str) -> bool {
    if hash.starts_with("$argon2") {
        return PasswordHash::new(hash).is_ok_and(|parsed| {
            argon2::Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        });
    }
    bcrypt::verify(password, hash).unwrap_or(false)
}

fn decode_basic(header: &[u8]) -> Option<(String, String)> {
    let header = std::str::from_utf8(header).ok()?;
    let (scheme, encoded) = header.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (username, password) = decoded.split_once(':')?;
    Some((username.to_owned(), password.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user: &str, password: &str) -> Vec<u8> {
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        format!("Basic {encoded}").into_bytes()
    }

    fn authenticator(password: Password) -> Authenticator {
        Authenticator::new(vec![
            Credential {
                username: "old".to_owned(),
                password: Password::Plain("old-secret".to_owned()),
            },
            Credential {
                username: "new".to_owned(),
                password,
            },
        ])
    }

    #[test]
    fn plain_passwords_of_either_user_pass() {
        let auth = authenticator(Password::Plain("new-secret".to_owned()));
        assert!(auth.verify(Some(&basic("old", "old-secret"))));
        assert!(auth.verify(Some(&basic("new", "new-secret"))));
        assert!(!auth.verify(Some(&basic("new", "old-secret"))));
        assert!(!auth.verify(Some(&basic("nobody", "old-secret"))));
        assert!(!auth.verify(None));
        assert!(!auth.verify(Some(b"Bearer abc")));
    }

    #[test]
    fn bcrypt_hash_verifies_and_is_cached() {
        let hash = bcrypt::hash("new-secret", 4).unwrap();
        let auth = authenticator(Password::from_config(&hash));
        assert!(auth.verify(Some(&basic("new", "new-secret"))));
        assert!(auth.verify(Some(&basic("new", "new-secret"))));
        assert!(!auth.verify(Some(&basic("new", "wrong"))));
    }

    #[test]
    fn argon2_hash_verifies() {
        use argon2::password_hash::{PasswordHasher, SaltString};
        let salt = SaltString::encode_b64(b"fixed-salt-16byt").unwrap();
        let hash = argon2::Argon2::default()
            .hash_password(b"new-secret", &salt)
            .unwrap()
            .to_string();
        let auth = authenticator(Password::from_config(&hash));
        assert!(auth.verify(Some(&basic("new", "new-secret"))));
        assert!(!auth.verify(Some(&basic("new", "wrong"))));
    }

    #[test]
    fn password_debug_is_redacted() {
        let shown = format!("{:?}", Password::Plain("hunter2".to_owned()));
        assert!(!shown.contains("hunter2"));
    }
}
