//! The shared state file the workers update inside the lock, and each worker's own tally.
//!
//! The state is one small record read and written whole with `pread`/`pwrite`, so a worker
//! killed at any instant leaves either the old or the new record, never half of one.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// What the workers share. Every field is written only by the holder of the lock — unless the
/// lock fails, which is what the fields are there to catch.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct State {
    /// The pid of the worker inside its critical section, 0 between critical sections.
    pub(crate) occupant: u32,
    /// The pid whose death the last recovery noticed.
    pub(crate) last_recovered_from: u32,
    /// Incremented by a deliberately racy read (at entry) and write (at exit).
    pub(crate) counter: u64,
    /// Critical sections entered.
    pub(crate) entries: u64,
    /// Entries that found the occupant dead: a holder was killed inside its critical section.
    pub(crate) recoveries: u64,
    /// Recoveries where the lock reported `PreviousHolder::Died`, as it must.
    pub(crate) died_reported: u64,
    /// Recoveries where it did not.
    pub(crate) deaths_missed: u64,
    /// Entries told the previous holder died although the occupant marker was clear (a holder
    /// killed after it took the lock but before it set the marker, or after it cleared it).
    pub(crate) died_outside_marker: u64,
    /// Entries that found a live occupant, or exits that found another: two holders at once.
    pub(crate) overlaps: u64,
    /// When the last entry happened, in nanoseconds since the Unix epoch.
    pub(crate) last_entry_ns: u64,
    /// When the last recovery (an entry that found a dead occupant) happened, likewise.
    pub(crate) last_recovery_ns: u64,
}

const SIZE: usize = 88;

impl State {
    fn to_bytes(self) -> [u8; SIZE] {
        let mut out = [0u8; SIZE];
        out[0..4].copy_from_slice(&self.occupant.to_le_bytes());
        out[4..8].copy_from_slice(&self.last_recovered_from.to_le_bytes());
        let words = [
            self.counter,
            self.entries,
            self.recoveries,
            self.died_reported,
            self.deaths_missed,
            self.died_outside_marker,
            self.overlaps,
            self.last_entry_ns,
            self.last_recovery_ns,
        ];
        for (i, word) in words.iter().enumerate() {
            out[8 + 8 * i..16 + 8 * i].copy_from_slice(&word.to_le_bytes());
        }
        out
    }

    fn from_bytes(bytes: &[u8; SIZE]) -> Self {
        let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
        let u64_at =
            |i: usize| u64::from_le_bytes(bytes[8 + 8 * i..16 + 8 * i].try_into().unwrap());
        State {
            occupant: u32_at(0),
            last_recovered_from: u32_at(4),
            counter: u64_at(0),
            entries: u64_at(1),
            recoveries: u64_at(2),
            died_reported: u64_at(3),
            deaths_missed: u64_at(4),
            died_outside_marker: u64_at(5),
            overlaps: u64_at(6),
            last_entry_ns: u64_at(7),
            last_recovery_ns: u64_at(8),
        }
    }
}

/// The state file of a run.
#[derive(Debug)]
pub(crate) struct StateFile(File);

impl StateFile {
    /// Creates `path` with a zero state.
    pub(crate) fn create(path: &Path) -> io::Result<Self> {
        let file = File::create(path)?;
        file.write_all_at(&State::default().to_bytes(), 0)?;
        Ok(StateFile(file))
    }

    pub(crate) fn open(path: &Path) -> io::Result<Self> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map(StateFile)
    }

    pub(crate) fn read(&self) -> io::Result<State> {
        let mut bytes = [0u8; SIZE];
        self.0.read_exact_at(&mut bytes, 0)?;
        Ok(State::from_bytes(&bytes))
    }

    pub(crate) fn write(&self, state: &State) -> io::Result<()> {
        self.0.write_all_at(&state.to_bytes(), 0)
    }
}

/// What one worker did, kept in its own file and rewritten after every critical section.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tally {
    /// Critical sections completed (counter written).
    pub(crate) completed: u64,
}

impl Tally {
    pub(crate) fn write(&self, file: &File) -> io::Result<()> {
        file.write_all_at(&self.completed.to_le_bytes(), 0)
    }

    /// The tally in `path`; zero if the worker died before writing one.
    pub(crate) fn read(path: &Path) -> io::Result<Self> {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Tally::default()),
            Err(e) => return Err(e),
        };
        let Some(completed) = bytes.get(..8) else {
            return Ok(Tally::default());
        };
        Ok(Tally {
            completed: u64::from_le_bytes(completed.try_into().unwrap()),
        })
    }
}

/// Nanoseconds since the Unix epoch: a clock every process reads alike.
pub(crate) fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Whether process `pid` is alive and can still touch the state: it exists, is not a zombie,
/// and is not already exiting. The last point matters: a SIGKILLed process releases its locks
/// while it exits, before it becomes a zombie, so the next holder can meet it still running.
pub(crate) fn alive(pid: u32) -> bool {
    /// `PF_EXITING` in the kernel's task flags (field 9 of /proc/PID/stat).
    const PF_EXITING: u64 = 0x4;
    let Some(fields) = crate::child::stat_fields(pid) else {
        return false;
    };
    let state = fields.first().map_or("X", String::as_str);
    let flags = fields
        .get(6)
        .and_then(|f| f.parse::<u64>().ok())
        .unwrap_or(0);
    state != "Z" && state != "X" && flags & PF_EXITING == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips() {
        let state = State {
            occupant: 7,
            last_recovered_from: 9,
            counter: 1 << 40,
            entries: 2,
            recoveries: 3,
            died_reported: 4,
            deaths_missed: 5,
            died_outside_marker: 6,
            overlaps: 8,
            last_entry_ns: u64::MAX,
            last_recovery_ns: 10,
        };
        assert_eq!(State::from_bytes(&state.to_bytes()), state);
    }

    #[test]
    fn this_process_is_alive_and_a_reaped_child_is_not() {
        assert!(alive(std::process::id()));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(!alive(pid));
    }
}
