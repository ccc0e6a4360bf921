//! What backends need to know about threads and processes, written once: a small number for
//! the calling thread (to tell a self-deadlock), and the fields of Linux's `/proc/PID/stat` (to
//! tell whether a lock's holder lives). Both need std only, as the core does; a backend that
//! has no use for them pays nothing.

use std::cell::Cell;
use std::fs;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

/// The next thread number; numbers are never reused within a process.
static NEXT_THREAD: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// This thread's number (0: not given yet).
    static THREAD: Cell<u64> = const { Cell::new(0) };
}

/// A small number naming the calling thread in this process, never 0 and never reused (a
/// [`ThreadId`](std::thread::ThreadId) would cost an `Arc` clone). Backends record it with a
/// hold so that a thread that waits for a lock it holds itself through another handle is told
/// [`WouldDeadlock`](crate::SimpleLockError::WouldDeadlock) instead of waiting forever.
///
/// While the thread's thread-local values are being destroyed, each call returns a fresh
/// number: such a thread matches no hold, so it is never refused by mistake (it can only miss
/// a self-deadlock, as a backend without the check would).
///
/// ```
/// let me = simplelock_core::process::thread_number();
/// assert_eq!(me, simplelock_core::process::thread_number());
/// let other = std::thread::spawn(simplelock_core::process::thread_number).join().unwrap();
/// assert_ne!(me, other);
/// ```
#[inline]
pub fn thread_number() -> u64 {
    THREAD
        .try_with(|number| {
            if number.get() == 0 {
                number.set(NEXT_THREAD.fetch_add(1, Ordering::Relaxed));
            }
            number.get()
        })
        .unwrap_or_else(|_| NEXT_THREAD.fetch_add(1, Ordering::Relaxed))
}

/// The fields of Linux's `/proc/PID/stat` that tell whether a process lives and which process
/// it is (see `proc_pid_stat(5)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProcStat {
    /// Field 1: the process id, as the procfs that was read sees it.
    pub pid: u32,
    /// Field 3: `R`, `S`, `D`, `T`, `t`, `Z`, `X`, ...
    pub state: u8,
    /// Field 9: the kernel's flags of the process (`PF_*`).
    pub flags: u64,
    /// Field 20: the number of threads in the process.
    pub threads: u64,
    /// Field 22: when the process (or thread) started, in clock ticks after boot. With the
    /// process id, it names one process: a process id is reused, but not within one tick.
    pub start: u64,
}

impl ProcStat {
    /// Parses the text of `/proc/PID/stat`. The command name (field 2) is in parentheses and
    /// may itself contain spaces and parentheses, so the fields after it are counted from the
    /// last `)`. `None` if the text is not such a line.
    ///
    /// ```
    /// use simplelock_core::process::ProcStat;
    /// let fields: Vec<String> = (4..=19).map(|n| n.to_string()).collect();
    /// let line = format!("42 (a) b (c) S {} 3 0 987 23", fields.join(" "));
    /// let stat = ProcStat::parse(&line).unwrap();
    /// assert_eq!((stat.pid, stat.state, stat.threads, stat.start), (42, b'S', 3, 987));
    /// ```
    pub fn parse(text: &str) -> Option<ProcStat> {
        let open = text.find(" (")?;
        let close = text.rfind(')')?;
        let pid = text[..open].trim().parse().ok()?;
        let rest: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
        // `rest[0]` is field 3.
        let field = |n: usize| rest.get(n - 3).copied();
        Some(ProcStat {
            pid,
            state: *field(3)?.as_bytes().first()?,
            flags: field(9)?.parse().ok()?,
            threads: field(20)?.parse().ok()?,
            start: field(22)?.parse().ok()?,
        })
    }

    /// Reads and parses `/proc/<pid>/stat`.
    ///
    /// # Errors
    /// Those of reading the file (`NotFound`: no such process, or no procfs), and
    /// `InvalidData` naming the file if it cannot be parsed.
    pub fn read(pid: u32) -> io::Result<ProcStat> {
        ProcStat::read_path(&format!("/proc/{pid}/stat"))
    }

    /// Reads and parses `/proc/self/stat`.
    ///
    /// # Errors
    /// As [`read`](ProcStat::read).
    pub fn read_self() -> io::Result<ProcStat> {
        ProcStat::read_path("/proc/self/stat")
    }

    fn read_path(path: &str) -> io::Result<ProcStat> {
        let text = fs::read_to_string(path)?;
        ProcStat::parse(&text).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("cannot parse {path}: {text:?}"),
            )
        })
    }

    /// Whether the process has ended but is not reaped yet: a zombie (`Z`) or dead (`X`, and
    /// `x` on Linux 2.6.33 to 3.13). Its files are closed; a zombie *leader* may still have
    /// other threads running ([`threads`](ProcStat::threads) > 1).
    pub fn has_ended(&self) -> bool {
        matches!(self.state, b'Z' | b'X' | b'x')
    }
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
            let stat = ProcStat::parse(&stat_line(comm, 'S', 3, 987_654)).unwrap();
            assert_eq!(
                (stat.pid, stat.state, stat.flags, stat.threads, stat.start),
                (4242, b'S', 9, 3, 987_654),
                "{comm}"
            );
        }
        assert_eq!(ProcStat::parse("garbage"), None);
        assert_eq!(ProcStat::parse("1 (x) S 2"), None);
    }

    #[test]
    fn ended_states() {
        for (state, ended) in [
            ('Z', true),
            ('X', true),
            ('x', true),
            ('S', false),
            ('T', false),
        ] {
            let stat = ProcStat::parse(&stat_line("p", state, 1, 1)).unwrap();
            assert_eq!(stat.has_ended(), ended, "{state}");
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn reads_this_process() {
        let me = ProcStat::read_self().unwrap();
        assert_eq!(me.pid, std::process::id());
        assert_eq!(ProcStat::read(me.pid).unwrap().start, me.start);
    }

    #[test]
    fn thread_numbers_differ_between_threads_and_stay_within_one() {
        let me = thread_number();
        assert_ne!(me, 0);
        assert_eq!(me, thread_number());
        let other = std::thread::spawn(thread_number).join().unwrap();
        assert_ne!(me, other);
    }
}
