//! `kind = "slack"`: a Slack-compatible incoming webhook at `url`, sent
//! `{"text": ...}` (see [`crate::format::slack`]).

use super::http::{url, Poster};
use super::{Kind, Settings, Target};
use crate::format;
use vakt_event::Alert;

pub const KIND: Kind = Kind {
    name: "slack",
    description: "a message to a Slack-compatible incoming webhook at `url`",
    build,
};

struct Slack {
    name: String,
    to: Poster,
}

fn build(s: &Settings) -> Result<Box<dyn Target>, String> {
    Ok(Box::new(Slack {
        name: s.name.clone(),
        to: Poster::new(url("slack", s)?),
    }))
}

impl Target for Slack {
    fn name(&self) -> &str {
        &self.name
    }

    fn describe(&self) -> String {
        format!("slack {}", self.to.url)
    }

    fn send(&mut self, a: &Alert) -> Result<(), String> {
        self.to.post(&format::slack(a))
    }
}
