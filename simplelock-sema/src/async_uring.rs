//! Async waits on a tokio runtime (feature `tokio`, Linux 6.7+): the waiting tasks of one lock
//! share one io_uring `FUTEX_WAIT` on the lock word, whose completion tokio's reactor sees; one
//! wake-up per handoff.
//!
//! # Why
//!
//! The watcher thread (`async_lock.rs`) costs two wake-ups per handoff: the release wakes the
//! thread, which wakes the task, whose runtime thread tokio wakes in turn. An io_uring
//! `IORING_OP_FUTEX_WAIT` (Linux 6.7+) is a futex wait whose end is a completion on a ring,
//! and a ring with completions is a readable descriptor: registered with tokio's reactor
//! (`AsyncFd`), it makes the release's own `FUTEX_WAKE` wake the runtime's thread directly.
//! The wait is on the same futex as a blocking waiter's: the low half of the word
//! (`word::futex_half`, 32 bits: `FUTEX2_SIZE_U32`), shared (not `FUTEX2_PRIVATE`, so a wake
//! from any process that maps the object pairs with it), and it sets the waiters bit `W` first,
//! exactly as a blocking waiter does. So nothing changes for the other processes: a release
//! that finds `W` set wakes one futex sleeper, which may be our ring.
//!
//! # The shape
//!
//! One [`Ring`] per lock object, per tokio runtime, per process (a table keyed by object and
//! runtime id, made again by a forked child), shared by every handle of the object that waits
//! on that runtime: 1,000 waiting tasks cost one ring, one descriptor and at most one futex wait
//! in the kernel. A handle keeps the ring it used (so a handle that waits again and again
//! makes it once); the last handle to go closes it.
//!
//! - A task that finds the lock held registers its waker with the ring and, if no wait is
//!   submitted, submits one (after setting `W`) with the held value it saw, and a linked timeout
//!   of a slice (10 ms). Then it makes sure the ring's *pump* is registered with the reactor,
//!   looks at the word once more, and returns `Pending`.
//! - The pump (the ring's own waker on the `AsyncFd`) runs when the ring is readable. If the
//!   word is no longer held (free, removed), it wakes every waiting task, which all try the
//!   compare-and-swap exactly as `poll_lock` always did; the losers reap the completion and
//!   submit the next wait. Still held — by the same owner (the slice ran out, a spurious wake,
//!   the death watcher's wake) or by another (a handoff between others, whose new holder woke
//!   one more sleeper so that it registers the new holder's death: `lock.rs`, `claim_free`) —
//!   it reaps the completion and checks the owner's liveness when that is due, exactly as the
//!   watcher thread did (at once when the death watcher reported the owner dead, else once per
//!   slice of the same owner), wakes the tasks if the owner died, and otherwise submits the
//!   wait again on the word as it is (registering a new owner's death). So neither the slice
//!   nor a handoff between others wakes the 1,000 tasks, only the runtime's thread.
//!
//! On a current-thread runtime, whose tasks and reactor all run on one thread, the ring is
//! made with `IORING_SETUP_DEFER_TASKRUN` (and `SINGLE_ISSUER`) and an eventfd registered with
//! it, which the reactor watches instead of the ring. Without it, the kernel posts the wait's
//! completion from task work queued to the thread that submitted it: the release interrupts
//! that thread's `epoll_wait` (`EINTR`), the completion is posted on its way back to user space,
//! and `epoll_wait` is entered again to see it — measured at about twice the plain futex
//! wake-up. Deferred, the kernel signals the eventfd right at the release's wake, which wakes
//! `epoll_wait` as any descriptor does (about one futex wake-up), and the completion is posted
//! when we ask (`io_uring_enter` with `GETEVENTS`): the pump asks only when the word is
//! unchanged; after a change the task that takes the lock does not wait for that system call,
//! the next wait on the ring makes it. Such a ring accepts that one thread only (`EEXIST`
//! otherwise): a runtime driven from another thread later finds it broken, its waiters use
//! the watcher thread for that poll, and the next wait makes a ring of the new thread's. A
//! multi-thread runtime's ring is a plain one (any worker may submit), its descriptor watched.
//!
//! # No lost wake-up
//!
//! A wait is submitted with the held value `V` a task saw. If the word is no longer `V` when
//! the kernel queues it, it ends at once (`EAGAIN`), as `FUTEX_WAIT` does: a release between
//! the task's look and the submission is never missed. From the moment it is queued, the
//! release's `FUTEX_WAKE` ends it (the releaser saw `W`, which we set before). Its end makes the
//! watched descriptor readable (the ring: a completion is posted; the eventfd: the kernel
//! signals it when deferred work arrives on an empty list, and when completions are posted),
//! which the reactor reports to the pump — registered before the task's last look; tokio keeps
//! a readiness reported while nobody was registered until it is cleared, and clears only what
//! it reported before the pump looked.
//!
//! The ring's state is under one mutex, taken by the pump and by registering tasks alike. At
//! most one wait is submitted, and a new one only after the last one's completion was reaped
//! (a task that finds completions the pump left unreaped reaps them first, which also empties
//! a deferred ring's work list, so that the next wait's end signals the eventfd again). A task
//! registers its waker under that mutex while a wait is submitted and not reaped, so the pump's
//! wake of all tasks, which takes the wakers under the same mutex after it saw the end,
//! includes it; if the wait was reaped already, the task submits a new one with what it saw,
//! and a stale value ends that one at once. A submitted wait whose value is no longer the
//! word's is cancelled (at its end the pump wakes everyone if the word is free, and otherwise
//! waits again on the word as it is then: a release after that look ends the new wait at once,
//! one before it is seen by the look). A task is left asleep only while the word is held,
//! when its own look would find it held too. A release whose one wake went to a blocking
//! waiter of another process instead of our ring is seen at the end of the slice, as with the
//! watcher thread.
//!
//! # Cancel safety
//!
//! The ring only waits; it never acquires. A task acquires only inside its poll, by the
//! same compare-and-swap as ever. A dropped future removes its waker (`cancel_wait`); when
//! it was the ring's last and the wait is still in the kernel, the wait is cancelled
//! (`IORING_OP_ASYNC_CANCEL`) so that it does not take a release's wake from a sleeper of
//! another process, and in any case no new wait is submitted for a ring nobody waits on. (If
//! the cancellation cannot be submitted — a deferred ring's future dropped on another thread —
//! the wait stays queued until a wake ends it: it can take one release's wake from a blocking
//! sleeper of another process, which then finds the release at the end of its own 10 ms slice.)
//! A wait still in flight when the ring is closed is ended by the kernel; the mapping of its
//! word is kept until then (see `sys/linux/uring.rs`).
//!
//! # Fallback
//!
//! The watcher thread serves the wait whenever this cannot: no tokio runtime is current
//! (another executor), `io_uring_setup` fails (before Linux 5.1, `ENOSYS` or `EPERM` under a
//! seccomp filter, `kernel.io_uring_disabled`) or the kernel has no futex wait for io_uring
//! (before Linux 6.7, told by the ring's probe, or a wait refused with `EINVAL`). These are
//! found once per process and remembered. A ring that fails later (a submit refused, the
//! runtime shutting down) sends its waiters to the watcher thread too.
//!
//! The runtime must have IO enabled (`enable_io` or `enable_all`, as `#[tokio::main]` does):
//! tokio panics when a descriptor is registered on a runtime without it.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use simplelock_core::SimpleLockResult;
use tokio::runtime;

