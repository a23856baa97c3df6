//! Access and flow events (EVENTS.md sections 1 and 2).

use crate::time::Timestamp;
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use std::net::IpAddr;
use std::sync::Arc;

/// Where an event came from: the input's name and the line in it, so an
/// alert's evidence can point back at the raw log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Origin {
    pub source: Arc<str>,
    pub line: u64,
}

impl Origin {
    pub fn new(source: Arc<str>, line: u64) -> Self {
        Origin { source, line }
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.source, self.line)
    }
}

/// One observed event, as every parser produces it.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    Access(AccessEvent),
    Flow(FlowEvent),
}

impl Event {
    pub fn timestamp(&self) -> Timestamp {
        match self {
            Event::Access(a) => a.timestamp,
            Event::Flow(f) => f.timestamp,
        }
    }

    pub fn origin(&self) -> &Origin {
        match self {
            Event::Access(a) => &a.origin,
            Event::Flow(f) => &f.origin,
        }
    }

    pub fn origin_mut(&mut self) -> &mut Origin {
        match self {
            Event::Access(a) => &mut a.origin,
            Event::Flow(f) => &mut f.origin,
        }
    }

    pub fn kind(&self) -> EventKind {
        match self {
            Event::Access(_) => EventKind::Access,
            Event::Flow(_) => EventKind::Flow,
        }
    }

    /// One JSON line in the EVENTS.md format (dotted field names).
    pub fn to_json_line(&self) -> String {
        match self {
            Event::Access(a) => serde_json::to_string(a),
            Event::Flow(f) => serde_json::to_string(f),
        }
        .expect("events serialize to JSON")
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    Access,
    Flow,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Access => "access",
            EventKind::Flow => "flow",
        }
    }
}

/// What an access did. Unknown words are kept as they came.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum Action {
    #[default]
    Lookup,
    Search,
    Export,
    Update,
    Delete,
    Login,
    Mfa,
    /// A web request that matched no route (`http`): a page, an asset, an
    /// API call that names no customer. Seen by behaviour detection, not
    /// counted as a read of customer data.
    Request,
    Other(String),
}

impl Action {
    pub fn parse(s: &str) -> Action {
        match s {
            "lookup" => Action::Lookup,
            "search" => Action::Search,
            "export" => Action::Export,
            "update" => Action::Update,
            "delete" => Action::Delete,
            "login" => Action::Login,
            "mfa" => Action::Mfa,
            "http" => Action::Request,
            other => Action::Other(other.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Action::Lookup => "lookup",
            Action::Search => "search",
            Action::Export => "export",
            Action::Update => "update",
            Action::Delete => "delete",
            Action::Login => "login",
            Action::Mfa => "mfa",
            Action::Request => "http",
            Action::Other(s) => s,
        }
    }

    /// Whether the action returns customer data to the actor.
    pub fn reads_data(&self) -> bool {
        matches!(
            self,
            Action::Lookup | Action::Search | Action::Export | Action::Other(_)
        )
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum Outcome {
    #[default]
    Success,
    Failure,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
        }
    }
}

/// An access to customer records (EVENTS.md section 1).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct AccessEvent {
    pub timestamp: Timestamp,
    pub user: String,
    pub organization: Option<String>,
    pub source_ip: Option<IpAddr>,
    pub user_agent: Option<String>,
    pub session_id: Option<String>,
    pub action: Action,
    pub outcome: Outcome,
    pub customer_ids: Vec<String>,
    /// Records returned; defaults to the number of customer ids.
    pub records: u64,
    pub categories: Vec<String>,
    /// The segment of the customers read (`consumer`, `business`, ...),
    /// as the system of record knows it (`customer.segment`).
    pub customer_segment: Option<String>,
    /// Their region (`customer.region`), e.g. a county code.
    pub customer_region: Option<String>,
    pub bytes: Option<u64>,
    pub case_id: Option<String>,
    pub url_path: Option<String>,
    pub db_statement: Option<String>,
    /// Web requests: the method (ECS `http.request.method`).
    pub http_method: Option<HttpMethod>,
    /// Web requests: the answer's status (ECS `http.response.status_code`).
    pub http_status: Option<u16>,
    /// Web requests: the page the request came from (ECS `http.request.referrer`).
    pub referrer: Option<String>,
    pub origin: Origin,
}

