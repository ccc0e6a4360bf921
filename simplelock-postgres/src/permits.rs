//! [`PostgresPermits`]: a counting semaphore of N permits on a PostgreSQL server, each permit
//! an advisory lock, for processes on many machines ("at most 2 jobs hitting the API, across
//! the fleet").
//!
//! # Keys
//!
//! The semaphore `NAME` of N permits uses these advisory-lock keys ([`key_for_name`] of each
//! string), all in the database of the connection:
//!
//! - `NAME.permit0` … `NAME.permit{N-1}`: the permits. Taking permit *i* is
//!   `pg_try_advisory_lock` of its key on the handle's own session; so a permit is what a
//!   [`PostgresLock`](crate::PostgresLock) is — one session holds it, and the server gives it
//!   back when that session ends (the holder killed, its connection cut and noticed by the
//!   keepalives of [`Timeouts`], `pg_terminate_backend`, a server restart).
//! - `NAME.of{N}`: the marker that says how many permits the semaphore has. Every handle's
//!   session holds its marker **shared** for as long as it lives. An opener takes
//!   `NAME.permits` (exclusive, held for three statements; released with the session if the
//!   opener dies), looks in `pg_locks` for a marker `NAME.of{M}` with M ≠ N (M up to
//!   [`MAX`](PostgresPermits::MAX)) held by anyone, and refuses with
//!   [`SimpleLockError::permits_disagree`]'s error if there is one; else it takes its marker
//!   and lets go of `NAME.permits`. So two handles with different N never live at once, and
//!   every permit holder (whose handle lives) agrees on N. Once every handle is gone, the
//!   semaphore is gone too (nothing is stored), and a new one may have another N.
//!
//! These names are the semaphore's: a lock called `NAME.permit0`, `NAME.of3` or `NAME.permits`
//! is one of its keys. Choose lock names that do not end that way next to a semaphore `NAME`.
//!
//! # Waiting: notifications, and a bounded slice for the dead
//!
//! PostgreSQL can make a session wait for one advisory lock, not for "any of N". A waiter could
//! wait in the server for one permit chosen in advance, but then a release of another permit
//! would not wake it; it could poll, which costs a round trip per permit per try. Instead:
//!
//! - a waiting handle's session `LISTEN`s on the semaphore's channel (`slp_` and the name's key
//!   in hex) from the first round of tries that found every permit taken: the `LISTEN` goes
//!   out ahead of the first try of another round, at once (same round trip), so a release
//!   between the two rounds is seen by the second. It stops (`UNLISTEN`, written without
//!   waiting for its answer) when the wait ends, granted or not. A handle that holds a permit
//!   or is idle does not listen, for two reasons. The server signals every listening session
//!   of the database at each notifying commit, and each wakes to read the queue: idle
//!   listeners compete for the CPU with the waiter being woken (measured here with raw
//!   clients: two idle listeners made a notify-then-try handoff 3–6% slower). And a session
//!   that listens while its client reads nothing (a handle holding a permit for hours makes no
//!   call) stops the server's notification queue from shrinking: the server writes each
//!   notification to the idle client's socket until the socket's buffers are full (measured:
//!   after about 150,000–200,000 notifications, then the server process waits in
//!   `ClientWrite`), and from then on the queue (8 GB at most, `pg_notification_queue_usage`)
//!   grows with every release until `NOTIFY` fails;
//! - a release is one statement, `pg_advisory_unlock` then `pg_notify(channel, i)`: the
//!   notification is delivered when that statement's transaction commits, after the permit is
//!   free;
//! - a waiter tries the permits (the one named by the last notification first), and if all are
//!   held sleeps until a notification arrives on its connection. The notifications that arrived
//!   before a try are dropped (the try saw their releases); one that arrives during or after it
//!   wakes the sleep. So no release is missed, and a released permit is handed over in about a
//!   round trip.
//!
//! A holder that dies sends no notification: the server releases its permit when it ends its
//! session, silently. So a waiter sleeps at most 100 ms at a time, then tries every
//! permit again: a dead holder's permit is taken within 100 ms of the server noticing the
//! death (at once for a killed process, whose socket closes; within [`Timeouts::dead_peer`] for
//! a silent network). The cost is N `pg_try_advisory_lock` calls per waiter per 100 ms while
//! every permit stays held — not a hot poll, and no query of `pg_locks`, which would take the
//! server's lock-table locks.
//!
//! A try is one `pg_try_advisory_lock` round trip per permit tried, in permit order: a single
//! statement that tries several keys and stops at the first success would rely on the executor
//! evaluating a `WHERE` lazily under `LIMIT`, which PostgreSQL does not promise (its manual
//! warns of exactly this with advisory locks), and a key taken by mistake would be a permit
//! nobody knows of.
//!
//! # Async waits
//!
//! With feature `tokio`, [`AsyncConcreteLock`](simplelock_core::AsyncConcreteLock) too: the
//! same tries and wake-ups (notifications, the slice) with the connection driven on the
//! caller's runtime, and a permit granted to a dropped future released right behind its try —
//! [`PostgresLock`](crate::PostgresLock)'s async wait, on the code both share. See
//! `async_wait` (its source, `permits/async_wait.rs`) for the argument.
//!
//! # What it cannot tell
//!
//! - **How the previous holder let go**: the server releases a dead session's advisory locks
//!   without a trace, so [`previous_holder`](ConcreteLock::previous_holder) is
//!   [`PreviousHolder::Unknown`] (as for [`PostgresLock`](crate::PostgresLock)).
//! - A forked child must not use its parent's handle (the connection is the parent's): it gets
//!   an error, and dropping the handle there releases nothing.
//! - Each handle is one server connection (`max_connections`); a held permit is two lock-table
//!   entries (its key and the marker).
//!
//! A thread that holds all N permits through N handles of this process (on the same server
//! address and database) and waits for another (`hang_lock`) gets
//! [`WouldDeadlock`](SimpleLockError::WouldDeadlock) instead of waiting for ever.

