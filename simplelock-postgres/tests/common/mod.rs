//! Helpers shared by the test binaries: the workspace's test harness
//! (`simplelock_harness::child`: child processes that are this test binary run again for one
//! test with a role, scratch folders, hang guards, the checked critical section) and what is
//! this crate's own: the test server, names private to a test run.
#![allow(
    dead_code,
    unused_imports,
    reason = "each test binary uses a part of the helpers"
)]

use std::process::Command;
use std::sync::OnceLock;

pub(crate) use simplelock_harness::child::*;
use simplelock_postgres::PostgresLock;

/// The lock name a child works on.
pub(crate) const LOCK: &str = "SIMPLELOCK_PG_TEST_LOCK";
/// A file a child works on.
pub(crate) const FILE: &str = "SIMPLELOCK_PG_TEST_FILE";

/// The server the tests use: `$SIMPLELOCK_POSTGRES_URL`, else the local server's `test`
/// database over TCP. Panics with what to do if it cannot be reached: a test that needs the
/// server never passes without it.
pub(crate) fn url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        let url = std::env::var("SIMPLELOCK_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://127.0.0.1:5432/test".to_owned());
        if let Err(e) = PostgresLock::options()
            .with_url(&url)
            .named("simplelock-test-probe")
        {
            panic!(
                "these tests need a PostgreSQL server (14 or newer): none usable at {url:?}: {e} \
                 ({e:?}).\nStart one (e.g. `apt-get install postgresql`, or `cargo xtask ci`, \
                 which starts a throwaway cluster when initdb/pg_ctl are installed) and point \
                 SIMPLELOCK_POSTGRES_URL at a database this user may connect to."
            )
        }
        url
    })
}

/// A handle (not holding it) on the exclusive lock `name` on the tests' server.
#[allow(dead_code, reason = "not every test binary opens locks this way")]
pub(crate) fn open(name: &str) -> PostgresLock {
    PostgresLock::options()
        .with_url(url())
        .named(name)
        .unwrap_or_else(|e| panic!("opening the lock {name:?}: {e}"))
}

/// A lock name private to this test process.
pub(crate) fn name(what: &str) -> String {
    format!("simplelock-test-{}-{what}", std::process::id())
}

/// A raw connection for the tests' own queries (pg_terminate_backend, pg_locks).
pub(crate) fn raw() -> postgres::Client {
    postgres::Client::connect(url(), postgres::NoTls).expect("raw connection to the test server")
}

/// This test binary, to run the test `test` alone, in `role` (the harness's [`command`]),
/// with the server this process uses.
pub(crate) fn child(test: &str, role: &str) -> Command {
    let mut cmd = command(test, role);
    cmd.env("SIMPLELOCK_POSTGRES_URL", url());
    cmd
}
