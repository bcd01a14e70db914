//! A process started by a test, with its stdout and stderr in one log file.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// How long [`Process::stop`] waits after SIGTERM before it sends SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(5);
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// How many bytes of the log a failing test prints.
const LOG_TAIL_BYTES: usize = 8000;

/// Why [`Process::wait_for_line`] returned without the line.
#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    #[error("{label}: no line containing {needle:?} within {timeout:?}")]
    TimedOut {
        label: String,
        needle: String,
        timeout: Duration,
    },
    #[error("{label}: exited with {status} before a line containing {needle:?} appeared")]
    Exited {
        label: String,
        needle: String,
        status: ExitStatus,
    },
}

/// A running child process. Dropping it sends SIGTERM, then SIGKILL after a grace period.
/// When the drop happens during a panic, the tail of the log goes to stderr, where the test
/// runner shows it with the failure.
pub struct Process {
    child: Child,
    label: String,
    log: PathBuf,
    status: Option<ExitStatus>,
}

impl Process {
    /// Starts `command` with stdin closed and stdout and stderr appended to `log`.
    pub fn start(mut command: Command, label: String, log: PathBuf) -> io::Result<Self> {
        let stdout = File::create(&log)?;
        let stderr = stdout.try_clone()?;
        let child = command
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()?;
        Ok(Self {
            child,
            label,
            log,
            status: None,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Returns the log so far, with invalid UTF-8 replaced.
    pub fn log(&self) -> String {
        std::fs::read(&self.log)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }

    /// Returns the last [`LOG_TAIL_BYTES`] of the log.
    pub fn log_tail(&self) -> String {
        let log = self.log();
        let mut start = log.len().saturating_sub(LOG_TAIL_BYTES);
        while !log.is_char_boundary(start) {
            start += 1;
        }
        log[start..].to_string()
    }

    /// Waits until a log line contains `needle` and returns that line. Fails at once when
    /// the process exits first.
    pub fn wait_for_line(&mut self, needle: &str, timeout: Duration) -> Result<String, WaitError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self.log().lines().find(|line| line.contains(needle)) {
                return Ok(line.to_string());
            }
            if let Some(status) = self.try_wait() {
                // The process may have written the line just before it exited.
                if let Some(line) = self.log().lines().find(|line| line.contains(needle)) {
                    return Ok(line.to_string());
                }
                return Err(WaitError::Exited {
                    label: self.label.clone(),
                    needle: needle.to_string(),
                    status,
                });
            }
            if Instant::now() >= deadline {
                return Err(WaitError::TimedOut {
                    label: self.label.clone(),
                    needle: needle.to_string(),
                    timeout,
                });
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// Like [`Process::wait_for_line`], but panics with the error and the log tail.
    pub fn expect_line(&mut self, needle: &str, timeout: Duration) -> String {
        match self.wait_for_line(needle, timeout) {
            Ok(line) => line,
            Err(error) => panic!(
                "{error}\n--- log of {} ---\n{}",
                self.label,
                self.log_tail()
            ),
        }
    }

    /// Returns the exit status if the process has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    /// Waits up to `timeout` for the process to exit by itself.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// Sends `signal` unless the process has exited.
    pub fn signal(&mut self, signal: libc::c_int) {
        if self.try_wait().is_some() {
            return;
        }
        let Ok(pid) = libc::pid_t::try_from(self.child.id()) else {
            return;
        };
        // SAFETY: kill has no memory-safety preconditions. The pid belongs to our own child,
        // which has not been reaped, so it cannot have been reused.
        unsafe {
            libc::kill(pid, signal);
        }
    }

    /// Stops the process: SIGTERM, then SIGKILL if it is still running after a grace
    /// period. Returns the exit status.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        self.signal(libc::SIGTERM);
        if let Some(status) = self.wait_timeout(TERM_GRACE) {
            return Some(status);
        }
        let _ = self.child.kill();
        self.status = self.child.wait().ok();
        self.status
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop();
        if thread::panicking() {
            eprintln!("--- log of {} ({}) ---", self.label, self.log.display());
            eprintln!("{}", self.log_tail());
        }
    }
}