use std::fmt;
use std::task::Poll;
use std::time::{Duration, SystemTime};

use simplelock_core::permits::{HeldPermit, check_permits, first_holder, out_of_time};
use simplelock_core::{
    ConcreteLock, Holder, LockStatus, PermitState, Permits, PreviousHolder, SimpleLockError,
    SimpleLockResult, Wait,
};
use tokio_postgres::{Row, Statement};

use crate::conn::{Conn, Target, Timeouts, flush_now, forked, send_now};
use crate::holder::{self, RemoteHolder};
use crate::{error, key_for_name, pooler};

#[cfg(feature = "tokio")]
mod async_wait;
#[cfg(feature = "tokio")]
pub use async_wait::PostgresPermitsWait;

/// How long a waiter sleeps at most before it tries every permit again: the bound on noticing
/// a permit whose holder died (see the [module docs](self)).
pub(crate) const SLICE: Duration = Duration::from_millis(100);

/// Whether any marker other than `$2` (1-based, as the array's ordinality) of the keys `$1` is
/// held by anyone in this database: its number of permits.
const OTHER_MARKER: &str = "\
SELECT m.n FROM unnest($1::bigint[]) WITH ORDINALITY AS m(k, n) \
WHERE m.n <> $2 AND EXISTS (SELECT 1 FROM pg_locks l \
  WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 \
    AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
    AND l.classid::bigint = ((m.k >> 32) & 4294967295) AND l.objid::bigint = (m.k & 4294967295)) \
LIMIT 1";

/// After an async try of permit key `$1` whose answer is unknown (its future was dropped):
/// release it, and announce it on channel `$2` with payload `$3`, if this session holds it
/// (`$4`, `$5`: the key's halves as `pg_locks` shows them). See [`async_wait`].
const UNLOCK_IF_MINE: &str = "\
SELECT pg_advisory_unlock($1::bigint), pg_notify($2, $3) FROM pg_locks \
WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted AND objsubid = 1 \
  AND mode = 'ExclusiveLock' AND classid::bigint = $4 AND objid::bigint = $5";

