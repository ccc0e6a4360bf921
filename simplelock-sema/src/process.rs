//! Who we are and whether a lock's owner is still alive, from `/proc`.
//!
//! A process is named by its process id *and* its start time (field 22 of `/proc/PID/stat`, in
//! clock ticks since boot), because a process id is reused after its process is reaped.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use simplelock_core::process::ProcStat;

use crate::sys;
use crate::word;

/// The fields of `/proc/PID/stat`, parsed by the core (one parser for every backend).
pub(crate) type Stat = ProcStat;

/// This process's token and namespace fingerprint, computed from scratch (a few system calls:
/// the caller caches them in the page a fork wipes).
///
/// # Errors
/// When `/proc` cannot be read, or belongs to another pid namespace (then the process ids in it
/// are not ours, and checking owners by them would be wrong).
pub(crate) fn own_identity() -> io::Result<(u64, u64)> {
    let pid = sys::getpid();
    let stat = ProcStat::read_self().map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("reading /proc/self/stat (this lock needs procfs mounted at /proc): {e}"),
        )
    })?;
    if stat.pid != pid {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!(
                "/proc belongs to another pid namespace (it calls this process {}, getpid says {pid})",
                stat.pid
            ),
        ));
    }
    let token = word::token(pid, stat.start).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::Unsupported,
            format!("process id {pid} is too large for the lock word"),
        )
    })?;
    Ok((token, namespace_fingerprint()?))
}

/// A number that differs between processes that cannot check each other's liveness: those in
/// different pid namespaces (process ids mean different processes) or time namespaces (start
/// times are shown shifted). Never 0.
///
/// Read through `/proc/thread-self`: the namespaces of a process whose main thread exited can
/// no longer be read through `/proc/self` (the main thread's entry), but its other threads'
/// can.
///
/// # Errors
/// When the namespaces cannot be read (a sandboxed `/proc`, an LSM): then nobody can tell
/// whether this process sees the same process ids as the others, and the lock fails closed.
/// Only a missing time namespace (Linux before 5.6, where every process shares one clock) is
/// not an error.
pub(crate) fn namespace_fingerprint() -> io::Result<u64> {
    let ino = |kind: &str| {
        fs::metadata(format!("/proc/thread-self/ns/{kind}"))
            .or_else(|_| fs::metadata(format!("/proc/self/ns/{kind}")))
            .map(|m| m.ino())
    };
    let pid_ns = ino("pid").map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "reading /proc/self/ns/pid ({e}): without it this process cannot tell whether \
                 it sees the same process ids as the lock's other users"
            ),
        )
    })?;
    let time_ns = match ino("time") {
        Ok(ino) => ino,
        Err(e)
            if e.kind() == io::ErrorKind::NotFound && Path::new("/proc/self/ns/pid").exists() =>
        {
            0
        }
        Err(e) => {
            return Err(io::Error::new(
                e.kind(),
                format!("reading /proc/self/ns/time: {e}"),
            ));
        }
    };
    Ok((spread(pid_ns) ^ time_ns) | 1)
}

/// `n` multiplied by 2^64 / φ (Fibonacci hashing): nearby numbers (inode numbers, thread
/// numbers) end up far apart in all 64 bits, so that mixing them with another value by `^`
/// cannot cancel out. The one place of this constant.
#[inline]
pub(crate) fn spread(n: u64) -> u64 {
    n.wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// What we can tell about the owner of a lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Liveness {
    /// The process the token names still runs (or may: when we cannot tell, we say alive).
    Alive,
    /// It has ended: it will never touch the lock again.
    Dead,
}

/// Whether the process named by `token` (see `word.rs`) is alive.
///
/// Dead when: no process has its id (`kill` says `ESRCH`); or the process with its id started
/// at another time (the id was reused); or it is a zombie (`Z`) or dead (`X`) with at most one
/// thread. A zombie *leader* whose other threads still run (the main thread called
/// `pthread_exit`) is alive: those threads may hold the lock. Stopped (`T`), traced (`t`) or
/// sleeping processes are alive. When `/proc/PID/stat` cannot be read although the process
/// exists (`hidepid` mounts), we cannot compare start times and say alive: a stuck lock is
/// better than two holders.
pub(crate) fn liveness(token: u64) -> Liveness {
    let pid = word::pid_of(token);
    match ProcStat::read(pid) {
        Ok(stat) => judge(token, &stat),
        Err(_) if !sys::process_exists(pid) => Liveness::Dead,
        Err(_) => Liveness::Alive,
    }
}

