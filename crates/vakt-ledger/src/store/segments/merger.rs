//! Merges on a thread of their own, so an append never waits for one.
//!
//! A merge only changes how the index is laid out, never what it says, so
//! it can run beside the appender: the runs it reads stay named by the
//! commit point until it is done, and its result is taken in at a later
//! flush, which names the merged run in place of its inputs. One merge runs
//! at a time; when runs pile up faster than it merges, a flush waits for it
//! (see [`BACKLOG`]).

use super::{merge, run_path, Kind, Run};
use crate::{LedgerError, Result};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};

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
    jobs: Option<mpsc::Sender<Job>>,
    done: mpsc::Receiver<Done>,
    in_flight: bool,
    /// Set when the store is dropped: a merge in flight stops at its next
    /// block, so no thread writes into the store's directory after it.
    cancel: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Merger {
    pub(super) fn start(dir: PathBuf) -> Result<Merger> {
        let (jobs, rx) = mpsc::channel::<Job>();
        let (tx, done) = mpsc::channel();
        let cancel = Arc::new(AtomicBool::new(false));
        let stop = cancel.clone();
        let thread = std::thread::Builder::new()
            .name("vakt-ledger-merge".into())
            .spawn(move || {
                for job in rx {
                    let run = run_job(&dir, &job, &stop);
                    let inputs = job.inputs.iter().map(|(id, _)| *id).collect();
                    if tx
                        .send(Done {
                            kind: job.kind,
                            inputs,
                            run,
                        })
                        .is_err()
                    {
                        return;
                    }
                }
            })
            .map_err(|e| {
                LedgerError::Invalid(format!("cannot start the ledger's merge thread: {e}"))
            })?;
        Ok(Merger {
            jobs: Some(jobs),
            done,
            in_flight: false,
            cancel,
            thread: Some(thread),
        })
    }

    pub(super) fn in_flight(&self) -> bool {
        self.in_flight
    }

    pub(super) fn send(&mut self, job: Job) -> Result<()> {
        let gone = || LedgerError::Invalid("the ledger's merge thread has stopped".into());
        self.jobs
            .as_ref()
            .ok_or_else(gone)?
            .send(job)
            .map_err(|_| gone())?;
        self.in_flight = true;
        Ok(())
    }

    /// The merge in flight, once done; with `wait`, waits for it.
    pub(super) fn take(&mut self, wait: bool) -> Result<Option<Done>> {
        if !self.in_flight {
            return Ok(None);
        }
        let got = if wait {
            self.done.recv().ok()
        } else {
            match self.done.try_recv() {
                Ok(d) => Some(d),
                Err(mpsc::TryRecvError::Empty) => return Ok(None),
                Err(mpsc::TryRecvError::Disconnected) => None,
            }
        };
        self.in_flight = false;
        got.map(Some).ok_or_else(|| {
            LedgerError::Invalid("the ledger's merge thread stopped during a merge".into())
        })
    }
}

impl Drop for Merger {
    fn drop(&mut self) {
        self.cancel.store(true, Ordering::Relaxed);
        self.jobs.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
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
