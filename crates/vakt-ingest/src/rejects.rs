//! Rejected lines: counted, reported with file and line, and kept in the
//! dead-letter file. Nothing is dropped silently.

use serde::Serialize;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

/// How many rejects are printed on stderr before only counting.
pub const REPORT_FIRST: u64 = 20;

pub struct Rejects {
    count: u64,
    dead_letter: Option<BufWriter<File>>,
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
    pub fn new(
        dead_letter: Option<&Path>,
        report: Box<dyn FnMut(&str) + Send>,
    ) -> io::Result<Rejects> {
        let dead_letter = match dead_letter {
            Some(p) => Some(BufWriter::new(File::create(p).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot create the dead-letter file {}: {e}", p.display()),
                )
            })?)),
            None => None,
        };
        Ok(Rejects {
            count: 0,
            dead_letter,
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