use super::{Handle, SLICE};
use crate::death::HolderWatch;
use crate::process::{self, Liveness};
use crate::sys::uring::{Ended, FutexRing};
use crate::sys::{self, ForkAware, MapRef, ObjectId};
use crate::word::{self, WAITERS, Word};

/// Whether io_uring futex waits work in this process: not known yet, yes, no.
static SUPPORT: AtomicU8 = AtomicU8::new(UNKNOWN);
const UNKNOWN: u8 = 0;
const WORKS: u8 = 1;
const REFUSED: u8 = 2;

/// The rings of this process (the process id that made them: a forked child starts afresh), by
/// object and runtime; weak, since the handles that waited keep them. Fork-aware: a child forked
/// while a thread of its parent was inside (making a ring, a few system calls) does not wait
/// for that thread, which it does not have; its waits use the watcher thread instead.
type Table = Vec<(ObjectId, runtime::Id, Weak<Ring>)>;
static RINGS: ForkAware<(u32, Table)> = ForkAware::new((0, Vec::new()));

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves the state consistent: a panic in one poisons nothing.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The io_uring wait of the async waiters of one lock object on one runtime in this process.
pub(super) struct Ring {
    /// The ring and its registration with the reactor. First: closed before `map` goes.
    futex: FutexRing,
    id: ObjectId,
    runtime: runtime::Id,
    /// The process that made it (a forked child's copy must not be used, nor dropped).
    pid: u32,
    map: MapRef,
    /// This process's token.
    me: u64,
    /// How long a wait lasts at most before the owner's liveness is due again.
    slice: Duration,
    /// The ring's own waker on the reactor: runs [`Ring::pump`].
    pump: Waker,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// The word value (with `W`) the submitted wait expects, while one is submitted.
    armed: Option<u64>,
    /// A cancellation of the submitted wait was asked for.
    cancelling: bool,
    /// The reactor reported completions that were not reaped yet.
    unreaped: bool,
    /// The waiting tasks, by the address of their handle (stable while its future borrows it).
    wakers: Vec<(usize, Waker)>,
    /// An owner found dead: the waiters check it and take over.
    dead_owner: u64,
    /// The owner seen when the current run of waits started, and since when.
    watched: Option<(u64, Instant)>,
    /// The registration with the death watcher for the owner.
    death: HolderWatch,
    /// The ring failed: its waiters go to the watcher thread.
    broken: bool,
}

