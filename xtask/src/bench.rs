//! `cargo xtask bench`: every benchmark in one run, so that our locks and the raw system calls
//! they are compared with meet the same machine in the same state, and the results written down.
//!
//! 1. criterion micro-benchmarks of the backends (uncontended lock+unlock pairs, ours and raw);
//! 2. multi-process measurements by the facade's `contention` example: handoff latency,
//!    throughput of 4 contending processes, recovery after SIGKILL of the holder;
//! 3. the results as a table in README.md (between the `bench` markers) and as a chart,
//!    docs/bench.svg, with the machine and the date.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::SystemTime;

use crate::{TaskResult, cargo, contention_example, project_root, show, step};

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
    /// `RESULT` lines of the contention example: kind → (key → value).
    multi: Vec<BTreeMap<String, String>>,
    /// The PostgreSQL measurements, the same way (see `postgres.rs`).
    postgres: Vec<BTreeMap<String, String>>,
}

pub(crate) fn main(args: &[String]) -> TaskResult {
    let mut quick = false;
    let mut only = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => quick = true,
            "--only" => only = args.next().cloned(),
            other => {
                return Err(format!(
                    "unknown bench option {other:?} (--quick, --only postgres)"
                ));
            }
        }
    }
    match only.as_deref() {
        None => {}
        Some("postgres") => return postgres::only(quick),
        Some(other) => return Err(format!("--only takes postgres, not {other:?}")),
    }
    let started = SystemTime::now();
    let exe = contention_example()?;
    let target = exe
        .ancestors()
        .nth(3)
        .ok_or("unexpected location of the contention example")?
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
    let runs: Vec<Vec<&str>> = vec![
        vec!["bench-handoff", "flock", "hang", samples],
        vec!["bench-handoff", "file", "hang", samples],
        vec!["bench-handoff", "file", "timed", samples],
        vec!["bench-handoff", "sema", "hang", samples],
        vec!["bench-handoff", "sema", "timed", samples],
        vec!["bench-handoff", "poll50", "hang", poll_samples],
        vec!["bench-throughput", "flock", "4", millis],
        vec!["bench-throughput", "file", "4", millis],
        vec!["bench-throughput", "sema", "4", millis],
        vec!["bench-recovery", "file", kills],
        vec!["bench-recovery", "sema", kills],
    ];
    for run in runs {
        let mut command = Command::new(&exe);
        command.args(&run).env("TMPDIR", LOCK_FILES);
        results.multi.extend(capture_results(command)?);
    }

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

/// Runs `command`, shows its output, and returns its `RESULT kind key=value ...` lines.
fn capture_results(mut command: Command) -> Result<Vec<BTreeMap<String, String>>, String> {
    let shown = show(&command);
    println!("\n==> {shown}");
    let output = command
        .output()
        .map_err(|e| format!("could not start `{shown}`: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    print!("{stdout}");
    eprint!("{}", String::from_utf8_lossy(&output.stderr));
    if !output.status.success() {
        return Err(format!("`{shown}` failed ({})", output.status));
    }
    let results: Vec<_> = stdout
        .lines()
        .filter_map(|line| line.strip_prefix("RESULT "))
        .map(|line| {
            let mut words = line.split_whitespace();
            let mut fields = BTreeMap::new();
            fields.insert(
                "kind".to_owned(),
                words.next().unwrap_or_default().to_owned(),
            );
            for word in words {
                if let Some((key, value)) = word.split_once('=') {
                    fields.insert(key.to_owned(), value.to_owned());
                }
            }
            fields
        })
        .collect();
    if results.is_empty() {
        return Err(format!("`{shown}` printed no RESULT line"));
    }
    Ok(results)
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
            let read = |path: &Path| {
                fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))
            };
            let estimates = read(&path)?;
            let benchmark = read(&path.with_file_name("benchmark.json"))?;
            let id = json_string(&benchmark, "full_id")
                .ok_or_else(|| format!("no full_id in {}", path.display()))?;
            let median = json_section(&estimates, "median")
                .and_then(|section| json_number(section, "point_estimate"))
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

/// The text of the object that follows `"key":` in a JSON document (up to its closing brace).
fn json_section<'a>(json: &'a str, key: &str) -> Option<&'a str> {
    let start = json.find(&format!("\"{key}\":"))?;
    let rest = &json[start..];
    let mut depth = 0;
    for (i, c) in rest.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(&rest[..=i]);
                }
            }
            _ => {}
        }
    }
    None
}

fn json_number(json: &str, key: &str) -> Option<f64> {
    let start = json.find(&format!("\"{key}\":"))? + key.len() + 3;
    let rest = json[start..].trim_start();
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E')))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

fn json_string(json: &str, key: &str) -> Option<String> {
    let start = json.find(&format!("\"{key}\":"))? + key.len() + 3;
    let rest = json[start..].trim_start().strip_prefix('"')?;
    Some(rest[..rest.find('"')?].to_owned())
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
    let date = output("date", &["-u", "+%Y-%m-%d"]);
    let rustc = output("rustc", &["--version"]);
    format!(
        "{date}, {model}, {cores} cores, {memory}, Linux {}, {rustc}",
        kernel.trim()
    )
}

mod postgres;
mod report;
