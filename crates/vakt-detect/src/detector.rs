//! The one trait every detector implements, and what it reports.

use crate::params::Param;
use serde_json::{Map, Value};
use vakt_enrich::snapshot::SnapshotError;
use vakt_enrich::{Enriched, Enricher};
use vakt_event::{Actor, Severity, Timestamp};

/// A streaming, stateful detector.
///
/// The engine calls [`Detector::observe`] for every event in event-time
/// order (give or take the bounded lateness the ingest tolerates). A
/// detector reports a [`Finding`] whenever its condition holds; the engine
/// merges findings of the same rule and key into one incident, so a bot
/// doing 30,000 lookups is one alert that may escalate, not 30,000 alerts.
/// Detectors should still avoid building a finding on every event once an
/// incident is open (report when the severity or the figures change
/// notably), because findings carry formatted messages.
///
/// State must stay bounded per key and idle keys must be forgotten in
/// [`Detector::evict`], in event time, so memory does not grow with events.
pub trait Detector: Send {
    /// What the detector is, declared once in its file.
    fn info(&self) -> &'static DetectorInfo;

    /// The stable rule id (EVENTS.md section 5), e.g. `rate`.
    fn id(&self) -> &'static str {
        self.info().id
    }

    /// What this detector needs that the run lacks, said once at start
    /// (e.g. "no networks in the directory"). The detector still runs and
    /// simply finds nothing where it cannot judge.
    fn missing(&self, _enricher: &Enricher) -> Option<String> {
        None
    }

    fn observe(&mut self, event: &Enriched, out: &mut Vec<Finding>);

    /// Forgets keys idle since before `horizon` (event time).
    fn evict(&mut self, horizon: Timestamp);

    /// Keys currently held, for memory accounting.
    fn tracked_keys(&self) -> usize;

    /// What the detector learned from events, for a snapshot of its
    /// stream ([`crate::Engine::snapshot`]): everything
    /// [`Detector::observe`] and [`Detector::evict`] change, none of what
    /// its parameters set. Scratch buffers are left out.
    fn save(&self) -> Result<Vec<u8>, SnapshotError>;

    /// Takes back what [`Detector::save`] saved, in place of this
    /// detector's state.
    fn restore(&mut self, state: &[u8]) -> Result<(), SnapshotError>;
}

/// What a detector is for and how to read its alerts: `vakt detectors`
/// lists these, and reports take their remediation from here.
#[derive(Debug)]
pub struct DetectorInfo {
    /// The stable rule id (EVENTS.md section 5), e.g. `rate`.
    pub id: &'static str,
    /// A short title, e.g. "reading customers far faster than usual".
    pub title: &'static str,
    /// The incidents it is for (S1 to S6, docs/PRODUCT.md).
    pub incidents: &'static [&'static str],
    /// What to do when it fires.
    pub remediation: &'static str,
    /// What it cannot see (from its module doc).
    pub blind_spots: &'static str,
    /// Its thresholds, with defaults; overridable in the directory.
    pub params: &'static [Param],
    /// Whether an organisation may have its own parameter values.
    pub per_organization: bool,
}

/// One detector's verdict on one actor at one moment.
#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    pub rule: &'static str,
    /// What makes two findings the same incident, within the rule:
    /// usually the actor's name.
    pub key: String,
    pub actor: Actor,
    pub organization: Option<String>,
    pub severity: Severity,
    /// Event time of the event that produced this finding.
    pub at: Timestamp,
    /// Event time of the first event that belongs to the incident.
    pub first_seen: Timestamp,
    pub message: String,
    /// Observed figures against baseline or threshold, sample events.
    pub evidence: Map<String, Value>,
    /// Distinct customers touched by the actor in the incident's window.
    pub customers: u64,
}

/// Builds the `evidence` object: `evidence![ "observed" => 12, "baseline" => 3.5 ]`.
#[macro_export]
macro_rules! evidence {
    ($($k:expr => $v:expr),* $(,)?) => {{
        let mut m = serde_json::Map::new();
        $( m.insert(String::from($k), serde_json::json!($v)); )*
        m
    }};
}

/// The actor of an enriched event, as alerts name it.
pub fn actor_of(ev: &Enriched) -> Actor {
    match ev.event {
        vakt_event::Event::Access(a) => Actor {
            user: Some(a.user.clone()),
            host: None,
            ip: a.source_ip,
        },
        vakt_event::Event::Flow(f) => Actor {
            user: f.user.clone(),
            host: Some(f.host.clone()),
            ip: f.source_ip,
        },
    }
}