/// What a task that registered learned.
enum Step {
    /// A wait is submitted: return `Pending` (after a last look).
    Waiting,
    /// The word changed before the wait could be submitted: look again.
    Changed,
    /// The owner is dead: take over.
    Dead(u64),
    /// The ring cannot wait: use the watcher thread.
    Broken,
}

/// The pump: the waker the ring registers with the reactor (weak: the reactor keeps it).
struct Pump(Weak<Ring>);

impl Wake for Pump {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if let Some(ring) = self.0.upgrade() {
            ring.pump();
        }
    }
}

fn wake(wakers: Vec<(usize, Waker)>) {
    for (_, waker) in wakers {
        waker.wake();
    }
}

impl Ring {
    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    fn usable(&self, id: ObjectId, runtime: runtime::Id, pid: u32) -> bool {
        self.pid == pid && self.id == id && self.runtime == runtime && !self.state().broken
    }

    /// Reaps what the ring completed and wakes the tasks when there is news, until the
    /// reactor has nothing more to report (its waker, the pump, is then registered).
    fn pump(&self) {
        loop {
            let mut cx = Context::from_waker(&self.pump);
            let ready = match self.futex.poll_ready(&mut cx) {
                Poll::Pending => return,
                Poll::Ready(Ok(ready)) => ready,
                Poll::Ready(Err(_)) => {
                    // The runtime is shutting down: its tasks go, or try the watcher thread.
                    let wakers = {
                        let mut state = self.state();
                        state.broken = true;
                        std::mem::take(&mut state.wakers)
                    };
                    wake(wakers);
                    return;
                }
            };
            let wakers = self.on_ready();
            ready.clear();
            wake(wakers);
        }
    }

    /// The ring has completions: if the word is no longer held (free, removed) while a wait is
    /// submitted, the tasks to wake at once (the completions are reaped when the ring is needed
    /// next: a deferred ring's reap is a system call, which the task that takes the lock need
    /// not wait for); otherwise what [`Ring::reap`] says.
    fn on_ready(&self) -> Vec<(usize, Waker)> {
        let mut state = self.state();
        state.unreaped = true;
        if state.armed.is_some() && !state.wakers.is_empty() {
            let current = self.map.shared().word.load(Ordering::Acquire);
            if !matches!(Word::decode(current), Word::Held { .. }) {
                return std::mem::take(&mut state.wakers);
            }
        }
        self.reap(&mut state)
    }

    /// Reaps the completions; the tasks to wake if the wait ended with news.
    fn reap(&self, state: &mut State) -> Vec<(usize, Waker)> {
        state.unreaped = false;
        let ended = match self.futex.queue().reap() {
            Ok(Some(ended)) => ended,
            Ok(None) => return Vec::new(),
            Err(_) => {
                // Reaped from a thread the ring does not accept: its waiters use the watcher.
                state.broken = true;
                return std::mem::take(&mut state.wakers);
            }
        };
        state.armed = None;
        state.cancelling = false;
        if let Ended::Refused(_) = ended {
            // No futex wait after all (the probe said yes): the watcher thread, from now on.
            SUPPORT.store(REFUSED, Ordering::Relaxed);
            state.broken = true;
            return std::mem::take(&mut state.wakers);
        }
        if state.wakers.is_empty() {
            // Nobody waits any more: no new wait.
            return Vec::new();
        }
        let current = self.map.shared().word.load(Ordering::Acquire);
        if let Word::Held { .. } = Word::decode(current) {
            // Still held: by the same owner (the slice ran out, a wake without a change: the
            // death watcher's, a spurious one), or by another (a handoff between others, whose
            // new holder woke one more sleeper so that it registers the new holder's death: see
            // `claim_free`). The tasks would find it held too: check the owner if due, register
            // its death and wait again, and leave them asleep.
            match self.arm(state, current) {
                Step::Waiting => return Vec::new(),
                Step::Dead(owner) => state.dead_owner = owner,
                Step::Changed | Step::Broken => {}
            }
        }
        std::mem::take(&mut state.wakers)
    }

