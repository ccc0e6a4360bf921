//! `PostgresLock`: one lock shared by processes on many machines, on PostgreSQL's session-level
//! advisory locks — with a fencing token per acquisition and a signal when the lock is lost.
//!
//! The same cron job, migration runner or deploy on three hosts still runs once at a time:
//!
//! ```no_run
//! use simplelock_core::{ConcreteLock, SimpleLockError};
//! use simplelock_postgres::PostgresLock;
//!
//! let mut lock = PostgresLock::options()
//!     .with_url("postgres://app@db.internal/app?sslmode=require")
//!     .named("nightly-report")?;
//! match lock.try_lock() {
//!     Ok(()) => {
//!         let token = lock.fencing_token().expect("held");
//!         // ... write to storage that rejects writes with a token lower than one it has seen
//!         lock.ensure_held()?; // one round trip: still ours?
//!         lock.try_unlock()?;
//!     }
//!     Err(SimpleLockError::AlreadyLocked { holder, .. }) => println!("busy: {holder:?}"),
//!     Err(other) => return Err(other),
//! }
//! # Ok::<(), SimpleLockError>(())
//! ```
//!
//! With the `postgres` feature of the `simplelock` facade it works with the builder, guards and
//! `lock_until_finished` like every backend, and the `simplelock` command takes it with
//! `-b postgres --url URL`.
//!
//! # How it works
//!
//! - **One connection per handle**, opened when the handle is created, kept while it lives, and
//!   holding at most this handle's lock. PostgreSQL lets one session take a lock it holds again
//!   (it stacks), so two handles sharing a session would both "hold" it; with a session each
//!   they exclude each other like two machines do. A held lock costs one server connection
//!   (`max_connections`), and one lock-table slot (`max_locks_per_transaction`).
//! - **The server waits**: `hang_lock` is `pg_advisory_lock`, woken by the release;
//!   `timed_lock` sets `lock_timeout` (pipelined with the lock call: no extra round trip) and
//!   treats SQLSTATE 55P03 by asking `pg_locks` whether the lock was granted just as the timeout
//!   fired, keeping it if so — a granted lock is never leaked nor dropped. Timeouts have
//!   millisecond resolution (rounded up); past `i32::MAX` ms (24.8 days) a timed wait waits
//!   without end. `try_lock` is `pg_try_advisory_lock`.
//! - **Name → key**: [`key_for_name`], a documented formula other languages reproduce (the
//!   first 8 bytes of SHA-256 of the name); or an integer key of your choosing,
//!   [`PostgresLockOptions::keyed`], to share a lock with code that already uses one.
//! - **Shared (reader) locks**: [`PostgresLockOptions::with_shared`] (`pg_advisory_lock_shared`).
//!   A waiting writer blocks later readers (PostgreSQL queues them), so writers do not starve.
//! - **Who holds it**: [`holder`](ConcreteLock::holder), [`PostgresLock::holders`] and the
//!   `AlreadyLocked`/`TimedOut` errors name the holding client's host, pid, program and since
//!   when, from `pg_locks` joined with `pg_stat_activity`; our connections carry them in
//!   `application_name` (format in the `holder` module's docs: `sl SINCE PID PROGRAM@HOST`).
//!
//! # Counting semaphores
//!
//! [`PostgresPermits`] is a semaphore of N permits on the same server ("at most 2 jobs on the
//! API, across the fleet"): N advisory keys, one taken per holder, a marker key that keeps
//! every live handle on one N, and `LISTEN`/`NOTIFY` to wake waiters. Its handle is a lock that
//! takes one permit; the design and its limits are in the [`permits`] module.
//!
//! # Fencing tokens
//!
//! Every successful acquisition yields [`fencing_token`](PostgresLock::fencing_token), a number
//! strictly larger than that of every earlier acquisition of any lock on the same cluster. A
//! holder that was paused (GC, SIGSTOP, swap) or cut off can wake up after its lock went to
//! someone else; if the storage it writes to remembers the highest token it has seen and
//! rejects lower ones, the stale holder's late write is refused (Kleppmann, "How to do
//! distributed locking", 2016). The `simplelock` command passes it to its command as
//! `SIMPLELOCK_FENCING_TOKEN`.
//!
//! By default the token is `pg_current_xact_id()`, the 64-bit transaction id taken by the
//! acquisition statement itself *after* the lock was granted (no table, no extra round trip).
//! Transaction ids only grow within a cluster, so the token is larger than the token of the
//! previous holder, which was taken while it held the lock. It survives restarts and crash
//! recovery: the acquisition's commit is flushed to the WAL before the token is returned (as
//! long as `synchronous_commit` is not `off` for the session; the default is `on`). A physical
//! standby promoted in a failover continues the counter above every token whose commit reached
//! it — with synchronous replication every token handed out, with asynchronous replication
//! perhaps not the last few, which could then be handed out again. A failover to another
//! cluster (logical replication, a restore from a dump) counts anew, and a read-only standby
//! cannot hand out tokens at all.
//! Cost: one transaction id per acquisition. PostgreSQL must freeze old rows before 2³¹
//! transaction ids pass (`autovacuum_freeze_max_age`, default 200 million): at 100 acquisitions
//! a second that is an anti-wraparound vacuum of each table every ~23 days, which on large,
//! rarely vacuumed tables is real I/O; at one acquisition a minute it is nothing.
//!
//! Where one database object is allowed, [`PostgresLockOptions::with_fencing_tokens`]`(`[`FencingTokens::Sequence`]`)` takes tokens
//! from a sequence instead (`nextval`, created if missing, checked to have `CACHE 1` so its
//! values only grow across sessions): a transaction id is consumed once per 32 values only (a
//! sequence logs one WAL record per 32 values, 32 values ahead, and flushes it before the value
//! is used). Its tokens
//! survive restarts and crash recovery the same way, and a failover follows the same rules as
//! above.
//! The two kinds of tokens are not comparable with each other.
//!
//! Where no storage checks tokens, [`PostgresLockOptions::with_fencing_tokens`]`(`[`FencingTokens::Disabled`]`)` spares both
//! costs: an acquisition is then the bare advisory-lock call (plus `application_name`), with no
//! WAL flush. The README's benchmarks show each variant next to the raw calls.
//!
//! # A lost lock
//!
//! A session-level advisory lock lives as long as the connection that took it. When the
//! connection ends — the server restarts, an administrator runs `pg_terminate_backend`, the
//! network is cut and the keepalives give up — the server releases the lock and another client
//! may take it. Then:
//!
//! - [`PostgresLock::ensure_held`] (one round trip) fails with an error whose source is
//!   [`LockLost`]; call it before each irreversible step;
//! - [`PostgresLock::lost_signal`] returns a [`LostSignal`] that tells without asking (and
//!   without a query that would show in the server's monitoring): a watchdog thread polls the
//!   connection's socket, so a reset or closed connection is known at once, and a silent one
//!   within [`Timeouts::dead_peer`] (5 s by default).
//!   Poll [`LostSignal::is_lost`] or block in [`LostSignal::wait`] on a thread of your own;
//! - `try_unlock` reports it (`UnableToUnlock` with the `LockLost` as source), and the handle
//!   can lock again (on a new connection).
//!
//! And the server notices a vanished client within the same bound, so a lock is not stuck for
//! minutes after a pulled cable: see [`Timeouts`] for the session settings. A holder killed by
//! SIGKILL closes its socket, and the server releases at once; a waiter killed during a wait
//! leaves nothing behind (its wait ends within 1 s, `client_connection_check_interval`).
//!
//! # Poolers
//!
//! Session locks need the same server session from lock to unlock. A pooler in transaction or
//! statement mode (PgBouncer's `pool_mode = transaction`, the usual setting of managed
//! poolers) hands each statement to any server session: locks are taken on one session and
//! "released" on another, or stranded on a pooled session for ever. Connect to the server
//! directly or through a pooler in session mode. When the lock statement runs on another
//! server session than the one the connection started on (the server's process id changed), the
//! lock call fails with an error that names the pooler and releases what it can.
//!
//! # Processes, threads and async code
//!
//! A handle is `Send`; calls block the calling thread. Calling from inside an async runtime is
//! an error (it would stall the runtime): use `spawn_blocking`, or, with the `tokio` feature,
//! the async calls (see "Async waits" below). A forked child must not use its parent's handles (the connection belongs to the parent): they return an error in the child,
//! and dropping them there neither unlocks nor closes the parent's connection. Connections are
//! opened close-on-exec.
//!
//! A thread that holds a lock through one handle and waits for it through another
//! (`hang_lock`) gets `WouldDeadlock`, for handles of this process on the same server address
//! and database; PostgreSQL itself cannot see such a wait across two sessions.
//!
//! # Async waits (feature `tokio`)
//!
//! `PostgresLock` implements the core's `AsyncConcreteLock`: `lock_async().await`,
//! `try_lock_async().await` and timed waits from a tokio runtime (IO and time enabled), with
//! guards. The connection's socket moves to the caller's runtime, and the lock future drives it:
//! no thread, nothing spawned, nothing blocks.
//!
//! - **The server waits**, as for `hang_lock`: `pg_advisory_lock` (with the fencing token),
//!   woken by any release, under a `lock_timeout` of 1 s and sent again when it runs out.
//!   The async handoff is the blocking one plus the task's wake-up.
//! - **Cancel-safe**: if the future is dropped while its statement is in flight, two releases
//!   "if this session holds the lock" are queued right behind it on the same connection, so a
//!   grant to a dropped future lasts one statement on the server; the handle's next call first
//!   cancels the statement still waiting (a cancel request, whose landing it waits for before
//!   sending anything else), and left alone it gives up within its second. The argument is in
//!   the `async_lock` module's docs (its source).
//! - **Release on drop**: dropping an async guard inside a runtime writes the unlock to the
//!   socket at once without waiting for the answer (the server releases one network trip
//!   later); `unlock().await` waits for it and reports errors (a lost lock as for `try_unlock`).
//! - Fencing tokens, [`LostSignal`] and `ensure_held` work as after a blocking acquisition.
//! - Open the handle, and reconnect it after a lost lock, with the blocking calls outside the
//!   runtime (an async call on an ended connection fails with `NotConnected`). A handle may be
//!   dropped inside a runtime: its connection is closed, which releases its lock.
//!
//! # Connecting
//!
//! The server must be PostgreSQL 14 or newer (`pg_current_xact_id()` is 13+,
//! `client_connection_check_interval` 14+).
//!
//! [`PostgresLockOptions::with_url`] takes a libpq-style URL (`postgres://user:password@host:port/db?
//! sslmode=require`) or `key=value` string; what it leaves out comes from the `PG*` variables
//! (`PGHOST`, `PGPORT`, `PGUSER`, `PGPASSWORD`, `PGDATABASE`, `PGSSLMODE`,
//! `PGCONNECT_TIMEOUT`), then libpq's defaults (the local socket, the user's name).
//! [`PostgresLock::named`] uses the variables alone. TLS is rustls: `sslmode=prefer` (the
//! default) and `require` encrypt, without verifying the server's certificate (libpq's meaning
//! of these modes without a root certificate); `verify-ca`/`verify-full` are not supported yet.
//! `~/.pgpass` is not read.
//!
//! Errors say what went wrong and keep the driver's error as `source()`: a server that cannot
//! be reached, a malformed URL (`InvalidName`, never echoing the password), a wrong password or
//! refused login (`PermissionDenied`), a database that does not exist, a server shutting down,
//! a restart in the middle (the lock is lost, see above).
//!
//! # Names
//!
//! The API follows the core's table of names ("One vocabulary for every backend") where it
//! fits a lock that also needs a server: [`PostgresLock::named`] is the lock called `name` on
//! the server the environment names, [`name`](PostgresLock::name) returns `&str`,
//! [`is_shared`](PostgresLock::is_shared) answers a yes/no question, and locking goes through
//! the `ConcreteLock` methods only. Anything more than a name — another server, a shared
//! lock, an integer key, the tokens, the timeouts — goes through [`PostgresLock::options`],
//! whose `with_*` steps end in [`named`](PostgresLockOptions::named) or
//! [`keyed`](PostgresLockOptions::keyed), as `FileLock::options()` ends in `named` or
//! `at_path`. Waits are the server's (`lock_timeout`), so no deadline is kept here except in
//! [`LostSignal::wait`], which uses the core's [`Wait`](simplelock_core::Wait).
//!
//! # Errors
//!
//! Match on the variant or on [`SimpleLockError::kind`], never on the message. The kinds of
//! this backend's `UnknownError`s, most of which have a server error rather than an OS error
//! behind them:
//!
//! | kind | when |
//! |---|---|
//! | `ConnectionAborted` | the lock was lost, or the connection broke during a call (the `LockLost` or the driver's error is the source); also `UnableToUnlock` of a lost lock |
//! | `ConnectionRefused` | the server cannot be reached (refused, or shutting down / starting up); `TimedOut` when it does not answer in time |
//! | `NotFound` | the database, or the token sequence, does not exist |
//! | `ResourceBusy` | the server has no free connection (`max_connections`) |
//! | `OutOfMemory` | the server's lock table is full (`max_locks_per_transaction`) |
//! | `InvalidData` | the token sequence has `CACHE` above 1 |
//! | `Unsupported` | a transaction-mode pooler, a blocking call from inside an async runtime, an async call outside a tokio runtime, a handle used in a forked child |
//! | `NotConnected` | a call on a handle whose connection is gone, outside a blocking lock call |
//! | `Other` | the rest (the driver's error says what) |

