//! The checks across processes, and the parts their children play.
//!
//! The critical section is checked through files in a scratch folder every process can reach:
//! a marker created with `create_new` while someone is inside (a second entrant fails to create
//! it and records the overlap), and a counter updated by a deliberately racy read-modify-write.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process;
use std::thread;
use std::time::Duration;

use super::checks::{
    EXCLUSION, HOLDER_PID, NO_FALSE_DEATH, STATUS, WAITS, WOKEN, expect_error_holder, expect_holder,
};
use super::child::{hear, say};
use super::harness::{Ctx, broke, check_error_payload, expect_err, expect_status, ok, spawn};
use super::process::{Child, Scratch};
use super::{Backend, Claim, SETTLE, WAKE};
use crate::{ConcreteLock, LockStatus, PreviousHolder, SimpleLockError};

const CRASH: &str = "a holder killed inside its critical section releases the lock at once";
const DEATH: &str =
    "the next holder after a holder was killed learns that it died (previous_holder() is Died)";
const RELEASED: &str = "the next holder after a clean release learns that it was released (previous_holder() is \
     Released)";
const CHILD: &str = "the child process plays its part (the opener works in every process)";

/// How many processes contend in `processes_exclude_each_other`, besides the parent.
const CONTENDERS: usize = 3;
/// How many times each contender takes the lock.
const ROUNDS: usize = 60;

/// Runs check `name`.
pub(super) fn run<H: ConcreteLock + Send + 'static>(name: &str, ctx: &Ctx<H>) {
    match name {
        "processes_exclude_each_other" => processes_exclude_each_other(ctx),
        "another_process_sees_the_lock_taken" => another_process_sees_the_lock_taken(ctx),
        "killed_holder_releases_the_lock" => killed_holder_releases_the_lock(ctx),
        "killed_holder_is_reported_dead" => killed_holder_is_reported_dead(ctx),
        "clean_release_is_reported_released" => clean_release_is_reported_released(ctx),
        other => unreachable!("{other} is in CHECKS but has no code"),
    }
}

/// In a child: plays `role` on the lock of `key`, with the critical section in `dir`.
pub(super) fn play<H: ConcreteLock + Send + 'static>(
    role: &str,
    backend: &Backend<H>,
    key: &str,
    dir: &Path,
) {
    let mut handle = (backend.open)(key)
        .unwrap_or_else(|e| panic!("the child could not open key {key:?}: {e} ({e:?})"));
    let section = Section::at(dir);
    match role {
        "holder" => {
            handle
                .hang_lock()
                .unwrap_or_else(|e| panic!("the holding child could not lock: {e} ({e:?})"));
            section.enter();
            say("held");
            // Inside the critical section until told otherwise (or killed).
            loop {
                match hear().as_str() {
                    "release" => {
                        section.leave();
                        handle.try_unlock().unwrap_or_else(|e| {
                            panic!("the holding child could not unlock: {e} ({e:?})")
                        });
                        say("released");
                    }
                    _ => return,
                }
            }
        }
        "contender" => {
            say("ready");
            for round in 0..ROUNDS {
                match round % 3 {
                    0 => handle.hang_lock(),
                    1 => handle.timed_lock(WAKE * 6),
                    _ => loop {
                        match handle.try_lock() {
                            Err(SimpleLockError::AlreadyLocked { .. }) => thread::yield_now(),
                            other => break other,
                        }
                    },
                }
                .unwrap_or_else(|e| panic!("contender, round {round}: locking failed: {e:?}"));
                section.enter();
                section.increment();
                section.leave();
                handle
                    .try_unlock()
                    .unwrap_or_else(|e| panic!("contender, round {round}: unlock failed: {e:?}"));
            }
        }
        other => panic!("no child role is called {other:?}"),
    }
}

/// The files of a checked critical section.
struct Section {
    marker: PathBuf,
    counter: PathBuf,
    overlaps: PathBuf,
}

impl Section {
    fn at(dir: &Path) -> Section {
        Section {
            marker: dir.join("inside"),
            counter: dir.join("counter"),
            overlaps: dir.join("overlaps"),
        }
    }