    /// Submits a wait on the held word `current` (setting `W` first), after checking its
    /// owner's liveness if that is due (see the module docs). Under the state's mutex.
    fn arm(&self, state: &mut State, current: u64) -> Step {
        if state.broken {
            return Step::Broken;
        }
        let Word::Held { owner, waiters } = Word::decode(current) else {
            return Step::Changed;
        };
        let expected = current | WAITERS;
        if !waiters
            && self
                .map
                .shared()
                .word
                .compare_exchange(current, expected, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return Step::Changed;
        }
        let now = Instant::now();
        if !matches!(state.watched, Some((seen, _)) if seen == owner) {
            state.watched = Some((owner, now));
        }
        // Have the owner's death wake the wait, as a blocking waiter does.
        let reported = state.death.watch(&self.map, owner, self.me);
        let due = reported
            || matches!(state.watched, Some((seen, since))
                if seen == owner && now.duration_since(since) >= self.slice);
        if due && owner != self.me {
            match process::liveness(owner) {
                Liveness::Dead => {
                    state.watched = None;
                    return Step::Dead(owner);
                }
                Liveness::Alive => {
                    state.watched = Some((owner, now));
                    // A death report we cannot confirm (a `hidepid` /proc): back to the slice.
                    state.death.checked();
                }
            }
        }
        match self
            .futex
            .queue()
            .arm(&self.map, word::futex_half(expected))
        {
            Ok(()) => {
                state.armed = Some(expected);
                Step::Waiting
            }
            Err(_) => {
                state.broken = true;
                Step::Broken
            }
        }
    }

    /// Registers the task `key` to be woken at the next news about the held word `current`,
    /// and makes sure a wait on it is submitted.
    fn register(&self, key: usize, waker: &Waker, current: u64) -> Step {
        let (step, woken) = {
            let mut state = self.state();
            let woken = if state.unreaped {
                self.reap(&mut state)
            } else {
                Vec::new()
            };
            (self.register_locked(&mut state, key, waker, current), woken)
        };
        wake(woken);
        step
    }

    fn register_locked(&self, state: &mut State, key: usize, waker: &Waker, current: u64) -> Step {
        if state.broken {
            return Step::Broken;
        }
        let Word::Held { owner, .. } = Word::decode(current) else {
            return Step::Changed;
        };
        if std::mem::replace(&mut state.dead_owner, 0) == owner && owner != self.me {
            return Step::Dead(owner);
        }
        match state.wakers.iter_mut().find(|(k, _)| *k == key) {
            Some((_, registered)) => registered.clone_from(waker),
            None => state.wakers.push((key, waker.clone())),
        }
        match state.armed {
            Some(expected) if expected & !WAITERS == current & !WAITERS => Step::Waiting,
            Some(_) => {
                // A wait on an older value, which a release may have left asleep (its wake went
                // to another sleeper): end it; at its completion the pump looks again.
                if !state.cancelling {
                    state.cancelling = self.futex.queue().cancel().is_ok();
                }
                Step::Waiting
            }
            None => self.arm(state, current),
        }
    }

    /// The task `key` stops waiting (it acquired, failed, or its future was dropped); the
    /// submitted wait is cancelled when it was the last.
    fn forget(&self, key: usize) {
        let mut state = self.state();
        state.wakers.retain(|(k, _)| *k != key);
        // Completions not reaped yet are (almost always) the wait's own end: nothing to
        // cancel then, and no system call on the way out of a won wait.
        if state.wakers.is_empty() && state.armed.is_some() && !state.cancelling && !state.unreaped
        {
            // If the cancellation cannot be submitted, the wait ends with its slice, and is
            // not submitted again (nobody waits).
            state.cancelling = self.futex.queue().cancel().is_ok();
        }
    }
}

/// The ring of the object `id` on `runtime`, made if there is none; `None` if io_uring cannot
/// wait on a futex here, or the table cannot be had (see [`RINGS`]).
fn shared_ring(
    map: &MapRef,
    id: ObjectId,
    runtime: runtime::Id,
    me: u64,
    slice: Duration,
) -> Option<Arc<Ring>> {
    RINGS
        .with(|table| shared_ring_in(table, map, id, runtime, me, slice))
        .flatten()
}

