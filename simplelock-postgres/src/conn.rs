//! Connections: where the server is (URL or `PG*` variables), TLS, the session settings that
//! bound how long a dead peer goes unnoticed, and the background thread that drives every
//! connection and notices its end.
//!
//! # Why a background thread
//!
//! The blocking `postgres` crate reads a connection's socket only while a call is running, so a
//! connection that died between two calls (server restart, `pg_terminate_backend`, a cut
//! network) goes unnoticed until the next call. Here every connection is a task on one
//! process-wide tokio runtime with one worker thread: the task reads the socket all the time, so
//! its end is known at once (a reset or a close), or after the TCP keepalive / user timeout for a
//! silent network (see [`Timeouts`]). Lock calls block the calling thread on the task's answer.
//!
//! The runtime belongs to the process that created it: a forked child has no worker thread, so
//! the handles it inherited refuse to work in it (see `PostgresLock`'s docs).

use std::fmt;
use std::io;
use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::runtime::Runtime;
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::{Client, Config};

use crate::error::connect_error;
use simplelock_core::{SimpleLockError, SimpleLockResult};

/// How quickly a dead or unreachable peer is noticed, on both ends of a lock's connection.
///
/// With the default [`dead_peer`](Timeouts::dead_peer) of 5 s:
/// - the **server** ends the session of a holder whose network went silent (pulled cable,
///   partition, a paused VM) within about 5 s and so releases its lock: the session is
///   started with `tcp_keepalives_idle = 1`, `tcp_keepalives_interval = 1`,
///   `tcp_keepalives_count = 3` and `tcp_user_timeout = 3000` (ms). A waiter whose client went
///   away stops waiting after `client_connection_check_interval` (1 s), so it never gets a
///   lock nobody will release.
/// - the **client** notices a silent server the same way (the same keepalive and user timeout
///   on its socket), ends the connection and reports the lock lost.
/// - a closed or reset connection (holder killed, `pg_terminate_backend`, server restart) is
///   noticed at once by both.
///
/// `statement_timeout`, `idle_session_timeout` and `idle_in_transaction_session_timeout` are set
/// to 0 for the session, so a server-wide setting can neither abort a wait nor end an idle
/// holder's session. These settings are sent in the startup packet (no extra round trip); a
/// pooler that rejects startup options (PgBouncer without `ignore_startup_parameters`) cannot be
/// used anyway (session locks need session pooling).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// The bound on noticing a silent peer: keepalive idle 1 s, interval 1 s, and a TCP user
    /// timeout of `dead_peer − 2 s` (at least 1 s). Default 5 s.
    pub dead_peer: Duration,
    /// How long connecting may take before it is an error. Default 10 s.
    pub connect: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            dead_peer: Duration::from_secs(5),
            connect: Duration::from_secs(10),
        }
    }
}

impl Timeouts {
    /// The TCP user timeout (and keepalive count) that gives [`dead_peer`](Timeouts::dead_peer).
    fn user_timeout(&self) -> Duration {
        self.dead_peer
            .saturating_sub(Duration::from_secs(2))
            .max(Duration::from_secs(1))
    }

    /// The session settings sent in the startup packet.
    fn startup_options(&self) -> String {
        let user_ms = self.user_timeout().as_millis();
        let count = (self.user_timeout().as_secs()).max(1);
        format!(
            "-c tcp_keepalives_idle=1 -c tcp_keepalives_interval=1 -c tcp_keepalives_count={count} \
             -c tcp_user_timeout={user_ms} -c client_connection_check_interval=1000 \
             -c statement_timeout=0 -c idle_session_timeout=0 \
             -c idle_in_transaction_session_timeout=0 -c lock_timeout=0"
        )
    }
}

/// Where the server is and how to talk to it, parsed once per lock handle.
#[derive(Clone)]
pub(crate) struct Target {
    pub(crate) config: Config,
    /// `host:port/database` for messages and for telling servers apart (never the password).
    pub(crate) describe: String,
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The config holds the password: show only where the server is.
        f.debug_struct("Target")
            .field("server", &self.describe)
            .finish()
    }
}

