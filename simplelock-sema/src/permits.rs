//! [`SemaphorePermits`]: a counting semaphore of N permits in shared memory, each permit a
//! [`SemaphoreLock`] word, for processes that take permits at futex speed.
//!
//! # Design: N lock words, one futex wait over all of them
//!
//! The semaphore `/NAME` of N permits is made of objects that are each a [`SemaphoreLock`]:
//!
//! - `/NAME.permit0` … `/NAME.permit{N-1}`: the permits. Taking permit *i* is taking that lock;
//!   so each permit has an owner token (process id and start time), a dead owner is taken over
//!   by the next taker after the liveness check of [`SemaphoreLock`] and reported
//!   [`PreviousHolder::Died`], a forked child does not hold its parent's permit, and the
//!   objects are opened through the same hardened path (this user's objects only, no wider mode
//!   than asked, complete, checked generation, same namespaces). Nothing of that is copied:
//!   this module composes [`SemaphoreLock`]s.
//! - `/NAME.of{N}`: the marker that says how many permits the semaphore has. It is created,
//!   and looked for (every `of1` … `of64`), under `/NAME.permits`, a lock held for those few
//!   system calls only (crash-safe as every lock of this crate): a handle asking for another N
//!   than an existing marker says is refused with [`SimpleLockError::permits_disagree`]'s
//!   error.
//!
//! These names are the semaphore's: a lock called `NAME.permit0`, `NAME.of3` or
//! `NAME.permits` is one of its objects (taking it would take a permit, or block openers).
//! Choose lock names that do not end that way next to a semaphore `NAME`.
//!
//! Why not one object with a counter? A counter (`sem_wait`'s design) cannot tell whose
//! permit a dead process held, so it cannot give it back; a per-slot owner array in one object
//! can, but would need its own object format, opening path and recovery proofs next to those
//! of the lock word, which have been reviewed and attacked once. Composition costs N objects
//! in `/dev/shm` (and at most 64 permits), and keeps every argument of the lock's docs.
//!
//! Taking a permit tries the words that look free (one load each), each with one
//! compare-and-swap. A waiter that finds all N held sets the waiters bit on each word and
//! sleeps in one `futex_waitv(2)` on all N (Linux 5.16+; before that, on the first word with a
//! 10 ms slice): a release of any permit — which wakes futex waiters since the bit is set —
//! wakes it. Before that sleep it registers the holder of every permit with the process's
//! death watcher (the registration of a [`SemaphoreLock`] waiter, one per permit word; see
//! `death.rs` in the sources): the death of any permit's holder wakes the sleep too, and the
//! waiter then tries, besides the words that look free, those whose holder was reported dead
//! (a try checks the holder in `/proc` and takes a dead holder's permit over). So a permit of a
//! SIGKILLed holder comes back about as fast as a [`SemaphoreLock`] of one. Every 10 ms
//! without a wake it still tries every word with the liveness check: the fallback where the
//! death watcher cannot tell (no pidfds; and before Linux 5.16, where the sleep is on one word
//! only, for the deaths of the other permits' holders).
//!
//! `holders()` lists each permit's live holder: its process id, and when it took the permit —
//! a taker writes the time into its permit's object after taking it (two fields of the lock
//! object that a plain [`SemaphoreLock`] leaves zero, written as a seqlock under the holder's
//! token, so a reader never pairs one holder with another's time). A holder killed before it
//! wrote the time is listed without one.
//!
//! Async waits (`lock_async().await`, on any runtime) compose the permits' own async waits:
//! a poll polls each permit's [`SemaphoreLock`] in turn, which either takes it (the same
//! compare-and-swap as `try_lock`) or registers the task with the watcher thread of that
//! permit's object (one thread per object awaited in the process, asleep on its futex; with the
//! feature `tokio`, on a tokio runtime, that object's io_uring futex wait instead; see
//! `SemaphoreLock`'s async waits). So a release of any permit wakes the task, a dead holder's
//! death wakes its permit's watcher (which registers it with the death watcher as every
//! waiter does; within a slice where that cannot tell), and a permit is only taken inside a poll
//! that returns it; once one is taken, and when the future is dropped, the task's other
//! registrations are removed. Like `SemaphoreLock`'s, an async wait never reports
//! `WouldDeadlock`.
//!
//! A thread that holds all N permits through N handles of this process and waits for another
//! (`hang_lock`) gets [`WouldDeadlock`](SimpleLockError::WouldDeadlock) (the core's
//! [`HeldPermit`] keeps the count).

