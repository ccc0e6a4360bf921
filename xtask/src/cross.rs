//! The other platforms: `cargo check` for macOS and FreeBSD (no machine of theirs here; the
//! check compiles every `cfg` of theirs and fails on any warning), and the Windows build tested
//! under Wine (`cargo xtask windows`).
//!
//! # Windows under Wine
//!
//! Cargo cross-compiles the tests to `x86_64-pc-windows-gnu` (linked by mingw-w64) and runs
//! each test program with `wine`: the libraries' tests, and the `simplelock` tool's
//! (`simplelock.exe` run by `tests/cli_windows.rs`). Wine is not Windows, but it implements the calls the file
//! backend makes (`LockFileEx`, `UnlockFileEx`, process handles, `TerminateProcess`) and
//! catches API misuse, missing `cfg`s and wrong error mapping. Two things are set up here:
//!
//! - A Wine prefix of its own under the target folder (`target/wine`), made by `wineboot` on
//!   first use (about 10 s), so that the user's `~/.wine` is never touched.
//! - `bcryptprimitives.dll`, which Wine 8 (Debian 12) lacks and every Rust program since 1.78
//!   imports (`ProcessPrng`): a stand-in built from `.ci/windows/bcryptprimitives.c` and copied
//!   into the prefix's `system32`.
//!
//! The tools (`wine`, `x86_64-w64-mingw32-gcc`, the rustup targets) are installed by `.ci/run`
//! where missing; this task only says how to get them when one is absent.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::{TaskResult, cargo, project_root, step};

/// The Windows target the tests are built for.
pub(crate) const WINDOWS: &str = "x86_64-pc-windows-gnu";

/// The targets that are only checked, with the reason each is on the list.
pub(crate) const CHECKED: [&str; 3] = [
    // macOS on Apple silicon and on Intel: the same code, but libc's types differ.
    "aarch64-apple-darwin",
    "x86_64-apple-darwin",
    // A BSD: no /proc, no inotify, no openat2.
    "x86_64-unknown-freebsd",
];

/// The library crates and the facade's library features that every platform builds. The
/// `contention` example is a Unix program (signals, fork); the CLI builds on Linux and
/// Windows (`cargo xtask windows` tests it there), not on macOS or FreeBSD (prctl, /proc).
const LIBRARIES: [&str; 6] = [
    "-p",
    "simplelock-core",
    "-p",
    "simplelock-fake",
    "-p",
    "simplelock-file",
];

/// The command-line tool on Windows: its program (with its unit tests) and its tests there.
const CLI: [&str; 7] = [
    "-p",
    "simplelock",
    "--features",
    "cli",
    "--bins",
    "--test",
    "cli_windows",
];

/// `cargo check` for each target of [`CHECKED`], warnings denied: the libraries (and the
/// facade with its library features) everywhere; their tests too where the dev-dependencies
/// build, which is FreeBSD only — criterion's `alloca` compiles C with cc-rs, which wants
/// Apple's clang for a macOS target.
pub(crate) fn check_other_targets() -> TaskResult {
    for target in CHECKED {
        ensure_target(target)?;
        let tests = !target.contains("apple");
        let mut libraries = cargo(&["check", "--target", target, "--all-features"]);
        libraries.args(LIBRARIES);
        if tests {
            libraries.arg("--all-targets");
        }
        step(deny_warnings(libraries))?;
        // SemaphoreLock's tests are Linux programs; its library compiles everywhere.
        let sema = cargo(&[
            "check",
            "--target",
            target,
            "-p",
            "simplelock-sema",
            "--lib",
        ]);
        step(deny_warnings(sema))?;
        let mut facade = cargo(&[
            "check",
            "--target",
            target,
            "-p",
            "simplelock",
            "--lib",
            "--features",
            "file,sema,fake",
        ]);
        if tests {
            facade.arg("--tests");
        }
        step(deny_warnings(facade))?;
    }
    Ok(())
}

/// `cargo xtask windows`: the libraries' tests built for Windows and run under Wine.
pub(crate) fn windows() -> TaskResult {
    ensure_target(WINDOWS)?;
    let wine = Wine::prepare()?;
    // Lints first: the Windows code is compiled by no other step. (The benchmarks and the
    // harness-based tests are Unix programs.)
    let mut clippy = vec!["clippy"];
    clippy.extend(LIBRARIES);
    clippy.extend(["--lib", "--tests", "--all-features", "--", "-D", "warnings"]);
    step(wine.cargo(&clippy)).and_then(|()| {
        step(wine.cargo(&[
            "clippy",
            "-p",
            "simplelock-sema",
            "-p",
            "simplelock",
            "--lib",
            "--features",
            "simplelock/file,simplelock/fake,simplelock/sema",
            "--",
            "-D",
            "warnings",
        ]))
    })?;
    // The command-line tool: its Windows module (child/windows.rs), its unit tests and
    // tests/cli_windows.rs.
    let mut clippy = vec!["clippy"];
    clippy.extend(CLI);
    clippy.extend(["--", "-D", "warnings"]);
    step(wine.cargo(&clippy))?;
    // The core's unit tests (its conformance suite's reference backends use std's
    // `File::lock`, whose whole-file lock on Windows covers their record: they are Unix
    // programs, see tests/mutants), the fake entirely, and the file backend entirely: its
    // conformance suite and tests/windows.rs (exclusion between processes, a holder killed
    // with TerminateProcess, the record read while held, named locks); its other test files
    // are Unix programs and compile to nothing here.
    step(wine.cargo(&["test", "-p", "simplelock-core", "--lib"]))?;
    step(wine.cargo(&["test", "-p", "simplelock-fake", "-p", "simplelock-file"]))?;
    // The facade with the backends Windows builds (SemaphoreLock compiles there and reports
    // Unsupported).
    step(wine.cargo(&[
        "test",
        "-p",
        "simplelock",
        "--lib",
        "--tests",
        "--features",
        "file,fake,sema",
    ]))?;
    // The command-line tool (its argument parser's unit tests, and tests/cli_windows.rs: two
    // tools on one lock, the command's exit code, a killed tool taking its command tree along
    // through the Job object, what Windows lacks refused); tests/cli.rs is a Unix program.
    let mut test = vec!["test"];
    test.extend(CLI);
    step(wine.cargo(&test))?;
    Ok(())
}

