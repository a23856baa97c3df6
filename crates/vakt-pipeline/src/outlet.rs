//! Where alert lines go once the ledger has them: one small trait, and the
//! outlets every front end uses (JSON lines, the delivery queue).

use std::io::{self, Write};
use std::sync::Arc;
use vakt_deliver::Deliverer;
use vakt_event::Alert;
use vakt_ledger::decisions::Decision;

/// Receives every alert line, with the decisions the policies made of it.
///
/// An outlet's error is reported (once per outlet, in the pipeline's
/// report and as a warning) but does not stop the pipeline: the alert is
/// in the ledger either way.
pub trait Outlet: Send {
    /// Names the outlet in errors, e.g. `stdout` or `delivery`.
    fn name(&self) -> &str;

    fn alert(&mut self, alert: &Alert, decisions: &[Decision]) -> io::Result<()>;

    /// An alert the exception `exception` suppressed: it is not delivered;
    /// counters count it here.
    fn suppressed(&mut self, _alert: &Alert, _exception: &str) {}

    /// Called once at the end of the run: flush what is buffered.
    fn finish(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Alert lines as JSON, one per line (EVENTS.md section 5).
///
/// A reader that went away (a broken pipe, e.g. `| head`) ends the output
/// quietly; any other write error is reported once and ends it too.
pub struct JsonLines<W: Write + Send> {
    name: String,
    out: Option<W>,
    flush_each: bool,
}

impl<W: Write + Send> JsonLines<W> {
    /// `flush_each`: flush after every line, for a reader that follows
    /// the output live.
    pub fn new(name: impl Into<String>, out: W, flush_each: bool) -> Self {
        JsonLines {
            name: name.into(),
            out: Some(out),
            flush_each,
        }
    }

    fn write(&mut self, f: impl FnOnce(&mut W) -> io::Result<()>) -> io::Result<()> {
        let Some(out) = self.out.as_mut() else {
            return Ok(());
        };
        match f(out) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.out = None;
                if e.kind() == io::ErrorKind::BrokenPipe {
                    Ok(())
                } else {
                    Err(e)
                }
            }
        }
    }
}

impl<W: Write + Send> Outlet for JsonLines<W> {
    fn name(&self) -> &str {
        &self.name
    }

    fn alert(&mut self, alert: &Alert, _: &[Decision]) -> io::Result<()> {
        let flush = self.flush_each;
        self.write(|w| {
            writeln!(w, "{}", alert.to_json_line())?;
            if flush {
                w.flush()?;
            }
            Ok(())
        })
    }

    fn finish(&mut self) -> io::Result<()> {
        self.write(|w| w.flush())
    }
}

/// The delivery queue (webhooks, Slack, syslog), fsynced before
/// [`Outlet::alert`] returns; sending happens in the deliverer's threads.
pub struct Delivery(pub Arc<Deliverer>);

impl Outlet for Delivery {
    fn name(&self) -> &str {
        "delivery"
    }

    fn alert(&mut self, alert: &Alert, _: &[Decision]) -> io::Result<()> {
        self.0.enqueue(alert).map_err(io::Error::other)
    }
}

impl Outlet for Box<dyn Outlet> {
    fn name(&self) -> &str {
        (**self).name()
    }

    fn alert(&mut self, alert: &Alert, decisions: &[Decision]) -> io::Result<()> {
        (**self).alert(alert, decisions)
    }

    fn suppressed(&mut self, alert: &Alert, exception: &str) {
        (**self).suppressed(alert, exception)
    }

    fn finish(&mut self) -> io::Result<()> {
        (**self).finish()
    }
}
