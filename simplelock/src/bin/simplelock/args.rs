//! The command line: what the user asked for, or a one-line reason why it makes no sense.
//!
//! clap parses (help, errors, combined short options such as `-nE 3` and `-w5`, `--opt=value`);
//! [`Cli::invocation`] then checks what clap cannot express — NAME or `--file`, COMMAND or
//! `-c` — and says in one line what is wrong.
//!
//! # Which words are the lock and which the command
//!
//! `simplelock [OPTIONS] NAME [--] COMMAND [ARGS...]`: the first word that is not an option is
//! the lock, everything from the second one on is the command, options and all (`simplelock job
//! ls -l` runs `ls -l`). Options may come before or after NAME. `--` is needed only when the
//! command's first word starts with `-`, or to use a lock called like a subcommand (`simplelock
//! -- status make`): the first word is a subcommand (`status`, `remove`, `completions`) unless a
//! `--` comes before it. A NAME alone, made only of digits, is an inherited descriptor
//! (flock(1)'s `flock 9`), since a named lock without a command would be a mistake anyway.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use simplelock::Wait;

/// What `--help` says after the list of options.
const AFTER_HELP: &str = "\
While it waits longer than a second on a terminal, simplelock shows who holds the lock.
SIGINT, SIGTERM, SIGHUP and SIGQUIT sent to simplelock are passed on to COMMAND, once (COMMAND
runs in a process group of its own unless simplelock is the foreground job of a terminal).
The lock is held until COMMAND and every process it left behind have ended: simplelock waits
for them all. With the file backend COMMAND inherits the locked file, as with flock(1): if
simplelock is killed, the lock stays held until the last process of the command tree that has
the file open ends. With the sema backend the lock dies with simplelock (COMMAND is killed with
it, processes it left behind are not); so does the postgres backend's, and COMMAND finds the
lock's fencing token in $SIMPLELOCK_FENCING_TOKEN. A --file lock never writes into the file (a folder is
locked as it is): lock your data file itself if you like; named locks keep a holder record in
their own file.

COMMAND finds in SIMPLELOCK_PREVIOUS_HOLDER how the previous holder let go of the lock:
`died` (it ended while holding the lock: check for half-done work), `released`, or `unknown`
(the backend cannot tell: a --file lock or a descriptor keeps no record).

NAME is the first word that is not an option, COMMAND starts at the second (-- is needed
before a COMMAND that starts with `-`, and before a lock called status, remove or completions).

simplelock [OPTIONS] FD locks the open file FD (a number) that simplelock inherited, as
flock(1) does, and exits: the lock stays with the file, held by whoever keeps it open:
  ( simplelock -n 9 || exit 1; critical section ) 9>/var/lock/mylock

On Windows there are no signals: Ctrl-C reaches COMMAND from the console and simplelock
waits for it. COMMAND and every process it starts run in a Job object that ends them if
simplelock is killed (a Windows lock belongs to simplelock, not to the file COMMAND could
inherit); -c runs cmd /C. The file backend only: sema, postgres, --permits, FD and a folder
are Unix-only.

Exit status:
  COMMAND's own exit status (128+N if a signal N ended it; on Windows 255 for a code outside
       0-255, 130 for Ctrl-C)
  1 (or --conflict-exit-code)  the lock was held: --nonblock, or --timeout ran out
  1    remove: there was no such semaphore lock
  64   bad usage: unknown option, bad lock name, unknown backend, missing COMMAND, and on
       Windows what is Unix-only
  69   the lock cannot be used: permission denied, unusable lock folder
  70   an unexpected error of the lock or of simplelock
  126  COMMAND could not be started
  127  COMMAND was not found";

/// What runs `-c SHELL_COMMAND`: the program and its option before the script.
pub(crate) const SHELL: [&str; 2] = if cfg!(windows) {
    ["cmd", "/C"]
} else {
    ["/bin/sh", "-c"]
};

/// Exit statuses of the tool itself (the command's own status is passed through).
pub(crate) mod exit {
    pub(crate) const USAGE: i32 = 64;
    pub(crate) const UNAVAILABLE: i32 = 69;
    pub(crate) const SOFTWARE: i32 = 70;
    pub(crate) const CANNOT_EXECUTE: i32 = 126;
    pub(crate) const NOT_FOUND: i32 = 127;
}

