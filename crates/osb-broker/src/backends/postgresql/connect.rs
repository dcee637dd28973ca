//! Connections to a configured server: TLS setup and a small pool of admin
//! connections.

use std::fmt;
use std::ops::Deref;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use osbkit::BackendError;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::{Client, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::config::{ServerConfig, TlsMode};
use super::names::Naming;
use super::sql::to_backend_error;

/// Idle admin connections kept per server. Operations are rare and short,
/// so a few cover concurrent requests without holding server slots.
const MAX_IDLE_CONNECTIONS: usize = 4;

/// Server options of the broker's sessions, unless the URL sets `options`.
const LOCK_TIMEOUT_OPTION: &str = "-c lock_timeout=60s";

/// One configured server, ready to connect to.
pub struct Server {
    /// The key under `[postgresql.servers]`.
    pub key: String,
    config: tokio_postgres::Config,
    tls: Option<MakeRustlsConnect>,
    pub tls_mode: TlsMode,
    /// Content of `ca_file`, handed to applications as `sslrootcert`.
    pub ca_pem: Option<String>,
    /// Host that applications connect to.
    pub public_host: String,
    /// Port that applications connect to.
    pub public_port: u16,
    /// The naming scheme of the broker's databases and roles on this server.
    pub naming: Naming,
    idle: Mutex<Vec<Client>>,
}

// The driver's Config contains the admin password, so it is left out.
impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("key", &self.key)
            .field("tls_mode", &self.tls_mode)
            .field("public_host", &self.public_host)
            .field("public_port", &self.public_port)
            .field("naming", &self.naming)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Checks `config` and prepares TLS. Connects to nothing yet, so the
    /// broker starts while a server is down.
    pub fn new(key: &str, config: &ServerConfig) -> Result<Self, String> {
        let field = format!("postgresql.servers.{key}");
        let naming = Naming::new(&config.name_prefix)
            .map_err(|error| format!("{field}.name_prefix {error}"))?;
        // The parse error may quote the URL, so only its kind is shown.
        let mut driver_config: tokio_postgres::Config = config.url.parse().map_err(|_| {
            format!(
                "{field}.url is not a valid PostgreSQL URL; \
                 write it as postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE"
            )
        })?;
        if driver_config.get_user().is_none() {
            return Err(format!(
                "{field}.url names no user; add an administrator role, as in postgresql://postgres@HOST/postgres"
            ));
        }
        if driver_config.get_dbname().is_none() {
            driver_config.dbname("postgres");
        }
        if driver_config.get_connect_timeout().is_none() {
            driver_config.connect_timeout(Duration::from_secs(config.connect_timeout_seconds));
        }
        driver_config.application_name("osb-broker");
        // A statement stuck behind an application's lock fails after a
        // minute instead of holding the operation forever; the framework
        // runs it again later.
        if driver_config.get_options().is_none() {
            driver_config.options(LOCK_TIMEOUT_OPTION);
        }

        let ca_pem = match &config.ca_file {
            Some(path) => Some(std::fs::read_to_string(path).map_err(|error| {
                format!(
                    "{field}.ca_file {}: cannot read it ({error}); point it at a PEM file",
                    path.display()
                )
            })?),
            None => None,
        };
        let tls = match config.tls {
            TlsMode::Disable => {
                driver_config.ssl_mode(SslMode::Disable);
                None
            }
            TlsMode::Require => {
                driver_config.ssl_mode(SslMode::Require);
                Some(MakeRustlsConnect::new(unverified_tls_config()?))
            }
            TlsMode::VerifyFull => {
                let Some(pem) = &ca_pem else {
                    return Err(format!(
                        "{field}.tls is verify-full but ca_file is missing; \
                         set ca_file to the PEM file of the server's certificate authority"
                    ));
                };
                driver_config.ssl_mode(SslMode::Require);
                Some(MakeRustlsConnect::new(verified_tls_config(&field, pem)?))
            }
        };

        let admin_host = match driver_config.get_hosts().first() {
            Some(Host::Tcp(host)) => Some(host.clone()),
            _ => None,
        };
        let public_host = match (&config.public_host, admin_host) {
            (Some(host), _) => host.clone(),
            (None, Some(host)) => host,
            (None, None) => {
                return Err(format!(
                "{field}.url has no TCP host; set {field}.public_host to the host applications use"
            ))
            }
        };
        let admin_port = driver_config.get_ports().first().copied().unwrap_or(5432);
        Ok(Server {
            key: key.to_owned(),
            config: driver_config,
            tls,
            tls_mode: config.tls,
            ca_pem,
            public_host,
            public_port: config.public_port.unwrap_or(admin_port),
            naming,
            idle: Mutex::new(Vec::new()),
        })
    }

    /// Opens a new connection as the admin role to `database`, or to the
    /// admin database when `None`.
    pub async fn connect(
        &self,
        database: Option<&str>,
        step: &'static str,
    ) -> Result<Client, BackendError> {
        let mut config = self.config.clone();
        if let Some(database) = database {
            config.dbname(database);
        }
        let result = match &self.tls {
            None => config.connect(NoTls).await.map(|(client, connection)| {
                tokio::spawn(drive_connection(connection));
                client
            }),
            Some(tls) => config
                .connect(tls.clone())
                .await
                .map(|(client, connection)| {
                    tokio::spawn(drive_connection(connection));
                    client
                }),
        };
        result.map_err(|error| to_backend_error(&self.key, step, error))
    }

    /// Takes an idle admin connection or opens one.
    pub async fn admin(&self) -> Result<PooledClient<'_>, BackendError> {
        loop {
            let idle = self.lock_idle().pop();
            match idle {
                Some(client) if !client.is_closed() => {
                    return Ok(PooledClient {
                        server: self,
                        client: Some(client),
                    })
                }
                // A closed client is dropped and the next one tried. The loop
                // ends because the list is finite.
                Some(_) => continue,
                None => break,
            }
        }
        let client = self.connect(None, "connect").await?;
        Ok(PooledClient {
            server: self,
            client: Some(client),
        })
    }

    fn lock_idle(&self) -> std::sync::MutexGuard<'_, Vec<Client>> {
        // A panic while holding the lock leaves only a list of clients behind.
        self.idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

