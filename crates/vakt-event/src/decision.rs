//! Decisions (EVENTS.md section 6): throttle, step up or block an account,
//! address or organisation for a while.
//!
//! A decision is built in one place, [`Decision::new`], whatever made it (a
//! `[[policy]]`, the API, the console, the command line): the value is
//! checked and kept in one canonical form, so that enforcement compares like
//! with like. An `ip` value is an address or a CIDR network; IPv4-mapped IPv6
//! (`::ffff:192.0.2.7`) is kept as IPv4 and IPv6 in its shortest form
//! (`0:0:0:0:0:0:0:1` is `::1`), because a proxy listening on `[::]` sees
//! IPv4 clients in mapped form.

use crate::time::{human_duration, Timestamp, DAY};
use ipnet::{IpNet, Ipv4Net};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// The longest value kept, in bytes.
pub const MAX_VALUE_BYTES: usize = 256;
/// The longest a decision may last when made; extend it when it runs out.
pub const MAX_TTL_MS: i64 = 365 * DAY;

/// What a decision applies to.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "&'static str")]
pub enum Scope {
    Account,
    Ip,
    Organization,
}

/// What a decision does to the requests it applies to.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "&'static str")]
pub enum Action {
    Throttle,
    StepUp,
    Block,
}

/// A decision that could not be made; the message says what to write instead.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecisionError {
    #[error("`scope` \"{}\" is not a scope; use account, ip or organization", shown(.0))]
    Scope(String),
    #[error("`action` \"{}\" is not an action; use throttle, step_up or block", shown(.0))]
    Action(String),
    #[error("`value` is empty; give the account name, address or organisation id")]
    EmptyValue,
    #[error("`value` is {0} bytes long; give at most {MAX_VALUE_BYTES}")]
    LongValue(usize),
    #[error("`value` \"{}\" holds a control character; give it as printed, on one line", shown(.0))]
    ControlInValue(String),
    #[error("`value` \"{}\" is not an IP address or network; write e.g. 198.51.100.7, 2001:db8::7 or 192.0.2.0/24", shown(.0))]
    NotIp(String),
    #[error("`ttl` \"{}\" is not a duration; write e.g. 90s, 10m, 1h or 7d", shown(.0))]
    NotTtl(String),
    #[error("`ttl` {0} is out of bounds; a decision lasts more than 0 s and at most 365 days (extend it when it runs out)")]
    TtlBounds(String),
}

/// At most 64 characters of what was given, escaped, for messages.
fn shown(s: &str) -> String {
    let cut: String = s.chars().take(64).collect();
    let more = if cut.len() < s.len() { "…" } else { "" };
    format!("{}{more}", cut.escape_debug())
}

impl Scope {
    pub const ALL: [Scope; 3] = [Scope::Account, Scope::Ip, Scope::Organization];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Account => "account",
            Scope::Ip => "ip",
            Scope::Organization => "organization",
        }
    }
}

impl Action {
    pub const ALL: [Action; 3] = [Action::Throttle, Action::StepUp, Action::Block];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Throttle => "throttle",
            Action::StepUp => "step_up",
            Action::Block => "block",
        }
    }
}

impl FromStr for Scope {
    type Err = DecisionError;
    fn from_str(s: &str) -> Result<Self, DecisionError> {
        Scope::ALL
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| DecisionError::Scope(s.to_owned()))
    }
}

impl FromStr for Action {
    type Err = DecisionError;
    fn from_str(s: &str) -> Result<Self, DecisionError> {
        Action::ALL
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| DecisionError::Action(s.to_owned()))
    }
}

impl TryFrom<String> for Scope {
    type Error = DecisionError;
    fn try_from(s: String) -> Result<Self, DecisionError> {
        s.parse()
    }
}

impl TryFrom<String> for Action {
    type Error = DecisionError;
    fn try_from(s: String) -> Result<Self, DecisionError> {
        s.parse()
    }
}

