//! What each receiver gets (the senders are in [`crate::targets`]).
//!
//! - webhook: the alert line itself (EVENTS.md section 5), `POST` as JSON;
//! - slack: `{"text": ...}` with severity, rule, actor and message;
//! - syslog: RFC 5424 (`<PRI>1 TIME HOST vakt - RULE [vakt@32473 ...] MSG`,
//!   facility authpriv) or CEF (`CEF:0|vakt|vakt|VERSION|RULE|MSG|SEV|ext`).
//!
//! Written by hand: both formats are one line of text with a few escaping
//! rules, and the syslog crates on crates.io format only RFC 3164 or lack CEF.

use vakt_event::{Alert, Severity};

pub fn slack(a: &Alert) -> serde_json::Value {
    let emoji = match a.severity {
        Severity::Critical => ":rotating_light:",
        Severity::High => ":red_circle:",
        Severity::Medium => ":large_orange_circle:",
        Severity::Low => ":white_circle:",
    };
    serde_json::json!({
        "text": format!(
            "{emoji} *{}* `{}` {}{}: {} (incident {}, {} customers)",
            a.severity.as_str(),
            a.rule,
            a.actor.label(),
            a.organization.as_deref().map(|o| format!(" ({o})")).unwrap_or_default(),
            a.message,
            a.id,
            a.customers
        )
    })
}

fn syslog_severity(s: Severity) -> u8 {
    match s {
        Severity::Critical => 2,
        Severity::High => 3,
        Severity::Medium => 4,
        Severity::Low => 5,
    }
}

/// Facility 10 (authpriv): security messages.
const FACILITY: u8 = 10;

/// Control characters (newlines above all) written out as `\n`, `\r`,
/// `\t` or `\u{..}`: a receiver that stores one record per line must never
/// be handed a second, forged record inside a user name or message.
fn escape_controls(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() || c == '\u{2028}' || c == '\u{2029}' => {
                out.push_str(&format!("\\u{{{:x}}}", c as u32))
            }
            c => out.push(c),
        }
    }
    out
}

fn sd_escape(s: &str) -> String {
    escape_controls(
        &s.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace(']', "\\]"),
    )
}

fn one_line(s: &str) -> String {
    escape_controls(s)
}

/// RFC 5424 MSGID: 1 to 32 printable ASCII characters, no space.
fn msg_id(rule: &str) -> String {
    let id: String = rule
        .chars()
        .map(|c| if c.is_ascii_graphic() { c } else { '_' })
        .take(32)
        .collect();
    if id.is_empty() {
        "-".into()
    } else {
        id
    }
}

