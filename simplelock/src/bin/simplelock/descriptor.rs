//! A flock(2) lock on an open file the file backend cannot open for us: a descriptor simplelock
//! inherited (`( simplelock 9 …; ) 9>f`), or a folder (`--file DIR`).
//!
//! Both are flock(1)'s, and are the same lock as `simplelock --file PATH` and `flock PATH` on
//! the same file (all take flock(2) on it). Nothing is written: there is no holder record, so
//! the previous holder is `Unknown` and `status` has no pid to show.
//!
//! An inherited descriptor is locked for whoever keeps it open: simplelock locks it and exits,
//! the lock stays with the open file description, and is released when the last process that
//! has it open closes it (or unlocks it with `flock -u`). So this handle never unlocks it on
//! drop, and never closes it: the descriptor belongs to the process that opened it.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::mem::ManuallyDrop;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, RawFd};
use std::path::Path;

use simplelock::{ConcreteLock, LockStatus, SimpleLockError, SimpleLockResult};

/// The open file: ours (a folder we opened), or inherited and never closed by us.
#[derive(Debug)]
enum Opened {
    Ours(File),
    Inherited(ManuallyDrop<File>),
}

/// A flock(2) lock on an open file.
#[derive(Debug)]
pub(crate) struct DescriptorLock {
    file: Opened,
    name: String,
    shared: bool,
    held: bool,
}

impl DescriptorLock {
    /// The open file `fd`, which this process inherited.
    ///
    /// # Errors
    /// [`SimpleLockError::InvalidName`] if `fd` is not an open descriptor of this process.
    pub(crate) fn inherited(fd: RawFd, shared: bool) -> SimpleLockResult<DescriptorLock> {
        let name = format!("descriptor {fd}");
        // Nothing of ours opened `fd` (this runs before anything opens a file): if it is open
        // now, it is the one we inherited, and nothing of ours closes it.
        if fd < 0 || std::fs::symlink_metadata(format!("/proc/self/fd/{fd}")).is_err() {
            return Err(SimpleLockError::invalid_name(
                name,
                "not an open file of simplelock: open it in the shell (`9>file`)",
            ));
        }
        // SAFETY: `fd` is open (checked above) and owned by no other object of this process;
        // the `File` is never dropped (`ManuallyDrop`), so it is never closed through us, and
        // flock(2) on it works on any open file.
        let file = ManuallyDrop::new(unsafe { File::from_raw_fd(fd) });
        Ok(DescriptorLock::new(Opened::Inherited(file), name, shared))
    }

    /// The folder at `path`, opened read-only (flock needs no write access).
    ///
    /// # Errors
    /// [`SimpleLockError::PermissionDenied`] if it cannot be opened for that reason, others
    /// from the system; each names the folder.
    pub(crate) fn folder(path: &Path, shared: bool) -> SimpleLockResult<DescriptorLock> {
        let name = path.display().to_string();
        let file = File::open(path)
            .map_err(|err| SimpleLockError::from_io(&name, "opening the folder", err))?;
        Ok(DescriptorLock::new(Opened::Ours(file), name, shared))
    }

    fn new(file: Opened, name: String, shared: bool) -> DescriptorLock {
        DescriptorLock {
            file,
            name,
            shared,
            held: false,
        }
    }

    fn file(&self) -> &File {
        match &self.file {
            Opened::Ours(file) => file,
            Opened::Inherited(file) => file,
        }
    }

    /// The descriptor the command is to inherit.
    pub(crate) fn raw_fd(&self) -> RawFd {
        self.file().as_fd().as_raw_fd()
    }

    /// Leaves the lock with the open file, for whoever keeps it open (an inherited
    /// descriptor's holder is the process that opened it).
    pub(crate) fn leave_held(mut self) {
        self.held = false;
    }

    /// Takes the lock, waiting for it if `wait`.
    fn flock(&mut self, wait: bool) -> SimpleLockResult<()> {
        if self.held {
            return Err(SimpleLockError::already_held(&self.name));
        }
        let file = self.file();
        let result = match (self.shared, wait) {
            (true, true) => file.lock_shared(),
            (false, true) => file.lock(),
            (true, false) => file.try_lock_shared().map_err(io::Error::from),
            (false, false) => file.try_lock().map_err(io::Error::from),
        };
        result.map_err(|err| SimpleLockError::from_io(&self.name, "locking", err))?;
        self.held = true;
        Ok(())
    }
}

impl ConcreteLock for DescriptorLock {
    fn status(&self) -> SimpleLockResult<LockStatus> {
        // Only our own hold is known without taking the lock (flock has no "who" query).
        Ok(if self.held {
            LockStatus::Mine
        } else {
            LockStatus::Open
        })
    }

    fn try_lock(&mut self) -> SimpleLockResult<()> {
        self.flock(false)
    }

    fn hang_lock(&mut self) -> SimpleLockResult<()> {
        self.flock(true)
    }

    fn try_unlock(&mut self) -> SimpleLockResult<()> {
        if !self.held {
            return Err(SimpleLockError::not_held(&self.name));
        }
        self.file()
            .unlock()
            .map_err(|err| SimpleLockError::unable_to_unlock(&self.name, "unlocking", Some(err)))?;
        self.held = false;
        Ok(())
    }
}

impl Drop for DescriptorLock {
    fn drop(&mut self) {
        if self.held {
            let _ = self.file().unlock();
        }
    }
}
