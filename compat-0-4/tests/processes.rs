//! The locks of `simplelock::compat_0_4` are today's: between real processes, a holder that is
//! SIGKILLed inside its critical section releases the lock, and the next 0.4-style caller gets
//! it (with 0.4.1's `SemaphoreLock` it stayed taken forever).
//!
//! The child is this test binary, re-run for one test with `COMPAT_0_4_TEST_ROLE=hold`: it
//! takes the lock, says `@locked` on its standard output, and waits to be killed.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use simplelock::compat_0_4::*;

mod common;
use common::TempName;

/// Tells a re-run test binary to hold the lock named by [`LOCK`]; unset in a normal run.
const ROLE: &str = "COMPAT_0_4_TEST_ROLE";
/// The name of the lock the child holds.
const LOCK: &str = "COMPAT_0_4_TEST_LOCK";

/// A child that holds a lock until it is killed; dropping it kills it, so that a failed test
/// leaves no process behind.
struct Holder(Child);

impl Holder {
    /// Re-runs this binary's `test` as the holder of `name`, and returns once it holds it.
    fn start(test: &str, name: &str) -> Holder {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", test, "--nocapture", "--test-threads=1", "-q"])
            .env(ROLE, "hold")
            .env(LOCK, name)
            .stdout(Stdio::piped())
            .spawn()
            .expect("starting the holder");
        let out = BufReader::new(child.stdout.take().unwrap());
        let holder = Holder(child);
        for line in out.lines() {
            if line.expect("reading the holder's output") == "@locked" {
                return holder;
            }
        }
        panic!("the holder ended without taking the lock");
    }

    /// SIGKILL, and wait until the process is gone.
    fn kill(mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Opens the lock `name` the 0.4 way, configured by `builder`.
type Open = fn(LockBuilder, &str) -> SimpleLockResult<Box<dyn Lock>>;

fn file_lock(builder: LockBuilder, name: &str) -> SimpleLockResult<Box<dyn Lock>> {
    builder.build(name) // the file backend: the first enabled one
}

fn semaphore_lock(builder: LockBuilder, name: &str) -> SimpleLockResult<Box<dyn Lock>> {
    builder.wrap(Box::new(SemaphoreLock::new(name)?))
}

/// In the child: take the lock the 0.4 way, say so, and wait to be killed. In the parent:
/// `false`.
fn hold(open: Open) -> bool {
    if std::env::var_os(ROLE).is_none() {
        return false;
    }
    let name = std::env::var(LOCK).unwrap();
    let mut lock = open(LockBuilder::default(), &name).unwrap();
    lock.lock().unwrap();
    println!("@locked");
    loop {
        std::thread::park();
    }
}

/// How long the test waits for the lock after the kill before it calls it stuck: a hang
/// guard, not a timing assertion.
const PATIENCE: Duration = Duration::from_secs(60);

/// The holder is killed inside its critical section: the lock is free for the next caller.
fn killed_holder_releases(test: &str, name: &str, open: Open) {
    let holder = Holder::start(test, name);
    let mut trier = open(LockBuilder::default().with_try_lock(), name).unwrap();
    assert!(matches!(trier.status().unwrap(), LockStatus::Taken));
    assert_eq!(trier.lock(), Err(SimpleLockError::AlreadyLocked));
    holder.kill();

    // A waiting lock (a backend may notice the death only while waiting), on another thread so
    // that a lock that stays held fails the test instead of hanging it.
    let (done, result) = mpsc::channel();
    let waiter_name = name.to_owned();
    thread::spawn(move || {
        let outcome = open(LockBuilder::default(), &waiter_name)
            .and_then(|mut lock| lock_until_finished(&mut lock, || "after the kill"));
        let _ = done.send(outcome);
    });
    match result.recv_timeout(PATIENCE) {
        Ok(outcome) => assert_eq!(outcome, Ok("after the kill")),
        Err(_) => panic!("lock {name:?} still held {PATIENCE:?} after its holder was killed"),
    }
    trier.lock().unwrap();
    assert!(matches!(trier.status().unwrap(), LockStatus::Mine));
    trier.unlock().unwrap();
}

#[test]
fn a_killed_file_lock_holder_releases_it() {
    if hold(file_lock) {
        return;
    }
    let name = TempName::new("proc-file");
    killed_holder_releases("a_killed_file_lock_holder_releases_it", &name, file_lock);
}

#[test]
fn a_killed_semaphore_lock_holder_releases_it() {
    if hold(semaphore_lock) {
        return;
    }
    let name = TempName::new("proc-sema");
    killed_holder_releases(
        "a_killed_semaphore_lock_holder_releases_it",
        &name,
        semaphore_lock,
    );
}