/// The holders of the permit keys `$1`: the columns of [`holder::HOLDERS`], then the permit.
const HOLDERS: &str = "\
SELECT l.pid, a.application_name, host(a.client_addr), \
       (extract(epoch FROM a.backend_start) * 1000)::bigint, true, p.i - 1 \
FROM unnest($1::bigint[]) WITH ORDINALITY AS p(k, i) \
JOIN pg_locks l ON l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 \
  AND l.mode = 'ExclusiveLock' \
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
  AND l.classid::bigint = ((p.k >> 32) & 4294967295) AND l.objid::bigint = (p.k & 4294967295) \
LEFT JOIN pg_stat_activity a ON a.pid = l.pid \
ORDER BY p.i";

/// How to open a [`PostgresPermits`] beyond a name and a number, from
/// [`PostgresPermits::options`]: `with_*` steps — the server, the timeouts — then
/// [`named`](PostgresPermitsOptions::named).
#[derive(Debug, Clone, Default)]
#[must_use = "the options open nothing until `named` is called"]
pub struct PostgresPermitsOptions {
    url: Option<String>,
    timeouts: Timeouts,
}

impl PostgresPermitsOptions {
    /// The server to connect to, a URL or `key=value` string; unset, the `PG*` variables say.
    pub fn with_url(mut self, url: impl Into<String>) -> Self {
        self.url = Some(url.into());
        self
    }

    /// How quickly dead peers are noticed, and connecting's timeout.
    pub fn with_timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// Connects, agrees on the number of permits, and returns the handle (holding none).
    ///
    /// # Errors
    /// `InvalidName` for an empty name, 0 permits or more than
    /// [`MAX`](PostgresPermits::MAX), a malformed URL; [`SimpleLockError::permits_disagree`]'s
    /// error if live handles use the semaphore with another number of permits; the errors of
    /// connecting ([`PostgresLockOptions::named`](crate::PostgresLockOptions::named)).
    pub fn named(self, name: &str, permits: u32) -> SimpleLockResult<PostgresPermits> {
        if name.is_empty() {
            return Err(SimpleLockError::invalid_name("", "the name is empty"));
        }
        check_permits(name, permits, PostgresPermits::MAX)?;
        let target = Target::new(name, self.url.as_deref(), &self.timeouts)?;
        let keys = (0..permits)
            .map(|permit| key_for_name(&format!("{name}.permit{permit}")))
            .collect();
        let mut handle = PostgresPermits {
            held: HeldPermit::new(format!(
                "postgres:{}:{}",
                target.describe,
                key_for_name(name)
            )),
            since: None,
            channel: format!("slp_{:016x}", key_for_name(name) as u64),
            name: name.to_owned(),
            keys,
            target,
            session: None,
            owner: std::process::id(),
            #[cfg(feature = "tokio")]
            in_flight: None,
        };
        handle.session()?;
        Ok(handle)
    }
}

/// A handle on a counting semaphore of N permits on a PostgreSQL server; it takes at most one.
/// One handle, one connection.
///
/// A [`ConcreteLock`] whose lock takes one of the N permits (see
/// [`simplelock_core::permits`]), plus [`Permits`]. Dropping a holding handle gives its permit
/// back; so does the end of its session (the server releases it). See the
/// [module docs](self) for the design.
///
/// ```no_run
/// use simplelock_core::{Lock, LockBuilder, SimpleLockError};
/// use simplelock_postgres::PostgresPermits;
///
/// // At most 2 jobs on the API at once, across every machine that uses this database:
/// let permit = PostgresPermits::options()
///     .with_url("postgres://app@db.internal/app")
///     .named("api-jobs", 2)?;
/// let mut permit = LockBuilder::default().apply(permit);
/// let guard = permit.guard()?;
/// // ... call the API ...
/// guard.unlock()?;
/// # Ok::<(), SimpleLockError>(())
/// ```
pub struct PostgresPermits {
    name: String,
    /// The permits' keys, in permit order.
    keys: Vec<i64>,
    /// `LISTEN`/`NOTIFY` channel of the semaphore.
    channel: String,
    target: Target,
    session: Option<Session>,
    /// The permit held; its identity in the core's `HeldHere` is the server and the name's key.
    held: HeldPermit,
    /// When it was taken.
    since: Option<SystemTime>,
    /// The process that opened the handle: a forked child must not use it.
    owner: u32,
    /// The request of an async call in flight (see [`async_wait`]).
    #[cfg(feature = "tokio")]
    in_flight: Option<async_wait::InFlight>,
}