/// An HTTP request method, kept in one byte; methods outside the common
/// set are `Other` (their name is not kept).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum HttpMethod {
    Get,
    Head,
    Post,
    Put,
    Patch,
    Delete,
    Options,
    Other,
}

impl HttpMethod {
    /// Methods are case-sensitive (RFC 9110 9.1): `get` is not `GET`.
    pub fn parse(s: &str) -> HttpMethod {
        match s {
            "GET" => HttpMethod::Get,
            "HEAD" => HttpMethod::Head,
            "POST" => HttpMethod::Post,
            "PUT" => HttpMethod::Put,
            "PATCH" => HttpMethod::Patch,
            "DELETE" => HttpMethod::Delete,
            "OPTIONS" => HttpMethod::Options,
            _ => HttpMethod::Other,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Get => "GET",
            HttpMethod::Head => "HEAD",
            HttpMethod::Post => "POST",
            HttpMethod::Put => "PUT",
            HttpMethod::Patch => "PATCH",
            HttpMethod::Delete => "DELETE",
            HttpMethod::Options => "OPTIONS",
            HttpMethod::Other => "OTHER",
        }
    }
}

/// Outbound network traffic from a host (EVENTS.md section 2).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct FlowEvent {
    pub timestamp: Timestamp,
    pub host: String,
    pub user: Option<String>,
    pub source_ip: Option<IpAddr>,
    pub destination_ip: Option<IpAddr>,
    /// A destination known by name only (a CSP report's blocked origin).
    pub destination_domain: Option<String>,
    pub destination_port: Option<u16>,
    pub destination_country: Option<String>,
    /// Bytes sent out by the host.
    pub bytes_out: u64,
    pub bytes_in: Option<u64>,
    pub duration_ns: Option<u64>,
    pub origin: Origin,
}

impl FlowEvent {
    /// The destination as one string: the address, else the domain.
    pub fn destination(&self) -> String {
        match (&self.destination_ip, &self.destination_domain) {
            (Some(ip), _) => ip.to_string(),
            (None, Some(d)) => d.clone(),
            (None, None) => String::from("?"),
        }
    }
}

impl Serialize for AccessEvent {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("@timestamp", &self.timestamp)?;
        m.serialize_entry("event.kind", "access")?;
        m.serialize_entry("user.name", &self.user)?;
        if let Some(v) = &self.organization {
            m.serialize_entry("organization.id", v)?;
        }
        if let Some(v) = &self.source_ip {
            m.serialize_entry("source.ip", v)?;
        }
        if let Some(v) = &self.user_agent {
            m.serialize_entry("user_agent.original", v)?;
        }
        if let Some(v) = &self.session_id {
            m.serialize_entry("session.id", v)?;
        }
        m.serialize_entry("event.action", self.action.as_str())?;
        if self.outcome != Outcome::Success {
            m.serialize_entry("event.outcome", self.outcome.as_str())?;
        }
        if !self.customer_ids.is_empty() {
            m.serialize_entry("customer.ids", &self.customer_ids)?;
        }
        if self.records != self.customer_ids.len() as u64 {
            m.serialize_entry("records", &self.records)?;
        }
        if !self.categories.is_empty() {
            m.serialize_entry("data.categories", &self.categories)?;
        }
        if let Some(v) = &self.customer_segment {
            m.serialize_entry("customer.segment", v)?;
        }
        if let Some(v) = &self.customer_region {
            m.serialize_entry("customer.region", v)?;
        }
        if let Some(v) = &self.bytes {
            m.serialize_entry("bytes", v)?;
        }
        if let Some(v) = &self.case_id {
            m.serialize_entry("case.id", v)?;
        }
        if let Some(v) = &self.url_path {
            m.serialize_entry("url.path", v)?;
        }
        if let Some(v) = &self.db_statement {
            m.serialize_entry("db.statement", v)?;
        }
        if let Some(v) = self.http_method {
            m.serialize_entry("http.request.method", v.as_str())?;
        }
        if let Some(v) = &self.http_status {
            m.serialize_entry("http.response.status_code", v)?;
        }
        if let Some(v) = &self.referrer {
            m.serialize_entry("http.request.referrer", v)?;
        }
        m.end()
    }
}

