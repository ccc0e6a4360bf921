//! `cargo xtask bench`: every benchmark in one run, so that our locks and the raw system calls
//! they are compared with meet the same machine in the same state, and the results written down.
//!
//! 1. criterion micro-benchmarks of the backends (uncontended lock+unlock pairs, ours and raw);
//! 2. multi-process measurements by `simplelock-harness`: handoff latency (blocking, timed and
//!    async waiters), throughput of 4 contending processes, recovery after SIGKILL of the
//!    holder, a ticker's largest gap on a current-thread runtime while 1,000 of its tasks wait
//!    for a lock, each read from the one JSON result the harness prints (see `results.rs`);
//! 3. the command-line tool against `flock(1)`, whole processes (`cli.rs`);
//! 4. the results as a table in README.md (between the `bench` markers) and as a chart,
//!    docs/bench.svg, with the machine and the date.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::SystemTime;

use crate::{TaskResult, cargo, harness_program, project_root, show, step};
use results::BenchResult;

/// Where the benchmarks put their lock files: tmpfs, like the default lock folder
/// `$XDG_RUNTIME_DIR/simplelock` of most Linux systems. (On a journaling file system the holder
/// record's writes cost more; see the costs in simplelock-file's docs.)
const LOCK_FILES: &str = "/dev/shm";

/// The crates with a criterion benchmark called `uncontended`.
const CRITERION_CRATES: &[&str] = &["simplelock-file", "simplelock-sema"];

/// What one run measured, keyed by name; nanoseconds unless the name says otherwise.
#[derive(Debug, Default)]
struct Results {
    /// criterion `full_id` → median ns per iteration.
    criterion: BTreeMap<String, f64>,
    /// The harness's measurements.
    multi: Vec<BenchResult>,
    /// The PostgreSQL measurements (see `postgres.rs`).
    postgres: postgres::Measured,
    /// The command-line tool against `flock(1)` (see `cli.rs`), where `flock` is installed.
    cli: Option<cli::Measured>,
}

/// A part of the benchmarks that `--only` runs alone.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub(crate) enum Part {
    /// The PostgreSQL measurements (needs a server: see `pg.rs`), into their README section
    Postgres,
    /// The command-line tool against flock(1), printed only (the README keeps its numbers)
    Cli,
    /// The handoff latencies (every lock and wait), printed only
    Handoff,
    /// The recovery after a SIGKILLed holder (every lock and wait), printed only
    Recovery,
}

