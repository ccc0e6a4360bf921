//! Windows: `LockFileEx`/`UnlockFileEx` on one byte far beyond the holder record, a file
//! opened without sharing delete access (so nobody can delete or rename it while we have it
//! open), the record read and written with positioned I/O, and the deadlock registry.
//!
//! # The locked range
//!
//! Windows byte-range locks are mandatory: while one handle holds a range exclusively, reads
//! and writes of that range through any other handle fail (`ERROR_LOCK_VIOLATION`), and a
//! shared lock makes the range read-only for everyone. Locking the whole file (as std's
//! `File::lock` does) would keep the next holder from reading the record, and every other
//! process from reading a data file locked with [`FileLock::at_path`](crate::FileLock::at_path).
//! So the lock is one byte at [`LOCK_OFFSET`] (2⁶² bytes in), which no file ever reaches:
//! Windows allows locking beyond the end of a file, and nobody reads or writes there. Every
//! process that uses simplelock locks the same byte, so they exclude each other exactly as
//! `flock` does on Unix; a program that locks the whole file with `LockFileEx` conflicts with
//! us too (its range covers ours).
//!
//! # The path keeps naming the file
//!
//! On Unix the lock is checked after each acquisition to still be the file at the path (a file
//! deleted or replaced under a holder would let a newcomer lock another file). Here the file is
//! opened without `FILE_SHARE_DELETE`: while our handle is open, Windows refuses to delete or
//! rename the file (and to open it for deletion) with `ERROR_SHARING_VIOLATION`, so the path
//! names our file as long as we have it. [`LockFd::still_at`] therefore has nothing to check.
//! The price: a lock file cannot be deleted while any handle on it is open, which is what a
//! lock file is for.
//!
//! # A holder that dies
//!
//! Windows releases the locks of a handle when it is closed, and so when its process ends
//! (`TerminateProcess` included); Microsoft documents that the release "depends upon available
//! system resources", i.e. it may come a little after the process is gone. The record of a
//! named lock still says `held` then, and the next holder reports
//! [`PreviousHolder::Died`](simplelock_core::PreviousHolder::Died) as on Unix.
//!
//! # Timed waits
//!
//! Windows can wait for a lock with a timeout without polling: `LockFileEx` on a handle opened
//! with `FILE_FLAG_OVERLAPPED` returns `ERROR_IO_PENDING`, the caller waits for the event with
//! a timeout and cancels the request with `CancelIoEx` when it ends. We do not use it: Wine,
//! the only Windows CI can run, does not implement pending lock requests (they never complete:
//! "Async I/O lock wait not implemented, might deadlock"), so that path could not be tested,
//! and an untested wait on the lock's critical path is worse than a bounded one. A timed wait
//! is the caller's loop of non-blocking tries with a backoff of 1 to 10 ms (as on Unix systems
//! without inotify): a release is noticed within 10 ms, at most a hundred tries a second.
//! [`Waiter::new`] gives no waiter, which tells the caller to use that backoff.
//!
//! # Safety
//!
//! The `unsafe` blocks call Windows functions that std does not wrap (`LockFileEx`,
//! `UnlockFileEx`, `GetFileInformationByHandle`, `OpenProcess`, `GetExitCodeProcess`,
//! `CloseHandle`) with a handle owned by a live `File` or one just returned by `OpenProcess`,
//! and pointers to live local structures that the call does not keep.
#![allow(unsafe_code)]

use std::fs::{File, OpenOptions};
use std::io;
use std::os::windows::fs::{FileExt, OpenOptionsExt};
use std::os::windows::io::{AsHandle, AsRawHandle, BorrowedHandle};
use std::path::{Path, PathBuf};

use simplelock_core::{SimpleLockError, SimpleLockResult, Wait};

