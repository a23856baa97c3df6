//! What the HTTP targets share: the `url` setting and a JSON `POST`.

use super::Settings;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(10);

/// The entry's `url`, which must be http(s).
pub(super) fn url(kind: &str, s: &Settings) -> Result<String, String> {
    match &s.url {
        Some(u) if u.starts_with("http://") || u.starts_with("https://") => Ok(u.clone()),
        Some(u) => Err(format!(
            "{kind} target `{}`: url `{u}` must start with http:// or https://",
            s.name
        )),
        None => Err(format!(
            "{kind} target `{}` needs `url = \"https://...\"`",
            s.name
        )),
    }
}

/// Posts JSON to one URL.
pub(super) struct Poster {
    pub(super) url: String,
    agent: ureq::Agent,
}

impl Poster {
    pub(super) fn new(url: String) -> Poster {
        Poster {
            url,
            agent: ureq::Agent::config_builder()
                .timeout_global(Some(TIMEOUT))
                .build()
                .into(),
        }
    }

    pub(super) fn post(&self, body: &serde_json::Value) -> Result<(), String> {
        let url = &self.url;
        // Compact, one line, as the alert lines are; `send_json` would pretty-print.
        let bytes = serde_json::to_vec(body).map_err(|e| e.to_string())?;
        match self
            .agent
            .post(url)
            .header("content-type", "application/json")
            .send(&bytes[..])
        {
            Ok(_) => Ok(()),
            Err(ureq::Error::StatusCode(code)) => Err(format!("{url} answered {code}")),
            Err(e) => Err(format!("{url}: {e}")),
        }
    }
}
