//! The command line: what the user asked for, or a one-line reason why it makes no sense.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

pub(crate) const USAGE: &str = "\
simplelock — run a command while holding a lock, so that only one runs at a time

usage:
  simplelock [OPTIONS] NAME -- COMMAND [ARGS...]       run COMMAND holding the lock NAME
  simplelock [OPTIONS] --file PATH -- COMMAND [ARGS...] run COMMAND holding a lock on PATH
  simplelock status [--json] [--backend B] (NAME | --file PATH)
                                                       who holds the lock, since when
  simplelock remove NAME                               delete a semaphore lock's kernel object

options:
  -b, --backend file|sema|postgres
                            where the lock lives [file]: `file` is NAME.lock in the lock
                            folder ($SIMPLELOCK_DIR, else /run/lock/simplelock-UID, the same
                            for every process of the user whatever its environment);
                            `sema` is shared memory /dev/shm/sl.NAME; `postgres` is an
                            advisory lock on a PostgreSQL server, shared by every machine
                            that uses it (COMMAND gets the lock's fencing token in
                            $SIMPLELOCK_FENCING_TOKEN)
      --url URL             (postgres) the server, e.g. postgres://user@host/db?sslmode=require;
                            else $SIMPLELOCK_POSTGRES_URL, else the PG* variables (PGHOST, ...)
  -f, --file PATH           lock this file instead of a named lock (file backend)
  -n, --nonblock            fail at once if the lock is held
  -w, --timeout SECS        give up after SECS seconds (decimals allowed)
  -s, --shared              take a shared (reader) lock: many readers, no writer (file and
                            postgres)
  -E, --conflict-exit-code N
                            exit status when the lock was not acquired [1]
      --json                (status) print JSON
  -h, --help                this text
  -V, --version             the version

While it waits longer than a second on a terminal, simplelock shows who holds the lock.
SIGINT, SIGTERM, SIGHUP and SIGQUIT sent to simplelock are passed on to COMMAND, once (COMMAND
runs in a process group of its own unless simplelock is the foreground job of a terminal).
The lock is held until COMMAND and every process it left behind have ended: simplelock waits
for them all. With the file backend COMMAND inherits the locked file, as with flock(1): if
simplelock is killed, the lock stays held until the last process of the command tree that has
the file open ends. With the sema backend the lock dies with simplelock (COMMAND is killed with
it, processes it left behind are not). A --file lock never writes into the file: lock your
data file itself if you like; named locks keep a holder record in their own file.

exit status:
  COMMAND's own exit status (128+N if a signal N ended it)
  1 (or --conflict-exit-code)  the lock was held: --nonblock, or --timeout ran out
  1    remove: there was no such semaphore lock
  64   bad usage: unknown option, bad lock name, unknown backend, missing COMMAND
  69   the lock cannot be used: permission denied, unusable lock folder
  70   an unexpected error of the lock or of simplelock
  126  COMMAND could not be started
  127  COMMAND was not found
";

/// Exit statuses of the tool itself (the command's own status is passed through).
pub(crate) mod exit {
    pub(crate) const USAGE: i32 = 64;
    pub(crate) const UNAVAILABLE: i32 = 69;
    pub(crate) const SOFTWARE: i32 = 70;
    pub(crate) const CANNOT_EXECUTE: i32 = 126;
    pub(crate) const NOT_FOUND: i32 = 127;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    File,
    Sema,
    Postgres,
}

/// Which lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    Name(String),
    Path(PathBuf),
}

/// How to wait for the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wait {
    Forever,
    NotAtAll,
    AtMost(Duration),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RunArgs {
    pub(crate) backend: Backend,
    pub(crate) target: Target,
    pub(crate) wait: Wait,
    pub(crate) shared: bool,
    pub(crate) conflict_exit_code: i32,
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
    Help,
    Version,
}

/// A usage error, said in one line.
pub(crate) type Usage = String;

