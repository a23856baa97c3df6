//! EVENTS.md JSON lines: access and flow events, with field names dotted
//! (`"user.name": "x"`) or nested (`"user": {"name": "x"}`), both at once.
//!
//! The line is walked once with a serde visitor that flattens nested
//! objects into dotted paths and keeps only the fields vakt knows, so no
//! intermediate `serde_json::Value` tree is built.

use super::{Format, ParseError, Parser, ParserContext};
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;
use vakt_event::{AccessEvent, Action, Event, FlowEvent, HttpMethod, Origin, Outcome, Timestamp};

pub const FORMAT: Format = Format {
    name: "jsonl",
    description: "EVENTS.md access and flow events, one JSON object per line",
    sniff: |line| line.trim_start().starts_with('{'),
    build: |_: &ParserContext| Box::new(JsonLines),
};

/// Stateless: every line stands alone.
pub struct JsonLines;

impl Parser for JsonLines {
    fn parse_line(
        &mut self,
        line: &str,
        origin: &Origin,
        out: &mut Vec<Event>,
    ) -> Result<(), ParseError> {
        if line.trim().is_empty() {
            return Ok(());
        }
        out.push(parse_event(line, origin)?);
        Ok(())
    }
}

macro_rules! slots {
    ($($name:ident = $path:literal),* $(,)?) => {
        #[derive(Copy, Clone, Debug)]
        #[allow(non_camel_case_types)]
        enum Slot { $($name),* }
        const SLOT_COUNT: usize = [$($path),*].len();
        const PATHS: [&str; SLOT_COUNT] = [$($path),*];
        fn slot(path: &str) -> Option<Slot> {
            match path { $($path => Some(Slot::$name),)* _ => None }
        }
    };
}

slots! {
    Timestamp = "@timestamp",
    Kind = "event.kind",
    User = "user.name",
    Org = "organization.id",
    SourceIp = "source.ip",
    UserAgent = "user_agent.original",
    Session = "session.id",
    Action = "event.action",
    Outcome = "event.outcome",
    CustomerIds = "customer.ids",
    Segment = "customer.segment",
    Region = "customer.region",
    Records = "records",
    Categories = "data.categories",
    Bytes = "bytes",
    Case = "case.id",
    UrlPath = "url.path",
    DbStatement = "db.statement",
    HttpMethod = "http.request.method",
    HttpStatus = "http.response.status_code",
    Referrer = "http.request.referrer",
    Host = "host.name",
    DestIp = "destination.ip",
    DestDomain = "destination.domain",
    DestPort = "destination.port",
    DestCountry = "destination.geo.country_iso_code",
    SourceBytes = "source.bytes",
    DestBytes = "destination.bytes",
    Duration = "event.duration",
}

/// Whether some known path continues below `prefix`.
fn is_known_prefix(prefix: &str) -> bool {
    PATHS.iter().any(|p| {
        p.len() > prefix.len() && p.starts_with(prefix) && p.as_bytes()[prefix.len()] == b'.'
    })
}

#[derive(Debug)]
enum Val {
    Str(String),
    Num(f64),
    List(Vec<String>),
}

#[derive(Default)]
struct Fields {
    vals: [Option<Val>; SLOT_COUNT],
}

