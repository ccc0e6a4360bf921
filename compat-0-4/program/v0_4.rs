// A program written against simplelock 0.4.1's documented API only: every public item of 0.4.1.
//
// It has no `use simplelock...` line of its own: each includer writes that one line first.
// `tests/program_0_4.rs` writes `use simplelock::compat_0_4::*;` and runs every function;
// `against-0.4.1/src/lib.rs` writes `use simplelock::*;` and compiles it against the real 0.4.1
// from crates.io (`cargo xtask ci` does both). So it uses only what 0.4.1 had: `LockStatus` is
// matched (0.4.1 derived nothing for it), `SimpleLockError` compared and ordered (0.4.1 derived
// `Debug, PartialEq, Eq, PartialOrd, Ord`), no `Debug` on the lock types.
//
// Each function takes the names it locks, so the caller can clean up what it created.

use std::error::Error;
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Every status, matched exhaustively, without a wildcard arm.
pub fn describe(status: LockStatus) -> &'static str {
    match status {
        LockStatus::Mine => "mine",
        LockStatus::Taken => "taken",
        LockStatus::Open => "open",
    }
}

/// Every error, matched exhaustively, without a wildcard arm.
pub fn describe_error(err: &SimpleLockError) -> String {
    match err {
        SimpleLockError::AlreadyLocked => "already locked".to_string(),
        SimpleLockError::InvalidName => "invalid name".to_string(),
        SimpleLockError::UnableToUnlock(why) => format!("unable to unlock: {}", why),
        SimpleLockError::PermissionDenied => "permission denied".to_string(),
        SimpleLockError::NoLockEnabled => "no lock enabled".to_string(),
        SimpleLockError::UnknownError(what) => format!("unknown: {}", what),
    }
}

fn expect_status(status: SimpleLockResult<LockStatus>, expected: &str) -> SimpleLockResult<()> {
    let seen = describe(status?);
    assert_eq!(seen, expected, "unexpected lock status");
    Ok(())
}

/// The README example of 0.4, as written there.
pub fn readme_example() -> SimpleLockResult<()> {
    const MY_APP_NAME: &str = "my_app_name";

    let mut lock = default_lock(MY_APP_NAME)?;
    let result = lock_until_finished(&mut lock, || {
        // some critical code
        42
    })?;
    assert_eq!(result, 42);

    let mut lock = LockBuilder::default()
        .with_try_lock() // return at once if the lock is taken
        .with_silent_unlock() // do not report unlock failures
        .build(MY_APP_NAME)?;
    lock.lock()?;
    lock.unlock()?;
    Ok(())
}

/// `default_lock` waits and reports; `lock_until_finished` returns the closure's value.
pub fn default_lock_and_lock_until_finished(name: &str) -> SimpleLockResult<()> {
    let mut lock = default_lock(name)?;
    expect_status(lock.status(), "open")?;
    let answer = lock_until_finished(&mut lock, || 6 * 7)?;
    assert_eq!(answer, 42);
    expect_status(lock.status(), "open")?;

    // `default_lock` takes a `String` too, and two handles on one name are one lock.
    let mut first = default_lock(name.to_string())?;
    let second = default_lock(name)?;
    first.lock()?;
    expect_status(first.status(), "mine")?;
    expect_status(second.status(), "taken")?;
    first.unlock()?;
    expect_status(second.status(), "open")?;
    Ok(())
}

/// A panic in the closure releases the lock, then goes on.
pub fn lock_until_finished_releases_on_panic(name: &str) -> SimpleLockResult<()> {
    let mut lock = default_lock(name)?;
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
        lock_until_finished(&mut lock, || -> u32 {
            panic!("boom in the critical section")
        })
    }));
    let payload = match outcome {
        Ok(returned) => panic!("the panic was swallowed, got {:?}", returned),
        Err(payload) => payload,
    };
    assert_eq!(
        payload.downcast_ref::<&str>(),
        Some(&"boom in the critical section")
    );
    expect_status(lock.status(), "open")?;

    // Released for everyone: another handle gets it at once.
    let mut other = LockBuilder::default().with_try_lock().build(name)?;
    other.lock()?;
    other.unlock()?;
    Ok(())
}