#[cfg(feature = "tokio")]
mod async_conn;
#[cfg(feature = "tokio")]
mod async_lock;
mod conn;
mod error;
mod holder;
mod key;
pub mod permits;

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;
use std::time::{Duration, SystemTime};

use simplelock_core::{ConcreteLock, Holder, LockStatus, SimpleLockError, SimpleLockResult};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Row, Statement};

#[cfg(feature = "tokio")]
pub use async_lock::PostgresWait;
pub use conn::Timeouts;
pub use error::LockLost;
pub use holder::RemoteHolder;
pub use key::key_for_name;
#[cfg(feature = "tokio")]
pub use permits::PostgresPermitsWait;
pub use permits::{PostgresPermits, PostgresPermitsOptions};

use conn::{Conn, ConnState, Target};

/// Where fencing tokens come from (see the crate docs, "Fencing tokens").
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum FencingTokens {
    /// `pg_current_xact_id()`: no database object, one transaction id per acquisition.
    #[default]
    TransactionId,
    /// `nextval` of this sequence (a possibly schema-qualified name), created if missing.
    Sequence(String),
    /// No token: [`PostgresLock::fencing_token`] is `None`, and an acquisition costs neither a
    /// transaction id nor a WAL flush.
    Disabled,
}

/// How to open a [`PostgresLock`] beyond a name, from [`PostgresLock::options`]: `with_*`
/// steps — the server, the mode, where fencing tokens come from, the timeouts — then
/// [`named`](PostgresLockOptions::named) or [`keyed`](PostgresLockOptions::keyed).
#[derive(Debug, Clone, Default)]
#[must_use = "the options open nothing until `named` or `keyed` is called"]
pub struct PostgresLockOptions {
    url: Option<String>,
    shared: bool,
    tokens: FencingTokens,
    timeouts: Timeouts,
}

