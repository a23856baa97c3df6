//! Zeek `conn.log`, in Zeek's TSV form (with its `#separator`/`#fields`
//! header) and its JSON form, mapped to flow events.
//!
//! Zeek sees addresses, not host names: `host.name` is the originator's
//! address (`id.orig_h`), so `[[egress_allow]] host = "10.60.2.10"` names a
//! host by address. Bytes out are the originator's payload bytes
//! (`orig_bytes`); an unset value counts as 0.
//!
//! The TSV form is split by hand: it is a plain separator-delimited format
//! whose header says which column is which, and splitting one line is
//! cheaper than any general CSV reader.

use super::{Format, ParseError, Parser, ParserContext};
use serde::Deserialize;
use std::net::IpAddr;
use vakt_event::{Event, FlowEvent, Origin, Timestamp};

pub const FORMAT: Format = Format {
    name: "zeek",
    description: "Zeek conn.log, TSV with its #fields header or JSON",
    sniff: |line| {
        let l = line.trim_start();
        l.starts_with("#separator")
            || l.starts_with("#fields")
            || (l.starts_with('{') && l.contains("\"id.orig_h\""))
    },
    build: |_: &ParserContext| Box::new(Zeek::default()),
};

/// Column positions of the fields vakt reads.
#[derive(Default, Clone, Copy)]
struct Columns {
    ts: usize,
    orig_h: usize,
    resp_h: usize,
    resp_p: Option<usize>,
    orig_bytes: Option<usize>,
    resp_bytes: Option<usize>,
    duration: Option<usize>,
}

pub struct Zeek {
    separator: String,
    unset: String,
    empty: String,
    columns: Option<Columns>,
}

impl Default for Zeek {
    fn default() -> Self {
        Zeek {
            separator: "\t".into(),
            unset: "-".into(),
            empty: "(empty)".into(),
            columns: None,
        }
    }
}

