//! One process: deadlock detection, shared locks, timed waits, the record on disk, holder and
//! status.
// Unix: the helpers (tests/common) and the cases use modes, users, fork or signals; Windows
// runs tests/windows.rs and the conformance suite.
#![cfg(unix)]

mod common;

use std::fs::{self, File};
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{PATIENCE, scratch};
use simplelock_core::{ConcreteLock, LockStatus, PreviousHolder, SimpleLockError};
use simplelock_file::FileLock;

fn lock_path(test: &str) -> PathBuf {
    scratch(test).join("lock.lock")
}

fn is_already_locked<T: std::fmt::Debug>(result: Result<T, SimpleLockError>) -> bool {
    matches!(result, Err(SimpleLockError::AlreadyLocked { .. }))
}

#[test]
fn waiting_for_a_lock_this_thread_holds_is_refused_not_a_hang() {
    let path = lock_path("deadlock");
    let mut first = common::lock_file(&path).unwrap();
    let mut second = common::lock_file(&path).unwrap();
    first.try_lock().unwrap();
    assert!(is_already_locked(second.try_lock()), "try mode just fails");
    for (what, result) in [
        ("hang_lock", second.hang_lock()),
        ("timed_lock", second.timed_lock(PATIENCE)),
    ] {
        assert!(
            matches!(result, Err(SimpleLockError::WouldDeadlock { .. })),
            "{what}: {result:?}"
        );
    }
    // A zero timeout is a try, not a wait.
    assert!(matches!(
        second.timed_lock(Duration::ZERO),
        Err(SimpleLockError::TimedOut { .. })
    ));
    // The refusal took nothing: the first handle still holds, the second does not.
    assert_eq!(first.status().unwrap(), LockStatus::Mine);
    assert_eq!(second.status().unwrap(), LockStatus::Taken);

    // Another thread waiting is no deadlock: it gets the lock once this thread releases.
    thread::scope(|s| {
        let waiter = s.spawn(|| second.hang_lock());
        thread::sleep(Duration::from_millis(20));
        assert!(!waiter.is_finished());
        first.try_unlock().unwrap();
        waiter.join().unwrap().unwrap();
    });
    second.try_unlock().unwrap();
    // Released holds are forgotten: the same thread may now wait on either handle.
    first.hang_lock().unwrap();
    first.try_unlock().unwrap();
}

#[test]
fn shared_then_exclusive_in_one_thread_is_refused_but_two_shared_are_fine() {
    let path = lock_path("deadlock-shared");
    let mut reader = common::lock_file_shared(&path).unwrap();
    let mut reader2 = common::lock_file_shared(&path).unwrap();
    let mut writer = common::lock_file(&path).unwrap();
    reader.hang_lock().unwrap();
    reader2.hang_lock().unwrap(); // shared + shared: no wait at all
    assert!(matches!(
        writer.hang_lock(),
        Err(SimpleLockError::WouldDeadlock { .. })
    ));
    reader2.try_unlock().unwrap();
    assert!(matches!(
        writer.timed_lock(PATIENCE),
        Err(SimpleLockError::WouldDeadlock { .. })
    ));
    reader.try_unlock().unwrap();
    writer.hang_lock().unwrap();
    // Exclusive held, shared wanted in the same thread: refused too.
    assert!(matches!(
        reader.hang_lock(),
        Err(SimpleLockError::WouldDeadlock { .. })
    ));
    writer.try_unlock().unwrap();
}

