//! Linux: POSIX shared memory, futexes, a page wiped on fork, `kill(pid, 0)`.
#![allow(unsafe_code)]
#![allow(
    clippy::unnecessary_cast,
    reason = "the field types of `stat` differ between architectures"
)]

use std::ffi::{CStr, CString};

use rustix::fs::{self, OFlags, Stat};
use rustix::thread::futex;
use rustix::time::{ClockId, Timespec};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// The layout of a lock's shared memory object. Its creator writes the whole header (with
/// `pwrite`, before the object gets its name); nobody writes `namespace`, `magic` or
/// `generation` after that, so a header that reads differently later was truncated, zeroed or
/// overwritten.
#[repr(C, align(64))]
#[derive(Debug)]
pub(crate) struct Shared {
    /// The lock word, see `word.rs`. Its low half is the futex word.
    pub(crate) word: AtomicU64,
    /// Which thread of the holding process acquired the lock (a mark mixing the thread's number
    /// with the holder's token), or 0; only compared by threads of the holding process.
    pub(crate) holder_thread: AtomicU64,
    /// The namespace fingerprint of the creator (see `process.rs`); never 0.
    pub(crate) namespace: AtomicU64,
    /// [`crate::lock::MAGIC`].
    pub(crate) magic: AtomicU64,
    /// A random number, never 0, chosen by the creator: each handle remembers it and compares it
    /// after every acquisition, so an object whose memory was zeroed is noticed.
    pub(crate) generation: AtomicU64,
    /// For a permit of `SemaphorePermits`: the token of the holder that recorded when it took
    /// the lock, or 0 (0 while it writes `since_ms`); a plain lock never writes it.
    pub(crate) since_owner: AtomicU64,
    /// When the holder named by `since_owner` took the lock, in ms since the Unix epoch.
    pub(crate) since_ms: AtomicU64,
    /// Room for later versions; zero.
    _reserved: [AtomicU64; 1],
}

/// What the creator of an object writes into its header.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Header {
    /// The initial lock word: 0 (free), or a dead holder's token.
    pub(crate) word: u64,
    pub(crate) namespace: u64,
    pub(crate) magic: u64,
    pub(crate) generation: u64,
}

impl Header {
    /// The first [`OBJECT_SIZE`] bytes of a new object: a free lock with this header.
    fn bytes(&self) -> [u8; OBJECT_SIZE] {
        let mut bytes = [0u8; OBJECT_SIZE];
        let mut put = |offset: usize, value: u64| {
            bytes[offset..offset + 8].copy_from_slice(&value.to_ne_bytes());
        };
        put(std::mem::offset_of!(Shared, word), self.word);
        put(std::mem::offset_of!(Shared, namespace), self.namespace);
        put(std::mem::offset_of!(Shared, magic), self.magic);
        put(std::mem::offset_of!(Shared, generation), self.generation);
        bytes
    }
}

/// The size of a lock's shared memory object.
pub(crate) const OBJECT_SIZE: usize = size_of::<Shared>();
const _: () = assert!(OBJECT_SIZE == 64);

mod mappings;
// The io_uring futex wait of async waiters on tokio (feature `tokio`).
#[cfg(feature = "tokio")]
pub(crate) mod uring;

#[cfg(feature = "tokio")]
pub(crate) use mappings::ForkAware;
use mappings::with_mappings;

/// The last OS error, as an `io::Error`.
fn last_error() -> io::Error {
    io::Error::last_os_error()
}

/// A mapping this process made with `mmap` at an address the kernel chose; unmapped on drop
/// unless [leaked](Region::leak). The one owner of `mmap`, `madvise` and `munmap` here.
#[derive(Debug)]
struct Region {
    addr: NonNull<libc::c_void>,
    len: usize,
}

