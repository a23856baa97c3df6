//! PostgreSQL server logs with pgaudit entries (`AUDIT: SESSION,...` and
//! `AUDIT: OBJECT,...`), in the stderr format and in csvlog.
//!
//! From each audit entry vakt takes the user, the client address, the
//! statement class and command, the object and the statement. Customer ids
//! come from literal key predicates (`customer_id = 'C-1'`, `IN (...)`,
//! parameters `$1` when pgaudit logs them) on the columns the directory
//! lists in `[postgres] key_columns`; data categories from the
//! `[[postgres.table]]` entries.
//!
//! What a log cannot tell: how many rows a statement returned, and which
//! customers a search without a key predicate returned. Such a `SELECT`
//! becomes a `search` with no customers, and `COPY ... TO` an `export`;
//! `bulk_read` reports both as reads of unknown size. (pgaudit's
//! `log_rows` column is not read: it cannot be told apart from a
//! parameter.)
//!
//! stderr lines: the `log_line_prefix` must hold the user (`%u`), and
//! should hold the client (`%h` or `%r`). Understood prefixes: a leading
//! `%m` or `%t` time, then either `user=%u,db=%d,...,client=%h` style
//! `key=value` pairs, or `%u@%d`, with an optional `[%p]`. Continuation
//! lines (statements over several lines) begin with a tab.
//!
//! Speed: statement shapes are read by sqlparser once ([`shape`]), csvlog
//! records in one pass ([`csvlog`]), and the common stderr prefixes and
//! times by position, with the regexes and chrono kept for the rest.

mod csvlog;
mod shape;

use super::{Format, ParseError, Parser, ParserContext};
use csvlog::{CsvRecord, Fed};
use regex::Regex;
use shape::KeyReader;
use std::net::IpAddr;
use std::sync::OnceLock;
use vakt_event::{AccessEvent, Action, Event, Origin, Timestamp};

pub const FORMAT: Format = Format {
    name: "pgaudit",
    description: "PostgreSQL logs with pgaudit entries (stderr or csvlog)",
    sniff: |line| {
        line.contains("AUDIT: SESSION,")
            || line.contains("AUDIT: OBJECT,")
            || split_stderr(line).is_some()
    },
    build: |ctx: &ParserContext| Box::new(PgAudit::new(ctx)),
};

/// A stderr log line: prefix, severity, message.
fn pg_line() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"^(?P<prefix>\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(?:\.\d+)? ?[A-Za-z0-9+:\-]*.*?)\b(?P<level>LOG|NOTICE|INFO|WARNING|ERROR|FATAL|PANIC|DETAIL|HINT|STATEMENT|CONTEXT|DEBUG\d?):  ?(?P<msg>.*)$")
            .expect("constant regex")
    })
}

/// A stderr line cut into prefix, severity and message: by hand for the
/// usual shape, by [`pg_line`] when the hand reading is not sure.
fn split_stderr(line: &str) -> Option<(&str, &str)> {
    match split_stderr_by_hand(line) {
        Some(found) => found,
        None => pg_line().captures(line).map(|c| {
            (
                c.name("prefix").map_or("", |m| m.as_str()),
                c.name("msg").map_or("", |m| m.as_str()),
            )
        }),
    }
}