use std::fmt;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use simplelock_core::permits::{HeldPermit, check_permits, first_holder, out_of_time};
use simplelock_core::{
    AsyncConcreteLock, ConcreteLock, Holder, LockStatus, PermitState, Permits, PreviousHolder,
    SimpleLockError, SimpleLockResult, Wait,
};

use crate::SemaphoreLock;
use crate::death::HolderWatch;
use crate::sys::{self, Woke};

/// How long a waiter sleeps at most before it checks the holders' liveness: the lock's slice.
const SLICE: Duration = Duration::from_millis(10);

/// A handle on a counting semaphore of N permits in shared memory; it takes at most one.
///
/// A [`ConcreteLock`] whose lock takes one of the N permits (see
/// [`simplelock_core::permits`]), plus [`Permits`]. Dropping a holding handle gives its permit
/// back (its permit's [`SemaphoreLock`] is dropped); so does the death of its process, noticed
/// by the next taker. See the [module docs](self) for the design.
///
/// ```
/// use simplelock_core::{ConcreteLock, LockStatus, Permits, SimpleLockError};
/// use simplelock_sema::SemaphorePermits;
/// # let name = format!("doc-permits-{}", std::process::id());
///
/// let mut first = SemaphorePermits::named(&name, 2)?;
/// let mut second = SemaphorePermits::named(&name, 2)?;
/// let mut third = SemaphorePermits::named(&name, 2)?;
/// first.try_lock()?;
/// second.try_lock()?;
/// assert_eq!(third.status()?, LockStatus::Taken);
/// assert!(matches!(third.try_lock(), Err(SimpleLockError::AlreadyLocked { .. })));
/// assert!(SemaphorePermits::named(&name, 3).is_err()); // it has 2 permits
/// # drop((first, second, third));
/// # SemaphorePermits::remove(&name)?;
/// # Ok::<(), SimpleLockError>(())
/// ```
pub struct SemaphorePermits {
    name: String,
    slots: Vec<SemaphoreLock>,
    /// The permit held, in the process that took it (a forked child is not the holder).
    held: HeldPermit,
    previous: PreviousHolder,
}

impl SemaphorePermits {
    /// The most permits a semaphore of this backend has.
    pub const MAX: u32 = 64;

    /// A handle on the semaphore `name` (`"/name"` or `"name"`) with `permits` permits, created
    /// if missing (mode `0o600`).
    ///
    /// # Errors
    /// [`SimpleLockError::InvalidName`] for a bad name (the objects' names add up to 9 bytes to
    /// it), 0 permits or more than [`MAX`](SemaphorePermits::MAX); the error of
    /// [`SimpleLockError::permits_disagree`] if the semaphore exists with another number of
    /// permits; the errors of [`SemaphoreLock::new`].
    pub fn named(name: &str, permits: u32) -> SimpleLockResult<SemaphorePermits> {
        let canonical = format!("/{}", name.strip_prefix('/').unwrap_or(name));
        check_permits(&canonical, permits, SemaphorePermits::MAX)?;
        let mut guard = SemaphoreLock::named(&format!("{canonical}.permits"))?;
        guard.hang_lock()?;
        let agreed = agree(&canonical, permits);
        let unlocked = guard.try_unlock();
        agreed?;
        unlocked?;
        let slots = (0..permits)
            .map(|slot| SemaphoreLock::named(&slot_name(&canonical, slot)))
            .collect::<SimpleLockResult<_>>()?;
        Ok(SemaphorePermits {
            held: HeldPermit::new(format!("sema:{canonical}")),
            name: canonical,
            slots,
            previous: PreviousHolder::Unknown,
        })
    }

