//! Web access logs: nginx/Apache `combined` lines (`nginx`) and nginx JSON
//! logs (`nginx-json`), mapped to access events through the directory's
//! `[http]` routes.
//!
//! A route such as `/api/v1/customers/{customer}` turns a request into an
//! action on a customer; requests matching no route are kept as action
//! `http` with no customer, so rate and automation still see them. The
//! account comes from the log's authenticated user (`account =
//! "remote_user"`) or a logged header (`account = "header:X-Account"`, JSON
//! logs). Where the log names no account, the source address is the
//! actor: `user.name` is the address.
//!
//! Paths are matched as the server resolved them (percent escapes decoded,
//! `.`/`..` and repeated slashes resolved: `vakt_event::routes`); a path
//! servers would read differently (`%2F`, `%2531`, ...) matches no route.
//!
//! The combined format is split by hand, for speed: the regex that defines
//! it ([`combined`], linear-time) cost a sixth of a whole `vakt watch` run.
//! The splitter takes only lines whose every field is plain ASCII where the
//! regex's classes (`\S`, `\d`) are Unicode-aware; any other line goes to
//! the regex, so both read every line the same (a test holds them to it).

use super::{Format, ParseError, Parser, ParserContext};
use chrono::DateTime;
use regex::Regex;
use std::net::IpAddr;
use std::sync::OnceLock;
use vakt_event::routes::{cookie, EncodedPaths, Routes, Target};
use vakt_event::{AccessEvent, Action, Event, HttpMethod, Origin, Outcome, Timestamp};

pub const FORMAT: Format = Format {
    name: "nginx",
    description: "nginx/Apache combined access logs",
    sniff: |line| combined().is_match(line),
    build: |ctx: &ParserContext| Box::new(WebLog::new(ctx)),
};

pub const JSON_FORMAT: Format = Format {
    name: "nginx-json",
    description: "nginx access logs written as JSON (remote_addr, request, status, ...)",
    sniff: |line| line.trim_start().starts_with('{') && line.contains("\"remote_addr\""),
    build: |ctx: &ParserContext| Box::new(JsonWebLog(WebLog::new(ctx))),
};

fn combined() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r#"^(\S+) \S+ (\S+) \[([^\]]+)\] "([^"]*)" (\d{3}) (\d+|-)(?: "((?:[^"\\]|\\.)*)" "((?:[^"\\]|\\.)*)")?"#)
            .expect("constant regex")
    })
}

/// Which field names the account.
enum AccountFrom {
    RemoteUser,
    Header(String),
}

/// Which field names a browser session (JSON logs only: the combined
/// format has no room for one).
enum SessionFrom {
    None,
    Cookie(String),
    Field(String),
}

pub struct WebLog {
    routes: Routes,
    account: AccountFrom,
    session: SessionFrom,
}

/// The fields of one request, whichever log form it came from.
struct Request<'a> {
    addr: &'a str,
    remote_user: Option<&'a str>,
    header_user: Option<String>,
    time: Timestamp,
    method: &'a str,
    target: &'a str,
    status: u16,
    bytes: Option<u64>,
    referrer: Option<&'a str>,
    user_agent: Option<&'a str>,
    session: Option<String>,
}

impl WebLog {
    fn new(ctx: &ParserContext) -> WebLog {
        let http = ctx.directory.http.as_ref();
        let account = match http.and_then(|h| h.account.as_deref()) {
            Some("remote_user") => AccountFrom::RemoteUser,
            Some(h) if h.starts_with("header:") => AccountFrom::Header(format!(
                "http_{}",
                h["header:".len()..].to_ascii_lowercase().replace('-', "_")
            )),
            // The default: a user the log names, else the address.
            _ => AccountFrom::RemoteUser,
        };
        let routes = http.map(|h| Routes::new(&h.routes)).unwrap_or_default();
        let session = match http.and_then(|h| h.session.as_deref()) {
            Some(s) if s.starts_with("cookie:") => SessionFrom::Cookie(s["cookie:".len()..].into()),
            Some(s) if s.starts_with("field:") => SessionFrom::Field(s["field:".len()..].into()),
            _ => SessionFrom::None,
        };
        WebLog {
            routes,
            account,
            session,
        }
    }

