//! Unix: `flock(2)` on a file opened with `O_NOFOLLOW | O_CLOEXEC`, the record read and written
//! with `pread`/`pwrite`, and (in the submodules) the fork-aware process id, the deadlock
//! registry, the inotify waiter and the `/proc/locks` reader.
//!
//! # Safety
//!
//! This module and its submodules are the only places of the crate with `unsafe` code. Each
//! `unsafe` block is a call into libc for a system call std does not wrap (`flock`,
//! `fcntl(F_GETFL/F_SETFL)`, `geteuid`, `pthread_atfork`, `inotify_*`, `ppoll`, `read` on an
//! inotify descriptor), or the access to the deadlock registry's `UnsafeCell` under its spin
//! lock. The calls only get descriptors owned by a live `File`/`OwnedFd` for the duration of
//! the call, pointers to live, correctly sized local buffers, and NUL-terminated strings from
//! `CString`; none of them keeps a pointer past its return. The fork handlers registered with
//! `pthread_atfork` only call async-signal-safe functions (`getpid`) and touch atomics and a
//! `Vec` whose lock they hold.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

use simplelock_core::{SimpleLockError, SimpleLockResult};

use crate::Mode;
use crate::record::RECORD_LEN;

mod fork;
mod proc_locks;
mod wait;

pub(crate) use fork::{Held, current_pid, init, registry};
pub(crate) use proc_locks::{FlockHolder, Lookup, flock_holders};
pub(crate) use wait::{Waiter, Wake};

/// The mode a lock file is created with, before the umask.
const CREATE_MODE: u32 = 0o644;

/// An open lock file.
#[derive(Debug)]
pub(crate) struct LockFd {
    file: File,
    /// The device and inode of the open file (not of whatever the path names later).
    pub(crate) dev: u64,
    pub(crate) ino: u64,
    /// Opened read-write; `false` if only read-only access was possible.
    pub(crate) writable: bool,
}

/// How far [`open`] got: which access it asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    /// `O_RDWR | O_CREAT`: the normal case.
    CreateReadWrite,
    /// `O_RDWR`: the file exists but `O_CREAT` was refused (`fs.protected_regular` refuses it
    /// on another user's file in a sticky folder such as `/tmp`, even where we may write it).
    ReadWrite,
    /// `O_RDONLY`: flock does not need write access.
    ReadOnly,
}

/// Open (creating if needed) the lock file at `path`, never following a symbolic link at its
/// last component, never truncating, close-on-exec; refusing anything but a regular file.
///
/// `name` is how errors name the lock.
pub(crate) fn open(path: &Path, name: &str) -> SimpleLockResult<LockFd> {
    let mut access = Access::CreateReadWrite;
    // The first refusal, reported if no fallback works: it says why we could not create or
    // write the file, which is more useful than the last one.
    let mut first_refusal: Option<io::Error> = None;
    let file = loop {
        let mut options = OpenOptions::new();
        options
            .read(true)
            .write(access != Access::ReadOnly)
            .create(access == Access::CreateReadWrite)
            .mode(CREATE_MODE)
            // O_NONBLOCK: opening a FIFO planted at the path must not hang; it is refused
            // below, and the flag is cleared for the regular file we keep. std adds O_CLOEXEC.
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY);
        let err = match options.open(path) {
            Ok(file) => break file,
            Err(err) => err,
        };
        let errno = err.raw_os_error().unwrap_or(0);
        let refused = matches!(
            errno,
            libc::EACCES | libc::EPERM | libc::EROFS | libc::ETXTBSY
        );
        access = match (access, errno) {
            (Access::CreateReadWrite, libc::EACCES | libc::EPERM) => Access::ReadWrite,
            (Access::CreateReadWrite | Access::ReadWrite, _) if refused => Access::ReadOnly,
            // The file does not exist and we could not create it.
            (Access::ReadWrite | Access::ReadOnly, libc::ENOENT) if first_refusal.is_some() => {
                return Err(SimpleLockError::permission_denied(name, first_refusal));
            }
            // Not even readable: this refusal says why.
            (Access::ReadOnly, _) if refused => {
                return Err(SimpleLockError::permission_denied(name, Some(err)));
            }
            _ => return Err(open_error(path, name, err)),
        };
        first_refusal.get_or_insert(err);
    };
    let meta = file
        .metadata()
        .map_err(|err| SimpleLockError::from_io(name, "reading the lock file's metadata", err))?;
    if meta.is_dir() {
        return Err(SimpleLockError::invalid_name(name, "the path is a folder"));
    }
    if !meta.is_file() {
        return Err(SimpleLockError::invalid_name(
            name,
            "the path is not a regular file (a FIFO, socket or device)",
        ));
    }
    clear_nonblocking(&file)
        .map_err(|err| SimpleLockError::from_io(name, "clearing O_NONBLOCK", err))?;
    Ok(LockFd {
        file,
        dev: meta.dev(),
        ino: meta.ino(),
        writable: access != Access::ReadOnly,
    })
}