impl PostgresLockOptions {
    /// The server to connect to, a URL or `key=value` string; unset, the `PG*` variables say.
    pub fn with_url(mut self, url: impl Into<String>) -> Self {
        self.url = Some(url.into());
        self
    }

    /// Take the lock shared (reader, `true`) instead of exclusive (the default).
    pub fn with_shared(mut self, shared: bool) -> Self {
        self.shared = shared;
        self
    }

    /// Where fencing tokens come from: transaction ids (the default), a sequence, or none
    /// (see [`FencingTokens`]).
    pub fn with_fencing_tokens(mut self, tokens: FencingTokens) -> Self {
        self.tokens = tokens;
        self
    }

    /// How quickly dead peers are noticed, and connecting's timeout.
    pub fn with_timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// Connects and returns a handle (not holding it) on the lock called `name`, the advisory
    /// lock with the key [`key_for_name`]`(name)`.
    ///
    /// # Errors
    /// `InvalidName` for an empty name or a malformed URL or `PG*` value; `PermissionDenied`
    /// for a refused login; `UnknownError` saying why for a server that cannot be reached, a
    /// missing database, a bad token sequence.
    pub fn named(self, name: &str) -> SimpleLockResult<PostgresLock> {
        self.open(name.to_owned(), key_for_name(name))
    }

