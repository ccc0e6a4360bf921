//! FileLock passes the backend conformance suite of simplelock-core: every key is a lock file
//! in a folder of this test run.

mod common;

use simplelock_core::SimpleLockResult;
use simplelock_file::FileLock;

fn open(key: &str) -> SimpleLockResult<FileLock> {
    FileLock::new(common::run_dir().join(format!("conformance-{key}.lock")))
}

simplelock_core::conformance_tests!(open);
