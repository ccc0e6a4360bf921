//! The migration table of CHANGELOG.md ("Migrating from 0.4"), row by row: each test is named
//! after its row and writes what the row says to write instead of the 0.4 code, with the crate's
//! own API (`use simplelock::*`). The 0.4 side of every row is in `program/v0_4.rs`.

use std::error::Error;
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use simplelock::*;

mod common;
use common::TempName;

/// Row "the import": 0.4 code unchanged but for `use simplelock::compat_0_4::*;` is what
/// `tests/program_0_4.rs` runs; here the two APIs meet: errors convert, the status is one type.
#[test]
fn row_the_import() {
    let today = SimpleLockError::already_locked("job", None);
    let as_0_4 = compat_0_4::SimpleLockError::from(today);
    assert_eq!(as_0_4, compat_0_4::SimpleLockError::AlreadyLocked);
    let status: compat_0_4::LockStatus = LockStatus::Open;
    assert_eq!(status, LockStatus::Open);
}

/// Row "unit variants": `Err(SimpleLockError::AlreadyLocked)` becomes
/// `Err(SimpleLockError::AlreadyLocked { .. })`; the same for `InvalidName` and
/// `PermissionDenied`; `NoLockEnabled` is unchanged.
#[test]
fn row_unit_variants() -> SimpleLockResult<()> {
    let name = TempName::new("unit");
    let mut holder = default_lock(&name)?;
    let mut trier = LockBuilder::default().with_try_lock().build(&name)?;
    holder.lock()?;
    let busy = match trier.lock() {
        Ok(()) => false,
        Err(SimpleLockError::AlreadyLocked { .. }) => true,
        Err(other) => return Err(other),
    };
    assert!(busy);
    holder.unlock()?;

    assert!(matches!(
        default_lock("a/b"),
        Err(SimpleLockError::InvalidName { .. })
    ));
    let denied = SimpleLockError::permission_denied("job", None);
    assert!(matches!(denied, SimpleLockError::PermissionDenied { .. }));
    assert!(matches!(
        SimpleLockError::NoLockEnabled,
        SimpleLockError::NoLockEnabled
    ));
    Ok(())
}

/// Row "tuple variants": `UnableToUnlock(why)` becomes `UnableToUnlock { reason, .. }` and
/// `UnknownError(what)` becomes `UnknownError { message, .. }`; `to_string()` names the lock.
#[test]
fn row_tuple_variants() {
    let err = SimpleLockError::unable_to_unlock("job", "the file is gone", None);
    match &err {
        SimpleLockError::UnableToUnlock { reason, .. } => assert_eq!(reason, "the file is gone"),
        other => panic!("expected UnableToUnlock, got {other:?}"),
    }
    assert_eq!(
        err.to_string(),
        r#"unable to unlock lock "job": the file is gone"#
    );
    let err = SimpleLockError::unknown("job", "mapping", None);
    match &err {
        SimpleLockError::UnknownError { message, .. } => assert_eq!(message, "mapping"),
        other => panic!("expected UnknownError, got {other:?}"),
    }
}

/// Row "equality": `assert_eq!(err, SimpleLockError::AlreadyLocked)` becomes
/// `assert!(matches!(err, SimpleLockError::AlreadyLocked { .. }))`: errors hold `io::Error`s,
/// which cannot be compared.
#[test]
fn row_equality() -> SimpleLockResult<()> {
    let name = TempName::new("equality");
    let mut holder = default_lock(&name)?;
    holder.lock()?;
    let err = LockBuilder::default()
        .with_try_lock()
        .build(&name)?
        .lock()
        .unwrap_err();
    assert!(matches!(err, SimpleLockError::AlreadyLocked { .. }));
    assert!(err.name().is_some_and(|n| n.contains(&*name)));
    holder.unlock()
}

/// Row "from io": `io::ErrorKind::NotFound.into()`, `?` on an `io::Error`, and 0.4.1's `From`
/// for `nix` errors become `SimpleLockError::from_io(name, doing, err)`, which names the lock
/// and keeps the OS error as `source()`.
#[test]
fn row_from_io() {
    // What `io::Error::from(nix::Errno::EACCES)` gives.
    let errno = io::Error::from_raw_os_error(13);
    let err = SimpleLockError::from_io("/run/x.lock", "opening the lock file", errno);
    assert!(matches!(err, SimpleLockError::PermissionDenied { .. }));
    let source = err.source().and_then(|s| s.downcast_ref::<io::Error>());
    assert_eq!(source.and_then(io::Error::raw_os_error), Some(13));

    let missing = io::Error::from(io::ErrorKind::NotFound);
    let err = SimpleLockError::from_io("/run/x.lock", "opening the lock file", missing);
    assert!(matches!(err, SimpleLockError::UnknownError { .. }));
    assert_eq!(err.kind(), io::ErrorKind::NotFound);
}