    /// Connects and returns a handle (not holding it) on the advisory lock with the integer
    /// `key`, as other programs take it with `pg_advisory_lock(key)`; errors name it `key N`.
    ///
    /// # Errors
    /// As [`named`](PostgresLockOptions::named).
    pub fn keyed(self, key: i64) -> SimpleLockResult<PostgresLock> {
        self.open(format!("key {key}"), key)
    }

    fn open(self, name: String, key: i64) -> SimpleLockResult<PostgresLock> {
        if name.is_empty() {
            return Err(SimpleLockError::invalid_name("", "the name is empty"));
        }
        let sequence = match &self.tokens {
            FencingTokens::TransactionId | FencingTokens::Disabled => None,
            FencingTokens::Sequence(seq) => {
                let plain = |part: &str| {
                    part.chars()
                        .next()
                        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
                        && part
                            .chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                };
                let parts: Vec<&str> = seq.split('.').collect();
                if parts.len() > 2 || !parts.iter().all(|p| plain(p)) {
                    return Err(SimpleLockError::invalid_name(
                        &name,
                        format!(
                            "invalid fencing-token sequence name {seq:?}: use [schema.]name in \
                             lowercase letters, digits and _"
                        ),
                    ));
                }
                Some(seq.clone())
            }
        };
        let target = Target::new(&name, self.url.as_deref(), &self.timeouts)?;
        let mut lock = PostgresLock {
            name,
            key,
            shared: self.shared,
            target,
            sequence,
            tokens: self.tokens != FencingTokens::Disabled,
            conn: None,
            held: None,
            owner: std::process::id(),
            #[cfg(feature = "tokio")]
            in_flight: None,
            #[cfg(feature = "tokio")]
            dropped_wait: None,
        };
        lock.connection()?;
        Ok(lock)
    }
}

/// A lock on a PostgreSQL server: one handle, one connection. See the [crate docs](crate).
pub struct PostgresLock {
    /// How errors name the lock: the name, or `key N`.
    name: String,
    key: i64,
    shared: bool,
    target: Target,
    /// The token sequence's name (checked: `[schema.]name` of lowercase letters, digits and
    /// `_`, so it needs no quoting); `None` for transaction ids.
    sequence: Option<String>,
    /// Whether acquisitions take a fencing token.
    tokens: bool,
    conn: Option<Session>,
    held: Option<Held>,
    /// The process that opened the handle: a forked child must not use it.
    owner: u32,
    /// The request of an async call in flight (see `async_lock`).
    #[cfg(feature = "tokio")]
    in_flight: Option<async_lock::InFlight>,
    /// The answer of an async wait dropped while in flight, until it comes (see `async_lock`,
    /// "Cancel-safety").
    #[cfg(feature = "tokio")]
    dropped_wait: Option<async_lock::DroppedWait>,
}

/// A connection and the statements prepared on it.
struct Session {
    conn: Conn,
    stmts: Statements,
    /// The server process serving this session when it started.
    backend_pid: i32,
    /// The session's `lock_timeout` in ms, as last set (0: none).
    lock_timeout_ms: i64,
}

struct Statements {
    lock: Statement,
    try_lock: Statement,
    token: Statement,
    unlock: Statement,
    set_timeout: Statement,
    mine: Statement,
    holders: Statement,
    /// After a dropped async wait or try whose answer is unknown: release the lock if it was
    /// granted.
    #[cfg_attr(
        not(feature = "tokio"),
        allow(dead_code, reason = "used by the async wait")
    )]
    unlock_if_mine: Statement,
}

/// What the handle knows about its current hold.
struct Held {
    token: u64,
    since: SystemTime,
    released: Arc<AtomicBool>,
}

impl fmt::Debug for PostgresLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresLock")
            .field("name", &self.name)
            .field("key", &self.key)
            .field("shared", &self.shared)
            .field("server", &self.target.describe)
            .field("held", &self.held.as_ref().map(|h| h.token))
            .finish()
    }
}

impl PostgresLock {
    /// Options to open a lock with more than a name: the server, the mode, the tokens, the
    /// timeouts (see [`PostgresLockOptions`]).
    pub fn options() -> PostgresLockOptions {
        PostgresLockOptions::default()
    }

    /// The exclusive lock `name` on the server the `PG*` variables name (the core's
    /// `named(name)`: the lock called `name` in the backend's own place); other servers,
    /// shared locks and integer keys through [`options`](PostgresLock::options).
    ///
    /// # Errors
    /// Those of [`PostgresLockOptions::named`].
    pub fn named(name: &str) -> SimpleLockResult<Self> {
        Self::options().named(name)
    }

    /// The lock's name as errors show it (`key N` for an integer key).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The advisory-lock key.
    pub fn key(&self) -> i64 {
        self.key
    }

    /// Whether this handle takes the lock shared.
    pub fn is_shared(&self) -> bool {
        self.shared
    }

    /// `user@host:port/database` of the server (never the password).
    pub fn server(&self) -> &str {
        &self.target.describe
    }

    /// The server process serving this handle's connection (what `pg_terminate_backend` takes),
    /// while it has a live one.
    pub fn backend_pid(&self) -> Option<i32> {
        self.conn
            .as_ref()
            .filter(|s| s.conn.alive())
            .map(|s| s.backend_pid)
    }

