//! Who holds a lock: `pg_locks` joined with `pg_stat_activity`, and the `application_name` our
//! holders set.
//!
//! Every connection of this crate sets its `application_name` to
//!
//! ```text
//! sl SINCE PID PROGRAM@HOST
//! ```
//!
//! where SINCE is the server's clock at the moment the lock was granted (milliseconds since the
//! Unix epoch; `-` before the first acquisition), PID the client's process id on its machine,
//! PROGRAM the name of its executable and HOST its host name, cut to PostgreSQL's 63 bytes.
//! The acquisition statement itself updates SINCE, so it costs no round trip. Holders that are
//! not ours (a Python job taking the same key) show with their server pid, client address and
//! `backend_start` instead.
//!
//! PostgreSQL shows `application_name` of every session to everyone, but `client_addr` and
//! `backend_start` of other roles' sessions only to superusers and members of
//! `pg_read_all_stats`; what is hidden is left out.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use simplelock_core::Holder;
use tokio_postgres::Row;

/// The column list of [`HOLDERS`]: `(pid, application_name, client_addr, backend_start_ms,
/// exclusive)`.
pub(crate) const HOLDERS: &str = "\
SELECT l.pid, a.application_name, host(a.client_addr), \
       (extract(epoch FROM a.backend_start) * 1000)::bigint, l.mode = 'ExclusiveLock' \
FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid \
WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 \
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
  AND l.classid::bigint = $1 AND l.objid::bigint = $2 AND l.pid <> pg_backend_pid() \
ORDER BY l.mode = 'ExclusiveLock' DESC, l.pid";

/// The SQL expression that sets `application_name` to `sl SINCE ` and the parameter `$2`
/// ([`app_base`]), SINCE being the server's clock now: part of each acquisition statement.
pub(crate) const SET_APP: &str = "set_config('application_name', \
    'sl ' || (extract(epoch FROM clock_timestamp()) * 1000)::bigint || ' ' || $2::text, false)";

/// One holder of a lock as PostgreSQL shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteHolder {
    /// The server process (backend) serving the holder's connection: what
    /// `pg_terminate_backend` takes.
    pub backend_pid: i32,
    /// The holder's process id on its own machine, if it is a simplelock client.
    pub client_pid: Option<u32>,
    /// The holder's program, if it is a simplelock client.
    pub program: Option<String>,
    /// The holder's host name as it calls itself, if it is a simplelock client; else its
    /// address as the server sees it, where visible.
    pub host: Option<String>,
    /// The holder's address as the server sees it (`None` for a local socket, or hidden).
    pub client_addr: Option<String>,
    /// When the lock was granted (server clock), for a simplelock client; else when its
    /// connection started, where visible.
    pub since: Option<SystemTime>,
    /// Whether it holds the lock exclusively (else shared).
    pub exclusive: bool,
    /// Its `application_name`, as is.
    pub application_name: String,
}

impl RemoteHolder {
    pub(crate) fn from_row(row: &Row) -> Self {
        let backend_pid: i32 = row.get(0);
        let application_name: Option<String> = row.get(1);
        let client_addr: Option<String> = row.get(2);
        let backend_start: Option<i64> = row.get(3);
        let exclusive: bool = row.get(4);
        let application_name = application_name.unwrap_or_default();
        let ours = parse_application_name(&application_name);
        let millis = |ms: i64| UNIX_EPOCH.checked_add(Duration::from_millis(ms.max(0) as u64));
        RemoteHolder {
            backend_pid,
            client_pid: ours.as_ref().map(|o| o.pid),
            program: ours.as_ref().map(|o| o.program.clone()),
            host: ours
                .as_ref()
                .map(|o| o.host.clone())
                .or_else(|| client_addr.clone()),
            client_addr,
            since: match &ours {
                Some(o) => o.since_ms.and_then(millis),
                None => backend_start.and_then(millis),
            },
            exclusive,
            application_name,
        }
    }

    /// As the core's [`Holder`]: the client's pid (the server pid for holders that are not
    /// simplelock clients), host, program and since.
    pub fn to_holder(&self) -> Holder {
        let mut holder = Holder::new(self.client_pid.unwrap_or(self.backend_pid as u32));
        if let Some(since) = self.since {
            holder = holder.with_since(since);
        }
        if let Some(host) = &self.host {
            holder = holder.with_host(host.clone());
        }
        let program = match &self.program {
            Some(p) => p.clone(),
            None if self.application_name.is_empty() => format!("server pid {}", self.backend_pid),
            None => format!(
                "{} (server pid {})",
                self.application_name, self.backend_pid
            ),
        };
        holder.with_program(program)
    }
}

/// What a simplelock client put in its `application_name`.
#[derive(Debug, PartialEq, Eq)]
struct Ours {
    since_ms: Option<i64>,
    pid: u32,
    program: String,
    host: String,
}

fn parse_application_name(name: &str) -> Option<Ours> {
    let rest = name.strip_prefix("sl ")?;
    let (since, rest) = rest.split_once(' ')?;
    let (pid, rest) = rest.split_once(' ')?;
    let (program, host) = rest.rsplit_once('@').unwrap_or((rest, ""));
    Some(Ours {
        since_ms: since.parse().ok(),
        pid: pid.parse().ok()?,
        program: program.to_owned(),
        host: host.to_owned(),
    })
}

/// The part of `application_name` after the time: `PID PROGRAM@HOST`, printable ASCII only
/// (PostgreSQL turns anything else into `?`), at most 46 bytes (17 go to `sl SINCE `).
pub(crate) fn app_base() -> &'static str {
    static BASE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BASE.get_or_init(|| {
        let base = format!("{} {}@{}", std::process::id(), program_name(), host_name());
        base.chars()
            .map(|c| {
                if c.is_ascii_graphic() || c == ' ' {
                    c
                } else {
                    '?'
                }
            })
            .take(46)
            .collect()
    })
}

/// The `application_name` of a connection that holds nothing yet: `sl - PID PROGRAM@HOST`.
pub(crate) fn idle_application_name(base: &str) -> String {
    cut(format!("sl - {base}"))
}

/// Cuts `name` to PostgreSQL's 63 bytes, on a character boundary (the server would cut it
/// anywhere, and warn).
pub(crate) fn cut(mut name: String) -> String {
    let mut end = name.len().min(63);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name.truncate(end);
    name
}

/// This program's name: the file name of its executable.
pub(crate) fn program_name() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "?".to_owned())
        .replace([' ', '@'], "_")
}

/// This machine's host name, as the kernel knows it.
pub(crate) fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "?".to_owned())
        .replace([' ', '@'], "_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_application_name_round_trips() {
        assert_eq!(
            parse_application_name("sl 1764250000123 4242 cron-job@web-3"),
            Some(Ours {
                since_ms: Some(1_764_250_000_123),
                pid: 4242,
                program: "cron-job".into(),
                host: "web-3".into(),
            })
        );
        let idle = parse_application_name(&idle_application_name("7 p@h")).unwrap();
        assert_eq!((idle.since_ms, idle.pid), (None, 7));
        assert_eq!(parse_application_name("psql"), None);
        assert_eq!(parse_application_name("sl x notapid p@h"), None);
    }

    #[test]
    fn names_are_cut_on_a_character_boundary() {
        let long = format!("sl - 1 {}@h", "é".repeat(40));
        let cut = cut(long);
        assert!(cut.len() <= 63);
        assert!(cut.ends_with('é'));
    }
}