/// The environment variables libpq reads, as far as they apply here.
const ENV_VARS: &[&str] = &[
    "PGHOST",
    "PGPORT",
    "PGUSER",
    "PGPASSWORD",
    "PGDATABASE",
    "PGSSLMODE",
    "PGCONNECT_TIMEOUT",
];

impl Target {
    /// Parses `url` (a `postgres://` URL or a `key=value` string, as libpq takes them), with
    /// the `PG*` environment variables filling what it leaves out, and libpq's defaults after
    /// them. `url = None` uses the environment alone.
    pub(crate) fn new(
        lock: &str,
        url: Option<&str>,
        timeouts: &Timeouts,
    ) -> SimpleLockResult<Self> {
        let mut config = match url {
            Some(url) => Config::from_str(url).map_err(|e| {
                SimpleLockError::invalid_name_os(
                    lock,
                    format!("invalid PostgreSQL connection URL: {e}"),
                    io::Error::new(io::ErrorKind::InvalidInput, e),
                )
            })?,
            None => Config::new(),
        };
        apply_env(lock, &mut config, |var| std::env::var(var).ok())?;
        if config.get_hosts().is_empty() {
            // libpq's default: the local socket folder, else TCP to localhost.
            let socket_dir = ["/var/run/postgresql", "/run/postgresql", "/tmp"]
                .into_iter()
                .find(|dir| {
                    Path::new(dir).join(".s.PGSQL.5432").exists()
                        || Path::new(dir)
                            .join(format!(
                                ".s.PGSQL.{}",
                                config.get_ports().first().copied().unwrap_or(5432)
                            ))
                            .exists()
                });
            match socket_dir {
                Some(dir) => config.host_path(dir),
                None => config.host("localhost"),
            };
        }
        config
            .application_name(crate::holder::idle_application_name(
                crate::holder::app_base(),
            ))
            .options(timeouts.startup_options())
            .connect_timeout(timeouts.connect)
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(1))
            .keepalives_interval(Duration::from_secs(1))
            .keepalives_retries(timeouts.user_timeout().as_secs().max(1) as u32)
            .tcp_user_timeout(timeouts.user_timeout());
        let describe = describe(&config);
        Ok(Target { config, describe })
    }

    /// Opens a new connection with its watchdog.
    pub(crate) fn connect(&self, lock: &str) -> SimpleLockResult<Conn> {
        let rt = runtime(lock)?;
        let tls = tls_connector();
        let config = self.config.clone();
        let (client, connection) = rt
            .block_on(async move { config.connect(tls).await })
            .map_err(|e| connect_error(lock, &self.describe, e))?;
        let state = Arc::new(ConnState::default());
        let watched = Arc::clone(&state);
        rt.spawn(async move {
            let end = connection.await;
            watched.ended(match end {
                Ok(()) => "the server closed the connection".to_owned(),
                Err(e) => connection_end_reason(&e),
            });
        });
        Ok(Conn { client, state })
    }
}

/// Why a connection ended, in words, with the server's message when it sent one.
fn connection_end_reason(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!(
            "the server ended the session: {} ({})",
            db.message(),
            db.code().code()
        ),
        None => format!("the connection broke: {}", crate::error::chain(e)),
    }
}