impl Region {
    /// A new mapping of `len` bytes, readable and writable: of the object `fd` has open
    /// (`MAP_SHARED`), or of fresh private memory (`fd` `None`).
    fn map(len: usize, fd: Option<&OwnedFd>) -> io::Result<Region> {
        let (flags, raw) = match fd {
            Some(fd) => (libc::MAP_SHARED, fd.as_raw_fd()),
            None => (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1),
        };
        // SAFETY: a new mapping at an address the kernel chooses (no `MAP_FIXED`), so no
        // existing memory is replaced; the descriptor, if any, is open during the call.
        let addr = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                flags,
                raw,
                0,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(last_error());
        }
        let addr = NonNull::new(addr).ok_or_else(|| io::Error::other("mmap returned null"))?;
        Ok(Region { addr, len })
    }

    /// Marks the mapping `MADV_WIPEONFORK`: a forked child gets it zero-filled (Linux 4.14).
    fn wipe_on_fork(&self) -> io::Result<()> {
        // SAFETY: the whole of a mapping this `Region` owns; the advice changes what a child
        // sees, not this process's memory.
        if unsafe { libc::madvise(self.addr.as_ptr(), self.len, libc::MADV_WIPEONFORK) } != 0 {
            return Err(last_error());
        }
        Ok(())
    }

    /// The start of the mapping.
    fn start<T>(&self) -> NonNull<T> {
        self.addr.cast()
    }

    /// Keeps the mapping for the rest of the process's life.
    fn leak(self) {
        std::mem::forget(self);
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: the mapping was made by `mmap` with this address and length, is owned by this
        // `Region` alone and is unmapped only here; whoever holds references into it holds the
        // `Region` (through a `Mapping`) or leaked it.
        let _ = unsafe { libc::munmap(self.addr.as_ptr(), self.len) };
    }
}

/// A shared memory object mapped into this process; unmapped on drop (when the last handle of
/// the object in this process goes, see [`MapRef`]).
#[derive(Debug)]
pub(crate) struct Mapping {
    ptr: NonNull<Shared>,
    /// Unmapped when the `Mapping` goes.
    _region: Region,
}

// SAFETY: a `Mapping` is a pointer to memory that only holds atomics and stays mapped until the
// `Mapping` is dropped; nothing about it is tied to the thread that made it.
unsafe impl Send for Mapping {}
// SAFETY: `&Mapping` only gives out `&Shared`, whose fields are atomics.
unsafe impl Sync for Mapping {}

impl Drop for Mapping {
    fn drop(&mut self) {
        // The region is unmapped after this (every `MapRef` holds an `Arc` of the mapping, so
        // none is left). Forget the entries of mappings that are gone (this one's among them).
        with_mappings(|table| table.retain(|_, mapping| mapping.strong_count() > 0));
    }
}

/// A handle's reference to the mapping of its object. All handles of one object in a process
/// share one [`Mapping`] (a process has a limited number of mappings, `vm.max_map_count`); the
/// address is kept here too, so the uncontended paths read it without going through the `Arc`.
#[derive(Debug, Clone)]
pub(crate) struct MapRef {
    ptr: NonNull<Shared>,
    /// Keeps the mapping mapped while this handle lives.
    _mapping: Arc<Mapping>,
}

// SAFETY: as for `Mapping`: `ptr` is `mapping.ptr`, kept mapped by the `Arc`.
unsafe impl Send for MapRef {}
// SAFETY: `&MapRef` only gives out `&Shared`, whose fields are atomics.
unsafe impl Sync for MapRef {}

impl MapRef {
    fn new(mapping: Arc<Mapping>) -> MapRef {
        MapRef {
            ptr: mapping.ptr,
            _mapping: mapping,
        }
    }

    /// The shared state of the lock.
    #[inline]
    pub(crate) fn shared(&self) -> &Shared {
        // SAFETY: `ptr` is the address of `self._mapping`, a live, aligned mapping of
        // `OBJECT_SIZE` bytes that the `Arc` keeps mapped as long as `self` lives; `Shared` is
        // all atomics, so shared references to it are fine while others change it.
        unsafe { self.ptr.as_ref() }
    }
}

/// An opened lock object: its mapping and its identity (device and inode).
#[derive(Debug)]
pub(crate) struct Object {
    pub(crate) map: MapRef,
    pub(crate) id: ObjectId,
}

/// Names one shared memory object for as long as it exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct ObjectId {
    dev: u64,
    ino: u64,
}