pub(crate) fn main(quick: bool, only: Option<Part>) -> TaskResult {
    match only {
        Some(Part::Postgres) => return postgres::only(quick),
        Some(Part::Cli) => {
            let measured = cli::run(quick, Path::new(LOCK_FILES))?
                .ok_or("flock(1) is not installed: nothing to compare with")?;
            println!(
                "bench: simplelock NAME -- true {} per call, flock FILE true {}: {:.2}x \
                 (processor time {} and {}: {:.2}x)",
                report::duration(measured.ours_ns),
                report::duration(measured.flock_ns),
                measured.ours_ns / measured.flock_ns,
                report::duration(measured.ours_cpu_ns),
                report::duration(measured.flock_cpu_ns),
                measured.ours_cpu_ns / measured.flock_cpu_ns
            );
            return Ok(());
        }
        Some(Part::Handoff) => {
            let runs = handoff_runs(
                if quick { "100" } else { "500" },
                if quick { "10" } else { "40" },
            );
            let results = multi_only(&runs)?;
            println!(
                "\n{}",
                report::Report::new(&results, machine()).handoff_markdown()
            );
            return Ok(());
        }
        Some(Part::Recovery) => {
            let results = multi_only(&recovery_runs(if quick { "10" } else { "50" }))?;
            println!(
                "\n{}",
                report::Report::new(&results, machine()).recovery_markdown()
            );
            return Ok(());
        }
        None => {}
    }
    let started = SystemTime::now();
    let exe = harness_program()?;
    // target/release/simplelock-harness
    let target = exe
        .ancestors()
        .nth(2)
        .ok_or("unexpected location of the harness program")?
        .to_path_buf();

    for krate in CRITERION_CRATES {
        let mut command = cargo(&["bench", "-p", krate, "--bench", "uncontended", "--"]);
        command.env("TMPDIR", LOCK_FILES);
        if quick {
            command.args(["--warm-up-time", "1", "--measurement-time", "2"]);
        }
        step(command)?;
    }
    let mut results = Results {
        criterion: read_criterion(&target.join("criterion"), started)?,
        ..Results::default()
    };

    let samples = if quick { "100" } else { "500" };
    let poll_samples = if quick { "10" } else { "40" };
    let millis = if quick { "500" } else { "2000" };
    let kills = if quick { "10" } else { "50" };
    let ticker_millis = if quick { "1000" } else { "3000" };
    let mut runs = handoff_runs(samples, poll_samples);
    runs.extend([
        vec!["bench-throughput", "flock", "4", millis],
        vec!["bench-throughput", "file", "4", millis],
        vec!["bench-throughput", "sema", "4", millis],
    ]);
    runs.extend(recovery_runs(kills));
    runs.extend([
        vec!["bench-ticker", "file", "1000", ticker_millis],
        vec!["bench-ticker", "sema", "1000", ticker_millis],
    ]);
    results.multi = multi_only(&runs)?.multi;

    results.cli = cli::run(quick, Path::new(LOCK_FILES))?;
    results.postgres = postgres::run(quick)?;

    let report = report::Report::new(&results, machine());
    println!("\n{}", report.markdown());
    let readme = project_root().join("README.md");
    replace_between_markers(&readme, &report.markdown())?;
    let svg = project_root().join("docs").join("bench.svg");
    fs::create_dir_all(svg.parent().unwrap()).map_err(|e| format!("creating docs/: {e}"))?;
    fs::write(&svg, report.svg()).map_err(|e| format!("writing {}: {e}", svg.display()))?;
    println!(
        "bench: wrote the results into README.md and {}",
        svg.display()
    );
    Ok(())
}

/// The harness's handoff measurements: `samples` handoffs each (`poll_samples` for the 50 ms
/// polling lock).
fn handoff_runs<'a>(samples: &'a str, poll_samples: &'a str) -> Vec<Vec<&'a str>> {
    vec![
        vec!["bench-handoff", "flock", "hang", samples],
        vec!["bench-handoff", "file", "hang", samples],
        vec!["bench-handoff", "file", "timed", samples],
        vec!["bench-handoff", "sema", "hang", samples],
        vec!["bench-handoff", "sema", "timed", samples],
        vec!["bench-handoff", "file", "async", samples],
        vec!["bench-handoff", "sema", "async", samples],
        vec!["bench-handoff", "file-permits", "hang", samples],
        vec!["bench-handoff", "file-permits", "timed", samples],
        vec!["bench-handoff", "sema-permits", "hang", samples],
        vec!["bench-handoff", "sema-permits", "timed", samples],
        vec!["bench-handoff", "poll50", "hang", poll_samples],
    ]
}

/// The harness's recovery measurements, `kills` holders killed each: the locks waited for
/// blocking and async, and the sema backend's permits.
fn recovery_runs(kills: &str) -> Vec<Vec<&str>> {
    vec![
        vec!["bench-recovery", "file", kills],
        vec!["bench-recovery", "sema", kills],
        vec!["bench-recovery", "sema", kills, "--wait", "async"],
        vec!["bench-recovery", "sema-permits", kills],
    ]
}

/// Runs the harness's measurements `runs`.
fn multi_only(runs: &[Vec<&str>]) -> Result<Results, String> {
    let exe = harness_program()?;
    let mut results = Results::default();
    for run in runs {
        let mut command = Command::new(&exe);
        command.args(run).env("TMPDIR", LOCK_FILES);
        results.multi.push(capture_result(command)?);
    }
    Ok(results)
}

/// Runs `command`, shows its output, and returns the one result it printed as JSON.
fn capture_result(mut command: Command) -> Result<BenchResult, String> {
    let (shown, stdout, stderr) = run_shown(&mut command)?;
    eprint!("{stderr}");
    results::parse_bench(&stdout).map_err(|e| format!("`{shown}`: {e}"))
}

