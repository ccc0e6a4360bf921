//! `simplelock -b postgres` against the real server: the command gets the fencing token (and
//! `SIMPLELOCK_PREVIOUS_HOLDER`, `unknown`: the server keeps no record of how a holder let go),
//! a second run is refused while the first holds the lock, `status` (and `status --json`) names
//! the remote holder, and
//! the server is named by `--url` or `$SIMPLELOCK_POSTGRES_URL`.
#![cfg(all(feature = "cli", unix))]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_simplelock");

/// The test server, as simplelock-postgres's tests find it.
fn url() -> String {
    std::env::var("SIMPLELOCK_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://127.0.0.1:5432/test".to_owned())
}

fn simplelock(args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args).env_remove("SIMPLELOCK_POSTGRES_URL");
    cmd
}

#[test]
fn postgres_backend_runs_the_command_with_a_token_and_excludes_others() {
    let name = format!("cli-test-{}", std::process::id());
    let url = url();
    let mut first = simplelock(&[
        "-b",
        "postgres",
        "--url",
        &url,
        &name,
        "--",
        "sh",
        "-c",
        "echo token=$SIMPLELOCK_FENCING_TOKEN previous=$SIMPLELOCK_PREVIOUS_HOLDER; read _ || true",
    ])
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    let mut line = String::new();
    BufReader::new(first.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    let (token, previous) = line.trim().split_once(' ').unwrap_or((line.trim(), ""));
    assert_eq!(previous, "previous=unknown", "{line:?}");
    let token: u64 = token
        .strip_prefix("token=")
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("no fencing token in the command's environment: {line:?}"));
    assert!(token > 0);

    // The URL from the environment this time.
    let busy = simplelock(&["-b", "postgres", "-n", &name, "--", "true"])
        .env("SIMPLELOCK_POSTGRES_URL", &url)
        .output()
        .unwrap();
    assert_eq!(busy.status.code(), Some(1), "{busy:?}");
    let status = simplelock(&["status", "-b", "postgres", "--url", &url, &name])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.contains(&format!("held by pid {}", first.id())) && text.contains("(simplelock) on "),
        "{text}"
    );
    let json = simplelock(&["status", "--json", "-b", "postgres", "--url", &url, &name])
        .output()
        .unwrap();
    let json = String::from_utf8_lossy(&json.stdout);
    for field in [
        r#""backend":"postgres""#.to_owned(),
        r#""held":true"#.to_owned(),
        format!(r#""pid":{}"#, first.id()),
        r#""program":"simplelock""#.to_owned(),
        r#""host":""#.to_owned(),
    ] {
        assert!(json.contains(&field), "{field} missing in {json}");
    }

    drop(first.stdin.take());
    assert!(first.wait().unwrap().success());
    let next = simplelock(&[
        "-b",
        "postgres",
        "--url",
        &url,
        "-n",
        &name,
        "--",
        "sh",
        "-c",
        "echo $SIMPLELOCK_FENCING_TOKEN",
    ])
    .output()
    .unwrap();
    let next: u64 = String::from_utf8_lossy(&next.stdout)
        .trim()
        .parse()
        .unwrap();
    assert!(next > token, "token {next} after {token}");
}

#[test]
fn postgres_backend_errors_are_clear() {
    let out = simplelock(&[
        "-b",
        "postgres",
        "--url",
        "postgres://127.0.0.1:1/x",
        "-n",
        "job",
        "--",
        "true",
    ])
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(70));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot reach the server") && err.contains("127.0.0.1:1"),
        "{err}"
    );
    let out = simplelock(&["--url", "postgres://x", "job", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let out = simplelock(&[
        "-b",
        "postgres",
        "--url",
        "postgres://u:pw@h:notaport/x",
        "job",
        "--",
        "true",
    ])
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(!String::from_utf8_lossy(&out.stderr).contains(":pw@"));
}

/// `--permits 3` on the server: six commands started together run three at a time (read from
/// their own start/end lines), `status --permits` lists the holders, and another N is refused.
#[test]
fn six_commands_on_three_postgres_permits_run_three_at_a_time() {
    let name = format!("cli-permits-{}", std::process::id());
    let url = url();
    let log =
        std::env::temp_dir().join(format!("simplelock-cli-pg-permits-{}", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let script = format!(
        "echo start >> {log}; sleep 1; echo end >> {log}",
        log = log.display()
    );
    let run = ["-b", "postgres", "--url", &url, "--permits", "3", &name];
    let commands: Vec<_> = (0..6)
        .map(|_| {
            simplelock(&run)
                .args(["--", "sh", "-c", &script])
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    // Once three hold their permits, `status` lists them, and a handle asking for another N
    // is refused (their handles hold the marker of 3).
    let started = std::time::Instant::now();
    let status = loop {
        let status = simplelock(&["status", "-b", "postgres", "--url", &url, "-j", "3", &name])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&status.stdout).into_owned();
        if text.contains("3 of 3 permits held") {
            break text;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "three permits never held: {text}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let refused = simplelock(&[
        "-b", "postgres", "--url", &url, "-j", "4", &name, "--", "true",
    ])
    .output()
    .unwrap();
    for command in commands {
        let output = command.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let text = std::fs::read_to_string(&log).unwrap();
    let _ = std::fs::remove_file(&log);
    let (mut running, mut most) = (0i32, 0i32);
    for line in text.lines() {
        running += if line == "start" { 1 } else { -1 };
        most = most.max(running);
    }
    assert_eq!((most, running), (3, 0), "{text}");
    assert!(
        status.contains("(postgres,") && status.contains("held by pid"),
        "{status}"
    );
    let refused_err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && refused_err.contains("has 3 permits"),
        "{refused_err}"
    );
}
