//! The conformance suite's own test: correct reference backends pass every check, and each of
//! their single-bug copies (mutants) fails the check about its bug, with the rule it broke in
//! the verdict — so the suite cannot silently weaken.
//!
//! - [`reference::RefLock`]: in one process (a mutex and a condition variable), claiming
//!   `holder_pid`, `cloneable`, `shared` and `async_waits` (wakers woken by every release); its
//!   [`Bug`]s.
//! - [`file_ref::FileRef`]: across processes (`File::lock`, a record of the holder), claiming
//!   every multi-process claim; its [`FileBug`]s. The multi-process checks re-run this test
//!   binary as their children.
//!
//! Every mutant is caught deterministically: by a call that returns what it must not, by a
//! bounded wait for something that must happen (`wake_within`), by a timing margin missed in
//! every one of several tries, or — for the check-then-set race — by enough contended rounds
//! that the race shows in every run (see `threads_exclude_each_other`).

mod file_ref;
mod reference;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use file_ref::{FileBug, FileRef};
use reference::{Bug, RefLock, Registry};
use simplelock_core::ConcreteLock;
use simplelock_core::conformance::{self, Backend, child};

/// The bound of a missed wake-up in these tests: shorter than the suite's default, to keep the
/// mutants that miss one from costing ten seconds each; still far above a real wake-up.
const WAKE: Duration = Duration::from_secs(3);
/// The watchdog: longer than any bounded wait of a check.
const PATIENCE: Duration = Duration::from_secs(40);

/// The in-process reference backend with `bug`, claiming what it does.
fn in_process(bug: Bug) -> Backend<RefLock> {
    let registry = Registry::new(bug);
    let for_shared = registry.clone();
    Backend::new(move |key: &str| RefLock::open(&registry, key, false))
        .holder_pid()
        .cloneable()
        .shared(move |key: &str| RefLock::open(&for_shared, key, true))
        .async_waits(|future| conformance::block_on(future))
        .wake_within(WAKE)
        .patience(PATIENCE)
}

/// The folder of this run's lock files, the same in the children; the test process removes
/// those of earlier runs whose process is gone.
fn run_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| child::run_dir("simplelock-core-mutants-"))
}

/// The multi-process reference backend with `bug`, claiming every multi-process claim.
fn across_processes(bug: FileBug) -> Backend<FileRef> {
    Backend::new(move |key: &str| FileRef::open(run_dir().join(format!("{key}.lock")), bug))
        .across_processes()
        .crash_safe()
        .reports_deaths()
        .holder_pid()
        .wake_within(WAKE)
        .patience(PATIENCE)
}

/// Asserts that `check` fails `backend`, with `rule` in its verdict. `test` is the name of the
/// calling test (its children re-run it).
#[track_caller]
fn caught<H: ConcreteLock + Send + 'static>(
    test: &str,
    check: &str,
    rule: &str,
    backend: Backend<H>,
) {
    match conformance::outcome(check, test, backend) {
        Ok(()) => panic!("the mutant passed `{check}`: the suite no longer catches it"),
        Err(failure) => {
            eprintln!("caught, as it must be: {failure}");
            assert!(
                failure.message.contains(rule),
                "`{check}` failed the mutant, but not for breaking {rule:?}: {failure}"
            );
        }
    }
}

/// One test per mutant: `test: backend => check, rule;`.
macro_rules! mutants {
    ($($test:ident: $backend:expr => $check:literal, $rule:expr;)*) => {
        $(
            #[test]
            fn $test() {
                caught(stringify!($test), $check, $rule, $backend);
            }
        )*
    };
}

const EXCLUSION: &str = "two handles on the same lock never hold it at once";
const STATUS: &str = "status() is Mine for the holder";

