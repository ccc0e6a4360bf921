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
//! **The server waits, as for `hang_lock`.** An async wait sends the blocking wait's statement,
//! `pg_advisory_lock` (fencing token and `application_name` included), and the task sleeps on
//! the socket until the server answers: the server's lock manager wakes the waiting session at
//! the release — any release: an async or blocking handle's, a holder whose session ended,
//! another program's `pg_advisory_unlock` — and the grant comes back in the same answer. So the
//! async handoff is the blocking one (the same wake-up inside the server, the same one-way trip
//! to the client) plus the runtime's wake-up of the task. The waiter is in the server's queue
//! like a blocking one: `pg_locks` lists it, and waiters are served roughly in order.
//!
//! The statement runs under `lock_timeout` = [`SLICE`] (1 s, pipelined ahead of it when the
//! session has another): a wait is one statement per slice, sent again when the slice runs out
//! (SQLSTATE 55P03). That bounds how long a statement left behind by a dropped future can wait
//! in the server when nobody cancels it (below): at most a second, during which it is first in
//! line for the lock (granted, it is released at once) and, as an exclusive request, makes
//! later shared requests queue. The costs: one statement per waiter per second while the lock
//! stays taken, and one line in the server's log for each (the server logs the timeout as an
//! error, `canceling statement due to lock timeout`, unless `log_min_messages` is above
//! `error`); a shorter slice would shorten the first and lengthen the second. A release that
//! falls between two slices (one round trip a second) is taken by the next slice's statement
//! at once.
//!
//! # Cancel-safety
//!
//! A request in flight on the server cannot be taken back when its future is dropped, and a
//! waiting `pg_advisory_lock` may be granted at any moment, for a future that is gone. Three
//! things make that harmless; together they are the statement `[wait][release if mine]
//! [release if mine]` on the session, then a cancel request, then nothing else until the cancel
//! has landed.
//!
//! 1. **Release if mine, queued right behind.** When a future is dropped with a wait (or a
//!    try) in flight, [`cancel_wait`](AsyncConcreteLock::cancel_wait) queues, on the same
//!    connection and before returning, `pg_advisory_unlock` filtered by `pg_locks` (only if
//!    this session holds the lock), and writes it to the socket without waiting (the socket is
//!    non-blocking; the request goes into tokio-postgres's queue on the first poll of its
//!    future, in order). The server runs a session's statements in order, and each has its
//!    own `Sync`, so an error in one does not skip the next: whenever and however the wait
//!    ends — granted, given up at the slice's end, cancelled, failed after the grant (an error
//!    in a statement does not release a session-level advisory lock) — the release runs right
//!    after it. A grant to a dropped future lasts one statement on the server. The handle did
//!    not hold the lock before the wait (`AlreadyHeld` otherwise), so the grant is one level
//!    and one unlock is exactly right. A try's drop needs this step only (a try does not wait).
//! 2. **A cancel request, before anything else is sent.** A dropped wait would otherwise stay
//!    queued in the server for the rest of its slice: later requests of the handle would wait
//!    behind it, and a waiting exclusive request makes later shared requests queue. So the handle's next call, async or
//!    blocking, first sends a cancel request for the session (tokio-postgres's `CancelToken`
//!    on a second connection to the same server, with the handle's TLS mode) — unless the
//!    wait's answer had arrived already — and waits for the server to close that connection;
//!    then for the answers of the statements above; only then does it send its own. (A
//!    barrier on the connection, `Conn::set_barrier`, holds every later request back; the
//!    cancel costs a connection to the server, about a millisecond here, and only a call that
//!    follows a dropped wait pays it. Left alone, the dropped wait gives up at its slice's end.)
//! 3. **Why a cancel cannot hit the wrong statement.** A cancel request interrupts whatever
//!    the session is running when the signal arrives — the wait, one of the releases, or a
//!    later statement: the race every driver's docs warn of. PostgreSQL handles a cancel
//!    request in a child of the postmaster, which signals the session's process and then
//!    exits, closing the cancel connection: its end of file says the signal was sent. The
//!    session's process must read its socket to see any later statement, and returns from that
//!    system call with the signal handled; and a cancel that arrives between statements is
//!    dropped when the next message is read (`postgres.c`: "query cancel is supposed to be a
//!    no-op when there is no query in progress"). So a statement sent after the end of file is
//!    never cancelled. The cancel can hit at most one of the statements sent before it (one
//!    signal, one interrupt): if it hits a release, the other release still runs — which is
//!    why there are two.
//!
//! If the cancel connection breaks after connecting, or the server does not close it within
//! the connect timeout, whether it landed cannot be told: the handle gives up the connection
//! (closing it ends the session, which releases what it held), and the call fails with
//! `NotConnected` (a blocking call opens a new connection). A cancel that cannot connect at all
//! cancelled nothing, and the call waits for the slice's end instead.
//!
//! **A timed wait's last try.** When a timed wait's timer fires, the core cancels the wait
//! (above) and tries once more, so that a release right at the deadline is not lost. That
//! try would wait for the cancel (a connection to the server: about 1 ms on an idle machine,
//! 10 ms on this loaded one). Instead, if the dropped wait's answer has not come (the
//! connection driven first), the try answers `AlreadyLocked` at once, sending nothing: the
//! session's own request is still queued in the server, which it is only while the lock is
//! taken (a free lock is granted to the queue at once, and a try conflicts with the same
//! holders and waiters). It is the answer of a try made as of the last bytes received, a
//! one-way trip earlier than a try sent now; a grant already on its way is released by the
//! statements above, as for any dropped wait. If the answer has come, the try goes through
//! the barrier (no cancel needed) and asks the server. Measured here: a timed wait of 50 ms
//! on a taken lock returns after 51.4 ms (median; 56.9 ms at worst of 30, load 3.6).
//!
//! A wait that ends in an error while the future lives (the slice's end included, whose
//! timeout may fire just as the lock is granted: the error then comes with the lock held) is
//! followed by the same "release if mine", before the next slice's statement or the error's
//! return: a grant never outlives the statement that reported it as failed.
//!
//! What this does *not* give: during the one statement of a dropped future's grant, another
//! client's try can find the lock taken (and wait or give up, as for any holder). Never two
//! holders, and the lock is not left held.
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
//! Dropped outside a runtime, the guard releases with a blocking `try_unlock`. A release is the
//! plain `pg_advisory_unlock`, as a blocking one: the waiters are in the server's queue, and
//! the lock manager wakes them.
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

