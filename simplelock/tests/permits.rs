//! Counting semaphores across real processes, on every backend that crosses processes: 8
//! processes contend for 3 permits, each counting itself into a shared book while it holds
//! one; holders are SIGKILLed inside their critical section. The book never lists more than 3
//! holders, no permit is held twice, and after the storm exactly 3 permits can be taken at once.
//!
//! The book is a file of `permit pid` lines under its own flock (released by the kernel when a
//! writer is killed), rewritten whole by rename. An entry of a killed holder stays in the book
//! until the next taker of its permit, told that the previous holder died, removes it; a taker
//! told "released" that finds an entry for its permit has found two holders of one permit.
//! A backend that cannot tell a death from a release (postgres: the server keeps no trace of a
//! session's end) reports neither: there the killer, which waited for the victim's death,
//! removes the victim's entry itself.
//! Children are this test binary re-run through the harness's child-process protocol.
//! Linux only, as the counting semaphores are (OFD locks, futex_waitv); the postgres ones need
//! the test server (`$SIMPLELOCK_POSTGRES_URL`, else the local `test` database).
#![cfg(all(
    target_os = "linux",
    any(feature = "file", feature = "sema", feature = "postgres")
))]

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use simplelock::{ConcreteLock, Permits, SimpleLockError, SimpleLockResult};
use simplelock_harness::child::{self, Child, PATIENCE, Silence, say};

const BACKEND: &str = "SIMPLELOCK_PERMITS_TEST_BACKEND";
const DIR: &str = "SIMPLELOCK_PERMITS_TEST_DIR";
const NAME: &str = "SIMPLELOCK_PERMITS_TEST_NAME";
const PERMITS: u32 = 3;
const PROCESSES: usize = 8;
const ROUNDS: usize = 40;
const KILLS: usize = 8;

type Handle = Box<dyn Permits + Send>;

/// The semaphore `name` of `backend`, with `permits` permits.
fn open(backend: &str, dir: &Path, name: &str, permits: u32) -> SimpleLockResult<Handle> {
    match backend {
        #[cfg(feature = "file")]
        "file" => Ok(Box::new(simplelock::FilePermits::at_path(
            dir.join(format!("{name}.permits")),
            permits,
        )?)),
        #[cfg(feature = "sema")]
        "sema" => Ok(Box::new(simplelock::SemaphorePermits::named(
            name, permits,
        )?)),
        #[cfg(feature = "postgres")]
        "postgres" => Ok(Box::new(
            simplelock::PostgresPermits::options()
                .with_url(postgres_url())
                .named(name, permits)?,
        )),
        other => panic!("backend {other:?} is not enabled in this build (dir {dir:?})"),
    }
}

/// The test server.
#[cfg(feature = "postgres")]
fn postgres_url() -> String {
    std::env::var("SIMPLELOCK_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://127.0.0.1:5432/test".to_owned())
}

/// Whether the backend tells a taker that the permit's previous holder died.
fn reports_deaths(backend: &str) -> bool {
    backend != "postgres"
}

/// A scratch folder for one test, emptied first.
fn scratch(test: &str) -> PathBuf {
    child::scratch(&format!("permits-{test}"))
}

/// The book: holders by permit, under `book.lock`.
struct Book {
    dir: PathBuf,
}

impl Book {
    fn with<R>(&self, f: impl FnOnce(&mut BTreeMap<u32, u32>) -> R) -> R {
        let guard = File::create(self.dir.join("book.lock")).unwrap();
        guard.lock().unwrap();
        let mut entries = BTreeMap::new();
        if let Ok(text) = fs::read_to_string(self.dir.join("book")) {
            for line in text.lines() {
                let (permit, pid) = line.split_once(' ').unwrap();
                entries.insert(permit.parse().unwrap(), pid.parse().unwrap());
            }
        }
        let before = entries.clone();
        let result = f(&mut entries);
        if entries != before {
            let tmp = self.dir.join(format!("book.{}", std::process::id()));
            let mut text = String::new();
            for (permit, pid) in &entries {
                text.push_str(&format!("{permit} {pid}\n"));
            }
            fs::write(&tmp, text).unwrap();
            fs::rename(&tmp, self.dir.join("book")).unwrap();
        }
        result
    }
}

