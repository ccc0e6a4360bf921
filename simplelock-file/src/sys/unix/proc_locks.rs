//! Who holds a flock: Linux lists every file lock of the system in `/proc/locks`, with the
//! process id of the process that took it. flock holders are invisible to `F_GETLK`, so this is
//! the only place that shows them without trying the lock.
//!
//! ```text
//! 1: FLOCK  ADVISORY  WRITE 4242 fe:00:10010791 0 EOF
//! 2: -> FLOCK  ADVISORY  WRITE 4343 fe:00:10010791 0 EOF
//! ```
//!
//! The device is `major:minor` in hexadecimal, the inode in decimal; lines with `->` are
//! waiters, not holders.
//!
//! The kernel builds the text a page at a time, and each `read` starts over from a line
//! *number*: if locks come and go between two `read`s, lines can be skipped. So the file is read
//! with one large `read` (the kernel then fills a whole page under its lock, a consistent
//! snapshot). A list longer than a page (about 80 locks in the whole system) comes in several
//! pieces, and a lock held all along is missed if locks listed before it were released between
//! two pieces: so such a list is read up to four times, and a lock seen in any reading is held.
//! One missing from all four counts as free: wrong only if other locks came and went at the
//! wrong moment in each of the four readings. That is the price of never trying the lock to
//! look at it — a try would make another process's `try_lock` fail during those microseconds.

use std::io;

/// One flock on the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FlockHolder {
    /// The process that took it (0 if it is outside this process's pid namespace).
    pub(crate) pid: u32,
    /// `LOCK_EX` (`WRITE`) rather than `LOCK_SH` (`READ`).
    pub(crate) exclusive: bool,
}

/// What `/proc/locks` says about one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// The flocks held on the file (none if it is free).
    Holders(Vec<FlockHolder>),
    /// No lock matches the file's device and inode, but the answer cannot be trusted: some
    /// match its inode on another device (the file system may report a device to `stat` that
    /// differs from the one in `/proc/locks`: btrfs subvolumes, overlayfs). The caller must
    /// find out another way.
    Uncertain,
}

/// The flocks on the file with device `dev` and inode `ino` (as `fstat` gives them).
///
/// # Errors
/// Reading `/proc/locks` failed (not Linux, `/proc` not mounted): the caller falls back.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn flock_holders(dev: u64, ino: u64) -> io::Result<Lookup> {
    for _ in 0..READS {
        let (text, whole) = read_proc_locks()?;
        match parse(&text, dev, ino, true) {
            Lookup::Holders(holders) if holders.is_empty() && !whole => continue,
            found => return Ok(found),
        }
    }
    // Not seen in any of the reads: see the module docs for what that means.
    Ok(Lookup::Holders(Vec::new()))
}

/// How many times a list longer than a page is read before a lock missing from every reading
/// counts as free.
#[cfg(any(target_os = "linux", target_os = "android"))]
const READS: usize = 4;

