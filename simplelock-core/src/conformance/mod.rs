//! A test suite that checks a backend against the [`ConcreteLock`] contract, in one process and
//! across processes.
//!
//! Enabled by the `conformance` feature, which adds no dependency. Describe the backend with a
//! [`Backend`] — how to open a handle for a key, and what it claims beyond the basic contract —
//! and let [`conformance_tests!`](crate::conformance_tests) write one `#[test]` per check:
//!
//! ```text
//! mod conformance {
//!     // In-process checks only:
//!     simplelock_core::conformance_tests!(|key: &str| my_backend::MyLock::new(key));
//! }
//! mod conformance_full {
//!     // ... plus the checks of every claim, the multi-process ones included:
//!     simplelock_core::conformance_tests!(
//!         open,
//!         across_processes, crash_safe, reports_deaths, holder_pid, cloneable,
//!         shared(open_shared),
//!     );
//! }
//! ```
//!
//! # Opening handles
//!
//! The *opener* returns a new handle for a key. Handles opened with the same key must be handles
//! on the same lock — in this process and in the child processes the suite starts — and
//! different keys must be independent locks. Every check uses keys of its own (the check's name
//! and a number), so checks do not meet even when they run at the same time. Map keys to names
//! private to the test run: [`run_id`] is the process id of the test process that runs the
//! suite, the same in its children, so `format!("{dir}/{run_id}/{key}")` names the same lock in
//! every process of one run and no lock of another run.
//!
//! # Claims
//!
//! Every backend is held to the contract of [`ConcreteLock`]. What a backend may or may not
//! do, it claims, and each claim adds the checks that hold it to it:
//!
//! | claim ([`Backend`] method) | checks it adds |
//! |---|---|
//! | [`across_processes`](Backend::across_processes) | `processes_exclude_each_other`, `another_process_sees_the_lock_taken` |
//! | [`crash_safe`](Backend::crash_safe) | `killed_holder_releases_the_lock` |
//! | [`reports_deaths`](Backend::reports_deaths) | `killed_holder_is_reported_dead`, `clean_release_is_reported_released` |
//! | [`holder_pid`](Backend::holder_pid) | `holder_names_the_holding_process` (and the child's pid across processes) |
//! | [`cloneable`](Backend::cloneable) | `clone_is_a_new_handle_on_the_same_lock` |
//! | [`shared`](Backend::shared) | `shared_holders_coexist`, `shared_and_exclusive_exclude_each_other` |
//! | [`async_waits`](Backend::async_waits) | `async_lock_waits_for_release`, `async_errors`, `async_dropped_wait_takes_nothing`, `async_guard_releases`, `async_waiters_each_get_their_turn`, `async_poll_never_blocks`, `async_dropped_after_grant_leaves_it_free` |
//!
//! # What the suite checks
//!
//! In one process, with threads (every backend):
//!
//! - status: a new handle is `Open` and knows no previous holder; `Mine` for the holder,
//!   `Taken` for the others, `Open` again after the release; `holder()` is `None` on a free
//!   lock, and names this process if it names anyone;
//! - errors: `AlreadyLocked` naming the lock while another handle holds it, `AlreadyHeld` for
//!   every way of locking a held handle (never a self-deadlock, never a second acquisition),
//!   `NotHeld` for an unlock without holding (and nothing released), `TimedOut` naming the lock
//!   and the timeout; the `holder` they carry, if any, is the holding process;
//! - waiting: `hang_lock` and `timed_lock` do not return while the lock is held, and return
//!   after a release by `try_unlock` *and* by a drop; waiters on two names at once are each
//!   woken by the release of their own name (a single condition variable with `notify_one`
//!   fails this); several waiters on one name all get their turn, one at a time (a woken waiter
//!   that takes the lock without looking again fails this);
//! - timing: `timed_lock` gives up no earlier than its timeout and not more than
//!   [`TIMING_SLACK`] later, and acquires within [`TIMING_SLACK`] of a release (see "Timing");
//! - drops: dropping the holder releases; dropping another handle releases nothing (`fcntl`
//!   locks fail this);
//! - exclusion: threads with their own handles never overlap in the critical section and lose
//!   no update of a deliberately racy counter, under every mix of `try_lock`, `hang_lock` and
//!   `timed_lock`;
//! - the [`LockBuilder`](crate::LockBuilder) modes, guards and
//!   [`lock_until_finished`](crate::lock_until_finished) on top of the backend.
//!
//! Across processes (the claims above): child processes — the test binary itself, re-run for the
//! one check with a role in its environment — hold the lock, contend for it in a checked
//! critical section, release it cleanly, or are killed with SIGKILL inside it. This needs the
//! test to run under libtest (the default `harness = true`), which the children are started
//! with (`--exact TEST`).
//! The protocol with the children is [`child`]'s, public so that the backends' own
//! multi-process tests use the same one (through the workspace's dev-only `simplelock-harness`
//! crate): one way to start a child, one message tag, one hang guard.
//!
//! The suite is itself tested: `simplelock-core/tests/mutants` holds two correct reference
//! backends (one in-process, one across processes on `File::lock`) that pass every check, and
//! 43 copies of them with one realistic bug each — from a check-then-set `try_lock`, a drop that
//! wakes no waiter and one condition variable with `notify_one` for all names, to a `timed_lock`
//! that sleeps in fixed 300 ms steps, a `holder()` on a free lock, `clone()`s that share one
//! identity, an in-process lock that claims to work across processes, a killed holder that
//! keeps the lock, an async poll that blocks and an async wait on a thread of its own that
//! takes the lock after its future was dropped — each of which must fail the check about its
//! bug, for breaking its rule.
//!
//! # What it cannot check
//!
//! - Races it cannot force. The suite drives no backend from inside, so a race between two
//!   calls is found by contention, not by construction: `threads_exclude_each_other` ends with
//!   200 000 acquisitions by threads spinning on `try_lock`, which found the check-then-set race
//!   of the reference mutant in every run, after at most 72 000 of them in 100 runs; a window
//!   much narrower than that one (a mutex release and re-acquisition) could slip through.
//! - Machines, kernels and file systems it does not run on (NFS, other users, `/tmp` cleaners,
//!   pid namespaces), hostile peers, and a holder that is frozen rather than killed: a backend's
//!   own tests must cover those.
//! - Liveness beyond its patience: a waiter that would be woken after minutes looks stuck.
//! - What a backend does not claim: a backend that claims nothing is checked in one process only
//!   (an in-process lock passes that part, as it should). Shared handles are checked in one
//!   process only.
//!
//! # Verdicts
//!
//! A failed check fails its test with the rule of the contract that was broken, what the backend
//! did instead, and the line of the check that saw it, e.g.
//!
//! ```text
//! conformance check `drop_wakes_a_waiter` failed: a waiter acquires the lock soon after its holder is dropped
//!   the backend: hang_lock did not return after the holder was dropped (a drop that wakes no waiter?) (still waiting after 10s)
//!   (seen by the check at simplelock-core/src/conformance/checks.rs:270:38)
//! ```
//!
//! Each check runs on a thread of its own under a watchdog: if the backend gets stuck (a
//! deadlock, a missed wake-up with no bound of its own), the check fails after its
//! [patience](Backend::patience) naming the step it was stuck in, and the other checks still
//! run and report. The stuck thread is left behind; the test binary ends normally.
//!
//! # Timing
//!
//! The suite runs on noisy machines. It never fails because something was slow unless it was
//! slower than generous margins, and repeats a timing measurement up to [`TIMING_TRIES`] times,
//! passing at the first try within the margin:
//!
//! - something that must *not* happen (a second holder, a waiter returning early) is given
//!   [`SETTLE`] to show itself;
//! - something that must happen after an event (a waiter woken by a release, a lock freed by a
//!   death) is given [`WAKE`] (or what [`Backend::wake_within`] set);
//! - `timed_lock(t)` must give up after at least `t` and at most `t` + [`TIMING_SLACK`], and
//!   acquire within [`TIMING_SLACK`] of a release — in at least one of [`TIMING_TRIES`] tries.
//!   A backend that sleeps in fixed steps of 300 ms overshoots every try and fails.