/// Row "status": an exhaustive `match` over `Mine`, `Taken`, `Open` needs no change.
#[test]
fn row_status() -> SimpleLockResult<()> {
    let name = TempName::new("status");
    let lock = default_lock(&name)?;
    let text = match lock.status()? {
        LockStatus::Mine => "mine",
        LockStatus::Taken => "taken",
        LockStatus::Open => "open",
    };
    assert_eq!(text, "open");
    Ok(())
}

/// Row "builder": `enable_*` take `&mut self` (0.4.1's took `self` and did nothing, nor did
/// `with_try_lock` and `with_silent_unlock`): call them on a `mut` builder.
#[test]
fn row_builder() -> SimpleLockResult<()> {
    let name = TempName::new("builder");
    let mut builder = LockBuilder::default();
    builder.enable_try_lock();
    builder.enable_silent_unlock();
    assert!(builder.is_try_lock() && builder.is_silent_unlock());
    let mut holder = default_lock(&name)?;
    holder.lock()?;
    assert!(matches!(
        builder.build(&name)?.lock(),
        Err(SimpleLockError::AlreadyLocked { .. })
    ));
    holder.unlock()
}

/// Row "misuse": locking a handle that holds the lock, and unlocking one that does not, were
/// no-ops; now they are `AlreadyHeld` and `NotHeld` (the lock stays held once; nothing is
/// released). Check `status()` first, or use `guard()`, which cannot do either.
#[test]
fn row_misuse() -> SimpleLockResult<()> {
    let name = TempName::new("misuse");
    let mut lock = default_lock(&name)?;
    let mut other = default_lock(&name)?;
    lock.lock()?;
    assert!(matches!(
        lock.lock(),
        Err(SimpleLockError::AlreadyHeld { .. })
    ));
    assert!(matches!(
        other.unlock(),
        Err(SimpleLockError::NotHeld { .. })
    ));
    assert_eq!(other.status()?, LockStatus::Taken);
    if lock.status()? == LockStatus::Mine {
        lock.unlock()?;
    }
    let guard = other.guard()?;
    guard.unlock()
}

/// A backend hand-rolled for 0.5: the same four methods, returning today's errors.
#[derive(Clone, Default)]
struct SharedFlag(Arc<Mutex<bool>>, bool);

impl ConcreteLock for SharedFlag {
    fn status(&self) -> SimpleLockResult<LockStatus> {
        Ok(match (*self.0.lock().unwrap(), self.1) {
            (_, true) => LockStatus::Mine,
            (true, false) => LockStatus::Taken,
            (false, false) => LockStatus::Open,
        })
    }
    fn try_lock(&mut self) -> SimpleLockResult<()> {
        if self.1 {
            return Err(SimpleLockError::already_held("flag"));
        }
        let mut locked = self.0.lock().unwrap();
        if *locked {
            return Err(SimpleLockError::already_locked("flag", None));
        }
        *locked = true;
        self.1 = true;
        Ok(())
    }
    fn hang_lock(&mut self) -> SimpleLockResult<()> {
        self.timed_lock(std::time::Duration::MAX)
    }
    fn try_unlock(&mut self) -> SimpleLockResult<()> {
        if !self.1 {
            return Err(SimpleLockError::not_held("flag"));
        }
        *self.0.lock().unwrap() = false;
        self.1 = false;
        Ok(())
    }
}

/// Row "hand-rolled backends": the same four methods of `ConcreteLock`; errors come from the
/// constructors (`SimpleLockError::already_locked(name, None)` for `AlreadyLocked`, ...); a
/// `Box` of any backend is one; `apply` configures it (`wrap`, whose `Result` can never be an
/// error, is deprecated for `Box::new(builder.apply(…))`).
#[test]
fn row_hand_rolled_backends() -> SimpleLockResult<()> {
    let backend = SharedFlag::default();
    let boxed: Box<dyn ConcreteLock> = Box::new(backend.clone());
    let mut first: Box<dyn Lock> = Box::new(LockBuilder::default().apply(boxed));
    let mut second = LockBuilder::default().with_try_lock().apply(backend);
    first.lock()?;
    assert!(matches!(
        second.lock(),
        Err(SimpleLockError::AlreadyLocked { .. })
    ));
    first.unlock()?;
    assert_eq!(lock_until_finished(&mut second, || 7)?, 7);
    Ok(())
}