/// The builder's four switches, `build`, and the try-lock idiom every 0.4 user writes.
pub fn builder(name: &str) -> SimpleLockResult<()> {
    let mut holder = LockBuilder::default().build(name.to_string())?;
    let mut trier = LockBuilder::default().with_try_lock().build(name)?;
    holder.lock()?;
    match trier.lock() {
        Err(SimpleLockError::AlreadyLocked) => {}
        other => panic!("expected AlreadyLocked, got {:?}", other),
    }
    assert_eq!(trier.lock(), Err(SimpleLockError::AlreadyLocked));
    expect_status(trier.status(), "taken")?;

    // The `enable_*` forms change the builder they are called on.
    let mut configured = LockBuilder::default();
    configured.enable_try_lock();
    configured.enable_silent_unlock();
    let mut also_trier = configured.build(name)?;
    assert_eq!(also_trier.lock(), Err(SimpleLockError::AlreadyLocked));

    // `LockBuilder` is `Copy` and `Debug`.
    let base = LockBuilder::default().with_try_lock();
    let copy = base;
    let mut from_copy = copy.with_silent_unlock().build(name)?;
    assert_eq!(
        base.build(name)?.lock(),
        Err(SimpleLockError::AlreadyLocked)
    );
    assert_eq!(from_copy.lock(), Err(SimpleLockError::AlreadyLocked));
    assert!(!format!("{:?}", base).is_empty());

    holder.unlock()?;
    trier.lock()?;
    expect_status(trier.status(), "mine")?;
    expect_status(holder.status(), "taken")?;
    trier.unlock()?;
    also_trier.lock()?;
    also_trier.unlock()?;
    Ok(())
}

/// What a hand-rolled 0.4 backend holds: whether it is locked, and an unlock failure to report.
#[derive(Debug, Default)]
struct Flag {
    locked: bool,
    fail_next_unlock: Option<SimpleLockError>,
}

/// A hand-rolled backend: one lock shared by the clones of one handle, that can fail to unlock.
#[derive(Debug, Clone, Default)]
pub struct SharedFlag(Arc<Mutex<Flag>>);

impl SharedFlag {
    fn fail_next_unlock(&self, err: SimpleLockError) {
        self.0.lock().unwrap().fail_next_unlock = Some(err);
    }
}

impl ConcreteLock for SharedFlag {
    fn status(&self) -> SimpleLockResult<LockStatus> {
        Ok(if self.0.lock().unwrap().locked {
            LockStatus::Mine
        } else {
            LockStatus::Open
        })
    }

    fn try_lock(&mut self) -> SimpleLockResult<()> {
        let mut flag = self.0.lock().unwrap();
        if flag.locked {
            return Err(SimpleLockError::AlreadyLocked);
        }
        flag.locked = true;
        Ok(())
    }

    fn hang_lock(&mut self) -> SimpleLockResult<()> {
        if self.0.lock().unwrap().locked {
            return Err(SimpleLockError::UnknownError(
                "would wait forever".to_string(),
            ));
        }
        self.try_lock()
    }

    fn try_unlock(&mut self) -> SimpleLockResult<()> {
        let mut flag = self.0.lock().unwrap();
        if let Some(err) = flag.fail_next_unlock.take() {
            return Err(err);
        }
        flag.locked = false;
        Ok(())
    }
}

/// A hand-rolled backend behind `wrap`: hang and try modes, loud and silent unlock.
pub fn hand_rolled_backend() -> SimpleLockResult<()> {
    let backend = SharedFlag::default();
    let mut loud = LockBuilder::default().wrap(Box::new(backend.clone()))?;
    let mut trier = LockBuilder::default()
        .with_try_lock()
        .wrap(Box::new(backend.clone()))?;
    let mut silent = LockBuilder::default()
        .with_silent_unlock()
        .wrap(Box::new(backend.clone()))?;

    loud.lock()?; // hang mode: hang_lock
    assert_eq!(trier.lock(), Err(SimpleLockError::AlreadyLocked)); // try mode: try_lock
    match silent.lock() {
        Err(SimpleLockError::UnknownError(what)) => assert_eq!(what, "would wait forever"),
        other => panic!("expected the backend's UnknownError, got {:?}", other),
    }

    backend.fail_next_unlock(SimpleLockError::UnableToUnlock(
        "the disk went away".to_string(),
    ));
    match loud.unlock() {
        Err(SimpleLockError::UnableToUnlock(why)) => assert_eq!(why, "the disk went away"),
        other => panic!("expected UnableToUnlock, got {:?}", other),
    }
    expect_status(loud.status(), "mine")?;
    backend.fail_next_unlock(SimpleLockError::PermissionDenied);
    silent.unlock()?; // swallowed: check the status instead
    expect_status(silent.status(), "mine")?;
    loud.unlock()?;
    expect_status(loud.status(), "open")?;

    // lock_until_finished reports an unlock failure (the value is lost) unless it is silent.
    backend.fail_next_unlock(SimpleLockError::UnableToUnlock("again".to_string()));
    assert_eq!(
        lock_until_finished(&mut loud, || 1),
        Err(SimpleLockError::UnableToUnlock("again".to_string()))
    );
    loud.unlock()?;
    backend.fail_next_unlock(SimpleLockError::UnableToUnlock("and again".to_string()));
    assert_eq!(lock_until_finished(&mut silent, || 2), Ok(2));
    silent.unlock()?;

    // A boxed backend is a backend.
    let mut boxed: Box<dyn ConcreteLock> = Box::new(backend.clone());
    boxed.try_lock()?;
    expect_status(ConcreteLock::status(&boxed), "mine")?;
    assert_eq!(boxed.try_lock(), Err(SimpleLockError::AlreadyLocked));
    boxed.try_unlock()?;
    boxed.hang_lock()?;
    boxed.try_unlock()?;
    let mut wrapped_box = LockBuilder::default().wrap(Box::new(boxed))?;
    assert_eq!(lock_until_finished(&mut wrapped_box, || "ran"), Ok("ran"));
    Ok(())
}

