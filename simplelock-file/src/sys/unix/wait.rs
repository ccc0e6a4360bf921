//! Waiting for a lock file to change, for `timed_lock`: an inotify watch (Linux; elsewhere
//! `sys/wait.rs` has no waiter, and the caller polls with a backoff).
//!
//! flock has no timed wait, and a blocking `flock` can only be cut short by a signal, which a
//! library must not install. So a timed waiter sleeps until something happens to the file: a
//! simplelock holder's release rewrites the record (`IN_MODIFY`), and a holder that dies has its
//! descriptor closed by the kernel (`IN_CLOSE_WRITE` / `IN_CLOSE_NOWRITE`). Both wake the
//! waiter within microseconds; it then tries the lock again. Releases that touch nothing
//! (`flock -u`, a read-only or foreign holder) are caught by the caller's bounded backoff.

use std::fs::File;
use std::time::Duration;

use crate::sys::Wake;

pub(crate) use linux::Waiter;

mod linux {
    use std::os::fd::{AsRawFd, OwnedFd};
    use std::sync::Mutex;

    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    use rustix::fs::inotify::{self, CreateFlags, WatchFlags};
    use rustix::io::Errno;

    use super::*;

    /// What wakes a waiter: the file was closed (a holder ended), its attributes or links
    /// changed, or it was deleted or moved; and, for a file with a holder record, written (a
    /// release or an acquisition rewrote the record). Writes to any other file are the holder's
    /// data, which says nothing about the lock: they do not wake the waiter.
    const EVENTS: WatchFlags = WatchFlags::CLOSE_WRITE
        .union(WatchFlags::CLOSE_NOWRITE)
        .union(WatchFlags::ATTRIB)
        .union(WatchFlags::DELETE_SELF)
        .union(WatchFlags::MOVE_SELF);

    /// Idle inotify instances of this process (whose pid is kept with them), for the next wait,
    /// each with the watch its last wait left on it.
    ///
    /// Closing an inotify instance makes the kernel wait for an RCU grace period: about 0.5 ms
    /// on average here, sometimes several — measured, and it would land on every handoff, since
    /// a waiter closes its instance right after it got the lock. So instances are kept and
    /// reused. A wait that ends leaves its watch on the instance, too: removing it
    /// (`inotify_rm_watch` and reading the `IN_IGNORED` it queues, several µs) would be done
    /// between the acquisition and the return of `timed_lock`, on every handoff. The next wait
    /// on the same file finds the watch there (adding it again is a no-op that returns it), one
    /// on another file removes it first — both before they sleep. The events queued meanwhile
    /// are read and dropped when the instance is taken again. A kept watch pins its inode in
    /// memory (a deleted lock file's too) until the instance is reused or closed: at most
    /// [`MAX_IDLE`] inodes. The pool keeps at most [`MAX_IDLE`] instances: the per-user limit of
    /// instances is small (128 by default), and an instance kept idle is one another program of
    /// the user cannot have. The rest are closed when their wait ends.
    ///
    /// Only `try_lock` is used on the pool: a fork can copy it locked by another thread, and a
    /// waiter must never hang on that. A failed `try_lock` just costs a fresh instance (or, on
    /// the way back, a slow close). The pid tells a forked child that the instances it sees are
    /// its parent's (shared with it): it lets go of its copies and starts its own pool.
    static IDLE: Mutex<(u32, Vec<Idle>)> = Mutex::new((0, Vec::new()));

    /// How many idle instances a process keeps at most.
    const MAX_IDLE: usize = 4;

    /// Names an inode: device and inode number.
    type Key = (u64, u64);

    /// An idle instance, and the watch its last wait left on it: the inode and the watch
    /// descriptor.
    #[derive(Debug)]
    struct Idle {
        inotify: OwnedFd,
        watch: Option<(Key, i32)>,
    }

    /// An idle instance, preferably one already watching `key`.
    fn pooled(key: Key) -> Option<Idle> {
        let mut idle = IDLE.try_lock().ok()?;
        let pid = crate::sys::current_pid();
        if idle.0 != pid {
            // The parent's instances: closing our copies is cheap (the parent keeps them open).
            idle.1.clear();
            idle.0 = pid;
        }
        let at = idle
            .1
            .iter()
            .position(|i| matches!(i.watch, Some((watched, _)) if watched == key))
            .or_else(|| idle.1.len().checked_sub(1))?;
        Some(idle.1.swap_remove(at))
    }

    fn give_back(instance: Idle) {
        if let Ok(mut idle) = IDLE.try_lock() {
            let pid = crate::sys::current_pid();
            if (idle.0 == pid || idle.1.is_empty()) && idle.1.len() < MAX_IDLE {
                idle.0 = pid;
                idle.1.push(instance);
            }
        }
    }

