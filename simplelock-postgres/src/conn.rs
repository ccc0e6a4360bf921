//! Connections: where the server is (URL or `PG*` variables), TLS, the session settings that
//! bound how long a dead peer goes unnoticed, and the watchdog that notices a connection's end
//! between calls.
//!
//! # Who reads the socket
//!
//! During a call, the calling thread itself drives the connection (a small tokio runtime per
//! connection, `block_on`), as the blocking `postgres` crate does: no other thread is woken on
//! the way, which keeps a lock call as fast as the raw advisory-lock call. Between calls nobody
//! reads the socket, so the blocking crate would not notice a connection that died in between
//! (server restart, `pg_terminate_backend`, a cut network) until the next call. Here the socket
//! is opened by us (`connect_raw`) and a watchdog thread per connection `poll`s a duplicate of
//! its descriptor for `POLLRDHUP`/`POLLERR`/`POLLHUP`, without reading (the bytes stay for the
//! next call): a close or reset by the server is known at once, and a silent network after
//! the TCP keepalive / user timeout set on the socket (see [`Timeouts`]). Dropping the
//! connection says goodbye (Terminate), then shuts the socket down, which wakes the watchdog
//! to exit.
//!
//! Addresses: each host of the URL in turn (`host=a,b`), each address of a name in turn;
//! `hostaddr`, `target_session_attrs` and `load_balance_hosts` are not applied.

use std::fmt;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use socket2::{SockRef, TcpKeepalive};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::MakeTlsConnect;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::{AsyncMessage, Client, Config, Notification};

use crate::error::connect_error;
use simplelock_core::{SimpleLockError, SimpleLockResult, Wait};

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
    timeouts: Timeouts,
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
        Ok(Target {
            config,
            describe,
            timeouts: *timeouts,
        })
    }

    /// Opens a new connection with its watchdog: the first host (of the URL's list) that
    /// accepts it.
    pub(crate) fn connect(&self, lock: &str) -> SimpleLockResult<Conn> {
        not_in_async(lock)?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| {
                SimpleLockError::unknown(
                    lock,
                    "starting the connection's runtime",
                    Some(Box::new(e)),
                )
            })?;
        let config = &self.config;
        let hosts = config.get_hosts();
        let ports = config.get_ports();
        let timeout = config.get_connect_timeout().copied();
        let mut last = None;
        for (i, host) in hosts.iter().enumerate() {
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            let attempt = rt.block_on(async {
                let (stream, name) = open_socket(host, port, timeout, &self.timeouts).await?;
                let watch = stream.duplicate().map_err(Failure::Io)?;
                let mut make = tls_connector();
                let tls = <_ as MakeTlsConnect<Stream>>::make_tls_connect(&mut make, &name)
                    .map_err(|e| Failure::Io(io::Error::other(e)))?;
                let (client, connection) = config
                    .connect_raw(stream.clone(), tls)
                    .await
                    .map_err(Failure::Pg)?;
                let driver: Driver = Box::new(connection);
                Ok::<_, Failure>((client, driver, watch, stream))
            });
            match attempt {
                Ok((client, connection, watch, stream)) => {
                    let state = Arc::new(ConnState::default());
                    let watch = Arc::new(watch);
                    start_watchdog(Arc::clone(&watch), Arc::clone(&state)).map_err(|e| {
                        SimpleLockError::unknown(
                            lock,
                            "starting the thread that watches the connection",
                            Some(Box::new(e)),
                        )
                    })?;
                    return Ok(Conn {
                        rt: Some(rt),
                        client: Some(Arc::new(client)),
                        connection: Mutex::new(Some(connection)),
                        state,
                        watch,
                        stream,
                        bound: Mutex::new(None),
                        server: Server {
                            host: host.clone(),
                            port,
                            connect_timeout: timeout,
                            timeouts: self.timeouts,
                        },
                        barrier: Mutex::new(None),
                    });
                }
                Err(e) => last = Some(e),
            }
        }
        Err(match last {
            Some(Failure::Pg(e)) => connect_error(lock, &self.describe, e),
            Some(Failure::Io(e)) => crate::error::socket_error(lock, &self.describe, e),
            None => SimpleLockError::invalid_name(lock, "the connection URL names no host"),
        })
    }
}

