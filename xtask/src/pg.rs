//! The PostgreSQL server that the tests of `simplelock-postgres` (and the CLI's `-b postgres`
//! tests) talk to: `$SIMPLELOCK_POSTGRES_URL`, else the local server's `test` database on
//! 127.0.0.1:5432; if none answers, a throwaway cluster started with `initdb`/`pg_ctl` and
//! removed afterwards; if PostgreSQL is not installed, an error that says how to get it. Never a
//! silent skip: without a server those tests would fail anyway, with the same advice.

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::project_root;

/// The variable the tests read the server's URL from.
pub(crate) const URL_VAR: &str = "SIMPLELOCK_POSTGRES_URL";
const DEFAULT_URL: &str = "postgres://127.0.0.1:5432/test";

/// A server for the tests; a throwaway cluster is stopped and removed on drop.
#[derive(Debug)]
pub(crate) struct Server {
    pub(crate) url: String,
    cluster: Option<Cluster>,
}

#[derive(Debug)]
struct Cluster {
    dir: PathBuf,
    /// The user the cluster runs as, when we are root (PostgreSQL refuses to run as root).
    run_as: Option<String>,
    /// `pg_ctl`, to stop it.
    pg_ctl: String,
}

impl Server {
    /// `command` with the server's URL in its environment.
    pub(crate) fn apply(&self, command: &mut Command) {
        command.env(URL_VAR, &self.url);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(cluster) = &self.cluster {
            let dir = cluster.dir.join("data").display().to_string();
            let stop = as_user(
                &cluster.run_as,
                &cluster.pg_ctl,
                &["-D", &dir, "-m", "immediate", "stop"],
            )
            .status();
            match stop {
                Ok(status) if status.success() => {
                    let _ = fs::remove_dir_all(&cluster.dir);
                }
                // Keep the folder, so that whoever looks can stop the server.
                other => eprintln!(
                    "xtask: the throwaway PostgreSQL cluster in {dir} did not stop: {other:?}"
                ),
            }
        }
    }
}

/// A server that answers, as described in the module docs.
pub(crate) fn ensure() -> Result<Server, String> {
    let url = std::env::var(URL_VAR).unwrap_or_else(|_| DEFAULT_URL.to_owned());
    println!("\n==> PostgreSQL for the tests: {}", without_password(&url));
    let why = match probe(&url) {
        Ok(()) => {
            println!("<== ok: it answers");
            return Ok(Server { url, cluster: None });
        }
        Err(why) => why,
    };
    println!("<== none at {}: {why}", without_password(&url));
    if std::env::var_os(URL_VAR).is_some() {
        return Err(format!(
            "{URL_VAR} names a PostgreSQL server that does not answer: {why}"
        ));
    }
    let Some(bin) = find_bin() else {
        return Err(format!(
            "the simplelock-postgres tests need a PostgreSQL server, and none answers at \
             {DEFAULT_URL} ({why}), nor are initdb and pg_ctl installed to start a throwaway one. \
             Install PostgreSQL (Debian: apt-get install postgresql, which also starts one), or \
             point {URL_VAR} at a database you may use"
        ));
    };
    start_cluster(&bin)
}

/// Starts a cluster in `target/tmp`, on a free port of 127.0.0.1, trusting local logins.
fn start_cluster(bin: &Path) -> Result<Server, String> {
    let dir = project_root().join("target/tmp/postgres-ci");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let root = fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false);
    let run_as = root.then(|| "postgres".to_owned());
    if let Some(user) = &run_as {
        let chown = Command::new("chown")
            .args([&format!("{user}:"), &dir.display().to_string()])
            .status()
            .map_err(|e| format!("chown: {e}"))?;
        if !chown.success() {
            return Err(format!(
                "PostgreSQL refuses to run as root, and there is no user {user:?} to run the \
                 throwaway cluster as: create one (useradd {user}) or start a server yourself"
            ));
        }
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("finding a free port: {e}"))?
        .port();
    let data = dir.join("data").display().to_string();
    let log = dir.join("log").display().to_string();
    // The tests log in as the user running them (the default of libpq and tokio-postgres).
    let me = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| {
            if root {
                "root".into()
            } else {
                "postgres".into()
            }
        });
    let initdb = bin.join("initdb").display().to_string();
    crate::step(as_user(
        &run_as,
        &initdb,
        &["-D", &data, "-A", "trust", "-U", &me, "--no-sync"],
    ))?;
    let options = format!(
        "-c port={port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c fsync=off",
        dir.display()
    );
    let pg_ctl = bin.join("pg_ctl").display().to_string();
    let server = Server {
        url: format!("postgres://{me}@127.0.0.1:{port}/postgres"),
        cluster: Some(Cluster {
            dir: dir.clone(),
            run_as: run_as.clone(),
            pg_ctl: pg_ctl.clone(),
        }),
    };
    crate::step(as_user(
        &run_as,
        &pg_ctl,
        &["-D", &data, "-l", &log, "-o", &options, "-w", "start"],
    ))?;
    probe(&server.url).map_err(|why| format!("the throwaway cluster does not answer: {why}"))?;
    println!("<== throwaway cluster at {}", server.url);
    Ok(server)
}

