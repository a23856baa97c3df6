//! The directory (EVENTS.md section 4): organisations and their networks,
//! accounts and their roles, service accounts, canaries, allowed egress,
//! and how web and database logs map to accounts and customers.
//!
//! It is read once at start; any mistake stops the run with the file, the
//! line and what to change, because a wrong directory silently skews every
//! detector that trusts it.

use crate::tuning::{Place, RawDetectors, RuleSettings};
use chrono_tz::Tz;
use ipnet::IpNet;
use serde::Deserialize;
use std::path::Path;
use toml::Spanned;

/// A directory that could not be used, located in its file.
#[derive(Debug, thiserror::Error)]
#[error("{path}:{line}:{column}: {message}")]
pub struct DirectoryError {
    pub path: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Directory {
    #[serde(default, rename = "organization")]
    pub organizations: Vec<Organization>,
    #[serde(default, rename = "account")]
    pub accounts: Vec<Account>,
    #[serde(default, rename = "service")]
    pub services: Vec<Service>,
    #[serde(default, rename = "canary")]
    pub canaries: Vec<Canary>,
    #[serde(default)]
    pub egress_allow: Vec<EgressAllow>,
    #[serde(default)]
    pub http: Option<HttpMapping>,
    #[serde(default)]
    pub postgres: Option<PostgresMapping>,
    #[serde(default, rename = "policy")]
    pub policies: Vec<Policy>,
    /// `[[page]]`: payment pages whose scripts and destinations are watched.
    #[serde(default, rename = "page")]
    pub pages: Vec<crate::page::PageEntry>,
    /// `[notification]`: the breach notification regimes the company
    /// falls under, and when to warn as their clocks run.
    #[serde(default)]
    pub notification: Option<NotificationSettings>,
    #[serde(default, rename = "detectors")]
    raw_detectors: RawDetectors,
    /// `[detectors.RULE]` parameter overrides, unchecked but for their
    /// organisations: the detectors' builder checks them.
    #[serde(skip)]
    pub detectors: Vec<RuleSettings>,
}

/// What to do when an alert reaches a severity: EVENTS.md section 6.
///
/// ```toml
/// [[policy]]
/// rule = "rate"            # a rule id, or "*" for any
/// min_severity = "high"
/// action = "block"         # throttle | step_up | block
/// ttl = "1h"               # s, m, h or d
/// scope = "account"        # account | ip | organization
/// ```
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    #[serde(default = "any_rule")]
    pub rule: String,
    pub min_severity: crate::Severity,
    pub action: Spanned<crate::decision::Action>,
    pub ttl: Spanned<String>,
    #[serde(default = "account_scope")]
    pub scope: Spanned<crate::decision::Scope>,
    /// The time to live, in milliseconds (checked at load, within the
    /// bounds a decision may last).
    #[serde(skip)]
    pub ttl_ms: i64,
    #[serde(skip)]
    pub base: usize,
}

fn any_rule() -> String {
    "*".into()
}

fn account_scope() -> Spanned<crate::decision::Scope> {
    Spanned::new(0..0, crate::decision::Scope::Account)
}

/// `90s`, `10m`, `1h`, `7d` in milliseconds.
pub fn parse_ttl(s: &str) -> Option<i64> {
    let s = s.trim();
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit())?);
    let n: i64 = n.parse().ok()?;
    let ms = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    (n > 0).then(|| n.saturating_mul(ms))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Organization {
    pub id: Spanned<String>,
    /// `employee`, `reseller`, `partner`, `vendor`, ... (free word: peer
    /// groups are formed per kind and role).
    #[serde(default = "default_org_kind")]
    pub kind: String,
    #[serde(default)]
    pub networks: Vec<Spanned<String>>,
    #[serde(default)]
    pub countries: Vec<String>,
    /// The customer segments and regions its people serve (`customer.segment`,
    /// `customer.region` on events); empty: all.
    #[serde(default)]
    pub segments: Vec<String>,
    #[serde(default)]
    pub regions: Vec<String>,
    /// Notification regimes of a breach attributed to this organisation
    /// (`gdpr`, `telecom`, `nis2`), when they differ from `[notification]`.
    #[serde(default)]
    pub regimes: Vec<Spanned<String>>,
    #[serde(skip)]
    pub nets: Vec<IpNet>,
    /// Where this entry's chunk starts in the file (spans are relative to it).
    #[serde(skip)]
    pub base: usize,
}