use std::future::poll_fn;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use simplelock_core::{AsyncConcreteLock, SimpleLockError, SimpleLockResult};
use tokio_postgres::error::SqlState;

use crate::async_conn::{self, Answer, queue_now, send_now};
use crate::{PostgresLock, error, holder, key};

/// A request of an async call in flight on the handle's connection.
pub(crate) type InFlight = async_conn::InFlight<Request>;

/// The `lock_timeout` of an async wait's statement: a wait is one statement per slice, so a
/// statement left waiting in the server by a dropped future gives up within it even if nobody
/// cancels it (module docs, "Cancel-safety").
pub(crate) const SLICE: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Request {
    /// `pg_advisory_lock`, waiting in the server (at most a [`SLICE`]).
    Wait,
    Try,
    Unlock,
}

/// The answer of a wait dropped while in flight, shared by the connection's barrier (which
/// sends a cancel request only if it has not come) and the try of a timed wait that ran out
/// (which answers from it rather than wait for the barrier).
pub(crate) type DroppedWait = Arc<Mutex<Option<async_conn::Queued<Answer>>>>;

/// Whether the dropped wait's answer has come (polled with `cx` after a drive of the
/// connection).
fn answered(wait: &DroppedWait, cx: &mut Context<'_>) -> bool {
    let mut slot = wait.lock().unwrap_or_else(|e| e.into_inner());
    let done = slot
        .as_mut()
        .is_none_or(|answer| answer.as_mut().poll(cx).is_ready());
    if done {
        *slot = None;
    }
    done
}

/// The state of one async wait for a [`PostgresLock`]. The wait itself is a statement in
/// flight on the handle's connection (kept by the handle); nothing else is kept.
#[derive(Debug)]
pub struct PostgresWait {
    _private: (),
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

    /// Waits until what a dropped wait left on the connection is over (module docs,
    /// "Cancel-safety"): nothing may be sent before.
    fn poll_settled(&mut self, cx: &mut Context<'_>) -> Poll<SimpleLockResult<()>> {
        let Some(session) = self.conn.as_ref() else {
            return Poll::Ready(Ok(()));
        };
        let settled = ready!(session.conn.poll_barrier(&self.name, cx));
        self.dropped_wait = None;
        if settled.is_err() {
            self.conn = None;
        }
        Poll::Ready(settled)
    }

    /// Whether a wait dropped earlier still waits in the server, as of what the connection has
    /// received (driven first).
    fn dropped_wait_waits(&mut self, cx: &mut Context<'_>) -> bool {
        let (Some(wait), Some(session)) = (self.dropped_wait.as_ref(), self.conn.as_ref()) else {
            return false;
        };
        session.conn.drive(cx, |_| {});
        if answered(wait, cx) {
            self.dropped_wait = None;
            return false;
        }
        true
    }

    /// Queues request `what` on the connection (sent by the next drive).
    fn send(&mut self, what: Request) {
        let session = self.conn.as_mut().expect("begin_async checked it");
        let client = session.conn.shared_client();
        let key = self.key;
        let base = holder::app_base();
        self.in_flight = Some(match what {
            Request::Wait => {
                let ms = SLICE.as_millis() as i64;
                if session.lock_timeout_ms != ms {
                    // Pipelined ahead of the wait; it fails only with the connection, and then
                    // so does the wait.
                    let stmt = session.stmts.set_timeout.clone();
                    let setting = format!("{ms}ms");
                    let client = session.conn.shared_client();
                    send_now(async move { client.query_one(&stmt, &[&setting]).await });
                    session.lock_timeout_ms = ms;
                }
                let stmt = session.stmts.lock.clone();
                InFlight::new(what, async move {
                    client.query_one(&stmt, &[&key, &base]).await
                })
            }
            Request::Try => {
                let stmt = session.stmts.try_lock.clone();
                InFlight::new(what, async move {
                    client.query_one(&stmt, &[&key, &base]).await
                })
            }
            Request::Unlock => {
                let stmt = session.stmts.unlock.clone();
                InFlight::new(what, async move { client.query_one(&stmt, &[&key]).await })
            }
        });
    }

