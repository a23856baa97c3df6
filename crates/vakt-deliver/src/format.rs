//! What each receiver gets, and the senders.
//!
//! - webhook: the alert line itself (EVENTS.md section 5), `POST` as JSON;
//! - slack: `{"text": ...}` with severity, rule, actor and message;
//! - syslog: RFC 5424 (`<PRI>1 TIME HOST vakt - RULE [vakt@32473 ...] MSG`,
//!   facility authpriv) or CEF (`CEF:0|vakt|vakt|VERSION|RULE|MSG|SEV|ext`),
//!   over UDP (one datagram per alert) or TCP (octet-counted framing, RFC 6587).
//!
//! Written by hand: both formats are one line of text with a few escaping
//! rules, and the syslog crates on crates.io format only RFC 3164 or lack CEF.

use crate::config::{Target, TargetKind};
use std::io::Write;
use std::net::{TcpStream, UdpSocket};
use std::time::Duration;
use vakt_event::{Alert, Severity};

const TIMEOUT: Duration = Duration::from_secs(10);

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

fn sd_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace(']', "\\]")
}

fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
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
        a.rule.replace(' ', "_"),
        sd,
        one_line(&a.message)
    )
}

fn cef_header(s: &str) -> String {
    one_line(&s.replace('\\', "\\\\").replace('|', "\\|"))
}

fn cef_ext(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('=', "\\=")
        .replace('\n', "\\n")
        .replace('\r', "\\r")
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

/// Sends to one target, keeping a TCP connection open between alerts.
pub(crate) struct Sender {
    kind: TargetKind,
    hostname: String,
    tcp: Option<TcpStream>,
    agent: ureq::Agent,
}

impl Sender {
    pub(crate) fn new(t: &Target) -> Sender {
        Sender {
            kind: t.kind.clone(),
            hostname: std::fs::read_to_string("/etc/hostname")
                .map(|h| h.trim().to_owned())
                .unwrap_or_default(),
            tcp: None,
            agent: ureq::Agent::config_builder()
                .timeout_global(Some(TIMEOUT))
                .build()
                .into(),
        }
    }

    pub(crate) fn send(&mut self, a: &Alert) -> Result<(), String> {
        match &self.kind.clone() {
            TargetKind::Webhook { url } => {
                self.post(url, &serde_json::to_value(a).map_err(|e| e.to_string())?)
            }
            TargetKind::Slack { url } => self.post(url, &slack(a)),
            TargetKind::Syslog {
                tcp,
                address,
                cef: as_cef,
            } => {
                let line = if *as_cef {
                    cef(a)
                } else {
                    rfc5424(a, &self.hostname)
                };
                if *tcp {
                    self.send_tcp(address, &line)
                } else {
                    let sock = UdpSocket::bind(if address.starts_with('[') {
                        "[::]:0"
                    } else {
                        "0.0.0.0:0"
                    })
                    .map_err(|e| e.to_string())?;
                    sock.send_to(line.as_bytes(), address.as_str())
                        .map(|_| ())
                        .map_err(|e| format!("udp {address}: {e}"))
                }
            }
        }
    }

    fn post(&self, url: &str, body: &serde_json::Value) -> Result<(), String> {
        match self.agent.post(url).send_json(body) {
            Ok(_) => Ok(()),
            Err(ureq::Error::StatusCode(code)) => Err(format!("{url} answered {code}")),
            Err(e) => Err(format!("{url}: {e}")),
        }
    }

    fn send_tcp(&mut self, address: &str, line: &str) -> Result<(), String> {
        let framed = format!("{} {line}", line.len());
        if self.tcp.is_none() {
            let s = TcpStream::connect(address).map_err(|e| format!("tcp {address}: {e}"))?;
            let _ = s.set_write_timeout(Some(TIMEOUT));
            self.tcp = Some(s);
        }
        let r = self
            .tcp
            .as_mut()
            .expect("connected above")
            .write_all(framed.as_bytes());
        r.map_err(|e| {
            self.tcp = None; // reconnect next time
            format!("tcp {address}: {e}")
        })
    }
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
            message: "p3.bot read 4002 customers = 10x its peers\nsecond line".into(),
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
            "<83>1 2026-11-02T08:00:00.000Z sensor-1 vakt - rate [vakt@32473 id=\"rate-1a\" severity=\"high\" customers=\"4002\" status=\"new\" user=\"p3.bot\" organization=\"partner|3\"] p3.bot read 4002 customers = 10x its peers second line"
        );
    }

    #[test]
    fn cef_lines_escape_pipes_in_the_header_and_equals_in_extensions() {
        let l = cef(&alert());
        assert!(l.starts_with("CEF:0|vakt|vakt|"), "{l}");
        assert!(
            l.contains("|rate|p3.bot read 4002 customers = 10x its peers second line|8|"),
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