    /// The fencing token of the current acquisition, while this handle holds the lock.
    pub fn fencing_token(&self) -> Option<u64> {
        self.held.as_ref().filter(|_| self.tokens).map(|h| h.token)
    }

    /// When this handle acquired the lock (this machine's clock), while it holds it.
    pub fn held_since(&self) -> Option<SystemTime> {
        self.held.as_ref().map(|h| h.since)
    }

    /// Asks the server whether this handle still holds the lock (one round trip).
    ///
    /// # Errors
    /// `NotHeld` if the handle does not hold it; an error whose source is [`LockLost`] if the
    /// lock was lost (see the crate docs).
    pub fn ensure_held(&self) -> SimpleLockResult<()> {
        self.check_owner()?;
        if self.held.is_none() {
            return Err(SimpleLockError::not_held(&self.name));
        }
        let session = self.session_ref()?;
        if let Some(reason) = session.conn.state.end_reason() {
            return Err(error::lost(&self.name, "checking the lock", reason));
        }
        let (hi, lo) = key::pg_locks_halves(self.key);
        let row = session.conn.run(
            &self.name,
            session
                .conn
                .client()
                .query_one(&session.stmts.mine, &[&hi, &lo]),
        )?;
        match row {
            Ok(row) => {
                let (count, pid): (i64, i32) = (row.get(0), row.get(1));
                if pid != session.backend_pid {
                    return Err(error::lost(
                        &self.name,
                        "checking the lock",
                        pooler(session.backend_pid, pid),
                    ));
                }
                if count >= 1 {
                    Ok(())
                } else {
                    Err(error::lost(
                        &self.name,
                        "checking the lock",
                        "the server no longer lists it as held by this session".to_owned(),
                    ))
                }
            }
            Err(e) => {
                let reason = session
                    .conn
                    .state
                    .end_reason()
                    .unwrap_or_else(|| error::chain(&e));
                Err(error::lost(&self.name, "checking the lock", reason))
            }
        }
    }

    /// A signal that tells, without asking the server, when the current hold is lost.
    ///
    /// # Errors
    /// `NotHeld` if the handle does not hold the lock.
    pub fn lost_signal(&self) -> SimpleLockResult<LostSignal> {
        match (&self.held, &self.conn) {
            (Some(held), Some(session)) => Ok(LostSignal {
                name: self.name.clone(),
                conn: Arc::clone(&session.conn.state),
                released: Arc::clone(&held.released),
            }),
            _ => Err(SimpleLockError::not_held(&self.name)),
        }
    }

    /// Every holder of the lock other than this handle, exclusive ones first.
    ///
    /// # Errors
    /// Connection and query errors.
    pub fn holders(&self) -> SimpleLockResult<Vec<RemoteHolder>> {
        self.check_owner()?;
        let (hi, lo) = key::pg_locks_halves(self.key);
        let rows = match self.conn.as_ref().filter(|s| s.conn.alive()) {
            Some(session) => session
                .conn
                .run(
                    &self.name,
                    session
                        .conn
                        .client()
                        .query(&session.stmts.holders, &[&hi, &lo]),
                )?
                .map_err(|e| error::query_error(&self.name, "looking up the holders", e))?,
            None => {
                // The handle's connection ended: look on a new one, then drop it.
                let conn = self.target.connect(&self.name)?;
                conn.run(
                    &self.name,
                    conn.client().query(holder::HOLDERS, &[&hi, &lo]),
                )?
                .map_err(|e| error::query_error(&self.name, "looking up the holders", e))?
            }
        };
        Ok(rows.iter().map(RemoteHolder::from_row).collect())
    }

    /// The holder to name in an error: the first (exclusive first), if it can be told.
    fn blocking_holder(&self) -> Option<Holder> {
        self.holders()
            .ok()
            .and_then(|h| h.first().map(RemoteHolder::to_holder))
    }

    fn check_owner(&self) -> SimpleLockResult<()> {
        if std::process::id() != self.owner {
            return Err(conn::forked(&self.name));
        }
        Ok(())
    }

    fn session_ref(&self) -> SimpleLockResult<&Session> {
        self.conn.as_ref().ok_or_else(|| {
            SimpleLockError::unknown(&self.name, "no connection", None)
                .with_kind(std::io::ErrorKind::NotConnected)
        })
    }

    /// The handle's connection, opened anew if the last one ended (only while not holding).
    fn connection(&mut self) -> SimpleLockResult<&mut Session> {
        if self.conn.as_ref().is_some_and(|s| !s.conn.alive()) {
            self.conn = None;
        }
        if self.conn.is_none() {
            let conn = self.target.connect(&self.name)?;
            let session = self.prepare(conn)?;
            self.conn = Some(session);
        }
        Ok(self.conn.as_mut().expect("just set"))
    }