struct ValueSeed<'f, 'p> {
    path: Cow<'p, str>,
    fields: &'f mut Fields,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl ValueSeed<'_, '_> {
    fn set(self, v: Val) {
        if let Some(s) = slot(&self.path) {
            self.fields.vals[s as usize] = Some(v);
        }
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            let path: Cow<str> = if self.path.is_empty() {
                key
            } else {
                Cow::Owned(format!("{}.{}", self.path, key))
            };
            if slot(&path).is_some() || is_known_prefix(&path) {
                map.next_value_seed(ValueSeed {
                    path,
                    fields: &mut *self.fields,
                })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Scalar>()? {
            if let Some(s) = item.0 {
                items.push(s);
            }
        }
        self.set(Val::List(items));
        Ok(())
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.set(Val::Str(v.to_owned()));
        Ok(())
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<(), E> {
        self.set(Val::Str(v));
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.set(Val::Num(v as f64));
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.set(Val::Num(v as f64));
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.set(Val::Num(v));
        Ok(())
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
}

/// An array element: strings and numbers are kept as strings, anything
/// else is skipped.
struct Scalar(Option<String>);

impl<'de> de::Deserialize<'de> for Scalar {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or number")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar(Some(v.to_owned())))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar(Some(v.to_string())))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar(Some(v.to_string())))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar(Some(v.to_string())))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Scalar, E> {
                Ok(Scalar(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Scalar, E> {
                Ok(Scalar(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Scalar, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Scalar(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scalar, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Scalar(None))
            }
        }
        d.deserialize_any(V)
    }
}

struct TopLevel<'f>(&'f mut Fields);

impl<'de> DeserializeSeed<'de> for TopLevel<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        struct V<'f>(&'f mut Fields);
        impl<'de> Visitor<'de> for V<'_> {
            type Value = ();
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object (one event per line)")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
                ValueSeed {
                    path: Cow::Borrowed(""),
                    fields: self.0,
                }
                .visit_map(map)
            }
        }
        d.deserialize_map(V(self.0))
    }
}

impl Fields {
    fn take(&mut self, s: Slot) -> Option<Val> {
        self.vals[s as usize].take()
    }

    fn string(&mut self, s: Slot) -> Result<Option<String>, ParseError> {
        match self.take(s) {
            None => Ok(None),
            Some(Val::Str(v)) => Ok(Some(v)),
            Some(Val::Num(n)) => Ok(Some(n.to_string())),
            Some(Val::List(_)) => Err(ParseError::new(format!(
                "`{}` must be a string, not an array",
                PATHS[s as usize]
            ))),
        }
    }

    fn required(&mut self, s: Slot) -> Result<String, ParseError> {
        match self.string(s)? {
            Some(v) if !v.is_empty() => Ok(v),
            _ => Err(ParseError::new(format!(
                "`{}` is missing; it is required (see EVENTS.md)",
                PATHS[s as usize]
            ))),
        }
    }

    fn number(&mut self, s: Slot) -> Result<Option<u64>, ParseError> {
        let bad = |what: &str| {
            ParseError::new(format!(
                "`{}` must be a non-negative integer, got {what}",
                PATHS[s as usize]
            ))
        };
        match self.take(s) {
            None => Ok(None),
            Some(Val::Num(n)) if n >= 0.0 && n.fract() == 0.0 && n < 1.8e19 => Ok(Some(n as u64)),
            Some(Val::Num(n)) => Err(bad(&n.to_string())),
            Some(Val::Str(v)) => v
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| bad(&format!("\"{}\"", clip(&v)))),
            Some(Val::List(_)) => Err(bad("an array")),
        }
    }

    fn list(&mut self, s: Slot) -> Result<Vec<String>, ParseError> {
        match self.take(s) {
            None => Ok(Vec::new()),
            Some(Val::List(v)) => Ok(v),
            // A lone string is read as a one-element list.
            Some(Val::Str(v)) => Ok(vec![v]),
            Some(Val::Num(n)) => Ok(vec![n.to_string()]),
        }
    }

    fn ip(&mut self, s: Slot) -> Result<Option<IpAddr>, ParseError> {
        match self.string(s)? {
            None => Ok(None),
            Some(v) if v.is_empty() || v == "-" => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| {
                ParseError::new(format!(
                    "`{}` is not an IP address: \"{}\"",
                    PATHS[s as usize],
                    clip(&v)
                ))
            }),
        }
    }
}