impl From<Scope> for &'static str {
    fn from(s: Scope) -> Self {
        s.as_str()
    }
}

impl From<Action> for &'static str {
    fn from(a: Action) -> Self {
        a.as_str()
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// A time to live as people write it (`90s`, `10m`, `1h`, `7d`), in
/// milliseconds, within the bounds a decision may last.
pub fn ttl_ms(text: &str) -> Result<i64, DecisionError> {
    let ms =
        crate::directory::parse_ttl(text).ok_or_else(|| DecisionError::NotTtl(text.to_owned()))?;
    check_ttl(ms).map_err(|_| DecisionError::TtlBounds(format!("\"{}\"", shown(text.trim()))))
}

fn check_ttl(ms: i64) -> Result<i64, DecisionError> {
    if ms > 0 && ms <= MAX_TTL_MS {
        Ok(ms)
    } else if ms > 0 {
        Err(DecisionError::TtlBounds(human_duration(ms)))
    } else {
        Err(DecisionError::TtlBounds(format!("{ms} ms")))
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub id: String,
    pub scope: Scope,
    /// The account name, organisation id, or address or network, in
    /// canonical form (`::1`, `192.0.2.7`, `192.0.2.0/24`).
    pub value: String,
    pub action: Action,
    /// The rule and alert that caused it, or who made it by hand.
    pub reason: String,
    pub created: Timestamp,
    pub expires: Timestamp,
    /// The parsed value of an `ip` decision.
    #[serde(skip)]
    network: Option<IpNet>,
}

impl Decision {
    /// The one way to make a decision: checks the value (not empty, at most
    /// [`MAX_VALUE_BYTES`], no control characters, an address or network
    /// for the `ip` scope, kept canonical) and that it lasts more than zero
    /// and at most [`MAX_TTL_MS`].
    pub fn new(
        id: String,
        scope: Scope,
        value: &str,
        action: Action,
        reason: String,
        created: Timestamp,
        ttl_ms: i64,
    ) -> Result<Decision, DecisionError> {
        let ttl_ms = check_ttl(ttl_ms)?;
        Self::checked(
            id,
            scope,
            value,
            action,
            reason,
            created,
            created.saturating_add(ttl_ms),
        )
    }

    /// A decision made by hand now-ish, with an id naming it:
    /// `manual-<scope>-<canonical value>-<created ms>`.
    pub fn manual(
        scope: Scope,
        value: &str,
        action: Action,
        reason: String,
        created: Timestamp,
        ttl_ms: i64,
    ) -> Result<Decision, DecisionError> {
        let mut d = Self::new(String::new(), scope, value, action, reason, created, ttl_ms)?;
        d.id = format!("manual-{scope}-{}-{}", d.value, created.0);
        Ok(d)
    }

    /// A decision as stored (text columns), checked again because the store
    /// may have been edited by hand. The lifetime is not bounded: an
    /// extended decision may outlast [`MAX_TTL_MS`] from its creation.
    pub fn stored(
        id: String,
        scope: &str,
        value: &str,
        action: &str,
        reason: String,
        created: Timestamp,
        expires: Timestamp,
    ) -> Result<Decision, DecisionError> {
        Self::checked(
            id,
            scope.parse()?,
            value,
            action.parse()?,
            reason,
            created,
            expires,
        )
    }

    fn checked(
        id: String,
        scope: Scope,
        value: &str,
        action: Action,
        reason: String,
        created: Timestamp,
        expires: Timestamp,
    ) -> Result<Decision, DecisionError> {
        let value = value.trim();
        if value.is_empty() {
            return Err(DecisionError::EmptyValue);
        }
        if value.len() > MAX_VALUE_BYTES {
            return Err(DecisionError::LongValue(value.len()));
        }
        if value.chars().any(char::is_control) {
            return Err(DecisionError::ControlInValue(value.to_owned()));
        }
        let (value, network) = match scope {
            Scope::Account | Scope::Organization => (value.to_owned(), None),
            Scope::Ip => {
                let net =
                    parse_network(value).ok_or_else(|| DecisionError::NotIp(value.to_owned()))?;
                (network_text(net), Some(net))
            }
        };
        Ok(Decision {
            id,
            scope,
            value,
            action,
            reason,
            created,
            expires,
            network,
        })
    }

    /// The address or network of an `ip` decision.
    pub fn network(&self) -> Option<IpNet> {
        self.network
    }

    /// Whether an `ip` decision covers `ip` (compared unmapped, so a client
    /// seen as `::ffff:192.0.2.7` is `192.0.2.7`).
    pub fn covers(&self, ip: IpAddr) -> bool {
        self.network.is_some_and(|n| n.contains(&ip.to_canonical()))
    }
}

/// An address (as a one-address network) or a CIDR network, IPv4-mapped
/// ones unmapped and host bits cleared.
fn parse_network(value: &str) -> Option<IpNet> {
    let net = match value.parse::<IpAddr>() {
        Ok(a) => IpNet::from(a.to_canonical()),
        Err(_) => value.parse::<IpNet>().ok()?,
    };
    let net = match net {
        IpNet::V6(n) if n.prefix_len() >= 96 => match n.addr().to_ipv4_mapped() {
            Some(v4) => Ipv4Net::new(v4, n.prefix_len() - 96).map_or(net, IpNet::V4),
            None => net,
        },
        _ => net,
    };
    Some(net.trunc())
}

/// A single address without a prefix; a network as `addr/len`.
fn network_text(net: IpNet) -> String {
    if net.prefix_len() == net.max_prefix_len() {
        net.addr().to_string()
    } else {
        net.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Timestamp = Timestamp(1_793_000_000_000);

    fn ip(value: &str) -> Result<Decision, DecisionError> {
        Decision::new(
            "d".into(),
            Scope::Ip,
            value,
            Action::Block,
            "r".into(),
            T,
            60_000,
        )
    }

    #[test]
    fn addresses_are_kept_in_one_canonical_form() {
        for (given, kept) in [
            ("0:0:0:0:0:0:0:1", "::1"),
            ("::ffff:127.0.0.1", "127.0.0.1"),
            ("::FFFF:7F00:1", "127.0.0.1"),
            (" 192.0.2.7 ", "192.0.2.7"),
            ("2001:DB8:0:0::7", "2001:db8::7"),
            ("192.0.2.7/32", "192.0.2.7"),
            ("192.0.2.7/24", "192.0.2.0/24"),
            ("2001:db8::1/32", "2001:db8::/32"),
            ("::ffff:192.0.2.0/120", "192.0.2.0/24"),
        ] {
            assert_eq!(ip(given).unwrap().value, kept, "{given}");
        }
    }

    #[test]
    fn finding_3_an_ip_decision_covers_mapped_clients_and_every_address_of_its_network() {
        let any = |s: &str| s.parse::<IpAddr>().unwrap();
        let d = ip("127.0.0.1").unwrap();
        assert!(d.covers(any("127.0.0.1")) && d.covers(any("::ffff:127.0.0.1")));
        assert!(!d.covers(any("127.0.0.2")));
        let d = ip("192.0.2.0/24").unwrap();
        assert!(d.covers(any("192.0.2.7")) && d.covers(any("::ffff:192.0.2.255")));
        assert!(!d.covers(any("192.0.3.7")) && !d.covers(any("2001:db8::7")));
        let d = ip("0:0:0:0:0:0:0:1").unwrap();
        assert!(d.covers(any("::1")) && !d.covers(any("127.0.0.1")));
    }

    #[test]
    fn bad_values_are_refused_with_what_to_write() {
        for (scope, value, says) in [
            (Scope::Ip, "host-1", "not an IP address or network"),
            (Scope::Ip, "192.0.2.0/33", "not an IP address or network"),
            (Scope::Ip, "fe80::1%eth0", "not an IP address or network"),
            (Scope::Account, "  ", "`value` is empty"),
            (Scope::Organization, &"x".repeat(257), "257 bytes long"),
            (Scope::Account, "bob\nadmin", "control character"),
            (Scope::Account, "bob\u{7}", "control character"),
        ] {
            let e = Decision::new("d".into(), scope, value, Action::Throttle, "r".into(), T, 1)
                .unwrap_err();
            assert!(e.to_string().contains(says), "{value:?}: {e}");
        }
        let long_ok = "ä".repeat(128);
        let d = Decision::new(
            "d".into(),
            Scope::Account,
            &long_ok,
            Action::Block,
            "r".into(),
            T,
            1,
        );
        assert_eq!(d.unwrap().value, long_ok);
    }

    #[test]
    fn a_decision_lasts_more_than_nothing_and_at_most_a_year() {
        let make = |ms| {
            Decision::new(
                "d".into(),
                Scope::Account,
                "a",
                Action::Block,
                "r".into(),
                T,
                ms,
            )
        };
        assert_eq!(make(MAX_TTL_MS).unwrap().expires.0, T.0 + MAX_TTL_MS);
        for ms in [0, -1, MAX_TTL_MS + 1, i64::MAX] {
            let e = make(ms).unwrap_err();
            assert!(e.to_string().contains("at most 365 days"), "{ms}: {e}");
        }
        assert_eq!(ttl_ms("1h"), Ok(3_600_000));
        assert!(ttl_ms("366d")
            .unwrap_err()
            .to_string()
            .contains("\"366d\" is out of bounds"));
        assert!(ttl_ms("soon")
            .unwrap_err()
            .to_string()
            .contains("is not a duration"));
    }

    #[test]
    fn scopes_and_actions_read_and_write_the_words_of_events_md() {
        for s in Scope::ALL {
            assert_eq!(s.as_str().parse::<Scope>(), Ok(s));
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{s}\""));
        }
        for a in Action::ALL {
            assert_eq!(a.as_str().parse::<Action>(), Ok(a));
            assert_eq!(
                serde_json::from_str::<Action>(&format!("\"{a}\"")).unwrap(),
                a
            );
        }
        assert_eq!(Action::StepUp.as_str(), "step_up");
        let e = "Block".parse::<Action>().unwrap_err().to_string();
        assert!(e.contains("use throttle, step_up or block"), "{e}");
        let e = serde_json::from_str::<Scope>("\"user\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("use account, ip or organization"), "{e}");
        assert_eq!(format!("{:<8}|", Action::Block), "block   |");
    }

    #[test]
    fn manual_decisions_are_named_by_their_canonical_value() {
        let d = Decision::manual(
            Scope::Ip,
            "::ffff:10.0.0.1",
            Action::Block,
            "r".into(),
            T,
            1,
        )
        .unwrap();
        assert_eq!(d.id, format!("manual-ip-10.0.0.1-{}", T.0));
        let json = serde_json::to_value(&d).unwrap();
        assert_eq!(
            (
                json["scope"].as_str(),
                json["value"].as_str(),
                json["action"].as_str()
            ),
            (Some("ip"), Some("10.0.0.1"), Some("block"))
        );
        assert!(json.get("network").is_none());
    }

    #[test]
    fn a_stored_row_is_checked_again() {
        let row = |scope: &str, value: &str, action: &str| {
            Decision::stored(
                "d".into(),
                scope,
                value,
                action,
                "r".into(),
                T,
                T.saturating_add(2 * MAX_TTL_MS),
            )
        };
        assert_eq!(row("ip", "0:0:0:0:0:0:0:1", "block").unwrap().value, "::1");
        assert!(row("ip", "nowhere", "block").is_err());
        assert!(row("user", "a", "block").is_err());
        assert!(row("account", "a", "ban").is_err());
    }
}
