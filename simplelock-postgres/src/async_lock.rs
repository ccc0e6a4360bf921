//! [`AsyncConcreteLock`] for [`PostgresLock`] (feature `tokio`): `lock_async().await` on the
//! caller's tokio runtime, cancel-safe, without blocking a worker.
//!
//! # The design, and why
//!
//! **The connection moves to the caller's runtime.** A handle's connection is driven by the
//! calling thread in its own small runtime during blocking calls (see `conn`). An async call
//! first registers the connection's socket with the reactor of the runtime that polls it (and
//! a blocking call moves it back): the connection is then driven inside the caller's task, by
//! the poll of the lock future itself, and the task sleeps on the socket like any tokio IO. No
//! thread is added, no thread blocks, nothing is spawned. Moving costs two `epoll_ctl` calls,
//! paid by the first async call after a blocking one or on another runtime (the connection
//! remembers which runtime's reactor holds its socket).
//!
//! **No server-side wait.** The blocking `hang_lock` waits inside the server
//! (`pg_advisory_lock`). An async wait must not: a request queued on the server cannot be
//! withdrawn synchronously when the future is dropped (a cancel request goes over a new
//! connection, takes a round trip and a fork of the server, and the docs of every driver call
//! it racy), so a release in the meantime would grant the lock to a session whose future is
//! gone, and the next holder would find it taken by nobody. Instead an async wait *tries*
//! (`pg_try_advisory_lock`, the same statement as `try_lock`, fencing token included) and,
//! between tries, sleeps until
//!
//! - a **notification**: once a try found the lock taken, the session `LISTEN`s on the lock's
//!   channel (`simplelock_` and the key as 16 hex digits) and tries again right behind the
//!   `LISTEN` (so a release between the two tries is not missed), and every release by an
//!   async guard (`unlock().await` or a drop) runs `pg_notify` on it in the same statement as
//!   the unlock — delivered after the release, to idle sessions at once. A notification that
//!   arrives while a try is in flight makes the wait try again at once, so no release is
//!   missed between a failed try and the sleep;
//! - or a **timer**, for releases that notify nobody: a blocking `PostgresLock`'s release, a
//!   holder whose session ended (killed, cut off), another program's `pg_advisory_unlock`.
//!   It starts at 2 ms and doubles up to 100 ms: such releases are seen within 100 ms.
//!
//! **Listening only while waiting.** A `NOTIFY` wakes every session of the database that
//! listens on *any* channel (PostgreSQL 15 signals them all; each reads the queue and drops
//! what is not for it), and on a busy server those wake-ups compete with the one that matters:
//! measured here (raw `postgres` clients, 2 cores), a notification reached its listener in
//! ~150 µs with no other listener and in ~175–240 µs with 4–8 idle listeners on other
//! channels. So a session listens only from its first failed try to the end of that wait or of
//! the hold it won (an uncontended acquisition never listens; a failed or dropped wait writes
//! an `UNLISTEN` at once; a won wait's async release sends it right behind its unlock, off the
//! handoff's path, where writing it at the grant would delay the new holder's return): idle
//! handles do not slow every other lock's handoff.
//!
//! Costs: a notifying release takes a transaction id and the server's notification queue lock
//! (NOTIFY's price); a contended wait adds a `LISTEN` and an `UNLISTEN`; a waiter costs one try
//! per wake-up, and at most 10 tries a second while nothing notifies. Async waiters are not queued by the server: who gets the lock after a
//! release is whoever's try comes first, so a waiter may be overtaken (no FIFO, unlike
//! `hang_lock`).
//!
//! **The handoff's floor.** From a release to the async waiter's return: the notification's
//! trip (the releasing backend signals the waiter's backend, which wakes and writes to the
//! waiter, which wakes), then the try's round trip (the waiter's backend wakes again, and then
//! the waiter). A blocking handoff makes the first leg only (`pg_advisory_lock` returns in
//! the waiter's backend when the holder's release wakes it), so the async handoff costs one
//! round trip more, through two sleeping processes, and NOTIFY's delivery (a signal, and a
//! transaction in the listening backend to read the queue) is slower than the lock manager's
//! wake-up: measured on this shared 2-core machine, the async handoff is the blocking one plus
//! ~125–190 µs, 1.7–2.9× it (medians of runs; the ratio is highest when the blocking handoff
//! is fastest). That round trip cannot be saved without giving up
//! cancel-safety: any server-side step that takes the lock when it is released (a queued
//! `pg_advisory_lock`, a try run right behind a server-side wait) takes it at that moment for
//! a future that may have been dropped meanwhile, so that another client's try, right after
//! the release, finds it taken by nobody (the conformance suite's cancel-safety check). Only
//! the waiter can say it still wants the lock, after the release: hence the round trip.
//!
//! # Cancel-safety
//!
//! Between two polls, the only thing of the wait's that can reach the server is the request
//! sent by the last poll: a try. Its answer is unknown when the future is dropped, and if the
//! lock was free it was granted. So [`cancel_wait`](AsyncConcreteLock::cancel_wait) queues, on
//! the same connection and before returning, a release of the lock *if this session holds
//! it* (`pg_advisory_unlock` filtered by `pg_locks`), and writes it to the socket without
//! waiting (the socket is non-blocking; the request goes into tokio-postgres's queue on the
//! first poll of its future, in order). The server runs a session's statements in order, so
//! the release runs right after the try, in the same round of reading the socket: a grant to a
//! dropped future lasts as long as one statement on the server, and later requests of the
//! handle come after it. A try that was granted stacks no second level: the handle did not
//! hold the lock before (`AlreadyHeld` otherwise), so one unlock is exactly right, and it also
//! notifies the other async waiters. If the connection breaks instead, the server ends the
//! session and releases everything it held.
//!
//! What this does *not* give: during that one statement another client's try can find the
//! lock taken (and wait or give up, as for any holder). Never two holders, and the lock is not
//! left held.
//!
//! # Releasing
//!
//! [`AsyncLockGuard::unlock`](simplelock_core::AsyncLockGuard::unlock) sends the unlock and
//! awaits the server's answer, with the errors of `try_unlock` (a lost lock is
//! `UnableToUnlock` with [`LockLost`](crate::LockLost) as source). Dropping the guard inside a
//! runtime cannot wait: it writes the unlock to the socket at once, without waiting for the
//! answer (which is read, and dropped, by the handle's next call). The server releases the
//! lock one network trip after the drop — the same latency as a blocking `try_unlock`, without
//! waiting for the answer. If the socket cannot take the request at once (its send buffer full,
//! never seen on a connection that is idle between calls), it goes out with the handle's next
//! call or when the handle is dropped, which closes the connection and so releases too.
//! Dropped outside a runtime, the guard releases with a blocking `try_unlock`.
//!
//! **A notifying release does not wait for the WAL flush.** `pg_notify` gives the release
//! statement a transaction id, and its commit would wait for the commit record to reach the
//! disk before the notification goes out: a flush on the handoff's path that a blocking
//! release (no transaction id) does not pay. So the release statement (and the "release if
//! mine" of a cancelled try) sets `synchronous_commit = off` for its own transaction only
//! (`set_config(…, true)`, a `SET LOCAL`); the acquiring statements keep the session's setting.
//! Nothing is lost by it. The release itself is not transactional and not logged (an advisory
//! lock lives in the server's memory; a crash drops every lock anyway); a notification whose
//! commit is lost in a crash goes to sessions that the crash ended. The fencing tokens keep
//! their guarantee: a token is the transaction id (or sequence value) of an *acquiring*
//! statement, whose commit is still flushed before its answer is sent, and a flush covers the
//! whole WAL before it; after a crash the server counts on from above every token it handed
//! out. An asynchronously committed release's own transaction id may then be handed out
//! again, but it was never anybody's token.
//!
//! # Fencing tokens, lost locks
//!
//! An async acquisition runs the same statements as the blocking one and records the grant
//! the same way: [`fencing_token`](PostgresLock::fencing_token),
//! [`lost_signal`](PostgresLock::lost_signal) and `ensure_held` work the same after it, and
//! the watchdog watches the connection whichever runtime drives it.
//!
//! # Requirements and limits
//!
//! - Poll it inside a tokio runtime with IO and time enabled (`enable_all()`, as
//!   `#[tokio::main]` does); elsewhere the wait fails with an `Unsupported` error.
//! - The handle is opened, and reconnected after a lost lock, by the blocking calls
//!   ([`PostgresLock::named`], `try_lock`, ...), outside the runtime (for example in
//!   `spawn_blocking`); an async call on a handle whose connection ended fails with
//!   `NotConnected` rather than block.
//! - `AlreadyLocked` and `TimedOut` from the async calls do not name the holder (looking it up
//!   would be another round trip).
//! - Like the other backends' async waits, it never reports `WouldDeadlock`.