struct Session {
    conn: Conn,
    try_take: Statement,
    release: Statement,
    holders: Statement,
    /// [`UNLOCK_IF_MINE`], after a dropped async try.
    #[cfg_attr(
        not(feature = "tokio"),
        allow(dead_code, reason = "used by the async wait")
    )]
    unlock_if_mine: Statement,
    /// The server process serving this session when it started.
    backend_pid: i32,
    /// Whether the session listens on the semaphore's channel: only while waiting (see the
    /// module docs).
    listening: bool,
}

impl PostgresPermits {
    /// The most permits a semaphore of this backend has (each handle's opening looks for a
    /// disagreeing marker among this many keys).
    pub const MAX: u32 = 1024;

    /// Options to open a semaphore with more than a name and a number: the server, the
    /// timeouts (see [`PostgresPermitsOptions`]).
    pub fn options() -> PostgresPermitsOptions {
        PostgresPermitsOptions::default()
    }

    /// The semaphore `name` of `permits` permits on the server the `PG*` variables name.
    ///
    /// # Errors
    /// Those of [`PostgresPermitsOptions::named`].
    pub fn named(name: &str, permits: u32) -> SimpleLockResult<Self> {
        Self::options().named(name, permits)
    }

    /// The semaphore's name, as its errors carry it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `user@host:port/database` of the server (never the password).
    pub fn server(&self) -> &str {
        &self.target.describe
    }

    /// The advisory-lock key of each permit, in permit order.
    pub fn keys(&self) -> &[i64] {
        &self.keys
    }

    /// The server process serving this handle's connection, while it has a live one.
    pub fn backend_pid(&self) -> Option<i32> {
        self.session
            .as_ref()
            .filter(|s| s.conn.alive())
            .map(|s| s.backend_pid)
    }

    /// When this handle took its permit (this machine's clock), while it holds one.
    pub fn held_since(&self) -> Option<SystemTime> {
        self.since.filter(|_| self.held.permit().is_some())
    }

    fn check_owner(&self) -> SimpleLockResult<()> {
        if std::process::id() != self.owner {
            return Err(forked(&self.name));
        }
        Ok(())
    }

    /// The handle's session, opened anew (and N agreed on again) if the last one ended; only
    /// while not holding.
    fn session(&mut self) -> SimpleLockResult<&Session> {
        if self.session.as_ref().is_some_and(|s| !s.conn.alive()) {
            self.session = None;
        }
        if self.session.is_none() {
            self.session = Some(self.open_session()?);
        }
        Ok(self.session.as_ref().expect("just set"))
    }