/// The text of `/proc/locks`, and whether it came in one `read` (one consistent snapshot).
#[cfg(any(target_os = "linux", target_os = "android"))]
fn read_proc_locks() -> io::Result<(String, bool)> {
    use std::io::Read;

    let mut file = std::fs::File::open("/proc/locks")?;
    // The kernel hands out at most a page per read; more room only saves a resize.
    let mut text = vec![0u8; 16 * 1024];
    let mut len = 0;
    let mut reads = 0;
    loop {
        if len == text.len() {
            text.resize(len * 2, 0);
        }
        match file.read(&mut text[len..]) {
            Ok(0) => break,
            Ok(n) => {
                len += n;
                reads += 1;
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok((
        String::from_utf8_lossy(&text[..len]).into_owned(),
        reads <= 1,
    ))
}

/// Whether the process `pid` is alive (a zombie is not: it closed its files).
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn alive(pid: u32) -> bool {
    simplelock_core::process::ProcStat::read(pid).is_ok_and(|stat| !stat.has_ended())
}

/// A live process holding the flock on `dev`/`ino`, for when the process `/proc/locks` names
/// is gone: the lock belongs to an open file description, which the process that took it may
/// have handed down to programs it started (`simplelock`'s command, `flock(1)`'s); the lock
/// lives as long as one of them keeps it open, and `/proc/locks` keeps the first pid. Each
/// `/proc/PID/fdinfo/FD` lists the locks of that descriptor's open file description in the
/// same format, so the holders are found there (among the processes this one may look at).
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn live_holder(dev: u64, ino: u64) -> Option<u32> {
    let mut found: Option<u32> = None;
    for process in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = process
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(process.path().join("fdinfo")) else {
            continue;
        };
        for fd in fds.flatten() {
            let Ok(info) = std::fs::read_to_string(fd.path()) else {
                continue;
            };
            let locks: String = info
                .lines()
                .filter_map(|line| line.strip_prefix("lock:"))
                .map(|line| format!("{}\n", line.trim_start()))
                .collect();
            if !locks.is_empty()
                && matches!(parse(&locks, dev, ino, true), Lookup::Holders(h) if !h.is_empty())
            {
                // The oldest process (the smallest pid, usually the top of the command tree).
                found = Some(found.map_or(pid, |f| f.min(pid)));
                break;
            }
        }
    }
    found
}

/// Elsewhere there is no `/proc`: a holder cannot be told alive or not.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn alive(_pid: u32) -> bool {
    true
}

/// Elsewhere there is no `/proc`.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn live_holder(_dev: u64, _ino: u64) -> Option<u32> {
    None
}

/// Elsewhere there is no `/proc/locks`.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn flock_holders(_dev: u64, _ino: u64) -> io::Result<Lookup> {
    Err(io::ErrorKind::Unsupported.into())
}

/// The Linux `dev_t` encoding (glibc's `gnu_dev_major` / `gnu_dev_minor`).
fn major_minor(dev: u64) -> (u64, u64) {
    let major = ((dev & 0xffff_f000_0000_0000) >> 32) | ((dev & 0x0000_0000_000f_ff00) >> 8);
    let minor = ((dev & 0x0000_0fff_fff0_0000) >> 12) | (dev & 0x0000_0000_0000_00ff);
    (major, minor)
}