async fn drive_connection<S, T>(connection: tokio_postgres::Connection<S, T>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    if let Err(error) = connection.await {
        tracing::debug!(%error, "PostgreSQL connection ended with an error");
    }
}

/// An admin connection that goes back to the pool when dropped.
pub struct PooledClient<'a> {
    server: &'a Server,
    client: Option<Client>,
}

impl Deref for PooledClient<'_> {
    type Target = Client;

    fn deref(&self) -> &Client {
        self.client
            .as_ref()
            .expect("a pooled client is present until drop")
    }
}

impl Drop for PooledClient<'_> {
    fn drop(&mut self) {
        let Some(client) = self.client.take() else {
            return;
        };
        if client.is_closed() {
            return;
        }
        let mut idle = self.server.lock_idle();
        if idle.len() < MAX_IDLE_CONNECTIONS {
            idle.push(client);
        }
    }
}

fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn verified_tls_config(field: &str, pem: &str) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        let certificate = certificate
            .map_err(|error| format!("{field}.ca_file is not a valid PEM file: {error}"))?;
        roots
            .add(certificate)
            .map_err(|error| format!("{field}.ca_file holds an unusable certificate: {error}"))?;
    }
    if roots.is_empty() {
        return Err(format!(
            "{field}.ca_file holds no certificate; put the PEM of the server's certificate authority in it"
        ));
    }
    Ok(
        rustls::ClientConfig::builder_with_provider(crypto_provider())
            .with_safe_default_protocol_versions()
            .map_err(|error| format!("TLS setup failed: {error}"))?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

fn unverified_tls_config() -> Result<rustls::ClientConfig, String> {
    let provider = crypto_provider();
    Ok(
        rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|error| format!("TLS setup failed: {error}"))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate { provider }))
            .with_no_client_auth(),
    )
}

/// Accepts any server certificate but still checks the handshake signatures,
/// as libpq does with `sslmode=require`: encrypted, but open to a man in the
/// middle.
#[derive(Debug)]
struct AnyCertificate {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
