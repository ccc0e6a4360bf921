//! Unix: `flock(2)` on a file opened with `O_NOFOLLOW | O_CLOEXEC` (below a folder others may
//! write to, with `openat2(RESOLVE_NO_SYMLINKS)`), the check that the path still names the
//! locked file (`lstat`), the record read and written with `pread`/`pwrite`, and (in the
//! submodules) the fork-aware process id, the deadlock registry, the inotify waiter and the
//! `/proc/locks` reader.
//!
//! # Safety
//!
//! The system calls std does not wrap (`openat2`, `fstatat`, `lstat`, `flock`, `fcntl`,
//! `inotify_*`, `poll`) go through rustix's safe wrappers. The only `unsafe` code of the crate
//! is in the `fork` submodule (see its Safety section).

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{self, FlockOperation, OFlags};
use simplelock_core::{SimpleLockError, SimpleLockResult, Wait};

use crate::lock::Mode;
use crate::record::RECORD_LEN;

mod fork;
mod proc_locks;
#[cfg(any(target_os = "linux", target_os = "android"))]
mod wait;

pub(crate) use fork::{current_pid, init};
pub(crate) use proc_locks::{FlockHolder, Lookup, alive, flock_holders, live_holder};
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) use wait::Waiter;

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

/// [`open`](super::open), but never creating the file: `Ok(None)` if it does not exist.
pub(crate) fn open_existing(path: &Path, name: &str) -> SimpleLockResult<Option<LockFd>> {
    match open_with(path, name, false) {
        Err(err) if is_missing(&err) => Ok(None),
        other => other,
    }
}

/// Whether `err` says that the file or its folder does not exist.
fn is_missing(err: &SimpleLockError) -> bool {
    err.os_error()
        .is_some_and(|os| os.raw_os_error() == Some(libc::ENOENT))
}

