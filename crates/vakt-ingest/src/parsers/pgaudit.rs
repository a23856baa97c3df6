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

use super::{Format, ParseError, Parser, ParserContext};
use regex::Regex;
use sqlparser::ast::{visit_expressions, BinaryOperator, Expr, Value};
use sqlparser::dialect::PostgreSqlDialect;
use std::collections::HashSet;
use std::net::IpAddr;
use std::ops::ControlFlow;
use std::sync::OnceLock;
use vakt_event::{AccessEvent, Action, Event, Origin, Timestamp};

pub const FORMAT: Format = Format {
    name: "pgaudit",
    description: "PostgreSQL logs with pgaudit entries (stderr or csvlog)",
    sniff: |line| {
        line.contains("AUDIT: SESSION,")
            || line.contains("AUDIT: OBJECT,")
            || pg_line().is_match(line)
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

/// Longest csvlog record kept while its quotes are open.
const MAX_CSV_RECORD: usize = 4 << 20;

pub struct PgAudit {
    key_columns: HashSet<String>,
    tables: Vec<(String, Vec<String>)>,
    /// A stderr entry waiting for its continuation lines.
    pending: Option<Pending>,
    /// A csvlog record spanning several lines.
    csv_buffer: String,
    /// Whether `csv_buffer` holds an odd number of quotes (a quoted field
    /// still open). Kept as lines arrive: recounting the whole record at
    /// each line made a record of n lines cost n^2.
    csv_open_quote: bool,
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
        let pg = ctx.directory.postgres.as_ref();
        PgAudit {
            key_columns: pg
                .map(|p| {
                    p.key_columns
                        .iter()
                        .map(|c| c.to_ascii_lowercase())
                        .collect()
                })
                .unwrap_or_default(),
            tables: pg
                .map(|p| {
                    p.tables
                        .iter()
                        .map(|t| (t.name.to_ascii_lowercase(), t.categories.clone()))
                        .collect()
                })
                .unwrap_or_default(),
            pending: None,
            csv_buffer: String::new(),
            csv_open_quote: false,
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
        &self,
        time: Timestamp,
        user: String,
        client: Option<IpAddr>,
        payload: &str,
        origin: &Origin,
    ) -> Result<Event, ParseError> {
        let audit = Audit::parse(payload)?;
        let object = audit.object.to_ascii_lowercase();
        let bare = object.rsplit('.').next().unwrap_or(&object).to_owned();
        let categories = self
            .tables
            .iter()
            .find(|(t, _)| {
                *t == object || *t == bare || t.rsplit('.').next() == Some(bare.as_str())
            })
            .map(|(_, c)| c.clone())
            .unwrap_or_default();
        let ids = self.customer_ids(&audit.statement, &audit.parameters);
        let command = audit.command.to_ascii_uppercase();
        let action = match (audit.class.as_str(), command.as_str()) {
            (_, "COPY") if is_copy_to(&audit.statement) => Action::Export,
            ("READ", _) if ids.is_empty() => Action::Search,
            ("READ", _) => Action::Lookup,
            ("WRITE", "DELETE") => Action::Delete,
            ("WRITE", _) => Action::Update,
            (class, _) => Action::Other(class.to_ascii_lowercase()),
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

    /// Literal values compared with a key column, in `=` or `IN`.
    fn customer_ids(&self, statement: &str, parameters: &[String]) -> Vec<String> {
        if self.key_columns.is_empty() {
            return Vec::new();
        }
        let Ok(statements) = sqlparser::parser::Parser::parse_sql(&PostgreSqlDialect {}, statement)
        else {
            return Vec::new();
        };
        let mut ids = Vec::new();
        let is_key = |e: &Expr| match e {
            Expr::Identifier(i) => self.key_columns.contains(&i.value.to_ascii_lowercase()),
            Expr::CompoundIdentifier(parts) => parts.last().is_some_and(|i| {
                let col = i.value.to_ascii_lowercase();
                self.key_columns.contains(&col)
                    || self.key_columns.contains(
                        &parts
                            .iter()
                            .map(|p| p.value.to_ascii_lowercase())
                            .collect::<Vec<_>>()
                            .join("."),
                    )
            }),
            _ => false,
        };
        let literal = |e: &Expr| -> Option<String> {
            let Expr::Value(v) = e else { return None };
            match &v.value {
                Value::SingleQuotedString(s) | Value::Number(s, _) => Some(s.clone()),
                Value::Placeholder(p) => p
                    .strip_prefix('$')
                    .and_then(|n| n.parse::<usize>().ok())
                    .and_then(|n| parameters.get(n.wrapping_sub(1)).cloned()),
                _ => None,
            }
        };
        let _ = visit_expressions(&statements, |e: &Expr| {
            match e {
                Expr::BinaryOp {
                    left,
                    op: BinaryOperator::Eq,
                    right,
                } => {
                    if is_key(left) {
                        ids.extend(literal(right));
                    } else if is_key(right) {
                        ids.extend(literal(left));
                    }
                }
                Expr::InList {
                    expr,
                    list,
                    negated: false,
                } if is_key(expr) => ids.extend(list.iter().filter_map(literal)),
                _ => {}
            }
            ControlFlow::<()>::Continue(())
        });
        ids.sort();
        ids.dedup();
        ids
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
        let Some(c) = pg_line().captures(line) else {
            // Not a log line we understand; if it holds an audit entry, say what is missing.
            if line.contains("AUDIT: ") {
                return Err(ParseError::new("an AUDIT entry without a recognisable log_line_prefix; start the prefix with %m or %t"));
            }
            return Ok(());
        };
        let msg = c.name("msg").map_or("", |m| m.as_str());
        let Some(payload) = msg.strip_prefix("AUDIT: ") else {
            return Ok(());
        };
        let prefix = c.name("prefix").map_or("", |m| m.as_str());
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
        if self.csv_buffer.is_empty() {
            self.csv_origin = Some(origin.clone());
        } else {
            self.csv_buffer.push('\n');
        }
        if self.csv_buffer.len() + line.len() > MAX_CSV_RECORD {
            self.csv_buffer.clear();
            self.csv_open_quote = false;
            return Err(ParseError::new(
                "a csvlog record with an unclosed quote ran past 4 MiB; skipped",
            ));
        }
        self.csv_buffer.push_str(line);
        // A record ends when its quotes balance.
        let quotes = line.bytes().filter(|&b| b == b'"').count();
        self.csv_open_quote ^= quotes % 2 == 1;
        if self.csv_open_quote {
            return Ok(());
        }
        let record = std::mem::take(&mut self.csv_buffer);
        let origin = self.csv_origin.take().unwrap_or_else(|| origin.clone());
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(record.as_bytes());
        let Some(rec) = rdr.records().next() else {
            return Ok(());
        };
        let rec = rec.map_err(|e| ParseError::new(format!("not a csvlog record: {e}")))?;
        if rec.len() < 14 {
            return Err(ParseError::new(format!(
                "a csvlog record has {} columns; PostgreSQL writes at least 22",
                rec.len()
            )));
        }
        let Some(payload) = rec[13].strip_prefix("AUDIT: ") else {
            return Ok(());
        };
        let time = parse_pg_time(&rec[0])?;
        let user = Some(&rec[1])
            .filter(|u| !u.is_empty())
            .ok_or_else(|| ParseError::new("csvlog user_name is empty"))?;
        let client = host_of(&rec[4]);
        out.push(self.event(time, user.to_owned(), client, payload, &origin)?);
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
    let rest = &prefix[c.get(0).map_or(0, |m| m.end())..];
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
    Ok((time, user, client))
}

/// The fields of one pgaudit entry.
struct Audit {
    class: String,
    command: String,
    object: String,
    statement: String,
    parameters: Vec<String>,
}

impl Audit {
    /// `SESSION,1,1,READ,SELECT,TABLE,public.account,<statement>,<parameter>`.
    ///
    /// Read by hand rather than as CSV: pgaudit quotes a statement only
    /// when it must, older versions never do, and a statement may span
    /// lines; the first seven fields never hold a comma, so the statement
    /// is what lies between the object and the parameter field.
    fn parse(payload: &str) -> Result<Audit, ParseError> {
        let bad = || {
            ParseError::new("not a pgaudit entry (AUDIT: SESSION|OBJECT,id,subid,class,command,type,object,statement,parameter)")
        };
        let mut it = payload.splitn(8, ',');
        let head: Vec<&str> = it.by_ref().take(7).collect();
        let rest = it.next().ok_or_else(bad)?;
        if head.len() < 7 || !(head[0] == "SESSION" || head[0] == "OBJECT") {
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
                _ => (rest.to_owned(), ""),
            }
        };
        let parameters = if tail.starts_with('<') || tail.is_empty() {
            Vec::new()
        } else {
            csv::ReaderBuilder::new()
                .has_headers(false)
                .from_reader(tail.as_bytes())
                .records()
                .next()
                .and_then(Result::ok)
                .map(|r| r.iter().map(str::to_owned).collect())
                .unwrap_or_default()
        };
        Ok(Audit {
            class: head[3].to_owned(),
            command: head[4].to_owned(),
            object: head[6].to_owned(),
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
        let csv = !self.csv_buffer.is_empty()
            || (line.len() > 24
                && line.as_bytes()[4] == b'-'
                && line.as_bytes()[..30.min(line.len())].contains(&b',')
                && !pg_line().is_match(line));
        if csv {
            return self.csv_line(line, origin, out);
        }
        self.stderr_line(line, origin, out)
    }

    fn finish(&mut self, out: &mut Vec<Event>) -> Result<(), ParseError> {
        if !self.csv_buffer.is_empty() {
            self.csv_buffer.clear();
            self.csv_open_quote = false;
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
        let a = Audit::parse("SESSION,1,1,DDL,CREATE TABLE,TABLE,public.account,create table account\n(\n id int,\n name text\n);,<not logged>").unwrap();
        assert!(a.statement.ends_with("name text\n);"), "{}", a.statement);
    }
}