mutants! {
    no_exclusion: in_process(Bug::NoExclusion)
        => "try_lock_fails_while_held_elsewhere", "try_lock fails with AlreadyLocked";
    check_then_set_race: in_process(Bug::CheckThenSet)
        => "threads_exclude_each_other", EXCLUSION;
    reentrant_try_lock: in_process(Bug::ReentrantTryLock)
        => "lock_twice_is_an_error", "fails with AlreadyHeld";
    hang_lock_waits_for_itself: in_process(Bug::HangSelfDeadlock)
        => "lock_twice_is_an_error", "self-deadlock";
    timed_lock_times_out_on_itself: in_process(Bug::TimedNoAlreadyHeld)
        => "lock_twice_is_an_error", "fails with AlreadyHeld";
    unlock_releases_another_handles_lock: in_process(Bug::UnlockAnyone)
        => "unlock_without_holding_is_an_error", "releases nothing";
    unlock_without_holding_succeeds: in_process(Bug::UnlockNotHeldOk)
        => "unlock_without_holding_is_an_error", "fails with NotHeld";
    drop_keeps_the_lock: in_process(Bug::NoReleaseOnDrop)
        => "drop_releases", "dropping a handle that holds the lock releases it";
    every_drop_releases: in_process(Bug::DropReleasesAlways)
        => "drop_of_another_handle_keeps_the_lock", "releases nothing";
    drop_wakes_no_waiter: in_process(Bug::DropNoWake)
        => "drop_wakes_a_waiter", "soon after its holder is dropped";
    unlock_wakes_no_waiter: in_process(Bug::UnlockNoWake)
        => "hang_lock_waits_for_release", "a waiter acquires the lock soon after it is released";
    one_wake_up_for_all_names: in_process(Bug::NotifyOne)
        => "waiters_on_two_names_are_each_woken", "wakes a waiter of that lock";
    status_mine_for_everyone: in_process(Bug::StatusMineForAll)
        => "status_follows_lock_and_unlock", STATUS;
    status_open_while_taken: in_process(Bug::StatusOpenWhenTaken)
        => "status_follows_lock_and_unlock", STATUS;
    unlock_forgets_it_released: in_process(Bug::UnlockKeepsFlag)
        => "relock_many_times", "a handle can lock and unlock again and again";
    holder_reported_on_a_free_lock: in_process(Bug::HolderWhenFree)
        => "holder_is_none_on_a_free_lock", "holder() is None while nobody holds the lock";
    holder_with_a_wrong_pid: in_process(Bug::HolderWrongPid)
        => "holder_names_the_holding_process", "name the process that holds the lock";
    already_locked_without_holder: in_process(Bug::AlreadyLockedNoHolder)
        => "holder_names_the_holding_process", "name the process that holds the lock";
    timed_out_with_the_wrong_timeout: in_process(Bug::TimedOutWrongTimeout)
        => "timed_lock_times_out", "naming the lock and its timeout";
    timed_lock_gives_up_early: in_process(Bug::TimedEarly)
        => "timed_lock_times_out", "no earlier than its timeout";
    timed_lock_sleeps_in_fixed_steps: in_process(Bug::TimedFixedSteps)
        => "timed_lock_gives_up_on_time", "and not much later";
    timed_lock_ignores_releases: in_process(Bug::TimedIgnoresRelease)
        => "timed_lock_acquires_soon_after_release", "acquires the lock soon after it is released";
    timed_lock_zero_waits_forever: in_process(Bug::TimedZeroForever)
        => "timed_lock_times_out", "gives up with TimedOut";
    clones_share_one_identity: in_process(Bug::CloneSharesIdentity)
        => "clone_is_a_new_handle_on_the_same_lock", "which does not hold it";
    try_lock_says_already_held: in_process(Bug::TryLockWrongError)
        => "try_lock_fails_while_held_elsewhere", "try_lock fails with AlreadyLocked";
    errors_without_a_name: in_process(Bug::EmptyErrorName)
        => "try_lock_fails_while_held_elsewhere", "errors name the lock";
    long_names_collide: in_process(Bug::KeysCollide)
        => "different_locks_are_independent", "locks of different keys are independent";
    clean_release_reported_as_death: in_process(Bug::DiedAfterRelease)
        => "clean_release_is_not_a_death", "never reported dead";
    new_handle_knows_a_previous_holder: in_process(Bug::FreshReleased)
        => "fresh_handle_is_open", "knows no previous holder";
    shared_handles_take_it_exclusively: in_process(Bug::SharedTakesExclusive)
        => "shared_holders_coexist", "shared handles hold the lock together";
    shared_handles_ignore_the_writer: in_process(Bug::SharedIgnoresExclusive)
        => "shared_and_exclusive_exclude_each_other", "never with an exclusive one";
    woken_waiter_does_not_check_again: in_process(Bug::WaiterSkipsRecheck)
        => "every_waiter_gets_its_turn", EXCLUSION;
    in_process_lock_claiming_processes: in_process(Bug::None).across_processes()
        => "processes_exclude_each_other", EXCLUSION;
    in_process_lock_claiming_processes_is_not_taken_elsewhere: in_process(Bug::None).across_processes()
        => "another_process_sees_the_lock_taken", STATUS;
    killed_holder_keeps_the_lock: across_processes(FileBug::HeldByRecord)
        => "killed_holder_releases_the_lock", "a holder killed inside its critical section releases";
    death_never_reported: across_processes(FileBug::NeverReportsDied)
        => "killed_holder_is_reported_dead", "learns that it died";
    clean_release_across_processes_reported_as_death: across_processes(FileBug::NoFreeRecord)
        => "clean_release_is_reported_released", "learns that it was released";
    holder_names_this_process_not_the_child: across_processes(FileBug::HolderOwnPid)
        => "another_process_sees_the_lock_taken", "name the process that holds the lock";
    async_wait_blocks_the_thread: in_process(Bug::AsyncBlocks)
        => "async_poll_never_blocks", "never blocks the thread";
    async_wait_never_woken: in_process(Bug::AsyncNoWaker)
        => "async_lock_waits_for_release", "a waiter acquires the lock soon after it is released";
    async_guard_drop_keeps_the_lock: in_process(Bug::AsyncGuardDropKeeps)
        => "async_guard_releases", "an async guard holds the lock until it is dropped";
    async_grant_kept_by_a_dropped_future: in_process(Bug::AsyncGrantThenPending)
        => "async_dropped_after_grant_leaves_it_free", "right after the grant included";
    async_wait_on_a_thread_outlives_its_future: in_process(Bug::AsyncWaitOnAThread)
        => "async_dropped_wait_takes_nothing", "nobody acquires it for the dropped future";
}

