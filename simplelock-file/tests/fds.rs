//! No descriptor leaks: create/lock/drop cycles, failed opens and timed waits (which use an
//! inotify instance, kept afterwards in a pool for the next wait) leave the number of open
//! descriptors flat. A test binary of its own, so
//! that no other test opens files meanwhile.
// Unix: the helpers (tests/common) and the cases use modes, users, fork or signals; Windows
// runs tests/windows.rs and the conformance suite.
#![cfg(unix)]

mod common;

use std::fs;
use std::time::Duration;

use common::scratch;
use simplelock_core::{ConcreteLock, SimpleLockError};
use simplelock_file::FileLock;

fn open_descriptors() -> usize {
    fs::read_dir("/proc/self/fd").unwrap().count()
}

#[test]
fn a_hundred_thousand_cycles_leave_the_descriptor_count_flat() {
    let dir = scratch("fds");
    let path = dir.join("cycle.lock");
    let link = dir.join("link.lock");
    std::os::unix::fs::symlink(&path, &link).unwrap();
    drop(FileLock::at_path(&path).unwrap()); // first-use setup (fork handlers) out of the count
    let before = open_descriptors();

    for round in 0..100_000 {
        let mut lock = FileLock::at_path(&path).unwrap();
        lock.try_lock().unwrap();
        if round % 1000 == 0 {
            // Dropped while held, and failed opens.
            assert!(FileLock::at_path(&link).is_err());
            assert!(FileLock::at_path(dir.join("missing/x.lock")).is_err());
            continue;
        }
        lock.try_unlock().unwrap();
    }
    assert_eq!(
        open_descriptors(),
        before,
        "create/lock/drop leaked descriptors"
    );

    // Timed waits that time out, each with an inotify watch.
    let mut holder = FileLock::at_path(&path).unwrap();
    let mut waiter = FileLock::at_path(&path).unwrap();
    holder.try_lock().unwrap();
    let wait = |waiter: &mut FileLock| {
        assert!(matches!(
            waiter.timed_lock(Duration::from_micros(200)),
            Err(SimpleLockError::TimedOut { .. })
        ));
    };
    // The first timed wait creates the inotify instance that every later one reuses. (Waits
    // run on another thread: this one holds the lock, so its own wait would be WouldDeadlock.)
    std::thread::scope(|s| {
        s.spawn(|| wait(&mut waiter));
    });
    let during = open_descriptors();
    std::thread::scope(|s| {
        s.spawn(|| {
            for _ in 0..200 {
                wait(&mut waiter);
            }
        });
    });
    assert_eq!(open_descriptors(), during, "timed waits leaked descriptors");
    drop((holder, waiter));
    assert_eq!(
        open_descriptors(),
        before + 1,
        "only the pooled inotify instance stays"
    );
}
