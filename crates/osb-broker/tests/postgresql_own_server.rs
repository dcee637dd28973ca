//! Tests that need a PostgreSQL server of their own on 127.0.0.1: password
//! authentication (the shared local server trusts everyone), TLS, and a
//! server that goes down. Each test runs `initdb` into a temporary folder,
//! as the `postgres` system user when the tests run as root, because
//! PostgreSQL refuses to run as root.

mod postgresql_support;

use std::collections::BTreeMap;
use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use osb_broker::backends::postgresql::names::InstanceNames;
use osb_broker::backends::postgresql::{PostgresBackend, ServerConfig, TlsMode};
use osbkit::{Backend, BackendError};
use postgresql_support::*;
use serde_json::json;
use tokio_postgres::error::SqlState;

/// A PostgreSQL server in a temporary folder, stopped and deleted on drop.
struct OwnServer {
    dir: PathBuf,
    port: u16,
    run_as_postgres: bool,
}

fn is_root() -> bool {
    let output = Command::new("id").arg("-u").output().expect("run id -u");
    String::from_utf8_lossy(&output.stdout).trim() == "0"
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

fn check(command: &mut Command) {
    let output = command
        .output()
        .unwrap_or_else(|error| panic!("cannot run {command:?}: {error}"));
    assert!(
        output.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn openssl_new_key() -> Command {
    let mut command = Command::new("openssl");
    command.args([
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ]);
    command
}

/// Writes a self-signed certificate authority to `dir`; returns the
/// certificate and key paths.
fn make_certificate_authority(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let certificate = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    check(
        openssl_new_key()
            .args([
                "-x509",
                "-days",
                "2",
                "-subj",
                &format!("/CN=osbkit test {name}"),
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&certificate),
    );
    (certificate, key)
}

/// Writes a server certificate for 127.0.0.1 signed by the authority.
fn make_server_certificate(dir: &Path, authority: &(PathBuf, PathBuf)) -> (PathBuf, PathBuf) {
    let request = dir.join("server.csr");
    let certificate = dir.join("server.crt");
    let key = dir.join("server.key");
    let extensions = dir.join("server.ext");
    fs::write(
        &extensions,
        "subjectAltName = IP:127.0.0.1, DNS:localhost\nbasicConstraints = CA:FALSE\n",
    )
    .expect("write certificate extensions");
    check(
        openssl_new_key()
            .args(["-subj", "/CN=127.0.0.1"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&request),
    );
    check(
        Command::new("openssl")
            .args(["x509", "-req", "-days", "2", "-in"])
            .arg(&request)
            .arg("-CA")
            .arg(&authority.0)
            .arg("-CAkey")
            .arg(&authority.1)
            .arg("-CAcreateserial")
            .arg("-extfile")
            .arg(&extensions)
            .arg("-out")
            .arg(&certificate),
    );
    (certificate, key)
}

/// Finds a PostgreSQL server program: on PATH, or else in the newest of
/// Debian's /usr/lib/postgresql/VERSION/bin folders, which are not on PATH.
fn server_program(program: &str) -> String {
    let on_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
        .unwrap_or(false);
    if on_path {
        return program.to_owned();
    }
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|entry| {
                    let version = entry.file_name().to_str()?.parse().ok()?;
                    Some((version, entry.path().join("bin").join(program)))
                })
                .filter(|(_, path)| path.is_file())
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    match versions.pop() {
        Some((_, path)) => path.display().to_string(),
        None => panic!(
            "{program} was found neither on PATH nor in /usr/lib/postgresql/*/bin: install Debian's postgresql package"
        ),
    }
}

impl OwnServer {
    fn start(tls: bool) -> OwnServer {
        let run_as_postgres = is_root();
        let dir = std::env::temp_dir().join(format!("osbkit-pg-{}", new_id()));
        fs::create_dir(&dir).expect("create server folder");
        let server = OwnServer {
            dir,
            port: free_port(),
            run_as_postgres,
        };
        let data = server.dir.join("data");
        if run_as_postgres {
            check(Command::new("chown").arg("postgres:").arg(&server.dir));
        }
        check(server.command("initdb").arg("-D").arg(&data).args([
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        ]));

        // The admin logs in without a password; every other role needs SCRAM.
        let host = if tls { "hostssl" } else { "host" };
        let hba = format!(
            "local all all trust\n\
             {host} all postgres 127.0.0.1/32 trust\n\
             {host} all all 127.0.0.1/32 scram-sha-256\n"
        );
        let mut settings = format!(
            "\nport = {}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\nfsync = off\n",
            server.port,
            server.dir.display()
        );
        if tls {
            let authority = make_certificate_authority(&server.dir, "ca");
            let (certificate, key) = make_server_certificate(&server.dir, &authority);
            settings.push_str(&format!(
                "ssl = on\nssl_cert_file = '{}'\nssl_key_file = '{}'\n",
                certificate.display(),
                key.display()
            ));
            // PostgreSQL refuses a key that others may read.
            check(Command::new("chmod").arg("600").arg(&key));
            if run_as_postgres {
                check(Command::new("chown").arg("postgres:").arg(&key));
            }
        }
        fs::write(data.join("pg_hba.conf"), hba).expect("write pg_hba.conf");
        let mut conf =
            fs::read_to_string(data.join("postgresql.conf")).expect("read postgresql.conf");
        conf.push_str(&settings);
        fs::write(data.join("postgresql.conf"), conf).expect("write postgresql.conf");
        server.pg_ctl("start");
        server
    }

    fn command(&self, program: &str) -> Command {
        let program = server_program(program);
        if self.run_as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--", &program]);
            command
        } else {
            Command::new(program)
        }
    }

    fn pg_ctl(&self, action: &str) {
        check(
            self.command("pg_ctl")
                .arg("-D")
                .arg(self.dir.join("data"))
                .arg("-l")
                .arg(self.dir.join("log"))
                .args(["-w", "-m", "fast", action]),
        );
    }

    fn url(&self) -> String {
        format!("postgresql://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Returns the certificate authority that signed the server's certificate.
    fn certificate_authority(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-w", "-m", "immediate", "stop"])
            .output();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

async fn backend_with(server: ServerConfig) -> PostgresBackend {
    let servers = BTreeMap::from([("default".to_owned(), server)]);
    PostgresBackend::new(&servers, plans())
        .await
        .expect("valid configuration")
}

fn psql(uri: &str) -> std::process::Output {
    Command::new("psql")
        .arg(uri)
        .args(["-X", "-A", "-t", "-c", "SELECT session_user"])
        .env("PGCONNECT_TIMEOUT", "5")
        .output()
        .expect("run psql")
}

#[tokio::test]
async fn passwords_authenticate_with_scram() {
    let server = OwnServer::start(false);
    let backend = backend_for(&server.url()).await;
    let instance_id = new_id();
    let binding_id = new_id();
    let role = InstanceNames::new(&instance_id).binding_role(&binding_id);
    backend
        .provision(&provision_job(&instance_id, SMALL_PLAN, json!({})))
        .await
        .expect("provision succeeds");
    let job = bind_job(&instance_id, &binding_id, SMALL_PLAN, json!({}));

    let old_uri = bind_uri(&backend, &job).await;
    connect(&old_uri).await.expect("the password authenticates");
    let wrong = old_uri.replacen(&format!("{role}:"), &format!("{role}:wrong"), 1);
    let error = connect(&wrong)
        .await
        .expect_err("a wrong password is rejected");
    assert_eq!(error.code(), Some(&SqlState::INVALID_PASSWORD), "{error:?}");

    // A repeated bind, as after a crash, makes the earlier password useless.
    let new_uri = bind_uri(&backend, &job).await;
    assert!(
        connect(&old_uri).await.is_err(),
        "the earlier password still works"
    );
    connect(&new_uri)
        .await
        .expect("the new password authenticates");
    let output = psql(&new_uri);
    assert!(
        output.status.success(),
        "psql: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), role);

    backend
        .unbind(&unbind_job(&instance_id, &binding_id, SMALL_PLAN))
        .await
        .expect("unbind succeeds");
    assert!(
        connect(&new_uri).await.is_err(),
        "an unbound binding authenticates"
    );
    cleanup(&backend, &instance_id, SMALL_PLAN).await;
}

#[tokio::test]
async fn tls_require_encrypts_connections() {
    let server = OwnServer::start(true);
    let mut config = server_config(&server.url());
    config.tls = TlsMode::Require;
    let backend = backend_with(config).await;
    let instance_id = new_id();
    backend
        .provision(&provision_job(&instance_id, SMALL_PLAN, json!({})))
        .await
        .expect("provision over TLS succeeds");
    let outcome = backend
        .bind(&bind_job(&instance_id, &new_id(), SMALL_PLAN, json!({})))
        .await
        .expect("bind over TLS succeeds");
    let credentials = outcome.credentials.expect("credentials");
    assert_eq!(credentials["sslmode"], json!("require"));
    assert!(credentials.get("sslrootcert").is_none());
    let uri = credentials["uri"].as_str().expect("uri");
    assert!(uri.ends_with("?sslmode=require"), "{uri}");
    assert!(
        credentials["jdbcUrl"]
            .as_str()
            .expect("jdbcUrl")
            .ends_with("&sslmode=require"),
        "{credentials:?}"
    );

    let output = psql(uri);
    assert!(
        output.status.success(),
        "psql: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        connect(uri).await.is_err(),
        "a client without TLS connected"
    );
    cleanup(&backend, &instance_id, SMALL_PLAN).await;
}

#[tokio::test]
async fn tls_verify_full_checks_certificate() {
    let server = OwnServer::start(true);
    let mut config = server_config(&server.url());
    config.tls = TlsMode::VerifyFull;
    config.ca_file = Some(server.certificate_authority());
    let backend = backend_with(config.clone()).await;
    let instance_id = new_id();
    backend
        .provision(&provision_job(&instance_id, SMALL_PLAN, json!({})))
        .await
        .expect("provision over verified TLS succeeds");
    let outcome = backend
        .bind(&bind_job(&instance_id, &new_id(), SMALL_PLAN, json!({})))
        .await
        .expect("bind over verified TLS succeeds");
    let credentials = outcome.credentials.expect("credentials");
    assert_eq!(credentials["sslmode"], json!("verify-full"));
    let pem = fs::read_to_string(server.certificate_authority()).expect("read certificate");
    assert_eq!(credentials["sslrootcert"], json!(pem));

    // An application writes sslrootcert to a file for libpq.
    let root = server.dir.join("app-root.crt");
    fs::write(&root, pem).expect("write sslrootcert");
    let uri = credentials["uri"].as_str().expect("uri");
    let output = psql(&format!("{uri}&sslrootcert={}", root.display()));
    assert!(
        output.status.success(),
        "psql: {}",
        String::from_utf8_lossy(&output.stderr)
    );

    // A certificate authority that did not sign the server's certificate.
    let (other_certificate, _) = make_certificate_authority(&server.dir, "other");
    config.ca_file = Some(other_certificate);
    let untrusting = backend_with(config).await;
    let error = untrusting
        .provision(&provision_job(&new_id(), SMALL_PLAN, json!({})))
        .await
        .expect_err("an unverified server is rejected");
    assert!(matches!(error, BackendError::Unavailable { .. }), "{error}");

    cleanup(&backend, &instance_id, SMALL_PLAN).await;
}

#[tokio::test]
async fn server_down_is_unavailable_then_deletable() {
    let server = OwnServer::start(false);
    let backend = backend_for(&server.url()).await;
    let instance_id = new_id();
    let binding_id = new_id();
    backend
        .provision(&provision_job(&instance_id, SMALL_PLAN, json!({})))
        .await
        .expect("provision succeeds");
    bind_uri(
        &backend,
        &bind_job(&instance_id, &binding_id, SMALL_PLAN, json!({})),
    )
    .await;

    server.pg_ctl("stop");
    let results = [
        backend
            .provision(&provision_job(&new_id(), SMALL_PLAN, json!({})))
            .await
            .err(),
        backend
            .bind(&bind_job(&instance_id, &new_id(), SMALL_PLAN, json!({})))
            .await
            .err(),
        backend
            .unbind(&unbind_job(&instance_id, &binding_id, SMALL_PLAN))
            .await
            .err(),
        backend
            .deprovision(&deprovision_job(&instance_id, SMALL_PLAN, &[&binding_id]))
            .await
            .err(),
    ];
    for error in results {
        let error = error.expect("an operation on a stopped server fails");
        assert!(matches!(error, BackendError::Unavailable { .. }), "{error}");
        let description = error.public_description();
        assert!(
            description.contains("PostgreSQL server \"default\" is unavailable"),
            "{description}"
        );
    }

    server.pg_ctl("start");
    backend
        .deprovision(&deprovision_job(&instance_id, SMALL_PLAN, &[&binding_id]))
        .await
        .expect("deprovision succeeds once the server is back");
    let admin = connect(&server.url()).await.expect("connect to own server");
    assert_nothing_left(&admin, &instance_id).await;
}

#[tokio::test]
async fn backend_starts_while_server_is_down() {
    let port = free_port();
    let url = format!("postgresql://postgres@127.0.0.1:{port}/postgres");
    let backend = backend_for(&url).await;
    let error = backend
        .provision(&provision_job(&new_id(), SMALL_PLAN, json!({})))
        .await
        .expect_err("nothing listens on the port");
    assert!(matches!(error, BackendError::Unavailable { .. }), "{error}");
}

// Managed services give no superuser: the admin has CREATEDB and CREATEROLE.
#[tokio::test]
async fn admin_without_superuser_runs_lifecycle() {
    let server = OwnServer::start(false);
    let superuser = connect(&server.url()).await.expect("connect to own server");
    superuser
        .batch_execute(
            "CREATE ROLE broker_admin LOGIN CREATEDB CREATEROLE PASSWORD 'broker-admin-password'",
        )
        .await
        .expect("create the admin role");
    let url = format!(
        "postgresql://broker_admin:broker-admin-password@127.0.0.1:{}/postgres",
        server.port
    );
    let backend = backend_for(&url).await;
    let instance_id = new_id();
    let names = InstanceNames::new(&instance_id);
    backend
        .provision(&provision_job(
            &instance_id,
            SMALL_PLAN,
            json!({"extensions": ["pgcrypto"]}),
        ))
        .await
        .expect("provision succeeds");
    assert_eq!(
        database_owner(&superuser, &names.database).await,
        Some(names.owner.clone())
    );

    let writer_id = new_id();
    let reader_id = new_id();
    let writer_uri = bind_uri(
        &backend,
        &bind_job(&instance_id, &writer_id, SMALL_PLAN, json!({})),
    )
    .await;
    let reader_uri = bind_uri(
        &backend,
        &bind_job(
            &instance_id,
            &reader_id,
            SMALL_PLAN,
            json!({"read_only": true}),
        ),
    )
    .await;
    let writer = connect(&writer_uri).await.expect("writer connects");
    writer
        .batch_execute("CREATE TABLE t (n int); RESET ROLE; CREATE TABLE mine (n int);")
        .await
        .expect("writer creates tables");
    let reader = connect(&reader_uri).await.expect("reader connects");
    reader
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .expect("reader reads");

    backend
        .unbind(&unbind_job(&instance_id, &writer_id, SMALL_PLAN))
        .await
        .expect("unbind succeeds");
    assert!(!role_exists(&superuser, &names.binding_role(&writer_id)).await);
    backend
        .deprovision(&deprovision_job(&instance_id, SMALL_PLAN, &[&reader_id]))
        .await
        .expect("deprovision succeeds with the reader's session open");
    assert_nothing_left(&superuser, &instance_id).await;
    drop((writer, reader));
}
