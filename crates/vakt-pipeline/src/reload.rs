//! Picking up an edited directory file while running (`vakt serve`,
//! `vakt watch --follow`): offices move and partners change weekly, and a
//! restart would drop every detector's baseline.
//!
//! The file is polled ([`DirectoryFile::poll`], every few seconds) rather
//! than watched with inotify and the like: polling works the same on every
//! filesystem (network mounts, container volumes, editors that replace the
//! file instead of writing it), and a file of a few kilobytes read every
//! few seconds costs nothing. Each poll reads the file and hashes it, so an
//! edit that keeps the size and the (coarse) modification time is seen too.
//! A new version is taken only when a second read a moment later agrees:
//! a writer that truncates and then writes (most tools that do not rename)
//! leaves an empty or half-written file for an instant, and taking that
//! instant would drop every account until the next poll.
//!
//! A changed file is checked as at start ([`load`]: the TOML, every entry,
//! the detector parameters). A bad edit is refused with file:line and what
//! to fix, once per edit, and the running directory stays in force; a good
//! one is handed to the pipeline ([`crate::Pipeline::reload`]) between two
//! events.

use crate::PipelineError;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use vakt_detect::detectors;
use vakt_event::{Directory, DirectoryError};

/// How often the directory file is looked at by default.
pub const DEFAULT_POLL: Duration = Duration::from_secs(5);

/// The pause before the second read that confirms a new version.
const SETTLE: Duration = Duration::from_millis(50);

/// `--directory-poll`: `5s`, `1m` (whole seconds at least).
pub fn parse_poll(s: &str) -> Result<Duration, String> {
    vakt_event::directory::parse_ttl(s)
        .map(|ms| Duration::from_millis(ms as u64))
        .ok_or_else(|| format!("`{s}` is not a duration; write e.g. 5s or 1m"))
}

/// What identifies one version of the directory file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fingerprint {
    pub modified: Option<SystemTime>,
    pub size: u64,
    /// BLAKE3 of the content, in hex.
    pub hash: String,
}

/// A directory read and checked, with the version of the file it came from.
#[derive(Debug)]
pub struct Loaded {
    pub directory: Arc<Directory>,
    pub fingerprint: Fingerprint,
}

/// Reads, parses and checks the directory file as at start, detector
/// parameters included.
pub fn load(path: &Path) -> Result<Loaded, PipelineError> {
    let (text, fingerprint) = read(path)?;
    Ok(Loaded {
        directory: Arc::new(check(&text, path)?),
        fingerprint,
    })
}

fn check(text: &str, path: &Path) -> Result<Directory, DirectoryError> {
    let directory = Directory::from_toml(text, &path.display().to_string())?;
    detectors::settings(&directory)?;
    Ok(directory)
}

fn read(path: &Path) -> Result<(String, Fingerprint), DirectoryError> {
    let cannot = |e: std::io::Error| DirectoryError {
        path: path.display().to_string(),
        line: 0,
        column: 0,
        message: format!("cannot read the directory file: {e}; fix the path or its permissions"),
    };
    let text = std::fs::read_to_string(path).map_err(cannot)?;
    let meta = std::fs::metadata(path).ok();
    let fingerprint = Fingerprint {
        modified: meta.as_ref().and_then(|m| m.modified().ok()),
        size: text.len() as u64,
        hash: blake3::hash(text.as_bytes()).to_hex().to_string(),
    };
    Ok((text, fingerprint))
}

/// What one look at the file found.
#[derive(Debug)]
pub enum Poll {
    /// The content is what was last seen (good or refused).
    Unchanged,
    /// A good edit: hand it to the pipeline.
    Changed(Loaded),
    /// A bad edit (or an unreadable file): say so, keep what runs.
    Refused(PipelineError),
}

/// The directory file of a run, and the version last seen.
pub struct DirectoryFile {
    path: PathBuf,
    last: Fingerprint,
}