/// What [`pg_line`] matches, read by position: `Some(None)` when it
/// surely does not match, `None` when only the regex can tell (non-ASCII
/// characters where its Unicode `\d` or `\b` could read them).
///
/// The regex's greedy `[A-Za-z0-9+:\-]*` after the time (the zone) is
/// tried longest first: the severity is the first one after that run, or
/// else one ending the run itself (`... 08:15:01 LOG:  ...`).
#[allow(clippy::option_option)]
fn split_stderr_by_hand(line: &str) -> Option<Option<(&str, &str)>> {
    const LEVELS: [&str; 11] = [
        "LOG",
        "NOTICE",
        "INFO",
        "WARNING",
        "ERROR",
        "FATAL",
        "PANIC",
        "DETAIL",
        "HINT",
        "STATEMENT",
        "CONTEXT",
    ];
    let b = line.as_bytes();
    let time = b.iter().take(19).enumerate().all(|(i, &c)| match i {
        4 | 7 => c == b'-',
        10 => c == b' ',
        13 | 16 => c == b':',
        _ => c.is_ascii_digit(),
    });
    if b.len() < 19 || !time {
        return b.iter().take(19).all(u8::is_ascii).then_some(None);
    }
    let mut p0 = 19;
    if b.get(p0) == Some(&b'.') {
        let mut j = p0 + 1;
        while b.get(j).is_some_and(u8::is_ascii_digit) {
            j += 1;
        }
        if b.get(j).is_some_and(|&c| c >= 0x80) {
            return None; // perhaps a Unicode digit of the fraction
        }
        if j > p0 + 1 {
            p0 = j;
        }
    }
    if b.get(p0) == Some(&b' ') {
        p0 += 1;
    }
    let mut end = p0;
    while b
        .get(end)
        .is_some_and(|&c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b':' | b'-'))
    {
        end += 1;
    }
    // The severity ending at `colon`, if one does: its start.
    let level_at = |colon: usize| -> Option<Option<usize>> {
        if b.get(colon + 1) != Some(&b' ') {
            return Some(None);
        }
        let mut start = colon;
        while start > 0 && (b[start - 1].is_ascii_alphanumeric() || b[start - 1] == b'_') {
            start -= 1;
        }
        if start > 0 && b[start - 1] >= 0x80 {
            return None;
        }
        let word = &line[start..colon];
        let level = LEVELS.contains(&word)
            || word == "DEBUG"
            || (word.len() == 6 && word.starts_with("DEBUG") && b[colon - 1].is_ascii_digit());
        Some(level.then_some(start))
    };
    let split = |start: usize, colon: usize| {
        let msg = &line[colon + 2..];
        (&line[..start], msg.strip_prefix(' ').unwrap_or(msg))
    };
    let mut from = end;
    while let Some(off) = b[from..].iter().position(|&c| c == b':') {
        let colon = from + off;
        from = colon + 1;
        if let Some(start) = level_at(colon)? {
            if start >= end {
                return Some(Some(split(start, colon)));
            }
        }
    }
    if end > p0 && b[end - 1] == b':' {
        if let Some(start) = level_at(end - 1)? {
            if start >= p0 {
                return Some(Some(split(start, end - 1)));
            }
        }
    }
    Some(None)
}

pub struct PgAudit {
    keys: KeyReader,
    tables: Vec<(String, Vec<String>)>,
    /// A stderr entry waiting for its continuation lines.
    pending: Option<Pending>,
    /// A csvlog record, spanning lines while a quoted field is open.
    csv: CsvRecord,
    csv_origin: Option<Origin>,
}

struct Pending {
    time: Timestamp,
    user: Option<String>,
    client: Option<IpAddr>,
    payload: String,
    origin: Origin,
}

impl PgAudit {
    fn new(ctx: &ParserContext) -> PgAudit {
        PgAudit::with_shape_cache(ctx, true)
    }

    /// `shape_cache: false` reads every statement with sqlparser: the
    /// reference the cache is tested and measured against.
    pub fn with_shape_cache(ctx: &ParserContext, shape_cache: bool) -> PgAudit {
        let pg = ctx.directory.postgres.as_ref();
        let key_columns = pg
            .map(|p| {
                p.key_columns
                    .iter()
                    .map(|c| c.to_ascii_lowercase())
                    .collect()
            })
            .unwrap_or_default();
        PgAudit {
            keys: KeyReader::new(key_columns, shape_cache),
            tables: pg
                .map(|p| {
                    p.tables
                        .iter()
                        .map(|t| (t.name.to_ascii_lowercase(), t.categories.clone()))
                        .collect()
                })
                .unwrap_or_default(),
            pending: None,
            csv: CsvRecord::default(),
            csv_origin: None,
        }
    }

