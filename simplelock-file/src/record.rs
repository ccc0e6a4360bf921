//! The holder record kept at the start of a lock file: the format, and nothing else.
//!
//! ```text
//! simplelock 1 held pid=4242 since=1732712345.123456                 ⏎
//! simplelock 1 free pid=4242 since=1732712399.000001                 ⏎
//! ```
//!
//! One line of exactly [`RECORD_LEN`] bytes of ASCII: the magic word `simplelock`, the format
//! version `1`, the state (`held` or `free`), the process id of the holder that wrote it, and
//! the time of that state change in seconds and microseconds since the Unix epoch; padded with
//! spaces and ended by a newline. Fixed size, so a rewrite is a single `pwrite` at offset 0 that
//! replaces the whole line and never changes the file's length once the line is there.
//!
//! What is not a version 1 record is never written over: see [`Record::Foreign`].

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The length of a record, newline included.
pub(crate) const RECORD_LEN: usize = 64;

/// How every record starts.
const MAGIC: &[u8] = b"simplelock ";
/// The version this crate reads and writes.
const VERSION: &[u8] = b"1 ";

/// What the last writer said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// An exclusive holder acquired the lock and has not released it (yet, or ever: it died).
    Held,
    /// The last exclusive holder released the lock.
    Free,
}

/// A parsed version 1 record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) state: State,
    /// The process that wrote the record.
    pub(crate) pid: u32,
    /// When it wrote it.
    pub(crate) since: SystemTime,
}

/// What the first bytes of a lock file say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Record {
    /// An empty file: a lock file nobody has held exclusively yet. Ours to write.
    Empty,
    /// A record of ours.
    Ours(Entry),
    /// Our magic and version, but the rest does not parse: a write torn by a power loss or a
    /// crash of the machine. Ours to overwrite if the file is no longer than one record (a
    /// longer file only starts like one: someone's data); the previous holder is unknown.
    Damaged,
    /// Anything else: a file with someone's data in it (used as a lock, which flock allows), or
    /// a record of a later format version. Never written, never truncated.
    Foreign,
}

/// Parse the first bytes of a lock file (at most [`RECORD_LEN`] of them are looked at).
pub(crate) fn parse(bytes: &[u8]) -> Record {
    if bytes.is_empty() {
        return Record::Empty;
    }
    let Some(rest) = bytes.strip_prefix(MAGIC) else {
        return Record::Foreign;
    };
    let Some(rest) = rest.strip_prefix(VERSION) else {
        return Record::Foreign;
    };
    parse_v1(rest).map_or(Record::Damaged, Record::Ours)
}

/// `held pid=4242 since=1732712345.123456` followed by spaces and a newline.
fn parse_v1(rest: &[u8]) -> Option<Entry> {
    let line = std::str::from_utf8(rest).ok()?;
    if rest.len() != RECORD_LEN - MAGIC.len() - VERSION.len() || !line.ends_with('\n') {
        return None;
    }
    let mut words = line.split_ascii_whitespace();
    let state = match words.next()? {
        "held" => State::Held,
        "free" => State::Free,
        _ => return None,
    };
    let pid: u32 = digits(words.next()?.strip_prefix("pid=")?)?;
    let (secs, micros) = words.next()?.strip_prefix("since=")?.split_once('.')?;
    if micros.len() != 6 || words.next().is_some() {
        return None;
    }
    let secs: u64 = digits(secs)?;
    let micros: u32 = digits(micros)?;
    let since = UNIX_EPOCH.checked_add(Duration::new(secs, micros * 1000))?;
    Some(Entry { state, pid, since })
}

/// A decimal number of ASCII digits only (no sign, no `+`).
fn digits<T: std::str::FromStr>(text: &str) -> Option<T> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// The record for `state`, written by process `pid` at `since`.
///
/// A time before the epoch is written as the epoch: the record is for people and for `since`
/// in [`Holder`](simplelock_core::Holder), not for ordering.
pub(crate) fn format(state: State, pid: u32, since: SystemTime) -> [u8; RECORD_LEN] {
    let age = since.duration_since(UNIX_EPOCH).unwrap_or_default();
    let mut out = [b' '; RECORD_LEN];
    let mut at = 0;
    let mut put = |bytes: &[u8]| {
        let room = (RECORD_LEN - 1).saturating_sub(at);
        let bytes = &bytes[..bytes.len().min(room)];
        out[at..at + bytes.len()].copy_from_slice(bytes);
        at += bytes.len();
    };
    put(MAGIC);
    put(VERSION);
    put(match state {
        State::Held => b"held pid=",
        State::Free => b"free pid=",
    });
    let mut number = [0u8; 20];
    put(decimal(u64::from(pid), 1, &mut number));
    put(b" since=");
    put(decimal(age.as_secs(), 1, &mut number));
    put(b".");
    put(decimal(u64::from(age.subsec_micros()), 6, &mut number));
    // The longest line (u32 pid, u64 seconds) is 11 + 2 + 9 + 10 + 7 + 20 + 1 + 6 = 66 bytes,
    // but seconds only reach 12 digits in the year 33658 and pids stay below 2^22 on Linux:
    // in practice the line is about 50 bytes. Past 63 bytes `put` cuts it, and the reader then
    // sees a damaged record: an unknown previous holder, never a wrong one.
    out[RECORD_LEN - 1] = b'\n';
    out
}