/// Where a connection went, for a cancel request on a second connection to the same server.
#[derive(Clone)]
struct Server {
    host: Host,
    port: u16,
    connect_timeout: Option<Duration>,
    timeouts: Timeouts,
}

/// Statements that must be answered (and a cancel request that must have landed) before
/// anything else is sent on a connection: see [`Conn::set_barrier`].
#[cfg_attr(
    not(feature = "tokio"),
    allow(dead_code, reason = "set by the async wait")
)]
pub(crate) type Barrier = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// Why one connection attempt failed.
enum Failure {
    Io(io::Error),
    Pg(tokio_postgres::Error),
}

/// A TCP or Unix socket to the server, opened by us so that the watchdog can watch a duplicate.
///
/// Shared with the [`Conn`] so that it can move the socket from one runtime's reactor to
/// another's ([`Conn::bind_here`]): the connection's own runtime for blocking calls, the
/// caller's for async waits. The mutex is taken by the one thread that drives the connection
/// at a time, uncontended.
#[derive(Clone)]
struct Stream(Arc<Mutex<Sock>>);

/// The socket, registered with one runtime's reactor.
enum Sock {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
    /// Only while moving between reactors, or after a move failed.
    Gone,
}

impl Stream {
    fn new(sock: Sock) -> Stream {
        Stream(Arc::new(Mutex::new(sock)))
    }

    fn sock(&self) -> std::sync::MutexGuard<'_, Sock> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A second descriptor of the same socket, for the watchdog.
    fn duplicate(&self) -> io::Result<OwnedFd> {
        match &*self.sock() {
            Sock::Tcp(s) => s.as_fd().try_clone_to_owned(),
            Sock::Unix(s) => s.as_fd().try_clone_to_owned(),
            Sock::Gone => Err(gone()),
        }
    }

    /// Shuts down the sending half of the socket (a synchronous system call).
    fn shutdown_write(&self) {
        let _ = match &*self.sock() {
            Sock::Tcp(s) => SockRef::from(s).shutdown(std::net::Shutdown::Write),
            Sock::Unix(s) => SockRef::from(s).shutdown(std::net::Shutdown::Write),
            Sock::Gone => Ok(()),
        };
    }

    /// Registers the socket with the reactor of the runtime entered on this thread (and takes
    /// it off the one it was registered with). The bytes buffered in the kernel stay.
    fn rebind(&self) -> io::Result<()> {
        let mut sock = self.sock();
        *sock = match std::mem::replace(&mut *sock, Sock::Gone) {
            Sock::Tcp(s) => Sock::Tcp(tokio::net::TcpStream::from_std(s.into_std()?)?),
            Sock::Unix(s) => Sock::Unix(tokio::net::UnixStream::from_std(s.into_std()?)?),
            Sock::Gone => return Err(gone()),
        };
        Ok(())
    }
}