use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use simplelock_core::{AsyncConcreteLock, SimpleLockError, SimpleLockResult};
use tokio::time::{Sleep, sleep};

use crate::async_conn::{self, Answer, send_now};
use crate::{PostgresLock, error, holder, key};

/// A request of an async call in flight on the handle's connection.
pub(crate) type InFlight = async_conn::InFlight<Request>;

/// The first pause of the timer between tries while nothing notifies.
const FIRST_PAUSE: Duration = Duration::from_millis(2);
/// The longest pause: releases that notify nobody are seen within it.
const MAX_PAUSE: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Request {
    Try,
    Unlock,
}

/// The state of one async wait for a [`PostgresLock`]: the timer between tries, and whether a
/// release was announced.
#[derive(Debug)]
pub struct PostgresWait {
    timer: Option<Pin<Box<Sleep>>>,
    /// The timer's next step while nothing notifies.
    pause: Duration,
    /// A release was announced since the last try was sent.
    notified: bool,
}

/// The channel the releases of lock `key` are announced on.
fn channel(key: i64) -> String {
    format!("simplelock_{:016x}", key as u64)
}

impl PostgresLock {
    /// What every async acquisition does first: the checks of the blocking calls and the socket
    /// moved to this runtime.
    fn begin_async(&mut self) -> SimpleLockResult<()> {
        self.check_owner()?;
        if self.held.is_some() {
            return Err(SimpleLockError::already_held(&self.name));
        }
        // A request left by a dropped unlock: sent already, its answer is of no interest.
        self.in_flight = None;
        async_conn::bind_here(&self.name, self.conn.as_ref().map(|s| &s.conn))?;
        Ok(())
    }

