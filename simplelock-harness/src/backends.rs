//! The locks the workers can use, by name: the library's backends and the references they are
//! measured against.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::Duration;

#[cfg(target_os = "linux")]
use std::task::{Context, Poll};

use simplelock_core::{
    AsyncConcreteLock, ConcreteLock, Holder, LockStatus, PreviousHolder, SimpleLockError,
    SimpleLockResult,
};
use simplelock_file::FileLock;
// The counting semaphores use Linux-only primitives (OFD locks, futex_waitv).
#[cfg(target_os = "linux")]
use simplelock_file::FilePermits;
use simplelock_sema::SemaphoreLock;
#[cfg(target_os = "linux")]
use simplelock_sema::SemaphorePermits;

/// Every backend a worker accepts, with what it is.
pub(crate) const BACKENDS: &[(&str, &str)] = &[
    ("none", "no lock at all: what the others protect against"),
    ("file", "simplelock FileLock (flock + a holder record)"),
    (
        "sema",
        "simplelock SemaphoreLock (futex word in shared memory)",
    ),
    (
        "flock",
        "raw flock(2) through std::fs::File::lock, the floor for file locks",
    ),
    (
        "file-permits",
        "simplelock FilePermits: one of 3 permits (OFD byte ranges), each process keeping one more",
    ),
    (
        "sema-permits",
        "simplelock SemaphorePermits: one of 3 permits (futex words), each process keeping one more",
    ),
    (
        "poll50",
        "a flock polled every 50 ms, as Python's filelock or gofrs/flock wait",
    ),
];

/// A handle on the lock `backend` uses for this run: files live in `dir`, semaphores get `name`.
pub(crate) fn open(
    backend: &str,
    dir: &Path,
    name: &str,
) -> SimpleLockResult<Box<dyn ConcreteLock + Send>> {
    Ok(match backend {
        "none" => Box::new(NoLock { held: false }),
        // A lock file of a lock folder (`dir/file.lock`): the kind that keeps the holder record.
        "file" => Box::new(FileLock::options().with_folder(dir).named("file")?),
        "sema" => Box::new(SemaphoreLock::named(name)?),
        "flock" => Box::new(RawFlock::open(dir.join("raw.lock"))?),
        "poll50" => Box::new(Poll50(RawFlock::open(dir.join("raw.lock"))?)),
        #[cfg(target_os = "linux")]
        "file-permits" => {
            let path = dir.join("bench.permits");
            Box::new(Keeping::new(
                FilePermits::at_path(&path, PERMITS)?,
                FilePermits::at_path(&path, PERMITS)?,
            )?)
        }
        #[cfg(target_os = "linux")]
        "sema-permits" => Box::new(Keeping::new(
            SemaphorePermits::named(name, PERMITS)?,
            SemaphorePermits::named(name, PERMITS)?,
        )?),
        other => {
            let known: Vec<&str> = BACKENDS.iter().map(|(name, _)| *name).collect();
            return Err(SimpleLockError::invalid_name(
                other,
                format!("unknown backend, expected one of {}", known.join(", ")),
            ));
        }
    })
}

/// A handle on the lock `backend` uses for this run (as [`open`]), whose `hang_lock` waits
/// through the backend's async wait ([`AsyncWait`]): file, sema and sema-permits.
pub(crate) fn open_async(
    backend: &str,
    dir: &Path,
    name: &str,
) -> SimpleLockResult<Box<dyn ConcreteLock + Send>> {
    Ok(match backend {
        "file" => Box::new(AsyncWait::new(
            FileLock::options().with_folder(dir).named("file")?,
        )?),
        "sema" => Box::new(AsyncWait::new(SemaphoreLock::named(name)?)?),
        #[cfg(target_os = "linux")]
        "sema-permits" => Box::new(AsyncWait::new(Keeping::new(
            SemaphorePermits::named(name, PERMITS)?,
            SemaphorePermits::named(name, PERMITS)?,
        )?)?),
        other => {
            return Err(SimpleLockError::invalid_name(
                other,
                "no async wait in the workers for this backend (file, sema, sema-permits)",
            ));
        }
    })
}