/// [`shared_ring`], inside the table.
fn shared_ring_in(
    table: &mut (u32, Table),
    map: &MapRef,
    id: ObjectId,
    runtime: runtime::Id,
    me: u64,
    slice: Duration,
) -> Option<Arc<Ring>> {
    let pid = sys::getpid();
    if table.0 != pid {
        // A forked child: the parent's rings are not ours (dropping weak references is harmless).
        *table = (pid, Vec::new());
    }
    table.1.retain(|(_, _, ring)| ring.strong_count() > 0);
    if let Some(ring) = table
        .1
        .iter()
        .filter(|(i, r, _)| *i == id && *r == runtime)
        .find_map(|(_, _, ring)| ring.upgrade())
        && ring.usable(id, runtime, pid)
    {
        return Some(ring);
    }
    if SUPPORT.load(Ordering::Relaxed) == REFUSED {
        return None;
    }
    let single_thread = runtime::Handle::try_current()
        .is_ok_and(|rt| rt.runtime_flavor() == runtime::RuntimeFlavor::CurrentThread);
    let futex = match FutexRing::new(slice, single_thread) {
        Ok(futex) => futex,
        Err(err) => {
            // The kernel or a sandbox says no for good; anything else (out of descriptors or
            // memory) is this wait's problem only.
            let for_good = err.kind() == std::io::ErrorKind::Unsupported
                || matches!(
                    err.raw_os_error(),
                    Some(libc::ENOSYS | libc::EPERM | libc::EACCES | libc::EINVAL)
                );
            if for_good {
                SUPPORT.store(REFUSED, Ordering::Relaxed);
            }
            return None;
        }
    };
    SUPPORT.store(WORKS, Ordering::Relaxed);
    let ring = Arc::new_cyclic(|weak| Ring {
        futex,
        id,
        runtime,
        pid,
        map: map.clone(),
        me,
        slice,
        pump: Waker::from(Arc::new(Pump(weak.clone()))),
        state: Mutex::new(State::default()),
    });
    // A ring it replaces (broken) goes from the table; its handles move to this one.
    table.1.retain(|(i, r, _)| !(*i == id && *r == runtime));
    table.1.push((id, runtime, Arc::downgrade(&ring)));
    Some(ring)
}

/// What an io_uring wait did.
pub(super) enum Waited {
    Acquired,
    Pending,
    /// io_uring (or tokio) is not there: use the watcher thread.
    Unavailable,
}

impl Handle {
    /// The ring for this handle's object on the current tokio runtime, kept by the handle.
    fn ring(&mut self, me: u64) -> Option<Arc<Ring>> {
        #[cfg(test)]
        if self.no_uring {
            return None;
        }
        if SUPPORT.load(Ordering::Relaxed) == REFUSED {
            return None;
        }
        let runtime = runtime::Handle::try_current().ok()?.id();
        let pid = sys::getpid();
        let id = self.object.id;
        if let Some(ring) = &self.ring
            && ring.usable(id, runtime, pid)
        {
            return Some(Arc::clone(ring));
        }
        self.drop_ring();
        let ring = shared_ring(&self.object.map, id, runtime, me, SLICE)?;
        self.ring = Some(Arc::clone(&ring));
        Some(ring)
    }

    /// Lets go of this handle's ring; a forked child's copy is leaked rather than dropped (its
    /// registration belongs to the parent's reactor, whose epoll set the child shares).
    pub(super) fn drop_ring(&mut self) {
        if let Some(ring) = self.ring.take()
            && ring.pid != sys::getpid()
        {
            std::mem::forget(ring);
        }
    }

    /// This task no longer waits on the ring (see [`Ring::forget`]).
    pub(super) fn forget_ring_waiter(&self) {
        if let Some(ring) = &self.ring
            && ring.pid == sys::getpid()
        {
            ring.forget(self.waiter_key());
        }
    }

    /// `poll_lock` on a tokio runtime with io_uring: the steps of the watcher path, with the
    /// ring in place of the watcher (see the module docs).
    pub(super) fn poll_uring(&mut self, cx: &mut Context<'_>, me: u64) -> SimpleLockResult<Waited> {
        loop {
            self.check_header()?;
            let shared = self.object.map.shared();
            let current = shared.word.load(Ordering::Acquire);
            match Word::decode(current) {
                Word::Free => {
                    // Others may sleep: keep `W`, so our release wakes them.
                    if self.claim_free(me, me | WAITERS) {
                        self.forget_ring_waiter();
                        return Ok(Waited::Acquired);
                    }
                    continue;
                }
                Word::Removed { died } => {
                    self.reopen(died)?;
                    continue;
                }
                Word::Held { .. } => {}
            }
            let Some(ring) = self.ring(me) else {
                self.forget_ring_waiter();
                return Ok(Waited::Unavailable);
            };
            let key = self.waiter_key();
            match ring.register(key, cx.waker(), current) {
                Step::Waiting => {}
                Step::Changed => continue,
                Step::Broken => {
                    ring.forget(key);
                    return Ok(Waited::Unavailable);
                }
                Step::Dead(owner) => {
                    self.check_namespace()?;
                    if owner != me
                        && process::liveness(owner) == Liveness::Dead
                        && self.take_over(me, current)?
                    {
                        ring.forget(key);
                        return Ok(Waited::Acquired);
                    }
                    continue;
                }
            }
            ring.pump();
            // A release between our look and the submission ends the wait at once (the word
            // is not what it expects); one before our waker was in is seen here.
            if self.object.map.shared().word.load(Ordering::Acquire) & !WAITERS
                != current & !WAITERS
            {
                continue;
            }
            return Ok(Waited::Pending);
        }
    }
}

