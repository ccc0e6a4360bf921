//! Who we are and whether a lock's owner is still alive, from `/proc`.
//!
//! A process is named by its process id *and* its start time (field 22 of `/proc/PID/stat`, in
//! clock ticks since boot), because a process id is reused after its process is reaped.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::sys;
use crate::word;

/// The fields of `/proc/PID/stat` we use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stat {
    /// Field 1: the process id, as the procfs that was read sees it.
    pub(crate) pid: u32,
    /// Field 3: `R`, `S`, `D`, `T`, `t`, `Z`, `X`, ...
    pub(crate) state: u8,
    /// Field 9: the kernel's flags of the process (`PF_*`).
    pub(crate) flags: u64,
    /// Field 20: the number of threads in the process.
    pub(crate) threads: u64,
    /// Field 22: when the process (or thread) started, in clock ticks after boot.
    pub(crate) start: u64,
}

/// Parses the text of `/proc/PID/stat`. The command name (field 2) is in parentheses and may
/// itself contain spaces and parentheses, so the fields after it are counted from the last `)`.
pub(crate) fn parse_stat(text: &str) -> Option<Stat> {
    let open = text.find(" (")?;
    let close = text.rfind(')')?;
    let pid = text[..open].trim().parse().ok()?;
    let rest: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
    // `rest[0]` is field 3.
    let field = |n: usize| rest.get(n - 3).copied();
    Some(Stat {
        pid,
        state: *field(3)?.as_bytes().first()?,
        flags: field(9)?.parse().ok()?,
        threads: field(20)?.parse().ok()?,
        start: field(22)?.parse().ok()?,
    })
}

fn read_stat(path: &str) -> io::Result<Stat> {
    let text = fs::read_to_string(path)?;
    parse_stat(&text).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("cannot parse {path}: {text:?}"),
        )
    })
}

/// This process's token and namespace fingerprint, computed from scratch (a few system calls:
/// the caller caches them in the page a fork wipes).
///
/// # Errors
/// When `/proc` cannot be read, or belongs to another pid namespace (then the process ids in it
/// are not ours, and checking owners by them would be wrong).
pub(crate) fn own_identity() -> io::Result<(u64, u64)> {
    let pid = sys::getpid();
    let stat = read_stat("/proc/self/stat").map_err(|e| {
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
    Ok((pid_ns.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ time_ns) | 1)
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
    match read_stat(&format!("/proc/{pid}/stat")) {
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
    if matches!(stat.state, b'Z' | b'X') && stat.threads <= 1 {
        return Liveness::Dead;
    }
    Liveness::Alive
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat_line(comm: &str, state: char, threads: u64, start: u64) -> String {
        // Fields 4..=19 are fillers here; 20 is num_threads, 21 itrealvalue, 22 starttime.
        let fillers: Vec<String> = (4..=19).map(|n| n.to_string()).collect();
        format!(
            "4242 ({comm}) {state} {} {threads} 0 {start} 23 24",
            fillers.join(" ")
        )
    }

    #[test]
    fn parses_stat_even_with_tricky_command_names() {
        for comm in ["sh", "a b", "x) Z 1 (", ")", "(("] {
            let stat = parse_stat(&stat_line(comm, 'S', 3, 987_654)).unwrap();
            assert_eq!(
                stat,
                Stat {
                    pid: 4242,
                    state: b'S',
                    flags: 9,
                    threads: 3,
                    start: 987_654
                },
                "{comm:?}"
            );
        }
        assert_eq!(parse_stat("4242 (sh) S 1 2"), None);
        assert_eq!(parse_stat(""), None);
    }

    #[test]
    fn parses_our_own_stat() {
        let stat = read_stat("/proc/self/stat").unwrap();
        assert_eq!(stat.pid, std::process::id());
        assert!(matches!(stat.state, b'R' | b'S'));
        assert!(stat.threads >= 1);
    }

    #[test]
    fn judges_pid_reuse_zombies_and_stopped_processes() {
        let token = word::token(4242, 1000).unwrap();
        let stat = |state, threads, start| Stat {
            pid: 4242,
            state,
            flags: 0x40_0100,
            threads,
            start,
        };
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
        let kthread = Stat {
            flags: PF_KTHREAD | 0x40,
            ..stat(b'S', 1, 1000)
        };
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
