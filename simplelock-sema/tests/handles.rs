//! One process: names, handles of one process on one lock, threads, objects that are not ours.

use std::fs;
use std::thread;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use simplelock_core::{ConcreteLock, Lock, LockBuilder, LockStatus, SimpleLockError};
use simplelock_sema::{MAX_NAME_LEN, SemaphoreLock};

mod common;
use common::Cleanup;

fn invalid_reason(result: Result<impl std::fmt::Debug, SimpleLockError>) -> String {
    match result {
        Err(SimpleLockError::InvalidName { reason, .. }) => reason,
        other => panic!("expected InvalidName, got {other:?}"),
    }
}

#[test]
fn bad_names_are_refused_before_the_os_sees_them() {
    let long = format!("/{}", "x".repeat(MAX_NAME_LEN + 1));
    let table: [(&str, &str); 6] = [
        ("", "empty"),
        ("/", "only \"/\""),
        ("/a/b", "'/' other than a leading one"),
        ("//x", "'/' other than a leading one"),
        ("/a\0b", "NUL"),
        (&long, "252 bytes"),
    ];
    for (name, rule) in table {
        let reason = invalid_reason(SemaphoreLock::named(name));
        assert!(reason.contains(rule), "{name:?}: {reason}");
        let reason = invalid_reason(SemaphoreLock::remove(name));
        assert!(reason.contains(rule), "remove {name:?}: {reason}");
        let err = SemaphoreLock::named(name).unwrap_err();
        assert!(err.to_string().contains(&format!("{name:?}")), "{err}");
    }
}

#[test]
fn a_name_with_and_without_its_slash_is_one_lock() {
    let bare = common::unique_name("noslash")
        .trim_start_matches('/')
        .to_owned();
    let slashed = format!("/{bare}");
    let _cleanup = Cleanup::new(&[&slashed]);
    let mut a = SemaphoreLock::named(bare.as_str()).unwrap();
    let b = SemaphoreLock::named(slashed.as_str()).unwrap();
    assert_eq!(a.name(), slashed);
    assert_eq!(b.name(), slashed);
    a.try_lock().unwrap();
    assert_eq!(b.status().unwrap(), LockStatus::Taken);
    assert!(common::object_path(&slashed).exists());
}

#[test]
fn open_existing_never_creates_and_sees_the_lock_when_it_exists() {
    let name = common::unique_name("existing");
    let _cleanup = Cleanup::new(&[&name]);
    assert!(
        SemaphoreLock::open_existing(name.as_str())
            .unwrap()
            .is_none()
    );
    assert!(
        !common::object_path(&name).exists(),
        "looking created the object"
    );
    let mut holder = SemaphoreLock::named(name.as_str()).unwrap();
    holder.try_lock().unwrap();
    let looker = SemaphoreLock::open_existing(name.as_str())
        .unwrap()
        .unwrap();
    assert_eq!(looker.status().unwrap(), LockStatus::Taken);
    assert_eq!(
        looker.holder().unwrap().map(|h| h.pid),
        Some(std::process::id())
    );
    assert!(matches!(
        SemaphoreLock::open_existing("a/b"),
        Err(SimpleLockError::InvalidName { .. })
    ));
}

#[test]
fn the_longest_name_works() {
    let prefix = common::unique_name("long");
    let name = format!("{prefix}{}", "y".repeat(MAX_NAME_LEN + 1 - prefix.len()));
    assert_eq!(name.len(), MAX_NAME_LEN + 1, "251 bytes after the slash");
    let _cleanup = Cleanup::new(&[&name]);
    let mut lock = SemaphoreLock::named(&name).unwrap();
    lock.try_lock().unwrap();
    lock.try_unlock().unwrap();
    assert!(SemaphoreLock::remove(&name).unwrap());
}