    fn create(dir: &Path) -> Section {
        let section = Section::at(dir);
        fs::write(&section.counter, "0").expect("writing the counter");
        section
    }

    /// Enters (holding the lock): records an overlap if another process is inside.
    fn enter(&self) {
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&self.marker)
        {
            Ok(mut file) => {
                let _ = write!(file, "{}", process::id());
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let other = fs::read_to_string(&self.marker).unwrap_or_default();
                let mut log = OpenOptions::new()
                    .append(true)
                    .create(true)
                    .open(&self.overlaps)
                    .expect("opening the overlap log");
                let _ = writeln!(
                    log,
                    "process {} entered while process {other} was inside",
                    process::id()
                );
            }
            Err(e) => panic!("creating the marker {}: {e}", self.marker.display()),
        }
    }

    /// The racy increment: read, yield, write.
    fn increment(&self) {
        let seen: u64 = fs::read_to_string(&self.counter)
            .ok()
            .and_then(|text| text.trim().parse().ok())
            .unwrap_or(0);
        thread::yield_now();
        fs::write(&self.counter, (seen + 1).to_string()).expect("writing the counter");
    }

    /// Leaves (before releasing the lock): removes the marker if it is ours.
    fn leave(&self) {
        if fs::read_to_string(&self.marker).is_ok_and(|pid| pid == process::id().to_string()) {
            let _ = fs::remove_file(&self.marker);
        }
    }

    fn overlaps(&self) -> Vec<String> {
        fs::read_to_string(&self.overlaps)
            .map(|text| text.lines().map(str::to_owned).collect())
            .unwrap_or_default()
    }

    fn count(&self) -> u64 {
        fs::read_to_string(&self.counter)
            .ok()
            .and_then(|text| text.trim().parse().ok())
            .unwrap_or(0)
    }
}

/// Fails under [`EXCLUSION`] if the section saw two processes inside.
#[track_caller]
fn expect_no_overlap(section: &Section, when: &str) {
    let overlaps = section.overlaps();
    if let Some(first) = overlaps.first() {
        broke(
            EXCLUSION,
            format!(
                "{} times two holders at once {when}; the first: {first}",
                overlaps.len()
            ),
        );
    }
}

/// Processes contending for one lock never overlap and lose no update; while this process
/// holds the lock at the start, none of them gets in.
fn processes_exclude_each_other<H: ConcreteLock + Send + 'static>(ctx: &Ctx<H>) {
    let scratch = Scratch::new(ctx.check);
    let section = Section::create(scratch.path());
    let key = ctx.key("lock");
    let mut mine = ctx.open(&key);
    ok(EXCLUSION, "try_lock on a free lock", mine.try_lock());
    section.enter();
    ctx.step("starting the contending processes");
    let mut children: Vec<Child> = (0..CONTENDERS)
        .map(|_| Child::spawn(ctx, "contender", &key, scratch.path()))
        .collect();
    for child in &mut children {
        child.expect("ready", CHILD);
    }
    thread::sleep(SETTLE);
    expect_no_overlap(
        &section,
        "while this process held the lock and the children waited",
    );
    section.leave();
    ok(EXCLUSION, "try_unlock by this process", mine.try_unlock());
    ctx.step("contending with the children");
    for round in 0..ROUNDS {
        ok(
            EXCLUSION,
            &format!("hang_lock of this process, round {round}"),
            mine.hang_lock(),
        );
        section.enter();
        section.increment();
        section.leave();
        ok(
            EXCLUSION,
            &format!("try_unlock of this process, round {round}"),
            mine.try_unlock(),
        );
    }
    ctx.step("waiting for the contending processes to finish");
    for child in &mut children {
        child.expect_success(WAKE * 6, CHILD);
    }
    expect_no_overlap(&section, "while processes contended");
    let expected = ((CONTENDERS + 1) * ROUNDS) as u64;
    let count = section.count();
    if count != expected {
        broke(
            EXCLUSION,
            format!(
                "{} of {expected} updates of the shared counter were lost",
                expected - count
            ),
        );
    }
}

