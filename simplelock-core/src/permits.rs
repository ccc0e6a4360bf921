//! Counting semaphores: [`Permits`], what a backend's N-permit handle adds to a lock, and
//! [`PermitState`], what it reports about each permit.
//!
//! # A permit handle is a lock
//!
//! A counting semaphore lets at most N holders in at once ("at most 4 builds", "at most 2 jobs
//! on the API"). Each backend offers it as a *permit handle*: a handle on the semaphore that
//! holds at most one of its N permits, and that implements [`ConcreteLock`] — taking a permit is
//! `try_lock` / `hang_lock` / `timed_lock`, giving it back is `try_unlock`, and its
//! [`status`](ConcreteLock::status) is [`Mine`](crate::LockStatus::Mine) while this handle holds
//! a permit, [`Taken`](crate::LockStatus::Taken) while all N are held by others and
//! [`Open`](crate::LockStatus::Open) while one is free. So everything built on locks works on
//! permits unchanged — [`LockBuilder`](crate::LockBuilder) and its waits, guards,
//! [`lock_until_finished`](crate::lock_until_finished), [`previous_holder`](ConcreteLock::previous_holder)
//! (how the previous holder of *the permit taken* let go of it), the conformance suite (a
//! one-permit semaphore must pass it as a lock) — and a reader who knows locks knows permits:
//!
//! ```
//! # use simplelock_core::{ConcreteLock, Lock, LockBuilder, Permits, SimpleLockResult};
//! fn at_most_n_builds(permit: impl ConcreteLock + Permits) -> SimpleLockResult<()> {
//!     let n = permit.permits();
//!     let mut permit = LockBuilder::default()
//!         .with_timeout(std::time::Duration::from_secs(60))
//!         .apply(permit);
//!     let guard = permit.guard()?; // one of the n permits, or TimedOut
//!     // ... at most n processes are here at once ...
//!     # let _ = n;
//!     guard.unlock()
//! }
//! ```
//!
//! What only a semaphore has is in [`Permits`]: how many permits it has, which one this handle
//! holds, and who holds each.
//!
//! The alternative — a semaphore type with `acquire() -> Permit` returning permit guards, as
//! `tokio::sync::Semaphore` has — would need its own builder, waits, guards and conformance
//! checks, all copies of the lock ones, and one handle could then hold several permits, which
//! makes "the previous holder died" and "who holds it" harder to say. A process that wants two
//! permits opens two handles.
//!
//! # For implementors
//!
//! - Never more than [`permits`](Permits::permits) handles hold a permit at once, across
//!   processes; a handle holds at most one ([`AlreadyHeld`](crate::SimpleLockError::AlreadyHeld)
//!   on a second lock, as for locks).
//! - N is part of the semaphore: a handle opened with another N than the semaphore has is
//!   refused with [`SimpleLockError::permits_disagree`], never silently merged.
//! - A permit whose holder ends without giving it back comes back (crash-safe backends), and
//!   the next taker of that permit learns it through
//!   [`previous_holder`](ConcreteLock::previous_holder).
//! - [`holder`](ConcreteLock::holder) names one holder (the first listed by
//!   [`holders`](Permits::holders)); errors of a wait that found all permits taken carry it
//!   ([`out_of_time`] makes them).
//! - A thread that holds every permit (through other handles of its process) and waits for
//!   one more without end gets [`WouldDeadlock`](crate::SimpleLockError::WouldDeadlock), as a
//!   lock's does; [`HeldPermit`] keeps which permit a handle holds, in which process, and the
//!   per-thread count in [`HeldHere`] that tells.
//! - The checks every backend's permits should pass beyond the lock suite are in
//!   `conformance::permits` (feature `conformance`).

use std::collections::HashMap;
use std::io;
use std::sync::Mutex;
use std::thread::ThreadId;

use crate::{ConcreteLock, Holder, SimpleLockError, SimpleLockResult, Wait};

