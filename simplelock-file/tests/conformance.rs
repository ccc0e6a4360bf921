//! FileLock passes the backend conformance suite of simplelock-core, the multi-process checks
//! included: every key is a named lock in a folder of this test run, which the children the
//! suite starts find through `conformance::run_id()`.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use simplelock_core::SimpleLockResult;
use simplelock_core::conformance::run_id;
use simplelock_file::FileLock;

/// The folder of this run's lock files: the same in the test process and in its children.
/// The test process removes the folders of earlier runs whose process is gone.
fn run_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        const PREFIX: &str = "simplelock-file-conformance-";
        let temp = std::env::temp_dir();
        if run_id() == std::process::id()
            && let Ok(entries) = fs::read_dir(&temp)
        {
            for entry in entries.flatten() {
                let name = entry.file_name();
                let pid = name.to_str().and_then(|n| n.strip_prefix(PREFIX));
                if pid.is_some_and(|pid| !Path::new("/proc").join(pid).exists()) {
                    let _ = fs::remove_dir_all(entry.path());
                }
            }
        }
        let dir = temp.join(format!("{PREFIX}{}", run_id()));
        fs::create_dir_all(&dir).unwrap();
        dir
    })
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

simplelock_core::conformance_tests!(
    open,
    across_processes,
    crash_safe,
    reports_deaths,
    holder_pid,
    shared(open_shared),
);