/// The mode of a new object, whose objects an opener accepts, and how wide their mode may be.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Trust {
    /// The mode a new object gets.
    pub(crate) mode: u32,
    /// The widest mode accepted.
    pub(crate) widest: u32,
    /// A user other than ours whose objects we accept too.
    pub(crate) owner: Option<u32>,
}

impl Trust {
    /// Objects of our own user, with at most `mode`; new ones get `mode`.
    pub(crate) fn mine(mode: u32) -> Trust {
        Trust {
            mode,
            widest: mode,
            owner: None,
        }
    }
}

/// Why an object could not be opened.
#[derive(Debug)]
pub(crate) enum OpenError {
    /// A system call failed; `doing` says which step.
    Os { doing: &'static str, err: io::Error },
    /// The object exists with a size no lock object has: it is something else, or was
    /// truncated.
    Foreign { size: i64 },
    /// The name leads to something else than a regular file.
    NotAFile,
    /// The object belongs to a user we do not trust, or has a wider mode than asked for; or we
    /// may not open it (`denied`).
    Untrusted {
        owner: u32,
        mode: u32,
        me: u32,
        denied: Option<io::Error>,
    },
}

use crate::name::LockName;

/// `open(path, flags, mode)` with `O_CLOEXEC`, as an owned descriptor.
fn open_fd(path: &CStr, flags: OFlags, mode: u32) -> io::Result<OwnedFd> {
    Ok(fs::open(
        path,
        flags | OFlags::CLOEXEC,
        fs::Mode::from_raw_mode(mode),
    )?)
}

/// `fstat(fd)`.
fn fstat(fd: &OwnedFd) -> io::Result<Stat> {
    Ok(fs::fstat(fd)?)
}

/// `lstat(path)`.
fn lstat(path: &CStr) -> io::Result<Stat> {
    Ok(fs::lstat(path)?)
}

/// `geteuid()`: the user whose objects we trust, and who owns what we create.
pub(crate) fn geteuid() -> u32 {
    rustix::process::geteuid().as_raw()
}

fn id_of(st: &Stat) -> ObjectId {
    ObjectId {
        dev: st.st_dev as u64,
        ino: st.st_ino as u64,
    }
}

/// Refuses what `st` describes unless it is a regular file of a user we trust, with a mode no
/// wider than `trust.mode`, of exactly [`OBJECT_SIZE`] bytes.
fn check_stat(st: &Stat, trust: Trust) -> Result<(), OpenError> {
    if fs::FileType::from_raw_mode(st.st_mode as _) != fs::FileType::RegularFile {
        return Err(OpenError::NotAFile);
    }
    let me = geteuid();
    let mode = st.st_mode as u32 & 0o7777;
    if (st.st_uid != me && Some(st.st_uid) != trust.owner) || mode & !trust.widest != 0 {
        return Err(OpenError::Untrusted {
            owner: st.st_uid,
            mode,
            me,
            denied: None,
        });
    }
    if st.st_size as i64 != OBJECT_SIZE as i64 {
        return Err(OpenError::Foreign {
            size: st.st_size as i64,
        });
    }
    Ok(())
}

/// Creates a new object with `trust.mode` and `header`, complete before anyone can see it: an
/// unnamed file (`O_TMPFILE`) gets its mode (`fchmod`, so the umask does not narrow it) and its
/// header (`pwrite`, which allocates its memory for real: a full `/dev/shm` is `ENOSPC` here,
/// not a SIGBUS later), and only then its name (`linkat`, which never replaces an existing
/// name). `Ok(None)` if another process gave the name an object first.
fn create(path: &CStr, mode: u32, header: &Header) -> Result<Option<OwnedFd>, OpenError> {
    let fd = open_fd(c"/dev/shm", OFlags::TMPFILE | OFlags::RDWR, mode & 0o777).map_err(|err| {
        OpenError::Os {
            doing: "creating an unnamed file in /dev/shm",
            err,
        }
    })?;
    fs::fchmod(&fd, fs::Mode::from_raw_mode(mode)).map_err(|err| OpenError::Os {
        doing: "setting the mode of the new shared memory object",
        err: err.into(),
    })?;
    let bytes = header.bytes();
    let written = rustix::io::pwrite(&fd, &bytes, 0).map_err(io::Error::from);
    if !matches!(written, Ok(OBJECT_SIZE)) {
        return Err(OpenError::Os {
            doing: "writing the new shared memory object in /dev/shm",
            err: written
                .err()
                .unwrap_or_else(|| io::Error::new(io::ErrorKind::WriteZero, "short write")),
        });
    }
    let proc_path =
        CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd())).map_err(|e| OpenError::Os {
            doing: "naming the new shared memory object",
            err: io::Error::other(e),
        })?;
    match fs::linkat(
        fs::CWD,
        &proc_path,
        fs::CWD,
        path,
        fs::AtFlags::SYMLINK_FOLLOW,
    ) {
        Ok(()) => Ok(Some(fd)),
        Err(rustix::io::Errno::EXIST) => Ok(None),
        Err(err) => Err(OpenError::Os {
            doing: "naming the new shared memory object",
            err: err.into(),
        }),
    }
}