#[test]
fn reference_in_process_passes_every_check() {
    let failures = conformance::run_all(
        "reference_in_process_passes_every_check",
        &in_process(Bug::None),
    );
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn reference_across_processes_passes_every_check() {
    let failures = conformance::run_all(
        "reference_across_processes_passes_every_check",
        &across_processes(FileBug::None),
    );
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Checks are independent: a bug fails the checks about it, not the rest of the suite.
#[test]
fn a_bug_fails_only_the_checks_about_it() {
    let cases: [(Bug, &[&str]); 2] = [
        (Bug::DropNoWake, &["drop_wakes_a_waiter"]),
        (
            Bug::HolderWhenFree,
            // The second check also looks at holder() after a release.
            &[
                "holder_is_none_on_a_free_lock",
                "holder_names_the_holding_process",
            ],
        ),
    ];
    // The two runs of the suite at once, to halve the time.
    let runs: Vec<_> = cases
        .iter()
        .map(|&(bug, _)| {
            std::thread::spawn(move || {
                conformance::run_all("a_bug_fails_only_the_checks_about_it", &in_process(bug))
            })
        })
        .collect();
    for ((bug, expected), run) in cases.into_iter().zip(runs) {
        let failures = run
            .join()
            .expect("run_all reports failures, it does not panic");
        let failed: Vec<_> = failures.iter().map(|f| f.check).collect();
        assert_eq!(failed, expected, "{bug:?}: {failures:#?}");
        for failure in &failures {
            assert!(
                failure
                    .message
                    .contains("holder() is None while nobody holds")
                    || bug == Bug::DropNoWake,
                "{failure}"
            );
        }
    }
}

/// A check stuck in the backend is reported by name, with the step it was stuck in, when its
/// patience runs out — and the test binary goes on.
#[test]
fn a_stuck_check_is_reported_by_name() {
    let backend = in_process(Bug::TimedZeroForever)
        .wake_within(Duration::from_secs(30))
        .patience(Duration::from_secs(1));
    let failure = conformance::outcome(
        "timed_lock_times_out",
        "a_stuck_check_is_reported_by_name",
        backend,
    )
    .expect_err("timed_lock(0) waits forever in this mutant");
    let text = failure.to_string();
    assert!(
        text.contains("`timed_lock_times_out`")
            && text.contains("stuck")
            && text.contains("timed_lock(100ms) while another handle holds the lock"),
        "{text}"
    );
}