use windows_sys::Win32::Foundation::{
    CloseHandle, ERROR_ACCESS_DENIED, ERROR_DIRECTORY, ERROR_FILE_NOT_FOUND,
    ERROR_FILENAME_EXCED_RANGE, ERROR_INVALID_NAME, ERROR_LOCK_VIOLATION, ERROR_PATH_NOT_FOUND,
    ERROR_SHARING_VIOLATION, HANDLE,
};
use windows_sys::Win32::Storage::FileSystem::{
    BY_HANDLE_FILE_INFORMATION, FILE_FLAG_OPEN_REPARSE_POINT, FILE_SHARE_READ, FILE_SHARE_WRITE,
    GetFileInformationByHandle, LOCKFILE_EXCLUSIVE_LOCK, LOCKFILE_FAIL_IMMEDIATELY, LockFileEx,
    UnlockFileEx,
};
use windows_sys::Win32::System::IO::OVERLAPPED;
use windows_sys::Win32::System::Threading::{
    GetExitCodeProcess, OpenProcess, PROCESS_QUERY_LIMITED_INFORMATION,
};

use crate::lock::Mode;
use crate::record::RECORD_LEN;

/// Where the locked byte is: far beyond any record or data, and a positive 64-bit offset
/// (file systems treat offsets as signed).
pub(crate) const LOCK_OFFSET: u64 = 1 << 62;

/// The exit code `GetExitCodeProcess` gives for a process that is still running.
const STILL_ACTIVE: u32 = 259;

/// An open lock file.
#[derive(Debug)]
pub(crate) struct LockFd {
    file: File,
    /// The volume serial number and file index of the open file: Windows' device and inode.
    pub(crate) dev: u64,
    pub(crate) ino: u64,
    /// Opened read-write; `false` if only read access was possible.
    pub(crate) writable: bool,
}

/// How a path is given to [`LockFd::still_at`].
pub(crate) type PathArg = PathBuf;

/// The path in the form [`LockFd::still_at`] takes.
pub(crate) fn path_arg(path: &Path) -> PathArg {
    path.to_owned()
}

/// [`open`](super::open), but never creating the file: `Ok(None)` if it or its folder does not exist.
pub(crate) fn open_existing(path: &Path, name: &str) -> SimpleLockResult<Option<LockFd>> {
    open_with(path, name, false)
}

/// Open the lock file at `path` as [`open`](super::open) says, creating it if `create`;
/// `Ok(None)` if it does not exist and `create` is false.
pub(crate) fn open_with(path: &Path, name: &str, create: bool) -> SimpleLockResult<Option<LockFd>> {
    let attempt = |write: bool| {
        OpenOptions::new()
            .read(true)
            .write(write)
            .create(create && write)
            // No FILE_SHARE_DELETE: see "The path keeps naming the file" above.
            .share_mode(FILE_SHARE_READ | FILE_SHARE_WRITE)
            // Open a link itself, never its target (refused below).
            .custom_flags(FILE_FLAG_OPEN_REPARSE_POINT)
            .open(path)
    };
    let (file, writable) = match attempt(true) {
        Ok(file) => (file, true),
        Err(err) if err.raw_os_error() == Some(ERROR_ACCESS_DENIED as i32) && !path.is_dir() => {
            // Not writable for us (a read-only file, or a folder where we may only read):
            // a lock needs no write access, only the record does.
            match attempt(false) {
                Ok(file) => (file, false),
                Err(again) if is_missing(&again) => {
                    // The file does not exist and we may not create it.
                    return Err(SimpleLockError::permission_denied(name, Some(err)));
                }
                Err(again) => return Err(open_error(path, name, again)),
            }
        }
        Err(err) if !create && is_missing(&err) => return Ok(None),
        Err(err) => return Err(open_error(path, name, err)),
    };
    let meta = file
        .metadata()
        .map_err(|err| SimpleLockError::from_io(name, "reading the lock file's metadata", err))?;
    if meta.file_type().is_symlink() {
        return Err(SimpleLockError::invalid_name(
            name,
            "the path is a symbolic link or junction, which is never followed",
        ));
    }
    if !meta.is_file() {
        return Err(SimpleLockError::invalid_name(
            name,
            "the path is not a regular file",
        ));
    }
    let (dev, ino) = file_id(&file)
        .map_err(|err| SimpleLockError::from_io(name, "reading the lock file's identity", err))?;
    Ok(Some(LockFd {
        file,
        dev,
        ino,
        writable,
    }))
}