impl Serialize for FlowEvent {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("@timestamp", &self.timestamp)?;
        m.serialize_entry("event.kind", "flow")?;
        m.serialize_entry("host.name", &self.host)?;
        if let Some(v) = &self.user {
            m.serialize_entry("user.name", v)?;
        }
        if let Some(v) = &self.source_ip {
            m.serialize_entry("source.ip", v)?;
        }
        if let Some(v) = &self.destination_ip {
            m.serialize_entry("destination.ip", v)?;
        }
        if let Some(v) = &self.destination_domain {
            m.serialize_entry("destination.domain", v)?;
        }
        if let Some(v) = &self.destination_port {
            m.serialize_entry("destination.port", v)?;
        }
        if let Some(v) = &self.destination_country {
            m.serialize_entry("destination.geo.country_iso_code", v)?;
        }
        m.serialize_entry("source.bytes", &self.bytes_out)?;
        if let Some(v) = &self.bytes_in {
            m.serialize_entry("destination.bytes", v)?;
        }
        if let Some(v) = &self.duration_ns {
            m.serialize_entry("event.duration", v)?;
        }
        m.end()
    }
}

/// Data categories vakt knows, with a sensitivity weight (1 = public-ish
/// contact data, 10 = enables identity theft or payment fraud). Unknown
/// categories weigh 2.
pub const CATEGORY_WEIGHTS: &[(&str, u32)] = &[
    ("name", 1),
    ("email", 2),
    ("phone", 2),
    ("address", 2),
    ("ticket", 2),
    ("imei", 4),
    ("driver_license", 8),
    ("password", 9),
    ("national_id", 10),
    ("payment_card", 10),
];

pub fn category_weight(name: &str) -> u32 {
    CATEGORY_WEIGHTS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, w)| *w)
        .unwrap_or(2)
}

/// A set of data categories as a bitmask: the known categories have their
/// own bit, any other name shares one of the upper bits by hash. Compact
/// enough to keep per account.
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct CategorySet(pub u32);

impl CategorySet {
    pub fn bit(name: &str) -> u32 {
        match CATEGORY_WEIGHTS.iter().position(|(n, _)| *n == name) {
            Some(i) => 1 << i,
            None => {
                let h = name
                    .bytes()
                    .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(b as u32));
                1 << (CATEGORY_WEIGHTS.len() as u32 + h % (32 - CATEGORY_WEIGHTS.len() as u32))
            }
        }
    }

    pub fn from_names<'a>(names: impl IntoIterator<Item = &'a String>) -> CategorySet {
        CategorySet(names.into_iter().fold(0, |acc, n| acc | Self::bit(n)))
    }

    pub fn contains_all(self, other: CategorySet) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn union(self, other: CategorySet) -> CategorySet {
        CategorySet(self.0 | other.0)
    }

    pub fn minus(self, other: CategorySet) -> CategorySet {
        CategorySet(self.0 & !other.0)
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Names of the known categories in the set (unknown ones as `other`).
    pub fn names(self) -> Vec<&'static str> {
        let mut out: Vec<&'static str> = CATEGORY_WEIGHTS
            .iter()
            .enumerate()
            .filter(|(i, _)| self.0 & (1 << i) != 0)
            .map(|(_, (n, _))| *n)
            .collect();
        if self.0 >> CATEGORY_WEIGHTS.len() != 0 {
            out.push("other");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_event_serializes_with_dotted_names_and_omits_defaults() {
        let ev = AccessEvent {
            timestamp: Timestamp::parse("2026-11-02T08:00:00Z").unwrap(),
            user: "r17.anna".into(),
            action: Action::Lookup,
            customer_ids: vec!["C-1".into()],
            records: 1,
            ..Default::default()
        };
        let line = Event::Access(ev).to_json_line();
        assert_eq!(
            line,
            r#"{"@timestamp":"2026-11-02T08:00:00.000Z","event.kind":"access","user.name":"r17.anna","event.action":"lookup","customer.ids":["C-1"]}"#
        );
    }

    #[test]
    fn category_sets_keep_known_names_apart() {
        let a = CategorySet::from_names(&["name".to_string(), "payment_card".to_string()]);
        let b = CategorySet::from_names(&["name".to_string()]);
        assert!(a.contains_all(b));
        assert!(!b.contains_all(a));
        assert_eq!(a.minus(b).names(), vec!["payment_card"]);
        let odd = CategorySet::from_names(&["loyalty_points".to_string()]);
        assert_eq!(odd.names(), vec!["other"]);
    }
}