/// The path of a lock object in `/dev/shm`, from its `shm_open` name (`/sl.NAME`).
pub(crate) fn object_path(name: &LockName) -> Option<CString> {
    CString::new(name.path()).ok()
}

/// Opens the lock object at `path`, creating it with `trust.mode` and `header` if it does not
/// exist and `header` is given, checks that we may trust it (see [`check_stat`]), and maps it.
/// `Ok(None)` if it does not exist and `header` is `None`.
///
/// Never opens an existing object with `O_CREAT` (which `fs.protected_regular` refuses for
/// another user's object in the sticky `/dev/shm`), never follows a symbolic link, and never
/// changes an existing object: a new one is complete before it has a name.
pub(crate) fn open(
    path: &CStr,
    trust: Trust,
    header: Option<&Header>,
) -> Result<Option<Object>, OpenError> {
    let flags = OFlags::RDWR | OFlags::NOFOLLOW | OFlags::NONBLOCK;
    let fd = loop {
        match open_fd(path, flags, 0) {
            Ok(fd) => break fd,
            Err(err) if err.raw_os_error() == Some(libc::ENOENT) => {
                let Some(header) = header else {
                    return Ok(None);
                };
                if let Some(fd) = create(path, trust.mode, header)? {
                    break fd;
                }
                // Another process named its object first: open theirs.
            }
            Err(err) if err.raw_os_error() == Some(libc::ELOOP) => {
                return Err(OpenError::NotAFile);
            }
            Err(err) if err.kind() == io::ErrorKind::PermissionDenied => {
                // Say whose object it is, if we can see that.
                return Err(match lstat(path) {
                    Ok(st) => OpenError::Untrusted {
                        owner: st.st_uid,
                        mode: st.st_mode as u32 & 0o7777,
                        me: geteuid(),
                        denied: Some(err),
                    },
                    Err(_) => OpenError::Os {
                        doing: "opening the shared memory object",
                        err,
                    },
                });
            }
            Err(err) => {
                return Err(OpenError::Os {
                    doing: "opening the shared memory object",
                    err,
                });
            }
        }
    };
    let st = fstat(&fd).map_err(|err| OpenError::Os {
        doing: "inspecting the shared memory object",
        err,
    })?;
    check_stat(&st, trust)?;
    let id = id_of(&st);
    if let Some(Some(mapping)) = with_mappings(|table| table.get(&id).and_then(Weak::upgrade)) {
        return Ok(Some(Object {
            map: MapRef::new(mapping),
            id,
        }));
    }
    // The object is `OBJECT_SIZE` bytes long (checked above) and opened read-write.
    let region = Region::map(OBJECT_SIZE, Some(&fd)).map_err(|err| OpenError::Os {
        doing: "mapping the shared memory object",
        err,
    })?;
    let ptr = region.start::<Shared>();
    let mapping = Arc::new(Mapping {
        ptr,
        _region: region,
    });
    // Two threads that opened the object at once may both have mapped it: the later entry
    // wins, and both mappings stay correct.
    let entry = Arc::downgrade(&mapping);
    with_mappings(move |table| table.insert(id, entry));
    Ok(Some(Object {
        map: MapRef::new(mapping),
        id,
    }))
    // `fd` is closed here; the mapping keeps the object alive.
}

