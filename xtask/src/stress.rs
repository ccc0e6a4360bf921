//! `cargo xtask stress`: the multi-process counter run and the kill storm, for any backend;
//! for the file backend also a kill storm while another process deletes and re-creates the lock
//! file (the `replacer` adversary of the example's `adversary.rs`).
//!
//! The work is done by the `contention` example of the facade (its `stress` mode), built in
//! release mode with both backends; this task builds it and passes the options through.

use std::process::Command;

use crate::{TaskResult, contention_example, step};

/// What `--quick` stands for: the short run CI does.
const QUICK: &[&str] = &["--iterations", "2000", "--kills", "25"];

pub(crate) fn main(args: &[String]) -> TaskResult {
    let mut pass: Vec<String> = Vec::new();
    for arg in args {
        if arg == "--quick" {
            pass.extend(QUICK.iter().map(|s| s.to_string()));
        } else {
            pass.push(arg.clone());
        }
    }
    let exe = contention_example()?;
    let mut command = Command::new(exe);
    command.arg("stress").args(pass);
    step(command)
}
