//! The delivery queue on disk: one append-only file of alert lines, and a
//! byte-offset cursor per target.

use crate::{io_err, Result};
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub(crate) struct Queue {
    dir: PathBuf,
    path: PathBuf,
    file: Mutex<File>,
    cursors: Mutex<HashMap<String, u64>>,
}

impl Queue {
    pub(crate) fn open(dir: &Path, targets: &[&str]) -> Result<Queue> {
        std::fs::create_dir_all(dir).map_err(io_err(format!("cannot create {}", dir.display())))?;
        let path = dir.join("queue.jsonl");
        let mut cursors = HashMap::new();
        for t in targets {
            let c = std::fs::read_to_string(dir.join(format!("{t}.cursor")))
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0u64);
            cursors.insert((*t).to_owned(), c);
        }
        let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        // Everything sent everywhere: start the file afresh.
        if len > 0 && !cursors.is_empty() && cursors.values().all(|&c| c >= len) {
            std::fs::remove_file(&path)
                .map_err(io_err(format!("cannot empty {}", path.display())))?;
            for (t, c) in cursors.iter_mut() {
                *c = 0;
                write_cursor(dir, t, 0)?;
            }
        }
        let mut options = OpenOptions::new();
        options.create(true).append(true);
        // Queued alerts name accounts and customers: their owner's only.
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options
            .open(&path)
            .map_err(io_err(format!("cannot open {}", path.display())))?;
        Ok(Queue {
            dir: dir.to_owned(),
            path,
            file: Mutex::new(file),
            cursors: Mutex::new(cursors),
        })
    }

    pub(crate) fn append(&self, line: &str) -> Result<()> {
        let mut f = self.file.lock().unwrap_or_else(|p| p.into_inner());
        let mut buf = line.replace('\n', " ");
        buf.push('\n');
        f.write_all(buf.as_bytes())
            .and_then(|()| f.sync_data())
            .map_err(io_err(format!("cannot write {}", self.path.display())))
    }

    /// The next complete line for `target`, and the offset after it.
    pub(crate) fn next(&self, target: &str) -> Result<Option<(String, u64)>> {
        let at = self.cursor(target);
        let mut f = File::open(&self.path)
            .map_err(io_err(format!("cannot read {}", self.path.display())))?;
        f.seek(SeekFrom::Start(at))
            .map_err(io_err(format!("cannot read {}", self.path.display())))?;
        let mut line = String::new();
        let n = BufReader::new(f)
            .read_line(&mut line)
            .map_err(io_err(format!("cannot read {}", self.path.display())))?;
        if n == 0 || !line.ends_with('\n') {
            return Ok(None);
        }
        line.pop();
        Ok(Some((line, at + n as u64)))
    }

    pub(crate) fn advance(&self, target: &str, to: u64) -> Result<()> {
        write_cursor(&self.dir, target, to)?;
        self.cursors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(target.to_owned(), to);
        Ok(())
    }

    fn cursor(&self, target: &str) -> u64 {
        self.cursors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(target)
            .copied()
            .unwrap_or(0)
    }

    /// Bytes not yet delivered, summed over targets (0 when all are done).
    pub(crate) fn pending(&self) -> u64 {
        let len = std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0);
        self.cursors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .map(|&c| len.saturating_sub(c))
            .sum()
    }
}

/// Written to a temporary file and renamed, so a crash leaves the old or the new cursor.
fn write_cursor(dir: &Path, target: &str, at: u64) -> Result<()> {
    let tmp = dir.join(format!("{target}.cursor.tmp"));
    let path = dir.join(format!("{target}.cursor"));
    std::fs::write(&tmp, at.to_string())
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(io_err(format!("cannot write {}", path.display())))
}
