//! A `vakt` server run as a child process (`vakt serve`, `vakt proxy`), as
//! `vakt bench serve` and the end-to-end tests start it: its stderr is read
//! on a thread so the child never blocks on a full pipe, the address it
//! says it listens on is waited for, it is stopped by a signal within a
//! bound, and killed if dropped while it still runs.

use std::io::{BufRead, BufReader};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Why a child did not start, listen or stop as it should; the message
/// carries what it wrote to stderr.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ChildError(pub String);

/// A running child process with its stderr captured line by line.
pub struct Child {
    child: std::process::Child,
    /// What it is, for messages: "`vakt serve --data DIR`".
    what: String,
    log: mpsc::Receiver<String>,
}

impl Child {
    /// Starts `cmd` with stderr captured; `what` names it in errors.
    pub fn spawn(what: impl Into<String>, cmd: &mut Command) -> Result<Child, ChildError> {
        let what = what.into();
        let mut child = cmd
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| ChildError(format!("cannot start {what}: {e}")))?;
        let stderr = child.stderr.take().expect("stderr is piped");
        let (tx, log) = mpsc::channel();
        // Read to the end, also after the address is known: a full or
        // closed pipe would stop the server at its next message.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Ok(Child { child, what, log })
    }

    /// Waits up to `wait` for the line saying "listening on ADDRESS" and
    /// returns ADDRESS as written (`http://127.0.0.1:PORT`, `127.0.0.1:PORT`).
    pub fn listening(&mut self, wait: Duration) -> Result<String, ChildError> {
        let deadline = Instant::now() + wait;
        let mut seen = Vec::new();
        loop {
            match self
                .log
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(line) => {
                    if let Some(rest) = line.split("listening on ").nth(1) {
                        return Ok(rest.split_whitespace().next().unwrap_or("").to_owned());
                    }
                    seen.push(line);
                }
                Err(_) => {
                    return Err(ChildError(format!(
                        "{} did not say where it listens within {wait:?}: {}",
                        self.what,
                        seen.join("; ")
                    )))
                }
            }
        }
    }

    /// What it wrote to stderr since the last look, lines joined by "; ".
    pub fn stderr(&self) -> String {
        self.log.try_iter().collect::<Vec<_>>().join("; ")
    }

    /// What it writes to stderr until it closes it (after it exited).
    pub fn stderr_to_end(&self) -> String {
        self.log.iter().collect::<Vec<_>>().join("; ")
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Fails if it exited.
    pub fn check(&mut self) -> Result<(), ChildError> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(ChildError(format!(
                "{} exited with {status}: {}",
                self.what,
                self.stderr()
            ))),
            Err(e) => Err(ChildError(format!("{}: {e}", self.what))),
        }
    }

    /// Sends `signal` (`libc::SIGTERM`, `libc::SIGINT`) and waits up to
    /// `wait` for it to exit.
    pub fn signal_and_wait(
        &mut self,
        signal: i32,
        wait: Duration,
    ) -> Result<ExitStatus, ChildError> {
        // SAFETY: kill(2) on our own child's pid; it is not reaped before
        // this returns, so the pid is still ours.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, signal);
        }
        let deadline = Instant::now() + wait;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Ok(status),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Ok(None) => {
                    return Err(ChildError(format!(
                        "{} did not stop within {wait:?} of signal {signal}",
                        self.what
                    )))
                }
                Err(e) => return Err(ChildError(format!("{}: {e}", self.what))),
            }
        }
    }

    /// SIGTERM, as an operator would stop it; fails unless it exits
    /// cleanly within `wait`.
    pub fn stop(mut self, wait: Duration) -> Result<(), ChildError> {
        let status = self.signal_and_wait(libc::SIGTERM, wait)?;
        if !status.success() {
            return Err(ChildError(format!(
                "{} exited with {status}: {}",
                self.what,
                self.stderr()
            )));
        }
        Ok(())
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
