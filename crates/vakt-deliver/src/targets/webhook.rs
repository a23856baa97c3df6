//! `kind = "webhook"`: the alert line itself (EVENTS.md section 5), `POST`
//! as JSON to `url`.

use super::http::{url, Poster};
use super::{Kind, Settings, Target};
use vakt_event::Alert;

pub const KIND: Kind = Kind {
    name: "webhook",
    description: "the alert as JSON, posted to `url`",
    build,
};

struct Webhook {
    name: String,
    to: Poster,
}

fn build(s: &Settings) -> Result<Box<dyn Target>, String> {
    Ok(Box::new(Webhook {
        name: s.name.clone(),
        to: Poster::new(url("webhook", s)?),
    }))
}

impl Target for Webhook {
    fn name(&self) -> &str {
        &self.name
    }

    fn describe(&self) -> String {
        format!("webhook {}", self.to.url)
    }

    fn send(&mut self, a: &Alert) -> Result<(), String> {
        self.to
            .post(&serde_json::to_value(a).map_err(|e| e.to_string())?)
    }
}