pub(crate) fn parse(args: Vec<OsString>) -> Result<Invocation, Usage> {
    let mut args = args.into_iter();
    let mut backend = None;
    let mut file: Option<PathBuf> = None;
    let mut wait = Wait::Forever;
    let mut shared = false;
    let mut conflict_exit_code = 1;
    let mut json = false;
    let mut url_given = false;
    let mut positional: Vec<String> = Vec::new();
    let mut command = None;
    while let Some(arg) = args.next() {
        if arg == "--" {
            command = Some(args.by_ref().collect::<Vec<_>>());
            break;
        }
        let text = arg
            .to_str()
            .ok_or_else(|| format!("argument {arg:?} is not valid UTF-8"))?
            .to_owned();
        // `--option=value` is the same as `--option value`.
        let (flag, inline) = match text.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => {
                (flag.to_owned(), Some(value.to_owned()))
            }
            _ => (text.clone(), None),
        };
        // A switch takes no value: `--shared=false` must not turn it on.
        let switch = || match inline {
            Some(_) => Err(format!("{flag} takes no value")),
            None => Ok(()),
        };
        let mut raw_value = |what: &str| -> Result<OsString, Usage> {
            match inline.clone() {
                Some(value) => Ok(value.into()),
                None => args.next().ok_or_else(|| format!("{flag} needs {what}")),
            }
        };
        let mut value = |what: &str| -> Result<String, Usage> {
            raw_value(what)?
                .into_string()
                .map_err(|value| format!("{flag} {value:?} is not valid UTF-8"))
        };
        match flag.as_str() {
            "-h" | "--help" => return switch().map(|()| Invocation::Help),
            "-V" | "--version" => return switch().map(|()| Invocation::Version),
            "-b" | "--backend" => {
                backend = Some(
                    match value("a backend (file, sema or postgres)")?.as_str() {
                        "file" => Backend::File,
                        "sema" => Backend::Sema,
                        "postgres" => Backend::Postgres,
                        other => {
                            return Err(format!(
                                "unknown backend {other:?}: use file, sema or postgres"
                            ));
                        }
                    },
                )
            }
            "--url" => {
                url_given = true;
                crate::pg::set_url(value("a PostgreSQL URL")?);
            }
            // A path is whatever bytes the system allows.
            "-f" | "--file" => file = Some(PathBuf::from(raw_value("a path")?)),
            "-n" | "--nonblock" | "--nb" => {
                switch()?;
                wait = Wait::NotAtAll;
            }
            "-w" | "--timeout" | "--wait" => {
                let secs = value("a number of seconds")?;
                let parsed = secs
                    .parse::<f64>()
                    .ok()
                    .and_then(|s| Duration::try_from_secs_f64(s).ok())
                    .ok_or_else(|| format!("--timeout {secs:?} is not a number of seconds"))?;
                wait = Wait::AtMost(parsed);
            }
            "-s" | "--shared" => {
                switch()?;
                shared = true;
            }
            "-E" | "--conflict-exit-code" => {
                let code = value("an exit status")?;
                conflict_exit_code = code
                    .parse::<u8>()
                    .map_err(|_| {
                        format!("--conflict-exit-code {code:?} is not a number from 0 to 255")
                    })?
                    .into();
            }
            "--json" => {
                switch()?;
                json = true;
            }
            _ if flag.starts_with('-') && flag.len() > 1 => {
                return Err(format!("unknown option {flag:?} (see --help)"));
            }
            _ => positional.push(text),
        }
    }

    if url_given && backend != Some(Backend::Postgres) {
        return Err("--url is for the postgres backend: add -b postgres".into());
    }
    let subcommand = positional.first().map(String::as_str);
    if command.is_none() && matches!(subcommand, Some("status" | "remove")) {
        let sub = positional.remove(0);
        let target = target(&mut positional, file, &sub)?;
        if sub == "remove" {
            let Target::Name(name) = target else {
                return Err(
                    "remove takes a lock NAME: file locks are never removed (see --help)".into(),
                );
            };
            if backend == Some(Backend::File) {
                return Err(
                    "remove is for semaphore locks: file locks are never removed, so that two \
                     processes can never lock two different files of one name"
                        .into(),
                );
            }
            return Ok(Invocation::Remove { name });
        }
        let backend = backend.unwrap_or(Backend::File);
        return Ok(Invocation::Status {
            backend,
            target,
            json,
        });
    }
    let command = match command {
        Some(command) if !command.is_empty() => command,
        Some(_) => return Err("missing COMMAND after --".into()),
        None if positional.len() > 1 => {
            return Err(format!(
                "put -- before the command: simplelock {} -- {}",
                positional[0],
                positional[1..].join(" ")
            ));
        }
        None => {
            return Err("missing COMMAND: simplelock [OPTIONS] NAME -- COMMAND [ARGS...]".into());
        }
    };
    let target = target(&mut positional, file, "the lock")?;
    let backend = backend.unwrap_or(Backend::File);
    if matches!(target, Target::Path(_)) && backend == Backend::Postgres {
        return Err("--file needs the file backend: a PostgreSQL lock has a NAME".into());
    }
    if shared && backend == Backend::Sema {
        return Err("--shared needs the file backend: a semaphore lock has one holder".into());
    }
    if matches!(target, Target::Path(_)) && backend == Backend::Sema {
        return Err("--file needs the file backend".into());
    }
    Ok(Invocation::Run(RunArgs {
        backend,
        target,
        wait,
        shared,
        conflict_exit_code,
        command,
    }))
}

