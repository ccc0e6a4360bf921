//! Running the command on Windows: the command tree lives in a Job object that dies with the
//! tool, the tool waits for the whole tree before it releases the lock, and Ctrl-C is left to
//! the console, which gives it to the command directly.
//!
//! # Why not as on Unix
//!
//! On Unix the command inherits the locked open file, and a flock lasts as long as any process
//! has it open: the command tree itself keeps the lock. Windows cannot do that: a byte-range
//! lock (`LockFileEx`) belongs to the process that took it, and Windows releases it when that
//! process closes its handle or ends, whoever else has the file open. So on Windows the lock
//! is only ever this process's, the command inherits nothing of it (std opens files without
//! inheritance), and what Unix gets from the inherited descriptor is got here from a Job
//! object: the command tree must not outlive the tool.
//!
//! # The command tree is in a Job object that dies with the tool
//!
//! Before starting the command, this process creates a Job object with
//! `JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE` and puts *itself* in it. Every process the command
//! starts, and every process those start, is then in the job from its first instruction: a
//! process created by a process of a job belongs to that job, and this job allows no breakaway
//! (no `JOB_OBJECT_LIMIT_BREAKAWAY_OK`: a `CREATE_BREAKAWAY_FROM_JOB` fails). Putting the
//! command in after it started would leave a moment in which it could start a process outside
//! the job. (Windows 8 and later nest jobs, so this works when the tool already runs in one.)
//!
//! - **The command ends, or Ctrl-C.** The tool waits for the command, then until the job holds
//!   no process but the tool itself — the processes the command left behind (`start /b`, a
//!   server it launched) included — and only then releases the lock: as on Unix, the lock is
//!   held until the last process of the tree has ended. Windows offers no notice for "one
//!   process left" (the job's completion port says "none left", which never comes while the
//!   tool is in the job), so the tool looks at the job's process count after the command ended,
//!   with a backoff from 1 ms to 100 ms (the core's `Backoff`).
//! - **The tool is killed** (`TerminateProcess`, Task Manager, `taskkill /f`, the console
//!   window closed). The job's only handle is the tool's (not inheritable), so when Windows
//!   tears the tool's process down and closes its handles, the job is closed, and
//!   `KILL_ON_JOB_CLOSE` terminates every process in it: no process of the tree goes on running
//!   without the lock. The lock file's handle is closed in the same tear-down, which releases
//!   the lock. Windows documents no order between the two closings, and terminating a process
//!   is itself asynchronous; so, unlike on Unix, where the tree keeps the lock until its last
//!   process has ended, a newcomer may take the lock in the instant in which the tree's
//!   processes are being terminated. What they do in that instant is cut off, never finished;
//!   a command whose half-done work matters learns of it: the next holder of a named lock is
//!   told `SIMPLELOCK_PREVIOUS_HOLDER=died`.
//!
//! # Ctrl-C
//!
//! The console sends Ctrl-C (and Ctrl-Break) to every process attached to it: the command gets
//! it directly, once, as a foreground job's command does on a Unix terminal. The tool ignores it
//! (a handler routine that says "handled"; not the inherited "ignore Ctrl-C" flag, which the
//! command would inherit) and goes on waiting for the tree, then leaves with the command's exit
//! status. A Ctrl-C that comes before the command is started ends the tool without starting it
//! (by Windows' default handling until the handler is in place, with exit status 130 after);
//! one in the instant while the command is being started reaches nobody. There is no Unix
//! signal to pass on otherwise: `TerminateProcess` cannot be caught, and the console's close,
//! logoff and shutdown events end the tool, which ends the tree as above.
//!
//! # Exit status
//!
//! The command's exit code, when it is 0 to 255; a command ended by Ctrl-C
//! (`STATUS_CONTROL_C_EXIT`) gives 130, as a shell gives 128 + SIGINT on Unix; any other code
//! (an NTSTATUS such as an access violation's `0xC0000005`, or a code above 255) gives 255.
//!
//! # Safety
//!
//! The `unsafe` blocks call the Job object and console functions std does not wrap, with the
//! job's handle (owned by a live [`OwnedHandle`]), the pseudo-handle of this process, pointers to
//! live local structures of the size passed along (which the calls do not keep), and a handler
//! routine that is a plain function touching one atomic.
#![allow(unsafe_code)]

