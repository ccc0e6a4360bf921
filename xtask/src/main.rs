//! Automation of the simplelock workspace, run as `cargo xtask <task>`.
//!
//! - `ci`: formatting, clippy, the tests of every feature combination of the facade, doc-tests,
//!   docs and a short stress run, stopping at the first failure.
//! - `stress`: many processes hammering one lock, and holders killed inside it (see `stress.rs`).
//! - `bench`: every benchmark in one run, written into README.md and docs/bench.svg.
//! - `windows`: the Windows build's tests, cross-compiled and run under Wine (see `cross.rs`).
//!
//! Each task prints every command before it runs it. Well-kept crates do the parsing: `clap`
//! the command line, `cargo_metadata` cargo's manifests and JSON messages, `serde_json`
//! criterion's results and the multi-process harness's (`simplelock-harness`, which does the
//! work of `stress` and the multi-process part of `bench`), `jiff` the date.
#![forbid(unsafe_code)]

use std::env;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use cargo_metadata::Message;
use clap::{CommandFactory, Parser, Subcommand};

mod bench;
mod ci;
mod cross;
mod pg;
mod stress;
mod unsafe_budget;

/// What went wrong in a task, said in one line.
type TaskResult = Result<(), String>;

/// Automation of the simplelock workspace.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    task: Option<Task>,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// What CI runs: fmt, clippy, tests of every feature combination, doc-tests, docs and a
    /// short stress run
    Ci,
    /// Multi-process counter run and kill storm, for any backend
    ///
    /// Runs `simplelock-harness stress`, built in release mode, with the options given (all
    /// optional): --backend file|sema|flock|none|all, --procs N, --iterations N, --kills N,
    /// --duration SECS, --hold-us N, --mode hang|try|timed|mix; --quick stands for CI's size.
    Stress {
        /// Options for `simplelock-harness stress`, and --quick
        #[arg(allow_hyphen_values = true, trailing_var_arg = true)]
        options: Vec<String>,
    },
    /// Criterion and multi-process benchmarks, written into README.md and docs/bench.svg
    ///
    /// Takes minutes, and wants an otherwise idle machine.
    Bench {
        /// A shorter, noisier run
        #[arg(long)]
        quick: bool,
        /// One part alone (each says whether it writes into the README)
        #[arg(long, value_enum)]
        only: Option<bench::Part>,
    },
    /// The Windows build's tests, cross-compiled to x86_64-pc-windows-gnu and run under Wine
    ///
    /// Needs wine (Debian: wine64), x86_64-w64-mingw32-gcc (gcc-mingw-w64-x86-64) and
    /// `rustup target add x86_64-pc-windows-gnu`; .ci/run installs them.
    Windows,
    /// `cargo check` for macOS (arm64, x86_64) and FreeBSD, warnings denied
    CheckTargets,
    /// Count the library code's `unsafe` blocks per platform against the budget (part of `ci`)
    UnsafeBudget,
}

fn main() -> ExitCode {
    let result = match Cli::parse().task {
        Some(Task::Ci) => ci::main(),
        Some(Task::Stress { options }) => stress::main(&options),
        Some(Task::Bench { quick, only }) => bench::main(quick, only),
        Some(Task::Windows) => cross::windows(),
        Some(Task::CheckTargets) => cross::check_other_targets(),
        Some(Task::UnsafeBudget) => unsafe_budget::check(),
        None => Cli::command()
            .print_help()
            .map_err(|e| format!("printing the help: {e}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

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

/// The multi-process harness's package and program (stress runs and benchmark peers).
const HARNESS: &str = "simplelock-harness";

/// Builds `simplelock-harness` in release mode and returns the path of the program.
fn harness_program() -> Result<PathBuf, String> {
    optimized_program("release", HARNESS, HARNESS, &[], Linking::Default)
}

/// How [`optimized_program`] links the program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Linking {
    /// As cargo does by default (dynamically, on glibc).
    Default,
    /// The command-line tool as shipped (README.md, "The command line"): on glibc Linux, linked
    /// statically (`-C target-feature=+crt-static`, a static-pie), which spares every call the
    /// dynamic loader (mapping `libc` and `libgcc_s`, resolving symbols): about a sixth of a
    /// call of `simplelock NAME -- true`. Built for the host's target named explicitly, so that
    /// the flag reaches the program and its libraries but not build scripts and proc-macros,
    /// which must stay dynamic. Elsewhere the same as `Default`.
    Shipped,
}

/// `RUSTFLAGS` and `--target` of the shipped tool's static build: the host's triple from
/// `rustc -vV` when it is glibc Linux, else `None`.
fn static_host() -> Option<String> {
    let output = Command::new(env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
        .arg("-vV")
        .output()
        .ok()?;
    let host = String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|line| line.strip_prefix("host: ").map(str::to_owned))?;
    host.ends_with("-linux-gnu").then_some(host)
}

/// Builds the program `bin` of `package` with the optimized `profile` (`release`, or `dist`:
/// the command-line tool as shipped, see Cargo.toml) and `features`, linked as `linking` says,
/// and returns its path.
fn optimized_program(
    profile: &str,
    package: &str,
    bin: &str,
    features: &[&str],
    linking: Linking,
) -> Result<PathBuf, String> {
    let features = features.join(",");
    let mut args = vec![
        "build",
        "--profile",
        profile,
        "-p",
        package,
        "--bin",
        bin,
        "--message-format=json-render-diagnostics",
    ];
    if !features.is_empty() {
        args.extend(["--features", &features]);
    }
    let host = static_host().filter(|_| linking == Linking::Shipped);
    if let Some(host) = &host {
        args.extend(["--target", host]);
    }
    let mut command = cargo(&args);
    if host.is_some() {
        // What the README's install line sets; the encoded form would take precedence over it.
        command
            .env("RUSTFLAGS", "-C target-feature=+crt-static")
            .env_remove("CARGO_ENCODED_RUSTFLAGS");
    }
    command.stderr(Stdio::inherit());
    let shown = show(&command);
    println!("\n==> {shown}");
    let output = command
        .output()
        .map_err(|e| format!("could not start `{shown}`: {e}"))?;
    if !output.status.success() {
        return Err(format!("`{shown}` failed ({})", output.status));
    }
    // cargo prints one JSON message per line; the program's artifact names its executable.
    Message::parse_stream(BufReader::new(output.stdout.as_slice()))
        .filter_map(Result::ok)
        .find_map(|message| match message {
            Message::CompilerArtifact(artifact) if artifact.target.name == bin => {
                artifact.executable.map(PathBuf::from)
            }
            _ => None,
        })
        .ok_or_else(|| format!("cargo did not report the {bin} executable"))
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
