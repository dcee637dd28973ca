//! Binding passwords and the credentials object applications receive.

use std::fmt;

use osbkit::types::{Endpoint, JsonObject};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use rand::rngs::OsRng;
use rand::Rng;
use serde_json::Value;

use super::config::TlsMode;
use super::connect::Server;

/// Characters of a generated password; all are safe in URLs unencoded.
const PASSWORD_ALPHABET: &[u8] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Length of a generated password: 40 characters of 6 bits each, 240 bits.
pub const PASSWORD_LEN: usize = 40;

/// Everything but the unreserved characters of RFC 3986.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A binding password; its Debug output is redacted.
pub struct Password(String);

impl Password {
    /// Draws a new password from the operating system's CSPRNG.
    pub fn generate() -> Self {
        let mut rng = OsRng;
        let text = (0..PASSWORD_LEN)
            .map(|_| char::from(PASSWORD_ALPHABET[rng.gen_range(0..PASSWORD_ALPHABET.len())]))
            .collect();
        Password(text)
    }

    /// Returns the SCRAM-SHA-256 verifier, which the server stores in place
    /// of the password, so the password itself is never sent.
    pub fn scram_verifier(&self) -> String {
        postgres_protocol::password::scram_sha_256(self.0.as_bytes())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

/// The connection details of one binding.
pub struct Target<'a> {
    pub server: &'a Server,
    pub database: &'a str,
    pub username: &'a str,
    pub password: &'a Password,
    pub jdbc_url: bool,
}

/// Builds the `credentials` object and the `endpoints` of a binding.
pub fn build(target: &Target<'_>) -> (JsonObject, Vec<Endpoint>) {
    let server = target.server;
    let host = &server.public_host;
    let port = server.public_port;
    // An IPv6 address needs brackets inside a URL.
    let url_host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.clone()
    };
    let user = encode(target.username);
    let password = encode(target.password.expose());
    let database = encode(target.database);
    let sslmode = match server.tls_mode {
        TlsMode::Disable => None,
        mode => Some(mode.sslmode()),
    };

    let mut uri = format!("postgresql://{user}:{password}@{url_host}:{port}/{database}");
    if let Some(sslmode) = sslmode {
        uri.push_str(&format!("?sslmode={sslmode}"));
    }

    let mut credentials = JsonObject::new();
    credentials.insert("uri".into(), Value::String(uri));
    if target.jdbc_url {
        let mut jdbc = format!(
            "jdbc:postgresql://{url_host}:{port}/{database}?user={user}&password={password}"
        );
        if let Some(sslmode) = sslmode {
            jdbc.push_str(&format!("&sslmode={sslmode}"));
        }
        credentials.insert("jdbcUrl".into(), Value::String(jdbc));
    }
    credentials.insert("host".into(), Value::String(host.clone()));
    credentials.insert("hostname".into(), Value::String(host.clone()));
    credentials.insert("port".into(), Value::from(port));
    credentials.insert("name".into(), Value::String(target.database.to_owned()));
    credentials.insert("database".into(), Value::String(target.database.to_owned()));
    credentials.insert("username".into(), Value::String(target.username.to_owned()));
    credentials.insert(
        "password".into(),
        Value::String(target.password.expose().to_owned()),
    );
    if let Some(sslmode) = sslmode {
        credentials.insert("sslmode".into(), Value::String(sslmode.to_owned()));
        if let Some(pem) = &server.ca_pem {
            credentials.insert("sslrootcert".into(), Value::String(pem.clone()));
        }
    }

    let endpoints = vec![Endpoint {
        host: host.clone(),
        ports: vec![port.to_string()],
        protocol: Some("tcp".to_owned()),
    }];
    (credentials, endpoints)
}

fn encode(text: &str) -> String {
    utf8_percent_encode(text, COMPONENT).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_is_long_and_url_safe() {
        let password = Password::generate();
        assert_eq!(password.expose().len(), PASSWORD_LEN);
        assert!(password
            .expose()
            .bytes()
            .all(|b| PASSWORD_ALPHABET.contains(&b)));
        assert_eq!(encode(password.expose()), password.expose());
    }

    #[test]
    fn passwords_differ() {
        assert_ne!(Password::generate().expose(), Password::generate().expose());
    }

    #[test]
    fn password_debug_is_redacted() {
        let password = Password::generate();
        let debug = format!("{password:?}");
        assert!(!debug.contains(password.expose()));
    }

    #[test]
    fn verifier_hides_password() {
        let password = Password::generate();
        let verifier = password.scram_verifier();
        assert!(verifier.starts_with("SCRAM-SHA-256$"), "{verifier}");
        assert!(!verifier.contains(password.expose()));
        assert!(!verifier.contains('\''));
    }

    #[test]
    fn encode_escapes_reserved_characters() {
        assert_eq!(encode("a:b@c/d?e"), "a%3Ab%40c%2Fd%3Fe");
    }
}