mod async_checks;
mod checks;
pub mod child;
mod harness;
mod multi;
pub mod permits;
mod process;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::{AsyncConcreteLock, ConcreteLock, SimpleLockResult};

pub use async_checks::{BlockOn, block_on, sleep};
pub use process::run_id;

/// How long a check gives a wrong outcome (a second holder, an early return) the chance to
/// show itself.
pub const SETTLE: Duration = Duration::from_millis(100);
/// How long a check waits for an outcome that must follow an event (a waiter woken by a
/// release, a lock freed by its holder's death) before it calls it missed.
pub const WAKE: Duration = Duration::from_secs(10);
/// How late `timed_lock` may give up after its timeout, or acquire after a release, in the best
/// of [`TIMING_TRIES`] tries.
pub const TIMING_SLACK: Duration = Duration::from_millis(150);
/// How many times a timing measurement is tried before the check fails.
pub const TIMING_TRIES: usize = 8;
/// The default [patience](Backend::patience) of the watchdog of each check: the same hang guard
/// as a parent's wait for its child.
pub use child::PATIENCE;

/// What a backend claims beyond the basic contract; each claim adds checks (see the
/// [module docs](self)).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Claim {
    /// Handles in different processes exclude each other.
    AcrossProcesses,
    /// A holder killed with SIGKILL inside its critical section releases the lock.
    CrashSafe,
    /// `previous_holder()` is `Died` after a holder was killed, `Released` after a clean release.
    ReportsDeaths,
    /// `holder()` and the `holder` of `AlreadyLocked`/`TimedOut` name the holding process.
    HolderPid,
    /// `clone()` makes a new handle on the same lock that does not hold it.
    Cloneable,
    /// Shared handles (from the second opener) hold the lock together, never with an exclusive
    /// one.
    Shared,
    /// The backend implements [`AsyncConcreteLock`]: async waits that wake, time out, guard
    /// and are cancel-safe.
    AsyncWaits,
    /// An async guard's drop sends its release without waiting for it (a server's lock): other
    /// handles see the lock free within the wake-up bound rather than at once.
    AsyncReleaseLater,
}