#[cfg_attr(
    not(any(target_os = "linux", target_os = "android")),
    allow(
        dead_code,
        reason = "only Linux has /proc/locks; the parser is tested everywhere"
    )
)]
/// The flocks on `dev`/`ino` in `text`; `consistent` if `text` is one snapshot.
fn parse(text: &str, dev: u64, ino: u64, consistent: bool) -> Lookup {
    let (major, minor) = major_minor(dev);
    let mut holders = Vec::new();
    let mut same_inode_elsewhere = false;
    for line in text.lines() {
        let mut words = line.split_ascii_whitespace().skip(1); // "1:"
        let (Some(kind), Some(_advisory), Some(access), Some(pid), Some(file)) = (
            words.next(),
            words.next(),
            words.next(),
            words.next(),
            words.next(),
        ) else {
            continue;
        };
        // "->" lines are blocked waiters; only flock locks matter (POSIX and OFD locks do not
        // conflict with flock on local file systems).
        if kind != "FLOCK" {
            continue;
        }
        let mut parts = file.split(':');
        let (Some(maj), Some(min), Some(inode), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if inode.parse::<u64>() != Ok(ino) {
            continue;
        }
        let same_device =
            u64::from_str_radix(maj, 16) == Ok(major) && u64::from_str_radix(min, 16) == Ok(minor);
        if !same_device {
            same_inode_elsewhere = true;
            continue;
        }
        holders.push(FlockHolder {
            // A negative or unparsable pid says nothing about who holds it.
            pid: pid.parse().unwrap_or(0),
            exclusive: access == "WRITE",
        });
    }
    if holders.is_empty() && (same_inode_elsewhere || !consistent) {
        Lookup::Uncertain
    } else {
        Lookup::Holders(holders)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEV: u64 = 0xfe00; // major 0xfe, minor 0x00

    #[test]
    fn decodes_linux_device_numbers() {
        assert_eq!(major_minor(0xfe00), (0xfe, 0));
        assert_eq!(major_minor(0x0803), (8, 3));
        // Large numbers use the split encoding (glibc's makedev).
        let makedev = |major: u64, minor: u64| {
            (minor & 0xff)
                | ((major & 0xfff) << 8)
                | ((minor & !0xff) << 12)
                | ((major & !0xfff) << 32)
        };
        assert_eq!(major_minor(makedev(0x1234, 0x56789)), (0x1234, 0x56789));
    }

    #[test]
    fn finds_holders_and_skips_waiters_and_other_files() {
        let text = "\
1: POSIX  ADVISORY  WRITE 10 fe:00:77 0 EOF
2: FLOCK  ADVISORY  WRITE 4242 fe:00:77 0 EOF
2: -> FLOCK  ADVISORY  WRITE 4343 fe:00:77 0 EOF
3: FLOCK  ADVISORY  READ 11 fe:00:78 0 EOF
4: FLOCK  ADVISORY  READ 12 fe:00:777 0 EOF
5: OFDLCK ADVISORY  READ -1 fe:00:77 0 EOF
";
        assert_eq!(
            parse(text, DEV, 77, true),
            Lookup::Holders(vec![FlockHolder {
                pid: 4242,
                exclusive: true
            }])
        );
        assert_eq!(parse(text, DEV, 1, true), Lookup::Holders(vec![]));
    }

    #[test]
    fn lists_every_reader() {
        let text = "\
7: FLOCK  ADVISORY  READ 21 fe:00:5 0 EOF
8: FLOCK  ADVISORY  READ 22 fe:00:5 0 EOF
";
        let Lookup::Holders(holders) = parse(text, DEV, 5, true) else {
            panic!("not found");
        };
        assert_eq!(holders.len(), 2);
        assert!(holders.iter().all(|h| !h.exclusive));
        assert_eq!(holders[1].pid, 22);
    }

    #[test]
    fn the_same_inode_on_another_device_is_uncertain_not_free() {
        let text = "1: FLOCK  ADVISORY  WRITE 9 00:2a:5 0 EOF\n";
        assert_eq!(parse(text, DEV, 5, true), Lookup::Uncertain);
        // ... unless a lock on our device is there too.
        let text =
            "1: FLOCK  ADVISORY  WRITE 9 00:2a:5 0 EOF\n2: FLOCK  ADVISORY  READ 3 fe:00:5 0 EOF\n";
        assert_eq!(
            parse(text, DEV, 5, true),
            Lookup::Holders(vec![FlockHolder {
                pid: 3,
                exclusive: false
            }])
        );
    }

    #[test]
    fn a_list_read_in_pieces_cannot_say_free() {
        let text = "1: FLOCK  ADVISORY  WRITE 9 fe:00:6 0 EOF\n";
        assert_eq!(parse(text, DEV, 5, false), Lookup::Uncertain);
        assert_eq!(
            parse(text, DEV, 6, false),
            Lookup::Holders(vec![FlockHolder {
                pid: 9,
                exclusive: true
            }])
        );
    }

    #[test]
    fn garbage_lines_are_ignored() {
        let text = "\n1:\n2: FLOCK\n3: FLOCK ADVISORY WRITE x fe:00\n4: FLOCK A W 1 fe:00:5:6\n";
        assert_eq!(parse(text, DEV, 5, true), Lookup::Holders(vec![]));
        // A device that does not parse might be ours: uncertain, never "free".
        let text = "4: FLOCK ADVISORY WRITE 1 fe:zz:5 0 EOF\n";
        assert_eq!(parse(text, DEV, 5, true), Lookup::Uncertain);
    }
}