fn gone() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        "the connection's socket could not be moved between runtimes",
    )
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut *self.sock() {
            Sock::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Sock::Unix(s) => Pin::new(s).poll_read(cx, buf),
            Sock::Gone => Poll::Ready(Err(gone())),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut *self.sock() {
            Sock::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Sock::Unix(s) => Pin::new(s).poll_write(cx, buf),
            Sock::Gone => Poll::Ready(Err(gone())),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut *self.sock() {
            Sock::Tcp(s) => Pin::new(s).poll_flush(cx),
            Sock::Unix(s) => Pin::new(s).poll_flush(cx),
            Sock::Gone => Poll::Ready(Err(gone())),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut *self.sock() {
            Sock::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Sock::Unix(s) => Pin::new(s).poll_shutdown(cx),
            Sock::Gone => Poll::Ready(Err(gone())),
        }
    }
}

/// Connects to `host:port` (each address of a name in turn), with the keepalive and user
/// timeout of [`Timeouts`] on TCP; returns the socket and the name to give TLS.
async fn open_socket(
    host: &Host,
    port: u16,
    timeout: Option<Duration>,
    timeouts: &Timeouts,
) -> Result<(Stream, String), Failure> {
    match host {
        Host::Unix(dir) => {
            let path = dir.join(format!(".s.PGSQL.{port}"));
            let stream = within(timeout, tokio::net::UnixStream::connect(&path))
                .await
                .map(|s| Stream::new(Sock::Unix(s)))
                .map_err(Failure::Io)?;
            Ok((stream, "localhost".to_owned()))
        }
        Host::Tcp(name) => {
            let addrs: Vec<_> = tokio::net::lookup_host((name.as_str(), port))
                .await
                .map_err(Failure::Io)?
                .collect();
            let mut last =
                io::Error::new(io::ErrorKind::NotFound, format!("{name} has no address"));
            for addr in addrs {
                match within(timeout, tokio::net::TcpStream::connect(addr)).await {
                    Ok(tcp) => {
                        tcp.set_nodelay(true).map_err(Failure::Io)?;
                        let sock = SockRef::from(&tcp);
                        sock.set_tcp_keepalive(
                            &TcpKeepalive::new()
                                .with_time(Duration::from_secs(1))
                                .with_interval(Duration::from_secs(1))
                                .with_retries(timeouts.user_timeout().as_secs().max(1) as u32),
                        )
                        .map_err(Failure::Io)?;
                        sock.set_tcp_user_timeout(Some(timeouts.user_timeout()))
                            .map_err(Failure::Io)?;
                        return Ok((Stream::new(Sock::Tcp(tcp)), name.clone()));
                    }
                    Err(e) => last = e,
                }
            }
            Err(Failure::Io(last))
        }
    }
}

/// `fut`, failing with `TimedOut` after `timeout`.
async fn within<T>(
    timeout: Option<Duration>,
    fut: impl Future<Output = io::Result<T>>,
) -> io::Result<T> {
    match timeout {
        Some(t) => tokio::time::timeout(t, fut).await.unwrap_or_else(|_| {
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "connecting timed out",
            ))
        }),
        None => fut.await,
    }
}

/// Watches a duplicate of the connection's socket without reading from it: the peer closing or
/// resetting it, or the keepalive / user timeout giving up, wakes `poll`, and the connection is
/// marked ended. A shutdown by [`Conn`]'s drop wakes it too, and then it only exits.
fn start_watchdog(fd: Arc<OwnedFd>, state: Arc<ConnState>) -> io::Result<()> {
    std::thread::Builder::new()
        .name("simplelock-pg-watch".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            loop {
                let mut fds = [PollFd::new(
                    fd.as_fd(),
                    PollFlags::from_bits_retain(nix::libc::POLLRDHUP),
                )];
                match poll(&mut fds, PollTimeout::NONE) {
                    Err(nix::errno::Errno::EINTR) => continue,
                    _ => break,
                }
            }
            if state.closing.load(Ordering::SeqCst) {
                return;
            }
            let reason = match SockRef::from(&*fd).take_error() {
                Ok(Some(e)) => format!("the connection broke: {e}"),
                _ => "the server closed the connection".to_owned(),
            };
            state.ended(reason);
        })
        .map(drop)
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

/// The half of a connection that reads and writes the socket: driven by the calling thread
/// during each call, idle in between (the watchdog watches the socket then).
type Driver = Box<dyn Drive>;