    fn event(&self, r: Request, origin: &Origin) -> Result<Event, ParseError> {
        // One client however its address is written: `::ffff:192.0.2.1` is `192.0.2.1`.
        let source_ip = r.addr.parse().ok().map(|ip: IpAddr| ip.to_canonical());
        let named = match &self.account {
            AccountFrom::RemoteUser => r
                .remote_user
                .filter(|u| !u.is_empty() && *u != "-")
                .map(str::to_owned),
            AccountFrom::Header(_) => r.header_user.filter(|u| !u.is_empty() && u != "-"),
        };
        let user = named
            .unwrap_or_else(|| source_ip.map_or_else(|| r.addr.to_owned(), |ip| ip.to_string()));
        let (action, customer_ids, categories) = match self.routes.find(r.method, r.target) {
            Some((rt, c)) => (
                rt.action.clone(),
                if c.is_empty() { Vec::new() } else { vec![c] },
                rt.categories.clone(),
            ),
            None => (Action::Request, Vec::new(), Vec::new()),
        };
        Ok(Event::Access(AccessEvent {
            timestamp: r.time,
            user,
            source_ip,
            user_agent: r.user_agent.filter(|u| *u != "-").map(str::to_owned),
            session_id: r.session,
            action,
            outcome: if r.status >= 400 {
                Outcome::Failure
            } else {
                Outcome::Success
            },
            records: customer_ids.len() as u64,
            customer_ids,
            categories,
            bytes: r.bytes,
            // Recorded as the server resolved it (`%31` is `1`), as written when ambiguous.
            url_path: Some(format!(
                "{} {}",
                r.method,
                Target::parse(r.target, EncodedPaths::Decode)
                    .map_or_else(|_| r.target.to_owned(), |t| t.canonical())
            )),
            http_method: Some(HttpMethod::parse(r.method)),
            http_status: Some(r.status),
            referrer: r
                .referrer
                .filter(|x| !x.is_empty() && *x != "-")
                .map(str::to_owned),
            origin: origin.clone(),
            ..Default::default()
        }))
    }
}

/// The fields of a combined line: address, user, time, request, status,
/// bytes, and referrer and user agent when both are there.
type Combined<'a> = (
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    Option<(&'a str, &'a str)>,
);

/// The combined fields, split by hand when the line is plain, else by the regex.
fn split_combined(line: &str) -> Option<Combined<'_>> {
    split_plain(line).or_else(|| split_regex(line))
}

/// [`combined`]'s reading of a line.
fn split_regex(line: &str) -> Option<Combined<'_>> {
    let c = combined().captures(line)?;
    let g = |i| c.get(i).map_or("", |m| m.as_str());
    let quoted = match (c.get(7), c.get(8)) {
        (Some(r), Some(a)) => Some((r.as_str(), a.as_str())),
        _ => None,
    };
    Some((g(1), g(2), g(3), g(4), g(5), g(6), quoted))
}

/// [`combined`] by hand, for lines it can read without Unicode classes;
/// `None` for any other line (the regex decides those).
fn split_plain(line: &str) -> Option<Combined<'_>> {
    /// A run of visible ASCII up to the next space, and the rest after it.
    fn token(s: &str) -> Option<(&str, &str)> {
        let end = s.bytes().position(|b| !(0x21..0x7f).contains(&b))?;
        (end > 0 && s.as_bytes()[end] == b' ').then(|| (&s[..end], &s[end + 1..]))
    }
    /// `"..."` with backslash escapes, and the rest after it.
    fn quoted(s: &str) -> Option<(&str, &str)> {
        let b = s.as_bytes();
        if b.first() != Some(&b'"') {
            return None;
        }
        let mut i = 1;
        while i < b.len() {
            match b[i] {
                b'"' => return Some((&s[1..i], &s[i + 1..])),
                // A backslash takes the next character with it (never a line end).
                b'\\' if i + 1 < b.len() => i += 2,
                b'\\' => return None,
                _ => i += 1,
            }
        }
        None
    }
    let (addr, rest) = token(line)?;
    let (_ident, rest) = token(rest)?;
    let (user, rest) = token(rest)?;
    let rest = rest.strip_prefix('[')?;
    let close = rest.find(']')?;
    let (time, rest) = (&rest[..close], rest[close + 1..].strip_prefix(" \"")?);
    let quote = rest.find('"')?;
    let (request, rest) = (&rest[..quote], rest[quote + 1..].strip_prefix(' ')?);
    let status = rest
        .get(..3)
        .filter(|s| s.bytes().all(|b| b.is_ascii_digit()))?;
    let rest = rest[3..].strip_prefix(' ')?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let (bytes, rest) = match digits {
        0 if rest.starts_with('-') => rest.split_at(1),
        0 => return None,
        n => rest.split_at(n),
    };
    // A non-ASCII character right after could be a Unicode digit: the regex's.
    if time.is_empty() || rest.bytes().next().is_some_and(|b| !b.is_ascii()) {
        return None;
    }
    let both = rest
        .strip_prefix(' ')
        .and_then(quoted)
        .and_then(|(referrer, rest)| {
            let (agent, _) = quoted(rest.strip_prefix(' ')?)?;
            Some((referrer, agent))
        });
    Some((addr, user, time, request, status, bytes, both))
}

