//! Delivery targets: one module per kind of receiver, each behind
//! [`Target`], all registered in [`REGISTRY`]. Adding a kind is one new
//! module plus one line there.

use vakt_event::Alert;

mod http;
pub mod slack;
pub mod syslog;
pub mod webhook;

/// One receiver of alerts.
///
/// A target is built from its `[[target]]` entry when the delivery file is
/// loaded (so a mistake stops the load with file:line), and again by the
/// delivery thread that owns it, which may keep a connection open between
/// alerts. `send` either delivers the alert or says why not; the caller
/// retries the same alert with backoff, so a send must be safe to repeat.
pub trait Target: Send {
    /// The entry's `name`, which also names its cursor file.
    fn name(&self) -> &str;
    /// What it is and where it sends, for logs: `syslog tcp://10.0.0.5:6514 (cef)`.
    fn describe(&self) -> String;
    /// Sends one alert.
    fn send(&mut self, alert: &Alert) -> Result<(), String>;
}

/// A `[[target]]` entry's settings as written; each kind reads the ones it
/// uses and says what is missing.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Settings {
    pub name: String,
    pub url: Option<String>,
    pub address: Option<String>,
    pub format: Option<String>,
}

/// One registered kind of target.
#[derive(Debug)]
pub struct Kind {
    /// The name used by `kind = "..."`.
    pub name: &'static str,
    pub description: &'static str,
    /// Builds a target from its settings, or says what to write instead.
    pub build: fn(&Settings) -> Result<Box<dyn Target>, String>,
}

/// Every kind of target vakt delivers to.
#[rustfmt::skip]
pub static REGISTRY: &[Kind] = &[
    webhook::KIND,
    slack::KIND,
    syslog::KIND,
];

/// Looks a kind up by its `kind = "..."` name.
pub fn kind(name: &str) -> Option<&'static Kind> {
    REGISTRY.iter().find(|k| k.name == name)
}

/// The kinds' names as a person would list them: `webhook, slack or syslog`.
pub fn names() -> String {
    let names: Vec<&str> = REGISTRY.iter().map(|k| k.name).collect();
    match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => names.join(""),
    }
}
