//! Exceptions as people ask for them, over the API, in the console and
//! on the command line: one way to read and check a request.

use serde::Deserialize;
use vakt_event::{Exception, NewException, Timestamp};
use vakt_ledger::incident_workflow::IncidentChange;
use vakt_ledger::incidents::Incident;
use vakt_ledger::Ledger;

/// Every rule id an alert may carry: the detectors', `step_up_failures`,
/// which the HTTP proxy raises, and the page checks' two. What an
/// exception's rule is checked against.
pub fn rule_ids() -> Vec<&'static str> {
    let mut ids: Vec<&'static str> = vakt_detect::detectors::infos()
        .iter()
        .map(|i| i.id)
        .collect();
    ids.push("step_up_failures");
    ids.push(vakt_event::page::RULE);
    ids.push(vakt_event::page::CHECK_RULE);
    ids
}

/// An exception as a person asks for it: [`NewException`], and
/// `for` (`30d`) instead of `until`, or `from_alert` to take the actor and
/// rule of a recorded alert.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExceptionRequest {
    #[serde(default)]
    pub actor: Option<String>,
    #[serde(default)]
    pub rule: Option<String>,
    #[serde(default)]
    pub destination: Option<String>,
    #[serde(default)]
    pub until: Option<String>,
    #[serde(default, rename = "for")]
    pub for_: Option<String>,
    #[serde(default)]
    pub from_alert: Option<String>,
    #[serde(default)]
    pub reason: String,
}

/// Empty text is absent (an empty form field).
fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

impl ExceptionRequest {
    /// The checked exception, made now by `by`; the error says what to fix.
    pub fn make(self, l: &Ledger, by: &str) -> Result<Exception, String> {
        let now = Timestamp::now();
        let (mut actor, mut rule) = (self.actor.clone(), self.rule.clone());
        if let Some(id) = given(&self.from_alert) {
            let (a, r) = l.alert_actor_and_rule(id).map_err(|e| e.to_string())?;
            actor = given(&actor).map(str::to_owned).or(Some(a));
            rule = given(&rule).map(str::to_owned).or(Some(r));
        }
        let until = match (given(&self.until), given(&self.for_)) {
            (Some(_), Some(_)) => return Err("give `until` or `for`, not both".into()),
            (Some(t), None) => Some(Timestamp::parse(t).map_err(|e| format!("`until`: {e}"))?),
            (None, Some(d)) => Some(now.saturating_add(
                vakt_event::directory::parse_ttl(d).ok_or_else(|| {
                    format!(
                        "`for` \"{}\" is not a duration; write e.g. 12h, 7d or 30d",
                        d.escape_debug()
                    )
                })?,
            )),
            (None, None) => None,
        };
        Exception::new(
            NewException {
                actor,
                rule,
                destination: self.destination,
                until,
                reason: self.reason,
            },
            by,
            now,
            &rule_ids(),
        )
        .map_err(|e| e.to_string())
    }
}

/// The exceptions a change closing `inc` as a false positive asks for
/// (`change.exception`): its actor, once per rule it raised, for as long
/// as asked, with the change's reason. None when it asks for none.
pub fn incident_exceptions(
    l: &Ledger,
    inc: &Incident,
    change: &IncidentChange,
    by: &str,
) -> Result<Vec<Exception>, String> {
    let Some(ask) = &change.exception else {
        return Ok(Vec::new());
    };
    inc.rules
        .iter()
        // A deadline warning is the company's clock, not the actor's doing.
        .filter(|rule| rule.as_str() != vakt_event::notification::RULE)
        .map(|rule| {
            ExceptionRequest {
                actor: Some(inc.actor.clone()),
                rule: Some(rule.clone()),
                until: ask.until.clone(),
                for_: ask.for_.clone(),
                reason: change.reason.clone().unwrap_or_default(),
                ..Default::default()
            }
            .make(l, by)
        })
        .collect()
}