/// A tokio-postgres connection, whatever its TLS stream: polled for its messages, so that the
/// notifications of an async wait are seen (its `Future` impl drops them).
trait Drive: Send {
    fn poll_message(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<AsyncMessage, tokio_postgres::Error>>>;
}

impl<S, T> Drive for tokio_postgres::Connection<S, T>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
    T: AsyncRead + AsyncWrite + Unpin + Send,
{
    fn poll_message(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<AsyncMessage, tokio_postgres::Error>>> {
        tokio_postgres::Connection::poll_message(self, cx)
    }
}

/// One connection: its runtime (driven by the calling thread), the client half, the connection
/// half, the watchdog's state and the duplicate descriptor it watches.
pub(crate) struct Conn {
    /// `None` only in drop.
    rt: Option<tokio::runtime::Runtime>,
    /// Shared with the requests of an async wait, which outlive a borrow of the handle.
    client: Option<Arc<Client>>,
    connection: Mutex<Option<Driver>>,
    pub(crate) state: Arc<ConnState>,
    watch: Arc<OwnedFd>,
    /// The socket, to move it between reactors.
    stream: Stream,
    /// Where the connection went, for [`Conn::cancel_request`].
    server: Server,
    /// What must be answered before the next request goes out ([`Conn::set_barrier`]).
    barrier: Mutex<Option<Barrier>>,
    /// The runtime whose reactor the socket is registered with, if not the connection's own
    /// (an async call's): a blocking call moves it back first, and an async call on the same
    /// runtime leaves it where it is. Runtime ids come from a process-wide 64-bit counter
    /// (tokio's `OwnedTasks` ids), never reused while the process runs, so an id equal to the current
    /// runtime's names that very runtime, whose reactor is alive since it is running.
    bound: Mutex<Option<tokio::runtime::Id>>,
}

impl fmt::Debug for Conn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conn")
            .field("ended", &self.state.end_reason())
            .finish()
    }
}

impl Conn {
    /// The client half.
    pub(crate) fn client(&self) -> &Client {
        self.client.as_ref().expect("taken only by drop")
    }