    /// Connects, prepares the statements, listens, and agrees on N (see the module docs).
    fn open_session(&self) -> SimpleLockResult<Session> {
        let conn = self.target.connect(&self.name)?;
        let permits = self.keys.len() as u32;
        let markers: Vec<i64> = (1..=PostgresPermits::MAX)
            .map(|n| key_for_name(&format!("{}.of{n}", self.name)))
            .collect();
        let guard = key_for_name(&format!("{}.permits", self.name));
        let mine = markers[permits as usize - 1];
        let sql_try = format!(
            "SELECT pg_backend_pid(), l, CASE WHEN l THEN {} END \
             FROM pg_try_advisory_lock($1::bigint) AS l",
            holder::SET_APP
        );
        let client = conn.client();
        let outcome = conn.run(&self.name, async {
            let (try_take, release, holders, unlock_if_mine, pid) = tokio::try_join!(
                client.prepare(&sql_try),
                client.prepare("SELECT pg_advisory_unlock($1::bigint), pg_notify($2, $3)"),
                client.prepare(HOLDERS),
                client.prepare(UNLOCK_IF_MINE),
                client.query_one("SELECT pg_backend_pid()", &[]),
            )?;
            // The channel name is ours: `slp_` and hex digits, no quoting needed. A release's
            // notification gives its transaction an id, whose commit would wait for a WAL
            // flush: nothing of a semaphore is durable (advisory locks are not logged, a
            // server crash ends every session), so this session's commits do not wait.
            client.batch_execute("SET synchronous_commit = off").await?;
            client
                .query_one("SELECT pg_advisory_lock($1::bigint)", &[&guard])
                .await?;
            let other = client
                .query_opt(OTHER_MARKER, &[&markers, &i64::from(permits)])
                .await?;
            if other.is_none() {
                client
                    .query_one("SELECT pg_advisory_lock_shared($1::bigint)", &[&mine])
                    .await?;
            }
            client
                .query_one("SELECT pg_advisory_unlock($1::bigint)", &[&guard])
                .await?;
            let other = other.map(|row| row.get::<_, i64>(0));
            let statements = (try_take, release, holders, unlock_if_mine);
            Ok::<_, tokio_postgres::Error>((statements, pid.get(0), other))
        })?;
        let ((try_take, release, holders, unlock_if_mine), backend_pid, other) =
            outcome.map_err(|e| error::query_error(&self.name, "opening the semaphore", e))?;
        if let Some(existing) = other {
            // Dropping the connection lets go of everything it took.
            return Err(SimpleLockError::permits_disagree(
                &self.name,
                existing as u32,
                permits,
            ));
        }
        Ok(Session {
            conn,
            try_take,
            release,
            holders,
            unlock_if_mine,
            backend_pid,
            listening: false,
        })
    }

    /// Whether the session listens on the semaphore's channel.
    fn listening(&self) -> bool {
        self.session.as_ref().is_some_and(|s| s.listening)
    }

    /// Queues `LISTEN` (`on`) or `UNLISTEN` of the semaphore's channel, unless the session
    /// does so already; its answer is read, and dropped, by the connection's next call.
    /// Queued: a `LISTEN` goes out ahead of the next request, in the same round trip. Whether
    /// something was queued.
    fn queue_listening(&mut self, on: bool) -> bool {
        let Some(session) = self
            .session
            .as_mut()
            .filter(|s| s.listening != on && s.conn.alive())
        else {
            return false;
        };
        session.listening = on;
        let client = session.conn.shared_client();
        let sql = format!(
            "{} {}",
            if on { "LISTEN" } else { "UNLISTEN" },
            self.channel
        );
        send_now(async move { client.batch_execute(&sql).await });
        true
    }

    /// Stops listening: the `UNLISTEN` is written at once, without waiting for its answer, so
    /// that it runs while this handle holds (or after its wait ended), on no handoff's way.
    fn stop_listening(&mut self) {
        if self.queue_listening(false)
            && let Some(session) = self.session.as_ref()
        {
            flush_now(&session.conn);
        }
    }

    /// The order a try goes through the permits: `first`, then the others in order.
    fn order(&self, first: Option<u32>) -> impl Iterator<Item = u32> + use<> {
        let permits = self.keys.len() as u32;
        first
            .into_iter()
            .chain((0..permits).filter(move |&p| Some(p) != first))
    }