/// Applies the `PG*` variables to what `config` leaves unset, as libpq does.
fn apply_env(
    lock: &str,
    config: &mut Config,
    var: impl Fn(&str) -> Option<String>,
) -> SimpleLockResult<()> {
    let bad = |name: &str, value: &str, why: &str| {
        SimpleLockError::invalid_name(lock, format!("invalid {name}={value:?}: {why}"))
    };
    if config.get_hosts().is_empty()
        && let Some(hosts) = var("PGHOST").filter(|h| !h.is_empty())
    {
        for host in hosts.split(',') {
            if host.starts_with('/') {
                config.host_path(host);
            } else {
                config.host(host);
            }
        }
    }
    if config.get_ports().is_empty()
        && let Some(port) = var("PGPORT").filter(|p| !p.is_empty())
    {
        let port = port
            .parse::<u16>()
            .map_err(|_| bad("PGPORT", &port, "not a port number"))?;
        config.port(port);
    }
    if config.get_user().is_none()
        && let Some(user) = var("PGUSER").filter(|u| !u.is_empty())
    {
        config.user(user);
    }
    if config.get_password().is_none()
        && let Some(password) = var("PGPASSWORD")
    {
        config.password(password);
    }
    if config.get_dbname().is_none()
        && let Some(db) = var("PGDATABASE").filter(|d| !d.is_empty())
    {
        config.dbname(db);
    }
    if let Some(mode) = var("PGSSLMODE").filter(|m| !m.is_empty()) {
        // Only where the URL did not say: tokio-postgres's default is `prefer`, as libpq's.
        if config.get_ssl_mode() == SslMode::Prefer {
            config.ssl_mode(match mode.as_str() {
                "disable" => SslMode::Disable,
                "allow" | "prefer" => SslMode::Prefer,
                "require" => SslMode::Require,
                _ => {
                    return Err(bad(
                        "PGSSLMODE",
                        &mode,
                        "supported are disable, allow, prefer and require (certificates are not verified)",
                    ));
                }
            });
        }
    }
    if config.get_connect_timeout().is_none()
        && let Some(secs) = var("PGCONNECT_TIMEOUT").filter(|s| !s.is_empty())
    {
        let secs = secs
            .parse::<u64>()
            .map_err(|_| bad("PGCONNECT_TIMEOUT", &secs, "not a number of seconds"))?;
        config.connect_timeout(Duration::from_secs(secs));
    }
    Ok(())
}

/// Whether any of the `PG*` variables that say where the server is are set.
pub(crate) fn env_names_a_server() -> bool {
    ENV_VARS
        .iter()
        .any(|var| std::env::var_os(var).is_some_and(|v| !v.is_empty()))
}

/// `host:port/database` (or `socket-folder/database`), never the password.
fn describe(config: &Config) -> String {
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(host)) => host.clone(),
        Some(Host::Unix(path)) => path.display().to_string(),
        None => "localhost".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().map_or(String::new(), |u| format!("{u}@"));
    // Without a database name the server takes the user's name.
    let db = config.get_dbname().unwrap_or("");
    format!("{user}{host}:{port}/{db}")
}

/// One connection: the client half and the watchdog's state.
pub(crate) struct Conn {
    pub(crate) client: Client,
    pub(crate) state: Arc<ConnState>,
}

impl fmt::Debug for Conn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conn")
            .field("ended", &self.state.end_reason())
            .finish()
    }
}

impl Conn {
    /// Runs `fut` (a call on this connection) to its end on the calling thread.
    pub(crate) fn run<F: Future>(&self, lock: &str, fut: F) -> SimpleLockResult<F::Output> {
        Ok(runtime(lock)?.block_on(fut))
    }

    /// Whether the connection is still usable.
    pub(crate) fn alive(&self) -> bool {
        self.state.end_reason().is_none() && !self.client.is_closed()
    }
}

/// What the watchdog knows about one connection, and the waiters for its end.
#[derive(Debug, Default)]
pub(crate) struct ConnState {
    ended: Mutex<Option<String>>,
    changed: Condvar,
}

impl ConnState {
    fn ended(&self, reason: String) {
        let mut ended = self.ended.lock().unwrap_or_else(|e| e.into_inner());
        ended.get_or_insert(reason);
        self.changed.notify_all();
    }

