//! A small synchronous client of the Chrome DevTools Protocol (CDP) over
//! Chromium's `--remote-debugging-pipe` transport.
//!
//! It is written here rather than taken from a CDP crate for two reasons.
//! The pipe keeps the DevTools endpoint off the network: with
//! `--remote-debugging-port` any local user could attach to the browser and
//! read the cookies of the signed-in page being checked. And the dozen
//! commands a check uses do not justify a generated binding of the whole
//! protocol.
//!
//! The browser reads commands from its fd 3 and writes answers and events to
//! its fd 4, each message one JSON object ended by a NUL byte. A reader
//! thread routes answers (by `id`) to the caller waiting in [`Browser::send`]
//! and events to [`Browser::next_event`].

use serde_json::{json, Map, Value};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

/// Flags of every launch; the profile and the first page are added to them.
const FLAGS: &[&str] = &[
    "--headless=new",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--mute-audio",
    // Reporting API reports (a page's CSP violations) go out within a
    // fraction of a second instead of a minute, before the check closes
    // the browser.
    "--short-reporting-delay",
    "--remote-debugging-pipe",
];

/// Largest message read from the browser (a script body, base64 encoded).
const MAX_MESSAGE: u64 = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum CdpError {
    #[error("could not start Chromium at {path}: {source}; install it (apt-get install chromium) or set VAKT_CHROMIUM to its path")]
    Launch { path: PathBuf, source: io::Error },
    #[error("Chromium did not answer {method} in time")]
    Timeout { method: String },
    #[error("Chromium refused {method}: {message}")]
    Protocol { method: String, message: String },
    #[error("Chromium closed its DevTools pipe ({reason}); its last words: {stderr}")]
    Closed { reason: String, stderr: String },
    #[error("could not talk to Chromium: {0}")]
    Io(#[from] io::Error),
}

/// An event the browser sent, with the session it belongs to.
#[derive(Debug)]
pub struct Event {
    pub method: String,
    pub params: Value,
    pub session_id: Option<String>,
}

enum Incoming {
    Answer {
        id: u64,
        result: Result<Value, String>,
    },
    Broken(String),
}

/// A running Chromium with a fresh profile. Dropping it kills the browser's
/// whole process group, reaps it and removes the profile.
pub struct Browser {
    child: Child,
    commands: File,
    next_id: u64,
    answers: Receiver<Incoming>,
    events: Receiver<Event>,
    marker: String,
    dir: tempfile::TempDir,
}

impl Browser {
    /// Starts Chromium headless with a fresh profile in a new temporary
    /// directory.
    pub fn launch(chromium: &Path) -> Result<Browser, CdpError> {
        let dir = tempfile::Builder::new()
            .prefix("vakt-chromium-")
            .tempdir()?;
        let marker = format!("--user-data-dir={}", dir.path().join("profile").display());
        let stderr = File::create(dir.path().join("stderr.log"))?;
        // Chromium's own temporary files (its singleton socket directory)
        // go with the profile: a killed browser cleans up nothing itself.
        let tmp = dir.path().join("tmp");
        std::fs::create_dir(&tmp)?;
        let (browser_in, to_browser) = pipe()?;
        let (from_browser, browser_out) = pipe()?;
        let (fd_in, fd_out) = (browser_in.as_raw_fd(), browser_out.as_raw_fd());
        let mut cmd = Command::new(chromium);
        cmd.args(FLAGS);
        // The pages checked run third parties' code, a skimmer's included:
        // Chromium's sandbox stays on, but for root, whom it refuses it to.
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } == 0 {
            cmd.arg("--no-sandbox");
        }
        cmd.arg(&marker)
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .env("TMPDIR", &tmp)
            .process_group(0);
        // SAFETY: dup2 is async-signal-safe and only changes the child's fd
        // table. Both sources are above 4 (see `pipe`), so neither dup2
        // overwrites the other's source; dup2 clears close-on-exec on 3 and 4.
        unsafe {
            cmd.pre_exec(move || {
                if libc::dup2(fd_in, 3) < 0 || libc::dup2(fd_out, 4) < 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(|source| CdpError::Launch {
            path: chromium.to_owned(),
            source,
        })?;
        // Only the browser may hold these ends, so that its exit is an EOF.
        drop((browser_in, browser_out));
        let (answer_tx, answers) = mpsc::channel();
        let (event_tx, events) = mpsc::channel();
        // Built before the reader starts, so that a failure kills the browser.
        let browser = Browser {
            child,
            commands: File::from(to_browser),
            next_id: 0,
            answers,
            events,
            marker,
            dir,
        };
        let reader = File::from(from_browser);
        std::thread::Builder::new()
            .name("vakt-cdp-reader".into())
            .spawn(move || read_loop(reader, answer_tx, event_tx))?;
        Ok(browser)
    }

    /// The `--user-data-dir=` argument that every process of this browser
    /// carries on its command line.
    pub fn marker(&self) -> &str {
        &self.marker
    }

    /// Sends a command and waits for its answer until `deadline`.
    pub fn send(
        &mut self,
        method: &str,
        params: Value,
        session_id: Option<&str>,
        deadline: Instant,
    ) -> Result<Value, CdpError> {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({ "id": id, "method": method, "params": params });
        if let Some(s) = session_id {
            msg["sessionId"] = Value::from(s);
        }
        let mut bytes = serde_json::to_vec(&msg).map_err(io::Error::other)?;
        bytes.push(0);
        if let Err(e) = write_without_sigpipe(&mut self.commands, &bytes) {
            return Err(self.closed(format!("writing {method}: {e}")));
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.answers.recv_timeout(left) {
                Ok(Incoming::Answer { id: got, result }) if got == id => {
                    return result.map_err(|message| CdpError::Protocol {
                        method: method.to_owned(),
                        message,
                    });
                }
                // The late answer of a command that timed out earlier.
                Ok(Incoming::Answer { .. }) => {}
                Ok(Incoming::Broken(reason)) => return Err(self.closed(reason)),
                Err(RecvTimeoutError::Timeout) => {
                    return Err(CdpError::Timeout {
                        method: method.to_owned(),
                    })
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(self.closed("end of stream".into()))
                }
            }
        }
    }

    /// The next event, waiting until `until`; none if nothing came by then.
    pub fn next_event(&mut self, until: Instant) -> Result<Option<Event>, CdpError> {
        let left = until.saturating_duration_since(Instant::now());
        match self.events.recv_timeout(left) {
            Ok(e) => Ok(Some(e)),
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(RecvTimeoutError::Disconnected) => Err(self.closed("end of stream".into())),
        }
    }

    /// The child is not reaped here: until Drop kills its group, the
    /// unreaped leader keeps the group id from being reused.
    fn closed(&self, reason: String) -> CdpError {
        // Why the browser gave up is in the last lines of its stderr.
        let log = std::fs::read(self.dir.path().join("stderr.log")).unwrap_or_default();
        let tail = String::from_utf8_lossy(&log[log.len().saturating_sub(600)..]);
        CdpError::Closed {
            reason,
            stderr: tail.trim().to_owned(),
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // SAFETY: kill(2) with a negative pid signals the process group the
        // child leads (process_group(0) made its pgid its pid).
        unsafe {
            libc::kill(-(self.child.id() as libc::pid_t), libc::SIGKILL);
        }
        let _ = self.child.wait();
        // Children die asynchronously; wait (bounded) until none is left, so
        // that the profile is not removed under a dying process.
        let until = Instant::now() + Duration::from_secs(3);
        while !processes_with(&self.marker).is_empty() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn read_loop(pipe: File, answers: Sender<Incoming>, events: Sender<Event>) {
    let mut reader = BufReader::with_capacity(1 << 16, pipe);
    let mut buf = Vec::new();
    let broken = |why: String| {
        let _ = answers.send(Incoming::Broken(why));
    };
    loop {
        buf.clear();
        match (&mut reader).take(MAX_MESSAGE).read_until(0, &mut buf) {
            Ok(0) => return,
            Ok(_) if buf.last() == Some(&0) => {
                buf.pop();
            }
            Ok(_) => return broken("a message cut short or over 256 MiB".into()),
            Err(e) => return broken(format!("reading: {e}")),
        }
        let mut msg = match serde_json::from_slice::<Map<String, Value>>(&buf) {
            Ok(m) => m,
            Err(e) => return broken(format!("an unreadable message: {e}")),
        };
        let sent = if let Some(id) = msg.get("id").and_then(Value::as_u64) {
            let result = match msg.remove("error") {
                Some(e) => Err(e
                    .get("message")
                    .and_then(Value::as_str)
                    .map_or_else(|| e.to_string(), str::to_owned)),
                None => Ok(msg.remove("result").unwrap_or(Value::Null)),
            };
            answers.send(Incoming::Answer { id, result }).is_ok()
        } else if let Some(Value::String(method)) = msg.remove("method") {
            let event = Event {
                method,
                params: msg.remove("params").unwrap_or(Value::Null),
                session_id: msg
                    .remove("sessionId")
                    .and_then(|s| s.as_str().map(str::to_owned)),
            };
            events.send(event).is_ok()
        } else {
            return broken("a message with neither id nor method".into());
        };
        if !sent {
            return;
        }
    }
}

/// Writes with SIGPIPE blocked for this thread: a browser that died must be
/// an error here, not the end of a process that gave SIGPIPE back its
/// default action (as `vakt` does, to stop quietly under `| head`).
fn write_without_sigpipe(file: &mut File, bytes: &[u8]) -> io::Result<()> {
    // SAFETY: the sigset_t values are initialised by sigemptyset before use,
    // and the calls only change or query this thread's signal state.
    unsafe {
        let mut pipe: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut pipe);
        libc::sigaddset(&mut pipe, libc::SIGPIPE);
        libc::pthread_sigmask(libc::SIG_BLOCK, &pipe, &mut old);
        let result = file.write_all(bytes);
        if matches!(&result, Err(e) if e.kind() == io::ErrorKind::BrokenPipe) {
            // Take the SIGPIPE now pending for this thread before unblocking.
            let now = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            libc::sigtimedwait(&pipe, std::ptr::null_mut(), &now);
        }
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        result
    }
}

/// A pipe whose ends are close-on-exec and numbered above 4, so that the
/// child's dup2 onto 3 and 4 cannot clobber one of them.
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: fds has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded, so both are open descriptors owned by nobody else.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    Ok((above_4(r)?, above_4(w)?))
}

fn above_4(fd: OwnedFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() > 4 {
        return Ok(fd);
    }
    // SAFETY: F_DUPFD_CLOEXEC returns a new descriptor (>= 5) or -1.
    let new = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 5) };
    if new < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `new` was just opened and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// Processes whose command line contains `marker`.
pub fn processes_with(marker: &str) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let marker = marker.as_bytes();
    if marker.is_empty() {
        return Vec::new();
    }
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.windows(marker.len()).any(|w| w == marker))
        })
        .collect()
}