    /// Drives the connection and polls the request in flight.
    fn poll_answer(&mut self, cx: &mut Context<'_>) -> Poll<Answer> {
        let (Some(session), Some(flight)) = (self.conn.as_ref(), self.in_flight.as_mut()) else {
            unreachable!("a request is in flight on a connection");
        };
        let step = flight.poll(&session.conn, cx, |_| {});
        if step.is_ready() {
            self.in_flight = None;
        }
        step
    }

    /// Queues a release of the lock *if this session holds it*, behind what is queued
    /// already; its completion, kept.
    fn release_if_mine(&self) -> Option<async_conn::Queued<()>> {
        let session = self.conn.as_ref().filter(|s| s.conn.alive())?;
        let client = session.conn.shared_client();
        let stmt = session.stmts.unlock_if_mine.clone();
        let key = self.key;
        let (hi, lo) = key::pg_locks_halves(key);
        Some(queue_now(async move {
            let _ = client.query(&stmt, &[&key, &hi, &lo]).await;
        }))
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

    /// After a dropped wait or try: its statement may be granted, or still wait in the server
    /// (module docs, "Cancel-safety").
    fn cancel_in_flight(&mut self) {
        let Some(flight) = self.in_flight.take() else {
            return;
        };
        if flight.what == Request::Unlock {
            return;
        }
        let Some(session) = self.conn.as_ref().filter(|s| s.conn.alive()) else {
            return;
        };
        let cancel = session.conn.cancel_request();
        // Its answer is of no interest (dropped: the connection throws it away).
        drop(self.release_if_mine());
        if flight.what == Request::Try {
            // A try does not wait: the release right behind it is enough.
            drop(flight);
            self.flush_now();
            return;
        }
        let second = self.release_if_mine();
        self.flush_now();
        let Some(session) = self.conn.as_ref() else {
            return;
        };
        let wait: DroppedWait = Arc::new(Mutex::new(Some(flight.into_answer())));
        self.dropped_wait = Some(Arc::clone(&wait));
        session.conn.set_barrier(Box::pin(async move {
            // The connection was driven right before this first poll: a wait already answered
            // needs no cancel.
            if !poll_fn(|cx| Poll::Ready(answered(&wait, cx))).await {
                cancel.await?;
            }
            // Its answer is of no more interest, and an answer kept unread would hold the
            // connection back (tokio-postgres waits for a live receiver to take it).
            drop(wait.lock().unwrap_or_else(|e| e.into_inner()).take());
            if let Some(second) = second {
                second.await;
            }
            Ok(())
        }));
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
            *state = Some(PostgresWait { _private: () });
        }
        loop {
            if self.in_flight.is_none() {
                if let Err(e) = ready!(self.poll_settled(cx)) {
                    return Poll::Ready(Err(e));
                }
                self.send(Request::Wait);
            }
            match ready!(self.poll_answer(cx)) {
                Ok(row) => return Poll::Ready(self.granted(&row)),
                // The slice ran out; the lock may have been granted just as it did (the
                // timeout's error comes after the grant): released right behind, before the
                // next slice's statement.
                Err(e) if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) => {
                    drop(self.release_if_mine());
                }
                Err(e) => {
                    // A grant is possible here too (an error after it): released right behind.
                    drop(self.release_if_mine());
                    self.flush_now();
                    return Poll::Ready(Err(error::query_error(
                        &self.name,
                        "waiting for the lock",
                        e,
                    )));
                }
            }
        }
    }

    fn cancel_wait(&mut self) {
        self.cancel_in_flight();
    }

    fn poll_try_lock(&mut self, cx: &mut Context<'_>) -> Poll<SimpleLockResult<()>> {
        if !matches!(&self.in_flight, Some(f) if f.what == Request::Try) {
            if let Err(e) = self.begin_async() {
                return Poll::Ready(Err(e));
            }
            if self.dropped_wait_waits(cx) {
                // A wait of this session is still queued in the server: the lock is taken
                // (module docs, "A timed wait's last try").
                return Poll::Ready(Err(SimpleLockError::already_locked(&self.name, None)));
            }
            if let Err(e) = ready!(self.poll_settled(cx)) {
                return Poll::Ready(Err(e));
            }
            self.send(Request::Try);
        }
        let answer = ready!(self.poll_answer(cx));
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
        }
        let answer = ready!(self.poll_answer(cx));
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
                let stmt = session.stmts.unlock.clone();
                let key = self.key;
                send_now(async move { client.query_one(&stmt, &[&key]).await });
                self.flush_now();
            }
            // Closing the connection releases what its session held.
            None => self.conn = None,
        }
    }
}