/// For the tests: whether this process found io_uring futex waits usable.
#[cfg(test)]
pub(super) fn works() -> bool {
    SUPPORT.load(Ordering::Relaxed) == WORKS
}

/// For the tests: whether the handle waits through a ring now (it has one, usable).
#[cfg(test)]
impl Handle {
    pub(super) fn has_ring(&self) -> bool {
        self.ring.as_ref().is_some_and(|ring| {
            ring.pid == sys::getpid() && !ring.state().broken && ring.id == self.object.id
        })
    }
}

#[cfg(test)]
mod tests {
    //! The io_uring path is the one taken on tokio where io_uring works (this machine's kernel
    //! must have it: Linux 6.7+ with `kernel.io_uring_disabled` = 0; the test says so rather
    //! than pass without it), and the watcher thread still serves the waits it cannot.

    use std::future::poll_fn;
    use std::task::Poll;

    use simplelock_core::{ConcreteLock, PreviousHolder};
    use tokio::runtime::{Builder, Runtime};

    use super::super::{Handle, async_lock, testing};
    use super::*;

    fn current_thread() -> Runtime {
        Builder::new_current_thread().enable_all().build().unwrap()
    }

    fn multi_thread() -> Runtime {
        Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    }

    /// The lock `tag`, held by the first handle; the second one will wait.
    fn held(tag: &str) -> (String, Handle, Handle) {
        let name = format!("/slt-{}-uring-{tag}", std::process::id());
        let mut holder = Handle::new(&name).unwrap();
        holder.try_lock().unwrap();
        let waiter = Handle::new(&name).unwrap();
        (name, holder, waiter)
    }

    /// Closes the handles and removes the lock `name`.
    fn finish<T>(name: &str, handles: T) {
        drop(handles);
        assert!(Handle::remove(name).unwrap());
    }

    /// Polls `waiter` once in `runtime`: it must be `Pending` (the lock is held).
    fn pending_once(runtime: &Runtime, waiter: &mut Handle) {
        runtime.block_on(poll_fn(|cx| {
            assert!(waiter.poll_lock(cx).is_pending(), "the lock is held");
            Poll::Ready(())
        }));
    }

    /// `waiter` waits until it holds the lock; right after its first `Pending`, `at_first`
    /// runs (which releases or kills the holder): the wake of that must bring the lock.
    async fn wait_after(waiter: &mut Handle, at_first: impl FnOnce(&Handle)) {
        let mut at_first = Some(at_first);
        tokio::time::timeout(
            Duration::from_secs(60),
            poll_fn(|cx| {
                let polled = waiter.poll_lock(cx);
                if let Some(at_first) = at_first.take() {
                    assert!(polled.is_pending(), "the lock is held");
                    at_first(waiter);
                }
                polled
            }),
        )
        .await
        .expect("the release (or death) did not wake the waiter")
        .unwrap();
    }

    /// How the waiter's first `Pending` was served.
    #[derive(Debug, PartialEq)]
    enum Served {
        Ring,
        Watcher,
    }

    /// A task of `runtime` waits while another handle holds the lock, which it releases right
    /// after the waiter's first `Pending`: how that `Pending` was served.
    fn handoff(runtime: &Runtime, tag: &str, no_uring: bool) -> Served {
        let (name, mut holder, mut waiter) = held(tag);
        waiter.no_uring = no_uring;
        let task = runtime.spawn(async move {
            let mut served = None;
            wait_after(&mut waiter, |waiter| {
                let ring = waiter.has_ring();
                let watcher = async_lock::has_watcher(waiter.object.id);
                assert_ne!(ring, watcher, "served by exactly one of them");
                served = Some(if ring { Served::Ring } else { Served::Watcher });
                // The release's wake must reach this task through what serves it.
                holder.try_unlock().unwrap();
            })
            .await;
            waiter.try_unlock().unwrap();
            (served.unwrap(), waiter)
        });
        let (served, waiter) = runtime.block_on(task).unwrap();
        finish(&name, waiter);
        served
    }