use std::ffi::{OsString, c_void};
use std::io;
use std::mem::ManuallyDrop;
use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle};
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use simplelock::{Backoff, Wait};
use windows_sys::Win32::Foundation::{FALSE, TRUE};
use windows_sys::Win32::System::Console::{CTRL_BREAK_EVENT, CTRL_C_EVENT, SetConsoleCtrlHandler};
use windows_sys::Win32::System::JobObjects::{
    AssignProcessToJobObject, CreateJobObjectW, JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE,
    JOBOBJECT_BASIC_ACCOUNTING_INFORMATION, JOBOBJECT_EXTENDED_LIMIT_INFORMATION,
    JobObjectBasicAccountingInformation, JobObjectExtendedLimitInformation,
    QueryInformationJobObject, SetInformationJobObject,
};
use windows_sys::Win32::System::Threading::GetCurrentProcess;
use windows_sys::core::BOOL;

use crate::args::exit;
use crate::say_error;

/// What the command inherits of the lock on Windows: nothing (a Windows lock belongs to the
/// process that took it, see the module docs), so no value of this type exists.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Inherited {}

/// What the command is to inherit of the file lock `_lock`: nothing, on Windows.
pub(crate) fn inheritable<T>(_lock: &T) -> Option<Inherited> {
    None
}

/// Set by the console's Ctrl-C (or Ctrl-Break) once the tool ignores it.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// `NTSTATUS` `STATUS_CONTROL_C_EXIT`: the exit code of a process ended by Ctrl-C.
const STATUS_CONTROL_C_EXIT: u32 = 0xC000_013A;

/// [`super::run`], with `env` added to the command's environment.
pub(crate) fn run_with_env(
    command: &[OsString],
    inherited: Option<Inherited>,
    previous_holder: &str,
    env: &[(&str, String)],
) -> i32 {
    if let Some(never) = inherited {
        match never {}
    }
    let job = match Job::around_this_process() {
        Ok(job) => job,
        Err(err) => {
            say_error(&format!(
                "cannot put the command in a Job object (which ends it if simplelock is \
                 killed): {err}"
            ));
            return exit::SOFTWARE;
        }
    };
    if let Err(err) = leave_ctrl_c_to_the_command() {
        say_error(&format!("cannot install a Ctrl-C handler: {err}"));
        return exit::SOFTWARE;
    }
    if INTERRUPTED.load(Ordering::SeqCst) {
        say_error("interrupted (Ctrl-C) before the command was started");
        return 130;
    }
    let mut cmd = super::command(command, previous_holder, env);
    let code = match cmd.spawn() {
        Ok(mut child) => match child.wait() {
            Ok(status) => exit_code(status),
            Err(err) => {
                say_error(&format!("waiting for the command: {err}"));
                exit::SOFTWARE
            }
        },
        Err(err) => return super::cannot_run(command, &err),
    };
    // The lock is released only when the whole command tree is gone.
    job.wait_for_the_tree();
    code
}

/// The exit status that tells our caller how the command ended (see the module docs).
fn exit_code(status: ExitStatus) -> i32 {
    match status.code() {
        Some(code @ 0..=255) => code,
        Some(code) if code as u32 == STATUS_CONTROL_C_EXIT => 130,
        Some(_) => 255,
        None => exit::SOFTWARE,
    }
}

/// A Job object with `KILL_ON_JOB_CLOSE` that this process is in, with the command tree.
///
/// Its handle is never closed by us: closing the job's only handle would terminate every
/// process in it, this one included. Windows closes it when this process ends, which is what
/// ends the tree if the tool is killed.
#[derive(Debug)]
struct Job {
    handle: ManuallyDrop<OwnedHandle>,
}

