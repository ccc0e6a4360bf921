//! FakeLock passes the backend conformance suite, as a `ConcreteLock` behind a `LockBuilder`.

use simplelock_core::SimpleLockResult;
use simplelock_fake::FakeLock;

fn open(key: &str) -> SimpleLockResult<FakeLock> {
    FakeLock::named(&format!("conformance-{key}"))
}

simplelock_core::conformance_tests!(open);