    /// Starts listening for releases of this lock (module docs, "Listening only while
    /// waiting"): queued, and sent before the next try.
    fn listen(&mut self) {
        let key = self.key;
        if let Some(session) = self.conn.as_mut().filter(|s| !s.listening) {
            let client = session.conn.shared_client();
            let listen = format!("LISTEN {}", channel(key));
            send_now(async move { client.batch_execute(&listen).await });
            session.listening = true;
        }
    }

    /// Stops listening: queued behind what is queued already, and written at once if
    /// `write_now` (else by the next drive); its answer is left for the handle's next call.
    /// Never with `write_now` while a future waits on the socket: the write's drive registers
    /// no waker.
    fn unlisten(&mut self, write_now: bool) {
        let key = self.key;
        if let Some(session) = self.conn.as_mut().filter(|s| s.listening) {
            session.listening = false;
            if session.conn.alive() {
                let client = session.conn.shared_client();
                let unlisten = format!("UNLISTEN {}", channel(key));
                send_now(async move { client.batch_execute(&unlisten).await });
                if write_now {
                    session
                        .conn
                        .drive(&mut Context::from_waker(Waker::noop()), |_| {});
                }
            }
        }
    }

    /// Queues request `what` on the connection (sent by the next drive).
    fn send(&mut self, what: Request) {
        let session = self.conn.as_ref().expect("begin_async checked it");
        let client = session.conn.shared_client();
        let key = self.key;
        self.in_flight = Some(match what {
            Request::Try => {
                let stmt = session.stmts.try_lock.clone();
                let base = holder::app_base();
                InFlight::new(what, async move {
                    client.query_one(&stmt, &[&key, &base]).await
                })
            }
            Request::Unlock => {
                let stmt = session.stmts.unlock_notify.clone();
                let chan = channel(key);
                InFlight::new(what, async move {
                    client.query_one(&stmt, &[&key, &chan]).await
                })
            }
        });
    }

    /// Drives the connection and polls the request in flight; a notification of this lock's
    /// channel sets `notified`.
    fn poll_answer(&mut self, cx: &mut Context<'_>, notified: &mut bool) -> Poll<Answer> {
        let chan = channel(self.key);
        let (Some(session), Some(flight)) = (self.conn.as_ref(), self.in_flight.as_mut()) else {
            unreachable!("a request is in flight on a connection");
        };
        let step = flight.poll(&session.conn, cx, |n| *notified |= n.channel() == chan);
        if step.is_ready() {
            self.in_flight = None;
        }
        step
    }

    /// Drives the connection only (no request in flight): reads notifications.
    fn drive_only(&mut self, cx: &mut Context<'_>, notified: &mut bool) {
        let chan = channel(self.key);
        if let Some(session) = self.conn.as_ref() {
            session.conn.drive(cx, |n| *notified |= n.channel() == chan);
        }
    }

    /// Writes what is queued on the connection without waiting; drops a connection found
    /// broken (closing it releases what its session held).
    fn flush_now(&mut self) {
        if self
            .conn
            .as_ref()
            .is_some_and(|s| !async_conn::flush_now(&s.conn))
        {
            self.conn = None;
        }
    }

    /// After a dropped wait: a try in flight may have been granted; release it right behind
    /// (module docs, "Cancel-safety").
    fn cancel_try(&mut self) {
        let Some(flight) = self.in_flight.take() else {
            return;
        };
        if flight.what != Request::Try {
            return;
        }
        if let Some(session) = self.conn.as_ref().filter(|s| s.conn.alive()) {
            let client = session.conn.shared_client();
            let stmt = session.stmts.unlock_if_mine.clone();
            let (key, chan) = (self.key, channel(self.key));
            let (hi, lo) = key::pg_locks_halves(key);
            send_now(async move { client.query(&stmt, &[&key, &chan, &hi, &lo]).await });
            drop(flight);
            self.flush_now();
        }
    }

