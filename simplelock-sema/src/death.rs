//! Waking a sleeping waiter by its holder's death: a `pidfd` of the holder, watched by one
//! thread per process that turns the death into a `FUTEX_WAKE`.
//!
//! # The problem
//!
//! A waiter sleeps in `FUTEX_WAIT` on the lock word. A release wakes it (`FUTEX_WAKE`), but a
//! holder that is SIGKILLed never releases: the word keeps its token, and nothing wakes the
//! waiter until its slice (10 ms) ends and it checks the holder in `/proc`. The kernel does know
//! the moment a process ends: a `pidfd` of it becomes readable (Linux 5.3). A futex has no file
//! descriptor, though, and there is no system call that sleeps on a futex *and* a descriptor
//! (`futex_waitv` takes futexes only; `FUTEX_FD` was removed in 2.6.26; io_uring could, but is
//! often disabled and needs its own rings).
//!
//! # The choice: one death watcher per process, which wakes the futex
//!
//! - *poll the pidfd with a short timeout, then the futex*, by turns: every turn on the pidfd is
//!   time in which a release's `FUTEX_WAKE` reaches nobody, so it adds latency to the normal
//!   handoff — what this lock must not do;
//! - *a helper thread per waiter* polling its pidfd: a thread per waiting thread;
//! - **one watcher thread per process** (chosen): it sleeps in `epoll_wait` on the pidfds of
//!   the holders this process's waiters wait for. When one becomes readable (its process ended)
//!   it marks that holder dead and wakes every sleeper on the words waited on for it, with a
//!   `FUTEX_WAKE` of all of them — the same kind of wake as a release, so the waiter's wait is
//!   untouched: it still sleeps in one `FUTEX_WAIT` that a release ends at once, and the normal
//!   handoff costs exactly what it cost before. A woken waiter that finds its holder marked dead
//!   checks it in `/proc` at once instead of at the end of its slice, and takes the lock over.
//!
//! The waiter registers the holder before its first sleep on it: a `pidfd_open`, one `/proc`
//! read that proves the descriptor names the holder (the id could have been reused between the
//! look at the word and the open; see below) and an `epoll_ctl`, all while the holder holds
//! the lock (none of it between a release and the acquisition). The descriptor is kept while
//! the holder lives, and for about a second after the last wait on it, so waiters that wait for
//! the same process again and again (two processes handing a lock to each other) register with
//! a lookup under a mutex and no system call. The watcher never acquires anything and never
//! writes a lock word: it only wakes. The death itself is still judged by the waiter, from
//! `/proc` (see the crate docs, 4.): the watcher only says *when* to look.
//!
//! A wake between the waiter's last look at the mark and its `FUTEX_WAIT` would be lost (the
//! word did not change, so the futex lets it sleep): the watcher wakes the words again a few
//! times over the next milliseconds, while they still name the dead holder and someone still
//! waits for it.
//!
//! # Where this does not apply: the slice remains
//!
//! The 10 ms liveness slice stays as the fallback, and is all there is when:
//!
//! - the kernel has no `pidfd_open` (before Linux 5.3) or a sandbox (seccomp) refuses it, or
//!   `epoll` or the thread cannot be had;
//! - the holder's process id was reused before the waiter opened its pidfd (the `/proc` check
//!   then finds the holder dead anyway, at once), or a new process has the holder's id *and*
//!   start time (the limit of the crate docs, 4.);
//! - the holder is in another pid namespace: the lock refuses to be shared across namespaces
//!   anyway (see "Limits"), and a pidfd of a process id means the process of *our* namespace;
//! - a forked child whose parent was registering a holder at the moment of the fork (the mutex
//!   of the registry is held by a thread the child does not have): its waits use the slice.
//!   The registry is never waited for blindly: a thread that finds it busy tries again
//!   (yielding) only while the process that took it last is its own, and for [`PATIENCE`] at
//!   most. A child finds its parent's id there and gives up at once, so it cannot hang on it
//!   (if the parent's thread had not written its id yet, the child gives up after the
//!   patience). The price is that a thread that finds it busy longer than that keeps its slice
//!   for that wait — a registration holds it for microseconds (a `pidfd_open`, one `/proc`
//!   read, an `epoll_ctl`; once per watcher, a thread start), so only a descheduled
//!   registering thread makes others wait that long;
//! - a waiter of several permits ([`SemaphorePermits`](crate::SemaphorePermits)) on a kernel
//!   without `futex_waitv` (before Linux 5.16): it sleeps on one permit's word only, so the
//!   death of the holder of another permit wakes nobody, and its slice finds it.
//!
//! # Who registers
//!
//! Every waiter that sleeps on a lock word registers the word's holder, through a
//! [`HolderWatch`] (once per holder it meets, kept while it waits):
//!
//! - a blocking wait on one lock, before each sleep (`lock.rs`, step 4);
//! - the async watcher thread of a lock (`async_lock.rs`), which sleeps on the word for the
//!   tasks of its process exactly as a blocking waiter does: the death wakes it, it checks the
//!   holder in `/proc` and wakes the tasks, whose poll takes the lock over. An async wait on
//!   permits is a wait on each permit's lock, so each permit's watcher registers its holder;
//! - a blocking wait on several permits (`permits.rs`), one registration per permit word,
//!   before it sleeps in `futex_waitv` on all of them: the death of any permit's holder wakes
//!   that sleep, and the waiter tries the permits whose holder was reported dead (a try
//!   checks the holder) besides those that look free.
//!
//! A holder is registered once per process however many of its waiters wait for it: the
//! registry keeps the words waited on for it, and the death wakes all of them.
//!
//! A registration names the holder a waiter went to sleep on. A release wakes one sleeper, and
//! the others sleep on: their holder is gone (alive, elsewhere) and they would not be woken by
//! the death of the next one. So a waiter that slept and takes the lock wakes one more sleeper
//! (`lock.rs`, `claim_free`), which looks at the word, registers the new holder and sleeps
//! again: whenever waiters sleep, one of them is registered for the current holder (unless
//! it is a thread of the holder's own process, which needs no death watch), and a holder's
//! death wakes someone at once rather than at the end of a slice. It costs one `FUTEX_WAKE`
//! per acquisition that waited, and one wake-up of a sleeper when there is one.
//!
//! # Resources
//!
//! One thread (started at the first wait that sleeps, ended about a second after the last
//! one), one epoll descriptor, and one pidfd per holder waited for recently (at most
//! [`MAX_ENTRIES`]). A forked child starts its own watcher; the descriptors it inherited are
//! closed with `O_CLOEXEC` at an `exec`.