type Opener<H> = Arc<dyn Fn(&str) -> SimpleLockResult<H> + Send + Sync>;
type Cloner<H> = Arc<dyn Fn(&H) -> H + Send + Sync>;
/// Runs an async check: made where `H: AsyncConcreteLock` is known, called where it is not.
type AsyncRunner<H> = Arc<dyn Fn(&str, &harness::Ctx<H>) + Send + Sync>;

/// A backend under test: how to open a handle for a key, and what it claims.
///
/// ```
/// use simplelock_core::conformance::{Backend, Claim};
/// # use simplelock_core::{ConcreteLock, LockStatus, SimpleLockResult};
/// # struct MyLock;
/// # impl ConcreteLock for MyLock {
/// #     fn status(&self) -> SimpleLockResult<LockStatus> { Ok(LockStatus::Open) }
/// #     fn try_lock(&mut self) -> SimpleLockResult<()> { Ok(()) }
/// #     fn hang_lock(&mut self) -> SimpleLockResult<()> { Ok(()) }
/// #     fn try_unlock(&mut self) -> SimpleLockResult<()> { Ok(()) }
/// # }
/// # fn open(_: &str) -> SimpleLockResult<MyLock> { Ok(MyLock) }
/// let backend = Backend::new(open).across_processes().crash_safe();
/// assert!(backend.claims(Claim::CrashSafe));
/// assert!(!backend.claims(Claim::ReportsDeaths));
/// ```
pub struct Backend<H> {
    open: Opener<H>,
    open_shared: Option<Opener<H>>,
    clone: Option<Cloner<H>>,
    async_checks: Option<AsyncRunner<H>>,
    claims: Vec<Claim>,
    patience: Duration,
    wake: Duration,
}

impl<H> Clone for Backend<H> {
    fn clone(&self) -> Self {
        Backend {
            open: Arc::clone(&self.open),
            open_shared: self.open_shared.clone(),
            clone: self.clone.clone(),
            async_checks: self.async_checks.clone(),
            claims: self.claims.clone(),
            patience: self.patience,
            wake: self.wake,
        }
    }
}

impl<H> fmt::Debug for Backend<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Backend")
            .field("claims", &self.claims)
            .field("patience", &self.patience)
            .field("wake", &self.wake)
            .finish_non_exhaustive()
    }
}

