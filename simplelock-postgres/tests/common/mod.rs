//! Helpers shared by the test binaries: the test server, names private to a test run, and
//! child processes that are the test binary itself, re-run for one test in a given role.
#![allow(dead_code, reason = "each test binary uses a part of the helpers")]

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use simplelock_postgres::PostgresLock;

/// Tells a re-run test binary which part to play; unset in a normal run.
pub(crate) const ROLE: &str = "SIMPLELOCK_PG_TEST_ROLE";
/// The lock name a child works on.
pub(crate) const LOCK: &str = "SIMPLELOCK_PG_TEST_LOCK";
/// A file a child works on.
pub(crate) const FILE: &str = "SIMPLELOCK_PG_TEST_FILE";

/// How long a test waits for something that must happen before it calls the code stuck: a hang
/// guard, not a timing assertion.
pub(crate) const PATIENCE: Duration = Duration::from_secs(60);

/// The server the tests use: `$SIMPLELOCK_POSTGRES_URL`, else the local server's `test`
/// database over TCP. Panics with what to do if it cannot be reached: a test that needs the
/// server never passes without it.
pub(crate) fn url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        let url = std::env::var("SIMPLELOCK_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://127.0.0.1:5432/test".to_owned());
        if let Err(e) = PostgresLock::new(&url, "simplelock-test-probe") {
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

/// A lock name private to this test process.
pub(crate) fn name(what: &str) -> String {
    format!("simplelock-test-{}-{what}", std::process::id())
}

/// A raw connection for the tests' own queries (pg_terminate_backend, pg_locks).
pub(crate) fn raw() -> postgres::Client {
    postgres::Client::connect(url(), postgres::NoTls).expect("raw connection to the test server")
}

/// The role of this process, if it is a child started by [`child`].
pub(crate) fn role() -> Option<String> {
    std::env::var(ROLE).ok()
}

/// This test binary, to run the test `test` alone, in `role`.
pub(crate) fn child(test: &str, role: &str) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", test, "--nocapture", "--test-threads=1", "-q"])
        .env(ROLE, role)
        .env("SIMPLELOCK_POSTGRES_URL", url())
        .env("RUST_BACKTRACE", "1");
    cmd
}

/// A running child. Lines it prints that start with `@` are its messages to the parent
/// (libtest prints the rest). Dropping it kills the child if it still runs.
pub(crate) struct Proc {
    child: Child,
    out: BufReader<ChildStdout>,
}

impl Proc {
    /// Starts `cmd` with its standard output piped to us.
    pub(crate) fn spawn(cmd: &mut Command) -> Self {
        let mut child = cmd.stdout(Stdio::piped()).spawn().unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        Proc { child, out }
    }

    pub(crate) fn id(&self) -> u32 {
        self.child.id()
    }

    /// The next message, without the `@`; panics if the child closed its output first.
    pub(crate) fn next(&mut self) -> String {
        let mut line = String::new();
        loop {
            line.clear();
            let read = self.out.read_line(&mut line).unwrap();
            assert!(read > 0, "the child ended without saying what it did");
            if let Some(message) = line.trim_end().strip_prefix('@') {
                return message.to_owned();
            }
        }
    }

    /// Reads the rest of its output and waits for it to end successfully.
    pub(crate) fn finish(mut self, what: &str) {
        let mut rest = String::new();
        let _ = self.out.read_to_string(&mut rest);
        let status = self.child.wait().unwrap();
        assert!(status.success(), "{what} failed: {status}\n{rest}");
    }

    /// SIGKILL, and reap it.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Says `message` to the parent.
pub(crate) fn say(message: impl std::fmt::Display) {
    println!("@{message}");
}
