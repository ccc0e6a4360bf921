//! FileLock passes the backend conformance suite of simplelock-core, the multi-process checks
//! included: every key is a named lock in a folder of this test run, which the children the
//! suite starts find through `conformance::run_id()` (`conformance::child::run_dir`).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use simplelock_core::SimpleLockResult;
use simplelock_core::conformance::child;
use simplelock_file::FileLock;

/// The folder of this run's lock files: the same in the test process and in its children.
/// The test process removes the folders of earlier runs whose process is gone.
fn run_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| child::run_dir("simplelock-file-conformance-"))
}

/// A lock file that FileLock manages (it keeps its holder record there, which is what lets it
/// report deaths): a name in this run's folder.
fn open(key: &str) -> SimpleLockResult<FileLock> {
    FileLock::options().with_folder(run_dir()).named(key)
}

fn open_shared(key: &str) -> SimpleLockResult<FileLock> {
    FileLock::options()
        .with_shared(true)
        .with_folder(run_dir())
        .named(key)
}

#[cfg(not(all(feature = "tokio", unix)))]
simplelock_core::conformance_tests!(
    open,
    across_processes,
    crash_safe,
    reports_deaths,
    holder_pid,
    shared(open_shared),
);

// With feature `tokio`, the same checks and the async ones, each run on a current-thread
// tokio runtime of its own (the async wait registers with tokio's reactor and timer). The
// async wait is Unix-only: on Windows the feature adds nothing yet.
#[cfg(all(feature = "tokio", unix))]
simplelock_core::conformance_tests!(
    open,
    across_processes,
    crash_safe,
    reports_deaths,
    holder_pid,
    shared(open_shared),
    async_waits(|future| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime")
            .block_on(future)
    }),
);