/// A scratch folder with its section file, the key of the check's lock, and a child process
/// that holds that lock.
fn child_holding<H: ConcreteLock + Send + 'static>(ctx: &Ctx<H>) -> (Scratch, String, Child) {
    let scratch = Scratch::new(ctx.check);
    Section::create(scratch.path());
    let key = ctx.key("lock");
    ctx.step("starting a child that holds the lock");
    let mut child = Child::spawn(ctx, "holder", &key, scratch.path());
    child.expect("held", CHILD);
    (scratch, key, child)
}

/// While a child process holds the lock, a handle here sees it `Taken`, cannot take it, names
/// the child as the holder (where it names one), and gets it once the child releases.
fn another_process_sees_the_lock_taken<H: ConcreteLock + Send + 'static>(ctx: &Ctx<H>) {
    let (_scratch, key, mut child) = child_holding(ctx);
    let pid = child.pid();
    let mut b = ctx.open(&key);
    expect_status(
        STATUS,
        "a handle of this process while a child process holds",
        &b,
        LockStatus::Taken,
    );
    let err = expect_err!(
        EXCLUSION,
        "try_lock while another process holds the lock",
        b.try_lock(),
        AlreadyLocked
    );
    if ctx.backend.claims(Claim::HolderPid) {
        expect_holder(&b, pid, "a child process");
        expect_error_holder("try_lock", &err, pid);
        let err = expect_err!(
            HOLDER_PID,
            "timed_lock(10ms) while another process holds the lock",
            b.timed_lock(Duration::from_millis(10)),
            TimedOut
        );
        expect_error_holder("timed_lock", &err, pid);
    } else {
        check_error_payload("try_lock", &err, pid);
    }
    ctx.step("waiting while another process holds the lock");
    let waiter = spawn(move || (b.hang_lock(), b));
    waiter.expect_still_running(
        SETTLE,
        WAITS,
        "hang_lock returned while another process held the lock",
    );
    child.send("release");
    child.expect("released", CHILD);
    ctx.step("waiting for hang_lock after the child released the lock");
    let (result, mut b) = waiter.expect_within(
        ctx.wake,
        WOKEN,
        "hang_lock did not return after another process released the lock",
    );
    ok(WOKEN, "hang_lock after another process released", result);
    if b.previous_holder() == PreviousHolder::Died {
        broke(
            NO_FALSE_DEATH,
            "previous_holder() is Died after another process released cleanly",
        );
    }
    child.send("exit");
    child.expect_success(WAKE, CHILD);
    ok(EXCLUSION, "try_unlock", b.try_unlock());
}

/// A child killed with SIGKILL while it holds the lock (inside its critical section) frees it:
/// a waiter gets it, and so does a `timed_lock` after the death; the lock is never held twice.
fn killed_holder_releases_the_lock<H: ConcreteLock + Send + 'static>(ctx: &Ctx<H>) {
    // A waiter is asleep when the holder dies.
    let (scratch, key, mut child) = child_holding(ctx);
    let mut probe = ctx.open(&key);
    expect_err!(
        EXCLUSION,
        "try_lock while another process holds the lock",
        probe.try_lock(),
        AlreadyLocked
    );
    let mut waiter = ctx.open(&key);
    let pending = spawn(move || (waiter.hang_lock(), waiter));
    pending.expect_still_running(
        SETTLE,
        WAITS,
        "hang_lock returned while another process held the lock",
    );
    child.kill();
    ctx.step("waiting for a waiter to get the lock of a killed holder");
    let (result, mut waiter) = pending.expect_within(
        ctx.wake,
        CRASH,
        format!(
            "a waiter did not get the lock after its holder (pid {}) was killed",
            child.pid()
        ),
    );
    ok(
        CRASH,
        "hang_lock of a waiter after the holder was killed",
        result,
    );
    expect_err!(
        EXCLUSION,
        "try_lock while the waiter holds the lock it got from a killed holder",
        probe.try_lock(),
        AlreadyLocked
    );
    ok(EXCLUSION, "try_unlock of the waiter", waiter.try_unlock());
    // Nobody waits when the holder dies.
    let (result, mut probe, pid) = timed_lock_after_killed_holder(ctx, &key, &scratch, probe);
    ok(
        CRASH,
        &format!(
            "timed_lock({:?}) after the holder (pid {pid}) was killed",
            ctx.wake
        ),
        result,
    );
    ok(EXCLUSION, "try_unlock", probe.try_unlock());
}

