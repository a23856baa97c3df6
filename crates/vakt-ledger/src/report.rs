//! A draft breach notification for one incident: what GDPR Art. 33(3)
//! asks for, a timeline, the scope table, and the signed checkpoint that
//! vouches for the figures.

use crate::keys::hex;
use crate::ledger::Ledger;
use crate::scope::AccountScope;
use crate::{LedgerError, Result};
use rusqlite::OptionalExtension;
use std::collections::BTreeMap;
use vakt_event::event::category_weight;
use vakt_event::notification::{clocks, Regime};
use vakt_event::{Alert, Timestamp};

pub struct Report {
    pub alert: Alert,
    pub detected: Timestamp,
    pub scope: Option<AccountScope>,
    /// The checkpoint at or after the incident's last entry: (entry, hash).
    pub checkpoint: Option<(i64, String)>,
    /// The incident the alert belongs to, with what people recorded
    /// about it (the breach marking and its notifications).
    pub incident: Option<crate::incidents::Incident>,
    /// What people did about the incident (its audit records), oldest
    /// first: the record of handling that goes with the notification.
    pub handling: Vec<crate::audit::AuditRecord>,
    /// The notification regimes whose deadlines the draft states; the
    /// caller sets them from the directory ([`vakt_event::Directory::regimes_for`]).
    pub regimes: Vec<Regime>,
}

pub fn draft(l: &Ledger, id: &str) -> Result<Report> {
    let row = l.alert_row(id)?.map(|a| (a.line, a.detected.0));
    let Some((line, detected)) = row else {
        return Err(LedgerError::Invalid(format!(
            "no alert {id} in this ledger; alerts are recorded by `vakt watch --data`"
        )));
    };
    let alert: Alert = serde_json::from_str(&line)
        .map_err(|e| LedgerError::Invalid(format!("alert {id} is stored damaged: {e}")))?;
    let scope = match &alert.actor.user {
        Some(user) => {
            let (_, first, last) = l.alert_window(id)?;
            Some(l.scope_account(user, first, last, None)?)
        }
        None => None,
    };
    let last_seq: Option<i64> = match (&scope, &alert.actor.user) {
        (Some(_), Some(user)) => match l.account_id(user)? {
            Some(account) => {
                let mut last = None;
                l.entries()?
                    .account(account as u64, i64::MIN, alert.timestamp.0, &mut |row| {
                        last = Some(row.seq as i64);
                        Ok(())
                    })?;
                last
            }
            None => None,
        },
        _ => None,
    };
    let incident = l.find_incident(id)?;
    let checkpoint = match last_seq {
        Some(seq) => {
            let r = l
                .conn
                .query_row(
                    "SELECT seq, hash FROM checkpoints WHERE seq >= ?1 ORDER BY seq LIMIT 1",
                    [seq],
                    |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)),
                )
                .optional();
            l.db(r)?.map(|(s, h)| (s, hex(&h)))
        }
        None => None,
    };
    Ok(Report {
        alert,
        detected: Timestamp(detected),
        scope,
        checkpoint,
        handling: match &incident {
            Some(inc) => l.audit_records(Some(&inc.id), 1_000)?,
            None => Vec::new(),
        },
        incident,
        regimes: vec![Regime::Gdpr],
    })
}

/// A JSON value as a person reads it: text without quotes, null as "none".
pub fn plain(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "none".into(),
        v => v.to_string(),
    }
}

/// Text for a Markdown table cell: on one line, without column breaks.
fn cell(s: &str) -> String {
    s.replace(['\n', '\r'], " ").replace('|', "\\|")
}