/// The identity of the object at `path` now, or `None` if there is none.
pub(crate) fn object_id(path: &CStr) -> io::Result<Option<ObjectId>> {
    match lstat(path) {
        Ok(st) => Ok(Some(id_of(&st))),
        Err(err) if err.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(err) => Err(err),
    }
}

/// `unlink(path)`.
pub(crate) fn unlink(path: &CStr) -> io::Result<()> {
    Ok(fs::unlink(path)?)
}

/// A random number from the kernel (`getrandom`), never 0.
pub(crate) fn random_nonzero() -> io::Result<u64> {
    loop {
        let mut bytes = [0u8; 8];
        let n = match rustix::rand::getrandom(&mut bytes, rustix::rand::GetRandomFlags::empty()) {
            Ok(n) => n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(err) => return Err(err.into()),
        };
        let value = u64::from_ne_bytes(bytes);
        if n == 8 && value != 0 {
            return Ok(value);
        }
    }
}

/// The low half of `word`, which is the futex word, as the atomic the futex calls take.
fn futex_word(word: &AtomicU64) -> &AtomicU32 {
    let base = word.as_ptr().cast::<u32>();
    // The low half of a little-endian u64 comes first in memory, of a big-endian one second.
    let low = if cfg!(target_endian = "little") {
        base
    } else {
        base.wrapping_add(1)
    };
    // SAFETY: `low` points into `word`, which is borrowed for the returned lifetime, and is
    // 4-byte aligned (an `AtomicU64` is 8-byte aligned). The reference is only handed to the
    // kernel's futex calls, which read the word atomically; no Rust code reads or writes the
    // 32-bit view, so there are no mixed-size accesses in Rust's memory model.
    unsafe { AtomicU32::from_ptr(low) }
}

/// How a futex wait ended. All of them mean "look at the word again".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Woke {
    /// A release (or removal) woke us, or the wait ended for no reason (spurious).
    Woken,
    /// The word had changed before we slept.
    Changed,
    /// The timeout ran out.
    TimedOut,
    /// A signal handler ran.
    Interrupted,
}

/// What a futex wait's result says.
fn woke(result: rustix::io::Result<impl Sized>) -> io::Result<Woke> {
    match result {
        Ok(_) => Ok(Woke::Woken),
        Err(rustix::io::Errno::AGAIN) => Ok(Woke::Changed),
        Err(rustix::io::Errno::TIMEDOUT) => Ok(Woke::TimedOut),
        Err(rustix::io::Errno::INTR) => Ok(Woke::Interrupted),
        Err(err) => Err(err.into()),
    }
}

/// A `Duration` as a `timespec`, saturating.
fn timespec(duration: Duration) -> Timespec {
    Timespec {
        tv_sec: i64::try_from(duration.as_secs()).unwrap_or(i64::MAX),
        tv_nsec: duration.subsec_nanos().into(),
    }
}

/// Sleeps while the low half of `word` equals `expected`, at most `timeout`.
///
/// The wait is a shared (not `_PRIVATE`) futex wait, so it pairs with wakes from other
/// processes that map the same object; its relative timeout runs on `CLOCK_MONOTONIC`.
pub(crate) fn futex_wait(word: &AtomicU64, expected: u32, timeout: Duration) -> io::Result<Woke> {
    let timeout = timespec(timeout);
    woke(futex::wait(
        futex_word(word),
        futex::Flags::empty(),
        expected,
        Some(&timeout),
    ))
}

/// Wakes up to `count` waiters sleeping on `word`, in any process.
pub(crate) fn futex_wake(word: &AtomicU64, count: i32) -> io::Result<()> {
    futex::wake(
        futex_word(word),
        futex::Flags::empty(),
        count.unsigned_abs(),
    )
    .map(drop)
    .map_err(io::Error::from)
}

/// Facts about this process that a fork changes, cached where a fork wipes them.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct ForkLocal {
    /// This process's token (see `word.rs`), or 0 if not computed yet in this process.
    pub(crate) token: AtomicU64,
    /// The namespace fingerprint; valid once `token` is not 0.
    pub(crate) namespace: AtomicU64,
}