    fn flush(&mut self, out: &mut Vec<Event>) -> Result<(), ParseError> {
        match self.pending.take() {
            Some(p) => {
                let user = p.user.ok_or_else(|| ParseError::new("no user in the log line; add %u to log_line_prefix (e.g. '%m [%p] %q%u@%d ')"))?;
                out.push(self.event(p.time, user, p.client, &p.payload, &p.origin)?);
                Ok(())
            }
            None => Ok(()),
        }
    }

    fn event(
        &mut self,
        time: Timestamp,
        user: String,
        client: Option<IpAddr>,
        payload: &str,
        origin: &Origin,
    ) -> Result<Event, ParseError> {
        let audit = Audit::parse(payload)?;
        let object = audit.object;
        let bare = object.rsplit('.').next().unwrap_or(object);
        let categories = self
            .tables
            .iter()
            .find(|(t, _)| {
                t.eq_ignore_ascii_case(object)
                    || t.eq_ignore_ascii_case(bare)
                    || t.rsplit('.')
                        .next()
                        .is_some_and(|b| b.eq_ignore_ascii_case(bare))
            })
            .map(|(_, c)| c.clone())
            .unwrap_or_default();
        let ids = self.keys.customer_ids(&audit.statement, &audit.parameters);
        let command = audit.command;
        let action = match audit.class {
            _ if command.eq_ignore_ascii_case("COPY") && is_copy_to(&audit.statement) => {
                Action::Export
            }
            "READ" if ids.is_empty() => Action::Search,
            "READ" => Action::Lookup,
            "WRITE" if command.eq_ignore_ascii_case("DELETE") => Action::Delete,
            "WRITE" => Action::Update,
            class => Action::Other(class.to_ascii_lowercase()),
        };
        Ok(Event::Access(AccessEvent {
            timestamp: time,
            user,
            source_ip: client,
            action,
            records: ids.len() as u64,
            customer_ids: ids,
            categories,
            db_statement: Some(audit.statement),
            origin: origin.clone(),
            ..Default::default()
        }))
    }

    fn stderr_line(
        &mut self,
        line: &str,
        origin: &Origin,
        out: &mut Vec<Event>,
    ) -> Result<(), ParseError> {
        if let Some(rest) = line.strip_prefix('\t') {
            if let Some(p) = &mut self.pending {
                p.payload.push('\n');
                p.payload.push_str(rest);
            }
            return Ok(());
        }
        self.flush(out)?;
        let Some((prefix, msg)) = split_stderr(line) else {
            // Not a log line we understand; if it holds an audit entry, say what is missing.
            if line.contains("AUDIT: ") {
                return Err(ParseError::new("an AUDIT entry without a recognisable log_line_prefix; start the prefix with %m or %t"));
            }
            return Ok(());
        };
        let Some(payload) = msg.strip_prefix("AUDIT: ") else {
            return Ok(());
        };
        let (time, user, client) = parse_prefix(prefix)?;
        self.pending = Some(Pending {
            time,
            user,
            client,
            payload: payload.to_owned(),
            origin: origin.clone(),
        });
        Ok(())
    }

    fn csv_line(
        &mut self,
        line: &str,
        origin: &Origin,
        out: &mut Vec<Event>,
    ) -> Result<(), ParseError> {
        if !self.csv.is_open() {
            self.csv_origin = Some(origin.clone());
        }
        match self.csv.feed(line) {
            Fed::Open => return Ok(()),
            Fed::TooLong => {
                return Err(ParseError::new(
                    "a csvlog record with an unclosed quote ran past 4 MiB; skipped",
                ))
            }
            Fed::Complete => {}
        }
        let origin = self.csv_origin.take().unwrap_or_else(|| origin.clone());
        let rec = &self.csv;
        if rec.columns() < csvlog::KEPT {
            return Err(ParseError::new(format!(
                "a csvlog record has {} columns; PostgreSQL writes at least 22",
                rec.columns()
            )));
        }
        if !rec.field(13).starts_with("AUDIT: ") {
            return Ok(());
        }
        let time = parse_pg_time(rec.field(0))?;
        let user = Some(rec.field(1))
            .filter(|u| !u.is_empty())
            .ok_or_else(|| ParseError::new("csvlog user_name is empty"))?
            .to_owned();
        let client = host_of(rec.field(4));
        let message = self.csv.take_field(13);
        let payload = &message["AUDIT: ".len()..];
        out.push(self.event(time, user, client, payload, &origin)?);
        Ok(())
    }
}