/// Thousands separated by commas, as figures in a letter are.
fn figure(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn consequences(categories: &[&str]) -> Vec<&'static str> {
    let mut out = Vec::new();
    let has = |c: &str| categories.contains(&c);
    if has("national_id") || has("driver_license") {
        out.push("identity theft and fraud in the data subjects' names (national id or driver's licence numbers)");
    }
    if has("payment_card") {
        out.push("payment fraud with the exposed cards");
    }
    if has("password") {
        out.push("account takeover where passwords are reused");
    }
    if has("phone") || has("email") {
        out.push("targeted scam calls, SMS and phishing that quote the data subjects' details");
    }
    if has("address") || has("name") {
        out.push("unwanted marketing and social engineering using names and addresses");
    }
    if out.is_empty() {
        out.push("to be assessed from the categories involved");
    }
    out
}

impl Report {
    /// The draft in Markdown. `remediation` is what to do about the
    /// incident's rule, from the detector that declares it
    /// (`vakt_detect::detectors::info(rule)`): the caller passes it because
    /// the ledger does not depend on the detectors, and an alert stored
    /// before a rule changed its advice gets today's advice, not a copy
    /// carried on every alert line. `None` (an unknown rule) gives a
    /// general measure.
    pub fn markdown(&self, remediation: Option<&str>) -> String {
        let a = &self.alert;
        let mut s = String::new();
        let actor = a.actor.label();
        s += &format!("# Personal data breach notification (draft)\n\nIncident `{}`, rule `{}`, severity {}, actor `{}`{}.\n\n", a.id, a.rule, a.severity.as_str(), actor, a.organization.as_deref().map(|o| format!(" of `{o}`")).unwrap_or_default());
        s += &format!("> {}\n\n", a.message);
        s += "## 1. Nature of the breach (Art. 33(3)(a))\n\n";
        match &self.scope {
            Some(sc) => {
                s += &format!(
                    "Customer records were read through the account `{}` between {} and {}: {} accesses from {} source address(es).\n\n",
                    sc.account,
                    sc.customers.iter().map(|c| c.first).min().unwrap_or(sc.since),
                    sc.customers.iter().map(|c| c.last).max().unwrap_or(sc.until),
                    sc.accesses,
                    sc.source_ips.len()
                );
                let named = sc.customers.len() as u64;
                let (fewest, most) = (named + sc.unlisted_largest, named + sc.unlisted_records);
                let subjects = if fewest < most {
                    format!("{} to {}", figure(fewest), figure(most))
                } else {
                    figure(most)
                };
                let how = match (named, sc.unlisted_records) {
                    (_, 0) => String::new(),
                    (0, u) if sc.unlisted_largest < u => format!(" (approximate: the reads named no customers; the largest returned {} records and all of them {}, each record taken for one data subject)", figure(sc.unlisted_largest), figure(u)),
                    (0, u) => format!(" (approximate: the reads named no customers; the {} records they returned are each taken for one data subject)", figure(u)),
                    (n, u) => format!(" (approximate: {} named customers, plus {} records returned by exports or searches that name no customers, each taken for one data subject)", figure(n), figure(u)),
                };
                s += &format!("- Approximate number of data subjects: **{subjects}**{how}\n");
                let named_reads: u64 = sc.customers.iter().map(|c| c.reads).sum();
                s += &format!(
                    "- Approximate number of records: **{}**\n",
                    figure(named_reads + sc.unlisted_records)
                );
                s += "- Categories of personal data:\n";
                let mut per: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
                for (c, n) in &sc.by_category {
                    per.entry(c).or_default().0 = *n;
                }
                for (c, n) in &sc.unlisted_by_category {
                    per.entry(c).or_default().1 = *n;
                }
                let mut by: Vec<(&str, (u64, u64))> = per.into_iter().collect();
                by.sort_by_key(|(c, _)| std::cmp::Reverse(category_weight(c)));
                if by.is_empty() {
                    s += "  - none named by the events: _to be established_\n";
                }
                for (c, (n, u)) in &by {
                    if *u > 0 {
                        s += &format!(
                            "  - {c}: up to {} data subjects (approximate)\n",
                            figure(n + u)
                        );
                    } else {
                        s += &format!("  - {c}: {} data subjects\n", figure(*n));
                    }
                }
                let cats: Vec<&str> = by.iter().map(|(c, _)| *c).collect();
                s += "\n## 2. Likely consequences (Art. 33(3)(c))\n\n";
                for c in consequences(&cats) {
                    s += &format!("- {c}\n");
                }
                s += "\n## Scope\n\n| source address | accesses |\n|---|---|\n";
                let mut ips: Vec<_> = sc.source_ips.iter().collect();
                ips.sort_by(|x, y| y.1.cmp(x.1));
                for (ip, n) in ips.iter().take(20) {
                    s += &format!("| {ip} | {n} |\n");
                }
                s += &format!(
                    "\nThe notification list (customer id, categories, first and last exposure) comes from `vakt scope --alert {}` with `--out list.csv`.\n",
                    a.id
                );
            }
            None => {
                s += &format!(
                    "The actor is the host `{actor}`: the evidence is outbound traffic, not reads of customer records. Which customers' data the traffic carried must be established from the host's own access (`vakt scope --account` for the accounts used on it).\n\n## 2. Likely consequences (Art. 33(3)(c))\n\n- to be assessed once the data carried is known\n"
                );
            }
        }
        s += "\n## 3. Contact point (Art. 33(3)(b))\n\nData protection officer: _name, email, phone_.\n";
        s += "\n## 4. Measures taken or proposed (Art. 33(3)(d))\n\n";
        let measure = remediation.unwrap_or("contain the actor's access and review its activity");
        s += &format!("- Proposed: {measure}.\n- Notify the data subjects if the risk to them is high (Art. 34).\n");
        s += &self.awareness();
        s += "\n## Timeline\n\n| | event time |\n|---|---|\n";
        s += &format!("| first seen | {} |\n| detected | {} |\n| last activity | {} |\n| contained | _not yet recorded_ |\n", a.first_seen, self.detected, a.timestamp);
        if !self.handling.is_empty() {
            s += "\n## Record of handling\n\n| when | who | via | what |\n|---|---|---|---|\n";
            for r in &self.handling {
                let mut what: Vec<String> = r
                    .details
                    .get("changes")
                    .and_then(|c| c.as_object())
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| format!("{k}: {} → {}", plain(&v[0]), plain(&v[1])))
                            .collect()
                    })
                    .unwrap_or_default();
                if let Some(n) = r.details.get("note") {
                    what.push(format!("note: {}", plain(n)));
                }
                s += &format!(
                    "| {} | {} | {} | {} |\n",
                    r.at,
                    cell(&r.who),
                    r.via,
                    cell(&what.join("; "))
                );
            }
        }
        s += "\n## Integrity\n\n";
        match &self.checkpoint {
            Some((seq, hash)) => s += &format!("These figures come from the access ledger. Its signed checkpoint at entry {seq} vouches for every entry up to it: chain hash `{hash}`. `vakt ledger verify` checks the chain and the signature.\n"),
            None => s += "No ledger checkpoint covers this incident's entries yet.\n",
        }
        s
    }
}