/// A lock whose `hang_lock` is `lock_async().await`'s wait (the backend's
/// [`poll_lock`](AsyncConcreteLock::poll_lock), until it takes the lock), driven by a
/// current-thread tokio runtime of its own: so that the workers of the multi-process runs
/// (recovery after SIGKILL) wait as an async task does. Everything else is the lock's.
struct AsyncWait<L> {
    lock: L,
    runtime: tokio::runtime::Runtime,
}

impl<L> AsyncWait<L> {
    fn new(lock: L) -> SimpleLockResult<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| SimpleLockError::from_io("(harness)", "starting a tokio runtime", e))?;
        Ok(AsyncWait { lock, runtime })
    }
}

impl<L: AsyncConcreteLock> ConcreteLock for AsyncWait<L> {
    fn status(&self) -> SimpleLockResult<LockStatus> {
        self.lock.status()
    }
    fn try_lock(&mut self) -> SimpleLockResult<()> {
        self.lock.try_lock()
    }
    fn hang_lock(&mut self) -> SimpleLockResult<()> {
        let lock = &mut self.lock;
        let mut state = None;
        // Completes only once the lock is taken (or failed): nothing to cancel.
        self.runtime
            .block_on(std::future::poll_fn(|cx| lock.poll_lock(&mut state, cx)))
    }
    fn try_unlock(&mut self) -> SimpleLockResult<()> {
        self.lock.try_unlock()
    }
    fn previous_holder(&self) -> PreviousHolder {
        self.lock.previous_holder()
    }
    fn holder(&self) -> SimpleLockResult<Option<Holder>> {
        self.lock.holder()
    }
}

/// Remove what a run left behind in the kernel (the semaphore's shared memory object).
pub(crate) fn cleanup(backend: &str, name: &str) {
    if backend == "sema" {
        let _ = SemaphoreLock::remove(name);
    }
    #[cfg(target_os = "linux")]
    if backend == "sema-permits" {
        let _ = SemaphorePermits::remove(name);
    }
}

/// The permits of the `*-permits` backends.
#[cfg(target_os = "linux")]
const PERMITS: u32 = 3;

/// A permit handle whose process keeps one more permit through a second handle, taken when
/// opened: with two processes, one permit of the three is left to pass back and forth, and a
/// waiter waits on all three (the semaphore's real wait: any permit, not one lock). This is
/// the permit handoff that `cargo xtask bench` compares with the lock handoff.
#[cfg(target_os = "linux")]
struct Keeping<P> {
    permit: P,
    _kept: P,
}

#[cfg(target_os = "linux")]
impl<P: ConcreteLock> Keeping<P> {
    fn new(permit: P, mut kept: P) -> SimpleLockResult<Self> {
        kept.try_lock()?;
        Ok(Keeping {
            permit,
            _kept: kept,
        })
    }
}

#[cfg(target_os = "linux")]
impl<P: ConcreteLock> ConcreteLock for Keeping<P> {
    fn status(&self) -> SimpleLockResult<LockStatus> {
        self.permit.status()
    }
    fn try_lock(&mut self) -> SimpleLockResult<()> {
        self.permit.try_lock()
    }
    fn hang_lock(&mut self) -> SimpleLockResult<()> {
        self.permit.hang_lock()
    }
    fn try_unlock(&mut self) -> SimpleLockResult<()> {
        self.permit.try_unlock()
    }
    fn timed_lock(&mut self, timeout: Duration) -> SimpleLockResult<()> {
        self.permit.timed_lock(timeout)
    }
    fn previous_holder(&self) -> PreviousHolder {
        self.permit.previous_holder()
    }
    fn holder(&self) -> SimpleLockResult<Option<Holder>> {
        self.permit.holder()
    }
}