fn default_org_kind() -> String {
    "other".into()
}

#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccountKind {
    #[default]
    Human,
    Service,
    Batch,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Account {
    pub name: Spanned<String>,
    #[serde(default)]
    pub organization: Option<Spanned<String>>,
    #[serde(default)]
    pub role: Option<String>,
    #[serde(default)]
    pub kind: AccountKind,
    /// Working hours (`08:00-20:00`) in `timezone`; for a batch job, its window.
    #[serde(default)]
    pub hours: Option<Spanned<String>>,
    #[serde(default)]
    pub timezone: Option<Spanned<String>>,
    /// For batch jobs: the largest expected run, in records.
    #[serde(default)]
    pub max_records: Option<u64>,
    /// The segments and regions this account's queue serves, when they
    /// differ from its organisation's; empty: its organisation's.
    #[serde(default)]
    pub segments: Vec<String>,
    #[serde(default)]
    pub regions: Vec<String>,
    #[serde(skip)]
    pub work_hours: Option<Hours>,
    #[serde(skip)]
    pub tz: Option<Tz>,
    /// Where this entry's chunk starts in the file (spans are relative to it).
    #[serde(skip)]
    pub base: usize,
}

/// A daily window in minutes after local midnight; may wrap midnight.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Hours {
    pub start_minute: u16,
    pub end_minute: u16,
}

impl Hours {
    pub fn parse(s: &str) -> Option<Hours> {
        let (a, b) = s.split_once('-')?;
        let minute = |t: &str| -> Option<u16> {
            let (h, m) = t.trim().split_once(':')?;
            let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
            (h <= 24 && m < 60 && h * 60 + m <= 24 * 60).then_some(h * 60 + m)
        };
        Some(Hours {
            start_minute: minute(a)?,
            end_minute: minute(b)?,
        })
    }