/// What a counting semaphore's permit handle has beyond the lock it is: see the
/// [module docs](crate::permits).
///
/// A permit handle implements [`ConcreteLock`]: locking takes one permit, unlocking gives it
/// back, [`status`](ConcreteLock::status) is `Mine` while this handle holds one, `Taken` while
/// all are held by others, `Open` while one is free.
pub trait Permits: ConcreteLock {
    /// How many holders the semaphore allows at once: its N.
    fn permits(&self) -> u32;

    /// The permit this handle holds (`0..permits()`), if it holds one.
    fn held_permit(&self) -> Option<u32>;

    /// The state of each permit now, one entry per permit, in permit order.
    ///
    /// A snapshot: permits may be taken or given back right after.
    ///
    /// # Errors
    /// Those of reading the semaphore's object (removed, unreadable, damaged).
    fn holders(&self) -> SimpleLockResult<Vec<PermitState>>;
}

/// One permit of a semaphore, as [`Permits::holders`] reports it.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PermitState {
    /// Nobody holds it.
    Free,
    /// Somebody holds it: who, and since when, where the backend can tell (`None` while a
    /// taker has not written its record yet, or where the backend keeps none).
    Held(Option<Holder>),
}

impl PermitState {
    /// Whether somebody holds this permit.
    pub fn is_held(&self) -> bool {
        matches!(self, PermitState::Held(_))
    }

    /// The holder, where known.
    pub fn holder(&self) -> Option<&Holder> {
        match self {
            PermitState::Held(holder) => holder.as_ref(),
            PermitState::Free => None,
        }
    }
}

/// The first holder listed, for [`ConcreteLock::holder`] of a permit handle.
pub fn first_holder(states: &[PermitState]) -> Option<Holder> {
    states.iter().find_map(PermitState::holder).cloned()
}

impl SimpleLockError {
    /// The semaphore `name` exists with `existing` permits, and a handle asked for `asked`:
    /// refused, since merging the two would let more holders in than one side expects. Its
    /// [`kind`](SimpleLockError::kind) is [`InvalidInput`](io::ErrorKind::InvalidInput).
    pub fn permits_disagree(name: impl Into<String>, existing: u32, asked: u32) -> Self {
        SimpleLockError::unknown(
            name,
            format!(
                "the semaphore has {existing} permits, this handle asked for {asked}: open it \
                 with {existing}, or remove it first when no one uses it"
            ),
            None,
        )
        .with_kind(io::ErrorKind::InvalidInput)
    }

    /// `permits` is not a number of permits a semaphore can have: zero, or more than `max`,
    /// the backend's limit. An [`InvalidName`](SimpleLockError::InvalidName), since the
    /// number is part of what names the semaphore.
    pub fn bad_permits(name: impl Into<String>, permits: u32, max: u32) -> Self {
        let reason = if permits == 0 {
            "a semaphore needs at least one permit, 0 were asked for".to_owned()
        } else {
            format!(
                "a semaphore of this backend has at most {max} permits, {permits} were asked for"
            )
        };
        SimpleLockError::invalid_name(name, reason)
    }
}

/// `Ok(())` if a semaphore may have `permits` (1 to `max`), else [`SimpleLockError::bad_permits`].
///
/// # Errors
/// [`SimpleLockError::InvalidName`] for 0 or more than `max`.
pub fn check_permits(name: &str, permits: u32, max: u32) -> SimpleLockResult<()> {
    if permits == 0 || permits > max {
        return Err(SimpleLockError::bad_permits(name, permits, max));
    }
    Ok(())
}

/// The error of a wait for a permit that ran out of time (`AlreadyLocked` for a try, else
/// `TimedOut`), naming the first holder `states` lists, if they could be read.
pub fn out_of_time(
    wait: &Wait,
    name: &str,
    states: SimpleLockResult<Vec<PermitState>>,
) -> SimpleLockError {
    let holder = states.ok().and_then(|states| first_holder(&states));
    wait.out_of_time(name, holder)
}