use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};
use std::thread;
use std::time::{Duration, Instant};

use rustix::buffer::spare_capacity;
use rustix::event::epoll;
use rustix::process::{Pid, PidfdFlags, pidfd_open};

use crate::process::{self, Liveness};
use crate::sys::{self, MapRef};
use crate::word::{self, WAITERS};

/// The most holders watched at once; beyond it, new holders are waited for with the slice.
pub(crate) const MAX_ENTRIES: usize = 64;

/// How often the watcher forgets holders nobody waited for since its last look, and ends when
/// there is none left.
const TICK: Duration = Duration::from_secs(1);

/// The first repeated wake after a death (then doubling), and how many there are.
const REWAKE: Duration = Duration::from_micros(250);
const REWAKES: u32 = 4;

/// A holder this process waits for: its pidfd, and whether its process ended.
#[derive(Debug)]
struct Entry {
    token: u64,
    /// Kept open (and in the epoll set) as long as the entry lives.
    _pidfd: Option<OwnedFd>,
    died: AtomicBool,
}

/// A registered holder and the lock words waited on for it.
#[derive(Debug)]
struct Slot {
    entry: Arc<Entry>,
    words: Vec<MapRef>,
    /// No waiter registered since the watcher's last tick.
    idle: bool,
}

/// What this process watches, and who made it (a forked child starts afresh).
#[derive(Debug)]
struct Registry {
    pid: u32,
    /// The epoll descriptor of the running watcher, `None` when none runs.
    epoll: Option<Arc<OwnedFd>>,
    slots: Vec<Slot>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    pid: 0,
    epoll: None,
    slots: Vec::new(),
});