impl Report {
    /// When the company became aware, each notification deadline of the
    /// regimes and whether it was met, and the reasons for any delay
    /// (Art. 33(1)).
    fn awareness(&self) -> String {
        let mut s = String::from("\n## Awareness and notification deadlines\n\n");
        let Some(breach) = self
            .incident
            .as_ref()
            .and_then(|i| i.workflow.breach.as_ref())
        else {
            s += "The incident is not yet marked a personal-data breach, so no awareness time is recorded: the deadlines run from when the company became aware. Mark it in the console or with `PATCH /v1/incidents/{id}` (`\"breach\": true`).\n";
            return s;
        };
        s += &format!(
            "The company became aware of the breach at {}{}.\n\n| notification | due | made |\n|---|---|---|\n",
            breach.aware_at,
            breach
                .aware_reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        );
        let done = |step: &str| breach.notified.get(step).copied();
        let now = Timestamp::now();
        let all = clocks(&self.regimes, breach.aware_at, &done, now);
        for c in &all {
            let made = match c.done {
                Some(t) if c.overdue() => format!("{t}, late"),
                Some(t) => t.to_string(),
                None if c.overdue() => "_not yet: overdue_".into(),
                None => "_not yet_".into(),
            };
            s += &format!("| {} | {} | {made} |\n", c.title, c.due);
        }
        if all.iter().any(|c| c.overdue()) {
            s += &format!(
                "\nReasons for the delay: {}\n",
                breach.delay_reason.as_deref().unwrap_or(
                    "_to be given: a notification made after its deadline must say why_"
                )
            );
        }
        s
    }
}