fn is_copy_to(statement: &str) -> bool {
    let s = statement.to_ascii_uppercase();
    s.trim_start().starts_with("COPY")
        && (s.contains(" TO ") || s.contains(" TO\n") || s.contains("TO STDOUT"))
}

/// `10.1.2.3(51234)`, `10.1.2.3:51234`, `[::1]:5432`, `::1` or `[local]`.
fn host_of(s: &str) -> Option<IpAddr> {
    let s = s.trim();
    if let Ok(ip) = s.parse() {
        return Some(ip);
    }
    let s = s.split('(').next().unwrap_or(s);
    if let Ok(ip) = s.parse() {
        return Some(ip);
    }
    if let Some(v6) = s.strip_prefix('[').and_then(|r| r.split(']').next()) {
        return v6.parse().ok();
    }
    s.rsplit_once(':').and_then(|(h, _)| h.parse().ok())
}

/// `2026-11-02 08:15:01.123 UTC`, `... +01`, `... CET` is not understood.
fn parse_pg_time(s: &str) -> Result<Timestamp, ParseError> {
    let s = s.trim();
    if let Some((t, n)) = utc_time_by_hand(s) {
        if n == s.len() {
            return Ok(t);
        }
    }
    let (dt, zone) = match s.rfind(' ') {
        Some(i) if i > 10 => (&s[..i], &s[i + 1..]),
        _ => (s, "UTC"),
    };
    let offset = match zone {
        "UTC" | "GMT" | "Z" => "+00:00".to_string(),
        z if (z.starts_with('+') || z.starts_with('-')) && z.len() == 3 => format!("{z}:00"),
        z if (z.starts_with('+') || z.starts_with('-')) => z.to_string(),
        z => {
            return Err(ParseError::new(format!(
                "time zone `{z}` is ambiguous; set log_timezone = 'UTC' or use numeric offsets"
            )))
        }
    };
    Timestamp::parse(&format!("{}{offset}", dt.replace(' ', "T")))
        .map_err(|e| ParseError::new(e.to_string()))
}

/// Time, user and client from a stderr `log_line_prefix`.
fn parse_prefix(prefix: &str) -> Result<(Timestamp, Option<String>, Option<IpAddr>), ParseError> {
    if let Some((time, n)) = utc_time_by_hand(prefix) {
        let (user, client) = prefix_fields(&prefix[n..]);
        return Ok((time, user, client));
    }
    static TIME: OnceLock<Regex> = OnceLock::new();
    let time_re = TIME.get_or_init(|| Regex::new(r"^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(?:\.\d+)?)(?: ([A-Za-z]+|[+-]\d{2}(?::?\d{2})?))?").expect("constant regex"));
    let c = time_re
        .captures(prefix)
        .ok_or_else(|| ParseError::new("the log line does not start with a time (%m or %t)"))?;
    let time = parse_pg_time(&format!(
        "{} {}",
        &c[1],
        c.get(2).map_or("UTC", |m| m.as_str())
    ))?;
    let (user, client) = prefix_fields(&prefix[c.get(0).map_or(0, |m| m.end())..]);
    Ok((time, user, client))
}