/// The network an address is in, as alerts name it: its /24 (IPv4) or
/// /48 (IPv6). Displayed, so it can be written without a string of its own.
pub struct Network(pub std::net::IpAddr);

impl std::fmt::Display for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.to_canonical() {
            std::net::IpAddr::V4(v4) => {
                let o = v4.octets();
                write!(f, "{}.{}.{}.0/24", o[0], o[1], o[2])
            }
            std::net::IpAddr::V6(v6) => {
                let s = v6.segments();
                write!(f, "{:x}:{:x}:{:x}::/48", s[0], s[1], s[2])
            }
        }
    }
}

/// `file:line` of the event, for evidence.
pub fn reference(ev: &Enriched) -> String {
    ev.event.origin().to_string()
}

/// Who a web request is from, as the web detectors judge it: the account
/// when the request names one, else the session the log or proxy names,
/// else the address plus the user agent.
pub struct WebClient<'a> {
    user: &'a str,
    session: Option<&'a str>,
    agent: Option<&'a str>,
}

impl<'a> WebClient<'a> {
    pub fn of(ev: &Enriched, a: &'a vakt_event::AccessEvent) -> WebClient<'a> {
        let anonymous = ev.address.is_some();
        WebClient {
            user: &a.user,
            session: a.session_id.as_deref().filter(|_| anonymous),
            agent: anonymous.then(|| a.user_agent.as_deref().unwrap_or("(no user agent)")),
        }
    }

    /// A hash of [`WebClient::name`], without building it: state is keyed by this.
    pub fn key(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = rustc_hash::FxHasher::default();
        (self.user, self.session, self.agent).hash(&mut h);
        h.finish()
    }

    /// Whether `name` is this client's [`WebClient::name`], without building it.
    pub fn is_named(&self, name: &str) -> bool {
        let Some(rest) = name.strip_prefix(self.user) else {
            return false;
        };
        match (self.session, self.agent) {
            (Some(s), _) => rest.strip_prefix(" session ") == Some(s),
            (None, Some(agent)) => rest.strip_prefix(' ') == Some(agent),
            (None, None) => rest.is_empty(),
        }
    }

    /// As alerts name it: `p3.shop`, `203.0.113.7 session k7f2`,
    /// `203.0.113.7 Mozilla/5.0 ...`.
    pub fn name(&self) -> String {
        match (self.session, self.agent) {
            (Some(s), _) => format!("{} session {s}", self.user),
            (None, Some(agent)) => format!("{} {agent}", self.user),
            (None, None) => self.user.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_web_client_is_named_exactly_by_its_name() {
        let clients = [
            WebClient {
                user: "p3.shop",
                session: None,
                agent: None,
            },
            WebClient {
                user: "203.0.113.7",
                session: Some("k7f2"),
                agent: Some("curl/8"),
            },
            WebClient {
                user: "203.0.113.7",
                session: None,
                agent: Some("curl/8"),
            },
            WebClient {
                user: "203.0.113.7",
                session: None,
                agent: Some(""),
            },
            WebClient {
                user: "203.0.113.70",
                session: None,
                agent: Some("curl/8"),
            },
        ];
        let names = [
            "p3.shop",
            "p3.sho",
            "p3.shop ",
            "203.0.113.7 session k7f2",
            "203.0.113.7 session k7f",
            "203.0.113.7 curl/8",
            "203.0.113.7 ",
            "203.0.113.7",
            "203.0.113.70 curl/8",
            "",
        ];
        for c in &clients {
            for n in names {
                assert_eq!(c.is_named(n), c.name() == n, "{n:?} against {}", c.name());
            }
            assert!(c.is_named(&c.name()));
        }
    }

    #[test]
    fn a_network_is_the_slash_24_or_slash_48() {
        let v4: std::net::IpAddr = "203.0.113.77".parse().unwrap();
        let mapped: std::net::IpAddr = "::ffff:203.0.113.77".parse().unwrap();
        let v6: std::net::IpAddr = "2001:db8:aa:bb::1".parse().unwrap();
        assert_eq!(Network(v4).to_string(), "203.0.113.0/24");
        assert_eq!(Network(mapped).to_string(), "203.0.113.0/24");
        assert_eq!(Network(v6).to_string(), "2001:db8:aa::/48");
    }
}
