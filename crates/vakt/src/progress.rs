//! Progress bars for long runs, drawn on stderr only when it is a
//! terminal (callers check), cleared when the work ends.

use indicatif::{ProgressBar, ProgressStyle};

/// A bar over `total` bytes: bytes done, rate, time left.
pub fn bytes(total: u64, message: &'static str) -> Bar {
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}, {eta} left",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_message(message);
    Bar(bar)
}

/// A bar over `total` items (entries, events): count, rate, time left.
pub fn items(total: u64, message: &'static str) -> Bar {
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:30}] {human_pos}/{human_len} {per_sec}, {eta} left",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_message(message);
    Bar(bar)
}

/// A bar that clears itself when dropped, so an error or the summary
/// that follows is not drawn over.
pub struct Bar(pub ProgressBar);

impl Drop for Bar {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}

/// A callback that moves a bytes bar to the position it is given.
pub fn bytes_callback(total: u64, message: &'static str) -> Box<dyn FnMut(u64) + Send> {
    let bar = bytes(total, message);
    Box::new(move |done| bar.0.set_position(done))
}