    /// The answer to a try, as the caller's result.
    fn tried(&mut self, answer: Answer) -> Option<SimpleLockResult<()>> {
        match answer {
            Ok(row) if row.get::<_, Option<i64>>(1).is_some() => Some(self.granted(&row)),
            Ok(_) => None,
            Err(e) => Some(Err(error::query_error(&self.name, "trying the lock", e))),
        }
    }
}

impl AsyncConcreteLock for PostgresLock {
    type WaitState = PostgresWait;

    fn poll_lock(
        &mut self,
        state: &mut Option<PostgresWait>,
        cx: &mut Context<'_>,
    ) -> Poll<SimpleLockResult<()>> {
        if state.is_none() {
            if let Err(e) = self.begin_async() {
                return Poll::Ready(Err(e));
            }
            *state = Some(PostgresWait {
                timer: None,
                pause: FIRST_PAUSE,
                notified: true, // try at once
            });
        }
        let wait = state.as_mut().expect("set above");
        loop {
            if self.in_flight.is_none() {
                self.drive_only(cx, &mut wait.notified);
                let timer_done = wait
                    .timer
                    .as_mut()
                    .is_some_and(|t| t.as_mut().poll(cx).is_ready());
                if !(wait.notified || timer_done) {
                    return Poll::Pending;
                }
                wait.notified = false;
                self.send(Request::Try);
            }
            let answer = match self.poll_answer(cx, &mut wait.notified) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(answer) => answer,
            };
            if let Some(done) = self.tried(answer) {
                if done.is_err() {
                    self.unlisten(true);
                }
                // Granted: the session listens on until the release, which sends the UNLISTEN
                // behind the unlock (a write here would delay the caller's return).
                return Poll::Ready(done);
            }
            if !self.conn.as_ref().is_some_and(|s| s.listening) {
                // The first try found it taken: listen, and try again right behind the LISTEN,
                // which catches a release between the two tries.
                self.listen();
                wait.notified = true;
                continue;
            }
            // Taken: sleep until a release is announced or the timer fires.
            wait.timer = Some(Box::pin(sleep(wait.pause)));
            wait.pause = (wait.pause * 2).min(MAX_PAUSE);
        }
    }

    fn cancel_wait(&mut self) {
        self.cancel_try();
        self.unlisten(true);
    }

    fn poll_try_lock(&mut self, cx: &mut Context<'_>) -> Poll<SimpleLockResult<()>> {
        if !matches!(&self.in_flight, Some(f) if f.what == Request::Try) {
            if let Err(e) = self.begin_async() {
                return Poll::Ready(Err(e));
            }
            self.send(Request::Try);
        }
        let mut notified = false;
        let answer = std::task::ready!(self.poll_answer(cx, &mut notified));
        Poll::Ready(
            self.tried(answer)
                .unwrap_or_else(|| Err(SimpleLockError::already_locked(&self.name, None))),
        )
    }

    fn poll_unlock(&mut self, cx: &mut Context<'_>) -> Poll<SimpleLockResult<()>> {
        if !matches!(&self.in_flight, Some(f) if f.what == Request::Unlock) {
            if let Err(e) = self.start_release() {
                return Poll::Ready(Err(e));
            }
            let usable = match self.conn.as_ref().filter(|s| s.conn.alive()) {
                Some(session) => session.conn.bind_here(&self.name).is_ok(),
                None => false,
            };
            if !usable {
                return Poll::Ready(self.finish_release(None));
            }
            self.send(Request::Unlock);
            let mut notified = false;
            // Its first poll queues the unlock; the UNLISTEN goes behind it.
            let step = self.poll_answer(cx, &mut notified);
            self.unlisten(false);
            let answer = std::task::ready!(step);
            return Poll::Ready(self.finish_release(Some(answer)));
        }
        let mut notified = false;
        let answer = std::task::ready!(self.poll_answer(cx, &mut notified));
        Poll::Ready(self.finish_release(Some(answer)))
    }

    fn release_on_drop(&mut self) {
        if tokio::runtime::Handle::try_current().is_err() {
            let _ = simplelock_core::ConcreteLock::try_unlock(self);
            return;
        }
        if self.start_release().is_err() {
            return;
        }
        // A request of a dropped `unlock().await`: superseded.
        self.in_flight = None;
        match self.conn.as_ref().filter(|s| s.conn.alive()) {
            Some(session) => {
                let client = session.conn.shared_client();
                let stmt = session.stmts.unlock_notify.clone();
                let (key, chan) = (self.key, channel(self.key));
                send_now(async move { client.query_one(&stmt, &[&key, &chan]).await });
                self.unlisten(false);
                self.flush_now();
            }
            // Closing the connection releases what its session held.
            None => self.conn = None,
        }
    }
}
