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

use super::worker::Worker;
use super::{compress, io, Block, BLOCK_HEADER, INDEX_ROW};
use crate::{LedgerError, Result};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

/// Blocks handed over and not yet written before an append waits: bounds
/// the entries held twice (in memory and in flight) to this many blocks.
pub(super) const IN_FLIGHT: usize = 8;

/// A block to write: its encoded columns, first seq and entry count.
pub(super) struct Job {
    pub(super) raw: Vec<u8>,
    pub(super) first_seq: u64,
    pub(super) count: u32,
}

/// A block written, and its buffer back for the next one.
pub(super) type Written = (Result<Block>, Vec<u8>);

/// Starts writing blocks at byte `log_len` of `log`, as the `blocks`-th
/// block of `index`.
pub(super) fn start(
    log: (&File, PathBuf),
    index: (&File, PathBuf),
    log_len: u64,
    blocks: u64,
) -> Result<Worker<Job, Written>> {
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
    // The blocks in flight when the store is dropped are still written
    // (past the last commit point, so the next open cuts them).
    Worker::start("log", IN_FLIGHT, move |job: Job| (at.write(&job), job.raw))
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