    /// Creates the fencing-token sequence `seq` if missing and checks that it hands out values
    /// in order (`CACHE 1`).
    fn check_sequence(&self, conn: &Conn, seq: &str) -> SimpleLockResult<()> {
        let cache = conn.run(&self.name, async {
            conn.client()
                .batch_execute(&format!("CREATE SEQUENCE IF NOT EXISTS {seq}"))
                .await?;
            conn.client()
                .query_one(
                    "SELECT seqcache FROM pg_sequence WHERE seqrelid = $1::text::regclass",
                    &[&seq],
                )
                .await
        })?;
        let cache: i64 = cache
            .map_err(|e| {
                SimpleLockError::unknown(
                    &self.name,
                    format!(
                        "setting up the fencing-token sequence {seq} (it must exist or be \
                         creatable by this user): {}",
                        error::chain(&e)
                    ),
                    Some(Box::new(e)),
                )
            })?
            .get(0);
        if cache != 1 {
            return Err(SimpleLockError::unknown(
                &self.name,
                format!(
                    "the fencing-token sequence {seq} has CACHE {cache}: sessions would hand \
                     out values out of order; ALTER SEQUENCE {seq} CACHE 1"
                ),
                None,
            )
            .with_kind(std::io::ErrorKind::InvalidData));
        }
        Ok(())
    }

    /// Prepares the statements on a new connection (pipelined: about one round trip), and
    /// checks the token sequence.
    fn prepare(&self, conn: Conn) -> SimpleLockResult<Session> {
        let token = match &self.sequence {
            // Any non-NULL value: `try_lock` tells success by it.
            None if !self.tokens => "0::bigint".to_owned(),
            None => "pg_current_xact_id()::text::bigint".to_owned(),
            Some(seq) => format!("nextval('{seq}'::regclass)"),
        };
        if let Some(seq) = &self.sequence {
            self.check_sequence(&conn, seq)?;
        }
        let (lock_fn, try_fn, unlock_fn) = if self.shared {
            (
                "pg_advisory_lock_shared",
                "pg_try_advisory_lock_shared",
                "pg_advisory_unlock_shared",
            )
        } else {
            (
                "pg_advisory_lock",
                "pg_try_advisory_lock",
                "pg_advisory_unlock",
            )
        };
        // The lock function runs in FROM, so the token and the time are taken after the grant.
        let app = holder::SET_APP;
        let sql_lock =
            format!("SELECT pg_backend_pid(), {token}, {app} FROM {lock_fn}($1::bigint)");
        let sql_try = format!(
            "SELECT pg_backend_pid(), CASE WHEN l THEN {token} END, CASE WHEN l THEN {app} END \
             FROM {try_fn}($1::bigint) AS l"
        );
        let sql_token =
            format!("SELECT pg_backend_pid(), {token}, {app} WHERE $1::bigint IS NOT NULL");
        let sql_unlock = format!("SELECT {unlock_fn}($1::bigint)");
        let mode = if self.shared {
            "ShareLock"
        } else {
            "ExclusiveLock"
        };
        let where_mine = format!(
            "FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted \
             AND objsubid = 1 AND mode = '{mode}'"
        );
        let sql_mine = format!(
            "SELECT count(*), pg_backend_pid() {where_mine} \
             AND classid::bigint = $1 AND objid::bigint = $2"
        );
        let sql_unlock_if_mine = format!(
            "SELECT {unlock_fn}($1::bigint) {where_mine} AND classid::bigint = $2 \
             AND objid::bigint = $3"
        );
        let client = conn.client();
        let prepared = conn.run(&self.name, async {
            tokio::try_join!(
                client.prepare(&sql_lock),
                client.prepare(&sql_try),
                client.prepare(&sql_token),
                client.prepare(&sql_unlock),
                client.prepare("SELECT set_config('lock_timeout', $1::text, false)"),
                client.prepare(&sql_mine),
                client.prepare(holder::HOLDERS),
                client.query_one("SELECT pg_backend_pid()", &[]),
                client.prepare(&sql_unlock_if_mine),
            )
        })?;
        let (lock, try_lock, token, unlock, set_timeout, mine, holders, pid, if_mine) = prepared
            .map_err(|e| error::query_error(&self.name, "preparing the lock statements", e))?;
        Ok(Session {
            conn,
            stmts: Statements {
                lock,
                try_lock,
                token,
                unlock,
                set_timeout,
                mine,
                holders,
                unlock_if_mine: if_mine,
            },
            backend_pid: pid.get(0),
            lock_timeout_ms: 0,
        })
    }

    /// Records a grant reported by a lock statement's row `(backend pid, token, _)`.
    fn granted(&mut self, row: &Row) -> SimpleLockResult<()> {
        let session = self.conn.as_ref().expect("a lock statement ran on it");
        let pid: i32 = row.get(0);
        if pid != session.backend_pid {
            let start_pid = session.backend_pid;
            // Not our session: release there what we just took, and give up on the connection.
            let _ = session.conn.run(
                &self.name,
                session
                    .conn
                    .client()
                    .query(&session.stmts.unlock, &[&self.key]),
            );
            self.conn = None;
            return Err(
                SimpleLockError::unknown(&self.name, pooler(start_pid, pid), None)
                    .with_kind(std::io::ErrorKind::Unsupported),
            );
        }
        let token: i64 = row.get(1);
        self.held = Some(Held {
            token: token as u64,
            since: SystemTime::now(),
            released: Arc::new(AtomicBool::new(false)),
        });
        registry_add(&self.target.describe, self.key, self.shared);
        Ok(())
    }

