//! Checks, in `cargo xtask ci`, the promise of the `simplelock` facade to simplelock 0.4 users:
//! code written against 0.4.1 compiles and behaves as 0.4.1 documented with one changed line,
//! `use simplelock::compat_0_4::*;` instead of `use simplelock::*;`.
//!
//! - `program/v0_4.rs` is such a program: it uses every public item of 0.4.1 (`default_lock`,
//!   `lock_until_finished`, `LockBuilder`, `FileLock`, `SemaphoreLock`, `FakeLock`, a hand-rolled
//!   `ConcreteLock` and `Lock`, every error variant and status, error equality, order and
//!   conversions).
//! - `tests/program_0_4.rs` runs it on this workspace after the compat import.
//! - `against-0.4.1/` (outside the workspace) compiles the same file after `use simplelock::*;`
//!   against the real simplelock 0.4.1 from crates.io, so the program tests 0.4.1's contract and
//!   not our idea of it.
//! - `tests/processes.rs` checks that the module's locks are today's between real processes: a
//!   holder SIGKILLed inside its critical section releases the lock.
//! - `tests/migration.rs` checks each row of the migration table in CHANGELOG.md: what 0.4 code
//!   writes instead when it moves to the 0.5 API.
//!
//! This crate has no code of its own and is not published.
#![forbid(unsafe_code)]