impl<H: ConcreteLock + Send + 'static> Backend<H> {
    /// A backend whose handles `open` returns, claiming nothing beyond the basic contract.
    pub fn new(open: impl Fn(&str) -> SimpleLockResult<H> + Send + Sync + 'static) -> Self {
        Backend {
            open: Arc::new(open),
            open_shared: None,
            clone: None,
            async_checks: None,
            claims: Vec::new(),
            patience: PATIENCE,
            wake: WAKE,
        }
    }

    fn with(mut self, claim: Claim) -> Self {
        if !self.claims.contains(&claim) {
            self.claims.push(claim);
        }
        self
    }

    /// Claims that handles in different processes exclude each other.
    #[must_use]
    pub fn across_processes(self) -> Self {
        self.with(Claim::AcrossProcesses)
    }

    /// Claims that a holder killed inside its critical section releases the lock at once (within
    /// [`WAKE`]).
    #[must_use]
    pub fn crash_safe(self) -> Self {
        self.with(Claim::CrashSafe)
    }

    /// Claims that the next holder learns whether the previous one died: `Died` after a kill,
    /// `Released` after a clean release.
    #[must_use]
    pub fn reports_deaths(self) -> Self {
        self.with(Claim::ReportsDeaths)
    }

    /// Claims that `holder()`, and the `holder` of `AlreadyLocked` and `TimedOut`, name the
    /// holding process.
    #[must_use]
    pub fn holder_pid(self) -> Self {
        self.with(Claim::HolderPid)
    }

    /// Claims that `clone()` makes a new handle on the same lock, not holding it.
    #[must_use]
    pub fn cloneable(mut self) -> Self
    where
        H: Clone,
    {
        self.clone = Some(Arc::new(H::clone));
        self.with(Claim::Cloneable)
    }

    /// Claims shared locking: `open_shared` returns a shared handle for a key, on the same lock
    /// as the exclusive handles of that key.
    #[must_use]
    pub fn shared(
        mut self,
        open_shared: impl Fn(&str) -> SimpleLockResult<H> + Send + Sync + 'static,
    ) -> Self {
        self.open_shared = Some(Arc::new(open_shared));
        self.with(Claim::Shared)
    }

    /// Claims async waits ([`AsyncConcreteLock`]); `block_on` runs a future to its end on the
    /// calling thread: [`block_on`] for a backend that needs no runtime,
    /// `|f| tokio_runtime().block_on(f)` for one that needs tokio.
    #[must_use]
    pub fn async_waits(
        mut self,
        block_on: impl Fn(std::pin::Pin<Box<dyn std::future::Future<Output = ()> + '_>>)
        + Send
        + Sync
        + 'static,
    ) -> Self
    where
        H: AsyncConcreteLock,
    {
        let block_on: BlockOn = Arc::new(block_on);
        self.async_checks = Some(Arc::new(move |name, ctx| {
            async_checks::run(name, ctx, &block_on)
        }));
        self.with(Claim::AsyncWaits)
    }

    /// Claims that an async guard's drop sends its release without waiting for it, so that
    /// other handles see the lock free soon (within the wake-up bound) rather than at once. Only
    /// with [`async_waits`](Backend::async_waits); adds no check, relaxes one.
    #[must_use]
    pub fn async_release_later(self) -> Self {
        self.with(Claim::AsyncReleaseLater)
    }

    /// How long the watchdog lets a check run before it fails it as stuck ([`PATIENCE`] unless
    /// set).
    #[must_use]
    pub fn patience(mut self, patience: Duration) -> Self {
        self.patience = patience;
        self
    }

    /// How long a check waits for an event to have its effect — a waiter woken by a release, a
    /// lock freed by its holder's death — before it calls it missed ([`WAKE`] unless set).
    /// Lower it only where a missed wake-up costs too much test time (the suite's own mutant
    /// tests do), never below a second: a loaded machine can stall a thread that long.
    #[must_use]
    pub fn wake_within(mut self, wake: Duration) -> Self {
        self.wake = wake;
        self
    }

    /// Whether the backend makes `claim`.
    pub fn claims(&self, claim: Claim) -> bool {
        self.claims.contains(&claim)
    }
}