    /// Runs the blocking lock statement, with `lock_timeout` set to `ms` first (pipelined) if
    /// the session has another.
    fn lock_statement(&mut self, ms: i64) -> SimpleLockResult<Result<Row, tokio_postgres::Error>> {
        let base = holder::app_base();
        let name = self.name.clone();
        let key = self.key;
        let session = self.connection()?;
        let client = session.conn.client();
        let stmts = &session.stmts;
        let result = if session.lock_timeout_ms == ms {
            session
                .conn
                .run(&name, client.query_one(&stmts.lock, &[&key, &base]))?
        } else {
            let setting = format!("{ms}ms");
            let set_params: [&(dyn ToSql + Sync); 1] = [&setting];
            let lock_params: [&(dyn ToSql + Sync); 2] = [&key, &base];
            let (set, lock) = session.conn.run(&name, async {
                // Both requests go out before either answer is awaited: one round trip.
                tokio::join!(
                    client.query_one(&stmts.set_timeout, &set_params),
                    client.query_one(&stmts.lock, &lock_params)
                )
            })?;
            if set.is_ok() {
                session.lock_timeout_ms = ms;
            }
            // The lock call's outcome is what counts: a granted lock is never dropped on the
            // floor because the setting before it failed (it fails only with the connection,
            // and then the lock call fails too).
            lock
        };
        Ok(result)
    }

    /// After a failed lock statement: does this session hold the lock anyway (granted just as
    /// `lock_timeout` fired)?
    fn granted_anyway(&mut self) -> SimpleLockResult<bool> {
        let (hi, lo) = key::pg_locks_halves(self.key);
        let session = self.session_ref()?;
        let row = session
            .conn
            .run(
                &self.name,
                session
                    .conn
                    .client()
                    .query_one(&session.stmts.mine, &[&hi, &lo]),
            )?
            .map_err(|e| error::query_error(&self.name, "checking for a late grant", e))?;
        let count: i64 = row.get(0);
        Ok(count > 0)
    }

    /// Takes the token for a lock that was granted by a statement that then failed.
    fn take_late_grant(&mut self) -> SimpleLockResult<()> {
        let base = holder::app_base();
        let session = self.session_ref()?;
        let row = session.conn.run(
            &self.name,
            session
                .conn
                .client()
                .query_one(&session.stmts.token, &[&self.key, &base]),
        )?;
        match row {
            Ok(row) => self.granted(&row),
            Err(e) => {
                // The grant cannot be completed: release it rather than leak it.
                let _ = session.conn.run(
                    &self.name,
                    session
                        .conn
                        .client()
                        .query(&session.stmts.unlock, &[&self.key]),
                );
                Err(error::query_error(
                    &self.name,
                    "taking the fencing token",
                    e,
                ))
            }
        }
    }

    /// The first half of every release: forget the hold (`NotHeld` if there is none).
    fn start_release(&mut self) -> SimpleLockResult<()> {
        self.check_owner()?;
        let Some(held) = self.held.take() else {
            return Err(SimpleLockError::not_held(&self.name));
        };
        held.released.store(true, Ordering::SeqCst);
        registry_remove(&self.target.describe, self.key, self.shared);
        Ok(())
    }

    /// The second half of every release: the server's answer to the unlock statement (`None`
    /// if the connection had ended before it was sent), as the caller's result.
    fn finish_release(
        &mut self,
        answer: Option<Result<Row, tokio_postgres::Error>>,
    ) -> SimpleLockResult<()> {
        let session = self.session_ref()?;
        let ended = || session.conn.state.end_reason();
        let result = error::released(&self.name, "the lock", answer, ended);
        if result.is_err() {
            // The connection is of no more use; the next acquisition opens a new one.
            self.conn = None;
        }
        result
    }

    fn would_deadlock(&self) -> bool {
        registry_conflicts(&self.target.describe, self.key, self.shared)
    }
}

/// The message for a session that changed under the connection.
fn pooler(first: i32, now: i32) -> String {
    format!(
        "the server session changed between statements (server pid {first}, then {now}): a \
         connection pooler in transaction or statement mode (such as PgBouncer with pool_mode = \
         transaction) is between this client and the server; session advisory locks need a \
         direct connection or session pooling"
    )
}

impl ConcreteLock for PostgresLock {
    fn status(&self) -> SimpleLockResult<LockStatus> {
        self.check_owner()?;
        if self.held.is_some() {
            if let Some(reason) = self.conn.as_ref().and_then(|s| s.conn.state.end_reason()) {
                return Err(error::lost(&self.name, "reading the status", reason));
            }
            return Ok(LockStatus::Mine);
        }
        let holders = self.holders()?;
        let excludes = holders.iter().any(|h| h.exclusive || !self.shared);
        Ok(if excludes {
            LockStatus::Taken
        } else {
            LockStatus::Open
        })
    }

    fn try_lock(&mut self) -> SimpleLockResult<()> {
        self.check_owner()?;
        if self.held.is_some() {
            return Err(SimpleLockError::already_held(&self.name));
        }
        let base = holder::app_base();
        let (name, key) = (self.name.clone(), self.key);
        let session = self.connection()?;
        let row = session
            .conn
            .run(
                &name,
                session
                    .conn
                    .client()
                    .query_one(&session.stmts.try_lock, &[&key, &base]),
            )?
            .map_err(|e| error::query_error(&name, "trying the lock", e))?;
        let token: Option<i64> = row.get(1);
        if token.is_none() {
            return Err(SimpleLockError::already_locked(
                &self.name,
                self.blocking_holder(),
            ));
        }
        self.granted(&row)
    }

    fn hang_lock(&mut self) -> SimpleLockResult<()> {
        self.check_owner()?;
        if self.held.is_some() {
            return Err(SimpleLockError::already_held(&self.name));
        }
        if self.would_deadlock() {
            return Err(SimpleLockError::would_deadlock(&self.name));
        }
        match self.lock_statement(0)? {
            Ok(row) => self.granted(&row),
            Err(e) => Err(error::query_error(&self.name, "waiting for the lock", e)),
        }
    }