/// A child of the storm: takes a permit `ROUNDS` times, counting itself in and out.
fn storm_child(backend: &str, dir: &Path, name: &str) {
    let book = Book {
        dir: dir.to_owned(),
    };
    let me = std::process::id();
    let mut permit = open(backend, dir, name, PERMITS).unwrap_or_else(|err| panic!("{err}"));
    for _ in 0..ROUNDS {
        permit.hang_lock().unwrap();
        let slot = permit
            .held_permit()
            .expect("a handle that locked holds a permit");
        let died = permit.previous_holder().died();
        say(if died { "taken died" } else { "taken released" });
        let inside = book.with(|entries| {
            if slot >= PERMITS {
                say(&format!("violation: permit {slot} of {PERMITS}"));
            }
            match entries.get(&slot) {
                Some(_) if died => {}
                Some(other) => say(&format!(
                    "violation: permit {slot} given to {me} while {other} holds it"
                )),
                None => {}
            }
            entries.insert(slot, me);
            entries.len()
        });
        say(&format!("inside {inside}"));
        if inside > PERMITS as usize {
            say(&format!("violation: {inside} holders at once"));
        }
        thread::sleep(Duration::from_millis(2));
        book.with(|entries| entries.remove(&slot));
        permit.try_unlock().unwrap();
    }
    say("done");
}

#[test]
fn child() {
    let Some(role) = child::role() else {
        return; // a normal run: this test is only the children's entry point
    };
    let dir = PathBuf::from(child::env(DIR));
    match role.as_str() {
        "storm" => storm_child(&child::env(BACKEND), &dir, &child::env(NAME)),
        other => panic!("unknown role {other}"),
    }
}

fn spawn(backend: &str, dir: &Path, name: &str) -> Child {
    let dir = dir.display().to_string();
    Child::start(
        "child",
        "storm",
        &[(BACKEND, backend), (DIR, &dir), (NAME, name)],
    )
}

/// Everything a child said, up to its end.
fn lines_of(child: Child) -> Vec<String> {
    let mut lines = Vec::new();
    loop {
        match child.recv(PATIENCE) {
            Ok(line) => lines.push(line),
            Err(Silence::Ended) => return lines,
            Err(Silence::Timeout) => panic!("child {} is stuck: {lines:?}", child.pid()),
        }
    }
}

