//! Rejected lines: counted, reported with file and line, and kept in the
//! dead-letter file. Nothing is dropped silently.

use serde::Serialize;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

/// Most rejected lines an appending dead-letter file remembers, to keep
/// each once across restarts.
const KEPT_MAX: usize = 1_000_000;

/// How many rejects are printed on stderr before only counting.
pub const REPORT_FIRST: u64 = 20;

pub struct Rejects {
    count: u64,
    dead_letter: Option<BufWriter<File>>,
    /// Appending: the (source, line) pairs the file already holds, so a
    /// source read again after a restart adds no second copy.
    kept: std::collections::HashSet<(String, u64)>,
    report: Box<dyn FnMut(&str) + Send>,
}

#[derive(Serialize)]
struct DeadLetter<'a> {
    source: &'a str,
    line: u64,
    error: &'a str,
    raw: &'a str,
}

impl Rejects {
    /// Reports go to `report` (stderr in the binary).
    /// The dead-letter file, when given, starts empty: one run's rejects.
    pub fn new(
        dead_letter: Option<&Path>,
        report: Box<dyn FnMut(&str) + Send>,
    ) -> io::Result<Rejects> {
        Rejects::open(dead_letter, false, report)
    }

    /// As [`Rejects::new`], but the dead-letter file keeps what earlier
    /// runs put there: for a service whose restarts must lose nothing.
    pub fn appending(
        dead_letter: &Path,
        report: Box<dyn FnMut(&str) + Send>,
    ) -> io::Result<Rejects> {
        Rejects::open(Some(dead_letter), true, report)
    }

    fn open(
        dead_letter: Option<&Path>,
        append: bool,
        report: Box<dyn FnMut(&str) + Send>,
    ) -> io::Result<Rejects> {
        let mut kept = std::collections::HashSet::new();
        if let (true, Some(p)) = (append, dead_letter) {
            #[derive(serde::Deserialize)]
            struct Key {
                source: String,
                line: u64,
            }
            // Read a line at a time and remember at most KEPT_MAX keys: the
            // file grows with hostile input, start-up memory must not. Past
            // the cap a line read again may be kept twice, never lost.
            if let Ok(f) = File::open(p) {
                use std::io::BufRead;
                for l in io::BufReader::new(f).lines().map_while(Result::ok) {
                    if kept.len() >= KEPT_MAX {
                        break;
                    }
                    if let Ok(k) = serde_json::from_str::<Key>(&l) {
                        kept.insert((k.source, k.line));
                    }
                }
            }
        }
        let dead_letter = match dead_letter {
            Some(p) => {
                let mut options = std::fs::OpenOptions::new();
                options.create(true);
                if append {
                    options.append(true);
                } else {
                    options.write(true).truncate(true);
                }
                // Rejected lines are raw input: access records, customer ids.
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                Some(BufWriter::new(options.open(p).map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!("cannot create the dead-letter file {}: {e}", p.display()),
                    )
                })?))
            }
            None => None,
        };
        Ok(Rejects {
            count: 0,
            dead_letter,
            kept,
            report,
        })
    }

    /// Records one rejected line.
    pub fn reject(&mut self, source: &str, line: u64, error: &str, raw: &str) {
        self.count += 1;
        if self.count <= REPORT_FIRST {
            (self.report)(&format!("{source}:{line}: rejected: {error}"));
        } else if self.count == REPORT_FIRST + 1 {
            let where_ = if self.dead_letter.is_some() {
                "see the dead-letter file"
            } else {
                "pass --dead-letter FILE to keep them"
            };
            (self.report)(&format!("more lines rejected; counting only ({where_})"));
        }
        if !self.kept.is_empty() && self.kept.contains(&(source.to_owned(), line)) {
            return;
        }
        if let Some(w) = &mut self.dead_letter {
            let rec = DeadLetter {
                source,
                line,
                error,
                raw,
            };
            // A failing dead-letter file must not stop ingest; the count still holds.
            if serde_json::to_writer(&mut *w, &rec).is_ok() {
                let _ = w.write_all(b"\n");
            }
        }
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn flush(&mut self) -> io::Result<()> {
        if let Some(w) = &mut self.dead_letter {
            w.flush()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_appending_dead_letter_file_keeps_earlier_runs_once_and_is_private() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("rejects.jsonl");
        for run in 0..2 {
            let mut r = Rejects::appending(&path, Box::new(|_| {})).unwrap();
            r.reject("app.log", 2, "not JSON", "garbage");
            if run == 1 {
                r.reject("app.log", 7, "not JSON", "more garbage");
            }
            r.flush().unwrap();
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(
            lines[0].contains("\"line\":2") && lines[1].contains("\"line\":7"),
            "{text}"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // A run's own file starts empty.
        let mut r = Rejects::new(Some(&path), Box::new(|_| {})).unwrap();
        r.reject("b.log", 1, "e", "x");
        r.flush().unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 1);
    }
}