/// `program args` run as `user` (with setpriv), or as ourselves.
fn as_user(user: &Option<String>, program: &str, args: &[&str]) -> Command {
    match user {
        Some(user) => {
            let mut cmd = Command::new("setpriv");
            cmd.args([
                &format!("--reuid={user}"),
                &format!("--regid={user}"),
                "--init-groups",
                "--",
                program,
            ])
            .args(args)
            .current_dir("/");
            cmd
        }
        None => {
            let mut cmd = Command::new(program);
            cmd.args(args);
            cmd
        }
    }
}

/// The folder holding `initdb` and `pg_ctl`: on the PATH, or Debian's versioned folder.
fn find_bin() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    if let Ok(entries) = fs::read_dir("/usr/lib/postgresql") {
        let mut versions: Vec<PathBuf> = entries.flatten().map(|e| e.path().join("bin")).collect();
        versions.sort();
        dirs.extend(versions.into_iter().rev());
    }
    dirs.into_iter()
        .find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file())
}

/// `url` with any password replaced by `***`.
fn without_password(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// The parts of a `postgres://[user[:password]@]host[:port][/db]` URL the probe needs.
fn parse(url: &str) -> Result<(String, u16, String, String), String> {
    let rest = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
        .ok_or_else(|| format!("{URL_VAR} must be a postgres:// URL for cargo xtask ci"))?;
    let rest = rest.split('?').next().unwrap_or_default();
    let (creds, rest) = match rest.rsplit_once('@') {
        Some((creds, rest)) => (Some(creds), rest),
        None => (None, rest),
    };
    let user = creds
        .map(|c| c.split(':').next().unwrap_or_default().to_owned())
        .filter(|u| !u.is_empty())
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "root".to_owned());
    let (hostport, db) = rest.split_once('/').unwrap_or((rest, ""));
    let (host, port) = match hostport.rsplit_once(':') {
        Some((host, port)) => (
            host,
            port.parse().map_err(|_| format!("bad port in {url:?}"))?,
        ),
        None => (hostport, 5432),
    };
    let host = if host.is_empty() { "localhost" } else { host };
    let db = if db.is_empty() {
        user.clone()
    } else {
        db.to_owned()
    };
    Ok((host.to_owned(), port, user, db))
}

/// Sends a startup message and reads the answer: any authentication request means a server
/// that knows the user and database; an error response is reported in its words.
fn probe(url: &str) -> Result<(), String> {
    let (host, port, user, db) = parse(url)?;
    let addr = (host.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| format!("resolving {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host} has no address"))?;
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(3))
        .map_err(|e| format!("connecting to {host}:{port}: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    let mut body = 196_608u32.to_be_bytes().to_vec(); // protocol 3.0
    for (k, v) in [("user", user.as_str()), ("database", db.as_str())] {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut message = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    message.extend_from_slice(&body);
    stream
        .write_all(&message)
        .map_err(|e| format!("talking to {host}:{port}: {e}"))?;
    let mut head = [0u8; 5];
    stream
        .read_exact(&mut head)
        .map_err(|e| format!("no answer from {host}:{port}: {e}"))?;
    match head[0] {
        b'R' => Ok(()),
        b'E' => {
            let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
            let mut fields = vec![0u8; len.saturating_sub(4).min(4096)];
            let _ = stream.read_exact(&mut fields);
            let text = fields
                .split(|&b| b == 0)
                .find(|f| f.first() == Some(&b'M'))
                .map(|f| String::from_utf8_lossy(&f[1..]).into_owned())
                .unwrap_or_else(|| "an error".to_owned());
            Err(format!("the server answered: {text}"))
        }
        other => Err(format!(
            "{host}:{port} is not a PostgreSQL server (answered {other:?})"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_read_and_passwords_hidden() {
        assert_eq!(
            parse("postgres://u:pw@db:6543/jobs?sslmode=require").unwrap(),
            ("db".into(), 6543, "u".into(), "jobs".into())
        );
        assert_eq!(parse("postgres://127.0.0.1/test").unwrap().1, 5432);
        assert_eq!(
            without_password("postgres://u:pw@db/x"),
            "postgres://u:***@db/x"
        );
        assert_eq!(without_password("postgres://db/x"), "postgres://db/x");
    }
}