/// The page that holds this process's [`ForkLocal`], or null before its first use.
static FORK_LOCAL: AtomicPtr<ForkLocal> = AtomicPtr::new(ptr::null_mut());

/// The [`ForkLocal`] of this process, if [`init_fork_local`] made it.
#[inline]
pub(crate) fn fork_local() -> Option<&'static ForkLocal> {
    let page = NonNull::new(FORK_LOCAL.load(Ordering::Acquire))?;
    // SAFETY: a non-null pointer here was published by `init_fork_local`: a page that is never
    // unmapped, made of atomics only.
    Some(unsafe { page.as_ref() })
}

/// Maps the page of [`ForkLocal`], marked `MADV_WIPEONFORK`: in a child made by `fork` (or any
/// `clone` without `CLONE_VM`, even one that skips `pthread_atfork` handlers) the kernel hands
/// the page over filled with zeros, so the child computes its own token instead of using its
/// parent's. This needs Linux 4.14.
#[cold]
pub(crate) fn init_fork_local() -> io::Result<&'static ForkLocal> {
    if let Some(local) = fork_local() {
        return Ok(local);
    }
    let page_size = rustix::param::page_size().max(size_of::<ForkLocal>());
    let page = Region::map(page_size, None)?;
    page.wipe_on_fork()?;
    let fresh = page.start::<ForkLocal>().as_ptr();
    // Another thread may have published its page first; then ours, never shared, is unmapped.
    if FORK_LOCAL
        .compare_exchange(ptr::null_mut(), fresh, Ordering::AcqRel, Ordering::Acquire)
        .is_ok()
    {
        page.leak();
    }
    fork_local().ok_or_else(|| io::Error::other("the fork-local page was not published"))
}

/// `getpid()`.
pub(crate) fn getpid() -> u32 {
    rustix::process::getpid()
        .as_raw_nonzero()
        .get()
        .unsigned_abs()
}

/// Whether a process (or thread) with id `pid` exists, by `kill(pid, 0)`: `false` only for
/// `ESRCH`, so a process we may not signal (`EPERM`) counts as existing.
pub(crate) fn process_exists(pid: u32) -> bool {
    let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    // Signal 0 sends nothing; it only checks that the process exists.
    !matches!(
        rustix::process::test_kill_process(pid),
        Err(rustix::io::Errno::SRCH)
    )
}

/// The most words one [`futex_waitv`] waits on (the kernel's `FUTEX_WAITV_MAX`).
pub(crate) const FUTEX_WAITV_MAX: usize = 128;

/// Sleeps while the low half of every word of `words` equals its expected value, at most
/// `timeout` (on `CLOCK_MONOTONIC`): woken by a wake on any of them. `futex_waitv(2)`, Linux
/// 5.16 or newer; `Err` with `ENOSYS` before.
///
/// The words are 32 bits (`FUTEX2_SIZE_U32`), without `FUTEX2_PRIVATE`, so that wakes from
/// other processes that map the same object pair with them. At most [`FUTEX_WAITV_MAX`] words.
pub(crate) fn futex_waitv(words: &[(&AtomicU64, u32)], timeout: Duration) -> io::Result<Woke> {
    assert!(
        words.len() <= FUTEX_WAITV_MAX,
        "futex_waitv takes at most 128 words"
    );
    let waiters: Vec<futex::Wait> = words
        .iter()
        .map(|(word, expected)| {
            let mut wait = futex::Wait::new();
            wait.val = u64::from(*expected);
            wait.uaddr = futex::WaitPtr::new(futex_word(word).as_ptr().cast());
            wait.flags = futex::WaitFlags::SIZE_U32;
            wait
        })
        .collect();
    // The timeout of futex_waitv is a point in time.
    let now = Duration::try_from(rustix::time::clock_gettime(ClockId::Monotonic))
        .unwrap_or(Duration::ZERO);
    let deadline = timespec(now.saturating_add(timeout));
    woke(futex::waitv(
        &waiters,
        futex::WaitvFlags::empty(),
        Some(&deadline),
        ClockId::Monotonic,
    ))
}