    #[test]
    fn a_tokio_waiter_waits_in_io_uring_on_a_current_thread_runtime() {
        let served = handoff(&current_thread(), "ct", false);
        assert!(works(), "io_uring futex waits are not available here");
        assert_eq!(served, Served::Ring);
    }

    #[test]
    fn a_tokio_waiter_waits_in_io_uring_on_a_multi_thread_runtime() {
        let served = handoff(&multi_thread(), "mt", false);
        assert!(works(), "io_uring futex waits are not available here");
        assert_eq!(served, Served::Ring);
    }

    #[test]
    fn without_io_uring_the_watcher_thread_serves_a_current_thread_runtime() {
        assert_eq!(handoff(&current_thread(), "ct-fb", true), Served::Watcher);
    }

    #[test]
    fn without_io_uring_the_watcher_thread_serves_a_multi_thread_runtime() {
        assert_eq!(handoff(&multi_thread(), "mt-fb", true), Served::Watcher);
    }

    /// Outside any tokio runtime (another executor), the watcher thread serves the wait.
    #[test]
    fn without_a_tokio_runtime_the_watcher_thread_serves() {
        let (name, mut holder, mut waiter) = held("no-rt");
        let mut cx = Context::from_waker(Waker::noop());
        assert!(waiter.poll_lock(&mut cx).is_pending());
        assert!(!waiter.has_ring());
        assert!(async_lock::has_watcher(waiter.object.id));
        waiter.cancel_wait();
        holder.try_unlock().unwrap();
        finish(&name, (holder, waiter));
    }

    /// A future dropped while it waits in the ring leaves nothing that takes the lock, and its
    /// wait in the kernel is cancelled: the ring is idle, and the lock free for anyone.
    #[test]
    fn a_dropped_wait_cancels_the_rings_wait() {
        let (name, mut holder, mut waiter) = held("drop");
        let runtime = current_thread();
        pending_once(&runtime, &mut waiter);
        let ring = Arc::clone(waiter.ring.as_ref().unwrap());
        assert!(ring.state().armed.is_some());
        waiter.cancel_wait();
        runtime.block_on(async {
            // The cancellation's completion reaches the pump through the reactor.
            tokio::time::timeout(
                Duration::from_secs(60),
                poll_fn(|cx| {
                    if ring.state().armed.is_none() {
                        return Poll::Ready(());
                    }
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }),
            )
            .await
            .expect("the ring's wait was not cancelled");
        });
        assert!(ring.state().wakers.is_empty());
        holder.try_unlock().unwrap();
        assert!(!waiter.holds(waiter.me().unwrap()));
        waiter.try_lock().unwrap();
        waiter.try_unlock().unwrap();
        finish(&name, (holder, waiter));
    }

    /// A current-thread runtime's ring accepts one thread only (`DEFER_TASKRUN`): when the
    /// runtime is driven from another thread later, the wait there still gets the lock (the
    /// old ring is found broken, and replaced by one of the new thread's).
    #[test]
    fn a_current_thread_runtime_driven_from_another_thread_still_hands_over() {
        let (name, mut holder, mut waiter) = held("threads");
        let runtime = current_thread();
        pending_once(&runtime, &mut waiter);
        assert!(waiter.has_ring());
        waiter.cancel_wait();
        std::thread::scope(|s| {
            s.spawn(|| {
                runtime.block_on(wait_after(&mut waiter, |_| holder.try_unlock().unwrap()));
            });
        });
        waiter.try_unlock().unwrap();
        finish(&name, (holder, waiter));
    }

    /// A task that got `Pending` and then takes the lock on its fast path (polled again before
    /// the ring's wake) leaves no waker with the ring: a stale one would keep a futex wait
    /// submitted for nobody, which could take a release's one wake from a sleeper elsewhere.
    #[test]
    fn a_wait_won_on_the_fast_path_leaves_the_ring() {
        let (name, mut holder, mut waiter) = held("fast");
        current_thread().block_on(poll_fn(|cx| {
            assert!(waiter.poll_lock(cx).is_pending());
            holder.try_unlock().unwrap();
            assert!(matches!(waiter.poll_lock(cx), Poll::Ready(Ok(()))));
            Poll::Ready(())
        }));
        assert!(waiter.ring.as_ref().unwrap().state().wakers.is_empty());
        waiter.try_unlock().unwrap();
        finish(&name, (holder, waiter));
    }