    /// Records the answer `row` to a try of `permit`: `Ok(true)` if it was granted (the handle
    /// holds it now). `Err((granted, error))` if the answer came from another server session
    /// than the handle's (a pooler): the caller releases the key there if `granted`, and drops
    /// the session.
    fn took(&mut self, permit: u32, row: &Row) -> Result<bool, (bool, SimpleLockError)> {
        let session = self.session.as_ref().expect("a try ran on it");
        let (pid, granted): (i32, bool) = (row.get(0), row.get(1));
        if pid != session.backend_pid {
            let error =
                SimpleLockError::unknown(&self.name, pooler(session.backend_pid, pid), None)
                    .with_kind(std::io::ErrorKind::Unsupported);
            return Err((granted, error));
        }
        if granted {
            self.held.took(permit);
            self.since = Some(SystemTime::now());
        }
        Ok(granted)
    }

    /// The second half of a release: the server's answer to the release statement (`None` if
    /// the connection had ended before it was sent), as the caller's result.
    fn finish_release(
        &mut self,
        answer: Option<Result<Row, tokio_postgres::Error>>,
    ) -> SimpleLockResult<()> {
        let ended = || {
            self.session
                .as_ref()
                .and_then(|s| s.conn.state.end_reason())
        };
        let result = error::released(&self.name, "the permit", answer, ended);
        if result.is_err() {
            self.session = None;
        }
        result
    }

    /// Tries the permits once, `first` first, then in order. `Ok(true)`: one is ours now.
    fn try_take(&mut self, first: Option<u32>) -> SimpleLockResult<bool> {
        let base = holder::app_base();
        let name = self.name.clone();
        for permit in self.order(first) {
            let key = self.keys[permit as usize];
            self.session()?;
            let session = self.session.as_ref().expect("just opened");
            let row = session
                .conn
                .run(
                    &name,
                    session
                        .conn
                        .client()
                        .query_one(&session.try_take, &[&key, &base]),
                )?
                .map_err(|e| error::query_error(&name, "trying a permit", e))?;
            match self.took(permit, &row) {
                Ok(true) => return Ok(true),
                Ok(false) => {}
                Err((granted, error)) => {
                    let session = self.session.take().expect("a try ran on it");
                    if granted {
                        // Not our session: release there what we just took, and give up on it.
                        let _ = session.conn.run(
                            &name,
                            session
                                .conn
                                .client()
                                .query(&session.release, &[&key, &self.channel, &"-"]),
                        );
                    }
                    return Err(error);
                }
            }
        }
        Ok(false)
    }

    /// Sleeps until a notification arrives on the session's channel, the connection ends, or
    /// `nap` passes.
    fn sleep(&self, nap: Duration) -> SimpleLockResult<()> {
        let Some(session) = self.session.as_ref() else {
            return Ok(());
        };
        let state = &session.conn.state;
        let woken = std::future::poll_fn(|_| {
            // `Conn::run` polls the connection before this future, in the same task: a
            // notification it reads wakes the task and is in `state` when this runs.
            if state.has_notifications() || state.end_reason().is_some() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        });
        session.conn.run(&self.name, async {
            let _ = tokio::time::timeout(nap, woken).await;
        })
    }

    /// The permit named by the latest notification received (dropping them all), if any.
    fn take_hint(&self) -> Option<u32> {
        let session = self.session.as_ref()?;
        let notes = session.conn.state.take_notifications();
        let permits = self.keys.len() as u32;
        notes
            .iter()
            .rev()
            .find_map(|note| note.parse::<u32>().ok().filter(|&p| p < permits))
    }

    fn acquire(&mut self, wait: Wait) -> SimpleLockResult<()> {
        self.check_owner()?;
        let permits = self.permits();
        self.held.before_acquire(&self.name, permits, wait)?;
        let wait = wait.start();
        self.session()?;
        let outcome = self.acquire_listening(&wait);
        self.stop_listening();
        outcome
    }