    /// The client half, for a request that outlives a borrow of the connection.
    #[cfg_attr(
        not(feature = "tokio"),
        allow(dead_code, reason = "used by the async wait")
    )]
    pub(crate) fn shared_client(&self) -> Arc<Client> {
        Arc::clone(self.client.as_ref().expect("taken only by drop"))
    }

    fn rt(&self) -> &tokio::runtime::Runtime {
        self.rt.as_ref().expect("taken only by drop")
    }

    /// Runs `fut` (a call on this connection) to its end on the calling thread, driving the
    /// connection meanwhile: no other thread is woken on the way. A [barrier](Conn::set_barrier)
    /// is passed first; `fut` is first polled (which sends its requests) after it.
    pub(crate) fn run<F: Future>(&self, lock: &str, fut: F) -> SimpleLockResult<F::Output> {
        not_in_async(lock)?;
        let mut bound = self.bound();
        if bound.is_some() {
            let _entered = self.rt().enter();
            self.rebind(lock)?;
            *bound = None;
        }
        drop(bound);
        let mut fut = std::pin::pin!(fut);
        let mut barrier = self
            .barrier
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let out = self.rt().block_on(std::future::poll_fn(|cx| {
            // Notifications (`LISTEN`, used by the counting semaphores) are kept in `state`
            // before `fut` runs, in the same poll: a future that waits for one sees it.
            self.drive(cx, |n| self.state.notified(n.payload()));
            if let Some(wait) = barrier.as_mut() {
                match wait.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Err(reason)) => return Poll::Ready(Err(reason)),
                    Poll::Ready(Ok(())) => barrier = None,
                }
            }
            fut.as_mut().poll(cx).map(Ok)
        }));
        out.map_err(|reason| self.barrier_failed(lock, reason))
    }

    /// Holds back every later request of this connection until `barrier` completes: what an
    /// async wait dropped with a statement waiting in the server leaves behind (the statements
    /// queued behind it, and a cancel request that must have landed before anything else is
    /// sent; see `async_lock`, "Cancel-safety"). Blocking calls pass it in [`Conn::run`],
    /// async ones with [`Conn::poll_barrier`].
    #[cfg_attr(
        not(feature = "tokio"),
        allow(dead_code, reason = "used by the async wait")
    )]
    pub(crate) fn set_barrier(&self, barrier: Barrier) {
        *self.barrier.lock().unwrap_or_else(|e| e.into_inner()) = Some(barrier);
    }

    /// Drives the connection and polls its barrier, if any: `Ready(Ok)` once nothing holds
    /// requests back.
    ///
    /// # Errors
    /// The barrier could not make sure its cancel request landed: the connection is given up
    /// (closing it ends the session, which releases what it held).
    #[cfg_attr(
        not(feature = "tokio"),
        allow(dead_code, reason = "used by the async wait")
    )]
    pub(crate) fn poll_barrier(
        &self,
        lock: &str,
        cx: &mut Context<'_>,
    ) -> Poll<SimpleLockResult<()>> {
        let mut slot = self.barrier.lock().unwrap_or_else(|e| e.into_inner());
        let Some(barrier) = slot.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        self.drive(cx, |_| {});
        let step = barrier.as_mut().poll(cx);
        if step.is_ready() {
            *slot = None;
        }
        drop(slot);
        step.map(|done| done.map_err(|reason| self.barrier_failed(lock, reason)))
    }

    /// A barrier that failed: the connection is of no more use.
    fn barrier_failed(&self, lock: &str, reason: String) -> SimpleLockError {
        self.state.ended(reason.clone());
        SimpleLockError::unknown(lock, reason, None).with_kind(io::ErrorKind::NotConnected)
    }

    /// A cancel request for what this connection's session is running, on a second connection
    /// to the same server with the same TLS mode; the future completes once the server has
    /// acted on it (see [`Cancel`]).
    #[cfg_attr(
        not(feature = "tokio"),
        allow(dead_code, reason = "used by the async wait")
    )]
    pub(crate) fn cancel_request(&self) -> Cancel {
        Cancel {
            token: self.client().cancel_token(),
            server: self.server.clone(),
            step: CancelStep::Start,
        }
    }

    /// Moves the socket to the reactor of the runtime entered on this thread.
    fn rebind(&self, lock: &str) -> SimpleLockResult<()> {
        self.stream.rebind().map_err(|e| {
            self.state.ended(format!("the connection broke: {e}"));
            SimpleLockError::unknown(
                lock,
                "moving the connection between runtimes",
                Some(Box::new(e)),
            )
        })
    }

    /// Registers the socket with the reactor of the tokio runtime this thread is in, for an
    /// async call driven by [`drive`](Conn::drive) on that runtime.
    ///
    /// # Errors
    /// Outside a tokio runtime.
    #[cfg_attr(
        not(feature = "tokio"),
        allow(dead_code, reason = "used by the async wait")
    )]
    pub(crate) fn bind_here(&self, lock: &str) -> SimpleLockResult<()> {
        let Ok(here) = tokio::runtime::Handle::try_current() else {
            return Err(SimpleLockError::unknown(
                lock,
                "PostgresLock's async wait must be polled inside a tokio runtime (with IO and \
                 time enabled)",
                None,
            )
            .with_kind(std::io::ErrorKind::Unsupported));
        };
        let mut bound = self.bound();
        // Already there (the previous async call ran on this runtime): two `epoll_ctl` calls
        // spared, which the async release would otherwise pay on the handoff's path.
        if *bound != Some(here.id()) {
            self.rebind(lock)?;
            *bound = Some(here.id());
        }
        Ok(())
    }

    fn bound(&self) -> std::sync::MutexGuard<'_, Option<tokio::runtime::Id>> {
        self.bound.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Drives the connection as far as it goes without waiting: writes what the requests
    /// queued, reads what the server sent, and gives each notification to `notified`. Marks the
    /// connection ended if it ended. With `cx`'s waker registered for the socket.
    pub(crate) fn drive(&self, cx: &mut Context<'_>, mut notified: impl FnMut(&Notification)) {
        let mut connection = self.connection.lock().unwrap_or_else(|e| e.into_inner());
        let Some(driver) = connection.as_mut() else {
            return;
        };
        loop {
            match driver.poll_message(cx) {
                Poll::Pending => return,
                Poll::Ready(Some(Ok(AsyncMessage::Notification(n)))) => notified(&n),
                Poll::Ready(Some(Ok(_))) => {}
                Poll::Ready(end) => {
                    self.state.ended(match end {
                        Some(Err(e)) => connection_end_reason(&e),
                        _ => "the server closed the connection".to_owned(),
                    });
                    // The client's requests now fail with that error.
                    *connection = None;
                    return;
                }
            }
        }
    }

    /// Whether the connection is still usable.
    pub(crate) fn alive(&self) -> bool {
        self.state.end_reason().is_none() && !self.client().is_closed()
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.state.closing.store(true, Ordering::SeqCst);
        drop(
            self.barrier
                .get_mut()
                .unwrap_or_else(|e| e.into_inner())
                .take(),
        );
        // Say goodbye (Terminate) if the connection still works, within a moment.
        drop(self.client.take());
        let driver = self
            .connection
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let rt = self.rt.take().expect("taken only here");
        if tokio::runtime::Handle::try_current().is_err() {
            if let Some(mut driver) = driver {
                if self.bound().is_some() {
                    let _entered = rt.enter();
                    let _ = self.stream.rebind();
                }
                let _ = rt.block_on(async {
                    let flushed = std::future::poll_fn(|cx| {
                        loop {
                            match driver.poll_message(cx) {
                                Poll::Ready(Some(Ok(_))) => {}
                                Poll::Ready(_) => return Poll::Ready(()),
                                Poll::Pending => return Poll::Pending,
                            }
                        }
                    });
                    tokio::time::timeout(Duration::from_secs(1), flushed).await
                });
            }
        } else {
            // Dropped inside an async runtime, where neither waiting for the goodbye nor
            // dropping a runtime the usual way is allowed: the closed socket tells the server.
            drop(driver);
            rt.shutdown_background();
        }
        // Wake the watchdog, which then exits and closes its descriptor.
        let _ = SockRef::from(&*self.watch).shutdown(std::net::Shutdown::Both);
    }
}

