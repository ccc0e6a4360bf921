//! PostgresLock passes the backend conformance suite of simplelock-core against the real
//! server: every key is a lock name private to this test process.

use simplelock_core::SimpleLockResult;
use simplelock_postgres::PostgresLock;

mod common;

fn open(key: &str) -> SimpleLockResult<PostgresLock> {
    PostgresLock::new(common::url(), &common::name(&format!("conformance-{key}")))
}

simplelock_core::conformance_tests!(open);
