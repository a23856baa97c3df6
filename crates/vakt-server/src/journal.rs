//! The ingest journal: every accepted event line, appended and synced to
//! disk before the client hears "accepted". Its line numbers are the
//! events' lines in the ledger, under one stable source name, so a replay
//! after a crash adds each access exactly once.

use crate::ServerError;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The journal's file name in the data directory; also the ledger's
/// source name for the events in it.
pub const FILE_NAME: &str = "serve-journal.jsonl";

pub(crate) struct Journal {
    file: File,
    pub(crate) path: PathBuf,
    /// Lines in the file.
    pub(crate) lines: u64,
    len: u64,
}

impl Journal {
    /// Opens (or creates) the journal. A last line without its line break
    /// was cut off while being written, before any client was told it was
    /// accepted, so it is removed.
    pub(crate) fn open(path: &Path) -> Result<Journal, ServerError> {
        let err = |source| ServerError::Journal {
            path: path.to_owned(),
            source,
        };
        let mut options = OpenOptions::new();
        options.read(true).append(true).create(true);
        // Every accepted event, customer ids included: its owner's only.
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path).map_err(err)?;
        let (mut lines, mut end, mut pos) = (0u64, 0u64, 0u64);
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = file.read(&mut buf).map_err(err)?;
            if n == 0 {
                break;
            }
            for (i, b) in buf[..n].iter().enumerate() {
                if *b == b'\n' {
                    lines += 1;
                    end = pos + i as u64 + 1;
                }
            }
            pos += n as u64;
        }
        if end < pos {
            file.set_len(end).map_err(err)?;
            file.sync_data().map_err(err)?;
        }
        file.seek(SeekFrom::End(0)).map_err(err)?;
        Ok(Journal {
            file,
            path: path.to_owned(),
            lines,
            len: end,
        })
    }

    /// Appends lines (without line breaks) and syncs them to disk. On
    /// failure the file is cut back to where it was, so nothing half
    /// written stays. Returns the line number of the first one.
    pub(crate) fn append<'a>(&mut self, lines: impl Iterator<Item = &'a str>) -> io::Result<u64> {
        let mut buf = Vec::new();
        let mut n = 0u64;
        for l in lines {
            buf.extend_from_slice(l.as_bytes());
            buf.push(b'\n');
            n += 1;
        }
        let first = self.lines + 1;
        let written = self
            .file
            .write_all(&buf)
            .and_then(|()| self.file.sync_data());
        if let Err(e) = written {
            let _ = self.file.set_len(self.len);
            return Err(e);
        }
        self.len += buf.len() as u64;
        self.lines += n;
        Ok(first)
    }
}

/// Reads the journal's first `lines` lines, calling `f(line number, text)`.
pub(crate) fn read(
    path: &Path,
    lines: u64,
    f: &mut dyn FnMut(u64, &str) -> Result<(), ServerError>,
) -> Result<(), ServerError> {
    let err = |source| ServerError::Journal {
        path: path.to_owned(),
        source,
    };
    let mut r = BufReader::new(File::open(path).map_err(err)?);
    let mut buf = Vec::new();
    for k in 1..=lines {
        buf.clear();
        if r.read_until(b'\n', &mut buf).map_err(err)? == 0 {
            break;
        }
        let text = String::from_utf8_lossy(&buf);
        f(k, text.trim_end_matches(['\n', '\r']))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cut_off_last_line_is_removed_and_numbering_goes_on() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(FILE_NAME);
        let mut j = Journal::open(&path).unwrap();
        assert_eq!(j.append(["a", "b"].into_iter()).unwrap(), 1);
        drop(j);
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"cut")
            .unwrap();
        let mut j = Journal::open(&path).unwrap();
        assert_eq!(j.lines, 2);
        assert_eq!(j.append(["c"].into_iter()).unwrap(), 3);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "a\nb\nc\n");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "the journal is its owner's only");
        }
        let mut seen = Vec::new();
        read(&path, 3, &mut |k, l| {
            seen.push((k, l.to_owned()));
            Ok(())
        })
        .unwrap();
        assert_eq!(seen.len(), 3);
        assert_eq!(seen[2], (3, "c".to_owned()));
    }
}
