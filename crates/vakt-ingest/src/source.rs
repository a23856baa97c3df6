//! Sources: files (plain or gzip), stdin, and files followed as they grow
//! (`tail -F`, rotation included).

use flate2::read::MultiGzDecoder;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where one input comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    Stdin,
    File(PathBuf),
}

impl Input {
    /// `-` is stdin, anything else a path.
    pub fn parse(s: &str) -> Input {
        if s == "-" {
            Input::Stdin
        } else {
            Input::File(PathBuf::from(s))
        }
    }

    pub fn name(&self) -> String {
        match self {
            Input::Stdin => "<stdin>".into(),
            Input::File(p) => p.display().to_string(),
        }
    }
}

/// How to stop following files.
#[derive(Clone, Debug)]
pub struct FollowControl {
    /// Set (e.g. by Ctrl-C) to end the run cleanly.
    pub stop: Arc<AtomicBool>,
    /// End after this long without new data (for scripted runs and tests).
    pub idle_exit: Option<Duration>,
    pub poll: Duration,
}

impl Default for FollowControl {
    fn default() -> Self {
        FollowControl {
            stop: Arc::new(AtomicBool::new(false)),
            idle_exit: None,
            poll: Duration::from_millis(200),
        }
    }
}

const BUF: usize = 256 * 1024;

/// Opens an input for reading once to its end. Gzip is recognised by its
/// magic bytes, whatever the file is called.
pub fn open(input: &Input) -> io::Result<Box<dyn BufRead + Send>> {
    match input {
        Input::Stdin => Ok(maybe_gzip(Box::new(BufReader::with_capacity(
            BUF,
            io::stdin(),
        )))?),
        Input::File(p) => {
            let f = File::open(p).map_err(|e| with_path(e, p))?;
            maybe_gzip(Box::new(BufReader::with_capacity(BUF, f)))
        }
    }
}

fn with_path(e: io::Error, p: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", p.display()))
}

fn maybe_gzip(mut r: Box<dyn BufRead + Send>) -> io::Result<Box<dyn BufRead + Send>> {
    let head = r.fill_buf()?;
    if head.len() >= 2 && head[0] == 0x1f && head[1] == 0x8b {
        Ok(Box::new(BufReader::with_capacity(
            BUF,
            MultiGzDecoder::new(r),
        )))
    } else {
        Ok(r)
    }
}

/// Opens a file to follow: reads what is there, then waits for more;
/// reopens the path when the file is replaced (rotation) and starts over
/// when it is truncated.
pub fn follow(path: &Path, control: FollowControl) -> io::Result<Box<dyn BufRead + Send>> {
    let file = File::open(path).map_err(|e| with_path(e, path))?;
    let id = file_id(&file)?;
    Ok(Box::new(BufReader::with_capacity(
        BUF,
        Follow {
            path: path.to_owned(),
            file,
            id,
            pos: 0,
            control,
            last_data: Instant::now(),
        },
    )))
}

struct Follow {
    path: PathBuf,
    file: File,
    id: (u64, u64),
    pos: u64,
    control: FollowControl,
    last_data: Instant,
}

#[cfg(unix)]
fn file_id(f: &File) -> io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = f.metadata()?;
    Ok((m.dev(), m.ino()))
}

#[cfg(not(unix))]
fn file_id(_: &File) -> io::Result<(u64, u64)> {
    Ok((0, 0))
}

impl Read for Follow {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let n = self.file.read(buf)?;
            if n > 0 {
                self.pos += n as u64;
                self.last_data = Instant::now();
                return Ok(n);
            }
            if self.control.stop.load(Ordering::Relaxed) {
                return Ok(0);
            }
            if let Some(idle) = self.control.idle_exit {
                if self.last_data.elapsed() >= idle {
                    return Ok(0);
                }
            }
            // At the end of what is written: rotated, truncated, or just quiet?
            match File::open(&self.path) {
                Ok(f) if file_id(&f)? != self.id => {
                    // Rotated. Drain the old file first: writers may have added to it.
                    let n = self.file.read(buf)?;
                    if n > 0 {
                        self.pos += n as u64;
                        return Ok(n);
                    }
                    self.id = file_id(&f)?;
                    self.file = f;
                    self.pos = 0;
                    continue;
                }
                Ok(_) => {
                    let len = self.file.metadata()?.len();
                    if len < self.pos {
                        self.file.seek(SeekFrom::Start(0))?;
                        self.pos = 0;
                        continue;
                    }
                }
                // Between the rename and the new file's creation: wait.
                Err(_) => {}
            }
            std::thread::sleep(self.control.poll);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use std::io::Write;

    #[test]
    fn gzip_is_read_transparently() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("events.log.gz");
        let mut enc = GzEncoder::new(File::create(&p).unwrap(), flate2::Compression::fast());
        enc.write_all(b"one\ntwo\n").unwrap();
        enc.finish().unwrap();
        let mut s = String::new();
        open(&Input::File(p))
            .unwrap()
            .read_to_string(&mut s)
            .unwrap();
        assert_eq!(s, "one\ntwo\n");
    }

    #[test]
    fn following_survives_rotation_and_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("app.log");
        std::fs::write(&p, "a\n").unwrap();
        let control = FollowControl {
            idle_exit: Some(Duration::from_millis(600)),
            poll: Duration::from_millis(20),
            ..Default::default()
        };
        let reader = follow(&p, control).unwrap();
        let p2 = p.clone();
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            std::fs::OpenOptions::new()
                .append(true)
                .open(&p2)
                .unwrap()
                .write_all(b"b\n")
                .unwrap();
            std::thread::sleep(Duration::from_millis(100));
            std::fs::rename(&p2, p2.with_extension("log.1")).unwrap();
            std::fs::write(&p2, "c\n").unwrap();
            std::thread::sleep(Duration::from_millis(150));
            std::fs::write(&p2, "").unwrap();
            std::thread::sleep(Duration::from_millis(150));
            std::fs::write(&p2, "d\n").unwrap();
        });
        let lines: Vec<String> = reader.lines().map(|l| l.unwrap()).collect();
        writer.join().unwrap();
        assert_eq!(lines, vec!["a", "b", "c", "d"]);
    }
}