/// A cancel request for a connection's session ([`Conn::cancel_request`]), as a future that
/// completes once the server has acted on it: PostgreSQL handles a cancel request in a child of
/// the postmaster, which signals the session's process and then exits, closing the cancel
/// connection, so its end of file says the signal was sent (`async_lock`, "Cancel-safety",
/// argues why that matters).
///
/// It may be polled on one runtime, dropped from its task there, and polled again later on
/// another (an async call cut short, then a blocking call on the connection's own runtime):
/// a socket or timer registered with a runtime that nobody drives would never wake it. So each
/// step remembers the runtime it runs on, and on another runtime: a connection attempt starts
/// over (nothing was sent); a request perhaps sent is not sent again — its socket moves to
/// this runtime's reactor, its sending half is shut down (so that a server still waiting for
/// the request's last bytes sees the end and closes), and the end of file is awaited here.
///
/// Completes with `Ok` when the server closed the cancel connection (or reset it, or it broke:
/// the request then either landed or never will), and when it could not connect at all
/// (nothing was sent); with `Err` when the socket could not be moved between runtimes, so that
/// whether the request landed cannot be told. Waiting for the end has no timer of its own: the
/// server closes the connection right after reading the request (or after
/// `authentication_timeout` without one), and the TCP keepalive and user timeout of
/// [`Timeouts`] end it if the server goes silent.
pub(crate) struct Cancel {
    token: tokio_postgres::CancelToken,
    server: Server,
    step: CancelStep,
}