    /// A handle on the semaphore `name` if it exists, creating nothing; `Ok(None)` if it does
    /// not (or is being created right now).
    ///
    /// # Errors
    /// Those of [`named`](SemaphorePermits::named), a disagreeing number of permits included.
    pub fn open_existing(name: &str, permits: u32) -> SimpleLockResult<Option<SemaphorePermits>> {
        let canonical = format!("/{}", name.strip_prefix('/').unwrap_or(name));
        check_permits(&canonical, permits, SemaphorePermits::MAX)?;
        match existing_permits(&canonical)? {
            None => return Ok(None),
            Some(existing) if existing != permits => {
                return Err(SimpleLockError::permits_disagree(
                    canonical, existing, permits,
                ));
            }
            Some(_) => {}
        }
        let mut slots = Vec::new();
        for slot in 0..permits {
            match SemaphoreLock::open_existing(slot_name(&canonical, slot))? {
                Some(lock) => slots.push(lock),
                None => return Ok(None),
            }
        }
        Ok(Some(SemaphorePermits {
            held: HeldPermit::new(format!("sema:{canonical}")),
            name: canonical,
            slots,
            previous: PreviousHolder::Unknown,
        }))
    }

    /// Deletes the semaphore `name`'s objects (its permits, its marker and the lock that
    /// guards the marker), each as [`SemaphoreLock::remove`] does, safely while in use: a
    /// holder keeps its permit until it gives it back, and later openers make a new semaphore.
    /// `Ok(false)` if it did not exist.
    ///
    /// # Errors
    /// Those of [`SemaphoreLock::remove`].
    pub fn remove(name: &str) -> SimpleLockResult<bool> {
        let canonical = format!("/{}", name.strip_prefix('/').unwrap_or(name));
        let mut guard = SemaphoreLock::named(&format!("{canonical}.permits"))?;
        guard.hang_lock()?;
        let removed = (|| {
            let Some(permits) = existing_permits(&canonical)? else {
                return Ok(false);
            };
            SemaphoreLock::remove(marker_name(&canonical, permits))?;
            for slot in 0..permits {
                SemaphoreLock::remove(slot_name(&canonical, slot))?;
            }
            Ok(true)
        })();
        guard.try_unlock()?;
        guard.unlink()?;
        removed
    }

    /// The semaphore's name, canonical (`"/name"`), as its errors carry it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// One try of the permits: every one with its liveness check if `all`, else only those
    /// whose word looks free or whose holder's death was reported in `deaths` (the waiter's
    /// registrations, by permit; empty before the first sleep); `slept`: after a sleep (then a
    /// taken word keeps its waiters bit, so that its release wakes the next sleeper).
    /// `Ok(true)`: one is ours now.
    fn try_take(
        &mut self,
        all: bool,
        slept: bool,
        deaths: &mut [HolderWatch],
    ) -> SimpleLockResult<bool> {
        for (index, slot) in self.slots.iter_mut().enumerate() {
            let death = deaths.get_mut(index);
            let reported = death.as_ref().is_some_and(|d| d.reported_any());
            if !all && !reported && !slot.looks_free() {
                continue;
            }
            if let (true, Some(death)) = (reported, death) {
                // The try checks the holder (a try of a held word does): if it lives after all
                // (a `hidepid` /proc), this permit is back to the slice.
                death.checked();
            }
            let taken = if slept {
                slot.try_lock_after_sleep()
            } else {
                slot.try_lock()
            };
            match taken {
                Ok(()) => {
                    slot.record_since(SystemTime::now());
                    self.previous = slot.previous_holder();
                    self.held.took(index as u32);
                    return Ok(true);
                }
                Err(SimpleLockError::AlreadyLocked { .. }) => {}
                Err(other) => return Err(other),
            }
        }
        Ok(false)
    }

    fn acquire(&mut self, wait: Wait) -> SimpleLockResult<()> {
        self.acquire_sliced(wait, SLICE)
    }