    pub fn contains(&self, minute_of_day: u16) -> bool {
        if self.start_minute <= self.end_minute {
            (self.start_minute..self.end_minute).contains(&minute_of_day)
        } else {
            minute_of_day >= self.start_minute || minute_of_day < self.end_minute
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    pub name: Spanned<String>,
    #[serde(default)]
    pub organization: Option<Spanned<String>>,
    pub max_rate_per_minute: u32,
    /// What it is expected to read; empty means any.
    #[serde(default)]
    pub categories: Vec<String>,
    #[serde(skip)]
    pub base: usize,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Canary {
    pub customer_id: String,
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub contact: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EgressAllow {
    pub host: String,
    pub destinations: Vec<Spanned<String>>,
    #[serde(skip)]
    pub nets: Vec<IpNet>,
    #[serde(skip)]
    pub base: usize,
}

/// `[notification]`: see [`crate::notification`].
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationSettings {
    /// `gdpr`, `telecom`, `nis2`; absent: `gdpr`.
    #[serde(default)]
    pub regimes: Vec<Spanned<String>>,
    /// Fractions of a clock's time at which the alert outlets are warned
    /// (default 0.5, 0.75, 0.9; and when it runs out).
    #[serde(default)]
    pub warn_at: Option<Vec<f64>>,
    #[serde(skip)]
    base: usize,
}

fn regimes_of(
    list: &[Spanned<String>],
    at: &dyn Fn(usize, String) -> DirectoryError,
    base: usize,
) -> Result<Vec<crate::notification::Regime>, DirectoryError> {
    list.iter()
        .map(|r| {
            crate::notification::Regime::parse(r.get_ref()).ok_or_else(|| {
                at(
                    base + r.span().start,
                    format!(
                        "regime `{}` is not known; use gdpr, telecom or nis2",
                        r.get_ref()
                    ),
                )
            })
        })
        .collect()
}

/// How web access logs name accounts and customers.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpMapping {
    /// `remote_user` (the log's authenticated user field) or
    /// `header:NAME` (a header recorded in JSON logs). Without an account,
    /// the source address is the actor.
    #[serde(default)]
    pub account: Option<String>,
    /// What names a browser session when there is no account:
    /// `cookie:NAME` (a cookie, as the HTTP proxy and JSON logs with
    /// `http_cookie` see it) or `field:NAME` (a field of JSON logs). Without
    /// one, a session is the address plus the user agent.
    #[serde(default)]
    pub session: Option<String>,
    #[serde(default, rename = "route")]
    pub routes: Vec<HttpRoute>,
    #[serde(skip)]
    pub base: usize,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpRoute {
    /// Path pattern; `{customer}` captures the customer id, `*` matches one
    /// path segment, e.g. `/api/v1/customers/{customer}`.
    pub pattern: Spanned<String>,
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default = "default_route_action")]
    pub action: String,
    #[serde(default)]
    pub categories: Vec<String>,
    /// For the HTTP proxy: a JSON pointer into the response body naming the
    /// customers a search returned; `*` walks an array (`/results/*/id`).
    #[serde(default)]
    pub response_customers: Option<String>,
}

fn default_route_action() -> String {
    "lookup".into()
}

/// How pgaudit statements map to customers.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresMapping {
    /// Columns whose literal values in a predicate are customer ids.
    #[serde(default)]
    pub key_columns: Vec<String>,
    #[serde(default, rename = "table")]
    pub tables: Vec<PostgresTable>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresTable {
    pub name: String,
    #[serde(default)]
    pub categories: Vec<String>,
}

impl Directory {
    pub fn load(path: &Path) -> Result<Directory, DirectoryError> {
        let text = std::fs::read_to_string(path).map_err(|e| DirectoryError {
            path: path.display().to_string(),
            line: 0,
            column: 0,
            message: format!("cannot read the directory file: {e}"),
        })?;
        Self::from_toml(&text, &path.display().to_string())
    }

    /// Parses and checks a directory. `path` names the file in errors.
    pub fn from_toml(text: &str, path: &str) -> Result<Directory, DirectoryError> {
        let place = |offset: usize| {
            let (line, column) = line_col(text, offset);
            Place {
                path: path.to_owned(),
                line,
                column,
            }
        };
        let at = |offset: usize, message: String| place(offset).error(message);
        let mut dir = Directory::default();
        for (base, chunk) in chunks(text) {
            let mut part: Directory = toml::from_str(chunk).map_err(|e| {
                let offset = e.span().map(|s| s.start).unwrap_or(0);
                at(base + offset, e.message().trim().to_owned())
            })?;
            let raw = std::mem::take(&mut part.raw_detectors);
            dir.detectors
                .extend(raw.locate(&|offset| place(base + offset)));
            dir.merge(part, base).map_err(|m| at(base, m))?;
        }

        let mut seen = std::collections::HashSet::new();
        for org in &mut dir.organizations {
            if !seen.insert(org.id.get_ref().clone()) {
                return Err(at(
                    org.base + org.id.span().start,
                    format!(
                        "organization `{}` is declared twice; merge the two entries",
                        org.id.get_ref()
                    ),
                ));
            }
            for n in &org.networks {
                org.nets
                    .push(parse_net(n).map_err(|m| at(org.base + n.span().start, m))?);
            }
            regimes_of(&org.regimes, &at, org.base)?;
        }
        if let Some(n) = &dir.notification {
            regimes_of(&n.regimes, &at, n.base)?;
            for f in n.warn_at.iter().flatten() {
                if !(*f > 0.0 && *f < 1.0) {
                    return Err(at(n.base, format!("[notification] warn_at = {f}: each is a fraction of a clock's time between 0 and 1, e.g. [0.5, 0.75, 0.9]")));
                }
            }
        }
        for r in &dir.detectors {
            if let Some((org, p)) = &r.organization {
                if !seen.contains(org) {
                    return Err(p.error(format!("organization `{org}` is not declared; add an [[organization]] with id = \"{org}\" or fix the name")));
                }
            }
        }
        crate::tuning::check_unique(&dir.detectors)?;
        let known_org = |base: usize, o: &Option<Spanned<String>>| -> Result<(), DirectoryError> {
            match o {
                Some(o) if !seen.contains(o.get_ref()) => Err(at(
                    base + o.span().start,
                    format!("organization `{}` is not declared; add an [[organization]] with id = \"{}\" or fix the name", o.get_ref(), o.get_ref()),
                )),
                _ => Ok(()),
            }
        };
        let mut names = std::collections::HashSet::new();
        for acc in &mut dir.accounts {
            known_org(acc.base, &acc.organization)?;
            if !names.insert(acc.name.get_ref().clone()) {
                return Err(at(
                    acc.base + acc.name.span().start,
                    format!("account `{}` is declared twice", acc.name.get_ref()),
                ));
            }
            if let Some(h) = &acc.hours {
                acc.work_hours = Some(Hours::parse(h.get_ref()).ok_or_else(|| {
                    at(acc.base + h.span().start, format!("hours `{}` is not a daily window; write it as HH:MM-HH:MM, e.g. \"08:00-20:00\"", h.get_ref()))
                })?);
            }
            if let Some(tz) = &acc.timezone {
                acc.tz = Some(tz.get_ref().parse::<Tz>().map_err(|_| {
                    at(acc.base + tz.span().start, format!("timezone `{}` is unknown; use an IANA name such as \"Europe/Stockholm\"", tz.get_ref()))
                })?);
            }
        }
        for svc in &dir.services {
            known_org(svc.base, &svc.organization)?;
            if svc.max_rate_per_minute == 0 {
                return Err(at(svc.base + svc.name.span().start, format!("service `{}` has max_rate_per_minute = 0; give the highest rate it is expected to reach", svc.name.get_ref())));
            }
        }
        for eg in &mut dir.egress_allow {
            for d in &eg.destinations {
                eg.nets
                    .push(parse_net(d).map_err(|m| at(eg.base + d.span().start, m))?);
            }
        }
        for p in &mut dir.policies {
            // Action and scope were checked as they were read.
            p.ttl_ms = crate::decision::ttl_ms(p.ttl.get_ref())
                .map_err(|e| at(p.base + p.ttl.span().start, e.to_string()))?;
        }
        let mut pages = std::collections::HashSet::new();
        for page in &mut dir.pages {
            page.check()
                .map_err(|(offset, m)| at(page.base + offset, m))?;
            if !pages.insert(page.url.get_ref().clone()) {
                return Err(at(
                    page.base + page.url.span().start,
                    format!(
                        "page `{}` is declared twice; merge the two entries",
                        page.url.get_ref()
                    ),
                ));
            }
        }
        if let Some(http) = &dir.http {
            if let Some(acc) = &http.account {
                if acc != "remote_user" && !acc.starts_with("header:") {
                    return Err(at(http.base, format!("[http] account = \"{acc}\" is not understood; use \"remote_user\" or \"header:NAME\"")));
                }
            }
            if let Some(session) = &http.session {
                let named = |p: &str| session.strip_prefix(p).is_some_and(|n| !n.is_empty());
                if !named("cookie:") && !named("field:") {
                    return Err(at(http.base, format!("[http] session = \"{session}\" is not understood; use \"cookie:NAME\" or \"field:NAME\"")));
                }
            }
            for r in &http.routes {
                if !r.pattern.get_ref().starts_with('/') {
                    return Err(at(
                        http.base + r.pattern.span().start,
                        format!(
                            "route pattern `{}` must start with `/`",
                            r.pattern.get_ref()
                        ),
                    ));
                }
            }
        }
        Ok(dir)
    }
}

impl Directory {
    /// Adds a chunk's entries, noting where the chunk starts.
    fn merge(&mut self, mut part: Directory, base: usize) -> Result<(), String> {
        part.organizations.iter_mut().for_each(|x| x.base = base);
        part.accounts.iter_mut().for_each(|x| x.base = base);
        part.services.iter_mut().for_each(|x| x.base = base);
        part.egress_allow.iter_mut().for_each(|x| x.base = base);
        part.policies.iter_mut().for_each(|x| x.base = base);
        part.pages.iter_mut().for_each(|x| x.base = base);
        self.policies.append(&mut part.policies);
        self.pages.append(&mut part.pages);
        self.organizations.append(&mut part.organizations);
        self.accounts.append(&mut part.accounts);
        self.services.append(&mut part.services);
        self.canaries.append(&mut part.canaries);
        self.egress_allow.append(&mut part.egress_allow);
        if let Some(mut http) = part.http {
            if self.http.is_some() {
                return Err("[http] is declared twice; keep one [http] table".into());
            }
            http.base = base;
            self.http = Some(http);
        }
        if let Some(pg) = part.postgres {
            if self.postgres.is_some() {
                return Err("[postgres] is declared twice; keep one [postgres] table".into());
            }
            self.postgres = Some(pg);
        }
        if let Some(mut n) = part.notification {
            if self.notification.is_some() {
                return Err(
                    "[notification] is declared twice; keep one [notification] table".into(),
                );
            }
            n.base = base;
            self.notification = Some(n);
        }
        Ok(())
    }

    /// The notification regimes of a breach attributed to `organization`:
    /// its own, else `[notification]`'s, else GDPR.
    pub fn regimes_for(&self, organization: Option<&str>) -> Vec<crate::notification::Regime> {
        use crate::notification::Regime;
        let parse = |list: &[Spanned<String>]| -> Vec<Regime> {
            list.iter()
                .filter_map(|r| Regime::parse(r.get_ref()))
                .collect()
        };
        let own = organization
            .and_then(|o| self.organizations.iter().find(|x| x.id.get_ref() == o))
            .map(|o| parse(&o.regimes))
            .filter(|r| !r.is_empty());
        own.or_else(|| {
            self.notification
                .as_ref()
                .map(|n| parse(&n.regimes))
                .filter(|r| !r.is_empty())
        })
        .unwrap_or_else(|| vec![Regime::Gdpr])
    }

    /// When to warn as a clock runs: `[notification] warn_at`, or
    /// [`crate::notification::WARN_AT`].
    pub fn warn_at(&self) -> Vec<f64> {
        let mut w = self
            .notification
            .as_ref()
            .and_then(|n| n.warn_at.clone())
            .unwrap_or_else(|| crate::notification::WARN_AT.to_vec());
        w.sort_by(f64::total_cmp);
        w
    }
}

/// Splits a directory into chunks of whole `[[...]]` entries, so that a
/// directory of 100,000 accounts is parsed piece by piece: the TOML
/// parser's document tree is many times the size of the text, and would
/// otherwise set the process's peak memory.
fn chunks(text: &str) -> Vec<(usize, &str)> {
    const CHUNK: usize = 256 * 1024;
    const ENTRIES: [&str; 6] = [
        "[[account]]",
        "[[organization]]",
        "[[service]]",
        "[[canary]]",
        "[[egress_allow]]",
        "[[page]]",
    ];
    let mut out = Vec::new();
    let (mut start, mut offset, mut quotes) = (0usize, 0usize, 0usize);
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        if offset - start >= CHUNK
            && quotes % 2 == 0
            && ENTRIES.iter().any(|e| trimmed.starts_with(e))
        {
            out.push((start, &text[start..offset]));
            start = offset;
        }
        // Multi-line strings could hold a line that looks like a header: never split inside one.
        quotes += line.matches("\"\"\"").count() + line.matches("'''").count();
        offset += line.len();
    }
    out.push((start, &text[start..]));
    out
}

fn parse_net(s: &Spanned<String>) -> Result<IpNet, String> {
    let v = s.get_ref().trim();
    v.parse::<IpNet>()
        .or_else(|_| v.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| format!("`{v}` is not a network; write it in CIDR form, e.g. \"198.51.100.0/28\" or \"2001:db8::/48\""))
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text.as_bytes()[..offset];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let col = offset
        - before
            .iter()
            .rposition(|&b| b == b'\n')
            .map(|p| p + 1)
            .unwrap_or(0)
        + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[[organization]]
id = "reseller-17"
kind = "reseller"
networks = ["198.51.100.0/28", "2001:db8:17::/48"]

[[account]]
name = "r17.anna"
organization = "reseller-17"
role = "sales"
hours = "08:00-20:00"
timezone = "Europe/Stockholm"

[[service]]
name = "svc-billing-sync"
max_rate_per_minute = 600
categories = ["name", "address"]

[[canary]]
customer_id = "C-900001"
contact = ["+46700000001"]

[[egress_allow]]
host = "backup-01"
destinations = ["203.0.113.10"]
"#;

    #[test]
    fn reads_the_documented_example() {
        let d = Directory::from_toml(GOOD, "dir.toml").unwrap();
        assert_eq!(d.organizations[0].nets.len(), 2);
        let a = &d.accounts[0];
        assert_eq!(a.work_hours, Hours::parse("08:00-20:00"));
        assert_eq!(a.tz, Some(chrono_tz::Europe::Stockholm));
        assert_eq!(d.egress_allow[0].nets[0].to_string(), "203.0.113.10/32");
    }

    #[test]
    fn bad_network_names_line_and_fix() {
        let bad = GOOD.replace("198.51.100.0/28", "198.51.100.0/33");
        let e = Directory::from_toml(&bad, "dir.toml").unwrap_err();
        assert_eq!(e.line, 5, "{e}");
        assert!(e.to_string().starts_with("dir.toml:5:"), "{e}");
        assert!(e.message.contains("CIDR"), "{e}");
    }

    #[test]
    fn unknown_organization_and_field_and_timezone_are_located() {
        let bad = GOOD.replace(
            "organization = \"reseller-17\"",
            "organization = \"reseller-71\"",
        );
        let e = Directory::from_toml(&bad, "d").unwrap_err();
        assert_eq!(e.line, 9, "{e}");
        assert!(e.message.contains("reseller-71"));

        let bad = GOOD.replace("role = \"sales\"", "rol = \"sales\"");
        let e = Directory::from_toml(&bad, "d").unwrap_err();
        assert_eq!(e.line, 10, "{e}");
        assert!(e.message.contains("rol"), "{e}");

        let bad = GOOD.replace("Europe/Stockholm", "Europe/Stokholm");
        let e = Directory::from_toml(&bad, "d").unwrap_err();
        assert_eq!(e.line, 12, "{e}");

        let bad = GOOD.replace("08:00-20:00", "8 to 20");
        assert_eq!(Directory::from_toml(&bad, "d").unwrap_err().line, 11);
    }

    #[test]
    fn a_large_directory_is_read_in_chunks_with_lines_still_right() {
        let mut text =
            String::from("[[organization]]\nid = \"shop\"\nnetworks = [\"10.0.0.0/8\"]\n");
        for i in 0..20_000 {
            text += &format!("\n[[account]]\nname = \"a{i}\"\norganization = \"shop\"\n");
        }
        assert!(chunks(&text).len() > 2);
        let d = Directory::from_toml(&text, "big.toml").unwrap();
        assert_eq!(d.accounts.len(), 20_000);
        // A mistake far down is located on its own line.
        let bad = text.replace(
            "name = \"a19000\"\norganization = \"shop\"",
            "name = \"a19000\"\norganization = \"shoq\"",
        );
        let e = Directory::from_toml(&bad, "big.toml").unwrap_err();
        let want = bad.lines().position(|l| l.contains("shoq")).unwrap() + 1;
        assert_eq!((e.line, e.column), (want, 16), "{e}");
        let bad = text.replace("name = \"a15000\"", "name = a15000");
        let want = bad.lines().position(|l| l == "name = a15000").unwrap() + 1;
        assert_eq!(
            Directory::from_toml(&bad, "big.toml").unwrap_err().line,
            want
        );
    }

    #[test]
    fn policies_are_checked_with_their_lines() {
        let text = format!("{GOOD}\n[[policy]]\nrule = \"rate\"\nmin_severity = \"high\"\naction = \"block\"\nttl = \"2h\"\n");
        let d = Directory::from_toml(&text, "d").unwrap();
        assert_eq!(
            (d.policies[0].ttl_ms, *d.policies[0].scope.get_ref()),
            (2 * 3_600_000, crate::decision::Scope::Account)
        );
        let bad = text.replace("\"2h\"", "\"two hours\"");
        let e = Directory::from_toml(&bad, "d").unwrap_err();
        assert_eq!(
            e.line,
            bad.lines().position(|l| l.starts_with("ttl")).unwrap() + 1,
            "{e}"
        );
        let bad = text.replace("\"2h\"", "\"400d\"");
        let e = Directory::from_toml(&bad, "d").unwrap_err();
        assert!(e.message.contains("at most 365 days"), "{e}");
    }

    #[test]
    fn a_policy_with_a_bad_action_or_scope_names_its_file_line_and_the_words_to_use() {
        let text = format!(
            "{GOOD}\n[[policy]]\nmin_severity = \"high\"\naction = \"ban\"\nttl = \"2h\"\n"
        );
        let e = Directory::from_toml(&text, "dir.toml").unwrap_err();
        let want = text.lines().position(|l| l == "action = \"ban\"").unwrap() + 1;
        assert_eq!(
            (e.path.as_str(), e.line, e.column),
            ("dir.toml", want, 10),
            "{e}"
        );
        assert!(
            e.to_string().starts_with(&format!("dir.toml:{want}:10: "))
                && e.message
                    .contains("\"ban\" is not an action; use throttle, step_up or block"),
            "{e}"
        );
        let bad = text.replace("\"ban\"", "\"block\"\nscope = \"user\"");
        let e = Directory::from_toml(&bad, "dir.toml").unwrap_err();
        assert_eq!(e.line, want + 1, "{e}");
        assert!(e.message.contains("use account, ip or organization"), "{e}");
    }

    #[test]
    fn a_web_session_is_named_by_a_cookie_or_a_field_and_nothing_else() {
        for ok in ["cookie:sid", "field:session_id"] {
            let text = format!("[http]\nsession = \"{ok}\"\n");
            let d = Directory::from_toml(&text, "d").unwrap();
            assert_eq!(d.http.unwrap().session.as_deref(), Some(ok));
        }
        for bad in ["cookie:", "header:X-Session", "sid"] {
            let text = format!("[http]\nsession = \"{bad}\"\n");
            let e = Directory::from_toml(&text, "dir.toml").unwrap_err();
            assert!(
                e.message.contains("use \"cookie:NAME\" or \"field:NAME\""),
                "{e}"
            );
            assert_eq!(e.path, "dir.toml");
        }
    }

    #[test]
    fn hours_wrap_midnight() {
        let h = Hours::parse("22:00-06:00").unwrap();
        assert!(h.contains(23 * 60));
        assert!(h.contains(60));
        assert!(!h.contains(12 * 60));
    }

    #[test]
    fn notification_regimes_come_from_the_organisation_or_the_company() {
        use crate::notification::Regime;
        let d = Directory::from_toml(
            "[notification]\nregimes = [\"gdpr\", \"telecom\"]\nwarn_at = [0.9, 0.5]\n\n[[organization]]\nid = \"ops\"\nregimes = [\"nis2\"]\n\n[[organization]]\nid = \"shop\"\n",
            "d",
        )
        .unwrap();
        assert_eq!(d.regimes_for(Some("ops")), [Regime::Nis2]);
        assert_eq!(d.regimes_for(Some("shop")), [Regime::Gdpr, Regime::Telecom]);
        assert_eq!(d.regimes_for(None), [Regime::Gdpr, Regime::Telecom]);
        assert_eq!(d.warn_at(), [0.5, 0.9]);
        let none = Directory::from_toml("", "d").unwrap();
        assert_eq!(none.regimes_for(None), [Regime::Gdpr]);
        assert_eq!(none.warn_at(), crate::notification::WARN_AT);
        let e = Directory::from_toml(
            "[[organization]]\nid = \"ops\"\nregimes = [\"hipaa\"]\n",
            "d",
        )
        .unwrap_err();
        assert_eq!(e.line, 3, "{e}");
        assert!(e.message.contains("use gdpr, telecom or nis2"), "{e}");
        let e = Directory::from_toml("[notification]\nwarn_at = [1.5]\n", "d").unwrap_err();
        assert!(e.message.contains("between 0 and 1"), "{e}");
    }

    #[test]
    fn pages_are_read_with_their_scripts_and_checked() {
        let d = Directory::from_toml(
            "[[page]]\nurl = \"https://shop.example/pay\"\nevery = \"30m\"\nfill = true\ndestinations = [\"https://analytics.example\"]\n\n[[page.step]]\ngoto = \"https://shop.example/login\"\n\n[[page.script]]\nurl = \"https://chat.vendor.example/*\"\njustification = \"chat\"\nmay_change = true\n",
            "d",
        )
        .unwrap();
        let p = &d.pages[0];
        assert_eq!(
            (p.every_ms, p.timeout_ms),
            (1_800_000, crate::page::DEFAULT_TIMEOUT_MS)
        );
        assert!(p.fill);
        assert!(p
            .expected("https://chat.vendor.example/w.js", false)
            .is_some_and(|s| s.may_change));
        assert!(p
            .expected("https://chat.vendor.example/w.js", true)
            .is_none());
        assert!(p.destination_listed("https://analytics.example/px.gif?x=1"));
        assert!(!p.destination_listed("https://analytics.example.evil/px.gif"));
        let with_port = Directory::from_toml(
            "[[page]]\nurl = \"https://shop.example/pay\"\ndestinations = [\"https://Analytics.example:443/\"]\n",
            "d",
        )
        .unwrap();
        assert!(with_port.pages[0].destination_listed("https://analytics.example/px.gif"));
        let e = Directory::from_toml("[[page]]\nurl = \"shop.example/pay\"\n", "d").unwrap_err();
        assert_eq!(e.line, 2, "{e}");
        assert!(e.message.contains("not an http(s) URL"), "{e}");
        let e = Directory::from_toml(
            "[[page]]\nurl = \"https://a.example/\"\ntimeout = \"10m\"\n",
            "d",
        )
        .unwrap_err();
        assert_eq!(e.line, 3, "{e}");
        let e = Directory::from_toml(
            "[[page]]\nurl = \"https://a.example/\"\n[[page.step]]\nfill = \"#u\"\n",
            "d",
        )
        .unwrap_err();
        assert!(e.message.contains("exactly one of value, value_env"), "{e}");
        let e = Directory::from_toml(
            "[[page]]\nurl = \"https://a.example/\"\n[[page]]\nurl = \"https://a.example/\"\n",
            "d",
        )
        .unwrap_err();
        assert!(e.message.contains("declared twice"), "{e}");
    }
}