/// The checks of the suite, each with the claim it needs (`None`: every backend).
pub const CHECKS: &[(&str, Option<Claim>)] = &[
    ("fresh_handle_is_open", None),
    ("status_follows_lock_and_unlock", None),
    ("holder_is_none_on_a_free_lock", None),
    ("try_lock_fails_while_held_elsewhere", None),
    ("hang_lock_waits_for_release", None),
    ("drop_wakes_a_waiter", None),
    ("waiters_on_two_names_are_each_woken", None),
    ("every_waiter_gets_its_turn", None),
    ("timed_lock_times_out", None),
    ("timed_lock_gives_up_on_time", None),
    ("timed_lock_acquires_soon_after_release", None),
    ("unlock_without_holding_is_an_error", None),
    ("lock_twice_is_an_error", None),
    ("drop_releases", None),
    ("drop_of_another_handle_keeps_the_lock", None),
    ("relock_many_times", None),
    ("different_locks_are_independent", None),
    ("clean_release_is_not_a_death", None),
    ("threads_exclude_each_other", None),
    ("builder_modes", None),
    ("guard_releases", None),
    ("panic_in_lock_until_finished_releases", None),
    (
        "clone_is_a_new_handle_on_the_same_lock",
        Some(Claim::Cloneable),
    ),
    ("holder_names_the_holding_process", Some(Claim::HolderPid)),
    ("shared_holders_coexist", Some(Claim::Shared)),
    (
        "shared_and_exclusive_exclude_each_other",
        Some(Claim::Shared),
    ),
    ("processes_exclude_each_other", Some(Claim::AcrossProcesses)),
    (
        "another_process_sees_the_lock_taken",
        Some(Claim::AcrossProcesses),
    ),
    ("killed_holder_releases_the_lock", Some(Claim::CrashSafe)),
    ("killed_holder_is_reported_dead", Some(Claim::ReportsDeaths)),
    (
        "clean_release_is_reported_released",
        Some(Claim::ReportsDeaths),
    ),
    ("async_lock_waits_for_release", Some(Claim::AsyncWaits)),
    ("async_errors", Some(Claim::AsyncWaits)),
    ("async_dropped_wait_takes_nothing", Some(Claim::AsyncWaits)),
    ("async_guard_releases", Some(Claim::AsyncWaits)),
    ("async_waiters_each_get_their_turn", Some(Claim::AsyncWaits)),
    ("async_poll_never_blocks", Some(Claim::AsyncWaits)),
    (
        "async_dropped_after_grant_leaves_it_free",
        Some(Claim::AsyncWaits),
    ),
];

/// A check that failed: its name and the verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The check.
    pub check: &'static str,
    /// What rule was broken and what the backend did, or where it got stuck.
    pub message: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "conformance check `{}` failed: {}",
            self.check, self.message
        )
    }
}

/// Runs one check against `backend` and panics with its verdict if it fails.
///
/// `test` is the name of the `#[test]` that calls it, as libtest knows it (the path without the
/// crate, e.g. `conformance::drop_releases`): the multi-process checks re-run the test binary
/// with `--exact test` to start their children. In such a child, this call plays the child's
/// part and ends the process; calls for other checks return at once.
///
/// # Panics
/// If the check fails, or `check` is not the name of a check of [`CHECKS`], or the backend does
/// not make the claim the check needs.
#[track_caller]
pub fn check<H: ConcreteLock + Send + 'static>(check: &str, test: &str, backend: Backend<H>) {
    if let Err(failure) = outcome(check, test, backend) {
        panic!("{failure}");
    }
}

/// Runs one check against `backend` and returns its verdict; see [`check`].
///
/// # Panics
/// If `check` is not the name of a check of [`CHECKS`], or the backend does not make the claim
/// the check needs.
pub fn outcome<H: ConcreteLock + Send + 'static>(
    check: &str,
    test: &str,
    backend: Backend<H>,
) -> Result<(), Failure> {
    let (name, claim) = *CHECKS
        .iter()
        .find(|(name, _)| *name == check)
        .unwrap_or_else(|| panic!("no conformance check is called {check:?}"));
    if let Some(claim) = claim {
        assert!(
            backend.claims(claim),
            "conformance check `{name}` needs the claim {claim:?}, which the backend does not make"
        );
    }
    if process::child_role().is_some() {
        process::play_child(name, backend);
        return Ok(());
    }
    harness::run(name, test, backend)
}