/// Shows `command`, runs it and prints its standard output: the command as shown, its standard
/// output and its standard error. If it fails, prints its standard error too and says so.
fn run_shown(command: &mut Command) -> Result<(String, String, String), String> {
    let shown = show(command);
    println!("\n==> {shown}");
    let output = command
        .output()
        .map_err(|e| format!("could not start `{shown}`: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    print!("{stdout}");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    if !output.status.success() {
        eprint!("{stderr}");
        return Err(format!("`{shown}` failed ({})", output.status));
    }
    Ok((shown, stdout, stderr))
}

/// The median of every criterion benchmark measured since `since`, by its full id.
fn read_criterion(dir: &Path, since: SystemTime) -> Result<BTreeMap<String, f64>, String> {
    let mut found = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.file_name().is_none_or(|n| n != "estimates.json")
                || path
                    .parent()
                    .and_then(Path::file_name)
                    .is_none_or(|n| n != "new")
            {
                continue;
            }
            let fresh = fs::metadata(&path)
                .and_then(|m| m.modified())
                .is_ok_and(|modified| modified >= since);
            if !fresh {
                continue;
            }
            let read = |path: &Path| -> Result<serde_json::Value, String> {
                let text = fs::read_to_string(path)
                    .map_err(|e| format!("reading {}: {e}", path.display()))?;
                serde_json::from_str(&text).map_err(|e| format!("parsing {}: {e}", path.display()))
            };
            let estimates = read(&path)?;
            let benchmark = read(&path.with_file_name("benchmark.json"))?;
            let id = benchmark["full_id"]
                .as_str()
                .ok_or_else(|| format!("no full_id in {}", path.display()))?
                .to_owned();
            let median = estimates["median"]["point_estimate"]
                .as_f64()
                .ok_or_else(|| format!("no median in {}", path.display()))?;
            found.insert(id, median);
        }
    }
    if found.is_empty() {
        return Err(format!(
            "no fresh criterion results under {}",
            dir.display()
        ));
    }
    Ok(found)
}

/// Replaces what stands between `<!-- bench:begin -->` and `<!-- bench:end -->` in `path`.
fn replace_between_markers(path: &Path, content: &str) -> TaskResult {
    const BEGIN: &str = "<!-- bench:begin -->";
    const END: &str = "<!-- bench:end -->";
    let text = fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let (Some(begin), Some(end)) = (text.find(BEGIN), text.find(END)) else {
        return Err(format!(
            "{} lacks the {BEGIN} / {END} markers",
            path.display()
        ));
    };
    let updated = format!("{}{BEGIN}\n{content}\n{}", &text[..begin], &text[end..]);
    fs::write(path, updated).map_err(|e| format!("writing {}: {e}", path.display()))
}

/// Today's date in UTC, `YYYY-MM-DD`.
fn today() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%d").to_string()
}

/// One line about the machine the numbers come from.
fn machine() -> String {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name"))
        .and_then(|rest| rest.split_once(':'))
        .map_or("unknown CPU", |(_, model)| model.trim())
        .to_owned();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let memory = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            let kb: u64 = info
                .lines()
                .next()?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            Some(format!("{} GiB", kb / 1024 / 1024))
        })
        .unwrap_or_else(|| "? GiB".into());
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let output = |program: &str, args: &[&str]| {
        Command::new(program)
            .args(args)
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default()
    };
    let date = today();
    let rustc = output("rustc", &["--version"]);
    format!(
        "{date}, {model}, {cores} cores, {memory}, Linux {}, {rustc}",
        kernel.trim()
    )
}

mod cli;
mod postgres;
mod report;
pub(crate) mod results;

#[cfg(test)]
mod tests {
    use std::time::{SystemTime, UNIX_EPOCH};

    /// The report's date is today's in UTC: days since the epoch, written as a calendar date.
    #[test]
    fn the_date_is_todays_in_utc() {
        let before = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
            / 86_400;
        let date = super::today();
        let after = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
            / 86_400;
        let parsed: jiff::civil::Date = date.parse().unwrap();
        let days = parsed
            .since(jiff::civil::date(1970, 1, 1))
            .unwrap()
            .get_days();
        let days = u64::try_from(days).unwrap();
        assert!(
            days == before || days == after,
            "{date}: day {days}, not {before}"
        );
        assert_eq!(date.len(), "2026-11-27".len(), "{date}");
    }
}
