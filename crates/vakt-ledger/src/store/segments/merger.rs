//! Merges on a thread of their own, so an append never waits for one.
//!
//! A merge only changes how the index is laid out, never what it says, so
//! it can run beside the appender: the runs it reads stay named by the
//! commit point until it is done, and its result is taken in at a later
//! flush, which names the merged run in place of its inputs. One merge runs
//! at a time; when runs pile up faster than it merges, a flush waits for it
//! (see [`BACKLOG`]).

use super::worker::Worker;
use super::{merge, run_path, Kind, Run};
use crate::Result;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Runs of one level that make a flush wait for the merge in flight: the
/// bound on runs per level (and so on look-ups per scope) while merges lag.
pub(super) const BACKLOG: usize = 2 * super::FANOUT;

/// A merge to do: the inputs, oldest first, all of one level.
pub(super) struct Job {
    pub(super) kind: Kind,
    pub(super) inputs: Vec<(u64, PathBuf)>,
    pub(super) id: u64,
    pub(super) level: u32,
}

/// A merge done: its inputs' ids and the merged run.
pub(super) struct Done {
    pub(super) kind: Kind,
    pub(super) inputs: Vec<u64>,
    pub(super) run: Result<Run>,
}

pub(super) struct Merger {
    /// Set when the store is dropped: a merge in flight stops at its next
    /// block, so no thread writes into the store's directory after it.
    cancel: Arc<AtomicBool>,
    worker: Worker<Job, Done>,
}

impl Merger {
    pub(super) fn start(dir: PathBuf) -> Result<Merger> {
        let cancel = Arc::new(AtomicBool::new(false));
        let stop = cancel.clone();
        let worker = Worker::start("merge", 1, move |job: Job| Done {
            run: run_job(&dir, &job, &stop),
            kind: job.kind,
            inputs: job.inputs.iter().map(|(id, _)| *id).collect(),
        })?;
        Ok(Merger { cancel, worker })
    }

    pub(super) fn in_flight(&self) -> bool {
        self.worker.in_flight() > 0
    }

    pub(super) fn send(&mut self, job: Job) -> Result<()> {
        self.worker.send(job)
    }

    /// The merge in flight, once done; with `wait`, waits for it.
    pub(super) fn take(&mut self, wait: bool) -> Result<Option<Done>> {
        self.worker.take(wait)
    }
}

impl Drop for Merger {
    fn drop(&mut self) {
        // Before the worker is dropped (and joined): the merge stops soon.
        self.cancel.store(true, Ordering::Relaxed);
    }
}

fn run_job(dir: &std::path::Path, job: &Job, cancel: &AtomicBool) -> Result<Run> {
    let runs = job
        .inputs
        .iter()
        .map(|(_, path)| Run::open(path, job.kind))
        .collect::<Result<Vec<Run>>>()?;
    merge(
        &runs,
        &run_path(dir, job.kind, job.id),
        job.kind,
        job.level,
        cancel,
    )
}