type Boxed<T> = Pin<Box<dyn Future<Output = T> + Send>>;

enum CancelStep {
    Start,
    Connecting(tokio::runtime::Id, Boxed<Result<(Stream, String), Failure>>),
    Sending(
        tokio::runtime::Id,
        Stream,
        Boxed<Result<(), tokio_postgres::Error>>,
    ),
    Draining(tokio::runtime::Id, Stream),
}

impl Future for Cancel {
    type Output = Result<(), String>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Ok(here) = tokio::runtime::Handle::try_current().map(|h| h.id()) else {
            return Poll::Ready(Err("a cancel request polled outside a tokio runtime".into()));
        };
        let this = &mut *self;
        loop {
            this.step = match std::mem::replace(&mut this.step, CancelStep::Start) {
                CancelStep::Start => {
                    let server = this.server.clone();
                    let limit = server.connect_timeout.unwrap_or(Duration::from_secs(10));
                    CancelStep::Connecting(
                        here,
                        Box::pin(async move {
                            open_socket(&server.host, server.port, Some(limit), &server.timeouts)
                                .await
                        }),
                    )
                }
                // Not connected yet: nothing was sent; start over here.
                CancelStep::Connecting(on, _) if on != here => CancelStep::Start,
                CancelStep::Connecting(on, mut connecting) => match connecting.as_mut().poll(cx) {
                    Poll::Pending => {
                        this.step = CancelStep::Connecting(on, connecting);
                        return Poll::Pending;
                    }
                    // Could not connect: nothing was sent.
                    Poll::Ready(Err(_)) => return Poll::Ready(Ok(())),
                    Poll::Ready(Ok((stream, name))) => {
                        let mut make = tls_connector();
                        match <_ as MakeTlsConnect<Stream>>::make_tls_connect(&mut make, &name) {
                            Ok(tls) => {
                                let token = this.token.clone();
                                let raw = stream.clone();
                                CancelStep::Sending(
                                    on,
                                    stream,
                                    Box::pin(async move { token.cancel_query_raw(raw, tls).await }),
                                )
                            }
                            // Nothing sent; the connection closes when dropped.
                            Err(_) => return Poll::Ready(Ok(())),
                        }
                    }
                },
                CancelStep::Sending(on, stream, mut sending) => {
                    let done = if on == here {
                        match sending.as_mut().poll(cx) {
                            Poll::Pending => {
                                this.step = CancelStep::Sending(on, stream, sending);
                                return Poll::Pending;
                            }
                            Poll::Ready(sent) => sent.is_ok(),
                        }
                    } else {
                        false
                    };
                    drop(sending);
                    if !done {
                        // Perhaps sent, perhaps not: end our half, so that the server closes
                        // either way, and wait for it.
                        stream.shutdown_write();
                    }
                    CancelStep::Draining(on, stream)
                }
                CancelStep::Draining(on, stream) => {
                    if on != here
                        && let Err(e) = stream.rebind()
                    {
                        return Poll::Ready(Err(format!(
                            "a cancel request's connection could not be moved between runtimes, \
                             so whether it landed cannot be told: {e}"
                        )));
                    }
                    let mut rest = stream;
                    let mut buf = [0u8; 512];
                    loop {
                        let mut read = ReadBuf::new(&mut buf);
                        match Pin::new(&mut rest).poll_read(cx, &mut read) {
                            Poll::Ready(Ok(())) if !read.filled().is_empty() => {}
                            // The end (or a reset, or a broken connection).
                            Poll::Ready(_) => return Poll::Ready(Ok(())),
                            Poll::Pending => {
                                this.step = CancelStep::Draining(here, rest);
                                return Poll::Pending;
                            }
                        }
                    }
                }
            };
        }
    }
}