/// Runs every check whose claim the backend makes, each under its watchdog, and returns the
/// failures (empty if it conforms). Prefer [`conformance_tests!`](crate::conformance_tests),
/// which reports each check as a test of its own.
pub fn run_all<H: ConcreteLock + Send + 'static>(test: &str, backend: &Backend<H>) -> Vec<Failure> {
    CHECKS
        .iter()
        .filter(|(_, claim)| claim.is_none_or(|c| backend.claims(c)))
        .filter_map(|(name, _)| outcome(name, test, backend.clone()).err())
        .collect()
}

/// The libtest name of a test function `check` written in the module at `module_path`
/// (the value of `module_path!()` there): the path without the crate's name.
#[doc(hidden)]
pub fn test_name(module_path: &str, check: &str) -> String {
    match module_path.split_once("::") {
        Some((_, module)) => format!("{module}::{check}"),
        None => check.to_owned(),
    }
}

/// Writes one `#[test]` per check of the [conformance suite](crate::conformance).
///
/// The first argument is the opener (see the [module docs](crate::conformance)), then the
/// claims the backend makes — any of `across_processes`, `crash_safe`, `reports_deaths`,
/// `holder_pid`, `cloneable` — and `shared(opener)` for a backend with shared handles. Each
/// claim adds the tests of its checks; each test is named after its check, so put the call in a
/// module of its own (one call per module).
///
/// ```text
/// mod conformance {
///     simplelock_core::conformance_tests!(open, across_processes, crash_safe, holder_pid);
/// }
/// ```
#[macro_export]
macro_rules! conformance_tests {
    ($open:expr $(, $claim:ident $(($arg:expr))?)* $(,)?) => {
        /// The backend under test, as the macro's arguments describe it.
        fn __simplelock_conformance_backend() -> $crate::conformance::Backend<
            impl $crate::ConcreteLock + ::std::marker::Send + 'static,
        > {
            $crate::conformance::Backend::new($open) $(.$claim($($arg)?))*
        }
        $crate::conformance_tests!(@tests
            fresh_handle_is_open,
            status_follows_lock_and_unlock,
            holder_is_none_on_a_free_lock,
            try_lock_fails_while_held_elsewhere,
            hang_lock_waits_for_release,
            drop_wakes_a_waiter,
            waiters_on_two_names_are_each_woken,
            every_waiter_gets_its_turn,
            timed_lock_times_out,
            timed_lock_gives_up_on_time,
            timed_lock_acquires_soon_after_release,
            unlock_without_holding_is_an_error,
            lock_twice_is_an_error,
            drop_releases,
            drop_of_another_handle_keeps_the_lock,
            relock_many_times,
            different_locks_are_independent,
            clean_release_is_not_a_death,
            threads_exclude_each_other,
            builder_modes,
            guard_releases,
            panic_in_lock_until_finished_releases,
        );
        $( $crate::conformance_tests!(@claim $claim); )*
    };
    (@claim across_processes) => {
        $crate::conformance_tests!(@tests
            processes_exclude_each_other,
            another_process_sees_the_lock_taken,
        );
    };
    (@claim crash_safe) => {
        $crate::conformance_tests!(@tests killed_holder_releases_the_lock,);
    };
    (@claim reports_deaths) => {
        $crate::conformance_tests!(@tests
            killed_holder_is_reported_dead,
            clean_release_is_reported_released,
        );
    };
    (@claim holder_pid) => {
        $crate::conformance_tests!(@tests holder_names_the_holding_process,);
    };
    (@claim cloneable) => {
        $crate::conformance_tests!(@tests clone_is_a_new_handle_on_the_same_lock,);
    };
    (@claim async_waits) => {
        $crate::conformance_tests!(@tests
            async_lock_waits_for_release,
            async_errors,
            async_dropped_wait_takes_nothing,
            async_guard_releases,
            async_waiters_each_get_their_turn,
            async_poll_never_blocks,
            async_dropped_after_grant_leaves_it_free,
        );
    };
    (@claim async_release_later) => {};
    (@claim shared) => {
        $crate::conformance_tests!(@tests
            shared_holders_coexist,
            shared_and_exclusive_exclude_each_other,
        );
    };
    (@tests $($check:ident,)*) => {
        $(
            #[test]
            fn $check() {
                $crate::conformance::check(
                    stringify!($check),
                    &$crate::conformance::test_name(module_path!(), stringify!($check)),
                    __simplelock_conformance_backend(),
                );
            }
        )*
    };
}