/// Open the lock file at `path` as [`open`](super::open) says, creating it if `create`;
/// `Ok(None)` if it does not exist and `create` is false.
pub(crate) fn open_with(path: &Path, name: &str, create: bool) -> SimpleLockResult<Option<LockFd>> {
    let route = Route::of(path).map_err(|err| open_error(path, name, err))?;
    let mut access = if create {
        Access::CreateReadWrite
    } else {
        Access::ReadWrite
    };
    // The first refusal, reported if no fallback works: it says why we could not create or
    // write the file, which is more useful than the last one.
    let mut first_refusal: Option<io::Error> = None;
    let file = loop {
        let err = match route.open(access) {
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
            _ => return Err(route.error(path, name, err)),
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
    if let Some(why) = replaceable_by_others(path, &meta) {
        return Err(SimpleLockError::permission_denied(
            name,
            Some(io::Error::new(io::ErrorKind::PermissionDenied, why)),
        ));
    }
    clear_nonblocking(&file)
        .map_err(|err| SimpleLockError::from_io(name, "clearing O_NONBLOCK", err))?;
    Ok(Some(LockFd {
        file,
        dev: meta.dev(),
        ino: meta.ino(),
        writable: access != Access::ReadOnly,
    }))
}

/// Why another user could delete or replace the lock file at `path` while we hold it, if they
/// could: then a newcomer would lock the new file while we hold the old one, and no check of
/// ours could keep it out. In a world-writable folder, that is anyone if the folder is not
/// sticky, and the file's owner if it is (besides the folder's owner and root, who may do
/// anything there anyway).
fn replaceable_by_others(path: &Path, file: &std::fs::Metadata) -> Option<String> {
    let absolute = std::path::absolute(path).ok()?;
    let folder = absolute.parent()?;
    let meta = std::fs::metadata(folder).ok()?;
    if meta.mode() & 0o002 == 0 {
        return None;
    }
    let way_out = "use a lock file of your own, or a folder of your own (SIMPLELOCK_DIR for \
                   named locks)";
    if meta.mode() & 0o1000 == 0 {
        return Some(format!(
            "its folder {} is writable by everyone and not sticky: anyone may delete or \
             replace the lock file while it is held, and then two processes would hold the \
             lock; {way_out}",
            folder.display()
        ));
    }
    let owner = file.uid();
    if owner == euid() || owner == 0 || owner == meta.uid() {
        return None;
    }
    Some(format!(
        "the lock file belongs to uid {owner}, who may delete or replace it in the sticky \
         folder {} while it is held, and then two processes would hold the lock; {way_out}",
        folder.display()
    ))
}

/// How the path is resolved: as usual, or, below the first folder on it that other users may
/// write to (`/tmp`, `/run/lock`, a group-writable folder), without following any symbolic
/// link — someone else could have planted one there to send us to a file of their choice.
enum Route {
    /// No folder on the path is writable by others: only a link at the last component is
    /// refused (`O_NOFOLLOW`).
    Plain(PathBuf),
    /// `rest` is opened below the folder `dir` (an `O_PATH` descriptor of `dir_path`) with
    /// `openat2(RESOLVE_NO_SYMLINKS)`.
    Beneath {
        dir: std::os::fd::OwnedFd,
        dir_path: PathBuf,
        rest: CString,
    },
}

impl Route {
    fn of(path: &Path) -> io::Result<Route> {
        let plain = || Ok(Route::Plain(path.to_owned()));
        let Ok(absolute) = std::path::absolute(path) else {
            return plain();
        };
        // The folders on the path, from the root down; the first one others may write to ends
        // the part where links are trusted (they sit in folders only their owners can change).
        let mut prefix = PathBuf::new();
        let mut components = absolute.components().peekable();
        while let Some(component) = components.next() {
            prefix.push(component);
            if components.peek().is_none() {
                break; // the file itself
            }
            let Ok(meta) = std::fs::metadata(&prefix) else {
                return plain(); // the open reports it
            };
            if meta.is_dir() && meta.mode() & 0o022 != 0 {
                let rest: PathBuf = components.collect();
                let dir = open_dir(&prefix)?;
                return Ok(Route::Beneath {
                    dir,
                    dir_path: prefix,
                    rest: CString::new(rest.as_os_str().as_bytes())
                        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?,
                });
            }
        }
        plain()
    }

    fn open(&self, access: Access) -> io::Result<File> {
        // O_NONBLOCK: opening a FIFO planted at the path must not hang; it is refused by the
        // caller, and the flag is cleared for the regular file we keep.
        let extra = libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY;
        let (dir, rest) = match self {
            Route::Plain(path) => {
                // std adds O_CLOEXEC.
                return OpenOptions::new()
                    .read(true)
                    .write(access != Access::ReadOnly)
                    .create(access == Access::CreateReadWrite)
                    .mode(CREATE_MODE)
                    .custom_flags(extra)
                    .open(path);
            }
            Route::Beneath { dir, rest, .. } => (dir, rest),
        };
        let flags = OFlags::NOFOLLOW
            | OFlags::NONBLOCK
            | OFlags::NOCTTY
            | OFlags::CLOEXEC
            | match access {
                Access::CreateReadWrite => OFlags::RDWR | OFlags::CREATE,
                Access::ReadWrite => OFlags::RDWR,
                Access::ReadOnly => OFlags::RDONLY,
            };
        Ok(File::from(openat2_no_symlinks(dir, rest, flags)?))
    }

    /// The error for a failed open: a link met below a folder others can write says so.
    fn error(&self, path: &Path, name: &str, err: io::Error) -> SimpleLockError {
        match (self, err.raw_os_error()) {
            (Route::Beneath { dir_path, .. }, Some(libc::ELOOP | libc::EXDEV)) => {
                SimpleLockError::invalid_name_os(
                    name,
                    format!(
                        "the path goes through a symbolic link below {}, a folder other users \
                         can write to, and such links are never followed (give the path with \
                         the link resolved)",
                        dir_path.display()
                    ),
                    err,
                )
            }
            _ => open_error(path, name, err),
        }
    }
}

/// A descriptor of the folder `dir`, only to open files below it (`O_PATH` where there is one).
fn open_dir(dir: &Path) -> io::Result<OwnedFd> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let access = OFlags::PATH;
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let access = OFlags::RDONLY;
    Ok(fs::open(
        dir,
        access | OFlags::DIRECTORY | OFlags::CLOEXEC,
        fs::Mode::empty(),
    )?)
}

/// `openat2(dir, rest, flags, RESOLVE_NO_SYMLINKS)`; where the kernel has no `openat2`
/// (before Linux 5.6, other systems), each component of `rest` is checked with `lstat` first,
/// which a link planted between the check and the open could still defeat.
fn openat2_no_symlinks(dir: &OwnedFd, rest: &CString, flags: OFlags) -> io::Result<OwnedFd> {
    let mode = fs::Mode::from_bits_truncate(CREATE_MODE as _);
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let mode = if flags.contains(OFlags::CREATE) {
            mode
        } else {
            fs::Mode::empty()
        };
        match fs::openat2(
            dir,
            rest.as_c_str(),
            flags,
            mode,
            fs::ResolveFlags::NO_SYMLINKS,
        ) {
            Ok(fd) => return Ok(fd),
            // No openat2 (or a seccomp filter refusing it): check the components, then open.
            Err(rustix::io::Errno::NOSYS | rustix::io::Errno::PERM) => {}
            Err(err) => return Err(err.into()),
        }
    }
    let rest_path = Path::new(std::ffi::OsStr::from_bytes(rest.as_bytes()));
    let mut below = PathBuf::new();
    for component in rest_path.components() {
        below.push(component);
        if fs::statat(dir, &below, fs::AtFlags::SYMLINK_NOFOLLOW).is_ok_and(|stat| {
            fs::FileType::from_raw_mode(stat.st_mode as _) == fs::FileType::Symlink
        }) {
            return Err(io::Error::from_raw_os_error(libc::ELOOP));
        }
    }
    Ok(fs::openat(dir, rest.as_c_str(), flags, mode)?)
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
        // A socket (ENXIO) or a device without a driver (ENODEV) at the path: not a file.
        Some(libc::ENXIO | libc::ENODEV) => {
            "the path is not a regular file (a socket or device)".to_owned()
        }
        _ => return SimpleLockError::from_io(name, "opening the lock file", err),
    };
    SimpleLockError::invalid_name_os(name, reason, err)
}