    /// A task that spent tokio's cooperative budget before it waits: the pump, run inline by
    /// the task's poll, must not be refused for want of budget. Where no worker runs the task
    /// (a multi-thread runtime's `block_on`), tokio wakes a waker so refused at once, and the
    /// pump's waker runs the pump again (it recursed until the stack overflowed).
    #[test]
    fn a_wait_after_the_tasks_budget_is_spent_hands_over() {
        let (name, mut holder, mut waiter) = held("budget");
        multi_thread().block_on(async {
            while tokio::task::coop::has_budget_remaining() {
                tokio::task::coop::consume_budget().await;
            }
            wait_after(&mut waiter, |_| holder.try_unlock().unwrap()).await;
        });
        waiter.try_unlock().unwrap();
        finish(&name, (holder, waiter));
    }

    /// A handoff between two other processes (the new holder, a sleeper that took the lock,
    /// wakes one more sleeper so that it registers the new holder's death: see `claim_free`)
    /// that wakes the ring is the pump's business: it re-arms on the new holder, registering
    /// its death, and leaves the tasks asleep (woken, each would find the lock held and
    /// register again: all the tasks of the ring at every handoff between others). The release
    /// then wakes them.
    #[test]
    fn a_handoff_between_others_leaves_the_rings_tasks_asleep() {
        use std::sync::atomic::AtomicUsize;

        struct Counter(AtomicUsize);
        impl Wake for Counter {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }

        let (name, holder, mut waiter) = held("others");
        let (mut first, first_token) = testing::sleeping_process();
        let (mut second, second_token) = testing::sleeping_process();
        waiter.held_by(first_token);
        let woken = Arc::new(Counter(AtomicUsize::new(0)));
        let task_waker = Waker::from(Arc::clone(&woken));
        let word = &holder.object.map.shared().word;
        current_thread().block_on(async {
            let mut cx = Context::from_waker(&task_waker);
            assert!(waiter.poll_lock(&mut cx).is_pending());
            let ring = Arc::clone(waiter.ring.as_ref().unwrap());
            assert_eq!(ring.state().armed, Some(first_token | WAITERS));
            // The handoff, as the new holder's `claim_free` makes it.
            word.store(second_token | WAITERS, Ordering::SeqCst);
            sys::futex_wake(word, 1).unwrap();
            tokio::time::timeout(Duration::from_secs(60), async {
                while woken.0.load(Ordering::SeqCst) == 0
                    && ring.state().armed != Some(second_token | WAITERS)
                {
                    tokio::task::yield_now().await;
                }
            })
            .await
            .expect("the pump never ran");
            assert_eq!(woken.0.load(Ordering::SeqCst), 0, "the tasks were woken");
            // The release wakes them.
            word.store(0, Ordering::SeqCst);
            sys::futex_wake(word, 1).unwrap();
            tokio::time::timeout(Duration::from_secs(60), async {
                while woken.0.load(Ordering::SeqCst) == 0 {
                    tokio::task::yield_now().await;
                }
            })
            .await
            .expect("the release did not wake the task");
            assert!(matches!(waiter.poll_lock(&mut cx), Poll::Ready(Ok(()))));
        });
        waiter.try_unlock().unwrap();
        for child in [&mut first, &mut second] {
            child.kill().unwrap();
            child.wait().unwrap();
        }
        finish(&name, (holder, waiter));
    }

    /// 100 tasks of one runtime waiting on one lock share one ring.
    #[test]
    fn the_waiters_of_a_lock_share_one_ring() {
        let (name, mut holder, waiter) = held("share");
        let runtime = current_thread();
        let mut waiters: Vec<Handle> = (0..99).map(|_| Handle::new(&name).unwrap()).collect();
        waiters.push(waiter);
        for waiter in &mut waiters {
            pending_once(&runtime, waiter);
        }
        let first = waiters[0].ring.as_ref().unwrap();
        assert!(
            waiters
                .iter()
                .all(|w| Arc::ptr_eq(w.ring.as_ref().unwrap(), first))
        );
        assert_eq!(first.state().wakers.len(), 100);
        for waiter in &mut waiters {
            waiter.cancel_wait();
        }
        holder.try_unlock().unwrap();
        finish(&name, (holder, waiters));
    }

    /// A holder killed while a task waits in the ring: the death watcher's wake ends the ring's
    /// wait, the pump finds the owner dead, and the task takes over, told of the death.
    #[test]
    fn the_death_of_the_holder_wakes_a_task_waiting_in_the_ring() {
        let (name, mut holder, mut waiter) = held("death");
        holder.try_unlock().unwrap();
        let (mut child, token) = testing::sleeping_process();
        waiter.held_by(token);
        current_thread().block_on(wait_after(&mut waiter, |waiter| {
            assert!(waiter.has_ring());
            child.kill().unwrap();
        }));
        assert_eq!(waiter.previous_holder(), PreviousHolder::Died);
        waiter.try_unlock().unwrap();
        child.wait().unwrap();
        finish(&name, (holder, waiter));
    }
}