/// What the rules say about `name`: `Some(canonical)` if it is valid.
fn oracle(name: &str) -> Option<String> {
    let bare = name.strip_prefix('/').unwrap_or(name);
    let ok = !bare.is_empty()
        && !bare.contains('/')
        && !bare.contains('\0')
        && bare.len() <= MAX_NAME_LEN;
    ok.then(|| format!("/{bare}"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any name: accepted exactly when the rules say so, under its canonical name, and then a
    /// working lock; refused with `InvalidName` otherwise.
    #[test]
    fn names_are_accepted_exactly_by_the_rules(
        lead in prop_oneof![Just(""), Just("/"), Just("//")],
        body in "[a/\\x00é.-]{0,12}",
        pad in prop_oneof![0usize..4, 236usize..244],
    ) {
        let unique = common::unique_name("prop").trim_start_matches('/').to_owned();
        let name = format!("{lead}{unique}{body}{}", "p".repeat(pad));
        match (oracle(&name), SemaphoreLock::named(name.as_str())) {
            (Some(canonical), Ok(mut lock)) => {
                let _cleanup = Cleanup::new(&[&canonical]);
                prop_assert_eq!(lock.name(), canonical.clone());
                lock.try_lock().unwrap();
                lock.try_unlock().unwrap();
                drop(lock);
                prop_assert!(SemaphoreLock::remove(&canonical).unwrap());
            }
            (None, Err(SimpleLockError::InvalidName { .. })) => {}
            (expected, got) => {
                prop_assert!(false, "{:?}: rules say {:?}, got {:?}", name, expected, got);
            }
        }
    }
}

/// A thread that holds the lock through one handle and waits for it through another would
/// wait forever: `WouldDeadlock`. Trying fails, a timed wait times out, and another thread
/// simply waits its turn.
#[test]
fn waiting_on_a_lock_this_thread_holds_is_would_deadlock() {
    let name = common::unique_name("deadlock");
    let _cleanup = Cleanup::new(&[&name]);
    let mut a = SemaphoreLock::named(&name).unwrap();
    let mut b = SemaphoreLock::named(&name).unwrap();
    a.try_lock().unwrap();
    let watchdog = common::Watchdog::new("hang_lock on a lock this thread holds");
    assert!(matches!(
        b.hang_lock(),
        Err(SimpleLockError::WouldDeadlock { .. })
    ));
    drop(watchdog);
    // A timeout too large for a deadline is a wait that never ends by itself: refused too.
    let watchdog = common::Watchdog::new("timed_lock(Duration::MAX) on a lock this thread holds");
    assert!(matches!(
        b.timed_lock(Duration::MAX),
        Err(SimpleLockError::WouldDeadlock { .. })
    ));
    drop(watchdog);
    match b.try_lock() {
        Err(SimpleLockError::AlreadyLocked {
            holder: Some(h), ..
        }) => assert_eq!(h.pid, std::process::id()),
        other => panic!("expected AlreadyLocked by this process, got {other:?}"),
    }
    let start = Instant::now();
    assert!(matches!(
        b.timed_lock(Duration::from_millis(50)),
        Err(SimpleLockError::TimedOut { .. })
    ));
    assert!(start.elapsed() >= Duration::from_millis(50));
    assert_eq!(b.status().unwrap(), LockStatus::Taken);
    assert_eq!(a.status().unwrap(), LockStatus::Mine);

    // Another thread's wait is no deadlock: it waits for the release.
    thread::scope(|s| {
        let other = s.spawn(|| b.hang_lock().map(|()| b));
        thread::sleep(Duration::from_millis(50));
        assert!(!other.is_finished(), "acquired while held");
        a.try_unlock().unwrap();
        let mut b = other.join().unwrap().unwrap();
        // ... and now this thread waits for that thread's holding, no deadlock either.
        thread::scope(|s2| {
            let waiter = s2.spawn(|| a.hang_lock());
            thread::sleep(Duration::from_millis(50));
            assert!(!waiter.is_finished(), "acquired while held");
            b.try_unlock().unwrap();
            waiter.join().unwrap().unwrap();
        });
    });
    a.try_unlock().unwrap();
}

/// Ownership is the handle's and its process's: a thread that did not lock may unlock through
/// the handle, the handle moves between threads, and through `Box<dyn Lock>` too.
#[test]
fn any_thread_of_the_holder_may_unlock() {
    fn send_sync<T: Send + Sync + std::fmt::Debug>() {}
    send_sync::<SemaphoreLock>();

    let name = common::unique_name("threads");
    let _cleanup = Cleanup::new(&[&name]);
    let mut lock = SemaphoreLock::named(&name).unwrap();
    let observer = SemaphoreLock::named(&name).unwrap();
    lock.hang_lock().unwrap();
    let lock = thread::spawn(move || {
        lock.try_unlock().unwrap();
        lock
    })
    .join()
    .unwrap();
    assert_eq!(observer.status().unwrap(), LockStatus::Open);
    assert_eq!(lock.status().unwrap(), LockStatus::Open);

    let mut boxed = LockBuilder::default().apply(SemaphoreLock::named(&name).unwrap());
    boxed.lock().unwrap();
    assert_eq!(observer.status().unwrap(), LockStatus::Taken);
    boxed.unlock().unwrap();
    // Locked by another thread through the builder's wrapper, unlocked by this one.
    let mut built = LockBuilder::default().apply(lock);
    thread::scope(|s| {
        s.spawn(|| built.lock().unwrap()).join().unwrap();
    });
    assert_eq!(built.status().unwrap(), LockStatus::Mine);
    built.unlock().unwrap();
    assert_eq!(observer.status().unwrap(), LockStatus::Open);
    let debug = format!("{:?}", built.get_ref());
    assert!(debug.contains(&name), "{debug}");
}

/// A lock whose timeout is too large for a deadline still waits and acquires.
#[test]
fn a_huge_timeout_waits_like_hang_lock() {
    let name = common::unique_name("huge");
    let _cleanup = Cleanup::new(&[&name]);
    let mut a = SemaphoreLock::named(&name).unwrap();
    let mut b = SemaphoreLock::named(&name).unwrap();
    a.try_lock().unwrap();
    thread::scope(|s| {
        let waiter = s.spawn(|| b.timed_lock(Duration::MAX));
        thread::sleep(Duration::from_millis(30));
        assert!(!waiter.is_finished());
        a.try_unlock().unwrap();
        waiter.join().unwrap().unwrap();
    });
    assert_eq!(b.status().unwrap(), LockStatus::Mine);
}

/// Objects under our name that are not lock objects are refused, not used — a zero-filled one
/// too: its creator would have written a header before giving it the name, so zeros mean it was
/// truncated and grown again, or made by someone else.
#[test]
fn objects_that_are_not_ours_are_refused() {
    use std::os::unix::fs::PermissionsExt;
    let name = common::unique_name("foreign");
    let path = common::object_path(&name);
    let refused = |contents: &[u8], expected: &str| {
        fs::write(&path, contents).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        let err = SemaphoreLock::named(&name).unwrap_err();
        assert!(
            matches!(err, SimpleLockError::UnknownError { .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains(expected), "{err}");
        assert_eq!(
            fs::read(&path).unwrap(),
            contents,
            "the refused object was changed"
        );
        fs::remove_file(&path).unwrap();
    };
    refused(b"hello", "5 bytes long, not 64");
    refused(&[0xAB; 64], "no valid header");
    refused(&[0; 64], "no valid header");
    let mut header = [0u8; 64];
    header[24..32].copy_from_slice(b"slsema01"); // the magic
    header[32] = 9; // a generation
    header[16] = 7; // the namespace field, written by a creator elsewhere
    refused(&header, "another pid or time namespace");
}

/// A removal waits for the holder, but `remove_within` waits only so long: a lock held for good
/// (here by this very test, which a removal with no bound would wait for forever) can still be given up on, with
/// a `TimedOut` naming the holder, and nothing is deleted.
#[test]
fn a_bounded_removal_gives_up_on_a_holder_that_never_leaves() {
    let name = common::unique_name("bounded-remove");
    let _cleanup = common::RemoveFile(common::object_path(&name));
    let mut holder = SemaphoreLock::named(&name).unwrap();
    holder.try_lock().unwrap();
    match SemaphoreLock::remove_within(&name, Duration::from_millis(30)) {
        Err(SimpleLockError::TimedOut {
            holder: Some(h), ..
        }) => assert_eq!(h.pid, std::process::id()),
        other => panic!("expected TimedOut, got {other:?}"),
    }
    assert!(common::object_path(&name).exists(), "deleted while held");
    holder.try_unlock().unwrap();
    assert!(SemaphoreLock::remove_within(&name, Duration::from_millis(30)).unwrap());
    assert!(!SemaphoreLock::remove_within(&name, Duration::from_millis(30)).unwrap());
}

/// Handles of one lock in one process share one mapping of its object: more handles than a
/// process may have mappings (`vm.max_map_count`, 65,530 by default) all open and work.
#[test]
fn many_handles_of_one_lock_share_one_mapping() {
    let name = common::unique_name("many-handles");
    let _cleanup = Cleanup::new(&[&name]);
    let max_maps: usize = fs::read_to_string("/proc/sys/vm/max_map_count")
        .expect("reading /proc/sys/vm/max_map_count")
        .trim()
        .parse()
        .unwrap();
    let count = max_maps + 1000;
    let mut handles = Vec::with_capacity(count);
    for i in 0..count {
        match SemaphoreLock::named(&name) {
            Ok(handle) => handles.push(handle),
            Err(e) => panic!("handle {i} of {count}: {e:?}"),
        }
    }
    let (first, rest) = handles.split_first_mut().unwrap();
    first.try_lock().unwrap();
    assert!(matches!(
        rest.last_mut().unwrap().try_lock(),
        Err(SimpleLockError::AlreadyLocked { .. })
    ));
    first.try_unlock().unwrap();
    rest.last_mut().unwrap().try_lock().unwrap();
    rest.last_mut().unwrap().try_unlock().unwrap();
}