    /// Why the connection ended, if it did.
    pub(crate) fn end_reason(&self) -> Option<String> {
        self.ended.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Waits until the connection ends or `stop()` says to stop, at most `timeout`; returns the
    /// reason if it ended.
    pub(crate) fn wait_end(
        &self,
        timeout: Option<Duration>,
        stop: impl Fn() -> bool,
    ) -> Option<String> {
        let deadline = timeout.and_then(|t| std::time::Instant::now().checked_add(t));
        let mut ended = self.ended.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if ended.is_some() || stop() {
                return ended.clone();
            }
            let wait = match deadline {
                Some(d) => {
                    let left = d.saturating_duration_since(std::time::Instant::now());
                    if left.is_zero() {
                        return None;
                    }
                    left
                }
                // Wake now and then to look at `stop`, which is set without this lock.
                None => Duration::from_millis(100),
            };
            ended = self
                .changed
                .wait_timeout(ended, wait.min(Duration::from_millis(100)))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// The process's runtime, created on first use, refusing to be used from inside an async
/// context (where blocking would stall it) or from a forked child (where it has no thread).
fn runtime(lock: &str) -> SimpleLockResult<&'static Runtime> {
    static RUNTIME: OnceLock<(Runtime, u32)> = OnceLock::new();
    if tokio::runtime::Handle::try_current().is_ok() {
        return Err(SimpleLockError::unknown(
            lock,
            "PostgresLock blocks, and was called from inside an async runtime: call it from \
             tokio::task::spawn_blocking or a thread of its own",
            None,
        ));
    }
    if let Some((rt, pid)) = RUNTIME.get() {
        if *pid != std::process::id() {
            return Err(forked(lock));
        }
        return Ok(rt);
    }
    let built = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("simplelock-postgres")
        .enable_all()
        .build()
        .map_err(|e| {
            SimpleLockError::unknown(lock, "starting the connection thread", Some(Box::new(e)))
        })?;
    let (rt, _) = RUNTIME.get_or_init(|| (built, std::process::id()));
    Ok(rt)
}

/// The error of a handle used in a forked child.
pub(crate) fn forked(lock: &str) -> SimpleLockError {
    SimpleLockError::unknown(
        lock,
        "this handle was opened by the parent of this forked process; its connection belongs to \
         the parent: open a new PostgresLock in the child",
        None,
    )
}

/// TLS with rustls: `sslmode=require` (and `prefer`) encrypt without verifying the server's
/// certificate, as libpq does for these modes without a root certificate.
fn tls_connector() -> tokio_postgres_rustls::MakeRustlsConnect {
    static CONFIG: OnceLock<rustls::ClientConfig> = OnceLock::new();
    let config = CONFIG.get_or_init(|| {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let algorithms = provider.signature_verification_algorithms;
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(EncryptOnly(algorithms)))
            .with_no_client_auth()
    });
    tokio_postgres_rustls::MakeRustlsConnect::new(config.clone())
}

/// Accepts any server certificate but still checks the handshake signatures: libpq's
/// `sslmode=require` (encryption against eavesdroppers, no protection from an active man in the
/// middle).
#[derive(Debug)]
struct EncryptOnly(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for EncryptOnly {
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
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |var| {
            pairs
                .iter()
                .find(|(k, _)| *k == var)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn env_fills_what_the_url_leaves_out() {
        let mut config = Config::from_str("postgres://alice@db.example:6543").unwrap();
        apply_env(
            "x",
            &mut config,
            env(&[
                ("PGHOST", "other"),
                ("PGDATABASE", "jobs"),
                ("PGUSER", "bob"),
                ("PGSSLMODE", "require"),
            ]),
        )
        .unwrap();
        assert_eq!(describe(&config), "alice@db.example:6543/jobs");
        assert_eq!(config.get_ssl_mode(), SslMode::Require);
    }

    #[test]
    fn bad_env_values_are_named() {
        let mut config = Config::new();
        let err = apply_env("x", &mut config, env(&[("PGPORT", "fivefour")])).unwrap_err();
        assert!(err.to_string().contains("PGPORT"), "{err}");
        let err = apply_env("x", &mut config, env(&[("PGSSLMODE", "verify-full")])).unwrap_err();
        assert!(err.to_string().contains("verify-full"), "{err}");
    }

    #[test]
    fn the_password_never_shows() {
        let target = Target::new(
            "x",
            Some("postgres://u:s3cret@127.0.0.1:1/db"),
            &Timeouts::default(),
        )
        .unwrap();
        assert!(!format!("{target:?}").contains("s3cret"));
        assert_eq!(target.describe, "u@127.0.0.1:1/db");
    }

    #[test]
    fn the_default_bound_is_the_measured_one() {
        let options = Timeouts::default().startup_options();
        assert!(options.contains("tcp_keepalives_count=3"), "{options}");
        assert!(options.contains("tcp_user_timeout=3000"), "{options}");
    }
}
