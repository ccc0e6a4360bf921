//! What `simplelock status` prints: a line for people, or JSON for programs.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// A lock as `status` saw it. Serialized as is for `--json`:
/// `{"name":…,"backend":…,"location":…,"held":…,"pid":…|null,"program":…|null,"host":…|null,
/// "since":…|null}`.
#[derive(Debug, Serialize)]
pub(crate) struct Status {
    /// The lock as the user named it.
    pub(crate) name: String,
    pub(crate) backend: &'static str,
    /// Where the lock lives: its file, its shared-memory object, or its server.
    pub(crate) location: String,
    pub(crate) held: bool,
    pub(crate) pid: Option<u32>,
    /// The holder's program, when the backend records it (postgres: the connection's
    /// application name).
    pub(crate) program: Option<String>,
    /// The holder's machine, when the backend records it (postgres: the client address).
    pub(crate) host: Option<String>,
    /// Since when the holder holds it: seconds since the Unix epoch, to the millisecond.
    #[serde(serialize_with = "epoch_seconds")]
    pub(crate) since: Option<SystemTime>,
}

impl Status {
    /// `lock "job" (file, /run/lock/simplelock-1000/job.lock): held by pid 42 since …`.
    pub(crate) fn text(&self) -> String {
        let what = match (self.pid, self.since) {
            (Some(pid), since) => {
                let mut text = format!("held by pid {pid}");
                if let Some(program) = &self.program {
                    text.push_str(&format!(" ({program})"));
                }
                if let Some(host) = &self.host {
                    text.push_str(&format!(" on {host}"));
                }
                if let Some(since) = since {
                    text.push_str(&format!(" since {}", utc(since)));
                    if let Ok(age) = since.elapsed() {
                        text.push_str(&format!(" ({})", age_text(age)));
                    }
                }
                text
            }
            (None, _) if self.held => "held (by a process this system does not name)".to_owned(),
            (None, _) => "free".to_owned(),
        };
        format!(
            "lock {:?} ({}, {}): {what}\n",
            self.name, self.backend, self.location
        )
    }

    /// One line of JSON.
    pub(crate) fn json(&self) -> String {
        // Serializing strings, numbers and booleans into memory cannot fail.
        let mut json = serde_json::to_string(self).unwrap_or_default();
        json.push('\n');
        json
    }
}

fn epoch_seconds<S: serde::Serializer>(
    since: &Option<SystemTime>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let millis = since
        .and_then(|since| since.duration_since(UNIX_EPOCH).ok())
        .map(|age| age.as_millis() as f64 / 1000.0);
    millis.serialize(serializer)
}

fn age_text(age: Duration) -> String {
    let secs = age.as_secs();
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m {}s", secs / 60, secs % 60),
        _ => format!("{}h {}m", secs / 3600, secs % 3600 / 60),
    }
}

/// `2026-11-27 09:15:02 UTC`.
fn utc(time: SystemTime) -> String {
    match jiff::Timestamp::try_from(time) {
        Ok(time) => time.strftime("%Y-%m-%d %H:%M:%S UTC").to_string(),
        // Outside jiff's range (years -9999 to 9999): no holder record says that.
        Err(_) => "an unknown time".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc_civil_dates() {
        assert_eq!(utc(UNIX_EPOCH), "1970-01-01 00:00:00 UTC");
        let t = UNIX_EPOCH + Duration::from_millis(1_795_772_102_900);
        assert_eq!(utc(t), "2026-11-27 09:35:02 UTC");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(utc(leap), "2000-02-29 00:00:00 UTC");
    }

    #[test]
    fn json_is_escaped() {
        let status = Status {
            name: "a\"b\n".into(),
            backend: "file",
            location: "/x".into(),
            held: true,
            pid: Some(42),
            program: None,
            host: None,
            since: Some(UNIX_EPOCH + Duration::from_millis(1500)),
        };
        assert_eq!(
            status.json(),
            "{\"name\":\"a\\\"b\\n\",\"backend\":\"file\",\"location\":\"/x\",\"held\":true,\"pid\":42,\"program\":null,\"host\":null,\"since\":1.5}\n"
        );
        let free = Status {
            name: "a".into(),
            backend: "sema",
            location: "/dev/shm/sl.a".into(),
            held: false,
            pid: None,
            program: None,
            host: None,
            since: None,
        };
        assert_eq!(
            free.json(),
            r#"{"name":"a","backend":"sema","location":"/dev/shm/sl.a","held":false,"pid":null,"program":null,"host":null,"since":null}"#.to_owned() + "\n"
        );
        assert_eq!(free.text(), "lock \"a\" (sema, /dev/shm/sl.a): free\n");
        let remote = Status {
            name: "job".into(),
            backend: "postgres",
            location: "db:5432/jobs".into(),
            held: true,
            pid: Some(7),
            program: Some("simplelock".into()),
            host: Some("10.0.0.2".into()),
            since: None,
        };
        assert_eq!(
            remote.json(),
            r#"{"name":"job","backend":"postgres","location":"db:5432/jobs","held":true,"pid":7,"program":"simplelock","host":"10.0.0.2","since":null}"#.to_owned() + "\n"
        );
        assert_eq!(
            remote.text(),
            "lock \"job\" (postgres, db:5432/jobs): held by pid 7 (simplelock) on 10.0.0.2\n"
        );
    }
}