fn storm(backend: &str, test: &str, kills: usize) {
    let dir = scratch(test);
    let name = format!("storm-{}-{test}", std::process::id());
    let book = Book { dir: dir.clone() };
    // Created (and N fixed) before the children start, so that they all agree.
    let first = open(backend, &dir, &name, PERMITS).unwrap_or_else(|err| panic!("{err}"));
    let mut running: Vec<Child> = (0..PROCESSES)
        .map(|_| spawn(backend, &dir, &name))
        .collect();
    let mut said = Vec::new();
    let mut killed = 0;
    let started = Instant::now();
    while killed < kills {
        thread::sleep(Duration::from_millis(20));
        // Kill a holder inside its critical section: one the book lists right now.
        let victim = book.with(|entries| {
            let listed: Vec<u32> = entries.values().copied().collect();
            let index = running.iter().position(|c| listed.contains(&c.pid()))?;
            let mut child = running.remove(index);
            child.kill(); // and waited for: it is dead now
            if !reports_deaths(backend) {
                entries.retain(|_, pid| *pid != child.pid());
            }
            Some(child)
        });
        if let Some(victim) = victim {
            said.extend(lines_of(victim));
            killed += 1;
            running.push(spawn(backend, &dir, &name));
        } else {
            assert!(
                started.elapsed() < PATIENCE,
                "only {killed} of {kills} holders could be killed; raise ROUNDS"
            );
        }
    }
    for child in running {
        said.extend(lines_of(child));
    }
    let violations: Vec<_> = said.iter().filter(|l| l.starts_with("violation")).collect();
    assert!(violations.is_empty(), "{violations:#?}");
    let most = said
        .iter()
        .filter_map(|l| l.strip_prefix("inside "))
        .map(|n| n.parse::<usize>().unwrap())
        .max()
        .unwrap();
    assert!(most <= PERMITS as usize, "{most} holders at once");
    assert_eq!(
        most, PERMITS as usize,
        "never 3 at once: the semaphore let too few in"
    );
    let done = said.iter().filter(|l| *l == "done").count();
    assert_eq!(done, PROCESSES, "every child that was not killed finishes");
    if kills > 0 && reports_deaths(backend) {
        assert!(
            said.iter().any(|l| l == "taken died"),
            "no taker was told its previous holder died, after {kills} holders were killed"
        );
    }
    // No permit lost: exactly 3 can be taken at once.
    let mut takers: Vec<Handle> = (0..=PERMITS)
        .map(|_| open(backend, &dir, &name, PERMITS))
        .collect::<SimpleLockResult<_>>()
        .unwrap_or_else(|err| panic!("{err}"));
    for taker in &mut takers[..PERMITS as usize] {
        taker.try_lock().unwrap();
    }
    let holders = first.holders().unwrap();
    assert_eq!(holders.len(), PERMITS as usize);
    for state in &holders {
        assert_eq!(
            state.holder().map(|h| h.pid),
            Some(std::process::id()),
            "{holders:?}"
        );
    }
    let err = takers[PERMITS as usize].try_lock().unwrap_err();
    assert!(
        matches!(err, SimpleLockError::AlreadyLocked { .. }),
        "{err:?}"
    );
    drop((takers, first));
    remove(backend, &dir, &name);
}

/// Deletes what the semaphore left behind.
fn remove(backend: &str, dir: &Path, name: &str) {
    #[cfg(feature = "sema")]
    if backend == "sema" {
        simplelock::SemaphorePermits::remove(name).unwrap_or_else(|err| panic!("{err}"));
    }
    let _ = (backend, name);
    let _ = fs::remove_dir_all(dir);
}

fn disagreeing_permits_are_refused(backend: &str, test: &str) {
    let dir = scratch(test);
    let name = format!("disagree-{}-{test}", std::process::id());
    let _four = open(backend, &dir, &name, 4).unwrap();
    let Err(err) = open(backend, &dir, &name, 8) else {
        panic!("a semaphore of 4 permits was opened with 8");
    };
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
    let text = err.to_string();
    assert!(text.contains('4') && text.contains('8'), "{text}");
    open(backend, &dir, &name, 4).unwrap_or_else(|err| panic!("{err}"));
    remove(backend, &dir, &name);
}

#[cfg(feature = "file")]
mod file {
    #[test]
    fn eight_processes_three_permits() {
        super::storm("file", "file-storm", 0);
    }

    #[test]
    fn eight_processes_three_permits_with_holders_killed() {
        super::storm("file", "file-kills", super::KILLS);
    }

    #[test]
    fn disagreeing_permits_are_refused() {
        super::disagreeing_permits_are_refused("file", "file-disagree");
    }
}

#[cfg(feature = "postgres")]
mod postgres {
    #[test]
    fn eight_processes_three_permits() {
        super::storm("postgres", "postgres-storm", 0);
    }

    #[test]
    fn eight_processes_three_permits_with_holders_killed() {
        super::storm("postgres", "postgres-kills", super::KILLS);
    }

    #[test]
    fn disagreeing_permits_are_refused() {
        super::disagreeing_permits_are_refused("postgres", "postgres-disagree");
    }
}

#[cfg(feature = "sema")]
mod sema {
    #[test]
    fn eight_processes_three_permits() {
        super::storm("sema", "sema-storm", 0);
    }

    #[test]
    fn eight_processes_three_permits_with_holders_killed() {
        super::storm("sema", "sema-kills", super::KILLS);
    }

    #[test]
    fn disagreeing_permits_are_refused() {
        super::disagreeing_permits_are_refused("sema", "sema-disagree");
    }
}