fn is_missing(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error().map(|code| code as u32),
        Some(ERROR_FILE_NOT_FOUND | ERROR_PATH_NOT_FOUND)
    )
}

/// A clear error for an `open` that failed.
fn open_error(path: &Path, name: &str, err: io::Error) -> SimpleLockError {
    let reason = match err.raw_os_error().map(|code| code as u32) {
        Some(ERROR_PATH_NOT_FOUND | ERROR_FILE_NOT_FOUND) => {
            match path.parent().filter(|p| !p.as_os_str().is_empty()) {
                Some(parent) => format!("the folder {} does not exist", parent.display()),
                None => "the folder of the lock file does not exist".to_owned(),
            }
        }
        Some(ERROR_ACCESS_DENIED | ERROR_DIRECTORY) if path.is_dir() => {
            "the path is a folder".to_owned()
        }
        Some(ERROR_ACCESS_DENIED) => {
            return SimpleLockError::permission_denied(name, Some(err));
        }
        Some(ERROR_INVALID_NAME) => {
            "the path is not a valid Windows file name (it contains one of <>:\"|?* or a \
             control character, or a reserved name such as CON or NUL)"
                .to_owned()
        }
        Some(ERROR_FILENAME_EXCED_RANGE) => "the path or one of its parts is too long".to_owned(),
        Some(ERROR_SHARING_VIOLATION) => {
            return SimpleLockError::from_io(
                name,
                "opening the lock file (another program has it open for deletion or without \
                 sharing it)",
                err,
            );
        }
        _ => return SimpleLockError::from_io(name, "opening the lock file", err),
    };
    SimpleLockError::invalid_name_os(name, reason, err)
}

/// The volume serial number and the file index of an open file.
fn file_id(file: &File) -> io::Result<(u64, u64)> {
    let mut info = BY_HANDLE_FILE_INFORMATION::default();
    // SAFETY: a handle owned by `file`, open for the call; a live, writable structure.
    if unsafe { GetFileInformationByHandle(file.as_raw_handle() as HANDLE, &mut info) } == 0 {
        return Err(io::Error::last_os_error());
    }
    let index = (u64::from(info.nFileIndexHigh) << 32) | u64::from(info.nFileIndexLow);
    Ok((u64::from(info.dwVolumeSerialNumber), index))
}

/// An `OVERLAPPED` that gives the offset of the locked byte (the handle is synchronous: it
/// only carries the offset).
fn at_lock_offset() -> OVERLAPPED {
    let mut overlapped = OVERLAPPED::default();
    overlapped.Anonymous.Anonymous.Offset = LOCK_OFFSET as u32;
    overlapped.Anonymous.Anonymous.OffsetHigh = (LOCK_OFFSET >> 32) as u32;
    overlapped
}