/// `value` in decimal, at least `width` digits with leading zeros, written into `buf`.
fn decimal(mut value: u64, width: usize, buf: &mut [u8; 20]) -> &[u8] {
    let mut start = buf.len();
    while value > 0 || buf.len() - start < width {
        start -= 1;
        buf[start] = b'0' + (value % 10) as u8;
        value /= 10;
    }
    &buf[start..]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64, micros: u32) -> SystemTime {
        UNIX_EPOCH + Duration::new(secs, micros * 1000)
    }

    #[test]
    fn format_is_one_fixed_size_human_readable_line() {
        let line = format(State::Held, 4242, at(1_732_712_345, 123_456));
        assert_eq!(line.len(), RECORD_LEN);
        let text = std::str::from_utf8(&line).unwrap();
        assert_eq!(
            text.trim_end(),
            "simplelock 1 held pid=4242 since=1732712345.123456"
        );
        assert!(text.ends_with('\n'));
        let free = format(State::Free, 7, at(5, 1));
        assert_eq!(
            std::str::from_utf8(&free).unwrap().trim_end(),
            "simplelock 1 free pid=7 since=5.000001"
        );
    }

    #[test]
    fn parse_reads_back_what_format_writes() {
        for (state, pid, since) in [
            (State::Held, 1, at(0, 0)),
            (State::Free, 4_194_304, at(1_732_712_345, 999_999)),
            (State::Held, u32::MAX, at(99_999_999_999, 10)),
        ] {
            let line = format(state, pid, since);
            assert_eq!(
                parse(&line),
                Record::Ours(Entry { state, pid, since }),
                "{}",
                String::from_utf8_lossy(&line)
            );
        }
    }

    #[test]
    fn empty_is_ours_and_anything_without_the_magic_is_foreign() {
        assert_eq!(parse(b""), Record::Empty);
        assert_eq!(parse(b"hello world\n"), Record::Foreign);
        assert_eq!(parse(b"simple"), Record::Foreign);
        assert_eq!(parse(&[0u8; RECORD_LEN]), Record::Foreign);
        // A later format version is not ours to overwrite.
        let mut v2 = format(State::Held, 1, at(1, 0));
        v2[11] = b'2';
        assert_eq!(parse(&v2), Record::Foreign);
        // Someone's text that happens to start with our word.
        assert_eq!(parse(b"simplelock is a crate\n"), Record::Foreign);
    }

    #[test]
    fn torn_or_edited_records_are_damaged_not_misread() {
        let good = format(State::Held, 4242, at(1_732_712_345, 123_456));
        assert_eq!(parse(&good[..40]), Record::Damaged, "short write");
        let mut bad_state = good;
        bad_state[13..17].copy_from_slice(b"hold");
        assert_eq!(parse(&bad_state), Record::Damaged);
        let mut bad_pid = good;
        bad_pid[22] = b'x';
        assert_eq!(parse(&bad_pid), Record::Damaged);
        let mut no_newline = good;
        no_newline[RECORD_LEN - 1] = b' ';
        assert_eq!(parse(&no_newline), Record::Damaged);
        let padded = |line: &str| format!("{line:<63}\n").into_bytes();
        assert_eq!(
            parse(&padded("simplelock 1 held pid=42 since=1.000000")),
            Record::Ours(Entry {
                state: State::Held,
                pid: 42,
                since: at(1, 0)
            })
        );
        for signed in [
            "simplelock 1 held pid=+42 since=1.000000",
            "simplelock 1 held pid=42 since=+1.000000",
        ] {
            assert_eq!(parse(&padded(signed)), Record::Damaged, "{signed}");
        }
        let unpadded = b"simplelock 1 held pid=42 since=1.000000";
        assert_eq!(parse(unpadded), Record::Damaged, "not padded to 64 bytes");
    }

    #[test]
    fn an_overlong_line_is_cut_and_read_as_damaged_not_misread() {
        let far = Duration::from_secs(10u64.pow(18));
        match UNIX_EPOCH.checked_add(far) {
            Some(far) => {
                let line = format(State::Held, u32::MAX, far);
                assert_eq!(line[RECORD_LEN - 1], b'\n');
                assert_eq!(parse(&line), Record::Damaged);
            }
            // Windows' clock ends in the year 30828: no time it can give makes the line too
            // long, and the latest one is read back as written.
            None => {
                let mut latest = Duration::ZERO;
                let mut step = far;
                while step > Duration::from_secs(1) {
                    step /= 2;
                    if UNIX_EPOCH.checked_add(latest + step).is_some() {
                        latest += step;
                    }
                }
                let latest = Duration::from_secs(latest.as_secs());
                let line = format(State::Held, u32::MAX, UNIX_EPOCH + latest);
                assert_eq!(
                    parse(&line),
                    Record::Ours(Entry {
                        state: State::Held,
                        pid: u32::MAX,
                        since: UNIX_EPOCH + latest
                    })
                );
            }
        }
    }

    #[test]
    fn times_before_the_epoch_are_written_as_the_epoch() {
        let line = format(State::Free, 3, UNIX_EPOCH - Duration::from_secs(10));
        assert_eq!(
            parse(&line),
            Record::Ours(Entry {
                state: State::Free,
                pid: 3,
                since: UNIX_EPOCH
            })
        );
    }
}