/// Where the lock lives. A new backend is a new variant here (with its `///` line, which is
/// its `--help` text) and an arm in `main.rs`'s `open` and `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Backend {
    /// NAME.lock in the lock folder ($SIMPLELOCK_DIR, else /run/lock/simplelock-UID, the same
    /// for every process of the user whatever its environment), or --file PATH
    File,
    /// shared memory /dev/shm/sl.NAME
    Sema,
    /// an advisory lock on a PostgreSQL server (--url), shared by every machine that uses it;
    /// COMMAND gets the lock's fencing token in $SIMPLELOCK_FENCING_TOKEN
    Postgres,
}

impl Backend {
    /// The name the user gives with `--backend`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Backend::File => "file",
            Backend::Sema => "sema",
            Backend::Postgres => "postgres",
        }
    }
}

/// The number of an open file the tool inherited, as flock(1) takes it: std's `RawFd` on Unix
/// (the same type); Windows has no such numbers, and refuses the form.
pub(crate) type RawFd = std::ffi::c_int;

/// Which lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    Name(String),
    Path(PathBuf),
    /// An open file simplelock inherited, by its number.
    Descriptor(RawFd),
    /// The counting semaphore NAME of N permits (`--permits N`): at most N holders at once.
    Permits(String, u32),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RunArgs {
    pub(crate) backend: Backend,
    pub(crate) target: Target,
    pub(crate) wait: Wait,
    pub(crate) shared: bool,
    pub(crate) conflict_exit_code: i32,
    /// Empty for a descriptor: lock it and leave.
    pub(crate) command: Vec<OsString>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Invocation {
    Run(RunArgs),
    Status {
        backend: Backend,
        target: Target,
        json: bool,
    },
    Remove {
        name: String,
    },
    /// `remove --permits N NAME`: the counting semaphore's objects.
    RemovePermits {
        name: String,
    },
    Completions(clap_complete::Shell),
}

/// A usage error, said in one line.
pub(crate) type Usage = String;

/// The whole command line.
#[derive(Debug, Parser)]
#[command(
    name = "simplelock",
    version,
    about = "simplelock — run a command while holding a lock, so that only one runs at a time",
    disable_help_subcommand = true,
    override_usage = "\
simplelock [OPTIONS] NAME [--] COMMAND [ARGS...]
       simplelock [OPTIONS] NAME -c SHELL_COMMAND
       simplelock [OPTIONS] --file PATH [--] COMMAND [ARGS...]
       simplelock [OPTIONS] FD
       simplelock [OPTIONS] --permits N NAME [--] COMMAND [ARGS...]
       simplelock status [--json] [-b BACKEND] (NAME | --file PATH)
       simplelock remove NAME
       simplelock completions bash|zsh|fish",
    after_help = AFTER_HELP,
    args_conflicts_with_subcommands = true
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    subcommand: Option<Sub>,
    #[command(flatten)]
    run: RunOptions,
}

#[derive(Debug, Subcommand)]
enum Sub {
    /// Who holds the lock, since when (exit status 0 either way)
    Status {
        #[command(flatten)]
        lock: Which,
        /// Print JSON: {"name","backend","location","held","pid","program","host","since"}; with
        /// --permits {"name","backend","location","permits","held","holders":[{"permit","pid","since"}]}
        #[arg(long)]
        json: bool,
        /// Show the counting semaphore NAME of N permits: who holds each permit
        #[arg(short = 'j', long, visible_alias = "jobs", value_name = "N", value_parser = permits)]
        permits: Option<u32>,
    },
    /// Delete a semaphore lock's kernel object (it waits for the holder)
    Remove {
        /// The semaphore lock
        name: String,
        /// Delete the objects of the counting semaphore NAME of N permits (sema backend)
        #[arg(short = 'j', long, visible_alias = "jobs", value_name = "N", value_parser = permits)]
        permits: Option<u32>,
    },
    /// Print a completion script: `simplelock completions bash > /etc/bash_completion.d/simplelock`
    Completions {
        /// The shell
        shell: clap_complete::Shell,
    },
}