fn clip(s: &str) -> &str {
    match s.char_indices().nth(40) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Parses one EVENTS.md JSON line.
pub fn parse_event(line: &str, origin: &Origin) -> Result<Event, ParseError> {
    let mut fields = Fields::default();
    let mut de = serde_json::Deserializer::from_str(line);
    TopLevel(&mut fields)
        .deserialize(&mut de)
        .and_then(|()| de.end())
        .map_err(|e| ParseError::new(format!("not valid JSON: {e}")))?;

    let ts = fields.required(Slot::Timestamp)?;
    let timestamp =
        Timestamp::parse(&ts).map_err(|e| ParseError::new(format!("`@timestamp`: {e}")))?;
    let kind = fields.string(Slot::Kind)?;
    match kind.as_deref() {
        None | Some("access") => {
            let user = fields.required(Slot::User)?;
            let action = Action::parse(&fields.required(Slot::Action)?);
            let outcome = match fields.string(Slot::Outcome)?.as_deref() {
                None | Some("success") | Some("unknown") => Outcome::Success,
                Some("failure") => Outcome::Failure,
                Some(other) => {
                    return Err(ParseError::new(format!(
                        "`event.outcome` must be \"success\" or \"failure\", got \"{}\"",
                        clip(other)
                    )))
                }
            };
            let customer_ids = fields.list(Slot::CustomerIds)?;
            let records = fields
                .number(Slot::Records)?
                .unwrap_or(customer_ids.len() as u64);
            Ok(Event::Access(AccessEvent {
                timestamp,
                user,
                organization: fields.string(Slot::Org)?,
                source_ip: fields.ip(Slot::SourceIp)?,
                user_agent: fields.string(Slot::UserAgent)?,
                session_id: fields.string(Slot::Session)?,
                action,
                outcome,
                customer_ids,
                records,
                categories: fields.list(Slot::Categories)?,
                customer_segment: fields.string(Slot::Segment)?.filter(|s| !s.is_empty()),
                customer_region: fields.string(Slot::Region)?.filter(|s| !s.is_empty()),
                bytes: fields.number(Slot::Bytes)?,
                case_id: fields.string(Slot::Case)?.filter(|c| !c.is_empty()),
                url_path: fields.string(Slot::UrlPath)?,
                db_statement: fields.string(Slot::DbStatement)?,
                http_method: fields
                    .string(Slot::HttpMethod)?
                    .map(|m| HttpMethod::parse(&m)),
                http_status: match fields.number(Slot::HttpStatus)? {
                    None => None,
                    Some(n) => Some(u16::try_from(n).ok().filter(|n| (100..1000).contains(n)).ok_or_else(|| {
                        ParseError::new("`http.response.status_code` must be a status between 100 and 999")
                    })?),
                },
                referrer: fields.string(Slot::Referrer)?.filter(|r| !r.is_empty()),
                origin: origin.clone(),
            }))
        }
        Some("flow") => {
            let host = fields.required(Slot::Host)?;
            let destination_ip = fields.ip(Slot::DestIp)?;
            let destination_domain = fields.string(Slot::DestDomain)?;
            if destination_ip.is_none() && destination_domain.is_none() {
                return Err(ParseError::new(
                    "`destination.ip` is missing; it is required for flow events",
                ));
            }
            let bytes_out = fields.number(Slot::SourceBytes)?.ok_or_else(|| {
                ParseError::new("`source.bytes` is missing; it is required for flow events")
            })?;
            let port = fields.number(Slot::DestPort)?;
            let destination_port = match port {
                None => None,
                Some(p) => Some(u16::try_from(p).map_err(|_| {
                    ParseError::new(format!("`destination.port` {p} is not a port number"))
                })?),
            };
            Ok(Event::Flow(FlowEvent {
                timestamp,
                host,
                user: fields.string(Slot::User)?,
                source_ip: fields.ip(Slot::SourceIp)?,
                destination_ip,
                destination_domain,
                destination_port,
                destination_country: fields.string(Slot::DestCountry)?,
                bytes_out,
                bytes_in: fields.number(Slot::DestBytes)?,
                duration_ns: fields.number(Slot::Duration)?,
                origin: origin.clone(),
            }))
        }
        Some(other) => Err(ParseError::new(format!(
            "`event.kind` \"{}\" is not one vakt reads; use \"access\" or \"flow\"",
            clip(other)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin() -> Origin {
        Origin::new("t".into(), 1)
    }

    #[test]
    fn dotted_and_nested_names_give_the_same_event() {
        let dotted = r#"{"@timestamp":"2026-11-02T08:00:00Z","user.name":"r17.anna","source.ip":"198.51.100.3","event.action":"lookup","customer.ids":["C-1","C-2"],"data.categories":["name","phone"],"case.id":"K-9","customer.segment":"consumer","customer.region":"SE-AC"}"#;
        let nested = r#"{"@timestamp":"2026-11-02T08:00:00Z","user":{"name":"r17.anna"},"source":{"ip":"198.51.100.3"},"event":{"action":"lookup"},"customer":{"ids":["C-1","C-2"],"segment":"consumer","region":"SE-AC"},"data":{"categories":["name","phone"]},"case":{"id":"K-9"},"extra":{"deep":[1,{"x":2}]}}"#;
        let a = parse_event(dotted, &origin()).unwrap();
        let b = parse_event(nested, &origin()).unwrap();
        assert_eq!(a, b);
        let Event::Access(a) = a else {
            panic!("expected access")
        };
        assert_eq!(a.records, 2);
        assert_eq!(a.case_id.as_deref(), Some("K-9"));
        assert_eq!(a.source_ip, Some("198.51.100.3".parse().unwrap()));
        assert_eq!(
            (a.customer_segment.as_deref(), a.customer_region.as_deref()),
            (Some("consumer"), Some("SE-AC"))
        );
        // Written back, it reads the same.
        let again = parse_event(&Event::Access(a.clone()).to_json_line(), &origin()).unwrap();
        assert_eq!(again, Event::Access(a));
    }

    #[test]
    fn flow_events_parse_with_geo() {
        let line = r#"{"@timestamp":"2026-11-02T02:00:00Z","event":{"kind":"flow"},"host.name":"lt-0042","destination":{"ip":"203.0.113.9","port":443,"geo":{"country_iso_code":"RU"}},"source.bytes":123456789}"#;
        let Event::Flow(f) = parse_event(line, &origin()).unwrap() else {
            panic!("expected flow")
        };
        assert_eq!(f.host, "lt-0042");
        assert_eq!(f.destination_country.as_deref(), Some("RU"));
        assert_eq!(f.bytes_out, 123_456_789);
        assert_eq!(f.destination_port, Some(443));
    }

    #[test]
    fn errors_name_the_field_and_the_fix() {
        let cases = [
            ("[1,2]", "JSON object"),
            ("{\"user.name\":\"a\"", "not valid JSON"),
            (
                r#"{"user.name":"a","event.action":"lookup"}"#,
                "`@timestamp` is missing",
            ),
            (
                r#"{"@timestamp":"soon","user.name":"a","event.action":"lookup"}"#,
                "RFC 3339",
            ),
            (
                r#"{"@timestamp":"2026-11-02T08:00:00Z","event.action":"lookup"}"#,
                "`user.name` is missing",
            ),
            (
                r#"{"@timestamp":"2026-11-02T08:00:00Z","user.name":"a","event.action":"lookup","source.ip":"1.2.3"}"#,
                "not an IP",
            ),
            (
                r#"{"@timestamp":"2026-11-02T08:00:00Z","user.name":"a","event.action":"lookup","records":-3}"#,
                "non-negative",
            ),
            (
                r#"{"@timestamp":"2026-11-02T08:00:00Z","event.kind":"flow","host.name":"h","source.bytes":1}"#,
                "destination.ip",
            ),
            (
                r#"{"@timestamp":"2026-11-02T08:00:00Z","event.kind":"alert"}"#,
                "event.kind",
            ),
        ];
        for (line, want) in cases {
            let err = parse_event(line, &origin()).unwrap_err();
            assert!(err.0.contains(want), "{line} -> {err}");
        }
    }
}