/// `2026-11-02 08:15:01.123 UTC` (or `GMT`, the usual `%m`) read by
/// position: the time and the bytes read; `None` for anything else, which
/// the regex and chrono then read.
fn utc_time_by_hand(s: &str) -> Option<(Timestamp, usize)> {
    let b = s.as_bytes();
    if b.len() < 23
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b' '
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<i64> {
        b[from..to].iter().try_fold(0i64, |n, &d| {
            d.is_ascii_digit().then(|| n * 10 + (d - b'0') as i64)
        })
    };
    let (year, month, day) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (hour, minute, second) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut at = 19;
    let mut millis = 0;
    if b[at] == b'.' {
        let digits = b[at + 1..]
            .iter()
            .take_while(|d| d.is_ascii_digit())
            .count();
        if !(1..=9).contains(&digits) {
            return None;
        }
        let ms = &b[at + 1..at + 1 + digits.min(3)];
        millis = ms.iter().fold(0, |n, &d| n * 10 + (d - b'0') as i64) * [100, 10, 1][ms.len() - 1];
        at += 1 + digits;
    }
    let zone = b.get(at + 1..at + 4)?;
    if b[at] != b' '
        || !(zone == b"UTC" || zone == b"GMT")
        || b.get(at + 4).is_some_and(u8::is_ascii_alphabetic)
    {
        return None;
    }
    let date = chrono::NaiveDate::from_ymd_opt(year as i32, month as u32, day as u32)?;
    let days = date
        .signed_duration_since(chrono::NaiveDate::from_ymd_opt(1970, 1, 1)?)
        .num_days();
    let secs = ((days * 24 + hour) * 60 + minute) * 60 + second;
    Some((Timestamp(secs * 1000 + millis), at + 4))
}

/// User and client from the part of a `log_line_prefix` after the time.
fn prefix_fields(rest: &str) -> (Option<String>, Option<IpAddr>) {
    let mut user = None;
    let mut client = None;
    for token in rest.split([' ', ',']) {
        let token = token.trim();
        if let Some((k, v)) = token.split_once('=') {
            match k {
                "user" | "usr" | "u" => {
                    user = Some(v.to_owned()).filter(|v| !v.is_empty() && v != "[unknown]")
                }
                "client" | "host" | "remote" | "h" => client = host_of(v),
                _ => {}
            }
        } else if let Some((u, _db)) = token.split_once('@') {
            if !u.is_empty() && !u.starts_with('[') {
                user = Some(u.to_owned());
            }
        } else if client.is_none() {
            client = host_of(token.trim_matches(|c| c == '[' || c == ']'));
        }
    }
    (user, client)
}

/// The fields of one pgaudit entry.
struct Audit<'a> {
    class: &'a str,
    command: &'a str,
    object: &'a str,
    statement: String,
    parameters: Vec<String>,
}