impl LockFd {
    /// `LockFileEx` on the locked byte in `mode`: for [`Wait::Forever`] a blocking one, else
    /// one try. `Ok(false)`: someone else holds it (`ERROR_LOCK_VIOLATION`, or
    /// `ERROR_SHARING_VIOLATION`, which some file systems return for the same).
    pub(crate) fn lock(&self, mode: Mode, wait: Wait) -> io::Result<bool> {
        let mut flags = match mode {
            Mode::Exclusive => LOCKFILE_EXCLUSIVE_LOCK,
            Mode::Shared => 0,
        };
        let wait = wait == Wait::Forever;
        if !wait {
            flags |= LOCKFILE_FAIL_IMMEDIATELY;
        }
        let mut overlapped = at_lock_offset();
        // SAFETY: a synchronous handle owned by `self.file`, open for the call; `overlapped`
        // is live for the call, which completes before returning on such a handle.
        let locked = unsafe {
            LockFileEx(
                self.file.as_raw_handle() as HANDLE,
                flags,
                0,
                1,
                0,
                &mut overlapped,
            )
        };
        if locked != 0 {
            return Ok(true);
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error().map(|code| code as u32) {
            Some(ERROR_LOCK_VIOLATION | ERROR_SHARING_VIOLATION) if !wait => Ok(false),
            _ => Err(err),
        }
    }

    /// `UnlockFileEx` of the locked byte.
    pub(crate) fn unlock(&self) -> io::Result<()> {
        let mut overlapped = at_lock_offset();
        // SAFETY: as in `lock`.
        let unlocked = unsafe {
            UnlockFileEx(
                self.file.as_raw_handle() as HANDLE,
                0,
                1,
                0,
                &mut overlapped,
            )
        };
        if unlocked == 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Read the first bytes of the file into `buf`; returns how many there were.
    pub(crate) fn read_record(&self, buf: &mut [u8; RECORD_LEN]) -> io::Result<usize> {
        super::read_full(buf, |buf, at| self.file.seek_read(buf, at))
    }

    /// Write `record` at offset 0.
    pub(crate) fn write_record(&self, record: &[u8; RECORD_LEN]) -> io::Result<()> {
        let mut written = 0;
        while written < record.len() {
            match self.file.seek_write(&record[written..], written as u64) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => written += n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        }
        Ok(())
    }

    /// The length of the file now.
    pub(crate) fn len(&self) -> io::Result<u64> {
        self.file.metadata().map(|metadata| metadata.len())
    }

    /// Whether `path` still names the file this handle has open: always, since nobody can
    /// delete or rename it while the handle is open (see "The path keeps naming the file").
    pub(crate) fn still_at(&self, _path: &Path) -> bool {
        true
    }

    /// The handle, for a program that is to inherit the lock.
    pub(crate) fn as_handle(&self) -> BorrowedHandle<'_> {
        self.file.as_handle()
    }

    /// The open file, for the waiter.
    pub(crate) fn file(&self) -> &File {
        &self.file
    }
}

/// Nothing to set up on Windows (no `fork`).
pub(crate) fn init() {}

/// The id of the calling process.
pub(crate) fn current_pid() -> u32 {
    std::process::id()
}

/// Whether the process `pid` is running.
pub(crate) fn alive(pid: u32) -> bool {
    let mut code = 0u32;
    // SAFETY: OpenProcess takes plain values; the handle it returns, if any, is live for
    // GetExitCodeProcess (which writes a live u32) and closed once, right after.
    let opened = unsafe {
        let process = OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, 0, pid);
        if process.is_null() {
            None
        } else {
            let known = GetExitCodeProcess(process, &mut code) != 0;
            CloseHandle(process);
            Some(known)
        }
    };
    let Some(known) = opened else {
        // Access denied: a process we may not look at, which exists.
        return io::Error::last_os_error().raw_os_error() == Some(ERROR_ACCESS_DENIED as i32);
    };
    // A process may exit with 259 itself; it is then taken for alive, as Windows' own API does.
    !known || code == STILL_ACTIVE
}

/// A process that holds the lock on `dev`/`ino`: Windows does not tell who holds a
/// byte-range lock.
pub(crate) fn live_holder(_dev: u64, _ino: u64) -> Option<u32> {
    None
}

/// A holder of a lock, as the system reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FlockHolder {
    /// Its process id.
    pub(crate) pid: u32,
    /// Whether it holds the lock exclusively.
    pub(crate) exclusive: bool,
}

/// What the system says about the holders of a lock.
#[derive(Debug)]
pub(crate) enum Lookup {
    /// The holders the system reports; never made on Windows, which has no such list.
    #[expect(
        dead_code,
        reason = "Windows does not list the holders of a byte-range lock"
    )]
    Holders(Vec<FlockHolder>),
    /// The system cannot tell: the caller tries the lock, or reads the record.
    Uncertain,
}

/// The holders of the lock on `dev`/`ino`: Windows cannot tell.
pub(crate) fn flock_holders(_dev: u64, _ino: u64) -> io::Result<Lookup> {
    Ok(Lookup::Uncertain)
}
