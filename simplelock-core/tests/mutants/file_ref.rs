//! `FileRef`: a correct backend across processes, on `std::fs::File::lock` (`flock` on Unix),
//! with a record of the holder's state in the file — and its mutants, each with one bug.
//!
//! The record is one line, `held PID` while an exclusive holder holds the lock and `free PID`
//! after a clean release; the next holder reads it right after it gets the lock: `held` means
//! that its predecessor died holding it.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::time::Duration;

use simplelock_core::{
    ConcreteLock, Holder, LockStatus, PreviousHolder, SimpleLockError, SimpleLockResult,
};

/// One realistic bug, or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileBug {
    /// The correct backend.
    None,
    /// A `held` record counts as a holder, alive or not: a killed holder keeps the lock forever.
    HeldByRecord,
    /// The record is never read: the next holder always learns `Released`.
    NeverReportsDied,
    /// The release does not write `free`: every clean release looks like a death.
    NoFreeRecord,
    /// `holder()` reports this process instead of the holder in the record.
    HolderOwnPid,
}

/// A handle on the lock in the file at `path`.
#[derive(Debug)]
pub(crate) struct FileRef {
    path: PathBuf,
    file: File,
    held: bool,
    previous: PreviousHolder,
    bug: FileBug,
}

fn os(path: &std::path::Path, doing: &str, e: std::io::Error) -> SimpleLockError {
    SimpleLockError::from_io(path.display().to_string(), doing, e)
}

impl FileRef {
    pub(crate) fn open(path: PathBuf, bug: FileBug) -> SimpleLockResult<FileRef> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| os(&path, "opening the lock file", e))?;
        Ok(FileRef {
            path,
            file,
            held: false,
            previous: PreviousHolder::Unknown,
            bug,
        })
    }

    fn name(&self) -> String {
        self.path.display().to_string()
    }

    fn record(&self) -> String {
        let mut text = String::new();
        let mut file = &self.file;
        let _ = file.seek(SeekFrom::Start(0));
        let _ = file.read_to_string(&mut text);
        text
    }

    fn write_record(&self, state: &str) -> SimpleLockResult<()> {
        let mut file = &self.file;
        file.set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)))
            .and_then(|_| writeln!(file, "{state} {}", std::process::id()))
            .map_err(|e| os(&self.path, "writing the record", e))
    }

    fn recorded_holder(&self) -> Option<Holder> {
        let record = self.record();
        let pid = record.strip_prefix("held ")?.trim().parse().ok()?;
        Some(Holder::new(pid))
    }

    /// Whether someone else holds the lock, probed on a descriptor of its own.
    fn taken(&self) -> SimpleLockResult<bool> {
        let probe = File::open(&self.path).map_err(|e| os(&self.path, "probing", e))?;
        match probe.try_lock() {
            Ok(()) => Ok(false),
            Err(std::fs::TryLockError::WouldBlock) => Ok(true),
            Err(std::fs::TryLockError::Error(e)) => Err(os(&self.path, "probing", e)),
        }
    }

    fn acquired(&mut self) -> SimpleLockResult<()> {
        let died = self.record().starts_with("held");
        self.previous = if died && self.bug != FileBug::NeverReportsDied {
            PreviousHolder::Died
        } else {
            PreviousHolder::Released
        };
        self.write_record("held")?;
        self.held = true;
        Ok(())
    }
}

impl ConcreteLock for FileRef {
    fn status(&self) -> SimpleLockResult<LockStatus> {
        Ok(if self.held {
            LockStatus::Mine
        } else if self.taken()? {
            LockStatus::Taken
        } else {
            LockStatus::Open
        })
    }

    fn try_lock(&mut self) -> SimpleLockResult<()> {
        if self.held {
            return Err(SimpleLockError::already_held(self.name()));
        }
        if self.bug == FileBug::HeldByRecord && self.record().starts_with("held") {
            return Err(SimpleLockError::already_locked(
                self.name(),
                self.recorded_holder(),
            ));
        }
        match self.file.try_lock() {
            Ok(()) => self.acquired(),
            Err(std::fs::TryLockError::WouldBlock) => Err(SimpleLockError::already_locked(
                self.name(),
                self.recorded_holder(),
            )),
            Err(std::fs::TryLockError::Error(e)) => Err(os(&self.path, "locking", e)),
        }
    }

    fn hang_lock(&mut self) -> SimpleLockResult<()> {
        if self.held {
            return Err(SimpleLockError::already_held(self.name()));
        }
        if self.bug == FileBug::HeldByRecord {
            return self.timed_lock(Duration::MAX);
        }
        self.file.lock().map_err(|e| os(&self.path, "locking", e))?;
        self.acquired()
    }

    fn try_unlock(&mut self) -> SimpleLockResult<()> {
        if !self.held {
            return Err(SimpleLockError::not_held(self.name()));
        }
        if self.bug != FileBug::NoFreeRecord {
            self.write_record("free")?;
        }
        self.file
            .unlock()
            .map_err(|e| SimpleLockError::unable_to_unlock(self.name(), "unlocking", Some(e)))?;
        self.held = false;
        Ok(())
    }

    fn previous_holder(&self) -> PreviousHolder {
        self.previous
    }

    fn holder(&self) -> SimpleLockResult<Option<Holder>> {
        if self.held {
            return Ok(Some(Holder::new(std::process::id())));
        }
        if !self.taken()? {
            return Ok(None);
        }
        Ok(if self.bug == FileBug::HolderOwnPid {
            Some(Holder::new(std::process::id()))
        } else {
            self.recorded_holder()
        })
    }
}

impl Drop for FileRef {
    fn drop(&mut self) {
        if self.held {
            let _ = self.try_unlock();
        }
    }
}
