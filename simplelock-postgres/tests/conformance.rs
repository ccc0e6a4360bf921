//! PostgresLock passes the backend conformance suite of simplelock-core against the real
//! server, the multi-process checks included: every key is a lock name private to this test
//! run (`conformance::run_id()`, the same in the children the suite starts).
//!
//! Claimed: across processes, crash-safe (the server ends a killed client's session and its
//! locks), the holder's pid (from `application_name`), shared locks. Not claimed:
//! `reports_deaths` (the server releases a dead session's advisory locks without a trace, so
//! the next holder cannot tell a death from a release) and `cloneable` (a handle is a
//! connection; it is not `Clone`).

use simplelock_core::SimpleLockResult;
use simplelock_core::conformance::run_id;
use simplelock_postgres::PostgresLock;

mod common;

fn name(key: &str) -> String {
    format!("simplelock-test-{}-conformance-{key}", run_id())
}

fn open(key: &str) -> SimpleLockResult<PostgresLock> {
    PostgresLock::options()
        .with_url(common::url())
        .named(&name(key))
}

fn open_shared(key: &str) -> SimpleLockResult<PostgresLock> {
    PostgresLock::options()
        .with_url(common::url())
        .with_shared(true)
        .named(&name(key))
}

#[cfg(not(feature = "tokio"))]
simplelock_core::conformance_tests!(
    open,
    across_processes,
    crash_safe,
    holder_pid,
    shared(open_shared),
);

// With feature `tokio`, the same checks and the async ones, each run on a current-thread tokio
// runtime of its own (the async wait drives the connection on the caller's runtime). An async
// guard's drop sends the unlock without waiting for the server's answer (see the crate docs):
// other sessions see the lock free a round trip later, not at once (`async_release_later`).
#[cfg(feature = "tokio")]
simplelock_core::conformance_tests!(
    open,
    across_processes,
    crash_safe,
    holder_pid,
    shared(open_shared),
    async_release_later,
    async_waits(|future| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime")
            .block_on(future)
    }),
);