/// What the watchdog knows about one connection, and the waiters for its end.
#[derive(Debug, Default)]
pub(crate) struct ConnState {
    ended: Mutex<Option<String>>,
    changed: Condvar,
    /// Set by [`Conn`]'s drop: the watchdog's wake-up is ours, not a loss.
    closing: AtomicBool,
    /// The payloads of the notifications received and not taken yet (see [`Conn::run`]).
    notifications: Mutex<Vec<String>>,
}

impl ConnState {
    fn ended(&self, reason: String) {
        let mut ended = self.ended.lock().unwrap_or_else(|e| e.into_inner());
        ended.get_or_insert(reason);
        self.changed.notify_all();
    }

    fn notified(&self, payload: &str) {
        let mut notes = self.notifications.lock().unwrap_or_else(|e| e.into_inner());
        // A handle that never takes them (nothing listens) gets none; a bound all the same.
        if notes.len() < 1024 {
            notes.push(payload.to_owned());
        }
    }

    /// The payloads of the notifications received since the last call, oldest first.
    pub(crate) fn take_notifications(&self) -> Vec<String> {
        std::mem::take(&mut *self.notifications.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Whether a notification was received and not taken yet.
    pub(crate) fn has_notifications(&self) -> bool {
        !self
            .notifications
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
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
        // The deadline arithmetic is the core's: `None` (or a timeout past the clock's end)
        // waits without end.
        let wait = timeout.map_or(Wait::Forever, Wait::For).start();
        let mut ended = self.ended.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if ended.is_some() || stop() {
                return ended.clone();
            }
            // Wake now and then to look at `stop`, which is set without this lock; `None` once
            // the time is up.
            let nap = wait.sleep_slice(Duration::from_millis(100))?;
            ended = self
                .changed
                .wait_timeout(ended, nap)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// Polls `request` once, which queues it on its connection, and drops it: the request runs
/// on the server, its answer is dropped (read, and thrown away, by the connection's next
/// drive).
pub(crate) fn send_now(request: impl Future) {
    let mut cx = Context::from_waker(std::task::Waker::noop());
    let _ = std::pin::pin!(request).poll(&mut cx);
}

/// Writes what is queued on `conn` without waiting; `false` if the connection is found broken
/// (dropping it then releases what its session held). What the socket cannot take at once
/// goes out with the connection's next call.
pub(crate) fn flush_now(conn: &Conn) -> bool {
    let mut cx = Context::from_waker(std::task::Waker::noop());
    conn.drive(&mut cx, |_| {});
    conn.alive()
}

/// Blocking inside an async runtime would stall it (and tokio refuses with a panic): an error
/// instead.
fn not_in_async(lock: &str) -> SimpleLockResult<()> {
    if tokio::runtime::Handle::try_current().is_ok() {
        return Err(SimpleLockError::unknown(
            lock,
            "PostgresLock blocks, and was called from inside an async runtime: call it from \
             tokio::task::spawn_blocking or a thread of its own",
            None,
        )
        .with_kind(std::io::ErrorKind::Unsupported));
    }
    Ok(())
}

/// The first step of dropping a handle (a lock's or a semaphore's), whose `session` and async
/// request `in_flight` hold its connection. In a forked child, where the connection is the
/// parent's, both are forgotten — neither released nor closed — and `true` is returned; else
/// the request goes first (it holds the client, which must go before the connection closes).
pub(crate) fn dropping_in_fork_child<R, S>(
    owner: u32,
    in_flight: &mut Option<R>,
    session: &mut Option<S>,
) -> bool {
    if std::process::id() != owner {
        std::mem::forget(in_flight.take());
        std::mem::forget(session.take());
        return true;
    }
    drop(in_flight.take());
    false
}

/// The error of a handle used in a forked child.
pub(crate) fn forked(lock: &str) -> SimpleLockError {
    SimpleLockError::unknown(
        lock,
        "this handle was opened by the parent of this forked process; its connection belongs to \
         the parent: open a new PostgresLock in the child",
        None,
    )
    .with_kind(std::io::ErrorKind::Unsupported)
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