/// The flag of a kernel thread in field 9 of `/proc/PID/stat` (`include/linux/sched.h`).
const PF_KTHREAD: u64 = 0x0020_0000;

/// [`liveness`] from a parsed `/proc/PID/stat`.
pub(crate) fn judge(token: u64, stat: &Stat) -> Liveness {
    // A kernel thread never calls into this crate: a word naming one was written by someone
    // else (the start time of `kthreadd`, pid 2, is public), so it names no holder.
    if stat.flags & PF_KTHREAD != 0 {
        return Liveness::Dead;
    }
    if (stat.start & 0xffff_ffff) as u32 != word::start_of(token) {
        return Liveness::Dead;
    }
    if stat.has_ended() && stat.threads <= 1 {
        return Liveness::Dead;
    }
    Liveness::Alive
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `/proc/PID/stat` line of process 4242 with these fields.
    fn stat_of(state: u8, flags: u64, threads: u64, start: u64) -> Stat {
        // Fields 4..=8 and 10..=19 are fillers; 20 is num_threads, 21 itrealvalue, 22 starttime.
        let before: Vec<String> = (4..=8).map(|n| n.to_string()).collect();
        let after: Vec<String> = (10..=19).map(|n| n.to_string()).collect();
        let line = format!(
            "4242 (p) {} {} {flags} {} {threads} 0 {start} 23 24",
            state as char,
            before.join(" "),
            after.join(" ")
        );
        ProcStat::parse(&line).unwrap()
    }

    #[test]
    fn judges_pid_reuse_zombies_and_stopped_processes() {
        let token = word::token(4242, 1000).unwrap();
        let stat = |state, threads, start| stat_of(state, 0x40_0100, threads, start);
        assert_eq!(judge(token, &stat(b'S', 1, 1000)), Liveness::Alive);
        assert_eq!(judge(token, &stat(b'T', 1, 1000)), Liveness::Alive);
        assert_eq!(judge(token, &stat(b't', 1, 1000)), Liveness::Alive);
        assert_eq!(judge(token, &stat(b'D', 1, 1000)), Liveness::Alive);
        assert_eq!(judge(token, &stat(b'S', 1, 1001)), Liveness::Dead, "reused");
        assert_eq!(
            judge(token, &stat(b'S', 1, 1000 + (1 << 32))),
            Liveness::Alive,
            "only the low 32 bits of the start time are kept"
        );
        assert_eq!(judge(token, &stat(b'Z', 1, 1000)), Liveness::Dead);
        assert_eq!(judge(token, &stat(b'X', 1, 1000)), Liveness::Dead);
        assert_eq!(
            judge(token, &stat(b'Z', 2, 1000)),
            Liveness::Alive,
            "a zombie leader with live threads"
        );
        let kthread = stat_of(b'S', PF_KTHREAD | 0x40, 1, 1000);
        assert_eq!(judge(token, &kthread), Liveness::Dead, "a kernel thread");
    }

    #[test]
    fn we_are_alive_and_a_missing_process_is_dead() {
        let (token, _) = own_identity().unwrap();
        assert_eq!(word::pid_of(token), std::process::id());
        assert_eq!(liveness(token), Liveness::Alive);
        // Same process id, another start time: a dead process whose id we reused.
        let other = word::token(std::process::id(), u64::from(word::start_of(token)) + 1).unwrap();
        assert_eq!(liveness(other), Liveness::Dead);
        // A process id above pid_max exists nowhere.
        let missing = word::token(word::PID_LIMIT - 1, 1).unwrap();
        assert_eq!(liveness(missing), Liveness::Dead);
    }
}