/// Sets `RUSTFLAGS=-D warnings` for a cross check (cargo caps the lints of dependencies, so
/// this only judges the workspace's code).
fn deny_warnings(mut command: Command) -> Command {
    let mut flags = env::var("RUSTFLAGS").unwrap_or_default();
    if !flags.is_empty() {
        flags.push(' ');
    }
    flags.push_str("-D warnings");
    command.env("RUSTFLAGS", flags);
    command
}

/// Fails with how to get `target` unless rustup has its standard library installed.
fn ensure_target(target: &str) -> TaskResult {
    let output = Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .map_err(|e| format!("could not start `rustc --print sysroot`: {e}"))?;
    let sysroot = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    if sysroot
        .join("lib/rustlib")
        .join(target)
        .join("lib")
        .is_dir()
    {
        return Ok(());
    }
    Err(format!(
        "the Rust standard library for {target} is not installed: run `rustup target add \
         {target}` (.ci/run does)"
    ))
}

/// A Wine prefix of the project's, with the stand-in DLL in it.
struct Wine {
    prefix: PathBuf,
}

impl Wine {
    fn prepare() -> Result<Wine, String> {
        for (tool, package) in [
            ("wine", "wine64"),
            ("x86_64-w64-mingw32-gcc", "gcc-mingw-w64-x86-64"),
        ] {
            let found = Command::new(tool)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok();
            if !found {
                return Err(format!(
                    "`{tool}` is missing: install Debian's {package} (`apt-get install {package}`; \
                     .ci/run does)"
                ));
            }
        }
        let folder = target_dir().join("wine");
        let prefix = folder.join("prefix");
        fs::create_dir_all(&folder).map_err(|e| format!("creating {}: {e}", folder.display()))?;
        let dll = folder.join("bcryptprimitives.dll");
        let source = project_root().join(".ci/windows/bcryptprimitives.c");
        if is_older(&dll, &source) {
            let mut gcc = Command::new("x86_64-w64-mingw32-gcc");
            gcc.args(["-O2", "-shared", "-o"])
                .arg(&dll)
                .arg(&source)
                .arg("-ladvapi32");
            step(gcc)?;
        }
        let system32 = prefix.join("drive_c/windows/system32");
        if !system32.is_dir() {
            let mut boot = Command::new("wineboot");
            boot.arg("-i")
                .env("WINEPREFIX", &prefix)
                .env("WINEDEBUG", "-all");
            step(boot)?;
        }
        let installed = system32.join("bcryptprimitives.dll");
        if is_older(&installed, &dll) {
            fs::copy(&dll, &installed)
                .map_err(|e| format!("copying the DLL to {}: {e}", installed.display()))?;
        }
        Ok(Wine { prefix })
    }

    /// `cargo SUBCOMMAND --target x86_64-pc-windows-gnu ARGS`, linked by mingw-w64 and run by
    /// Wine.
    fn cargo(&self, args: &[&str]) -> Command {
        let (subcommand, rest) = args.split_first().expect("a cargo subcommand");
        let mut command = cargo(&[subcommand, "--target", WINDOWS]);
        command
            .args(rest)
            .env(
                "CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER",
                "x86_64-w64-mingw32-gcc",
            )
            .env("CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER", "wine")
            .env("WINEPREFIX", &self.prefix)
            // Wine's own messages (no X display, fixmes) are noise for console programs.
            .env("WINEDEBUG", "-all");
        command
    }
}

/// Whether `made` is missing or older than `from`.
fn is_older(made: &Path, from: &Path) -> bool {
    let modified = |path: &Path| fs::metadata(path).and_then(|meta| meta.modified()).ok();
    match (modified(made), modified(from)) {
        (Some(made), Some(from)) => made < from,
        _ => true,
    }
}

/// The target folder cargo builds into.
fn target_dir() -> PathBuf {
    env::var_os("CARGO_TARGET_DIR").map_or_else(|| project_root().join("target"), PathBuf::from)
}