impl<'a> Audit<'a> {
    /// `SESSION,1,1,READ,SELECT,TABLE,public.account,<statement>,<parameter>`.
    ///
    /// Read by hand rather than as CSV: pgaudit quotes a statement only
    /// when it must, older versions never do, and a statement may span
    /// lines; the first seven fields never hold a comma, so the statement
    /// is what lies between the object and the parameter field.
    fn parse(payload: &'a str) -> Result<Audit<'a>, ParseError> {
        let bad = || {
            ParseError::new("not a pgaudit entry (AUDIT: SESSION|OBJECT,id,subid,class,command,type,object,statement,parameter)")
        };
        let mut it = payload.splitn(8, ',');
        let mut head = [""; 7];
        for h in &mut head {
            *h = it.next().ok_or_else(bad)?;
        }
        let rest = it.next().ok_or_else(bad)?;
        if !(head[0] == "SESSION" || head[0] == "OBJECT") {
            return Err(bad());
        }
        let (statement, tail) = if let Some(quoted) = rest.strip_prefix('"') {
            // A CSV-quoted statement: "" stands for ".
            let mut stmt = String::new();
            let mut chars = quoted.char_indices().peekable();
            let mut end = quoted.len();
            while let Some((i, c)) = chars.next() {
                if c == '"' {
                    if chars.peek().map(|(_, n)| *n) == Some('"') {
                        stmt.push('"');
                        chars.next();
                    } else {
                        end = i + 1;
                        break;
                    }
                } else {
                    stmt.push(c);
                }
            }
            (stmt, quoted[end..].strip_prefix(',').unwrap_or(""))
        } else {
            match rest.rsplit_once(',') {
                Some((stmt, param)) if param.starts_with('<') || param.is_empty() => {
                    (stmt.to_owned(), param)
                }
                // Logged parameters after a statement pgaudit did not
                // quote, so one without a comma (`... aid = $1;,36904`).
                Some(_) => rest
                    .split_once(',')
                    .map_or((rest.to_owned(), ""), |(stmt, params)| {
                        (stmt.to_owned(), params)
                    }),
                None => (rest.to_owned(), ""),
            }
        };
        let parameters = if tail.starts_with('<') || tail.is_empty() {
            Vec::new()
        } else {
            csvlog::first_record(tail)
        };
        Ok(Audit {
            class: head[3],
            command: head[4],
            object: head[6],
            statement,
            parameters,
        })
    }
}

impl Parser for PgAudit {
    fn parse_line(
        &mut self,
        line: &str,
        origin: &Origin,
        out: &mut Vec<Event>,
    ) -> Result<(), ParseError> {
        // csvlog records start with the time in column one and hold a quoted message.
        let csv = self.csv.is_open()
            || (line.len() > 24
                && line.as_bytes()[4] == b'-'
                && line.as_bytes()[..30.min(line.len())].contains(&b',')
                && split_stderr(line).is_none());
        if csv {
            return self.csv_line(line, origin, out);
        }
        self.stderr_line(line, origin, out)
    }

    fn finish(&mut self, out: &mut Vec<Event>) -> Result<(), ParseError> {
        if self.csv.is_open() {
            self.csv.reset();
            return Err(ParseError::new(
                "the input ended inside a csvlog record (unclosed quote)",
            ));
        }
        self.flush(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_give_time_user_and_client() {
        let (t, u, c) = parse_prefix(
            "2026-11-02 08:15:01.123 UTC [4711] user=cc_app,db=crm,app=psql,client=10.50.0.7 ",
        )
        .unwrap();
        assert_eq!(t, Timestamp::parse("2026-11-02T08:15:01.123Z").unwrap());
        assert_eq!(
            (u.as_deref(), c),
            (Some("cc_app"), "10.50.0.7".parse().ok())
        );
        let (_, u, c) =
            parse_prefix("2026-11-02 08:15:01 +01 [4711] dba_lind@crm 10.99.1.2(51234) ").unwrap();
        assert_eq!(
            (u.as_deref(), c),
            (Some("dba_lind"), "10.99.1.2".parse().ok())
        );
        assert!(parse_prefix("2026-11-02 08:15:01 CET [1] a@b ").is_err());
    }

    #[test]
    fn unquoted_statements_with_commas_are_kept_whole() {
        let a = Audit::parse(
            "SESSION,2,1,READ,SELECT,,,select id, name from account where id = 1,<not logged>",
        )
        .unwrap();
        assert_eq!(a.statement, "select id, name from account where id = 1");
        let a = Audit::parse("SESSION,1,1,READ,SELECT,TABLE,public.customers,\"SELECT * FROM \"\"customers\"\" WHERE customer_id = $1 AND x = $2\",C-0000042,\"a,b\"").unwrap();
        assert_eq!(
            a.statement,
            "SELECT * FROM \"customers\" WHERE customer_id = $1 AND x = $2"
        );
        assert_eq!(a.parameters, ["C-0000042", "a,b"]);
        let a = Audit::parse(
            "SESSION,1,1,READ,SELECT,TABLE,public.pgbench_accounts,SELECT abalance FROM pgbench_accounts WHERE aid = $1;,36904",
        )
        .unwrap();
        assert_eq!(
            (a.statement.as_str(), a.parameters),
            (
                "SELECT abalance FROM pgbench_accounts WHERE aid = $1;",
                vec!["36904".to_string()]
            )
        );
        let a = Audit::parse("SESSION,1,1,DDL,CREATE TABLE,TABLE,public.account,create table account\n(\n id int,\n name text\n);,<not logged>").unwrap();
        assert!(a.statement.ends_with("name text\n);"), "{}", a.statement);
    }

    /// What the regex reads from a line: prefix and message.
    fn split_regex(line: &str) -> Option<(&str, &str)> {
        pg_line().captures(line).map(|c| {
            (
                c.name("prefix").map_or("", |m| m.as_str()),
                c.name("msg").map_or("", |m| m.as_str()),
            )
        })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 20_000, ..Default::default() })]