impl DirectoryFile {
    /// Watches `path`, whose version `current` is the one in force.
    pub fn new(path: PathBuf, current: Fingerprint) -> DirectoryFile {
        DirectoryFile {
            path,
            last: current,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The version last seen (its hash is empty after a failed read).
    pub fn current(&self) -> &Fingerprint {
        &self.last
    }

    /// Looks at the file once. A refused version is not reported again
    /// until the file changes once more.
    pub fn poll(&mut self) -> Poll {
        let (text, fingerprint) = match read(&self.path) {
            Ok(r) => r,
            Err(e) => {
                // Reported once; the next readable version is compared afresh.
                if self.last.hash.is_empty() {
                    return Poll::Unchanged;
                }
                self.last.hash.clear();
                return Poll::Refused(e.into());
            }
        };
        if fingerprint.hash == self.last.hash {
            return Poll::Unchanged;
        }
        // Still being written: judged at the next poll, once it holds still.
        std::thread::sleep(SETTLE);
        match read(&self.path) {
            Ok((_, again)) if again.hash == fingerprint.hash => {}
            _ => return Poll::Unchanged,
        }
        self.last = fingerprint.clone();
        match check(&text, &self.path) {
            Ok(d) => Poll::Changed(Loaded {
                directory: Arc::new(d),
                fingerprint,
            }),
            Err(e) => Poll::Refused(e.into()),
        }
    }
}

/// The line logged when an edit is applied.
pub fn applied(directory: &Directory, rebuilt: &[&str]) -> String {
    let mut m = format!(
        "directory reloaded: {} accounts, {} organisations, {} changes in detector parameters",
        directory.accounts.len(),
        directory.organizations.len(),
        rebuilt.len()
    );
    if !rebuilt.is_empty() {
        m.push_str(&format!(" ({} start afresh)", rebuilt.join(", ")));
    }
    m
}

/// The line logged when an edit is refused.
pub fn refused(e: &PipelineError) -> String {
    format!("directory edit refused, the running directory stays in force: {e}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, text: &str) {
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn an_edit_is_seen_once_and_a_bad_one_is_refused_with_its_line() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("directory.toml");
        write(&path, "[[canary]]\ncustomer_id = \"C-1\"\n");
        let start = load(&path).unwrap();
        let mut file = DirectoryFile::new(path.clone(), start.fingerprint);
        assert!(matches!(file.poll(), Poll::Unchanged));

        write(&path, "[[canary]]\ncustomer_id = \"C-2\"\n");
        match file.poll() {
            Poll::Changed(l) => assert_eq!(l.directory.canaries[0].customer_id, "C-2"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(file.poll(), Poll::Unchanged));

        write(
            &path,
            "[[canary]]\ncustomer_id = \"C-2\"\n\n[detectors.rate]\nnope = 3\n",
        );
        match file.poll() {
            Poll::Refused(e) => {
                let m = e.to_string();
                assert!(m.contains("directory.toml:5:"), "{m}");
                assert!(m.contains("no parameter `nope`"), "{m}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(file.poll(), Poll::Unchanged), "refused once");

        write(&path, "[[canary]\n");
        assert!(
            matches!(file.poll(), Poll::Refused(e) if e.to_string().contains("directory.toml:1:"))
        );
    }

    #[test]
    fn a_file_caught_between_truncation_and_write_is_not_taken() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("directory.toml");
        write(&path, "[[canary]]\ncustomer_id = \"C-1\"\n");
        let start = load(&path).unwrap();
        let mut file = DirectoryFile::new(path.clone(), start.fingerprint);

        // Truncated now, written while the poll is settling.
        write(&path, "");
        let writer = {
            let path = path.clone();
            std::thread::spawn(move || {
                std::thread::sleep(SETTLE / 5);
                write(&path, "[[canary]]\ncustomer_id = \"C-2\"\n");
            })
        };
        let mut seen = Vec::new();
        for _ in 0..5 {
            match file.poll() {
                Poll::Changed(l) => {
                    seen.push(l.directory.canaries.len());
                    break;
                }
                Poll::Unchanged => {}
                other => panic!("{other:?}"),
            }
        }
        writer.join().unwrap();
        assert_eq!(seen, [1], "only the written version is taken");
    }
}