impl Job {
    /// Creates the job and puts this process in it, so that every process started from now on
    /// is in it too.
    fn around_this_process() -> io::Result<Job> {
        // SAFETY: CreateJobObjectW with no attributes and no name makes a new anonymous job
        // (its handle not inheritable) and returns its handle, or null on failure; a non-null
        // handle is ours alone, so `OwnedHandle` may own and close it.
        let handle = unsafe {
            let raw = CreateJobObjectW(std::ptr::null(), std::ptr::null());
            if raw.is_null() {
                return Err(io::Error::last_os_error());
            }
            OwnedHandle::from_raw_handle(raw)
        };
        let mut limits = JOBOBJECT_EXTENDED_LIMIT_INFORMATION::default();
        limits.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE;
        // SAFETY: the handle is a live job handle; `limits` is a live structure of the type
        // and size the information class names, read during the call only.
        let set = unsafe {
            SetInformationJobObject(
                handle.as_raw_handle(),
                JobObjectExtendedLimitInformation,
                (&raw const limits).cast::<c_void>(),
                size_of::<JOBOBJECT_EXTENDED_LIMIT_INFORMATION>() as u32,
            )
        };
        if set == FALSE {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the handle is a live job handle; GetCurrentProcess returns a pseudo-handle
        // of this process, which needs no closing.
        let assigned =
            unsafe { AssignProcessToJobObject(handle.as_raw_handle(), GetCurrentProcess()) };
        if assigned == FALSE {
            return Err(io::Error::last_os_error());
        }
        Ok(Job {
            handle: ManuallyDrop::new(handle),
        })
    }

    /// How many processes the job has now, this one included.
    fn active_processes(&self) -> io::Result<u32> {
        let mut info = JOBOBJECT_BASIC_ACCOUNTING_INFORMATION::default();
        // SAFETY: the handle is a live job handle; `info` is a live, writable structure of the
        // type and size the information class names, written during the call only; the length
        // written back is not asked for (null is allowed).
        let queried = unsafe {
            QueryInformationJobObject(
                self.handle.as_raw_handle(),
                JobObjectBasicAccountingInformation,
                (&raw mut info).cast::<c_void>(),
                size_of::<JOBOBJECT_BASIC_ACCOUNTING_INFORMATION>() as u32,
                std::ptr::null_mut(),
            )
        };
        if queried == FALSE {
            return Err(io::Error::last_os_error());
        }
        Ok(info.ActiveProcesses)
    }

    /// Returns once no process but this one is left in the job (see the module docs for why
    /// this looks rather than waits for a notice).
    fn wait_for_the_tree(&self) {
        let mut backoff = Backoff::new(Duration::from_millis(1), Duration::from_millis(100));
        loop {
            match self.active_processes() {
                Ok(0 | 1) => return,
                Ok(_) => {
                    let nap = backoff.next(&Wait::Forever).unwrap_or(Duration::ZERO);
                    std::thread::sleep(nap);
                }
                Err(err) => {
                    // Nothing else tells us when the tree is gone; not seen in practice (the
                    // handle is live and ours), but said if it happens.
                    say_error(&format!(
                        "cannot count the processes the command left behind ({err}): the \
                         lock is released while they may still run"
                    ));
                    return;
                }
            }
        }
    }
}

/// The console's handler while the command runs: Ctrl-C and Ctrl-Break are the command's (the
/// console gave it to the command too), every other event ends the tool as by default.
extern "system" fn on_console_event(event: u32) -> BOOL {
    if event == CTRL_C_EVENT || event == CTRL_BREAK_EVENT {
        INTERRUPTED.store(true, Ordering::SeqCst);
        TRUE
    } else {
        FALSE
    }
}

/// Makes the tool ignore Ctrl-C (and Ctrl-Break) from now on, leaving it to the command.
fn leave_ctrl_c_to_the_command() -> io::Result<()> {
    // SAFETY: `on_console_event` is a plain function, alive as long as the process, that only
    // stores to an atomic (the console calls it on a thread of its own).
    let added = unsafe { SetConsoleCtrlHandler(Some(on_console_event), TRUE) };
    if added == FALSE {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