/// Row "lock_until_finished": unchanged, and the closure's value need not be `'static` any
/// more.
#[test]
fn row_lock_until_finished() -> SimpleLockResult<()> {
    let text = String::from("borrowed");
    let name = TempName::new("until");
    let mut lock = default_lock(&name)?;
    let borrowed: &str = lock_until_finished(&mut lock, || text.as_str())?;
    assert_eq!(borrowed, "borrowed");
    Ok(())
}

/// Row "file lock of a name": `default_lock(name)` with `file` is `<lock folder>/NAME.lock`,
/// not `/tmp/lock-NAME`; `FileLock::named(name)` is the same lock.
#[test]
fn row_file_lock_of_a_name() -> SimpleLockResult<()> {
    let name = TempName::new("named");
    let mut lock = default_lock(&name)?;
    let same = FileLock::named(&name)?;
    assert_eq!(same.path(), lock_dir()?.join(format!("{name}.lock")));
    lock.lock()?;
    assert_eq!(ConcreteLock::status(&same)?, LockStatus::Taken);
    lock.unlock()?;
    assert_ne!(same.path(), PathBuf::from(format!("/tmp/lock-{name}")));
    Ok(())
}

/// Row "semaphore lock": `SemaphoreLock::new(name)` and `name()` as before (`"/NAME"`), but
/// the object is `/dev/shm/sl.NAME`, not a POSIX semaphore. (`new` is deprecated for
/// `named`, not gone.)
#[test]
#[allow(deprecated)]
fn row_semaphore_lock() -> SimpleLockResult<()> {
    let name = TempName::new("sema");
    let lock = SemaphoreLock::new(&*name)?;
    assert_eq!(lock.name(), format!("/{name}"));
    assert!(PathBuf::from(format!("/dev/shm/sl.{name}")).exists());
    drop(lock);
    assert!(SemaphoreLock::remove(&*name)?);
    Ok(())
}

/// Row "fake lock": clones of `simplelock::FakeLock` are handles on one lock that exclude each
/// other; `compat_0_4::FakeLock` is 0.4's flag, which never makes anyone wait or fail.
#[test]
fn row_fake_lock() -> SimpleLockResult<()> {
    let mut first = FakeLock::default();
    let mut second = first.clone();
    first.try_lock()?;
    assert!(matches!(
        second.try_lock(),
        Err(SimpleLockError::AlreadyLocked { .. })
    ));
    assert_eq!(second.status()?, LockStatus::Taken);
    first.unlock()?;

    use compat_0_4::Lock as _;
    let mut flag = compat_0_4::FakeLock::new(false);
    let mut clone = flag.clone();
    flag.lock().unwrap();
    clone.lock().unwrap();
    assert_eq!(compat_0_4::Lock::status(&clone).unwrap(), LockStatus::Mine);
    Ok(())
}

/// Row "messages": `to_string()` texts are new: lowercase, naming the lock (and its holder).
#[test]
fn row_messages() {
    let err = SimpleLockError::already_locked("deploy", Some(Holder::new(4242)));
    assert_eq!(
        err.to_string(),
        r#"lock "deploy" is already locked (held by pid 4242)"#
    );
    assert_eq!(
        compat_0_4::SimpleLockError::from(err).to_string(),
        "Lock is already locked!"
    );
}

/// Every row of the table in CHANGELOG.md names a test of this file, and every `row_` test has
/// its row.
#[test]
fn every_row_of_the_changelog_table_has_its_test() {
    let changelog = include_str!("../../CHANGELOG.md");
    let this_file = include_str!("migration.rs");
    let section = changelog
        .split("### Migrating from 0.4")
        .nth(1)
        .expect("CHANGELOG.md has a section \"### Migrating from 0.4\"");
    let rows: Vec<&str> = section
        .lines()
        .take_while(|line| !line.starts_with("## "))
        .filter(|line| line.starts_with('|'))
        .skip(2) // the header and the separator
        .map(|line| {
            let last = line.trim_end_matches('|').rsplit('|').next().unwrap_or("");
            last.trim().trim_matches('`')
        })
        .collect();
    assert!(rows.len() >= 10, "the table has only {} rows", rows.len());
    for test in &rows {
        assert!(
            this_file.contains(&format!("fn {test}(")),
            "the CHANGELOG row checked by `{test}` has no such test in tests/migration.rs"
        );
    }
    let tests = this_file
        .lines()
        .filter_map(|line| line.strip_prefix("fn row_"))
        .filter_map(|rest| rest.split('(').next());
    for test in tests {
        let test = format!("row_{test}");
        assert!(
            rows.contains(&test.as_str()),
            "`{test}` checks no row of the CHANGELOG table"
        );
    }
}
