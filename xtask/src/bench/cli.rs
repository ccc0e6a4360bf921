//! The command-line tool against util-linux `flock(1)`, whole processes: `simplelock NAME --
//! true` and `flock FILE true` started one after the other, a few hundred calls in a row, in
//! alternating rounds (so that both meet the machine in the same state), the median round
//! per call of each. `flock` locks a file in the benchmarks' tmpfs folder, `simplelock` a lock
//! of that name in its default lock folder (`/run/lock/simplelock-UID`, a tmpfs on most
//! systems), as a user would call them, built as shipped (`--profile dist`, linked statically on glibc: see `Linking::Shipped`). Skipped, with a note, where `flock` is not installed.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::{Linking, optimized_program};

/// What was measured: nanoseconds per call, median over the rounds; wall-clock time, and the
/// processor time of the calls (user and system, theirs and their children's), which a shared
/// machine disturbs less.
#[derive(Debug, Clone, Default)]
pub(crate) struct Measured {
    pub(crate) ours_ns: f64,
    pub(crate) flock_ns: f64,
    pub(crate) ours_cpu_ns: f64,
    pub(crate) flock_cpu_ns: f64,
    pub(crate) calls: u32,
    pub(crate) rounds: u32,
}

/// Builds the tool and measures it against `flock`; `None` without `flock(1)`.
pub(crate) fn run(quick: bool, scratch: &Path) -> Result<Option<Measured>, String> {
    if Command::new("flock").arg("--version").output().is_err() {
        println!("bench: no flock(1) here, the command-line tool is not measured");
        return Ok(None);
    }
    // The tool as shipped: the `dist` profile (see Cargo.toml), linked statically on glibc.
    let ours = optimized_program(
        "dist",
        "simplelock",
        "simplelock",
        &["cli"],
        Linking::Shipped,
    )?;
    let (calls, rounds) = if quick { (100, 3) } else { (300, 7) };
    let dir = scratch.join(format!("simplelock-bench-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let file = dir.join("flock.lock");
    let name = format!("bench-cli-{}", std::process::id());
    let tick_ns = 1e9 / clock_ticks_per_second();
    let per_call = |program: &Path, args: &[&std::ffi::OsStr]| -> Result<(f64, f64), String> {
        let cpu_before = children_cpu_ticks()?;
        let started = Instant::now();
        for _ in 0..calls {
            let status = Command::new(program)
                .args(args)
                .stdin(Stdio::null())
                .status()
                .map_err(|e| format!("starting {}: {e}", program.display()))?;
            if !status.success() {
                return Err(format!("{} {args:?} failed ({status})", program.display()));
            }
        }
        let wall = started.elapsed().as_nanos() as f64;
        let cpu = (children_cpu_ticks()? - cpu_before) as f64 * tick_ns;
        Ok((wall / f64::from(calls), cpu / f64::from(calls)))
    };
    let (mut theirs, mut ours_ns) = (Vec::new(), Vec::new());
    let (mut theirs_cpu, mut ours_cpu) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let (wall, cpu) = per_call(Path::new("flock"), &[file.as_os_str(), "true".as_ref()])?;
        theirs.push(wall);
        theirs_cpu.push(cpu);
        let (wall, cpu) = per_call(&ours, &[name.as_ref(), "--".as_ref(), "true".as_ref()])?;
        ours_ns.push(wall);
        ours_cpu.push(cpu);
    }
    let _ = std::fs::remove_dir_all(&dir);
    // The lock file the tool made in its lock folder, where `status` says it is.
    let status = Command::new(&ours)
        .args(["status", "--json", &name])
        .output()
        .map_err(|e| format!("asking {} for the lock file: {e}", ours.display()))?;
    let location = serde_json::from_slice::<serde_json::Value>(&status.stdout)
        .ok()
        .and_then(|status| status["location"].as_str().map(str::to_owned));
    if let Some(location) = location {
        let _ = std::fs::remove_file(location);
    }
    let median = |mut values: Vec<f64>| {
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    Ok(Some(Measured {
        ours_ns: median(ours_ns),
        flock_ns: median(theirs),
        ours_cpu_ns: median(ours_cpu),
        flock_cpu_ns: median(theirs_cpu),
        calls,
        rounds,
    }))
}

/// The processor time of this process's waited-for children so far, user and system, in clock
/// ticks: fields 16 and 17 of `/proc/self/stat` (the calls' own children, `true`, count too:
/// each call waits for its command).
fn children_cpu_ticks() -> Result<u64, String> {
    let stat = std::fs::read_to_string("/proc/self/stat")
        .map_err(|e| format!("reading /proc/self/stat: {e}"))?;
    // The fields after the command name, which is in parentheses: field 3 comes first.
    let after = stat
        .rsplit_once(')')
        .map(|(_, after)| after)
        .ok_or("no command name in /proc/self/stat")?;
    let field = |number: usize| -> Result<u64, String> {
        after
            .split_whitespace()
            .nth(number - 3)
            .and_then(|value| value.parse().ok())
            .ok_or_else(|| format!("no field {number} in /proc/self/stat"))
    };
    Ok(field(16)? + field(17)?)
}

/// `getconf CLK_TCK`: the unit of [`children_cpu_ticks`] (100 on almost every Linux system, the
/// fallback).
fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8_lossy(&out.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}