/// Which permit a handle holds, for a backend's permit handle: the permit, the process that
/// took it — so that a forked child, which inherits the handle, is not taken for the holder —
/// and its entry in [`HeldHere`], kept in step (dropping a `HeldPermit` that holds removes the
/// entry).
#[derive(Debug)]
pub struct HeldPermit {
    /// The semaphore's identity in [`HeldHere`].
    semaphore: String,
    /// The permit held, and the process that took it.
    held: Option<(u32, u32)>,
}

impl HeldPermit {
    /// Nothing held yet, of the semaphore known to [`HeldHere`] as `semaphore` (an identity
    /// the backend chooses, the same for every handle on the semaphore in this process).
    pub fn new(semaphore: impl Into<String>) -> Self {
        HeldPermit {
            semaphore: semaphore.into(),
            held: None,
        }
    }

    /// The permit held, if this process took it (`None` in a forked child).
    pub fn permit(&self) -> Option<u32> {
        self.held
            .filter(|&(_, pid)| pid == std::process::id())
            .map(|(permit, _)| permit)
    }

    /// Before an acquisition with `wait` of one of `permits` permits of `name`: an error if
    /// this handle holds one ([`AlreadyHeld`](SimpleLockError::AlreadyHeld)), or if the wait
    /// is for ever and this thread holds every permit
    /// ([`WouldDeadlock`](SimpleLockError::WouldDeadlock)). Forgets a permit taken by the
    /// parent of a forked child: the child does not hold it.
    ///
    /// # Errors
    /// Those two.
    pub fn before_acquire(&mut self, name: &str, permits: u32, wait: Wait) -> SimpleLockResult<()> {
        if self.permit().is_some() {
            return Err(SimpleLockError::already_held(name));
        }
        self.held = None;
        if wait == Wait::Forever && HeldHere::would_deadlock(&self.semaphore, permits) {
            return Err(SimpleLockError::would_deadlock(name));
        }
        Ok(())
    }

    /// This process took `permit`.
    pub fn took(&mut self, permit: u32) {
        self.held = Some((permit, std::process::id()));
        HeldHere::took(&self.semaphore);
    }

    /// The permit was given back (or is no longer this handle's): nothing held.
    pub fn gave_back(&mut self) {
        if self.permit().is_some() {
            HeldHere::gave_back(&self.semaphore);
        }
        self.held = None;
    }
}

impl Drop for HeldPermit {
    fn drop(&mut self) {
        self.gave_back();
    }
}

/// The permits held by this process's handles, per semaphore (an identity the backend
/// chooses: a file's device and inode, an object's name, a server and key) and per thread.
type Registry = HashMap<String, Vec<(u32, ThreadId)>>;

static HELD_HERE: Mutex<Option<Registry>> = Mutex::new(None);

/// The permits this process's threads hold, for [`SimpleLockError::WouldDeadlock`]: a thread
/// that holds all N permits of a semaphore through N handles and waits for one more through
/// another would wait for itself for ever.
///
/// A backend records each permit it takes ([`took`](HeldHere::took)) and gives back
/// ([`gave_back`](HeldHere::gave_back)) under the semaphore's identity, and before a wait
/// asks [`would_deadlock`](HeldHere::would_deadlock). Entries carry the process id, so a
/// forked child, which inherits the table but not the permits' ownership, is not told its
/// parent's permits are its own.
#[derive(Debug, Clone, Copy)]
pub struct HeldHere;

impl HeldHere {
    /// This thread took a permit of `semaphore`.
    pub fn took(semaphore: &str) {
        let mut held = HELD_HERE.lock().unwrap_or_else(|e| e.into_inner());
        held.get_or_insert_with(HashMap::new)
            .entry(semaphore.to_owned())
            .or_default()
            .push((std::process::id(), std::thread::current().id()));
    }

    /// A handle of this process gave back a permit of `semaphore` (one of this thread's
    /// entries, else any of this process: a handle may move to another thread while it holds).
    pub fn gave_back(semaphore: &str) {
        let mut held = HELD_HERE.lock().unwrap_or_else(|e| e.into_inner());
        let map = held.get_or_insert_with(HashMap::new);
        let Some(entries) = map.get_mut(semaphore) else {
            return;
        };
        let me = (std::process::id(), std::thread::current().id());
        let at = entries
            .iter()
            .position(|&entry| entry == me)
            .or_else(|| entries.iter().position(|&(pid, _)| pid == me.0));
        if let Some(at) = at {
            entries.swap_remove(at);
        }
        if entries.is_empty() {
            map.remove(semaphore);
        }
    }