/// A waiter's registration for one holder: tells it when the holder's process ended. Dropping
/// it is all a waiter does when it stops waiting (no lock, no system call).
#[derive(Debug)]
pub(crate) struct Watch {
    entry: Arc<Entry>,
}

impl Watch {
    /// The holder watched (a token).
    pub(crate) fn owner(&self) -> u64 {
        self.entry.token
    }

    /// Whether the holder's process ended (it may already have been checked and taken over).
    pub(crate) fn died(&self) -> bool {
        self.entry.died.load(Ordering::SeqCst)
    }

    fn dead(token: u64) -> Watch {
        Watch {
            entry: Arc::new(Entry {
                token,
                _pidfd: None,
                died: AtomicBool::new(true),
            }),
        }
    }
}

/// What one waiter keeps of its registrations while it waits on one word: the holder it asked
/// to be woken by the death of (once per holder: a new holder of the word is registered anew),
/// and whether a reported death was checked already. Every waiter uses it: the blocking wait,
/// the async watcher thread (one per lock) and the waiter on several permits (one per permit
/// word).
#[derive(Debug, Default)]
pub(crate) struct HolderWatch {
    /// The owner whose death we asked to be woken by, and the registration (`None` where
    /// pidfds cannot tell: then the slice alone finds the death).
    death: Option<(u64, Option<Watch>)>,
    /// The death reported for `death`'s owner was checked (the owner found alive, or the check
    /// handed to a try that looks at the word again).
    checked: bool,
}

impl HolderWatch {
    /// Asks to be woken when `owner`, which holds `map`'s word, dies (not for our own process
    /// `me`, alive by definition). `true` if it has died already: check it before sleeping.
    pub(crate) fn watch(&mut self, map: &MapRef, owner: u64, me: u64) -> bool {
        if owner == me {
            return false;
        }
        if !matches!(self.death, Some((watched, _)) if watched == owner) {
            self.death = Some((owner, watch(map, owner)));
            self.checked = false;
        }
        self.reported(owner)
    }

    /// Whether the process of `owner` was reported dead and not checked yet.
    pub(crate) fn reported(&self, owner: u64) -> bool {
        !self.checked
            && matches!(&self.death, Some((watched, Some(watch)))
                if *watched == owner && watch.owner() == owner && watch.died())
    }

    /// Whether the process of the holder watched last was reported dead and not checked yet
    /// (for a waiter that looks at the word again anyway before it acts on it).
    pub(crate) fn reported_any(&self) -> bool {
        matches!(&self.death, Some((owner, _)) if self.reported(*owner))
    }

    /// The reported death was checked: the next report is for the next holder.
    pub(crate) fn checked(&mut self) {
        self.checked = true;
    }
}

/// How long a thread that finds the registry busy tries again at most (see the module docs).
const PATIENCE: Duration = Duration::from_millis(2);

/// The process whose thread took [`REGISTRY`]'s mutex last (0: none yet). A child made by
/// `fork` while a thread of its parent held the mutex finds its parent's id here.
static TAKEN_BY: AtomicU32 = AtomicU32::new(0);

