//! The `simplelock` command on Windows, run as a real program (CI runs it under Wine, see
//! `cargo xtask windows`): a second `--nonblock` or `--timeout` run fails with the conflict
//! status while the first holds the lock and never starts its command; the command's exit
//! status is passed through; the lock is held until the processes the command left behind
//! have ended; `status` (and `--json`) names the holder; a tool killed with `TerminateProcess`
//! takes its command tree along (Job object) and releases the lock; what Windows lacks is
//! refused with status 64.
//!
//! The commands are this test binary run again in a role (`ROLE`), so that the test needs no
//! shell; a role marks that its process lives by holding a `FileLock` on a marker file, which
//! Windows releases when the process ends, so the test learns that a process ended by taking
//! its marker, without polling and without timing. The Unix tests are `tests/cli.rs`.
#![cfg(all(feature = "cli", windows))]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use simplelock::{ConcreteLock, FileLock};

const BIN: &str = env!("CARGO_BIN_EXE_simplelock");

/// Tells a command which part to play.
const ROLE: &str = "SIMPLELOCK_CLI_TEST_ROLE";
/// The folder a command works in.
const DIR: &str = "SIMPLELOCK_CLI_TEST_DIR";
/// The exit code a command leaves with.
const EXIT: &str = "SIMPLELOCK_CLI_TEST_EXIT";

/// How long a waiting step may take before the test calls it stuck (a hang guard, not a
/// timing assertion).
const PATIENCE: Duration = Duration::from_secs(60);

/// The test the commands run as (it does its part only when `ROLE` is set).
const HELPER: &str = "helper";

/// A folder of the test's own: its named locks (`SIMPLELOCK_DIR`) and its commands' files.
struct Sandbox {
    dir: PathBuf,
}