    /// Whether this thread holds all `permits` permits of `semaphore`: a wait for another
    /// would never end.
    pub fn would_deadlock(semaphore: &str, permits: u32) -> bool {
        let held = HELD_HERE.lock().unwrap_or_else(|e| e.into_inner());
        let me = (std::process::id(), std::thread::current().id());
        let mine = held
            .as_ref()
            .and_then(|map| map.get(semaphore))
            .map_or(0, |entries| entries.iter().filter(|&&e| e == me).count());
        mine >= permits as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_permit_keeps_held_here_in_step() {
        let name = "test:held-permit";
        let mut first = HeldPermit::new(name);
        let mut second = HeldPermit::new(name);
        first.before_acquire(name, 2, Wait::Forever).unwrap();
        first.took(1);
        assert_eq!(first.permit(), Some(1));
        assert!(matches!(
            first.before_acquire(name, 2, Wait::Try),
            Err(SimpleLockError::AlreadyHeld { .. })
        ));
        second.took(0);
        assert!(matches!(
            HeldPermit::new(name).before_acquire(name, 2, Wait::Forever),
            Err(SimpleLockError::WouldDeadlock { .. })
        ));
        // A bounded wait is not refused: it ends by itself.
        HeldPermit::new(name)
            .before_acquire(name, 2, Wait::Try)
            .unwrap();
        drop(second); // gives its entry back
        HeldPermit::new(name)
            .before_acquire(name, 2, Wait::Forever)
            .unwrap();
        first.gave_back();
        assert_eq!(first.permit(), None);
        assert!(!HeldHere::would_deadlock(name, 1));
    }

    #[test]
    fn a_thread_holding_every_permit_would_deadlock() {
        let semaphore = "test:held-here";
        assert!(!HeldHere::would_deadlock(semaphore, 2));
        HeldHere::took(semaphore);
        assert!(!HeldHere::would_deadlock(semaphore, 2));
        HeldHere::took(semaphore);
        assert!(HeldHere::would_deadlock(semaphore, 2));
        // Another thread holds none of them: it may wait.
        std::thread::spawn(move || assert!(!HeldHere::would_deadlock(semaphore, 2)))
            .join()
            .unwrap();
        HeldHere::gave_back(semaphore);
        assert!(!HeldHere::would_deadlock(semaphore, 2));
        HeldHere::gave_back(semaphore);
        HeldHere::gave_back(semaphore); // one too many: nothing to remove
        assert!(!HeldHere::would_deadlock(semaphore, 1));
    }

    #[test]
    fn disagreeing_permits_say_both_numbers_and_are_invalid_input() {
        let err = SimpleLockError::permits_disagree("builds", 4, 8);
        let text = err.to_string();
        assert!(
            text.contains("builds") && text.contains('4') && text.contains('8'),
            "{text}"
        );
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn zero_and_too_many_permits_are_refused() {
        assert!(check_permits("x", 1, 8).is_ok());
        assert!(check_permits("x", 8, 8).is_ok());
        for bad in [0, 9] {
            let err = check_permits("x", bad, 8).unwrap_err();
            assert!(
                matches!(err, SimpleLockError::InvalidName { .. }),
                "{err:?}"
            );
            assert!(err.to_string().contains(&bad.to_string()), "{err}");
        }
    }

    #[test]
    fn the_first_known_holder_is_the_one_named() {
        let states = [
            PermitState::Free,
            PermitState::Held(None),
            PermitState::Held(Some(Holder::new(7))),
            PermitState::Held(Some(Holder::new(8))),
        ];
        assert_eq!(first_holder(&states), Some(Holder::new(7)));
        assert_eq!(first_holder(&[PermitState::Free]), None);
    }
}