/// Zeek writes the separator as `\x09`.
fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("\\x") {
        out.push_str(&rest[..i]);
        let hex = rest
            .get(i + 2..i + 4)
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match hex {
            Some(b) => {
                out.push(b as char);
                rest = &rest[i + 4..];
            }
            None => {
                out.push_str("\\x");
                rest = &rest[i + 2..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[derive(Deserialize)]
struct JsonConn {
    ts: serde_json::Value,
    #[serde(rename = "id.orig_h")]
    orig_h: String,
    #[serde(rename = "id.resp_h")]
    resp_h: String,
    #[serde(rename = "id.resp_p", default)]
    resp_p: Option<u16>,
    #[serde(default)]
    orig_bytes: Option<u64>,
    #[serde(default)]
    resp_bytes: Option<u64>,
    #[serde(default)]
    duration: Option<f64>,
}

fn ip(s: &str, field: &str) -> Result<IpAddr, ParseError> {
    s.parse().map_err(|_| {
        ParseError::new(format!(
            "`{field}` is not an IP address: \"{}\"",
            s.chars().take(40).collect::<String>()
        ))
    })
}

fn epoch(s: &str) -> Result<Timestamp, ParseError> {
    s.parse::<f64>()
        .ok()
        .filter(|t| t.is_finite() && t.abs() < 1e12)
        .map(Timestamp::from_secs_f64)
        .ok_or_else(|| {
            ParseError::new(format!(
                "`ts` is not epoch seconds: \"{}\"",
                s.chars().take(40).collect::<String>()
            ))
        })
}

/// The fields of one connection vakt keeps.
struct Conn {
    ts: Timestamp,
    orig: IpAddr,
    resp: IpAddr,
    port: Option<u16>,
    bytes_out: Option<u64>,
    bytes_in: Option<u64>,
    duration_s: Option<f64>,
}

impl Conn {
    fn into_event(self, origin: &Origin) -> Event {
        Event::Flow(FlowEvent {
            timestamp: self.ts,
            host: self.orig.to_string(),
            source_ip: Some(self.orig),
            destination_ip: Some(self.resp),
            destination_port: self.port,
            bytes_out: self.bytes_out.unwrap_or(0),
            bytes_in: self.bytes_in,
            duration_ns: self
                .duration_s
                .filter(|d| d.is_finite() && *d >= 0.0)
                .map(|d| (d * 1e9) as u64),
            origin: origin.clone(),
            ..Default::default()
        })
    }
}

impl Zeek {
    fn header(&mut self, line: &str) -> Result<(), ParseError> {
        let (key, value) = match line.split_once([' ', '\t']) {
            Some((k, v)) => (k, v),
            None => (line, ""),
        };
        match key {
            "#separator" => self.separator = unescape(value.trim()),
            "#unset_field" => self.unset = value.to_owned(),
            "#empty_field" => self.empty = value.to_owned(),
            "#fields" => {
                let names: Vec<&str> = value.split(self.separator.as_str()).collect();
                let find = |n: &str| names.iter().position(|x| *x == n);
                let need = |n: &str| {
                    find(n).ok_or_else(|| ParseError::new(format!("the #fields header has no `{n}`; vakt needs ts, id.orig_h and id.resp_h")))
                };
                self.columns = Some(Columns {
                    ts: need("ts")?,
                    orig_h: need("id.orig_h")?,
                    resp_h: need("id.resp_h")?,
                    resp_p: find("id.resp_p"),
                    orig_bytes: find("orig_bytes"),
                    resp_bytes: find("resp_bytes"),
                    duration: find("duration"),
                });
            }
            _ => {}
        }
        Ok(())
    }

    fn tsv(&self, line: &str, origin: &Origin) -> Result<Event, ParseError> {
        let cols = self.columns.ok_or_else(|| {
            ParseError::new(
                "a data line before any #fields header; the Zeek log's header is missing",
            )
        })?;
        let fields: Vec<&str> = line.split(self.separator.as_str()).collect();
        let get = |i: usize| -> Option<&str> {
            fields
                .get(i)
                .copied()
                .filter(|v| *v != self.unset && *v != self.empty)
        };
        let num =
            |i: Option<usize>| -> Option<u64> { i.and_then(get).and_then(|v| v.parse().ok()) };
        let ts = epoch(get(cols.ts).ok_or_else(|| ParseError::new("`ts` is missing"))?)?;
        let orig = ip(
            get(cols.orig_h).ok_or_else(|| ParseError::new("`id.orig_h` is missing"))?,
            "id.orig_h",
        )?;
        let resp = ip(
            get(cols.resp_h).ok_or_else(|| ParseError::new("`id.resp_h` is missing"))?,
            "id.resp_h",
        )?;
        let port = num(cols.resp_p).and_then(|p| u16::try_from(p).ok());
        let dur = cols.duration.and_then(get).and_then(|v| v.parse().ok());
        Ok(Conn {
            ts,
            orig,
            resp,
            port,
            bytes_out: num(cols.orig_bytes),
            bytes_in: num(cols.resp_bytes),
            duration_s: dur,
        }
        .into_event(origin))
    }
}

impl Parser for Zeek {
    fn parse_line(
        &mut self,
        line: &str,
        origin: &Origin,
        out: &mut Vec<Event>,
    ) -> Result<(), ParseError> {
        if line.trim().is_empty() {
            return Ok(());
        }
        if line.starts_with('#') {
            return self.header(line);
        }
        if line.trim_start().starts_with('{') {
            let c: JsonConn = serde_json::from_str(line)
                .map_err(|e| ParseError::new(format!("not a Zeek JSON conn record: {e}")))?;
            let ts = match &c.ts {
                serde_json::Value::Number(n) => epoch(&n.to_string())?,
                serde_json::Value::String(s) => Timestamp::parse(s).or_else(|_| epoch(s))?,
                _ => {
                    return Err(ParseError::new(
                        "`ts` must be epoch seconds or an ISO 8601 time",
                    ))
                }
            };
            let conn = Conn {
                ts,
                orig: ip(&c.orig_h, "id.orig_h")?,
                resp: ip(&c.resp_h, "id.resp_h")?,
                port: c.resp_p,
                bytes_out: c.orig_bytes,
                bytes_in: c.resp_bytes,
                duration_s: c.duration,
            };
            out.push(conn.into_event(origin));
            return Ok(());
        }
        out.push(self.tsv(line, origin)?);
        Ok(())
    }
}

impl From<vakt_event::time::TimeError> for ParseError {
    fn from(e: vakt_event::time::TimeError) -> Self {
        ParseError::new(e.to_string())
    }
}
