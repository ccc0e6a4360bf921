//! Helpers shared by the test binaries: the workspace's multi-process test harness
//! (`simplelock_harness::child`: per-run scratch folders, and child processes that are the test
//! binary itself, re-run for one test in a role) and what is this crate's own: the environment
//! variables its children read and lock files of a lock folder.
#![allow(
    dead_code,
    unused_imports,
    reason = "each test binary uses a part of the helpers"
)]

use std::path::Path;

pub(crate) use simplelock_harness::child::*;

/// The lock file a child works on.
pub(crate) const LOCK_PATH: &str = "SIMPLELOCK_FILE_TEST_LOCK";
/// A folder a child works in.
pub(crate) const WORK_DIR: &str = "SIMPLELOCK_FILE_TEST_DIR";

/// A handle on the lock file at `path` (a name ending in `.lock`) as a file of a lock folder,
/// the kind that keeps the holder record (`FileLock::options().with_folder(..).named(..)`); `FileLock::at_path` never writes
/// into a file.
pub(crate) fn lock_file(
    path: impl AsRef<Path>,
) -> simplelock_core::SimpleLockResult<simplelock_file::FileLock> {
    lock_file_with(path, simplelock_file::FileLock::options())
}

/// [`lock_file`] with `options`.
pub(crate) fn lock_file_with(
    path: impl AsRef<Path>,
    options: simplelock_file::FileLockOptions,
) -> simplelock_core::SimpleLockResult<simplelock_file::FileLock> {
    let path = path.as_ref();
    let name = path
        .file_name()
        .and_then(|name| name.to_str())
        .and_then(|name| name.strip_suffix(".lock"))
        .expect("a lock file's name ends in .lock");
    let dir = path
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    options.with_folder(dir).named(name)
}

/// [`lock_file`], taken shared.
pub(crate) fn lock_file_shared(
    path: impl AsRef<Path>,
) -> simplelock_core::SimpleLockResult<simplelock_file::FileLock> {
    lock_file_with(path, simplelock_file::FileLock::options().with_shared(true))
}