/// Where the lock lives.
#[derive(Debug, Args)]
struct Where {
    /// Where the lock lives
    #[arg(short, long, value_enum, default_value_t = Backend::File)]
    backend: Backend,
    /// The lock on this file (or, to run a command, folder) instead of a named lock (file backend)
    #[arg(short, long, value_name = "PATH")]
    file: Option<PathBuf>,
    /// The PostgreSQL server (postgres backend), e.g. postgres://user@host/db?sslmode=require;
    /// else $SIMPLELOCK_POSTGRES_URL, else the PG* variables (PGHOST, ...)
    #[arg(long, value_name = "URL")]
    url: Option<String>,
}

/// The lock: a NAME in a backend, or a file.
#[derive(Debug, Args)]
struct Which {
    #[command(flatten)]
    place: Where,
    /// The lock's name
    #[arg(value_name = "NAME")]
    name: Option<String>,
}

/// How to take the lock, and what to run.
#[derive(Debug, Args)]
struct Options {
    #[command(flatten)]
    place: Where,
    /// Fail at once if the lock is held
    #[arg(short, long, visible_alias = "nb")]
    nonblock: bool,
    /// Give up after SECS seconds (decimals allowed)
    #[arg(
        short = 'w',
        long,
        visible_alias = "wait",
        value_name = "SECS",
        value_parser = seconds,
        allow_hyphen_values = true
    )]
    timeout: Option<Duration>,
    /// Take a shared (reader) lock: many readers, no writer (file and postgres)
    #[arg(short, long)]
    shared: bool,
    /// Exit status when the lock was not acquired
    #[arg(short = 'E', long, value_name = "N", default_value_t = 1)]
    conflict_exit_code: u8,
    /// Take one of N permits of the counting semaphore NAME: at most N commands at once (GNU
    /// sem's -j; with -b postgres, across machines). A semaphore is not a lock of the same
    /// name; N must be the semaphore's.
    #[arg(short = 'j', long, visible_alias = "jobs", value_name = "N", value_parser = permits)]
    permits: Option<u32>,
    /// Run SHELL_COMMAND with /bin/sh -c (cmd /C on Windows) instead of COMMAND
    #[arg(short = 'c', long = "command", value_name = "SHELL_COMMAND")]
    shell_command: Option<OsString>,
}

/// `simplelock [OPTIONS] NAME [--] COMMAND [ARGS...]`.
#[derive(Debug, Args)]
struct RunOptions {
    #[command(flatten)]
    options: Options,
    /// The lock's name, or the number of an inherited descriptor to lock
    #[arg(value_name = "NAME")]
    name: Option<String>,
    /// The command to run, and its arguments (what follows its first word is its own)
    #[arg(value_name = "COMMAND", trailing_var_arg = true)]
    command: Vec<OsString>,
}

/// `simplelock [OPTIONS] --file PATH [--] COMMAND [ARGS...]`: no NAME, so that everything from
/// the command's first word on is the command's (`--file f sh -c 'x'`).
#[derive(Debug, Parser)]
#[command(name = "simplelock")]
struct FileRun {
    #[command(flatten)]
    options: Options,
    #[arg(trailing_var_arg = true)]
    command: Vec<OsString>,
}

/// Parses the arguments (the program's name first): clap's error for what clap refuses, else
/// what the user asked for or the one line that says what is wrong with it.
///
/// With `--file` the first word is the command's, and so is everything after it, options and
/// all (`--file f grep -n -E x`); but [`Cli`] takes that word for a NAME and the options after
/// it for its own. So when `--file` comes before the first word ([`FileRun`] parses the words
/// that way), that parse is the one that counts, whether [`Cli`] succeeded or not.
pub(crate) fn parse(args: Vec<OsString>) -> Result<Result<Invocation, Usage>, clap::Error> {
    let first = Cli::try_parse_from(&args);
    if let Ok(cli) = &first
        && (cli.subcommand.is_some() || cli.run.options.place.file.is_none())
    {
        return first.map(Cli::invocation);
    }
    match FileRun::try_parse_from(&args) {
        Ok(again) if again.options.place.file.is_some() => Ok(again
            .options
            .invocation(None, again.command)
            .map(Invocation::Run)),
        _ => first.map(Cli::invocation),
    }
}

/// `--permits`'s value: 1 or more.
fn permits(text: &str) -> Result<u32, String> {
    match text.parse::<u32>() {
        Ok(0) => Err("a semaphore needs at least one permit".to_owned()),
        Ok(n) => Ok(n),
        Err(_) => Err("not a number of permits".to_owned()),
    }
}