/// A clear error for an `open` that failed for a reason other than permissions.
fn open_error(path: &Path, name: &str, err: io::Error) -> SimpleLockError {
    let reason = match err.raw_os_error() {
        Some(libc::ELOOP) => "the path is a symbolic link, which is never followed (or the \
                              folders in it have too many levels of links)"
            .to_owned(),
        Some(libc::EISDIR) => "the path is a folder".to_owned(),
        Some(libc::ENOENT) => match path.parent().filter(|p| !p.as_os_str().is_empty()) {
            Some(parent) => format!("the folder {} does not exist", parent.display()),
            None => "the folder of the lock file does not exist".to_owned(),
        },
        Some(libc::ENOTDIR) => "a part of the path is not a folder".to_owned(),
        Some(libc::ENAMETOOLONG) => "the path or one of its parts is too long".to_owned(),
        _ => return SimpleLockError::from_io(name, "opening the lock file", err),
    };
    SimpleLockError::invalid_name_os(name, reason, err)
}

fn clear_nonblocking(file: &File) -> io::Result<()> {
    let fd = file.as_raw_fd();
    // SAFETY: F_GETFL takes no third argument; `fd` is open for the duration of the call.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: F_SETFL takes an int; `fd` is open for the duration of the call.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

impl LockFd {
    /// `flock` in `mode`: waiting (retried on `EINTR`, so a signal never ends the wait) or
    /// not. `Ok(false)`: someone else holds it and `wait` was `false`.
    pub(crate) fn lock(&self, mode: Mode, wait: bool) -> io::Result<bool> {
        let mut operation = match mode {
            Mode::Exclusive => libc::LOCK_EX,
            Mode::Shared => libc::LOCK_SH,
        };
        if !wait {
            operation |= libc::LOCK_NB;
        }
        loop {
            // SAFETY: flock takes a descriptor and an int; the descriptor is owned by
            // `self.file`, which is open for the duration of the call.
            if unsafe { libc::flock(self.file.as_raw_fd(), operation) } == 0 {
                return Ok(true);
            }
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EWOULDBLOCK) if !wait => return Ok(false),
                _ => return Err(err),
            }
        }
    }

    /// `flock(LOCK_UN)`, retried on `EINTR`.
    pub(crate) fn unlock(&self) -> io::Result<()> {
        loop {
            // SAFETY: as in `lock`.
            if unsafe { libc::flock(self.file.as_raw_fd(), libc::LOCK_UN) } == 0 {
                return Ok(());
            }
            let err = io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EINTR) {
                return Err(err);
            }
        }
    }

    /// Read the first bytes of the file into `buf`; returns how many there were (fewer than
    /// asked at the end of the file). One `pread` in the normal case.
    pub(crate) fn read_record(&self, buf: &mut [u8; RECORD_LEN]) -> io::Result<usize> {
        let mut filled = 0;
        while filled < buf.len() {
            match self.file.read_at(&mut buf[filled..], filled as u64) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        }
        Ok(filled)
    }

    /// Write `record` at offset 0 (one `pwrite` in the normal case).
    pub(crate) fn write_record(&self, record: &[u8; RECORD_LEN]) -> io::Result<()> {
        self.file.write_all_at(record, 0)
    }

    /// The length of the file now.
    pub(crate) fn len(&self) -> io::Result<u64> {
        self.file.metadata().map(|metadata| metadata.len())
    }

    /// The open file, for the inotify watch.
    pub(crate) fn file(&self) -> &File {
        &self.file
    }
}

/// The effective user id: the owner of the files and folders this process creates.
pub(crate) fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}