    /// An inotify instance watching one open file.
    #[derive(Debug)]
    pub(crate) struct Waiter {
        /// Taken out only by `drop`, which gives it back to the pool.
        inotify: Option<OwnedFd>,
        watch: i32,
        key: Key,
    }

    impl Waiter {
        /// A watch on the inode `file` has open (and on its writes if `writes`), or `None` if
        /// inotify is not available (no more instances for this user, `/proc` not mounted, ...).
        ///
        /// The watch goes through `/proc/self/fd/N`, which names the open inode itself, not
        /// whatever the lock's path names now.
        pub(crate) fn new(file: &File, writes: bool) -> Option<Waiter> {
            let st = rustix::fs::fstat(file).ok()?;
            #[allow(
                clippy::unnecessary_cast,
                reason = "the field types differ between targets"
            )]
            let key = (st.st_dev as u64, st.st_ino as u64);
            let (inotify, kept) = match pooled(key) {
                Some(Idle { inotify, watch }) => (inotify, watch),
                None => (
                    inotify::init(CreateFlags::CLOEXEC | CreateFlags::NONBLOCK).ok()?,
                    None,
                ),
            };
            if let Some((watched, watch)) = kept
                && watched != key
            {
                // Another file's watch, left by an earlier wait (gone already if that file was
                // deleted: then this fails, harmlessly).
                let _ = inotify::remove_watch(&inotify, watch);
            }
            let path = format!("/proc/self/fd/{}", file.as_raw_fd());
            let events = if writes {
                EVENTS | WatchFlags::MODIFY
            } else {
                EVENTS
            };
            // On an inode the instance watches already, this returns the same watch with these
            // events.
            let Ok(watch) = inotify::add_watch(&inotify, path, events) else {
                give_back(Idle {
                    inotify,
                    watch: None,
                });
                return None;
            };
            let waiter = Waiter {
                inotify: Some(inotify),
                watch,
                key,
            };
            // Events left from an earlier use of the instance are not about this wait.
            waiter.drain();
            Some(waiter)
        }

        pub(crate) fn fd(&self) -> &OwnedFd {
            // Taken out only by `drop`, after which nothing calls this.
            self.inotify
                .as_ref()
                .expect("the waiter's inotify instance")
        }

        /// Wait at most `timeout` for an event on the file, and consume the events.
        pub(crate) fn wait(&self, timeout: Duration) -> Wake {
            let wake = self.wait_undrained(timeout);
            if wake == Wake::Event {
                self.drain();
            }
            wake
        }

        /// [`wait`](Waiter::wait) without consuming the events: for a caller that tries the
        /// lock first (a release's event often comes just before its unlock, but the wake-up
        /// takes longer than that), and calls [`drain`](Waiter::drain) only if the try fails —
        /// the events stay readable until then, so the next wait would not sleep.
        pub(crate) fn wait_undrained(&self, timeout: Duration) -> Wake {
            let timeout = Timespec {
                tv_sec: timeout.as_secs().try_into().unwrap_or(i64::MAX),
                tv_nsec: timeout.subsec_nanos().into(),
            };
            let mut fds = [PollFd::new(self.fd(), PollFlags::IN)];
            match poll(&mut fds, Some(&timeout)) {
                Ok(0) => Wake::Timeout,
                Ok(_) => Wake::Event,
                Err(Errno::INTR) => Wake::Interrupted,
                // Cannot happen with a valid descriptor; treat it as a timeout, so the caller
                // goes on with its backoff rather than spinning.
                Err(_) => Wake::Timeout,
            }
        }

        /// Read and drop the pending events (the descriptor is non-blocking). A read that left
        /// room for another event of the largest size emptied the queue: no second read (one
        /// system call less per wake-up; an event queued after it wakes the next `poll`).
        pub(crate) fn drain(&self) {
            const LARGEST_EVENT: usize = 16 + 256;
            let mut buf = [0u8; 1024];
            loop {
                match rustix::io::read(self.fd(), &mut buf) {
                    Ok(n) if n > buf.len() - LARGEST_EVENT => {}
                    Err(Errno::INTR) => {}
                    _ => return, // all read (or EAGAIN: nothing was there)
                }
            }
        }
    }

    impl Drop for Waiter {
        fn drop(&mut self) {
            // The watch stays for the next wait (see `IDLE`); a closed instance takes it along.
            if let Some(inotify) = self.inotify.take() {
                give_back(Idle {
                    inotify,
                    watch: Some((self.key, self.watch)),
                });
            }
        }
    }
}
