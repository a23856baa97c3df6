//! Log blocks compressed and written on a thread of their own.
//!
//! Compressing a block cost about a sixth of an append on the appending
//! thread. Here the appender encodes a block's columns and hands the bytes
//! over; this thread compresses them, writes the block and its index row at
//! the end of the log, and answers with where it went. Blocks are written
//! in the order they were handed over, so the log is the same as one
//! written inline. The appender keeps a block's entries until the answer
//! comes (reads still find them), and a flush waits for every answer before
//! it syncs: the commit point never names a block that is not on disk.

use super::{compress, io, Block, BLOCK_HEADER, INDEX_ROW};
use crate::{LedgerError, Result};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::mpsc;

/// Blocks handed over and not yet written before an append waits: bounds
/// the entries held twice (in memory and in flight) to this many blocks.
pub(super) const IN_FLIGHT: usize = 8;

/// A block to write: its encoded columns and the entries it holds.
pub(super) struct Job {
    pub(super) raw: Vec<u8>,
    pub(super) first_seq: u64,
    pub(super) count: u32,
}

/// A block written, and its buffer back for the next one.
pub(super) type Written = (Result<Block>, Vec<u8>);

pub(super) struct LogWriter {
    jobs: Option<mpsc::SyncSender<Job>>,
    written: mpsc::Receiver<Written>,
    in_flight: usize,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LogWriter {
    /// Starts writing blocks at byte `log_len` of `log`, as the
    /// `blocks`-th block of `index`.
    pub(super) fn start(
        log: (&File, PathBuf),
        index: (&File, PathBuf),
        log_len: u64,
        blocks: u64,
    ) -> Result<LogWriter> {
        let mut at = Cursor {
            log: log.0.try_clone().map_err(io(&log.1))?,
            log_path: log.1,
            index: index.0.try_clone().map_err(io(&index.1))?,
            index_path: index.1,
            log_len,
            blocks,
            packed: Vec::new(),
            block: Vec::new(),
            failed: None,
        };
        let (jobs, rx) = mpsc::sync_channel::<Job>(IN_FLIGHT);
        let (tx, written) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("vakt-ledger-log".into())
            .spawn(move || {
                for job in rx {
                    let block = at.write(&job);
                    if tx.send((block, job.raw)).is_err() {
                        return;
                    }
                }
            })
            .map_err(|e| {
                LedgerError::Invalid(format!("cannot start the ledger's log thread: {e}"))
            })?;
        Ok(LogWriter {
            jobs: Some(jobs),
            written,
            in_flight: 0,
            thread: Some(thread),
        })
    }

    pub(super) fn in_flight(&self) -> usize {
        self.in_flight
    }

    pub(super) fn send(&mut self, job: Job) -> Result<()> {
        let gone = || LedgerError::Invalid("the ledger's log thread has stopped".into());
        self.jobs
            .as_ref()
            .ok_or_else(gone)?
            .send(job)
            .map_err(|_| gone())?;
        self.in_flight += 1;
        Ok(())
    }

    /// The oldest block in flight, once written; with `wait`, waits for it.
    pub(super) fn take(&mut self, wait: bool) -> Option<Written> {
        if self.in_flight == 0 {
            return None;
        }
        let got = if wait {
            self.written.recv().ok()
        } else {
            match self.written.try_recv() {
                Ok(w) => Some(w),
                Err(mpsc::TryRecvError::Empty) => return None,
                Err(mpsc::TryRecvError::Disconnected) => None,
            }
        };
        self.in_flight -= 1;
        Some(got.unwrap_or_else(|| {
            (
                Err(LedgerError::Invalid(
                    "the ledger's log thread stopped while writing".into(),
                )),
                Vec::new(),
            )
        }))
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        // The blocks in flight are written (past the last commit point, so
        // the next open cuts them); the thread ends before the store lets
        // go of its lock.
        self.jobs.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Where the next block goes, and the buffers a block is framed in.
struct Cursor {
    log: File,
    log_path: PathBuf,
    index: File,
    index_path: PathBuf,
    log_len: u64,
    blocks: u64,
    packed: Vec<u8>,
    block: Vec<u8>,
    /// After a failed write, every later block fails too: the log must
    /// not go on past a hole.
    failed: Option<String>,
}

impl Cursor {
    fn write(&mut self, job: &Job) -> Result<Block> {
        if let Some(why) = &self.failed {
            return Err(LedgerError::Invalid(format!(
                "{}: an earlier block could not be written: {why}",
                self.log_path.display()
            )));
        }
        let r = self.write_block(job);
        if let Err(e) = &r {
            self.failed = Some(e.to_string());
        }
        r
    }

    fn write_block(&mut self, job: &Job) -> Result<Block> {
        compress(&job.raw, &mut self.packed).map_err(io(&self.log_path))?;
        let block = &mut self.block;
        block.clear();
        block.extend_from_slice(&(self.packed.len() as u32).to_le_bytes());
        block.extend_from_slice(&crc32fast::hash(&self.packed).to_le_bytes());
        block.extend_from_slice(&job.first_seq.to_le_bytes());
        block.extend_from_slice(&job.count.to_le_bytes());
        block.extend_from_slice(&self.packed);
        debug_assert_eq!(block.len(), BLOCK_HEADER + self.packed.len());
        self.log
            .write_all_at(block, self.log_len)
            .map_err(io(&self.log_path))?;
        let b = Block {
            first_seq: job.first_seq,
            offset: self.log_len,
            len: block.len() as u32,
            count: job.count,
        };
        let mut row = [0u8; INDEX_ROW];
        row[0..8].copy_from_slice(&b.first_seq.to_le_bytes());
        row[8..16].copy_from_slice(&b.offset.to_le_bytes());
        row[16..20].copy_from_slice(&b.len.to_le_bytes());
        row[20..24].copy_from_slice(&b.count.to_le_bytes());
        self.index
            .write_all_at(&row, self.blocks * INDEX_ROW as u64)
            .map_err(io(&self.index_path))?;
        self.log_len += b.len as u64;
        self.blocks += 1;
        Ok(b)
    }
}