/// The lock named by the one positional argument, or by `--file`.
fn target(
    positional: &mut Vec<String>,
    file: Option<PathBuf>,
    what: &str,
) -> Result<Target, Usage> {
    match (positional.len(), file) {
        (0, Some(path)) => Ok(Target::Path(path)),
        (1, None) => Ok(Target::Name(positional.remove(0))),
        (0, None) => Err(format!("{what} needs a lock NAME or --file PATH")),
        (_, Some(_)) => Err(format!(
            "give either a lock NAME or --file PATH, not both ({})",
            positional.join(" ")
        )),
        (_, None) => Err(format!(
            "one lock NAME expected, got {}",
            positional.join(" ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(args: &[&str]) -> Result<Invocation, Usage> {
        parse(args.iter().map(OsString::from).collect())
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
                wait: Wait::AtMost(Duration::from_millis(1500)),
                shared: true,
                conflict_exit_code: 75,
                command: ["make", "-j", "--x"].map(OsString::from).to_vec(),
            })
        );
    }

    #[test]
    fn a_file_path_need_not_be_utf8() {
        use std::os::unix::ffi::OsStringExt;
        let path = OsString::from_vec(b"/tmp/caf\xe9.lock".to_vec());
        let args = vec!["--file".into(), path.clone(), "--".into(), "true".into()];
        match parse(args) {
            Ok(Invocation::Run(run)) => assert_eq!(run.target, Target::Path(path.into())),
            other => panic!("{other:?}"),
        }
        // Where text is needed, the error says what is wrong with the value.
        let args = vec!["--timeout".into(), OsString::from_vec(vec![0xff])];
        let err = parse(args).unwrap_err();
        assert!(err.contains("not valid UTF-8"), "{err}");
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
            parse_str(&["remove", "x"]).unwrap(),
            Invocation::Remove { name: "x".into() }
        );
        // A lock may be called "status" when a command follows.
        assert!(matches!(
            parse_str(&["status", "--", "true"]),
            Ok(Invocation::Run(_))
        ));
    }

    #[test]
    fn mistakes_are_one_line_each() {
        for (args, expected) in [
            (&["x"][..], "missing COMMAND"),
            (&["x", "--"][..], "missing COMMAND after --"),
            (&["x", "ls"][..], "put -- before the command"),
            (
                &["--backend", "nfs", "x", "--", "true"][..],
                "unknown backend",
            ),
            (
                &["--timeout", "soon", "x", "--", "true"][..],
                "not a number of seconds",
            ),
            (
                &["--timeout", "-1", "x", "--", "true"][..],
                "not a number of seconds",
            ),
            (&["--bogus", "x", "--", "true"][..], "unknown option"),
            (&["-E", "300", "x", "--", "true"][..], "0 to 255"),
            (&["--", "true"][..], "needs a lock NAME"),
            (
                &["-b", "sema", "-s", "x", "--", "true"][..],
                "--shared needs the file backend",
            ),
            (
                &["remove", "--backend", "file", "x"][..],
                "file locks are never removed",
            ),
            // A switch given a value must not be switched on by it.
            (
                &["--shared=false", "x", "--", "true"][..],
                "--shared takes no value",
            ),
            (
                &["--nonblock=no", "x", "--", "true"][..],
                "--nonblock takes no value",
            ),
            (&["status", "--json=0", "x"][..], "--json takes no value"),
        ] {
            let err = parse_str(args).unwrap_err();
            assert!(err.contains(expected), "{args:?}: {err}");
            assert!(!err.contains('\n'), "{args:?}: {err}");
        }
    }
}
