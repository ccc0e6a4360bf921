//! The command line of `simplelock-harness`, with clap: what a person (or xtask) runs, and the
//! roles this program plays when it re-runs itself as a child process.

use std::io;
use std::os::fd::AsFd;
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::worker::Job;
use crate::{adversary, bench, sema_adversary, stress, worker};

/// The multi-process harness of simplelock: stress runs and measurements with real processes.
#[derive(Debug, Parser)]
#[command(name = "simplelock-harness")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The counter run, the kill storm and the adversaries, judged (`cargo xtask stress`)
    Stress(stress::Stress),
    /// Handoff latency between two processes; prints one JSON result
    BenchHandoff(bench::HandoffArgs),
    /// Acquisitions per second of contending processes; prints one JSON result
    BenchThroughput(bench::ThroughputArgs),
    /// Recovery after SIGKILL of the holder; prints one JSON result
    BenchRecovery(bench::RecoveryArgs),
    #[command(flatten)]
    Role(Role),
}

/// What this program does when it re-runs itself (the first argument names the role). Hidden:
/// only the harness starts them.
#[derive(Debug, Subcommand)]
pub(crate) enum Role {
    /// A worker of the counter run and the kill storm
    #[command(hide = true)]
    Worker(Job),
    /// One side of `bench-handoff`
    #[command(hide = true)]
    HandoffPeer(bench::HandoffPeer),
    /// One process of `bench-throughput`
    #[command(hide = true)]
    ThroughputPeer(bench::ThroughputPeer),
    /// The file backend's adversary
    #[command(hide = true)]
    Replacer(adversary::Replacer),
    /// A worker of the sema adversary's storm
    #[command(hide = true)]
    SemaAdversaryWorker(sema_adversary::WorkerArgs),
    /// The sema adversary's other user
    #[command(hide = true)]
    SemaAdversaryUser(sema_adversary::UserArgs),
}

impl Role {
    /// Its name as the first argument.
    const NAMES: &[&str] = &[
        "worker",
        "handoff-peer",
        "throughput-peer",
        "replacer",
        "sema-adversary-worker",
        "sema-adversary-user",
    ];

    fn play(&self) -> Result<(), String> {
        match self {
            Role::Worker(job) => worker::run(job),
            Role::HandoffPeer(args) => bench::handoff_peer(args),
            Role::ThroughputPeer(args) => bench::throughput_peer(args),
            Role::Replacer(args) => adversary::replacer(args),
            Role::SemaAdversaryWorker(args) => sema_adversary::worker(args),
            Role::SemaAdversaryUser(args) => sema_adversary::user(args),
        }
    }
}

/// The roles alone, for a program (the `contention` demo) that is not the harness.
#[derive(Debug, Parser)]
#[command(name = "simplelock-harness child")]
struct ChildCli {
    #[command(subcommand)]
    role: Role,
}

/// The harness's `main`.
pub fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Stress(stress) => stress.run(),
        Command::BenchHandoff(args) => bench::handoff(&args),
        Command::BenchThroughput(args) => bench::throughput(&args),
        Command::BenchRecovery(args) => bench::recovery(&args),
        Command::Role(role) => role.play(),
    };
    exit(result)
}

/// If this process was started as one of the harness's child roles (its first argument names
/// one), plays it and returns the exit code; `None` otherwise.
///
/// A program that runs [`counter_run`](crate::counter_run) or [`kill_storm`](crate::kill_storm)
/// calls this first in its `main`: their workers are that program, re-run.
pub fn play_role_if_child() -> Option<ExitCode> {
    let first = std::env::args().nth(1)?;
    if !Role::NAMES.contains(&first.as_str()) {
        return None;
    }
    Some(exit(ChildCli::parse().role.play()))
}

fn exit(result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("simplelock-harness: {message}");
            ExitCode::FAILURE
        }
    }
}

/// A duration given in microseconds.
pub(crate) fn micros(text: &str) -> Result<Duration, String> {
    text.parse()
        .map(Duration::from_micros)
        .map_err(|e| format!("{text:?}: {e}"))
}

/// Standard error, as a child's standard output: a measurement's standard output carries only
/// its JSON result.
pub(crate) fn to_stderr() -> Result<Stdio, String> {
    io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .map(Stdio::from)
        .map_err(|e| format!("duplicating standard error: {e}"))
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
        ChildCli::command().debug_assert();
    }

    /// Every role the harness spawns by name is one clap knows, and the other way round.
    #[test]
    fn role_names_are_the_subcommands() {
        let known: Vec<String> = ChildCli::command()
            .get_subcommands()
            .map(|c| c.get_name().to_owned())
            .collect();
        assert_eq!(known, Role::NAMES);
    }

    #[test]
    fn a_worker_job_round_trips_through_its_arguments() {
        let job = Job {
            backend: "sema".into(),
            dir: "/tmp/x".into(),
            name: "n".into(),
            index: 3,
            iterations: 7,
            hold: Duration::from_micros(300),
            mode: crate::Mode::Timed,
        };
        let args = std::iter::once("child".to_owned()).chain(job.to_args());
        let ChildCli {
            role: Role::Worker(parsed),
        } = ChildCli::try_parse_from(args).unwrap()
        else {
            panic!("not a worker");
        };
        assert_eq!(format!("{parsed:?}"), format!("{job:?}"));
    }

    #[test]
    fn stress_options_parse_as_xtask_passes_them() {
        let cli = Cli::try_parse_from([
            "h",
            "stress",
            "--iterations",
            "2000",
            "--kills",
            "25",
            "--mode",
            "hang",
            "--hold-us",
            "10",
            "--json",
            "/tmp/s.json",
        ])
        .unwrap();
        assert!(matches!(cli.command, Command::Stress(_)), "{cli:?}");
        assert!(Cli::try_parse_from(["h", "stress", "--procs", "0"]).is_err());
        assert!(Cli::try_parse_from(["h", "bench-handoff", "sema", "sideways", "5"]).is_err());
    }
}