#[test]
fn shared_locks_admit_many_readers_and_exclude_writers() {
    let path = lock_path("shared");
    let mut readers: Vec<_> = (0..3)
        .map(|_| common::lock_file_shared(&path).unwrap())
        .collect();
    let mut writer = common::lock_file(&path).unwrap();
    assert!(readers.iter().all(FileLock::is_shared) && !writer.is_shared());
    for (i, reader) in readers.iter_mut().enumerate() {
        match i {
            0 => reader.try_lock().unwrap(),
            1 => reader.hang_lock().unwrap(),
            _ => reader.timed_lock(PATIENCE).unwrap(),
        }
    }
    assert_eq!(readers[0].status().unwrap(), LockStatus::Mine);
    let outsider = common::lock_file_shared(&path).unwrap();
    assert_eq!(
        outsider.status().unwrap(),
        LockStatus::Open,
        "readers share"
    );
    assert_eq!(writer.status().unwrap(), LockStatus::Taken);
    assert_eq!(
        writer.holder().unwrap().map(|h| h.pid),
        Some(std::process::id())
    );
    assert!(is_already_locked(writer.try_lock()));
    // (Waits happen on other threads: this one holds the readers, so its own wait would be
    // refused as a deadlock.)
    thread::scope(|s| {
        s.spawn(|| {
            let start = Instant::now();
            assert!(matches!(
                writer.timed_lock(Duration::from_millis(50)),
                Err(SimpleLockError::TimedOut { .. })
            ));
            assert!(start.elapsed() >= Duration::from_millis(50));
        });
    });

    // A waiting writer gets in only after the last reader left.
    thread::scope(|s| {
        let waiter = s.spawn(|| writer.timed_lock(PATIENCE).map(|()| Instant::now()));
        for reader in &mut readers {
            thread::sleep(Duration::from_millis(10));
            assert!(!waiter.is_finished(), "a writer got in with readers inside");
            reader.try_unlock().unwrap();
        }
        waiter.join().unwrap().unwrap();
    });

    // And the writer excludes readers in every mode.
    let reader = &mut readers[0];
    assert_eq!(reader.status().unwrap(), LockStatus::Taken);
    assert!(is_already_locked(reader.try_lock()));
    thread::scope(|s| {
        s.spawn(|| {
            assert!(matches!(
                reader.timed_lock(Duration::from_millis(30)),
                Err(SimpleLockError::TimedOut { .. })
            ));
        });
    });
    thread::scope(|s| {
        let waiter = s.spawn(|| reader.hang_lock());
        thread::sleep(Duration::from_millis(20));
        assert!(
            !waiter.is_finished(),
            "a reader got in with a writer inside"
        );
        writer.try_unlock().unwrap();
        waiter.join().unwrap().unwrap();
    });
    assert_eq!(readers[0].status().unwrap(), LockStatus::Mine);
    readers[0].try_unlock().unwrap();
}

/// `shared()` is deprecated (a handle is opened shared through `FileLock::options()`), not
/// gone: what it does to a handle that holds the lock stays pinned.
#[test]
#[allow(deprecated)]
fn a_hold_keeps_its_mode_when_the_handle_is_made_shared() {
    let path = lock_path("mode-change");
    let mut lock = common::lock_file(&path).unwrap();
    lock.try_lock().unwrap();
    let mut lock = lock.shared();
    let mut reader = common::lock_file_shared(&path).unwrap();
    assert!(
        is_already_locked(reader.try_lock()),
        "no silent downgrade: the hold is still exclusive"
    );
    lock.try_unlock().unwrap();
    lock.try_lock().unwrap();
    reader.try_lock().unwrap(); // now both are shared
    lock.try_unlock().unwrap();
    reader.try_unlock().unwrap();
}

#[test]
fn timed_lock_wakes_on_release_well_before_its_timeout() {
    let path = lock_path("timed-wake");
    let mut holder = common::lock_file(&path).unwrap();
    let mut waiter = common::lock_file(&path).unwrap();
    for round in 0..5 {
        holder.try_lock().unwrap();
        thread::scope(|s| {
            let wait = s.spawn(|| {
                waiter
                    .timed_lock(PATIENCE)
                    .map(|()| (Instant::now(), waiter.previous_holder()))
            });
            thread::sleep(Duration::from_millis(20));
            assert!(!wait.is_finished(), "round {round}: returned while held");
            let released = Instant::now();
            holder.try_unlock().unwrap();
            let (acquired, previous) = wait.join().unwrap().unwrap();
            assert_eq!(previous, PreviousHolder::Released);
            // A hang guard, not a timing assertion: far below the timeout.
            assert!(acquired - released < PATIENCE / 2, "round {round}");
        });
        waiter.try_unlock().unwrap();
    }
}

#[test]
fn timed_lock_notices_a_foreign_release_that_touches_nothing() {
    // A holder that is not a simplelock one (std's File::lock, like flock(1)): its release
    // writes nothing, so only the backoff can notice it.
    let path = lock_path("timed-foreign");
    let foreign = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .unwrap();
    foreign.lock().unwrap();
    let mut waiter = common::lock_file(&path).unwrap();
    thread::scope(|s| {
        let wait = s.spawn(|| waiter.timed_lock(PATIENCE));
        thread::sleep(Duration::from_millis(30));
        assert!(!wait.is_finished());
        foreign.unlock().unwrap();
        wait.join().unwrap().unwrap();
    });
    // The file was empty, so it is ours to manage now.
    assert_eq!(waiter.previous_holder(), PreviousHolder::Released);
    waiter.try_unlock().unwrap();
}

