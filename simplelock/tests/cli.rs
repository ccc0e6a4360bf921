//! The `simplelock` command, run as a real program: exclusion between invocations, conflict
//! exit statuses, timeouts, status pass-through, signals, and release when either the command
//! or the tool itself is killed.
#![cfg(all(feature = "cli", unix))]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_simplelock");

/// A lock folder of the test's own, so that tests running at once never meet.
struct Sandbox {
    dir: PathBuf,
}

impl Sandbox {
    fn new(test: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("simplelock-cli-{}-{test}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Sandbox { dir }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(BIN);
        command
            .args(args)
            .env("SIMPLELOCK_DIR", &self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    fn spawn(&self, args: &[&str]) -> Child {
        self.command(args).spawn().unwrap()
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    /// Starts the tool with `options` and a command that holds the lock for `seconds`, and
    /// returns once the command runs (so the lock is held).
    fn hold(&self, options: &[&str], seconds: &str) -> Child {
        let script = format!("touch {}; sleep {seconds}", self.path("started"));
        let mut args = options.to_vec();
        args.extend(["--", "sh", "-c", &script]);
        let holder = self.spawn(&args);
        self.wait_for("started");
        holder
    }

    /// Runs the shell command `inner` on a terminal, which `script` (util-linux) provides; fails
    /// the test, saying so, if `script` is missing.
    fn on_terminal(&self, inner: &str) -> Output {
        assert!(
            Command::new("script").arg("--version").output().is_ok(),
            "this test needs `script` (util-linux) to give the tool a terminal"
        );
        Command::new("script")
            .args(["-qec", inner, "/dev/null"])
            .env("SIMPLELOCK_DIR", &self.dir)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// Waits until `file` exists (a command has started and said so).
    fn wait_for(&self, file: &str) {
        let path = self.dir.join(file);
        let start = Instant::now();
        while !path.exists() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "{file} never appeared"
            );
            thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn pid_in(path: &Path) -> i32 {
    let start = Instant::now();
    loop {
        if let Ok(text) = fs::read_to_string(path)
            && let Ok(pid) = text.trim().parse()
        {
            return pid;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no pid in {}",
            path.display()
        );
        thread::sleep(Duration::from_millis(5));
    }
}

fn alive(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
    })
}

fn kill(pid: i32, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn two_invocations_never_run_at_once() {
    let sandbox = Sandbox::new("exclusion");
    let log = sandbox.path("log");
    let script = format!("echo start >> {log}; sleep 0.2; echo end >> {log}");
    let runs: Vec<Child> = (0..3)
        .map(|_| sandbox.spawn(&["job", "--", "sh", "-c", &script]))
        .collect();
    for run in runs {
        let output = run.wait_with_output().unwrap();
        assert!(output.status.success(), "{}", stderr(&output));
    }
    let log = fs::read_to_string(log).unwrap();
    assert_eq!(log, "start\nend\n".repeat(3), "the commands overlapped");
}

#[test]
fn nonblock_conflict_uses_the_conflict_exit_code() {
    let sandbox = Sandbox::new("nonblock");
    let holder = sandbox.hold(&["job"], "1");
    let conflict = sandbox.run(&[
        "--nonblock",
        "--conflict-exit-code",
        "42",
        "job",
        "--",
        "true",
    ]);
    assert_eq!(conflict.status.code(), Some(42), "{}", stderr(&conflict));
    let message = stderr(&conflict);
    assert!(message.contains("already locked"), "{message}");
    assert!(
        message.contains(&format!("pid {}", holder.id())),
        "no holder in {message}"
    );
    let default = sandbox.run(&["-n", "job", "--", "true"]);
    assert_eq!(default.status.code(), Some(1));
    assert!(holder.wait_with_output().unwrap().status.success());
}

#[test]
fn timeout_expires_not_before_it_is_due() {
    let sandbox = Sandbox::new("timeout");
    let holder = sandbox.hold(&["job"], "2");
    let start = Instant::now();
    let waited = sandbox.run(&["--timeout", "0.3", "job", "--", "true"]);
    assert!(start.elapsed() >= Duration::from_millis(300));
    assert_eq!(waited.status.code(), Some(1));
    assert!(
        stderr(&waited).contains("timed out after 300ms"),
        "{}",
        stderr(&waited)
    );
    // Not on a terminal: no progress lines, one message.
    assert_eq!(stderr(&waited).lines().count(), 1, "{}", stderr(&waited));
    // A timeout long enough gets the lock once the holder is done.
    let patient = sandbox.run(&["--timeout", "30", "job", "--", "true"]);
    assert!(patient.status.success(), "{}", stderr(&patient));
    assert!(holder.wait_with_output().unwrap().status.success());
}

#[test]
fn the_command_exit_status_is_passed_through() {
    let sandbox = Sandbox::new("status");
    assert_eq!(
        sandbox
            .run(&["job", "--", "sh", "-c", "exit 7"])
            .status
            .code(),
        Some(7)
    );
    assert_eq!(sandbox.run(&["job", "--", "true"]).status.code(), Some(0));
    let killed = sandbox.run(&["job", "--", "sh", "-c", "kill -TERM $$"]);
    assert_eq!(killed.status.code(), Some(128 + 15));
    let output = sandbox.run(&["job", "--", "echo", "hello", "--not-an-option"]);
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "hello --not-an-option\n"
    );
}

#[test]
fn a_killed_command_releases_the_lock() {
    let sandbox = Sandbox::new("child-killed");
    let pidfile = sandbox.path("pid");
    let tool = sandbox.spawn(&[
        "job",
        "--",
        "sh",
        "-c",
        &format!("echo $$ > {pidfile}; exec sleep 30"),
    ]);
    let child = pid_in(Path::new(&pidfile));
    kill(child, "-KILL");
    let output = tool.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(128 + 9));
    let next = sandbox.run(&["--nonblock", "job", "--", "true"]);
    assert!(
        next.status.success(),
        "lock not released: {}",
        stderr(&next)
    );
}

#[test]
fn a_killed_tool_releases_the_lock_and_takes_its_command_along() {
    for backend in ["file", "sema"] {
        let sandbox = Sandbox::new(&format!("tool-killed-{backend}"));
        let name = format!("cli-{}-tool-killed", std::process::id());
        let pidfile = sandbox.path("pid");
        let mut tool = sandbox.spawn(&[
            "--backend",
            backend,
            &name,
            "--",
            "sh",
            "-c",
            &format!("echo $$ > {pidfile}; exec sleep 30"),
        ]);
        let child = pid_in(Path::new(&pidfile));
        tool.kill().unwrap(); // SIGKILL
        tool.wait().unwrap();
        let next = sandbox.run(&["--backend", backend, "--timeout", "10", &name, "--", "true"]);
        assert!(
            next.status.success(),
            "{backend}: lock not released: {}",
            stderr(&next)
        );
        let start = Instant::now();
        while alive(child) {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "{backend}: the command outlived the tool"
            );
            thread::sleep(Duration::from_millis(5));
        }
        if backend == "sema" {
            assert!(sandbox.run(&["remove", &name]).status.success());
        }
    }
}

#[test]
fn sigterm_to_the_tool_reaches_the_command() {
    let sandbox = Sandbox::new("forward");
    let (ready, got) = (sandbox.path("ready"), sandbox.path("got"));
    let script =
        format!("trap 'echo term > {got}; kill $!; exit 5' TERM; touch {ready}; sleep 30 & wait");
    let tool = sandbox.spawn(&["job", "--", "sh", "-c", &script]);
    sandbox.wait_for("ready");
    kill(tool.id() as i32, "-TERM");
    let output = tool.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(5), "{}", stderr(&output));
    assert_eq!(fs::read_to_string(got).unwrap(), "term\n");
    assert!(sandbox.run(&["-n", "job", "--", "true"]).status.success());
}

#[test]
fn mistakes_get_one_line_and_exit_status_64() {
    let sandbox = Sandbox::new("mistakes");
    for args in [
        &["job"][..],
        &["job", "--"][..],
        &["a/b", "--", "true"][..],
        &["", "--", "true"][..],
        &["--backend", "nfs", "job", "--", "true"][..],
        &["--bogus", "job", "--", "true"][..],
        &["-b", "sema", "a/b", "--", "true"][..],
        // Control characters in what is quoted back must not break the line.
        &["a\nb/c", "ls"][..],
        &["--file", "/no\nsuch/x.lock", "--", "true"][..],
    ] {
        let output = sandbox.run(args);
        let message = stderr(&output);
        assert_eq!(output.status.code(), Some(64), "{args:?}: {message}");
        assert_eq!(message.lines().count(), 1, "{args:?}: {message}");
        assert!(message.starts_with("simplelock: "), "{args:?}: {message}");
        assert!(!message.contains("panicked"), "{args:?}: {message}");
    }
    let missing = sandbox.run(&["job", "--", "/definitely/not/here"]);
    assert_eq!(missing.status.code(), Some(127));
    assert_eq!(stderr(&missing).lines().count(), 1);
}

#[test]
fn status_reports_holder_as_text_and_json() {
    let sandbox = Sandbox::new("status-query");
    let free = sandbox.run(&["status", "--json", "job"]);
    assert!(free.status.success(), "{}", stderr(&free));
    let text = String::from_utf8_lossy(&free.stdout);
    assert!(
        text.contains(r#""held":false"#) && text.contains(r#""pid":null"#),
        "{text}"
    );
    let holder = sandbox.hold(&["job"], "1");
    let held = sandbox.run(&["status", "--json", "job"]);
    let text = String::from_utf8_lossy(&held.stdout);
    assert!(text.contains(r#""held":true"#), "{text}");
    assert!(
        text.contains(&format!(r#""pid":{}"#, holder.id())),
        "{text}"
    );
    assert!(!text.contains(r#""since":null"#), "{text}");
    let location = sandbox.path("job.lock");
    assert!(
        text.contains(&format!(r#""location":"{location}""#)),
        "{text}"
    );
    let human = sandbox.run(&["status", "job"]);
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(text.contains(&format!("(file, {location}): ")), "{text}");
    assert!(
        text.contains(&format!("held by pid {} since ", holder.id())),
        "{text}"
    );
    assert!(holder.wait_with_output().unwrap().status.success());
}

#[test]
fn shared_locks_admit_readers_together_and_exclude_a_writer() {
    let sandbox = Sandbox::new("shared");
    let reader = sandbox.hold(&["--shared", "data"], "1");
    assert!(
        sandbox
            .run(&["-n", "--shared", "data", "--", "true"])
            .status
            .success()
    );
    assert_eq!(
        sandbox.run(&["-n", "data", "--", "true"]).status.code(),
        Some(1)
    );
    assert!(reader.wait_with_output().unwrap().status.success());
}

#[test]
fn the_semaphore_backend_runs_and_removes() {
    let sandbox = Sandbox::new("sema");
    let name = format!("cli-{}-sema", std::process::id());
    let status = sandbox.run(&["status", "--backend", "sema", &name]);
    assert!(String::from_utf8_lossy(&status.stdout).contains(": free"));
    let object = format!("/dev/shm/sl.{name}");
    assert!(!Path::new(&object).exists(), "status created the lock");
    let run = sandbox.run(&["--backend", "sema", &name, "--", "sh", "-c", "exit 3"]);
    assert_eq!(run.status.code(), Some(3), "{}", stderr(&run));
    assert!(sandbox.run(&["remove", &name]).status.success());
    assert_eq!(sandbox.run(&["remove", &name]).status.code(), Some(1));
}

#[test]
fn a_long_wait_on_a_terminal_shows_the_holder() {
    let sandbox = Sandbox::new("progress");
    let holder = sandbox.hold(&["job"], "2.5");
    let output = sandbox.on_terminal(&format!("{BIN} --timeout 20 job -- true"));
    assert!(output.status.success(), "{}", stderr(&output));
    let shown = String::from_utf8_lossy(&output.stdout);
    let expected = format!(
        r#"waiting for lock "job" (held by pid {} for "#,
        holder.id()
    );
    assert!(shown.contains(&expected), "no progress line in {shown:?}");
    assert!(shown.contains("waited 1s"), "{shown:?}");
    assert!(holder.wait_with_output().unwrap().status.success());
}

#[test]
fn a_timeout_on_a_terminal_ends_at_its_deadline_with_the_holder_named() {
    // On a terminal the tool waits in slices of a second.
    let sandbox = Sandbox::new("tty-timeout");
    let holder = sandbox.hold(&["job"], "4");
    let output = sandbox.on_terminal(&format!("{BIN} --timeout 1.5 job -- true; echo status=$?"));
    let shown = String::from_utf8_lossy(&output.stdout);
    assert!(shown.contains("status=1"), "{shown:?}");
    assert!(shown.contains("timed out after 1.5s"), "{shown:?}");
    assert!(shown.contains(&format!("pid {}", holder.id())), "{shown:?}");
    assert!(holder.wait_with_output().unwrap().status.success());
}

#[test]
fn output_that_cannot_be_written_is_one_line_and_status_70_not_a_panic() {
    let sandbox = Sandbox::new("full");
    for args in [&["status", "job"][..], &["--help"][..], &["--version"][..]] {
        let full = fs::File::options().write(true).open("/dev/full").unwrap();
        let output = sandbox.command(args).stdout(full).output().unwrap();
        let message = stderr(&output);
        assert_eq!(output.status.code(), Some(70), "{args:?}: {message}");
        assert_eq!(message.lines().count(), 1, "{args:?}: {message}");
        assert!(message.starts_with("simplelock: "), "{args:?}: {message}");
    }
}

#[test]
fn an_ignored_sigchld_inherited_from_the_caller_does_not_lose_the_exit_status() {
    use std::os::unix::process::CommandExt;
    let sandbox = Sandbox::new("sigchld");
    let mut command = sandbox.command(&["job", "--", "sh", "-c", "exit 3"]);
    #[allow(unsafe_code)]
    // SAFETY: runs in the forked child before exec and calls only signal(2), which is
    // async-signal-safe. An ignored signal stays ignored across exec, so the tool starts with
    // SIGCHLD ignored, as under a caller that set it so.
    unsafe {
        command.pre_exec(|| {
            libc::signal(libc::SIGCHLD, libc::SIG_IGN);
            Ok(())
        });
    }
    let output = command.output().unwrap();
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
}

#[test]
fn a_closed_standard_stream_never_hands_the_lock_file_to_the_command_as_one() {
    use std::os::unix::process::CommandExt;
    let sandbox = Sandbox::new("closed-stdin");
    // The command says what its standard input and output are (the words are expanded before
    // the redirection, so the shell's own streams are read).
    let mut command = sandbox.command(&[
        "job",
        "--",
        "sh",
        "-c",
        "echo \"$(readlink /proc/$$/fd/0) $(readlink /proc/$$/fd/1)\" >&2",
    ]);
    #[allow(unsafe_code)]
    // SAFETY: runs in the forked child before exec and calls only close(2), which is
    // async-signal-safe: the tool starts with no standard input nor output, as under a caller
    // that closed them (`<&- >&-`).
    unsafe {
        command.pre_exec(|| {
            libc::close(0);
            libc::close(1);
            Ok(())
        });
    }
    let output = command.output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let streams = stderr(&output);
    assert_eq!(
        streams.trim_end(),
        "/dev/null /dev/null",
        "the command's standard input and output"
    );
}

#[test]
fn a_closed_pipe_on_standard_output_is_an_error_not_a_silent_death() {
    use std::os::unix::process::CommandExt;
    let sandbox = Sandbox::new("closed-pipe");
    let mut command = sandbox.command(&["status", "job"]);
    #[allow(unsafe_code)]
    // SAFETY: runs in the forked child before exec and calls only pipe(2), close(2) and
    // dup2(2), which are async-signal-safe: the tool's standard output is a pipe nobody reads
    // (`simplelock status job | true` when `true` has ended already).
    unsafe {
        command.pre_exec(|| {
            let mut ends = [0; 2];
            if libc::pipe(ends.as_mut_ptr()) != 0 || libc::dup2(ends[1], 1) != 1 {
                return Err(std::io::Error::last_os_error());
            }
            libc::close(ends[0]);
            libc::close(ends[1]);
            Ok(())
        });
    }
    let output = command.output().unwrap();
    assert_eq!(output.status.code(), Some(70), "{output:?}");
    assert!(
        stderr(&output).contains("cannot write to standard output"),
        "{}",
        stderr(&output)
    );
}

/// Polls `simplelock -n` until it gets the lock or `seconds` pass; whether it got it.
fn free_within(sandbox: &Sandbox, options: &[&str], seconds: u64) -> bool {
    let start = Instant::now();
    loop {
        let mut args = options.to_vec();
        args.extend(["-n", "--", "true"]);
        if sandbox.run(&args).status.success() {
            return true;
        }
        if start.elapsed() > Duration::from_secs(seconds) {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// The value of `"key":` in the one-line JSON of `status --json`.
fn json_field<'a>(json: &'a str, key: &str) -> &'a str {
    let at = json
        .find(&format!("\"{key}\":"))
        .unwrap_or_else(|| panic!("no {key} in {json}"));
    let rest = &json[at + key.len() + 3..];
    // Outside a string: an even number of quotes before (the test's values have no `\"`).
    let end = rest
        .char_indices()
        .find(|&(i, c)| (c == ',' || c == '}') && rest[..i].matches('"').count().is_multiple_of(2))
        .map_or(rest.len(), |(i, _)| i);
    &rest[..end]
}

#[test]
fn the_command_tree_keeps_the_lock_whatever_happens_to_the_tool() {
    // The command leaves a worker behind (a background subshell) that still works after the
    // command's main process ended or was killed; the lock must stay held until it is gone.
    let cases: &[(&str, &str)] = &[("file", "-KILL"), ("file", "-TERM"), ("sema", "-TERM")];
    for &(backend, signal) in cases {
        let sandbox = Sandbox::new(&format!("tree-{backend}{signal}"));
        let name = format!("cli-{}-tree{signal}", std::process::id());
        let (started, worker, done) = (
            sandbox.path("started"),
            sandbox.path("worker"),
            sandbox.path("done"),
        );
        let script =
            format!("sh -c 'echo $$ > {worker}; sleep 1.5; touch {done}' & touch {started}; wait");
        let lock: &[&str] = &["--backend", backend, &name];
        let mut args = lock.to_vec();
        args.extend(["--", "sh", "-c", &script]);
        let tool = sandbox.spawn(&args);
        sandbox.wait_for("started");
        let worker_pid = pid_in(Path::new(&worker));
        kill(tool.id() as i32, signal);
        let mut args = lock.to_vec();
        args.extend(["-n", "--", "true"]);
        let second = sandbox.run(&args);
        let done_before = Path::new(&done).exists();
        assert!(
            done_before || second.status.code() == Some(1),
            "{backend} {signal}: a second holder ran while the first command's worker (pid \
             {worker_pid}) still worked: {}",
            stderr(&second)
        );
        if backend == "file" && !done_before && signal == "-KILL" {
            // The lock is held by the worker alone now: `status` says so, naming a live process.
            let status = sandbox.run(&["status", "--json", &name]);
            let json = String::from_utf8_lossy(&status.stdout).into_owned();
            assert_eq!(json_field(&json, "held"), "true", "{json}");
            let pid: i32 = json_field(&json, "pid").parse().expect(&json);
            assert!(alive(pid) || Path::new(&done).exists(), "{json}");
        }
        drop(tool.wait_with_output());
        assert!(
            free_within(&sandbox, lock, 20),
            "{backend} {signal}: the lock was not released after the worker ended"
        );
        assert!(Path::new(&done).exists());
        if backend == "sema" {
            assert!(sandbox.run(&["remove", &name]).status.success());
        }
    }
}

#[test]
fn a_data_file_locked_with_file_keeps_exactly_what_the_command_wrote() {
    let sandbox = Sandbox::new("data-file");
    let data = sandbox.path("data.json");
    let json = r#"{"answer": 42, "list": [1, 2, 3]}"#;
    for existing in [false, true] {
        let _ = fs::remove_file(&data);
        if existing {
            fs::write(&data, b"").unwrap();
        }
        let script = format!("printf '%s\\n' '{json}' > {data}");
        let out = sandbox.run(&["--file", &data, "--", "sh", "-c", &script]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(fs::read_to_string(&data).unwrap(), format!("{json}\n"));
    }
    // A short data file that merely starts like a record is not ours either.
    let short = "simplelock 1 is my favourite crate\n";
    fs::write(&data, short).unwrap();
    let out = sandbox.run(&["--file", &data, "--", "true"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(fs::read_to_string(&data).unwrap(), short);
}

#[test]
fn the_counter_idiom_on_the_locked_file_loses_no_update() {
    const PROCESSES: usize = 4;
    const ROUNDS: usize = 200;
    let sandbox = Sandbox::new("counter");
    let counter = sandbox.path("counter");
    let script = format!(
        "i=0; while [ $i -lt {ROUNDS} ]; do \
           {BIN} --file {counter} -- sh -c 'n=$(cat {counter}); echo $((${{n:-0}}+1)) > {counter}' \
           || exit 1; i=$((i+1)); done"
    );
    let workers: Vec<Child> = (0..PROCESSES)
        .map(|_| {
            Command::new("sh")
                .args(["-c", &script])
                .env("SIMPLELOCK_DIR", &sandbox.dir)
                .stdin(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for worker in workers {
        let output = worker.wait_with_output().unwrap();
        assert!(output.status.success(), "{}", stderr(&output));
    }
    assert_eq!(
        fs::read_to_string(&counter).unwrap().trim(),
        (PROCESSES * ROUNDS).to_string()
    );
}

#[test]
fn a_name_means_one_folder_whatever_the_environment() {
    // What `status` says about the named lock `backup` from a login shell (with
    // XDG_RUNTIME_DIR), from cron (`env -i`) and from a service with a private /tmp.
    let runtime = std::env::temp_dir().join(format!("simplelock-cli-{}-xdg", std::process::id()));
    let _ = fs::remove_dir_all(&runtime);
    fs::create_dir_all(&runtime).unwrap();
    fs::set_permissions(
        &runtime,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let location = |mut command: Command| {
        let output = command.output().unwrap();
        assert!(output.status.success(), "{}", stderr(&output));
        let json = String::from_utf8_lossy(&output.stdout).into_owned();
        json_field(&json, "location").to_owned()
    };
    let mut login = Command::new(BIN);
    login
        .args(["status", "--json", "backup"])
        .env_remove("SIMPLELOCK_DIR")
        .env("XDG_RUNTIME_DIR", &runtime);
    let mut cron = Command::new(BIN);
    cron.args(["status", "--json", "backup"]).env_clear();
    let mut private_tmp = Command::new("unshare");
    private_tmp
        .args(["-m", "sh", "-c"])
        // The tool is opened before the mount and run through its descriptor: the checkout
        // (and so the tool) may itself live under /tmp, which the mount hides.
        .arg(format!(
            "exec 3<'{BIN}' && mount -t tmpfs tmpfs /tmp && exec /proc/self/fd/3 status --json backup"
        ))
        .env_remove("SIMPLELOCK_DIR")
        .env_remove("XDG_RUNTIME_DIR");
    let probe = Command::new("unshare").args(["-m", "true"]).status();
    assert!(
        probe.is_ok_and(|s| s.success()),
        "this test needs `unshare -m` (util-linux, run as root or with CAP_SYS_ADMIN) to give \
         the tool a private /tmp"
    );
    let (login, cron, private_tmp) = (location(login), location(cron), location(private_tmp));
    fs::remove_dir_all(&runtime).unwrap();
    assert_eq!(login, cron, "login shell and cron job use different locks");
    assert_eq!(login, private_tmp, "a private /tmp changes the lock");
}

#[test]
fn status_creates_nothing() {
    let sandbox = Sandbox::new("status-creates");
    let folder = sandbox.dir.join("not-yet");
    let output = Command::new(BIN)
        .args(["status", "job"])
        .env("SIMPLELOCK_DIR", &folder)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(String::from_utf8_lossy(&output.stdout).contains(": free"));
    assert!(!folder.exists(), "status created the lock folder");
    let file = sandbox.path("job.lock");
    let output = sandbox.run(&["status", "--file", &file]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(!Path::new(&file).exists(), "status created the lock file");
}

#[test]
fn a_socket_at_the_lock_path_is_bad_usage() {
    let sandbox = Sandbox::new("socket");
    let path = sandbox.path("job.lock");
    let _listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let output = sandbox.run(&["--file", &path, "--", "true"]);
    assert_eq!(output.status.code(), Some(64), "{}", stderr(&output));
    assert!(stderr(&output).contains(&path), "{}", stderr(&output));
}

#[test]
fn a_group_signal_from_timeout_reaches_the_command_once() {
    let sandbox = Sandbox::new("term-once");
    let count = sandbox.path("count");
    // Perl counts every delivery (its deferred signals are counted, not merged into one flag).
    let perl = format!(
        "my $n = 0; $SIG{{TERM}} = sub {{ $n++ }}; open(my $f, '>', '{started}'); close $f; \
         while ($n == 0) {{ select(undef, undef, undef, 0.01) }} \
         for (1..50) {{ select(undef, undef, undef, 0.01) }} \
         open($f, '>', '{count}'); print $f $n; close $f; exit 0",
        started = sandbox.path("started"),
    );
    let output = Command::new("timeout")
        .args(["-s", "TERM", "2", BIN, "job", "--", "perl", "-e", &perl])
        .env("SIMPLELOCK_DIR", &sandbox.dir)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        Path::new(&sandbox.path("started")).exists(),
        "the command never ran: {}",
        stderr(&output)
    );
    assert_eq!(
        fs::read_to_string(&count).unwrap(),
        "1",
        "SIGTERM reached the command more than once"
    );
}

// flock(1)'s idioms that scripts rely on.

#[test]
fn combined_short_options_as_flock_takes_them() {
    let sandbox = Sandbox::new("short-options");
    let holder = sandbox.hold(&["job"], "2");
    let conflict = sandbox.run(&["-nE", "3", "job", "--", "true"]);
    assert_eq!(conflict.status.code(), Some(3), "{}", stderr(&conflict));
    let glued = sandbox.run(&["-nE3", "job", "--", "true"]);
    assert_eq!(glued.status.code(), Some(3), "{}", stderr(&glued));
    let waited = sandbox.run(&["-w0.2", "job", "--", "true"]);
    assert_eq!(waited.status.code(), Some(1), "{}", stderr(&waited));
    assert!(
        stderr(&waited).contains("timed out after 200ms"),
        "{}",
        stderr(&waited)
    );
    assert!(holder.wait_with_output().unwrap().status.success());
}

#[test]
fn the_separator_is_optional_before_a_command() {
    let sandbox = Sandbox::new("no-separator");
    let output = sandbox.run(&["job", "sh", "-c", "echo $0 -x; exit 4", "arg"]);
    assert_eq!(output.status.code(), Some(4), "{}", stderr(&output));
    assert_eq!(String::from_utf8_lossy(&output.stdout), "arg -x\n");
    // Options may still follow the name, as before.
    assert!(sandbox.run(&["job", "-n", "--", "true"]).status.success());
    // With --file, the first word is the command's, and so is all that follows it.
    let file = sandbox.path("data");
    let output = sandbox.run(&[
        "--file",
        &file,
        "sh",
        "-c",
        "printf '%s\\n' \"$0\"; exit 5",
        "-n",
    ]);
    assert_eq!(output.status.code(), Some(5), "{}", stderr(&output));
    assert_eq!(String::from_utf8_lossy(&output.stdout), "-n\n");
    // An option the tool does not know is a mistake, not a command.
    let unknown = sandbox.run(&["job", "--bogus", "true"]);
    assert_eq!(unknown.status.code(), Some(64), "{}", stderr(&unknown));
}

#[test]
fn dash_c_runs_a_shell_command() {
    let sandbox = Sandbox::new("dash-c");
    let out = sandbox.path("out");
    let output = sandbox.run(&["job", "-c", &format!("echo $((1 + 2)) > {out}; exit 6")]);
    assert_eq!(output.status.code(), Some(6), "{}", stderr(&output));
    assert_eq!(fs::read_to_string(out).unwrap(), "3\n");
    // A shell command and a command are one too many.
    let both = sandbox.run(&["job", "-c", "true", "--", "true"]);
    assert_eq!(both.status.code(), Some(64), "{}", stderr(&both));
    assert_eq!(stderr(&both).lines().count(), 1, "{}", stderr(&both));
}

#[test]
fn an_inherited_descriptor_is_locked_for_the_shell_that_holds_it() {
    let sandbox = Sandbox::new("descriptor");
    let file = sandbox.path("data");
    // The flock(1) idiom: the subshell holds the lock through fd 9 after simplelock ended.
    let script = format!(
        "( {BIN} -n 9 || exit 9; touch {}; sleep 2 ) 9>{file}",
        sandbox.path("started")
    );
    let holder = Command::new("sh").args(["-c", &script]).spawn().unwrap();
    sandbox.wait_for("started");
    let second = Command::new("sh")
        .args(["-c", &format!("( {BIN} -nE 7 9 ) 9>>{file}")])
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(7), "{}", stderr(&second));
    let waited = Command::new("sh")
        .args(["-c", &format!("( {BIN} -w 0.3 9 ) 9>>{file}")])
        .output()
        .unwrap();
    assert_eq!(waited.status.code(), Some(1), "{}", stderr(&waited));
    assert!(
        stderr(&waited).contains("timed out after 300ms"),
        "{}",
        stderr(&waited)
    );
    // The same lock as `--file` on that file.
    let by_path = sandbox.run(&["-n", "--file", &file, "--", "true"]);
    assert_eq!(by_path.status.code(), Some(1), "{}", stderr(&by_path));
    assert!(holder.wait_with_output().unwrap().status.success());
    let after = sandbox.run(&["-n", "--file", &file, "--", "true"]);
    assert!(after.status.success(), "{}", stderr(&after));
    // A descriptor that is not open is bad usage, said in one line.
    let closed = sandbox.run(&["-n", "57"]);
    assert_eq!(closed.status.code(), Some(64), "{}", stderr(&closed));
    assert_eq!(stderr(&closed).lines().count(), 1, "{}", stderr(&closed));
}

#[test]
fn a_directory_can_be_the_file() {
    let sandbox = Sandbox::new("directory");
    let dir = sandbox.path("folder");
    fs::create_dir(&dir).unwrap();
    let holder = sandbox.hold(&["--file", &dir], "2");
    let conflict = sandbox.run(&["-n", "--file", &dir, "--", "true"]);
    assert_eq!(conflict.status.code(), Some(1), "{}", stderr(&conflict));
    assert!(holder.wait_with_output().unwrap().status.success());
    assert!(
        sandbox
            .run(&["-n", "--file", &dir, "--", "true"])
            .status
            .success()
    );
}

#[test]
fn a_name_that_looks_like_a_path_gets_a_hint() {
    let sandbox = Sandbox::new("path-hint");
    let path = sandbox.path("x.lock");
    let output = sandbox.run(&[&path, "true"]);
    assert_eq!(output.status.code(), Some(64), "{}", stderr(&output));
    let message = stderr(&output);
    assert!(message.contains(&format!("--file {path}")), "{message}");
    assert_eq!(message.lines().count(), 1, "{message}");
}

#[test]
fn json_is_refused_outside_status() {
    let sandbox = Sandbox::new("json-outside");
    let output = sandbox.run(&["--json", "job", "--", "true"]);
    assert_eq!(output.status.code(), Some(64), "{}", stderr(&output));
    assert!(stderr(&output).contains("--json"), "{}", stderr(&output));
    assert_eq!(stderr(&output).lines().count(), 1, "{}", stderr(&output));
}

#[test]
fn status_takes_a_name_that_starts_with_a_dash_after_the_separator() {
    let sandbox = Sandbox::new("status-dash");
    let output = sandbox.run(&["status", "--", "-job"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.starts_with(r#"lock "-job" (file, "#), "{text}");
    assert!(text.ends_with(": free\n"), "{text}");
}

#[test]
fn the_command_learns_whether_the_previous_holder_died() {
    let sandbox = Sandbox::new("previous-holder");
    let name = format!("cli-{}-previous", std::process::id());
    let report = "echo $SIMPLELOCK_PREVIOUS_HOLDER";
    for backend in ["file", "sema"] {
        let run = |args: &[&str]| {
            let mut all = vec!["-b", backend, &name];
            all.extend(args);
            sandbox.run(&all)
        };
        let first = run(&["sh", "-c", report]);
        assert!(first.status.success(), "{backend}: {}", stderr(&first));
        assert_eq!(
            String::from_utf8_lossy(&first.stdout),
            "released\n",
            "{backend}"
        );
        // The holder and its command die in the critical section.
        let pidfile = sandbox.path(&format!("pid-{backend}"));
        let script = format!("echo $$ > {pidfile}; exec sleep 30");
        let mut tool = sandbox.spawn(&["-b", backend, &name, "--", "sh", "-c", &script]);
        let child = pid_in(Path::new(&pidfile));
        // The tool first: were the command killed first, the tool would see it end and
        // release the lock itself. The command then (the sema backend's is killed with the
        // tool already; the file backend's keeps the lock until it ends).
        tool.kill().unwrap();
        tool.wait().unwrap();
        let _ = Command::new("kill")
            .args(["-KILL", &child.to_string()])
            .status();
        let next = run(&["-w", "10", "--", "sh", "-c", report]);
        assert!(next.status.success(), "{backend}: {}", stderr(&next));
        assert_eq!(String::from_utf8_lossy(&next.stdout), "died\n", "{backend}");
        let again = run(&["sh", "-c", report]);
        assert_eq!(
            String::from_utf8_lossy(&again.stdout),
            "released\n",
            "{backend}"
        );
    }
    assert!(sandbox.run(&["remove", &name]).status.success());
    // A plain file keeps no record: nobody can tell.
    let file = sandbox.path("data");
    let plain = sandbox.run(&["--file", &file, "sh", "-c", report]);
    assert_eq!(
        String::from_utf8_lossy(&plain.stdout),
        "unknown\n",
        "{}",
        stderr(&plain)
    );
}

#[test]
fn completions_for_each_shell() {
    let sandbox = Sandbox::new("completions");
    for (shell, marker) in [
        ("bash", "_simplelock()"),
        ("zsh", "#compdef simplelock"),
        ("fish", "complete -c simplelock"),
    ] {
        let output = sandbox.run(&["completions", shell]);
        assert!(output.status.success(), "{shell}: {}", stderr(&output));
        let script = String::from_utf8_lossy(&output.stdout);
        assert!(script.contains(marker), "{shell}: {script}");
        assert!(script.contains("conflict-exit-code"), "{shell}: {script}");
    }
    let unknown = sandbox.run(&["completions", "tcsh"]);
    assert_eq!(unknown.status.code(), Some(64), "{}", stderr(&unknown));
}

#[test]
fn a_descendant_killed_by_a_realtime_signal_does_not_end_the_wait_for_the_others() {
    // Signal 34 (SIGRTMIN on Linux) has no name in some wrappers of wait(2), which then fail
    // after reaping; the tool must go on waiting for the rest of the command tree.
    let sandbox = Sandbox::new("rt-signal");
    let late = sandbox.path("late");
    let script = format!("sh -c 'sleep 1; touch {late}' & sh -c 'sleep 0.2; kill -34 $$' & exit 0");
    // The tool's own end, not that of its output pipes (which the worker keeps open).
    let status = sandbox
        .command(&["job", "--", "sh", "-c", &script])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "{status}");
    assert!(
        Path::new(&late).exists(),
        "the tool ended (and released the lock) before the command tree had"
    );
    let killed = sandbox.run(&["job", "--", "sh", "-c", "kill -34 $$"]);
    assert_eq!(killed.status.code(), Some(128 + 34), "{}", stderr(&killed));
}

/// The order in which the commands of a permits test said they started and ended: the
/// largest number running at once, read from their own `start`/`end` lines.
fn most_at_once(log: &Path) -> usize {
    let text = fs::read_to_string(log).unwrap();
    let (mut running, mut most) = (0usize, 0usize);
    for line in text.lines() {
        match line {
            "start" => running += 1,
            "end" => running -= 1,
            other => panic!("unexpected line {other:?} in {}", log.display()),
        }
        most = most.max(running);
    }
    assert_eq!(running, 0, "every command that started ended:\n{text}");
    most
}

#[test]
fn six_commands_on_three_permits_run_three_at_a_time() {
    for backend in ["file", "sema"] {
        let sandbox = Sandbox::new(&format!("permits-six-{backend}"));
        let name = format!("six-{}-{backend}", std::process::id());
        let log = sandbox.path("log");
        let script = format!("echo start >> {log}; sleep 1; echo end >> {log}");
        let commands: Vec<Child> = (0..6)
            .map(|_| {
                sandbox.spawn(&[
                    "-b",
                    backend,
                    "--permits",
                    "3",
                    &name,
                    "--",
                    "sh",
                    "-c",
                    &script,
                ])
            })
            .collect();
        for command in commands {
            let output = command.wait_with_output().unwrap();
            assert!(output.status.success(), "{backend}: {}", stderr(&output));
        }
        let most = most_at_once(Path::new(&log));
        assert_eq!(most, 3, "{backend}: {most} commands ran at once, 3 permits");
        if backend == "sema" {
            let removed = sandbox.run(&["remove", "-j", "3", &name]);
            assert!(removed.status.success(), "{}", stderr(&removed));
        }
    }
}

#[test]
fn status_lists_the_permits_and_their_holders() {
    let sandbox = Sandbox::new("permits-status");
    let holder = sandbox.hold(&["-j", "3", "builds"], "5");
    let text = sandbox.run(&["status", "-j", "3", "builds"]);
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(text.contains("1 of 3 permits held"), "{text}");
    assert!(
        text.contains(&format!("held by pid {}", holder.id())),
        "{text}"
    );
    let json = sandbox.run(&["status", "--json", "--permits", "3", "builds"]);
    let json = String::from_utf8(json.stdout).unwrap();
    assert!(json.contains("\"permits\":3,\"held\":1"), "{json}");
    assert!(json.contains(&format!("\"pid\":{}", holder.id())), "{json}");
    let mut holder = holder;
    holder.kill().unwrap();
    holder.wait().unwrap();
    let nothing = sandbox.run(&["status", "-j", "2", "nothing-here"]);
    let nothing = String::from_utf8(nothing.stdout).unwrap();
    assert!(nothing.contains("does not exist"), "{nothing}");
    assert!(
        !sandbox.dir.join("nothing-here.permits").exists(),
        "status created a semaphore"
    );
}

#[test]
fn permits_nonblock_timeout_and_a_disagreeing_number() {
    let sandbox = Sandbox::new("permits-conflicts");
    let mut holder = sandbox.hold(&["-j", "1", "one"], "4");
    let busy = sandbox.run(&["-n", "-E", "75", "-j", "1", "one", "--", "true"]);
    assert_eq!(busy.status.code(), Some(75), "{}", stderr(&busy));
    let late = sandbox.run(&["-w", "0.2", "-j", "1", "one", "--", "true"]);
    assert_eq!(late.status.code(), Some(1), "{}", stderr(&late));
    let other = sandbox.run(&["-j", "2", "one", "--", "true"]);
    assert_eq!(other.status.code(), Some(64), "{}", stderr(&other));
    assert!(stderr(&other).contains("has 1 permits") && stderr(&other).contains('2'));
    let file = sandbox.run(&["-j", "2", "--file", &sandbox.path("data"), "--", "true"]);
    assert_eq!(file.status.code(), Some(64), "{}", stderr(&file));
    let zero = sandbox.run(&["-j", "0", "zero", "--", "true"]);
    assert_eq!(zero.status.code(), Some(64), "{}", stderr(&zero));
    holder.kill().unwrap();
    holder.wait().unwrap();
    // The command inherited the semaphore's file, so the permit outlives the SIGKILLed tool
    // until the command ends (as a file lock does); then it is free again.
    let start = Instant::now();
    loop {
        let again = sandbox.run(&["-n", "-j", "1", "one", "--", "true"]);
        if again.status.success() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(40),
            "{}",
            stderr(&again)
        );
        thread::sleep(Duration::from_millis(50));
    }
}