        /// Near-misses of real prefixes: severities, colons, zones and
        /// non-ASCII digits or letters at the seams.
        #[test]
        fn the_hand_splitter_reads_every_line_as_the_regex_does(
            base in 0..4usize,
            edits in proptest::collection::vec((0..400usize, 0..16usize, 0..3u8), 0..4),
        ) {
            let bases = [
                "2026-11-02 08:15:03.789 UTC [4712] user=cc_app,db=crm,client=10.50.0.7 LOG:  AUDIT: OBJECT,1,1,READ,SELECT,TABLE,public.account,select 1,<none>",
                "2026-11-02 08:15:01 +01 [4711] dba_lind@crm 10.99.1.2(51234) LOG:  AUDIT: SESSION,1,1,READ,SELECT,,,select 2,<none>",
                "2026-11-02 08:15:01 LOG:  statement: select 1",
                "2026-11-02 08:15:01.5 CET-LOG: DEBUG3:  x ERROR: y",
            ];
            let pieces = [
                " ", ":", ": ", "LOG", "ERROR", "DEBUG1", "DEBUG", "_", "\u{0663}", "é", "UTC",
                "x", "-", ".", "7", "  ",
            ];
            let mut line = bases[base].to_string();
            for (at, piece, op) in edits {
                let mut at = at % (line.len() + 1);
                while !line.is_char_boundary(at) {
                    at -= 1;
                }
                let piece = pieces[piece];
                match op {
                    0 => line.insert_str(at, piece),
                    1 => {
                        let mut end = (at + 1).min(line.len());
                        while !line.is_char_boundary(end) {
                            end += 1;
                        }
                        line.replace_range(at..end, piece);
                    }
                    _ => line.truncate(at),
                }
            }
            if let Some(hand) = split_stderr_by_hand(&line) {
                proptest::prop_assert_eq!(hand, split_regex(&line), "{:?}", line);
            }
            proptest::prop_assert_eq!(split_stderr(&line), split_regex(&line), "{:?}", line);
        }
    }

    #[test]
    fn times_read_by_position_are_the_times_chrono_reads() {
        for s in [
            "2026-11-02 08:15:03.789 UTC",
            "2026-11-02 08:15:03.7 GMT",
            "2024-02-29 23:59:59.123456 UTC",
            "1970-01-01 00:00:00 UTC",
            "2026-11-02 08:15:03.789 UTC [4712] user=a",
        ] {
            let (t, n) = utc_time_by_hand(s).unwrap();
            let whole = s[..n]
                .replace(" UTC", "Z")
                .replace(" GMT", "Z")
                .replacen(' ', "T", 1);
            assert_eq!(t, Timestamp::parse(&whole).unwrap(), "{s}");
        }
        // What it does not take, chrono decides.
        for s in [
            "2026-02-30 08:15:03 UTC",
            "2026-11-02 24:15:03 UTC",
            "2026-11-02 08:15:60 UTC",
            "2026-11-02 08:15:03.789 UTCX",
            "2026-11-02 08:15:03.789 +01",
            "2026-11-02 08:15:03.1234567890 UTC",
            "2026-11-02 08:15:03",
        ] {
            assert_eq!(utc_time_by_hand(s), None, "{s}");
        }
    }
}
