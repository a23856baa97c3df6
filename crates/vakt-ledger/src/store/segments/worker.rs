//! A thread of the store's own that takes jobs in order and answers each,
//! in order: what the log writer and the merger are built on.

use crate::{LedgerError, Result};
use std::sync::mpsc;

pub(super) struct Worker<J, D> {
    what: &'static str,
    jobs: Option<mpsc::SyncSender<J>>,
    done: mpsc::Receiver<D>,
    in_flight: usize,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl<J: Send + 'static, D: Send + 'static> Worker<J, D> {
    /// Starts the thread `vakt-ledger-{what}`, which runs `work` on each
    /// job; at most `queue` jobs wait for it before [`Worker::send`] does.
    pub(super) fn start(
        what: &'static str,
        queue: usize,
        mut work: impl FnMut(J) -> D + Send + 'static,
    ) -> Result<Worker<J, D>> {
        let (jobs, rx) = mpsc::sync_channel::<J>(queue);
        let (tx, done) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name(format!("vakt-ledger-{what}"))
            .spawn(move || {
                for job in rx {
                    if tx.send(work(job)).is_err() {
                        return;
                    }
                }
            })
            .map_err(|e| {
                LedgerError::Invalid(format!("cannot start the ledger's {what} thread: {e}"))
            })?;
        Ok(Worker {
            what,
            jobs: Some(jobs),
            done,
            in_flight: 0,
            thread: Some(thread),
        })
    }

    /// Jobs sent and not yet taken back.
    pub(super) fn in_flight(&self) -> usize {
        self.in_flight
    }

    pub(super) fn send(&mut self, job: J) -> Result<()> {
        let gone =
            || LedgerError::Invalid(format!("the ledger's {} thread has stopped", self.what));
        self.jobs
            .as_ref()
            .ok_or_else(gone)?
            .send(job)
            .map_err(|_| gone())?;
        self.in_flight += 1;
        Ok(())
    }

    /// The answer to the oldest job in flight, once there is one; with
    /// `wait`, waits for it.
    pub(super) fn take(&mut self, wait: bool) -> Result<Option<D>> {
        if self.in_flight == 0 {
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
        self.in_flight -= 1;
        got.map(Some).ok_or_else(|| {
            LedgerError::Invalid(format!(
                "the ledger's {} thread stopped during a job",
                self.what
            ))
        })
    }
}

impl<J, D> Drop for Worker<J, D> {
    /// The jobs already sent are done, then the thread ends: the store
    /// lets go of its lock only after.
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