fn parse_time(s: &str) -> Result<Timestamp, ParseError> {
    if let Some(t) = parse_clf_time(s) {
        return Ok(t);
    }
    DateTime::parse_from_str(s, "%d/%b/%Y:%H:%M:%S %z")
        .map(|t| Timestamp(t.timestamp_millis()))
        .or_else(|_| Timestamp::parse(s))
        .map_err(|_| {
            ParseError::new(format!(
                "time `{s}` is neither `10/Oct/2026:13:55:36 +0200` nor RFC 3339"
            ))
        })
}

/// `10/Oct/2026:13:55:36 +0200` read by position (chrono's format parser
/// was a twentieth of a run); `None` for anything else, which the general
/// parser then reads or rejects.
fn parse_clf_time(s: &str) -> Option<Timestamp> {
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let b = s.as_bytes();
    if b.len() != 26
        || b[2] != b'/'
        || b[6] != b'/'
        || b[11] != b':'
        || b[14] != b':'
        || b[17] != b':'
        || b[20] != b' '
    {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<i64> {
        b[from..to].iter().try_fold(0i64, |n, &d| {
            d.is_ascii_digit().then(|| n * 10 + (d - b'0') as i64)
        })
    };
    let month = MONTHS.iter().position(|m| &b[3..6] == *m)? as u32 + 1;
    let (day, year) = (num(0, 2)? as u32, num(7, 11)? as i32);
    let (hour, minute, second) = (num(12, 14)?, num(15, 17)?, num(18, 20)?);
    let sign = match b[21] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let (oh, om) = (num(22, 24)?, num(24, 26)?);
    if hour > 23 || minute > 59 || second > 59 || oh > 23 || om > 59 {
        return None;
    }
    let date = chrono::NaiveDate::from_ymd_opt(year, month, day)?;
    let days = date
        .signed_duration_since(chrono::NaiveDate::from_ymd_opt(1970, 1, 1)?)
        .num_days();
    let local = ((days * 24 + hour) * 60 + minute) * 60 + second;
    Some(Timestamp((local - sign * (oh * 3600 + om * 60)) * 1000))
}

fn split_request(req: &str) -> Result<(&str, &str), ParseError> {
    let mut it = req.split(' ');
    match (it.next(), it.next()) {
        (Some(m), Some(t)) if !m.is_empty() && !t.is_empty() => Ok((m, t)),
        _ => Err(ParseError::new(format!(
            "request `{}` is not `METHOD /path PROTOCOL`",
            req.chars().take(60).collect::<String>()
        ))),
    }
}

impl Parser for WebLog {
    fn parse_line(
        &mut self,
        line: &str,
        origin: &Origin,
        out: &mut Vec<Event>,
    ) -> Result<(), ParseError> {
        if line.trim().is_empty() {
            return Ok(());
        }
        let (addr, user, time, request, status, bytes, quoted) = split_combined(line)
            .ok_or_else(|| ParseError::new("not a combined log line (`addr - user [time] \"request\" status bytes \"referer\" \"agent\"`)"))?;
        let (method, target) = split_request(request)?;
        let req = Request {
            addr,
            remote_user: Some(user),
            header_user: None,
            time: parse_time(time)?,
            method,
            target,
            status: status
                .parse()
                .map_err(|_| ParseError::new("status is not a number"))?,
            bytes: bytes.parse().ok(),
            referrer: quoted.map(|q| q.0),
            user_agent: quoted.map(|q| q.1),
            session: None,
        };
        out.push(self.event(req, origin)?);
        Ok(())
    }
}

/// nginx `log_format ... escape=json` lines.
pub struct JsonWebLog(WebLog);

impl Parser for JsonWebLog {
    fn parse_line(
        &mut self,
        line: &str,
        origin: &Origin,
        out: &mut Vec<Event>,
    ) -> Result<(), ParseError> {
        if line.trim().is_empty() {
            return Ok(());
        }
        let v: serde_json::Map<String, serde_json::Value> = serde_json::from_str(line)
            .map_err(|e| ParseError::new(format!("not valid JSON: {e}")))?;
        let s = |k: &str| v.get(k).and_then(|x| x.as_str()).filter(|x| !x.is_empty());
        let n = |k: &str| {
            v.get(k)
                .and_then(|x| x.as_u64().or_else(|| x.as_str()?.parse().ok()))
        };
        let time = match (s("time_iso8601"), s("time_local"), s("@timestamp")) {
            (Some(t), _, _) | (None, None, Some(t)) => {
                Timestamp::parse(t).map_err(|e| ParseError::new(e.to_string()))?
            }
            (None, Some(t), _) => parse_time(t)?,
            _ => {
                return Err(ParseError::new(
                    "no time: log `time_iso8601` or `time_local`",
                ))
            }
        };
        let (method, target) = match (s("request_method"), s("request_uri"), s("request")) {
            (Some(m), Some(u), _) => (m, u),
            (_, _, Some(r)) => split_request(r)?,
            _ => {
                return Err(ParseError::new(
                    "no request: log `request` or `request_method` and `request_uri`",
                ))
            }
        };
        let header_user = match &self.0.account {
            AccountFrom::Header(k) => s(k).map(str::to_owned),
            _ => None,
        };
        let req = Request {
            addr: s("remote_addr").ok_or_else(|| ParseError::new("`remote_addr` is missing"))?,
            remote_user: s("remote_user"),
            header_user,
            time,
            method,
            target,
            status: n("status")
                .and_then(|x| u16::try_from(x).ok())
                .ok_or_else(|| ParseError::new("`status` is missing or not a number"))?,
            bytes: n("body_bytes_sent"),
            referrer: s("http_referer"),
            user_agent: s("http_user_agent"),
            session: match &self.0.session {
                SessionFrom::None => None,
                SessionFrom::Field(f) => s(f).map(str::to_owned),
                SessionFrom::Cookie(c) => s("http_cookie")
                    .and_then(|h| cookie(h, c))
                    .map(str::to_owned),
            },
        };
        out.push(self.0.event(req, origin)?);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_hand_splitter_reads_every_line_as_the_regex_does() {
        let base = r#"198.51.100.7 - r17.anna [04/Mar/2024:10:42:01 +0100] "GET /customers/1234?tab=1 HTTP/1.1" 200 5120 "https://crm/s\"x" "Mozilla/5.0 (X11)""#;
        // Pieces a hostile line may carry where the format has its seams.
        let pieces = [
            " ", "\t", "\"", "\\", "[", "]", "-", "7", "\u{0663}", "\u{00a0}", "é", "  ", "\\\"",
            "x",
        ];
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut plain = 0;
        for _ in 0..20_000 {
            let mut line = base.to_string();
            for _ in 0..1 + next() % 3 {
                let mut at = (next() as usize) % (line.len() + 1);
                while !line.is_char_boundary(at) {
                    at -= 1;
                }
                let piece = pieces[(next() as usize) % pieces.len()];
                match next() % 3 {
                    0 => line.insert_str(at, piece),
                    1 => {
                        let mut end = (at + 1 + (next() as usize) % 3).min(line.len());
                        while !line.is_char_boundary(end) {
                            end += 1;
                        }
                        line.replace_range(at..end, piece);
                    }
                    _ => line.truncate(at),
                }
            }
            let fast = split_plain(&line);
            plain += fast.is_some() as u32;
            if fast.is_some() {
                assert_eq!(fast, split_regex(&line), "{line:?}");
            }
            assert_eq!(split_combined(&line), split_regex(&line), "{line:?}");
        }
        assert!(plain > 5_000, "the hand splitter took only {plain} lines");
    }

    #[test]
    fn times_read_by_position_are_the_times_chrono_reads() {
        let by_chrono = |s: &str| {
            DateTime::parse_from_str(s, "%d/%b/%Y:%H:%M:%S %z")
                .ok()
                .map(|t| Timestamp(t.timestamp_millis()))
        };
        for s in [
            "04/Mar/2024:10:42:01 +0100",
            "29/Feb/2024:23:59:59 -0930",
            "31/Dec/1999:00:00:00 +0000",
            "01/Jan/1970:00:00:00 +1400",
        ] {
            assert_eq!(parse_clf_time(s), by_chrono(s), "{s}");
            assert!(parse_clf_time(s).is_some(), "{s}");
        }
        // What it does not take, the general parser decides.
        for s in [
            "30/Feb/2024:10:00:00 +0000",
            "04/mar/2024:10:42:01 +0100",
            "04/Mar/2024:24:00:00 +0000",
            "4/Mar/2024:10:42:01 +0100",
            "04/Mar/2024:10:42:01 0100",
            "04/Mar/2024:10:42:61 +0100",
        ] {
            assert_eq!(parse_clf_time(s), None, "{s}");
        }
    }

    use super::*;
    use std::sync::Arc;
    use vakt_event::Directory;

    const DIR: &str = r#"
[http]
account = "remote_user"

[[http.route]]
pattern = "/customers/{customer}"
action = "lookup"
categories = ["name", "address"]

[[http.route]]
pattern = "/customers/{customer}/*"
action = "lookup"

[[http.route]]
pattern = "/login"
method = "POST"
action = "login"
"#;

    fn parser(dir: &str, json: bool) -> Box<dyn Parser> {
        let ctx = ParserContext {
            directory: Arc::new(Directory::from_toml(dir, "d").unwrap()),
        };
        if json {
            (JSON_FORMAT.build)(&ctx)
        } else {
            (FORMAT.build)(&ctx)
        }
    }

    fn one(p: &mut Box<dyn Parser>, line: &str) -> AccessEvent {
        let mut out = Vec::new();
        p.parse_line(line, &Origin::new("access.log".into(), 1), &mut out)
            .unwrap();
        match out.pop() {
            Some(Event::Access(a)) => a,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn finding_4_percent_encoded_paths_are_matched_and_recorded_decoded() {
        let mut p = parser(DIR, false);
        let a = one(
            &mut p,
            r#"198.51.100.7 - r17.anna [04/Mar/2024:10:42:01 +0100] "GET //customers/./123%34?tab=1 HTTP/1.1" 200 5120 "-" "-""#,
        );
        assert_eq!(a.customer_ids, ["1234"]);
        assert_eq!(a.url_path.as_deref(), Some("GET /customers/1234?tab=1"));
        // Servers disagree on what `%2F` names: no route, the path as written.
        let b = one(
            &mut p,
            r#"198.51.100.7 - r17.anna [04/Mar/2024:10:42:01 +0100] "GET /customers/1%2F..%2F2 HTTP/1.1" 200 5120 "-" "-""#,
        );
        assert_eq!((b.action, b.customer_ids.len()), (Action::Request, 0));
        assert_eq!(b.url_path.as_deref(), Some("GET /customers/1%2F..%2F2"));
    }

    #[test]
    fn combined_lines_map_routes_to_customers_and_users() {
        let mut p = parser(DIR, false);
        let a = one(
            &mut p,
            r#"198.51.100.7 - r17.anna [04/Mar/2024:10:42:01 +0100] "GET /customers/1234?tab=1 HTTP/1.1" 200 5120 "https://crm/search" "Mozilla/5.0 (X11)""#,
        );
        assert_eq!(a.user, "r17.anna");
        assert_eq!(
            a.timestamp,
            Timestamp::parse("2024-03-04T09:42:01Z").unwrap()
        );
        assert_eq!(
            (a.action.clone(), a.customer_ids.clone()),
            (Action::Lookup, vec!["1234".to_string()])
        );
        assert_eq!(a.categories, ["name", "address"]);
        assert_eq!(a.bytes, Some(5120));
        assert_eq!(a.user_agent.as_deref(), Some("Mozilla/5.0 (X11)"));
        let b = one(
            &mut p,
            r#"203.0.113.5 - - [04/Mar/2024:10:42:02 +0000] "POST /login HTTP/1.1" 401 230 "-" "curl/8""#,
        );
        assert_eq!(
            (b.user.as_str(), b.action.clone(), b.outcome),
            ("203.0.113.5", Action::Login, Outcome::Failure)
        );
        let c = one(
            &mut p,
            r#"203.0.113.5 - - [04/Mar/2024:10:42:03 +0000] "GET /customers/77/orders HTTP/1.1" 200 100 "-" "-""#,
        );
        assert_eq!(c.customer_ids, ["77"]);
        let d = one(
            &mut p,
            r#"203.0.113.5 - - [04/Mar/2024:10:42:04 +0000] "GET /static/app.js HTTP/1.1" 304 0"#,
        );
        assert_eq!((d.action, d.customer_ids.len()), (Action::Request, 0));
    }

    #[test]
    fn json_logs_name_the_account_from_a_header() {
        let dir = DIR.replace(
            "account = \"remote_user\"",
            "account = \"header:X-Account\"",
        );
        let mut p = parser(&dir, true);
        let a = one(
            &mut p,
            r#"{"time_iso8601":"2026-11-02T08:00:00+01:00","remote_addr":"198.51.100.7","request":"GET /customers/C-9 HTTP/2.0","status":"200","body_bytes_sent":"512","http_x_account":"p3.shop"}"#,
        );
        assert_eq!(
            (a.user.as_str(), a.customer_ids[0].as_str()),
            ("p3.shop", "C-9")
        );
        assert_eq!(
            a.timestamp,
            Timestamp::parse("2026-11-02T07:00:00Z").unwrap()
        );
    }

    #[test]
    fn requests_keep_method_status_referrer_and_a_session_cookie() {
        let mut p = parser(DIR, false);
        let a = one(
            &mut p,
            r#"203.0.113.5 - - [04/Mar/2024:10:42:03 +0000] "HEAD /customers/77 HTTP/1.1" 404 0 "https://crm.example.com/search?q=ab" "curl/8.5""#,
        );
        assert_eq!(
            (a.http_method, a.http_status, a.referrer.as_deref()),
            (
                Some(HttpMethod::Head),
                Some(404),
                Some("https://crm.example.com/search?q=ab")
            )
        );
        let dir = DIR.replace("account = \"remote_user\"", "session = \"cookie:sid\"");
        let mut p = parser(&dir, true);
        let b = one(
            &mut p,
            r#"{"time_iso8601":"2026-11-02T08:00:00Z","remote_addr":"198.51.100.7","request":"GET / HTTP/2.0","status":"200","http_cookie":"theme=dark; sid=k7f2","http_referer":"-"}"#,
        );
        assert_eq!(
            (b.session_id.as_deref(), b.referrer, b.user.as_str()),
            (Some("k7f2"), None, "198.51.100.7")
        );
    }

    #[test]
    fn a_mapped_ipv6_address_is_the_ipv4_client_it_names() {
        let mut p = parser("[http]\n", false);
        let a = one(
            &mut p,
            r#"::ffff:198.51.100.7 - - [04/Mar/2024:10:42:03 +0000] "GET / HTTP/1.1" 200 10 "-" "ua""#,
        );
        assert_eq!(
            (a.user.as_str(), a.source_ip),
            ("198.51.100.7", "198.51.100.7".parse().ok())
        );
    }

    #[test]
    fn bad_lines_say_what_is_wrong() {
        let mut p = parser(DIR, false);
        let mut out = Vec::new();
        let o = Origin::default();
        let e = p.parse_line("hello world", &o, &mut out).unwrap_err();
        assert!(e.0.contains("combined"), "{e}");
        let e = p
            .parse_line(
                r#"1.2.3.4 - - [yesterday] "GET / HTTP/1.1" 200 1 "-" "-""#,
                &o,
                &mut out,
            )
            .unwrap_err();
        assert!(e.0.contains("time"), "{e}");
        let e = p
            .parse_line(
                r#"1.2.3.4 - - [04/Mar/2024:10:42:04 +0000] "" 400 0 "-" "-""#,
                &o,
                &mut out,
            )
            .unwrap_err();
        assert!(e.0.contains("request"), "{e}");
        let mut j = parser(DIR, true);
        assert!(j
            .parse_line(r#"{"remote_addr":"1.2.3.4"}"#, &o, &mut out)
            .unwrap_err()
            .0
            .contains("time"));
    }
}