/// The registry, if it can be had without blocking for long. A forked child whose parent held
/// the mutex at the fork would wait forever: it gives up at once when another process took the
/// mutex last, and anyone gives up after [`PATIENCE`] (the caller falls back to the slice).
fn registry() -> Option<MutexGuard<'static, Registry>> {
    let me = sys::getpid();
    let mut until = None;
    loop {
        let guard = match REGISTRY.try_lock() {
            Ok(guard) => guard,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => {
                let taken_by = TAKEN_BY.load(Ordering::Relaxed);
                if taken_by != 0 && taken_by != me {
                    return None;
                }
                let until = *until.get_or_insert_with(|| Instant::now() + PATIENCE);
                if Instant::now() >= until {
                    return None;
                }
                thread::yield_now();
                continue;
            }
        };
        TAKEN_BY.store(me, Ordering::Relaxed);
        return Some(guard);
    }
}

/// Registers a wait for `owner` (a token of another process) on the word of `map`, and returns
/// what tells the waiter that the owner died; `None` if that cannot be known (see the module
/// docs: the waiter keeps its slice).
pub(crate) fn watch(map: &MapRef, owner: u64) -> Option<Watch> {
    let mut registry = registry()?;
    let me = sys::getpid();
    if registry.pid != me {
        // A forked child: its parent's watcher thread was not copied. Forget (without closing:
        // the copies of the thread's own references are never dropped) what the parent had.
        std::mem::forget(std::mem::replace(
            &mut *registry,
            Registry {
                pid: me,
                epoll: None,
                slots: Vec::new(),
            },
        ));
    }
    if let Some(slot) = registry.slots.iter_mut().find(|s| s.entry.token == owner) {
        slot.idle = false;
        if !slot
            .words
            .iter()
            .any(|w| std::ptr::eq(w.shared(), map.shared()))
        {
            slot.words.push(map.clone());
        }
        return Some(Watch {
            entry: Arc::clone(&slot.entry),
        });
    }
    let pid = i32::try_from(word::pid_of(owner))
        .ok()
        .and_then(Pid::from_raw)?;
    let pidfd = match pidfd_open(pid, PidfdFlags::empty()) {
        Ok(fd) => fd,
        // No such process: it ended (and was reaped) already; look at once.
        Err(rustix::io::Errno::SRCH) => return Some(Watch::dead(owner)),
        // Before Linux 5.3, a sandbox, no descriptors left: the slice.
        Err(_) => return None,
    };
    // The descriptor names the process that has the id now. If that is not the owner (it died
    // and its id was reused before the open), the owner is dead: look at once. Otherwise it is
    // (see the crate docs, 4., for the one exception).
    if process::liveness(owner) == Liveness::Dead {
        return Some(Watch::dead(owner));
    }
    let epoll = running_watcher(&mut registry)?;
    epoll::add(
        &*epoll,
        &pidfd,
        epoll::EventData::new_u64(owner),
        epoll::EventFlags::IN | epoll::EventFlags::ONESHOT,
    )
    .ok()?;
    if registry.slots.len() >= MAX_ENTRIES {
        registry
            .slots
            .retain(|slot| Arc::strong_count(&slot.entry) > 1);
        if registry.slots.len() >= MAX_ENTRIES {
            return None;
        }
    }
    let entry = Arc::new(Entry {
        token: owner,
        _pidfd: Some(pidfd),
        died: AtomicBool::new(false),
    });
    registry.slots.push(Slot {
        entry: Arc::clone(&entry),
        words: vec![map.clone()],
        idle: false,
    });
    Some(Watch { entry })
}

/// The epoll descriptor of this process's watcher thread, started if none runs.
fn running_watcher(registry: &mut Registry) -> Option<Arc<OwnedFd>> {
    if let Some(epoll) = &registry.epoll {
        return Some(Arc::clone(epoll));
    }
    let epoll = Arc::new(epoll::create(epoll::CreateFlags::CLOEXEC).ok()?);
    let theirs = Arc::clone(&epoll);
    thread::Builder::new()
        .name("simplelock-sema-deaths".into())
        .spawn(move || run(&theirs))
        .ok()?;
    registry.epoll = Some(Arc::clone(&epoll));
    Some(epoll)
}