#[test]
fn timed_lock_honours_its_deadline() {
    let path = lock_path("deadline");
    let mut holder = common::lock_file(&path).unwrap();
    holder.try_lock().unwrap();
    thread::scope(|s| {
        s.spawn(|| {
            let mut waiter = common::lock_file(&path).unwrap();
            for timeout in [1, 20, 150].map(Duration::from_millis) {
                let start = Instant::now();
                match waiter.timed_lock(timeout) {
                    Err(SimpleLockError::TimedOut {
                        timeout: reported,
                        holder,
                        ..
                    }) => {
                        assert_eq!(reported, timeout);
                        assert_eq!(holder.map(|h| h.pid), Some(std::process::id()));
                    }
                    other => panic!("{timeout:?}: {other:?}"),
                }
                assert!(start.elapsed() >= timeout, "gave up early");
                assert!(start.elapsed() < PATIENCE, "hang guard");
            }
        });
    });
    holder.try_unlock().unwrap();
}

fn on_disk(path: &std::path::Path) -> String {
    String::from_utf8(fs::read(path).unwrap()).unwrap()
}

#[test]
fn the_record_on_disk_follows_the_holds() {
    let path = lock_path("record");
    let mut lock = common::lock_file(&path).unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"", "a new lock file is empty");
    let before = SystemTime::now();
    lock.try_lock().unwrap();
    assert_eq!(lock.previous_holder(), PreviousHolder::Released);
    let held = on_disk(&path);
    assert_eq!(held.len(), 64);
    let pid = std::process::id();
    assert!(
        held.starts_with(&format!("simplelock 1 held pid={pid} since=")),
        "{held:?}"
    );
    assert!(held.ends_with('\n'));

    // holder() of another handle: this process, since the acquisition, from the record.
    let other = common::lock_file(&path).unwrap();
    let holder = other.holder().unwrap().unwrap();
    assert_eq!(holder.pid, pid);
    let since = holder.since.unwrap();
    assert!(since >= before - Duration::from_millis(1) && since <= SystemTime::now());
    assert_eq!(lock.holder().unwrap().unwrap().pid, pid);

    lock.try_unlock().unwrap();
    let free = on_disk(&path);
    assert!(
        free.starts_with(&format!("simplelock 1 free pid={pid} since=")),
        "{free:?}"
    );
    assert_eq!(other.holder().unwrap(), None, "free");
    assert_eq!(fs::metadata(&path).unwrap().len(), 64, "never grows");
}

#[test]
fn a_held_record_left_behind_is_reported_as_a_death() {
    let path = lock_path("died");
    // What a holder killed in its critical section leaves (see tests/processes.rs for the
    // real thing): `held`, and no lock.
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let line = format!("simplelock 1 held pid=999999 since={since}.000000");
    fs::write(&path, format!("{line:<63}\n")).unwrap();
    let mut reader = common::lock_file_shared(&path).unwrap();
    reader.try_lock().unwrap();
    assert_eq!(reader.previous_holder(), PreviousHolder::Died);
    reader.try_unlock().unwrap();
    assert!(
        on_disk(&path).starts_with("simplelock 1 held pid=999999"),
        "readers only read"
    );
    let mut lock = common::lock_file(&path).unwrap();
    lock.try_lock().unwrap();
    assert_eq!(lock.previous_holder(), PreviousHolder::Died);
    lock.try_unlock().unwrap();
    lock.try_lock().unwrap();
    assert_eq!(lock.previous_holder(), PreviousHolder::Released, "repaired");
    lock.try_unlock().unwrap();

    // A damaged record: unknown, and rewritten.
    fs::write(&path, "simplelock 1 held pid=12").unwrap();
    lock.try_lock().unwrap();
    assert_eq!(lock.previous_holder(), PreviousHolder::Unknown);
    lock.try_unlock().unwrap();
    assert!(on_disk(&path).starts_with("simplelock 1 free"));
}