    /// [`acquire`](SemaphorePermits::acquire), sleeping at most `slice` before it checks every
    /// holder's liveness: [`SLICE`], longer in a test that must tell a wake by a death from the
    /// end of a slice.
    fn acquire_sliced(&mut self, wait: Wait, slice: Duration) -> SimpleLockResult<()> {
        // In a forked child, `held` names the parent's permit: not ours, forgotten here.
        let permits = self.permits();
        self.held.before_acquire(&self.name, permits, wait)?;
        let wait = wait.start();
        let mut all = true;
        let mut slept = false;
        // The registrations with the death watcher, one per permit (made before the first
        // sleep: a try allocates nothing).
        let mut deaths: Vec<HolderWatch> = Vec::new();
        loop {
            if self.try_take(all, slept, &mut deaths)? {
                return Ok(());
            }
            let Some(nap) = wait.sleep_slice(slice) else {
                return Err(out_of_time(&wait, &self.name, self.holders()));
            };
            let armed: Vec<_> = self
                .slots
                .iter()
                .filter_map(SemaphoreLock::arm_waiter)
                .collect();
            if armed.len() < self.slots.len() {
                all = false; // one was given back meanwhile: try again at once
                continue;
            }
            // Have each holder's death wake the sleep, as a blocking waiter on one lock does
            // (see `death.rs`); a holder reported dead already is tried at once instead.
            deaths.resize_with(self.slots.len(), HolderWatch::default);
            let mut reported = false;
            for (slot, death) in self.slots.iter().zip(&mut deaths) {
                reported |= slot.watch_holder(death)?;
            }
            if reported {
                all = false;
                continue;
            }
            slept = true;
            let woke = match sys::futex_waitv(&armed, nap) {
                Err(err) if err.raw_os_error() == Some(libc::ENOSYS) => {
                    let (word, expected) = armed[0];
                    sys::futex_wait(word, expected, nap)
                }
                other => other,
            };
            all = match woke {
                // A release or a death: try the free-looking words and those whose holder was
                // reported dead. A timeout: check every holder.
                Ok(Woke::Woken | Woke::Changed | Woke::Interrupted) => false,
                Ok(Woke::TimedOut) => true,
                Err(err) => {
                    return Err(SimpleLockError::unknown(
                        &self.name,
                        "waiting on the futexes of the permits",
                        Some(Box::new(err)),
                    ));
                }
            };
        }
    }
}

fn slot_name(canonical: &str, slot: u32) -> String {
    format!("{canonical}.permit{slot}")
}

fn marker_name(canonical: &str, permits: u32) -> String {
    format!("{canonical}.of{permits}")
}

/// The number of permits the marker of `canonical` says, if there is one.
fn existing_permits(canonical: &str) -> SimpleLockResult<Option<u32>> {
    for permits in 1..=SemaphorePermits::MAX {
        if SemaphoreLock::open_existing(marker_name(canonical, permits))?.is_some() {
            return Ok(Some(permits));
        }
    }
    Ok(None)
}

/// Under the guard lock: creates the marker of `permits`, or checks that the existing one
/// says the same.
fn agree(canonical: &str, permits: u32) -> SimpleLockResult<()> {
    match existing_permits(canonical)? {
        Some(existing) if existing != permits => Err(SimpleLockError::permits_disagree(
            canonical, existing, permits,
        )),
        Some(_) => Ok(()),
        None => SemaphoreLock::named(&marker_name(canonical, permits)).map(drop),
    }
}

impl ConcreteLock for SemaphorePermits {
    /// `Mine` if this handle holds a permit; `Taken` if live processes hold all of them; else
    /// `Open`.
    fn status(&self) -> SimpleLockResult<LockStatus> {
        if self.held.permit().is_some() {
            return Ok(LockStatus::Mine);
        }
        for slot in &self.slots {
            if slot.status()? == LockStatus::Open {
                return Ok(LockStatus::Open);
            }
        }
        Ok(LockStatus::Taken)
    }

    /// Take a free permit (or one whose holder died), or fail at once.
    ///
    /// # Errors
    /// [`SimpleLockError::AlreadyLocked`] naming a holder if live processes hold all,
    /// [`SimpleLockError::AlreadyHeld`] if this handle holds one.
    fn try_lock(&mut self) -> SimpleLockResult<()> {
        self.acquire(Wait::Try)
    }

    /// Take a permit, sleeping on the permits' futexes as long as it takes.
    fn hang_lock(&mut self) -> SimpleLockResult<()> {
        self.acquire(Wait::Forever)
    }

    /// Take a permit, waiting at most `timeout` (monotonic clock).
    fn timed_lock(&mut self, timeout: Duration) -> SimpleLockResult<()> {
        self.acquire(Wait::For(timeout))
    }

    /// Give the permit back (waking a waiter, if one sleeps).
    ///
    /// # Errors
    /// [`SimpleLockError::NotHeld`] if this handle holds no permit in this process, and the
    /// errors of [`SemaphoreLock`]'s unlock.
    fn try_unlock(&mut self) -> SimpleLockResult<()> {
        let Some(slot) = self.held.permit() else {
            return Err(SimpleLockError::not_held(&self.name));
        };
        self.slots[slot as usize].try_unlock()?;
        self.held.gave_back();
        Ok(())
    }

