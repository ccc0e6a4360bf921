//! FakeLock passes the backend conformance suite, as a `ConcreteLock` behind a `LockBuilder`.
//!
//! It is a lock of one process (no multi-process claims); its clones are new handles on the
//! same lock, and it names this process as the holder.

use simplelock_core::SimpleLockResult;
use simplelock_fake::FakeLock;

fn open(key: &str) -> SimpleLockResult<FakeLock> {
    FakeLock::named(&format!("conformance-{key}"))
}

// The async waits need no runtime: the suite's own executor runs them.
simplelock_core::conformance_tests!(
    open,
    holder_pid,
    cloneable,
    async_waits(|future| simplelock_core::conformance::block_on(future)),
);
