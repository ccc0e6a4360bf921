//! The traits, builder, guards and errors of [simplelock](https://crates.io/crates/simplelock):
//! locks that keep several processes (or threads) from doing the same thing at once.
//!
//! This crate has no dependencies and no backend. Applications usually depend on the
//! `simplelock` facade, which re-exports everything here and adds the backends behind features
//! (`file`, `sema`, `fake`) and `default_lock(name)`. Depend on this crate directly to write a
//! backend of your own, or to write code that works with any lock.
//!
//! - [`ConcreteLock`] is what a backend implements: `status`, `try_lock`, `hang_lock`,
//!   `try_unlock`, and optionally a native `timed_lock`, `holder` and `previous_holder`.
//! - [`LockBuilder`] turns a backend handle into a [`Lock`] that waits, tries once, or waits at
//!   most a timeout, and that reports or swallows unlock errors.
//! - [`Lock::guard`] and [`lock_until_finished`] release the lock on every path out of the
//!   critical section, `?` and panics included.
//! - [`SimpleLockError`] names the lock, says what went wrong, and keeps the operating system's
//!   error as its `source()`.
//! - [`PreviousHolder`] tells the next holder whether the last one died inside its critical
//!   section, where the backend can tell, so it can repair half-done work.
//! - [`Permits`] is what a counting semaphore's permit handle adds to the lock it is: at most
//!   N holders at once (see [`permits`]).
//! - [`Wait`] says how long an acquisition may wait (try once, forever, for a while, until a
//!   deadline) and does the deadline arithmetic for every backend; [`Backoff`] paces waits
//!   that can only sleep.
//! - [`AsyncConcreteLock`] and [`AsyncLockExt`] take a lock from async code
//!   (`lock.lock_async().await`) without blocking the runtime and cancel-safely, with an
//!   [`AsyncLockGuard`]; no runtime is named here (the facade's `tokio` feature adds timed
//!   waits on tokio's timer).
//!
//! # Example
//!
//! Code that takes any lock, here tried with an in-process lock so the example runs anywhere:
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use simplelock_core::{
//!     ConcreteLock, Lock, LockBuilder, LockStatus, SimpleLockError, SimpleLockResult,
//!     lock_until_finished,
//! };
//!
//! /// Rebuilds the cache unless another process is doing it right now.
//! fn rebuild_cache(lock: &mut impl Lock) -> SimpleLockResult<bool> {
//!     match lock_until_finished(lock, || { /* rebuild */ }) {
//!         Ok(()) => Ok(true),
//!         Err(SimpleLockError::AlreadyLocked { .. }) => Ok(false), // someone else is on it
//!         Err(other) => Err(other),
//!     }
//! }
//!
//! # #[derive(Clone, Default)]
//! # struct Shared(Arc<Mutex<bool>>, bool);
//! # impl ConcreteLock for Shared {
//! #     fn status(&self) -> SimpleLockResult<LockStatus> {
//! #         Ok(match (*self.0.lock().unwrap(), self.1) {
//! #             (_, true) => LockStatus::Mine, (true, _) => LockStatus::Taken, _ => LockStatus::Open,
//! #         })
//! #     }
//! #     fn try_lock(&mut self) -> SimpleLockResult<()> {
//! #         if self.1 { return Err(SimpleLockError::already_held("cache")) }
//! #         let mut taken = self.0.lock().unwrap();
//! #         if *taken { return Err(SimpleLockError::already_locked("cache", None)) }
//! #         *taken = true; self.1 = true; Ok(())
//! #     }
//! #     fn hang_lock(&mut self) -> SimpleLockResult<()> { self.timed_lock(std::time::Duration::MAX) }
//! #     fn try_unlock(&mut self) -> SimpleLockResult<()> {
//! #         if !self.1 { return Err(SimpleLockError::not_held("cache")) }
//! #         *self.0.lock().unwrap() = false; self.1 = false; Ok(())
//! #     }
//! # }
//! let backend = Shared::default(); // any ConcreteLock: a FileLock, a SemaphoreLock, yours
//! let mut first = LockBuilder::default().with_try_lock().apply(backend.clone());
//! let mut second = LockBuilder::default().with_try_lock().apply(backend);
//!
//! let guard = first.guard()?;
//! assert!(!rebuild_cache(&mut second)?); // busy: the first handle holds the lock
//! drop(guard);
//! assert!(rebuild_cache(&mut second)?);
//! # Ok::<(), SimpleLockError>(())
//! ```
//!
//! # Implementing a backend
//!
//! Implement the four required methods of [`ConcreteLock`] and follow its contract: never two
//! holders, `AlreadyHeld` when a holding handle locks again, `NotHeld` (and no release) when a
//! handle that does not hold the lock unlocks, release on drop. Override
//! [`ConcreteLock::timed_lock`] if your system can wait with a timeout natively; the default polls
//! `try_lock` with a backoff. A native wait computes its deadline and slices with [`Wait`]
//! (see its "For implementors"), and names its constructors and accessors as the table below
//! says.
//!
//! Here is a complete backend: a lock shared by the threads of one process, keyed by name.
//!
//! ```
//! use std::collections::HashSet;
//! use std::sync::{Condvar, Mutex};
//! use simplelock_core::{
//!     ConcreteLock, Lock, LockBuilder, LockStatus, SimpleLockError, SimpleLockResult,
//! };
//!
//! /// The names held right now, and a condition variable to wait for a release.
//! static HELD: Mutex<Option<HashSet<String>>> = Mutex::new(None);
//! static RELEASED: Condvar = Condvar::new();
//!
//! #[derive(Debug)]
//! pub struct ThreadLock {
//!     name: String,
//!     mine: bool,
//! }
//!
//! impl ThreadLock {
//!     pub fn new(name: &str) -> SimpleLockResult<Self> {
//!         if name.is_empty() {
//!             return Err(SimpleLockError::invalid_name(name, "the name is empty"));
//!         }
//!         Ok(ThreadLock { name: name.to_owned(), mine: false })
//!     }
//! }
//!
//! impl ConcreteLock for ThreadLock {
//!     fn status(&self) -> SimpleLockResult<LockStatus> {
//!         let held = HELD.lock().unwrap();
//!         Ok(if self.mine {
//!             LockStatus::Mine
//!         } else if held.as_ref().is_some_and(|h| h.contains(&self.name)) {
//!             LockStatus::Taken
//!         } else {
//!             LockStatus::Open
//!         })
//!     }
//!
//!     fn try_lock(&mut self) -> SimpleLockResult<()> {
//!         if self.mine {
//!             return Err(SimpleLockError::already_held(&self.name));
//!         }
//!         let mut held = HELD.lock().unwrap();
//!         if !held.get_or_insert_with(HashSet::new).insert(self.name.clone()) {
//!             return Err(SimpleLockError::already_locked(&self.name, None));
//!         }
//!         self.mine = true;
//!         Ok(())
//!     }
//!
//!     fn hang_lock(&mut self) -> SimpleLockResult<()> {
//!         if self.mine {
//!             return Err(SimpleLockError::already_held(&self.name));
//!         }
//!         let mut held = HELD.lock().unwrap();
//!         while !held.get_or_insert_with(HashSet::new).insert(self.name.clone()) {
//!             held = RELEASED.wait(held).unwrap();
//!         }
//!         self.mine = true;
//!         Ok(())
//!     }
//!
//!     fn try_unlock(&mut self) -> SimpleLockResult<()> {
//!         if !self.mine {
//!             return Err(SimpleLockError::not_held(&self.name));
//!         }
//!         HELD.lock().unwrap().get_or_insert_with(HashSet::new).remove(&self.name);
//!         self.mine = false;
//!         RELEASED.notify_all();
//!         Ok(())
//!     }
//! }
//!
//! impl Drop for ThreadLock {
//!     fn drop(&mut self) {
//!         if self.mine {
//!             let _ = self.try_unlock();
//!         }
//!     }
//! }
//!
//! // The builder and the utilities work with it at once:
//! let mut lock = LockBuilder::default().apply(ThreadLock::new("jobs")?);
//! let guard = lock.guard()?;
//! assert_eq!(guard.lock().status()?, LockStatus::Mine);
//! drop(guard);
//! assert_eq!(lock.status()?, LockStatus::Open);
//!
//! // ... and it passes the conformance suite (feature `conformance`), as a test should check
//! // (better with `conformance_tests!`, below, which makes each check a test of its own):
//! # #[cfg(feature = "conformance")]
//! # {
//! use simplelock_core::conformance::{Backend, run_all};
//! let failures = run_all("", &Backend::new(|key: &str| ThreadLock::new(key)));
//! assert!(failures.is_empty(), "{failures:#?}");
//! # }
//! # Ok::<(), SimpleLockError>(())
//! ```
//!
//! To check a backend, enable the `conformance` feature in your dev-dependencies only, so
//! normal builds do not compile the suite:
//!
//! ```toml
//! [dev-dependencies]
//! simplelock-core = { version = "0.5", features = ["conformance"] }
//! ```
//!
//! and let [`conformance_tests!`] write one test per check, naming what your backend claims
//! beyond the basic contract — each claim adds its checks, those across processes included
//! (a sketch, since the macro writes `#[test]` functions, which a doc-test cannot run; every
//! backend of this workspace does this in its `tests/conformance.rs`):
//!
//! ```text
//! mod conformance {
//!     simplelock_core::conformance_tests!(
//!         |key: &str| my_backend::MyLock::new(key),
//!         across_processes, crash_safe, reports_deaths, holder_pid,
//!     );
//! }
//! ```
//!
//! The multi-process checks re-run the test binary as child processes that hold the lock,
//! contend for it, release it, or are killed with SIGKILL inside the critical section. The
//! [`conformance`] module lists every check, what each claim adds, and what the suite cannot
//! check (races it cannot force, hostile peers, other machines): a backend's own tests cover
//! those.
//!
//! # One vocabulary for every backend
//!
//! Every backend's public API follows this table, so that a reader who knows one knows all
//! (a new backend follows it too). Names that 0.4 or earlier 0.5 code used and that break it
//! stay, marked `#[deprecated(note = "use … instead")]`.
//!
//! | what | the name | `FileLock` | `SemaphoreLock` | `FakeLock` | `PostgresLock` |
//! |---|---|---|---|---|---|
//! | the lock called `name` in the backend's own place | `Backend::named(name: &str) -> SimpleLockResult<Self>` | `named` | `named` (0.4's `new` deprecated) | `named` | `named` (the server the `PG*` variables name) |
//! | the lock in the file at `path` (file-based backends) | `Backend::at_path(path) -> SimpleLockResult<Self>` | `at_path` (0.4's `new` deprecated) | — | — | — |
//! | anything more than a name or a path to open a lock (mode, shared, folder) | `Backend::options()`, a builder with `with_*` steps that ends in `named` / `at_path` | `options()`: `with_shared`, `with_folder`, `with_holder_record`, `with_path_check` | `options()`: `with_mode`, `with_owner` | — | `options()`: `with_url`, `with_shared`, `with_fencing_tokens`, `with_timeouts`, ending in `named` or `keyed(key)` |
//! | open a lock only if it exists (creating nothing) | `Backend::open_existing(..) -> SimpleLockResult<Option<Self>>` | `open_existing(path)`, `named_existing(name)` | `open_existing(name)` | — | — (a server's lock always exists) |
//! | a new lock of its own (in-process backends) | `Backend::isolated(name)`, and `Default` | — | — | `isolated`, `default` | — |
//! | the lock's name as its errors carry it | `name(&self) -> &str`; a backend whose 0.4 `name()` returned `String` keeps that return type (a return type cannot be deprecated) | — | `name() -> String` (0.4's) | `name` | `name` |
//! | the file of a file-based lock | `path(&self) -> &Path`; `PathBuf` where 0.4 returned one, as for `name` | `path() -> PathBuf` (0.4's) | — | — | — |
//! | where a named lock lives, creating nothing | `Backend::named_path(name) -> SimpleLockResult<PathBuf>` | `named_path` | `named_path` | — | — |
//! | delete a named lock's object | `Backend::remove(name) -> SimpleLockResult<bool>` | — | `remove` | — | — |
//! | yes/no questions | `is_*(&self) -> bool` | `is_shared`, `is_read_only` | — | `is_locked` | `is_shared` |
//! | lock, unlock, state, holders | the [`ConcreteLock`] methods, not inherent copies (a type that implements both [`ConcreteLock`] and [`Lock`], like `FakeLock`, has inherent ones so that calls are not ambiguous) | ✓ | ✓ | ✓ | ✓ |
//! | how long to wait | [`Wait`] (and [`Backoff`] for waits that can only sleep), through [`ConcreteLock::timed_lock`] and the [`LockBuilder`] | ✓ | ✓ | ✓ | ✓ (the server's `lock_timeout`) |
//! | a counting semaphore of `permits` holders called `name`: a handle that takes one permit, a [`ConcreteLock`] + [`Permits`] | `BackendPermits::named(name, permits: u32)`; file-based backends also `at_path(path, permits)`; the other rows as for locks, with `permits` after the name | `FilePermits::named`, `at_path`, `named_existing`, `named_path`, `path`, `name` | `SemaphorePermits::named`, `open_existing`, `remove`, `name` | `FakePermits::named`, `isolated`, `name` | `PostgresPermits::named`, `options()`: `with_url`, `with_timeouts`, ending in `named(name, permits)`; `name` |
//! | errors | [`SimpleLockError`]'s constructors (`already_locked`, `unknown(..).with_kind(..)`, ...); callers match variants or [`kind()`](SimpleLockError::kind), never the message | ✓ | ✓ | ✓ | ✓ |
//!
//! Where a cell names something other than the convention, that backend has not moved yet.
//! `with_*` is a step on a builder or a value that returns it changed (`with_try_lock`,
//! `Holder::with_since`, `SimpleLockError::with_kind`); never a constructor. `enable_*(&mut
//! self)` exists only beside 0.4's `with_*` steps of [`LockBuilder`].
//!
//! # Crate feature flags
//!
//! - `conformance` (off by default): the [`conformance`] test suite for backends. It adds code
//!   only, no dependency.
//!
//! # Supported Rust versions
//!
//! The minimum supported Rust version is **1.89** (the whole workspace shares it; the file
//! backend needs `std::fs::File::lock`). Raising it is a minor version bump.
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod async_lock;
mod builder;
#[cfg(feature = "conformance")]
#[cfg_attr(docsrs, doc(cfg(feature = "conformance")))]
pub mod conformance;
mod error;
mod guard;
pub mod permits;
pub mod process;
mod status;
mod traits;
mod wait;

pub use async_lock::{
    Acquire, AcquireWithin, AsyncConcreteLock, AsyncLockExt, AsyncLockGuard, DynAsyncLock,
    ErasedWait,
};
pub use builder::{BuiltLock, LockBuilder};
pub use error::{BoxError, SimpleLockError, SimpleLockResult};
pub use guard::{LockGuard, lock_until_finished};
pub use permits::{PermitState, Permits};
pub use status::{Holder, LockStatus, PreviousHolder};
pub use traits::{ConcreteLock, Lock};
pub use wait::{Backoff, Wait};