/// The counting semaphore of `permits` permits named by `target` (on any backend).
fn semaphore(target: Target, permits: Option<u32>) -> Result<Target, Usage> {
    match (target, permits) {
        (target, None) => Ok(target),
        (Target::Name(name), Some(n)) => Ok(Target::Permits(name, n)),
        (_, Some(_)) => Err(
            "--permits needs a semaphore NAME: --file and descriptors are locks, whose file \
             simplelock never writes into"
                .into(),
        ),
    }
}

/// `--timeout`'s value.
fn seconds(text: &str) -> Result<Duration, String> {
    text.parse::<f64>()
        .ok()
        .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
        .ok_or_else(|| "not a number of seconds".to_owned())
}

impl Cli {
    /// What the user asked for, or the one line that says what is wrong with it.
    fn invocation(self) -> Result<Invocation, Usage> {
        match self.subcommand {
            Some(Sub::Status {
                lock,
                json,
                permits,
            }) => Ok(Invocation::Status {
                backend: lock.place.backend,
                target: semaphore(lock.place.target(lock.name, "status")?, permits)?,
                json,
            }),
            Some(Sub::Remove {
                name,
                permits: Some(_),
            }) => Ok(Invocation::RemovePermits { name }),
            Some(Sub::Remove {
                name,
                permits: None,
            }) => Ok(Invocation::Remove { name }),
            Some(Sub::Completions { shell }) => Ok(Invocation::Completions(shell)),
            None => {
                let RunOptions {
                    options,
                    name,
                    command,
                } = self.run;
                options.invocation(name, command).map(Invocation::Run)
            }
        }
    }
}

impl Where {
    /// `--url` goes with `-b postgres` only.
    fn check_url(&self) -> Result<(), Usage> {
        match (&self.url, self.backend) {
            (Some(_), backend) if backend != Backend::Postgres => {
                Err("--url is for the postgres backend: add -b postgres".into())
            }
            _ => Ok(()),
        }
    }

    /// The lock named by `name`, or by `--file`.
    fn target(self, name: Option<String>, what: &str) -> Result<Target, Usage> {
        self.check_url()?;
        if let Some(url) = self.url {
            crate::pg::set_url(url);
        }
        match (name, self.file) {
            (Some(name), None) => {
                if self.backend == Backend::File && name.contains('/') {
                    return Err(format!(
                        "lock name {name:?} looks like a path: to lock that file, use \
                         --file {name}"
                    ));
                }
                Ok(Target::Name(name))
            }
            (None, Some(path)) if self.backend == Backend::File => Ok(Target::Path(path)),
            (None, Some(_)) => Err(format!(
                "--file needs the file backend, not {}",
                self.backend.name()
            )),
            (None, None) => Err(format!("{what} needs a lock NAME or --file PATH")),
            (Some(name), Some(_)) => Err(format!(
                "give either a lock NAME or --file PATH, not both ({name})"
            )),
        }
    }
}