fn lock_registry() -> MutexGuard<'static, Registry> {
    // Only this process's threads lock it here (the watcher runs in the process that made it).
    let guard = REGISTRY.lock().unwrap_or_else(PoisonError::into_inner);
    TAKEN_BY.store(sys::getpid(), Ordering::Relaxed);
    guard
}

/// A death the watcher woke the waiters for, woken again a few times (see the module docs).
struct Rewake {
    entry: Arc<Entry>,
    words: Vec<MapRef>,
    at: Instant,
    pause: Duration,
    left: u32,
}

/// Wakes every sleeper on `words` (in any process).
fn wake(words: &[MapRef]) {
    for map in words {
        // A failed wake leaves the waiters to their slice.
        let _ = sys::futex_wake(&map.shared().word, i32::MAX);
    }
}

/// The watcher thread: wait for a watched process to end, mark it dead and wake its waiters;
/// every [`TICK`], forget holders nobody waited for and end when none is left.
fn run(epoll: &OwnedFd) {
    let mut events = Vec::with_capacity(16);
    let mut rewakes: Vec<Rewake> = Vec::new();
    let mut tick = Instant::now() + TICK;
    loop {
        let now = Instant::now();
        let until = rewakes.iter().map(|r| r.at).fold(tick, Instant::min);
        let timeout = rustix::time::Timespec::try_from(until.saturating_duration_since(now))
            .unwrap_or(rustix::time::Timespec {
                tv_sec: 1,
                tv_nsec: 0,
            });
        events.clear();
        match epoll::wait(epoll, spare_capacity(&mut events), Some(&timeout)) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(_) => {
                // Not expected; give up watching (waiters keep their slice), and let the next
                // registration start a new watcher.
                let mut registry = lock_registry();
                registry.slots.clear();
                registry.epoll = None;
                return;
            }
        }
        for event in &events {
            let token = event.data.u64();
            let slot = {
                let mut registry = lock_registry();
                let found = registry.slots.iter().position(|s| s.entry.token == token);
                found.map(|at| registry.slots.swap_remove(at))
            };
            // An event of an entry forgotten since (a descriptor a forked child still has open)
            // finds no slot.
            let Some(slot) = slot else { continue };
            slot.entry.died.store(true, Ordering::SeqCst);
            wake(&slot.words);
            rewakes.push(Rewake {
                entry: slot.entry,
                words: slot.words,
                at: Instant::now() + REWAKE,
                pause: REWAKE,
                left: REWAKES,
            });
        }
        let now = Instant::now();
        rewakes.retain_mut(|r| {
            if r.at > now {
                return true;
            }
            let token = r.entry.token;
            let waited_for = Arc::strong_count(&r.entry) > 1;
            let still_held = r.words.iter().any(|map| {
                map.shared().word.load(Ordering::Relaxed) & !WAITERS == token & !WAITERS
            });
            if !(waited_for && still_held) || r.left == 0 {
                return false;
            }
            wake(&r.words);
            r.left -= 1;
            r.pause *= 2;
            r.at = now + r.pause;
            true
        });
        if now >= tick {
            tick = now + TICK;
            if retire(rewakes.is_empty()) {
                return;
            }
        }
    }
}

/// Forgets the holders nobody waited for since the last tick (their pidfds close, which takes
/// them out of the epoll set), marks the others; `true` (and no watcher runs any more) if none
/// is left and `may_end`.
fn retire(may_end: bool) -> bool {
    let mut registry = lock_registry();
    registry
        .slots
        .retain(|slot| !(slot.idle && Arc::strong_count(&slot.entry) == 1));
    for slot in &mut registry.slots {
        slot.idle = Arc::strong_count(&slot.entry) == 1;
    }
    if may_end && registry.slots.is_empty() {
        registry.epoll = None;
        return true;
    }
    false
}