    /// The loop of [`acquire`](Self::acquire): rounds of tries, listening from the first round
    /// that found every permit taken.
    fn acquire_listening(&mut self, wait: &Wait) -> SimpleLockResult<()> {
        loop {
            // The notifications so far are of releases this try sees.
            let hint = self.take_hint();
            if self.try_take(hint)? {
                return Ok(());
            }
            let Some(nap) = wait.sleep_slice(SLICE) else {
                return Err(out_of_time(wait, &self.name, self.holders()));
            };
            if !self.listening() && self.queue_listening(true) {
                // Another round at once, with the LISTEN ahead of its first try: a release
                // between the last round and the LISTEN is seen by it.
                continue;
            }
            self.sleep(nap)?;
        }
    }
}

impl ConcreteLock for PostgresPermits {
    /// `Mine` if this handle holds a permit, `Taken` if others hold all of them, else `Open`
    /// (one query of `pg_locks`).
    ///
    /// # Errors
    /// An error whose source is [`LockLost`](crate::LockLost) if this handle's permit was lost.
    fn status(&self) -> SimpleLockResult<LockStatus> {
        self.check_owner()?;
        if self.held.permit().is_some() {
            if let Some(reason) = self
                .session
                .as_ref()
                .and_then(|s| s.conn.state.end_reason())
            {
                return Err(error::lost(&self.name, "reading the status", reason));
            }
            return Ok(LockStatus::Mine);
        }
        let free = self.holders()?.iter().any(|state| !state.is_held());
        Ok(if free {
            LockStatus::Open
        } else {
            LockStatus::Taken
        })
    }

    /// Take a free permit, or fail at once.
    ///
    /// # Errors
    /// [`SimpleLockError::AlreadyLocked`] naming a holder if all are taken,
    /// [`SimpleLockError::AlreadyHeld`] if this handle holds one.
    fn try_lock(&mut self) -> SimpleLockResult<()> {
        self.acquire(Wait::Try)
    }

    /// Take a permit, woken by the releases' notifications, as long as it takes.
    ///
    /// # Errors
    /// [`SimpleLockError::WouldDeadlock`] if this thread holds every permit through other
    /// handles; [`SimpleLockError::AlreadyHeld`].
    fn hang_lock(&mut self) -> SimpleLockResult<()> {
        self.acquire(Wait::Forever)
    }

    /// Take a permit, waiting at most `timeout`.
    ///
    /// # Errors
    /// [`SimpleLockError::TimedOut`] naming a holder, [`SimpleLockError::AlreadyHeld`].
    fn timed_lock(&mut self, timeout: Duration) -> SimpleLockResult<()> {
        self.acquire(Wait::For(timeout))
    }

    /// Give the permit back and wake the waiters.
    ///
    /// # Errors
    /// [`SimpleLockError::NotHeld`] if this handle holds no permit;
    /// [`SimpleLockError::UnableToUnlock`] with a [`LockLost`](crate::LockLost) as source if the permit was lost
    /// (its session ended) before.
    fn try_unlock(&mut self) -> SimpleLockResult<()> {
        self.check_owner()?;
        let Some(permit) = self.held.permit() else {
            return Err(SimpleLockError::not_held(&self.name));
        };
        let key = self.keys[permit as usize];
        let payload = permit.to_string();
        let answer = match self
            .session
            .as_ref()
            .filter(|s| s.conn.state.end_reason().is_none())
        {
            None => None,
            Some(session) => Some(
                session.conn.run(
                    &self.name,
                    session
                        .conn
                        .client()
                        .query_one(&session.release, &[&key, &self.channel, &payload]),
                )?,
            ),
        };
        self.held.gave_back();
        self.finish_release(answer)
    }

    /// Always [`PreviousHolder::Unknown`]: the server keeps no trace of how a session let go
    /// (see the [module docs](self)).
    fn previous_holder(&self) -> PreviousHolder {
        PreviousHolder::Unknown
    }

    fn holder(&self) -> SimpleLockResult<Option<Holder>> {
        Ok(first_holder(&self.holders()?))
    }
}

impl Permits for PostgresPermits {
    fn permits(&self) -> u32 {
        self.keys.len() as u32
    }