/// Escapes text for HTML content and attribute values.
pub fn escape_html(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// A minimal Markdown-to-HTML rendering for the draft: headings, lists,
/// tables, paragraphs; everything escaped.
/// The body of [`to_html`]'s page, to put inside another page.
pub fn to_html_body(md: &str) -> String {
    let html = to_html(md);
    html.split_once("<body>")
        .map(|(_, b)| b)
        .unwrap_or(&html)
        .split("</body>")
        .next()
        .unwrap_or_default()
        .to_owned()
}

pub fn to_html(md: &str) -> String {
    let esc = escape_html;
    let inline = |s: &str| {
        let mut out = String::new();
        let (mut bold, mut code) = (false, false);
        let e = esc(s);
        let mut chars = e.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '*' if chars.peek() == Some(&'*') => {
                    chars.next();
                    out += if bold { "</strong>" } else { "<strong>" };
                    bold = !bold;
                }
                '`' => {
                    out += if code { "</code>" } else { "<code>" };
                    code = !code;
                }
                c => out.push(c),
            }
        }
        out
    };
    let mut html = String::from("<!doctype html><html><head><meta charset=\"utf-8\"><title>Breach notification draft</title><style>body{font-family:system-ui,sans-serif;max-width:56rem;margin:2rem auto;padding:0 1rem;line-height:1.5}table{border-collapse:collapse}td,th{border:1px solid #999;padding:.2rem .6rem}code{background:#eee;padding:0 .2rem}</style></head><body>\n");
    let mut in_list = false;
    let mut in_table = false;
    for line in md.lines() {
        let t = line.trim_start();
        if !t.starts_with("- ") && in_list {
            html += "</ul>\n";
            in_list = false;
        }
        if !t.starts_with('|') && in_table {
            html += "</table>\n";
            in_table = false;
        }
        if let Some(h) = t.strip_prefix("## ") {
            html += &format!("<h2>{}</h2>\n", inline(h));
        } else if let Some(h) = t.strip_prefix("# ") {
            html += &format!("<h1>{}</h1>\n", inline(h));
        } else if let Some(q) = t.strip_prefix("> ") {
            html += &format!("<blockquote>{}</blockquote>\n", inline(q));
        } else if let Some(item) = t.strip_prefix("- ") {
            if !in_list {
                html += "<ul>\n";
                in_list = true;
            }
            html += &format!("<li>{}</li>\n", inline(item));
        } else if t.starts_with('|') {
            if t.starts_with("|---") {
                continue;
            }
            if !in_table {
                html += "<table>\n";
                in_table = true;
            }
            let cells: Vec<String> = t
                .trim_matches('|')
                .split('|')
                .map(|c| format!("<td>{}</td>", inline(c.trim())))
                .collect();
            html += &format!("<tr>{}</tr>\n", cells.join(""));
        } else if !t.is_empty() {
            html += &format!("<p>{}</p>\n", inline(t));
        }
    }
    if in_list {
        html += "</ul>\n";
    }
    if in_table {
        html += "</table>\n";
    }
    html + "</body></html>"
}