/// A hand-rolled `Lock` (0.4's docs offer both traits): it records the calls it gets.
#[derive(Debug, Default)]
pub struct Recorder {
    calls: Vec<&'static str>,
}

impl Lock for Recorder {
    fn status(&self) -> SimpleLockResult<LockStatus> {
        Ok(LockStatus::Open)
    }

    fn lock(&mut self) -> SimpleLockResult<()> {
        self.calls.push("lock");
        Ok(())
    }

    fn unlock(&mut self) -> SimpleLockResult<()> {
        self.calls.push("unlock");
        Ok(())
    }
}

/// `lock_until_finished` and `Box<dyn Lock>` take a hand-rolled `Lock`.
pub fn hand_rolled_lock() -> SimpleLockResult<()> {
    let mut recorder = Recorder::default();
    assert_eq!(lock_until_finished(&mut recorder, || "value")?, "value");
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
        lock_until_finished(&mut recorder, || panic!("boom"))
    }));
    assert!(outcome.is_err());
    assert_eq!(recorder.calls, ["lock", "unlock", "lock", "unlock"]);

    let mut boxed: Box<dyn Lock> = Box::new(Recorder::default());
    boxed.lock()?;
    expect_status(boxed.status(), "open")?;
    boxed.unlock()
}

/// Code that takes any `Lock`, as 0.4 utilities did.
fn run_twice(lock: &mut impl Lock) -> SimpleLockResult<u32> {
    let first = lock_until_finished(lock, || 1)?;
    let second = lock_until_finished(lock, || 2)?;
    Ok(first + second)
}

/// `FileLock::new(path)`, `path()`, its `ConcreteLock` methods, and bad paths.
pub fn file_lock(path: &Path) -> SimpleLockResult<()> {
    let mut lock = FileLock::new(path)?;
    assert_eq!(lock.path(), path.to_path_buf());
    let mut other = FileLock::new(path.to_path_buf())?;
    expect_status(lock.status(), "open")?;

    lock.try_lock()?;
    lock.try_lock()?; // locking again changes nothing
    expect_status(lock.status(), "mine")?;
    expect_status(other.status(), "taken")?;
    assert_eq!(other.try_lock(), Err(SimpleLockError::AlreadyLocked));
    other.try_unlock()?; // releases nothing: not held
    expect_status(other.status(), "taken")?;
    lock.try_unlock()?;
    expect_status(other.status(), "open")?;
    other.hang_lock()?;
    expect_status(lock.status(), "taken")?;
    other.try_unlock()?;

    let mut wrapped =
        LockBuilder::default().wrap(Box::new(FileLock::new(path.display().to_string())?))?;
    assert_eq!(run_twice(&mut wrapped)?, 3);

    let missing: PathBuf = path.with_file_name("no-such-folder").join("x.lock");
    assert_eq!(
        FileLock::new(missing).err(),
        Some(SimpleLockError::InvalidName)
    );
    Ok(())
}