pub fn rfc5424(a: &Alert, hostname: &str) -> String {
    let mut sd = format!(
        "[vakt@32473 id=\"{}\" severity=\"{}\" customers=\"{}\" status=\"{}\"",
        sd_escape(&a.id),
        a.severity.as_str(),
        a.customers,
        serde_json::to_value(a.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    );
    if let Some(u) = &a.actor.user {
        sd.push_str(&format!(" user=\"{}\"", sd_escape(u)));
    }
    if let Some(h) = &a.actor.host {
        sd.push_str(&format!(" host=\"{}\"", sd_escape(h)));
    }
    if let Some(ip) = &a.actor.ip {
        sd.push_str(&format!(" ip=\"{ip}\""));
    }
    if let Some(o) = &a.organization {
        sd.push_str(&format!(" organization=\"{}\"", sd_escape(o)));
    }
    sd.push(']');
    format!(
        "<{}>1 {} {} vakt - {} {} {}",
        FACILITY * 8 + syslog_severity(a.severity),
        a.timestamp,
        if hostname.is_empty() { "-" } else { hostname },
        msg_id(&a.rule),
        sd,
        one_line(&a.message)
    )
}

fn cef_header(s: &str) -> String {
    one_line(&s.replace('\\', "\\\\").replace('|', "\\|"))
}

fn cef_ext(s: &str) -> String {
    escape_controls(&s.replace('\\', "\\\\").replace('=', "\\="))
}

pub fn cef(a: &Alert) -> String {
    let sev = match a.severity {
        Severity::Critical => 10,
        Severity::High => 8,
        Severity::Medium => 5,
        Severity::Low => 3,
    };
    let mut ext = format!(
        "rt={} cs1Label=incident cs1={} cnt={}",
        a.timestamp.0,
        cef_ext(&a.id),
        a.customers
    );
    if let Some(u) = &a.actor.user {
        ext.push_str(&format!(" suser={}", cef_ext(u)));
    }
    if let Some(h) = &a.actor.host {
        ext.push_str(&format!(" shost={}", cef_ext(h)));
    }
    if let Some(ip) = &a.actor.ip {
        ext.push_str(&format!(" src={ip}"));
    }
    if let Some(o) = &a.organization {
        ext.push_str(&format!(" cs2Label=organization cs2={}", cef_ext(o)));
    }
    format!(
        "CEF:0|vakt|vakt|{}|{}|{}|{sev}|{ext}",
        env!("CARGO_PKG_VERSION"),
        cef_header(&a.rule),
        cef_header(&a.message)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use vakt_event::{Actor, AlertStatus, Timestamp};

    fn alert() -> Alert {
        Alert {
            id: "rate-1a".into(),
            timestamp: Timestamp::parse("2026-11-02T08:00:00Z").unwrap(),
            rule: "rate".into(),
            severity: Severity::High,
            actor: Actor::user("p3.bot"),
            organization: Some("partner|3".into()),
            first_seen: Timestamp(0),
            message: "p3.bot read 4002 customers = 10x its peers; second line".into(),
            evidence: serde_json::Map::new(),
            customers: 4002,
            status: AlertStatus::New,
            updates: 0,
        }
    }

    #[test]
    fn rfc5424_lines_carry_priority_time_rule_and_structured_data() {
        let l = rfc5424(&alert(), "sensor-1");
        assert_eq!(
            l,
            "<83>1 2026-11-02T08:00:00.000Z sensor-1 vakt - rate [vakt@32473 id=\"rate-1a\" severity=\"high\" customers=\"4002\" status=\"new\" user=\"p3.bot\" organization=\"partner|3\"] p3.bot read 4002 customers = 10x its peers; second line"
        );
    }

    #[test]
    fn cef_lines_escape_pipes_in_the_header_and_equals_in_extensions() {
        let l = cef(&alert());
        assert!(l.starts_with("CEF:0|vakt|vakt|"), "{l}");
        assert!(
            l.contains("|rate|p3.bot read 4002 customers = 10x its peers; second line|8|"),
            "{l}"
        );
        assert!(
            l.contains("suser=p3.bot") && l.contains("cs2=partner|3") && l.contains("cnt=4002"),
            "{l}"
        );
        let mut a = alert();
        a.actor = Actor::user("a=b");
        assert!(cef(&a).contains("suser=a\\=b"));
    }

    /// Finding 15: a user name with a newline made a forged second record.
    #[test]
    fn finding_15_newlines_in_user_names_and_messages_cannot_forge_a_record() {
        let mut a = alert();
        let forged = "x\"]\n<83>1 2026-11-02T08:00:00.000Z sensor-1 vakt - rate [vakt@32473 id=\"fake\"] fake";
        a.actor = Actor::user(forged);
        a.rule = "rate\nx".into();
        a.message = format!("{forged}\r\u{2028}\u{0}end");
        for line in [rfc5424(&a, "sensor-1"), cef(&a)] {
            assert!(
                !line.chars().any(|c| c.is_control() || c == '\u{2028}'),
                "{line:?}"
            );
            assert!(
                line.contains("\\n<83>1"),
                "the newline is written out: {line}"
            );
        }
        let l = rfc5424(&a, "sensor-1");
        assert!(l.contains(" vakt - rate_x [vakt@32473 "), "{l}");
        assert!(l.contains("user=\"x\\\"\\]\\n<83>1"), "{l}");
    }

    #[test]
    fn slack_messages_say_severity_rule_actor_and_incident() {
        let t = slack(&alert())["text"].as_str().unwrap().to_owned();
        assert!(
            t.contains("*high*")
                && t.contains("`rate`")
                && t.contains("p3.bot (partner|3)")
                && t.contains("rate-1a"),
            "{t}"
        );
    }
}