    fn previous_holder(&self) -> PreviousHolder {
        self.previous
    }

    fn holder(&self) -> SimpleLockResult<Option<Holder>> {
        Ok(first_holder(&self.holders()?))
    }
}

/// Async waits on any runtime: see the [module docs](self).
impl AsyncConcreteLock for SemaphorePermits {
    /// The task's registrations live with the permits' watchers, keyed by their handles.
    type WaitState = ();

    fn poll_lock(
        &mut self,
        state: &mut Option<()>,
        cx: &mut Context<'_>,
    ) -> Poll<SimpleLockResult<()>> {
        if state.is_none() {
            // A bounded wait as far as `WouldDeadlock` goes: tasks of one thread interleave.
            let permits = self.permits();
            self.held.before_acquire(&self.name, permits, Wait::Try)?;
            *state = Some(());
        }
        for index in 0..self.slots.len() {
            match self.slots[index].poll_lock(&mut None, cx) {
                Poll::Ready(Ok(())) => {
                    self.cancel_wait(); // the other permits' registrations
                    let slot = &self.slots[index];
                    slot.record_since(SystemTime::now());
                    self.previous = slot.previous_holder();
                    self.held.took(index as u32);
                    return Poll::Ready(Ok(()));
                }
                Poll::Ready(Err(err)) => {
                    self.cancel_wait();
                    return Poll::Ready(Err(err));
                }
                Poll::Pending => {}
            }
        }
        Poll::Pending
    }

    fn cancel_wait(&mut self) {
        for slot in &mut self.slots {
            slot.cancel_wait();
        }
    }
}

impl Permits for SemaphorePermits {
    fn permits(&self) -> u32 {
        self.slots.len() as u32
    }

    fn held_permit(&self) -> Option<u32> {
        self.held.permit()
    }

    /// Each permit's live holder: process id, and since when (see the [module docs](self)).
    fn holders(&self) -> SimpleLockResult<Vec<PermitState>> {
        self.slots
            .iter()
            .map(|slot| {
                Ok(match slot.holder_since()? {
                    Some(holder) => PermitState::Held(Some(holder)),
                    None => PermitState::Free,
                })
            })
            .collect()
    }
}

impl fmt::Debug for SemaphorePermits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemaphorePermits")
            .field("name", &self.name)
            .field("permits", &self.slots.len())
            .field("held_permit", &self.held_permit())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A waiter on all the permits is woken by the death of their holder (through its pidfd,
    /// see `death.rs`), not at the end of its slice: the slice here is an hour.
    #[test]
    fn the_death_of_the_holder_wakes_a_waiter_on_the_permits() {
        use std::sync::mpsc;

        use crate::lock::testing;

        let name = format!("slt-{}-unit-permits-death", std::process::id());
        let mut waiter = SemaphorePermits::named(&name, 2).unwrap();
        let (mut child, token) = testing::sleeping_process();
        for slot in &waiter.slots {
            slot.held_by(token);
        }
        let (tid_tx, tid_rx) = mpsc::channel();
        let (done_tx, done) = mpsc::channel();
        // Not scoped: a waiter the death did not wake would sleep for the hour.
        std::thread::spawn(move || {
            tid_tx.send(nix::unistd::gettid().as_raw()).unwrap();
            let taken = waiter.acquire_sliced(Wait::Forever, Duration::from_secs(3600));
            let previous = waiter.previous_holder();
            drop(waiter);
            done_tx.send((taken, previous)).unwrap();
        });
        testing::wait_until_asleep(tid_rx.recv().unwrap());
        child.kill().unwrap();
        let (taken, previous) = done
            .recv_timeout(Duration::from_secs(60))
            .expect("not woken by the death");
        taken.unwrap();
        assert_eq!(previous, PreviousHolder::Died);
        child.wait().unwrap();
        assert!(SemaphorePermits::remove(&name).unwrap());
    }

    #[test]
    fn names_of_the_objects() {
        assert_eq!(slot_name("/x", 3), "/x.permit3");
        assert_eq!(marker_name("/x", 4), "/x.of4");
    }
}
