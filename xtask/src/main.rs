//! Automation of the simplelock workspace, run as `cargo xtask <task>`.
//!
//! - `ci`: formatting, clippy, the tests of every feature combination of the facade, doc-tests,
//!   docs and a short stress run, stopping at the first failure.
//! - `stress`: many processes hammering one lock, and holders killed inside it (see `stress.rs`).
//! - `bench`: every benchmark in one run, written into README.md and docs/bench.svg.
//!
//! Each task prints every command before it runs it.
#![forbid(unsafe_code)]

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

mod bench;
mod ci;
mod pg;
mod stress;

/// What went wrong in a task, said in one line.
type TaskResult = Result<(), String>;

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci::main(&args[1..]),
        Some("stress") => stress::main(&args[1..]),
        Some("bench") => bench::main(&args[1..]),
        Some("help" | "--help" | "-h") | None => {
            print!("{USAGE}");
            Ok(())
        }
        Some(other) => Err(format!("unknown task {other:?}\n\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

const USAGE: &str = "\
usage: cargo xtask <task>

tasks:
  ci        fmt, clippy, tests of every feature combination, doc-tests, docs and a short
            stress run (what CI runs)
  stress    multi-process counter run and kill storm; options (all optional):
              --backend file|sema|flock|none|all  --procs N  --iterations N  --kills N
              --duration SECS  --hold-us N  --mode hang|try|timed|mix  --quick (CI's size)
  bench     criterion and multi-process benchmarks, written into README.md and docs/bench.svg;
              --quick for a shorter, noisier run; --only postgres for the PostgreSQL part
              alone (into its README section)
";

/// The workspace root.
fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one folder below the workspace root")
        .to_path_buf()
}

/// `cargo` with the given arguments, run from the workspace root.
fn cargo(args: &[&str]) -> Command {
    let mut command = Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    command.args(args).current_dir(project_root());
    command
}

/// Builds the facade's `contention` example (demo, stress harness and benchmark peers) in release
/// mode with every backend, and returns the path of the program.
fn contention_example() -> Result<PathBuf, String> {
    let args = [
        "build",
        "--release",
        "-p",
        "simplelock",
        "--example",
        "contention",
        "--features",
        "file,sema",
        "--message-format=json-render-diagnostics",
    ];
    let mut command = cargo(&args);
    command.stderr(Stdio::inherit());
    let shown = show(&command);
    println!("\n==> {shown}");
    let output = command
        .output()
        .map_err(|e| format!("could not start `{shown}`: {e}"))?;
    if !output.status.success() {
        return Err(format!("`{shown}` failed ({})", output.status));
    }
    // cargo prints one JSON object per line; the example's names its executable.
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find(|line| line.contains(r#""name":"contention""#) && line.contains(r#""executable":""#))
        .ok_or("cargo did not report the contention executable")?;
    let start = line.find(r#""executable":""#).unwrap() + r#""executable":""#.len();
    let end = line[start..]
        .find('"')
        .ok_or("cargo reported a malformed executable path")?;
    Ok(PathBuf::from(&line[start..start + end]))
}

/// Prints the command, runs it, and fails unless it succeeds.
fn step(mut command: Command) -> TaskResult {
    let shown = show(&command);
    println!("\n==> {shown}");
    let start = Instant::now();
    let status = command
        .status()
        .map_err(|e| format!("could not start `{shown}`: {e}"))?;
    if status.success() {
        println!("<== ok in {:.1}s", start.elapsed().as_secs_f64());
        Ok(())
    } else {
        Err(format!("`{shown}` failed ({status})"))
    }
}

/// The command as a person would type it, environment first.
fn show(command: &Command) -> String {
    let envs = command.get_envs().filter_map(|(key, value)| {
        value.map(|value| format!("{}={}", key.to_string_lossy(), value.to_string_lossy()))
    });
    let program = Path::new(command.get_program())
        .file_name()
        .map_or_else(
            || command.get_program().to_string_lossy(),
            |name| name.to_string_lossy(),
        )
        .into_owned();
    let args = command
        .get_args()
        .map(|arg| arg.to_string_lossy().into_owned());
    envs.chain([program])
        .chain(args)
        .collect::<Vec<_>>()
        .join(" ")
}