    fn held_permit(&self) -> Option<u32> {
        self.held.permit()
    }

    /// Each permit's holder from `pg_locks` and `pg_stat_activity`: for a simplelock client its
    /// pid, host, program and since when (its `application_name`), else the server's pid for
    /// it (one query). This handle's own permit is listed too.
    fn holders(&self) -> SimpleLockResult<Vec<PermitState>> {
        self.check_owner()?;
        let doing = |e| error::query_error(&self.name, "looking up the holders", e);
        let rows = match self.session.as_ref().filter(|s| s.conn.alive()) {
            Some(session) => session
                .conn
                .run(
                    &self.name,
                    session.conn.client().query(&session.holders, &[&self.keys]),
                )?
                .map_err(doing)?,
            None => {
                // The handle's connection ended: look on a new one, then drop it.
                let conn = self.target.connect(&self.name)?;
                conn.run(&self.name, conn.client().query(HOLDERS, &[&self.keys]))?
                    .map_err(doing)?
            }
        };
        let mut states = vec![PermitState::Free; self.keys.len()];
        for row in &rows {
            let permit: i64 = row.get(5);
            if let Some(state) = states.get_mut(permit as usize) {
                *state = PermitState::Held(Some(RemoteHolder::from_row(row).to_holder()));
            }
        }
        Ok(states)
    }
}

impl Drop for PostgresPermits {
    fn drop(&mut self) {
        #[cfg(feature = "tokio")]
        let in_flight = &mut self.in_flight;
        #[cfg(not(feature = "tokio"))]
        let in_flight = &mut None::<()>;
        if crate::conn::dropping_in_fork_child(self.owner, in_flight, &mut self.session) {
            return;
        }
        if self.held.permit().is_some() {
            // Release (and notify) before returning; closing the connection alone would free
            // the permit a moment later, and wake no waiter.
            let _ = self.try_unlock();
        }
    }
}

impl fmt::Debug for PostgresPermits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresPermits")
            .field("name", &self.name)
            .field("permits", &self.keys.len())
            .field("server", &self.target.describe)
            .field("held_permit", &self.held_permit())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test server (as the integration tests find it).
    fn url() -> String {
        std::env::var("SIMPLELOCK_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://127.0.0.1:5432/test".to_owned())
    }

    /// The channels the handle's own session listens on.
    fn listens(permits: &PostgresPermits) -> Vec<String> {
        let session = permits.session.as_ref().expect("a session");
        let client = session.conn.client();
        session
            .conn
            .run(
                &permits.name,
                client.query("SELECT pg_listening_channels()", &[]),
            )
            .expect("run")
            .expect("query")
            .iter()
            .map(|row| row.get(0))
            .collect()
    }

    /// A handle listens only while it waits: an idle one or a holder reads no notifications,
    /// and a listening session whose client reads nothing keeps the server's notification
    /// queue from shrinking (module docs).
    #[test]
    fn only_a_waiting_handle_listens() {
        let name = format!("simplelock-unit-listen-{}", std::process::id());
        let open = || {
            PostgresPermits::options()
                .with_url(url())
                .named(&name, 1)
                .expect("open")
        };
        let (mut a, mut b) = (open(), open());
        assert_eq!(listens(&a), Vec::<String>::new(), "an idle handle listens");
        a.try_lock().unwrap();
        let waiter = std::thread::spawn(move || {
            b.hang_lock().unwrap();
            let holding = listens(&b);
            b.try_unlock().unwrap();
            (holding, listens(&b))
        });
        // Time for b to find the permit taken and listen (were it not waiting yet, it would
        // take the permit at once below, and the checks would still hold).
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(listens(&a), Vec::<String>::new(), "a holder listens");
        a.try_unlock().unwrap();
        let (holding, idle) = waiter.join().expect("the waiter");
        assert_eq!(holding, Vec::<String>::new(), "a holder listens");
        assert_eq!(
            idle,
            Vec::<String>::new(),
            "a handle listens after its wait"
        );
    }
}