#[test]
fn a_data_file_that_only_starts_like_a_record_is_never_written() {
    let path = lock_path("lookalike");
    let data = "simplelock 1 is the name of this project, and this is a note about it, longer than \
                a record\n";
    fs::write(&path, data).unwrap();
    let mut lock = common::lock_file(&path).unwrap();
    lock.try_lock().unwrap();
    assert_eq!(lock.previous_holder(), PreviousHolder::Unknown);
    lock.try_unlock().unwrap();
    assert_eq!(
        fs::read_to_string(&path).unwrap(),
        data,
        "someone's data was overwritten"
    );
}

#[test]
fn misuse_gives_errors_naming_the_path() {
    let path = lock_path("misuse");
    let mut lock = common::lock_file(&path).unwrap();
    let name = path.display().to_string();
    let err = lock.try_unlock().unwrap_err();
    assert!(matches!(err, SimpleLockError::NotHeld { .. }));
    assert_eq!(err.name(), Some(name.as_str()));
    lock.try_lock().unwrap();
    let err = lock.try_lock().unwrap_err();
    assert!(matches!(err, SimpleLockError::AlreadyHeld { .. }));
    assert!(err.to_string().contains(&name), "{err}");
    assert_eq!(lock.path(), path);
    let debug = format!("{lock:?}");
    assert!(debug.contains("held: true"), "{debug}");
}

/// `with_holder_record(false)`: the lock file is never written, `previous_holder()` is
/// `Unknown`, and the handle excludes (and is excluded by) handles that keep the record.
#[test]
fn without_the_holder_record_nothing_is_written_and_the_lock_still_excludes() {
    let path = lock_path("no-record");
    let options = FileLock::options().with_holder_record(false);
    let mut bare = common::lock_file_with(&path, options).unwrap();
    bare.try_lock().unwrap();
    assert_eq!(bare.previous_holder(), PreviousHolder::Unknown);
    assert_eq!(fs::read(&path).unwrap(), b"", "no record written");
    let mut recording = common::lock_file(&path).unwrap();
    assert!(is_already_locked(recording.try_lock()));
    bare.try_unlock().unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"", "nothing written on release");
    recording.try_lock().unwrap();
    assert!(is_already_locked(bare.try_lock()));
    recording.try_unlock().unwrap();
}

/// `with_path_check(false)` gives up the unlink-race check, as documented: a handle opened
/// before the file was deleted locks the old file while a newcomer holds the new one. The
/// default handle, opened at the same moment, finds the new file and is refused.
#[test]
fn without_the_path_check_a_deleted_file_is_locked_as_documented() {
    let path = lock_path("no-check");
    let options = FileLock::options().with_path_check(false);
    let mut unchecked = common::lock_file_with(&path, options).unwrap();
    let mut checked = common::lock_file(&path).unwrap();
    fs::remove_file(&path).unwrap();
    let mut newcomer = common::lock_file(&path).unwrap();
    newcomer.try_lock().unwrap();
    assert!(
        is_already_locked(checked.try_lock()),
        "the checked handle must move to the new file and find it held"
    );
    unchecked
        .try_lock()
        .expect("without the check, the old file is locked: the trade-off the docs state");
    unchecked.try_unlock().unwrap();
    newcomer.try_unlock().unwrap();
}

/// A hold released by another thread than its acquirer (handles are `Send`) is forgotten by
/// the acquirer: its later wait on the same file through another handle waits (here until its
/// timeout) instead of failing with a false `WouldDeadlock`.
#[test]
fn a_hold_released_on_another_thread_is_forgotten_by_its_acquirer() {
    let path = lock_path("moved");
    let mut first = common::lock_file(&path).unwrap();
    first.try_lock().unwrap();
    thread::spawn(move || first.try_unlock().unwrap())
        .join()
        .unwrap();
    // Held by a handle whose acquiring thread has ended.
    let mut other = common::lock_file(&path).unwrap();
    let other = thread::spawn(move || {
        other.try_lock().unwrap();
        other
    })
    .join()
    .unwrap();
    let mut second = common::lock_file(&path).unwrap();
    match second.timed_lock(Duration::from_millis(20)) {
        Err(SimpleLockError::TimedOut { .. }) => {}
        result => {
            panic!("expected TimedOut (a released hold taken for this thread's?): {result:?}")
        }
    }
    drop(other);
}