    fn try_unlock(&mut self) -> SimpleLockResult<()> {
        self.start_release()?;
        let session = self.session_ref()?;
        let answer = match session.conn.state.end_reason() {
            Some(_) => None,
            None => Some(
                session.conn.run(
                    &self.name,
                    session
                        .conn
                        .client()
                        .query_one(&session.stmts.unlock, &[&self.key]),
                )?,
            ),
        };
        self.finish_release(answer)
    }

    fn timed_lock(&mut self, timeout: Duration) -> SimpleLockResult<()> {
        self.check_owner()?;
        if self.held.is_some() {
            return Err(SimpleLockError::already_held(&self.name));
        }
        if timeout.is_zero() {
            return self.try_lock().map_err(|e| match e {
                SimpleLockError::AlreadyLocked { holder, name, .. } => {
                    SimpleLockError::timed_out(name, timeout, holder)
                }
                other => other,
            });
        }
        // Milliseconds, rounded up: never give up before the timeout.
        let ms = timeout.as_nanos().div_ceil(1_000_000);
        if ms > i32::MAX as u128 {
            return self.hang_lock();
        }
        match self.lock_statement(ms as i64)? {
            Ok(row) => self.granted(&row),
            Err(e) if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) => {
                if self.granted_anyway()? {
                    return self.take_late_grant();
                }
                Err(SimpleLockError::timed_out(
                    &self.name,
                    timeout,
                    self.blocking_holder(),
                ))
            }
            Err(e) => Err(error::query_error(&self.name, "waiting for the lock", e)),
        }
    }

    fn holder(&self) -> SimpleLockResult<Option<Holder>> {
        Ok(self.holders()?.first().map(RemoteHolder::to_holder))
    }
}

impl Drop for PostgresLock {
    fn drop(&mut self) {
        #[cfg(feature = "tokio")]
        let in_flight = &mut self.in_flight;
        #[cfg(not(feature = "tokio"))]
        let in_flight = &mut None::<()>;
        if crate::conn::dropping_in_fork_child(self.owner, in_flight, &mut self.conn) {
            return;
        }
        if self.held.is_some() {
            // Release before returning, so the lock is free when drop returns; closing the
            // connection alone would release it a moment later.
            let _ = self.try_unlock();
        }
    }
}

/// Tells whether one hold of a lock was lost, without asking the server (see the crate docs,
/// "A lost lock").
///
/// Cheap to clone and to keep on another thread.
#[derive(Clone)]
pub struct LostSignal {
    name: String,
    conn: Arc<ConnState>,
    released: Arc<AtomicBool>,
}

impl fmt::Debug for LostSignal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LostSignal")
            .field("name", &self.name)
            .field("lost", &self.is_lost().map(|l| l.reason))
            .finish()
    }
}

impl LostSignal {
    /// `Some` if the hold was lost (its connection ended before the handle released it).
    pub fn is_lost(&self) -> Option<LockLost> {
        if self.released.load(Ordering::SeqCst) {
            return None;
        }
        self.conn.end_reason().map(|reason| LockLost { reason })
    }

    /// Waits until the hold is lost (`Some`), released by its handle (`None`), or `timeout`
    /// passes (`None`; `None` as timeout waits without end).
    pub fn wait(&self, timeout: Option<Duration>) -> Option<LockLost> {
        let released = &self.released;
        let reason = self
            .conn
            .wait_end(timeout, || released.load(Ordering::SeqCst))?;
        if released.load(Ordering::SeqCst) {
            return None;
        }
        Some(LockLost { reason })
    }
}

/// The locks held by this process's handles, per server, key and thread: to see a thread
/// about to wait for a lock it holds through another handle.
type Registry = HashMap<(String, i64), Vec<(ThreadId, bool)>>;

static HELD_HERE: Mutex<Option<Registry>> = Mutex::new(None);

fn registry_add(server: &str, key: i64, shared: bool) {
    let mut held = HELD_HERE.lock().unwrap_or_else(|e| e.into_inner());
    held.get_or_insert_with(HashMap::new)
        .entry((server.to_owned(), key))
        .or_default()
        .push((std::thread::current().id(), shared));
}

fn registry_remove(server: &str, key: i64, shared: bool) {
    let mut held = HELD_HERE.lock().unwrap_or_else(|e| e.into_inner());
    let map = held.get_or_insert_with(HashMap::new);
    let entry = (server.to_owned(), key);
    if let Some(holders) = map.get_mut(&entry) {
        // A handle may be moved to another thread while it holds: remove any one entry of
        // this mode, preferring this thread's.
        let me = std::thread::current().id();
        let at = holders
            .iter()
            .position(|&(t, s)| t == me && s == shared)
            .or_else(|| holders.iter().position(|&(_, s)| s == shared));
        if let Some(at) = at {
            holders.swap_remove(at);
        }
        if holders.is_empty() {
            map.remove(&entry);
        }
    }
}

fn registry_conflicts(server: &str, key: i64, shared: bool) -> bool {
    let held = HELD_HERE.lock().unwrap_or_else(|e| e.into_inner());
    let me = std::thread::current().id();
    held.as_ref()
        .and_then(|map| map.get(&(server.to_owned(), key)))
        .is_some_and(|holders| holders.iter().any(|&(t, s)| t == me && !(s && shared)))
}

/// Whether the `PG*` variables say where a server is (used by the CLI to choose a default).
pub fn env_names_a_server() -> bool {
    conn::env_names_a_server()
}