impl Sandbox {
    fn new(test: &str) -> Sandbox {
        let dir = std::env::temp_dir().join(format!(
            "simplelock-cli-windows-{}-{test}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Sandbox { dir }
    }

    /// `simplelock ARGS` with this sandbox's lock folder, for a command in `role`.
    fn tool(&self, args: &[&str], role: &str, exit: i32) -> Command {
        let mut command = Command::new(BIN);
        command
            .args(args)
            .env("SIMPLELOCK_DIR", &self.dir)
            .env(ROLE, role)
            .env(DIR, &self.dir)
            .env(EXIT, exit.to_string())
            .stdin(Stdio::null());
        command
    }

    /// `simplelock OPTIONS NAME -- HELPER` in `role`, leaving with `exit`.
    fn under_lock(&self, options: &[&str], role: &str, exit: i32) -> Command {
        let mut command = self.tool(options, role, exit);
        command.arg("--").args(helper_command());
        command
    }

    fn run(&self, options: &[&str], role: &str, exit: i32) -> Output {
        self.under_lock(options, role, exit).output().unwrap()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Returns once `file` exists.
    fn wait_for(&self, file: &str) {
        let began = Instant::now();
        while !self.path(file).exists() {
            assert!(began.elapsed() < PATIENCE, "{file} never appeared");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Returns once the process that held the marker `name` has ended.
    fn wait_for_the_end_of(&self, name: &str) {
        let mut marker = FileLock::at_path(self.path(name)).unwrap();
        marker
            .timed_lock(PATIENCE)
            .unwrap_or_else(|err| panic!("the process holding {name} never ended: {err}"));
        marker.try_unlock().unwrap();
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// This test binary, running only [`HELPER`].
fn helper_command() -> Vec<String> {
    let exe = std::env::current_exe().unwrap();
    vec![
        exe.display().to_string(),
        "--exact".into(),
        HELPER.into(),
        "--nocapture".into(),
        "--test-threads=1".into(),
        "-q".into(),
    ]
}

fn code(output: &Output) -> Option<i32> {
    output.status.code()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Kills the tool if a test fails while it runs.
struct Tool(Child);

impl Drop for Tool {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// A command's part, by `ROLE`, in the folder `DIR`:
///
/// - `parent`: holds the marker `parent.marker`, starts an `orphan` and leaves with `EXIT` once
///   the orphan is ready: what it leaves behind is the orphan.
/// - `orphan`: holds the marker `orphan.marker`, says `orphan.ready`, and waits for a `go`
///   file, then leaves with 0.
/// - `never`: writes `never.ran` (a command that must never start), and leaves with 0.
/// - `exit`: leaves with `EXIT`.
#[test]
fn helper() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    let dir = PathBuf::from(std::env::var_os(DIR).unwrap());
    let exit: i32 = std::env::var(EXIT).unwrap().parse().unwrap();
    let hold = |name: &str| {
        let mut marker = FileLock::at_path(dir.join(name)).unwrap();
        marker.try_lock().unwrap();
        marker
    };
    match role.as_str() {
        "parent" => {
            let _marker = hold("parent.marker");
            let exe = helper_command();
            let mut orphan = Command::new(&exe[0]);
            orphan.args(&exe[1..]).env(ROLE, "orphan");
            // Not waited for: it is left behind.
            drop(orphan.spawn().unwrap());
            let began = Instant::now();
            while !dir.join("orphan.ready").exists() {
                assert!(began.elapsed() < PATIENCE, "the orphan never got ready");
                std::thread::sleep(Duration::from_millis(10));
            }
            std::process::exit(exit);
        }
        "orphan" => {
            let _marker = hold("orphan.marker");
            fs::write(dir.join("orphan.ready"), "").unwrap();
            let began = Instant::now();
            while !dir.join("go").exists() {
                assert!(began.elapsed() < PATIENCE * 2, "never told to go");
                std::thread::sleep(Duration::from_millis(10));
            }
            std::process::exit(0);
        }
        "never" => {
            fs::write(dir.join("never.ran"), "").unwrap();
            std::process::exit(0);
        }
        "exit" => std::process::exit(exit),
        other => panic!("unknown role {other}"),
    }
}

/// Starts `simplelock NAME -- parent` (exit code 7) and returns once its command has ended,
/// leaving the orphan behind, waiting for `go`.
fn a_tool_whose_command_left_an_orphan(sandbox: &Sandbox, name: &str) -> Tool {
    let tool = Tool(sandbox.under_lock(&[name], "parent", 7).spawn().unwrap());
    sandbox.wait_for("orphan.ready");
    sandbox.wait_for_the_end_of("parent.marker");
    tool
}

#[test]
fn the_lock_excludes_a_second_run_until_the_whole_command_tree_ended() {
    let sandbox = Sandbox::new("excludes");
    let mut tool = a_tool_whose_command_left_an_orphan(&sandbox, "job");
    let pid = tool.0.id();
    // The command has ended; what it left behind still runs, so the lock is still held.
    for (options, expected) in [
        (&["-n", "job"][..], 1),
        (&["--nonblock", "-E", "75", "job"][..], 75),
        (&["--timeout", "0.2", "job"][..], 1),
        (&["-w", "0", "--shared", "job"][..], 1),
    ] {
        let output = sandbox.run(options, "never", 0);
        assert_eq!(code(&output), Some(expected), "{options:?}: {output:?}");
        assert!(
            stderr(&output).contains("job.lock") && stderr(&output).contains(&pid.to_string()),
            "{options:?}: the error names the lock and its holder: {output:?}"
        );
    }
    assert!(
        !sandbox.path("never.ran").exists(),
        "a refused run started its command"
    );
    assert!(
        tool.0.try_wait().unwrap().is_none(),
        "the tool ended while the orphan of its command ran"
    );

    let text = sandbox
        .tool(&["status", "job"], "never", 0)
        .output()
        .unwrap();
    assert_eq!(code(&text), Some(0), "{text:?}");
    assert!(
        stdout(&text).contains(&format!("held by pid {pid}")),
        "{text:?}"
    );
    let json = sandbox
        .tool(&["status", "--json", "job"], "never", 0)
        .output()
        .unwrap();
    let json = stdout(&json);
    assert!(json.contains("\"held\":true"), "{json}");
    assert!(json.contains(&format!("\"pid\":{pid},")), "{json}");

    fs::write(sandbox.path("go"), "").unwrap();
    // The command's own exit code, not the orphan's.
    assert_eq!(tool.0.wait().unwrap().code(), Some(7));
    sandbox.wait_for_the_end_of("orphan.marker");
    let output = sandbox.run(&["-n", "job"], "exit", 5);
    assert_eq!(code(&output), Some(5), "free again: {output:?}");
    let json = sandbox
        .tool(&["status", "--json", "job"], "never", 0)
        .output()
        .unwrap();
    assert!(stdout(&json).contains("\"held\":false"), "{json:?}");
}

#[test]
fn a_killed_tool_takes_its_command_tree_along_and_releases_the_lock() {
    let sandbox = Sandbox::new("killed");
    let mut tool = a_tool_whose_command_left_an_orphan(&sandbox, "job");
    // TerminateProcess: nothing in the tool runs any more.
    tool.0.kill().unwrap();
    tool.0.wait().unwrap();
    // The orphan waits for a `go` that never comes: only the Job object can end it.
    sandbox.wait_for_the_end_of("orphan.marker");
    // The lock is free, and its next holder learns that the previous one died.
    let output = sandbox
        .tool(
            &["-n", "job", "-c", "echo %SIMPLELOCK_PREVIOUS_HOLDER%"],
            "never",
            0,
        )
        .output()
        .unwrap();
    assert_eq!(code(&output), Some(0), "{output:?}");
    assert_eq!(stdout(&output).trim(), "died", "{output:?}");
}

#[test]
fn a_file_lock_and_a_shell_command() {
    let sandbox = Sandbox::new("file");
    let data = sandbox.path("data.txt");
    fs::write(&data, "kept").unwrap();
    let data = data.display().to_string();
    let output = sandbox.run(&["--file", &data], "exit", 3);
    assert_eq!(code(&output), Some(3), "{output:?}");
    // A --file lock never writes into the file.
    assert_eq!(fs::read_to_string(&data).unwrap(), "kept");
    let output = sandbox
        .tool(&["--file", &data, "-c", "exit 4"], "never", 0)
        .output()
        .unwrap();
    assert_eq!(code(&output), Some(4), "cmd /C: {output:?}");
    let output = sandbox
        .tool(&["job", "--", "no-such-program-here"], "never", 0)
        .output()
        .unwrap();
    assert_eq!(code(&output), Some(127), "{output:?}");
}

#[test]
fn what_windows_lacks_is_refused_as_unix_only() {
    let sandbox = Sandbox::new("lacks");
    let folder = sandbox.path("folder");
    fs::create_dir(&folder).unwrap();
    let folder = folder.display().to_string();
    for args in [
        &["-b", "sema", "job"][..],
        &["-b", "postgres", "job"],
        &["--permits", "2", "job"],
        &["--file", &folder],
    ] {
        let output = sandbox.run(args, "never", 0);
        assert_eq!(code(&output), Some(64), "{args:?}: {output:?}");
        assert!(
            stderr(&output).contains("Unix-only") || stderr(&output).contains("needs Linux"),
            "{args:?}: {output:?}"
        );
    }
    let output = sandbox.tool(&["-n", "9"], "never", 0).output().unwrap();
    assert_eq!(code(&output), Some(64), "{output:?}");
    assert!(stderr(&output).contains("Unix-only"), "{output:?}");
    assert!(!sandbox.path("never.ran").exists());
}

#[test]
fn a_named_lock_lives_in_the_per_user_folder() {
    let sandbox = Sandbox::new("per-user");
    let mut status = sandbox.tool(&["status", "--json", "job"], "never", 0);
    status.env_remove("SIMPLELOCK_DIR");
    let local = std::env::var("LOCALAPPDATA").expect("Windows sets LOCALAPPDATA");
    let json = stdout(&status.output().unwrap());
    let expected = Path::new(&local).join("simplelock").join("job.lock");
    let expected = expected.display().to_string().replace('\\', "\\\\");
    assert!(json.contains(&expected), "{json} names {expected}");
}