/// The async wait of the permit, as the blocking one.
#[cfg(target_os = "linux")]
impl<P: AsyncConcreteLock> AsyncConcreteLock for Keeping<P> {
    type WaitState = P::WaitState;
    fn poll_lock(
        &mut self,
        state: &mut Option<P::WaitState>,
        cx: &mut Context<'_>,
    ) -> Poll<SimpleLockResult<()>> {
        self.permit.poll_lock(state, cx)
    }
    fn cancel_wait(&mut self) {
        self.permit.cancel_wait();
    }
}

/// The status of a reference lock, which only knows whether it holds the lock itself.
fn own_status(held: bool) -> LockStatus {
    if held {
        LockStatus::Mine
    } else {
        LockStatus::Open
    }
}

/// Pretends to lock: every call succeeds at once.
struct NoLock {
    held: bool,
}

impl ConcreteLock for NoLock {
    fn status(&self) -> SimpleLockResult<LockStatus> {
        Ok(own_status(self.held))
    }
    fn try_lock(&mut self) -> SimpleLockResult<()> {
        self.held = true;
        Ok(())
    }
    fn hang_lock(&mut self) -> SimpleLockResult<()> {
        self.try_lock()
    }
    fn try_unlock(&mut self) -> SimpleLockResult<()> {
        self.held = false;
        Ok(())
    }
}

/// flock(2) with nothing around it, through std.
struct RawFlock {
    file: File,
    path: PathBuf,
    held: bool,
}

impl RawFlock {
    fn open(path: PathBuf) -> SimpleLockResult<Self> {
        let name = path.display().to_string();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| SimpleLockError::from_io(name, "opening the lock file", e))?;
        Ok(RawFlock {
            file,
            path,
            held: false,
        })
    }

    fn name(&self) -> String {
        self.path.display().to_string()
    }
}

impl ConcreteLock for RawFlock {
    fn status(&self) -> SimpleLockResult<LockStatus> {
        Ok(own_status(self.held))
    }
    fn try_lock(&mut self) -> SimpleLockResult<()> {
        match self.file.try_lock() {
            Ok(()) => {
                self.held = true;
                Ok(())
            }
            Err(TryLockError::WouldBlock) => {
                Err(SimpleLockError::already_locked(self.name(), None))
            }
            Err(TryLockError::Error(e)) => Err(SimpleLockError::from_io(self.name(), "flock", e)),
        }
    }
    fn hang_lock(&mut self) -> SimpleLockResult<()> {
        self.file
            .lock()
            .map_err(|e| SimpleLockError::from_io(self.name(), "flock", e))?;
        self.held = true;
        Ok(())
    }
    fn try_unlock(&mut self) -> SimpleLockResult<()> {
        self.file
            .unlock()
            .map_err(|e| SimpleLockError::from_io(self.name(), "flock", e))?;
        self.held = false;
        Ok(())
    }
}

/// A flock that waits by trying every 50 ms.
struct Poll50(RawFlock);

impl Poll50 {
    const PERIOD: Duration = Duration::from_millis(50);
}

impl ConcreteLock for Poll50 {
    fn status(&self) -> SimpleLockResult<LockStatus> {
        self.0.status()
    }
    fn try_lock(&mut self) -> SimpleLockResult<()> {
        self.0.try_lock()
    }
    fn hang_lock(&mut self) -> SimpleLockResult<()> {
        loop {
            match self.0.try_lock() {
                Err(SimpleLockError::AlreadyLocked { .. }) => thread::sleep(Self::PERIOD),
                other => return other,
            }
        }
    }
    fn timed_lock(&mut self, _timeout: Duration) -> SimpleLockResult<()> {
        self.hang_lock()
    }
    fn try_unlock(&mut self) -> SimpleLockResult<()> {
        self.0.try_unlock()
    }
}