fn clear_nonblocking(file: &File) -> io::Result<()> {
    let flags = fs::fcntl_getfl(file)?;
    Ok(fs::fcntl_setfl(file, flags - OFlags::NONBLOCK)?)
}

impl LockFd {
    /// `flock` in `mode`: for [`Wait::Forever`] a blocking one (retried on `EINTR`, so a
    /// signal never ends the wait), else one try (`flock` has no timeout: a wait with a
    /// deadline is the caller's loop of tries). `Ok(false)`: someone else holds it.
    pub(crate) fn lock(&self, mode: Mode, wait: Wait) -> io::Result<bool> {
        let wait = wait == Wait::Forever;
        let operation = match (mode, wait) {
            (Mode::Exclusive, true) => FlockOperation::LockExclusive,
            (Mode::Exclusive, false) => FlockOperation::NonBlockingLockExclusive,
            (Mode::Shared, true) => FlockOperation::LockShared,
            (Mode::Shared, false) => FlockOperation::NonBlockingLockShared,
        };
        loop {
            match fs::flock(&self.file, operation) {
                Ok(()) => return Ok(true),
                Err(rustix::io::Errno::INTR) => continue,
                Err(rustix::io::Errno::WOULDBLOCK) if !wait => return Ok(false),
                Err(err) => return Err(err.into()),
            }
        }
    }

    /// `flock(LOCK_UN)`, retried on `EINTR`.
    pub(crate) fn unlock(&self) -> io::Result<()> {
        loop {
            match fs::flock(&self.file, FlockOperation::Unlock) {
                Ok(()) => return Ok(()),
                Err(rustix::io::Errno::INTR) => continue,
                Err(err) => return Err(err.into()),
            }
        }
    }

    /// Read the first bytes of the file into `buf`; returns how many there were (fewer than
    /// asked at the end of the file). One `pread` in the normal case.
    pub(crate) fn read_record(&self, buf: &mut [u8; RECORD_LEN]) -> io::Result<usize> {
        super::read_full(buf, |buf, at| self.file.read_at(buf, at))
    }

    /// Write `record` at offset 0 (one `pwrite` in the normal case).
    pub(crate) fn write_record(&self, record: &[u8; RECORD_LEN]) -> io::Result<()> {
        self.file.write_all_at(record, 0)
    }

    /// The length of the file now.
    pub(crate) fn len(&self) -> io::Result<u64> {
        self.file.metadata().map(|metadata| metadata.len())
    }

    /// Whether `path` still names the file this descriptor has open: `lstat` of the path gives
    /// its device and inode (and so the file has a link left). `false` if the file was deleted,
    /// replaced (renamed over, deleted and created again) or its folder removed; then a lock on
    /// it excludes nobody who opens the path from now on. One system call.
    #[allow(
        clippy::unnecessary_cast,
        reason = "st_dev and st_ino are u64 on Linux, not everywhere"
    )]
    pub(crate) fn still_at(&self, path: &std::ffi::CStr) -> bool {
        fs::lstat(path)
            .is_ok_and(|named| named.st_dev as u64 == self.dev && named.st_ino as u64 == self.ino)
    }

    /// The descriptor, for a program that is to inherit the lock.
    pub(crate) fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(&self.file)
    }

    /// The open file, for the inotify watch.
    pub(crate) fn file(&self) -> &File {
        &self.file
    }
}

/// How a path is given to [`LockFd::still_at`]: a C string, made once per handle.
pub(crate) type PathArg = CString;

/// The path in the form [`LockFd::still_at`] takes (empty if it has a NUL byte, which
/// `FileLock` refuses before).
pub(crate) fn path_arg(path: &Path) -> PathArg {
    CString::new(path.as_os_str().as_bytes()).unwrap_or_default()
}

/// The effective user id: the owner of the files and folders this process creates.
pub(crate) fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}