impl Options {
    fn invocation(self, name: Option<String>, command: Vec<OsString>) -> Result<RunArgs, Usage> {
        let Options {
            place,
            nonblock,
            timeout,
            shared,
            conflict_exit_code,
            permits,
            shell_command,
        } = self;
        let backend = place.backend;
        place.check_url()?;
        let descriptor = match (&name, &place.file) {
            (Some(name), None) if command.is_empty() && shell_command.is_none() => {
                Some(name.parse::<RawFd>().map_err(|_| {
                    format!(
                        "missing COMMAND: simplelock [OPTIONS] {name} [--] COMMAND [ARGS...] \
                         (an open file to lock is given by its number)"
                    )
                })?)
            }
            _ => None,
        };
        let target = match descriptor {
            Some(fd) if backend == Backend::File => Target::Descriptor(fd),
            Some(_) => return Err("an inherited descriptor needs the file backend".into()),
            None => place.target(name, "the command")?,
        };
        let target = semaphore(target, permits)?;
        let command = match (shell_command, command.is_empty()) {
            (Some(script), true) => vec![SHELL[0].into(), SHELL[1].into(), script],
            (Some(_), false) => {
                return Err("give either -c SHELL_COMMAND or COMMAND [ARGS...], not both".into());
            }
            (None, true) if descriptor.is_none() => {
                return Err(
                    "missing COMMAND: simplelock [OPTIONS] NAME [--] COMMAND [ARGS...]".into(),
                );
            }
            (None, _) => command,
        };
        if shared && permits.is_some() {
            return Err("--shared and --permits do not go together: a permit is not shared".into());
        }
        if shared && backend == Backend::Sema {
            return Err(format!(
                "--shared needs the file backend: a {} lock has one holder",
                backend.name()
            ));
        }
        let wait = match timeout {
            _ if nonblock => Wait::Try,
            Some(timeout) => Wait::For(timeout),
            None => Wait::Forever,
        };
        Ok(RunArgs {
            backend,
            target,
            wait,
            shared,
            conflict_exit_code: conflict_exit_code.into(),
            command,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse_str(args: &[&str]) -> Result<Invocation, Usage> {
        let args = ["simplelock"].iter().chain(args).map(OsString::from);
        parse(args.collect()).map_err(|err| err.to_string())?
    }

    #[test]
    fn the_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn a_run_with_every_option() {
        let got = parse_str(&[
            "-b",
            "file",
            "--timeout=1.5",
            "--shared",
            "-E",
            "75",
            "deploy",
            "--",
            "make",
            "-j",
            "--x",
        ])
        .unwrap();
        assert_eq!(
            got,
            Invocation::Run(RunArgs {
                backend: Backend::File,
                target: Target::Name("deploy".into()),
                wait: Wait::For(Duration::from_millis(1500)),
                shared: true,
                conflict_exit_code: 75,
                command: ["make", "-j", "--x"].map(OsString::from).to_vec(),
            })
        );
    }

    #[test]
    fn flock_idioms() {
        let run = |args: &[&str]| match parse_str(args) {
            Ok(Invocation::Run(run)) => run,
            other => panic!("{args:?}: {other:?}"),
        };
        let got = run(&["-nE", "3", "x", "true"]);
        assert_eq!((got.wait, got.conflict_exit_code), (Wait::Try, 3));
        assert_eq!(
            run(&["-w5", "x", "true"]).wait,
            Wait::For(Duration::from_secs(5))
        );
        assert_eq!(run(&["-n", "9"]).target, Target::Descriptor(9));
        assert!(run(&["-n", "9"]).command.is_empty());
        assert_eq!(
            run(&["x", "-c", "echo hi"]).command,
            [SHELL[0], SHELL[1], "echo hi"].map(OsString::from)
        );
        // Everything after the command's first word is the command's.
        assert_eq!(
            run(&["x", "ls", "-n", "--json"]).command,
            ["ls", "-n", "--json"].map(OsString::from)
        );
        // With --file, the first word and all after it are the command's.
        let got = run(&["-n", "--file", "/f", "sh", "-c", "exit 3"]);
        assert_eq!(got.target, Target::Path("/f".into()));
        assert_eq!(got.command, ["sh", "-c", "exit 3"].map(OsString::from));
        assert_eq!(got.wait, Wait::Try);
        let got = run(&["--file", "/f", "-n", "echo", "-n", "--json"]);
        assert_eq!(got.command, ["echo", "-n", "--json"].map(OsString::from));
        assert_eq!(got.wait, Wait::Try);
        let got = run(&["-f", "/f", "grep", "-E", "x|y", "--help"]);
        assert_eq!(
            got.command,
            ["grep", "-E", "x|y", "--help"].map(OsString::from)
        );
        // A subcommand's name is a command after --file.
        assert_eq!(
            run(&["-f", "/f", "status"]).command,
            ["status"].map(OsString::from)
        );
        // A lock called like a subcommand, after `--`.
        assert_eq!(
            run(&["--", "status", "true"]).target,
            Target::Name("status".into())
        );
    }

    #[test]
    fn permits_name_a_counting_semaphore() {
        let run = |args: &[&str]| match parse_str(args) {
            Ok(Invocation::Run(run)) => run,
            other => panic!("{args:?}: {other:?}"),
        };
        assert_eq!(
            run(&["--permits", "3", "x", "--", "sleep", "1"]).target,
            Target::Permits("x".into(), 3)
        );
        assert_eq!(
            run(&["-j4", "-n", "x", "make"]).target,
            Target::Permits("x".into(), 4)
        );
        assert_eq!(
            run(&["--jobs=2", "x", "make"]).target,
            Target::Permits("x".into(), 2)
        );
        for bad in [
            &["-j", "0", "x", "true"][..],
            &["-j", "two", "x", "true"],
            &["-j", "2", "--file", "/f", "true"],
            &["-j", "2", "--shared", "x", "true"],
            &["-j", "2", "9"],
        ] {
            assert!(parse_str(bad).is_err(), "{bad:?} was accepted");
        }
        assert_eq!(
            run(&["-b", "postgres", "-j", "2", "x", "true"]).target,
            Target::Permits("x".into(), 2)
        );
        assert!(matches!(
            parse_str(&["status", "-b", "postgres", "-j", "2", "x"]),
            Ok(Invocation::Status {
                target: Target::Permits(_, 2),
                ..
            })
        ));
        assert!(matches!(
            parse_str(&["status", "-j", "3", "x"]),
            Ok(Invocation::Status {
                target: Target::Permits(_, 3),
                ..
            })
        ));
        assert_eq!(
            parse_str(&["remove", "-j", "3", "x"]),
            Ok(Invocation::RemovePermits { name: "x".into() })
        );
    }

    #[test]
    #[cfg(unix)]
    fn a_file_path_need_not_be_utf8() {
        use std::os::unix::ffi::OsStringExt;
        let path = OsString::from_vec(b"/tmp/caf\xe9.lock".to_vec());
        let args = vec![
            "simplelock".into(),
            "--file".into(),
            path.clone(),
            "--".into(),
            "true".into(),
        ];
        match parse(args) {
            Ok(Ok(Invocation::Run(run))) => assert_eq!(run.target, Target::Path(path.into())),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn status_and_remove() {
        assert_eq!(
            parse_str(&["status", "--json", "x"]).unwrap(),
            Invocation::Status {
                backend: Backend::File,
                target: Target::Name("x".into()),
                json: true
            }
        );
        assert_eq!(
            parse_str(&["status", "--", "-x"]).unwrap(),
            Invocation::Status {
                backend: Backend::File,
                target: Target::Name("-x".into()),
                json: false
            }
        );
        assert_eq!(
            parse_str(&["remove", "x"]).unwrap(),
            Invocation::Remove { name: "x".into() }
        );
    }

    #[test]
    fn mistakes() {
        for (args, expected) in [
            (&["x"][..], "missing COMMAND"),
            (&["x", "--"][..], "missing COMMAND"),
            (
                &["--backend", "nfs", "x", "--", "true"][..],
                "invalid value 'nfs'",
            ),
            (
                &["--timeout", "soon", "x", "--", "true"][..],
                "not a number of seconds",
            ),
            (
                &["--timeout", "-1", "x", "--", "true"][..],
                "not a number of seconds",
            ),
            (&["--bogus", "x", "--", "true"][..], "unexpected argument"),
            (&["-E", "300", "x", "--", "true"][..], "0..=255"),
            (&["--", "true"][..], "missing COMMAND"),
            (&["-f", "/a"][..], "missing COMMAND"),
            (
                &["-b", "sema", "-s", "x", "--", "true"][..],
                "--shared needs the file backend",
            ),
            (
                &["-b", "sema", "-f", "/x", "true"][..],
                "--file needs the file",
            ),
            (&["-b", "sema", "9"][..], "needs the file backend"),
            (&["x", "-c", "true", "ls"][..], "not both"),
            (&["/tmp/x", "true"][..], "use --file /tmp/x"),
            (&["--json", "x", "true"][..], "unexpected argument '--json'"),
            (&["x", "--json", "true"][..], "unexpected argument '--json'"),
            (&["x", "--bogus"][..], "unexpected argument '--bogus'"),
            (
                &["-f", "/x", "--bogus"][..],
                "unexpected argument '--bogus'",
            ),
            (
                &["status", "--bogus", "-f", "/x"][..],
                "unexpected argument '--bogus'",
            ),
            (&["-f", "/x", "--help"][..], "Usage:"),
            (
                &["remove", "--backend", "file", "x"][..],
                "unexpected argument",
            ),
            // A switch given a value must not be switched on by it.
            (
                &["--shared=false", "x", "--", "true"][..],
                "unexpected value",
            ),
            (&["status", "--json=0", "x"][..], "unexpected value"),
        ] {
            let err = parse_str(args).unwrap_err();
            assert!(err.contains(expected), "{args:?}: {err}");
        }
    }
}