/// `SemaphoreLock::new(name)`, `name()`, its `ConcreteLock` methods, and bad names.
pub fn semaphore_lock(name: &str) -> SimpleLockResult<()> {
    let mut lock = SemaphoreLock::new(name)?;
    assert_eq!(lock.name(), format!("/{}", name));
    let mut other = SemaphoreLock::new(format!("/{}", name))?;
    expect_status(lock.status(), "open")?;

    lock.hang_lock()?;
    lock.hang_lock()?; // locking again changes nothing
    expect_status(lock.status(), "mine")?;
    expect_status(other.status(), "taken")?;
    assert_eq!(other.try_lock(), Err(SimpleLockError::AlreadyLocked));
    other.try_unlock()?; // releases nothing: not held
    expect_status(other.status(), "taken")?;
    lock.try_unlock()?;
    lock.try_unlock()?; // releases nothing: not held any more
    other.try_lock()?;
    expect_status(lock.status(), "taken")?;
    other.try_unlock()?;

    let mut wrapped = LockBuilder::default()
        .with_try_lock()
        .wrap(Box::new(SemaphoreLock::new(name)?))?;
    assert_eq!(run_twice(&mut wrapped)?, 3);

    assert_eq!(
        SemaphoreLock::new("a/b").err(),
        Some(SimpleLockError::InvalidName)
    );
    assert_eq!(
        SemaphoreLock::new("").err(),
        Some(SimpleLockError::InvalidName)
    );
    Ok(())
}

/// `FakeLock::new(bool)`, `Default`, `Clone` (clones share one state), and `Lock`.
pub fn fake_lock() -> SimpleLockResult<()> {
    let mut lock = FakeLock::new(false);
    let observer = lock.clone();
    expect_status(lock.status(), "open")?;
    lock.lock()?;
    expect_status(observer.status(), "mine")?;
    lock.unlock()?;
    expect_status(observer.status(), "open")?;
    assert_eq!(run_twice(&mut lock)?, 3);

    expect_status(FakeLock::new(true).status(), "mine")?;
    expect_status(FakeLock::default().status(), "open")?;
    let mut boxed: Box<dyn Lock> = Box::new(FakeLock::new(true));
    assert_eq!(lock_until_finished(&mut boxed, || 'x'), Ok('x'));
    expect_status(boxed.status(), "open")?;
    Ok(())
}

fn open_a_missing_file() -> SimpleLockResult<()> {
    std::fs::File::open("/nonexistent/simplelock/compat")?; // `?` converts io::Error
    Ok(())
}

/// Equality, order, conversions from `io`, `Display` and `Error`.
pub fn errors() {
    assert_eq!(
        SimpleLockError::from(io::ErrorKind::NotFound),
        SimpleLockError::InvalidName
    );
    let denied: SimpleLockError = io::ErrorKind::PermissionDenied.into();
    assert_eq!(denied, SimpleLockError::PermissionDenied);
    let other: SimpleLockError = io::Error::other("boom").into();
    assert_eq!(other, SimpleLockError::UnknownError("Other".to_string()));
    assert_eq!(open_a_missing_file(), Err(SimpleLockError::InvalidName));

    let mut all = [
        SimpleLockError::UnknownError("b".to_string()),
        SimpleLockError::UnknownError("a".to_string()),
        SimpleLockError::NoLockEnabled,
        SimpleLockError::PermissionDenied,
        SimpleLockError::UnableToUnlock("why".to_string()),
        SimpleLockError::InvalidName,
        SimpleLockError::AlreadyLocked,
    ];
    all.sort();
    assert_eq!(describe_error(&all[0]), "already locked");
    assert_eq!(describe_error(&all[1]), "invalid name");
    assert_eq!(describe_error(&all[2]), "unable to unlock: why");
    assert_eq!(describe_error(&all[3]), "permission denied");
    assert_eq!(describe_error(&all[4]), "no lock enabled");
    assert_eq!(describe_error(&all[5]), "unknown: a");
    assert!(all[5] < all[6]);
    assert_ne!(SimpleLockError::AlreadyLocked, SimpleLockError::InvalidName);

    let texts: Vec<String> = all.iter().map(|e| e.to_string()).collect();
    assert_eq!(
        texts,
        [
            "Lock is already locked!",
            "Path or Name for lock was invalid!",
            "Unable to unlock, reason: why",
            "Permission Denied!",
            "No lock implementation was enabled, unable to create a default lock.",
            "Unknown Error: \"a\"",
            "Unknown Error: \"b\"",
        ]
    );
    let boxed: Box<dyn Error> = Box::new(SimpleLockError::NoLockEnabled);
    assert!(boxed.source().is_none());
    assert_eq!(
        format!("{:?}", SimpleLockError::UnableToUnlock("x".to_string())),
        "UnableToUnlock(\"x\")"
    );
}