/// Starts a child that takes `key`, SIGKILLs it in its critical section, then takes the lock
/// with `timed_lock` through `handle` (in a thread, with a hang guard): the outcome, the handle
/// and the killed child's pid.
fn timed_lock_after_killed_holder<H: ConcreteLock + Send + 'static>(
    ctx: &Ctx<H>,
    key: &str,
    scratch: &Scratch,
    mut handle: H,
) -> (crate::SimpleLockResult<()>, H, u32) {
    ctx.step("starting a child that holds the lock");
    let mut child = Child::spawn(ctx, "holder", key, scratch.path());
    child.expect("held", CHILD);
    child.kill();
    ctx.step("timed_lock after the holder was killed");
    let wake = ctx.wake;
    let pending = spawn(move || (handle.timed_lock(wake), handle));
    let (result, handle) = pending.expect_within(
        ctx.wake * 2,
        CRASH,
        "timed_lock did not return after the holder was killed",
    );
    (result, handle, child.pid())
}

/// After a child was killed while holding the lock, the next holder learns `Died`; after that
/// holder releases cleanly, the one after learns `Released`.
fn killed_holder_is_reported_dead<H: ConcreteLock + Send + 'static>(ctx: &Ctx<H>) {
    let scratch = Scratch::new(ctx.check);
    Section::create(scratch.path());
    let key = ctx.key("lock");
    let a = ctx.open(&key);
    let (result, mut a, pid) = timed_lock_after_killed_holder(ctx, &key, &scratch, a);
    ok(CRASH, "timed_lock after the holder was killed", result);
    expect_previous(
        &a,
        PreviousHolder::Died,
        DEATH,
        &format!("after the holder (pid {pid}) was killed while holding"),
    );
    ok(EXCLUSION, "try_unlock of the repairer", a.try_unlock());
    let mut b = ctx.open(&key);
    ok(
        EXCLUSION,
        "try_lock after the repairer released",
        b.try_lock(),
    );
    expect_previous(
        &b,
        PreviousHolder::Released,
        RELEASED,
        "after the holder that followed a death released cleanly",
    );
    ok(EXCLUSION, "try_unlock", b.try_unlock());
}

/// After a clean release — in this process, and by a child process — the next holder learns
/// `Released`.
fn clean_release_is_reported_released<H: ConcreteLock + Send + 'static>(ctx: &Ctx<H>) {
    let key = ctx.key("lock");
    let mut a = ctx.open(&key);
    let mut b = ctx.open(&key);
    ok(EXCLUSION, "try_lock on a free lock", a.try_lock());
    ok(EXCLUSION, "try_unlock", a.try_unlock());
    ok(EXCLUSION, "try_lock after a clean release", b.try_lock());
    expect_previous(
        &b,
        PreviousHolder::Released,
        RELEASED,
        "after a handle of this process released cleanly",
    );
    ok(EXCLUSION, "try_unlock", b.try_unlock());
    let scratch = Scratch::new(ctx.check);
    Section::create(scratch.path());
    ctx.step("a child process holds the lock and releases it");
    let mut child = Child::spawn(ctx, "holder", &key, scratch.path());
    child.expect("held", CHILD);
    child.send("release");
    child.expect("released", CHILD);
    child.send("exit");
    child.expect_success(WAKE, CHILD);
    ok(
        EXCLUSION,
        "try_lock after a child released cleanly and ended",
        b.try_lock(),
    );
    expect_previous(
        &b,
        PreviousHolder::Released,
        RELEASED,
        "after a child process released cleanly",
    );
    ok(EXCLUSION, "try_unlock", b.try_unlock());
}

/// `handle.previous_holder()` must be `expected`, or `rule` was broken; `after` says what
/// happened before (it may name a pid).
#[track_caller]
fn expect_previous<H: ConcreteLock>(handle: &H, expected: PreviousHolder, rule: &str, after: &str) {
    let previous = handle.previous_holder();
    if previous != expected {
        broke(rule, format!("previous_holder() is {previous:?} {after}"));
    }
}
