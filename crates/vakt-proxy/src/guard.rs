//! Which decision applies to a request, now.
//!
//! Decisions live in the data directory's ledger database; the guard
//! re-reads those in force every `refresh` (half a second by default), so
//! a decision made by a policy, `vakt decisions add` or the API reaches
//! every proxy within a second without a restart. With the entries in
//! PostgreSQL, decisions are every node's and the guard also re-reads as
//! soon as one is announced (`vakt_ledger::shared`). The strongest decision
//! wins: block, then step-up (unless the account proved a TOTP code within
//! `step_up_for`), then throttle (a token bucket of `throttle_per_minute`
//! requests per decision and subject).
//!
//! Subjects are accounts and addresses a client chooses, so the tables
//! kept per subject (throttle buckets, accounts that stepped up) hold at
//! most `table_capacity` entries (100,000) and evict the least recently
//! used in O(1) (`vakt_limit`). A throttled subject is touched by each of
//! its requests and so stays; a flood must bring more new subjects than
//! the capacity between two of its requests to make the guard forget it,
//! and then it only regains its allowance. An evicted step-up asks for a
//! code again.

use crate::Result;
use ipnet::IpNet;
use lru::LruCache;
use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};
use vakt_event::Directory;
use vakt_ledger::decisions::{Action, Decision, Scope};
use vakt_ledger::{DataDir, Ledger};
use vakt_limit::Buckets;

#[derive(Clone, Debug)]
pub struct GuardConfig {
    /// Requests a throttled subject may make per minute.
    pub throttle_per_minute: u32,
    /// How long a correct TOTP code satisfies a step-up decision.
    pub step_up_for: Duration,
    /// How often decisions are re-read from the data directory.
    pub refresh: Duration,
    /// Whom a blocked user should contact, said in the refusal.
    pub contact: String,
    /// Subjects remembered per table (throttle buckets, stepped-up
    /// accounts); past it the least recently seen is forgotten.
    pub table_capacity: usize,
}

impl Default for GuardConfig {
    fn default() -> Self {
        GuardConfig {
            throttle_per_minute: 6,
            step_up_for: Duration::from_secs(15 * 60),
            refresh: Duration::from_millis(500),
            contact: "your security team".into(),
            table_capacity: 100_000,
        }
    }
}

/// What to do with one request.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    Pass,
    /// Over a throttle's allowance: retry after `wait`.
    Throttle {
        decision: Decision,
        wait: Duration,
    },
    /// Prove a TOTP code for the account first.
    StepUp(Decision),
    Block(Decision),
}

pub struct Guard {
    data: DataDir,
    config: GuardConfig,
    active: RwLock<Arc<Vec<Decision>>>,
    /// Account -> organisation, and organisations' networks, from the directory.
    organization_of: HashMap<String, String>,
    networks: Vec<(IpNet, String)>,
    /// (decision, subject) -> tokens; bounded, least recently used evicted.
    buckets: Mutex<Buckets<(String, String)>>,
    /// Account -> until when its step-up holds; bounded the same way.
    stepped_up: Mutex<LruCache<String, Instant>>,
}

impl Guard {
    /// Reads the decisions in force now and keeps them fresh in a
    /// background thread for as long as the guard lives.
    pub fn start(data: DataDir, directory: &Directory, config: GuardConfig) -> Result<Arc<Guard>> {
        let organization_of = directory
            .accounts
            .iter()
            .filter_map(|a| {
                a.organization
                    .as_ref()
                    .map(|o| (a.name.get_ref().clone(), o.get_ref().clone()))
            })
            .collect();
        let networks = directory
            .organizations
            .iter()
            .flat_map(|o| o.nets.iter().map(|n| (*n, o.id.get_ref().clone())))
            .collect();
        let capacity = NonZeroUsize::new(config.table_capacity).unwrap_or(NonZeroUsize::MIN);
        let per_minute = config.throttle_per_minute.max(1);
        let guard = Arc::new(Guard {
            data,
            config,
            active: RwLock::new(Arc::new(Vec::new())),
            organization_of,
            networks,
            buckets: Mutex::new(Buckets::new(per_minute, per_minute, capacity)),
            stepped_up: Mutex::new(LruCache::new(capacity)),
        });
        Ledger::open(&guard.data)?.close()?;
        let reader = Ledger::open_read(&guard.data)?;
        guard.refresh(&reader)?;
        let weak: Weak<Guard> = Arc::downgrade(&guard);
        let every = guard.config.refresh;
        std::thread::Builder::new()
            .name("vakt-guard".into())
            .spawn(move || loop {
                // Woken early when another node announces a decision.
                if let Err(e) = reader.wait_for_decisions(every) {
                    tracing::warn!("cannot wait for decisions: {e}");
                    std::thread::sleep(every);
                }
                let Some(g) = weak.upgrade() else { return };
                if let Err(e) = g.refresh(&reader) {
                    tracing::warn!("cannot re-read decisions: {e}");
                }
            })
            .map_err(crate::io_err("cannot start the decision refresher"))?;
        Ok(guard)
    }

    fn refresh(&self, reader: &Ledger) -> Result<()> {
        let list = reader.decisions(Some(vakt_event::Timestamp::now()))?;
        *self.active.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(list);
        Ok(())
    }

    pub fn config(&self) -> &GuardConfig {
        &self.config
    }

    /// The decisions in force, as last read.
    pub fn active(&self) -> Arc<Vec<Decision>> {
        self.active
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The organisation an account belongs to, else the one owning the address.
    pub fn organization(&self, account: Option<&str>, ip: Option<IpAddr>) -> Option<&str> {
        account
            .and_then(|a| self.organization_of.get(a))
            .or_else(|| {
                let ip = ip?.to_canonical();
                self.networks
                    .iter()
                    .find(|(n, _)| n.contains(&ip))
                    .map(|(_, o)| o)
            })
            .map(String::as_str)
    }

    /// The verdict for a request by `account` (when known) from `ip`; a
    /// throttle takes one request from the subject's allowance.
    pub fn verdict(&self, account: Option<&str>, ip: Option<IpAddr>) -> Verdict {
        self.judge(account, ip, true)
    }

    /// The verdict without spending a throttle allowance, for what reads
    /// nothing itself (a PostgreSQL `Parse`): blocks and step-ups hold,
    /// throttles pass.
    pub fn verdict_without_spending(&self, account: Option<&str>, ip: Option<IpAddr>) -> Verdict {
        self.judge(account, ip, false)
    }

    fn judge(&self, account: Option<&str>, ip: Option<IpAddr>, spend: bool) -> Verdict {
        let active = self.active();
        if active.is_empty() {
            return Verdict::Pass;
        }
        let t = vakt_event::Timestamp::now();
        // A client seen by a proxy on `[::]` as `::ffff:192.0.2.7` is 192.0.2.7.
        let ip = ip.map(|i| i.to_canonical());
        let org = self.organization(account, ip);
        let applies = |d: &&Decision| {
            d.created <= t
                && d.expires > t
                && match d.scope {
                    Scope::Account => account == Some(d.value.as_str()),
                    Scope::Ip => ip.is_some_and(|i| d.covers(i)),
                    Scope::Organization => org == Some(d.value.as_str()),
                }
        };
        let strength = |d: &&Decision| match d.action {
            Action::Block => 0,
            Action::StepUp => 1,
            Action::Throttle => 2,
        };
        let mut found: Vec<&Decision> = active.iter().filter(applies).collect();
        found.sort_by_key(strength);
        for d in found {
            match d.action {
                Action::Block => return Verdict::Block(d.clone()),
                Action::StepUp => {
                    if !account.is_some_and(|a| self.has_stepped_up(a)) {
                        return Verdict::StepUp(d.clone());
                    }
                }
                Action::Throttle if !spend => {}
                Action::Throttle => {
                    let subject = account
                        .map(str::to_owned)
                        .or_else(|| ip.map(|i| i.to_string()))
                        .unwrap_or_default();
                    if let Some(wait) = self.take_token(&d.id, subject) {
                        return Verdict::Throttle {
                            decision: d.clone(),
                            wait,
                        };
                    }
                }
            }
        }
        Verdict::Pass
    }

    /// Takes one request from the subject's bucket; `Some(wait)` when empty.
    fn take_token(&self, decision: &str, subject: String) -> Option<Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        buckets
            .take((decision.to_owned(), subject), Instant::now())
            .err()
    }

    fn has_stepped_up(&self, account: &str) -> bool {
        self.stepped_up
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(account)
            .is_some_and(|until| *until > Instant::now())
    }

    /// Checks a TOTP code for the account against its enrolled secret; a
    /// correct code satisfies step-up decisions for `step_up_for`.
    pub fn verify_totp(&self, account: &str, code: &str) -> Result<bool> {
        let secret = Ledger::open_read(&self.data)?.totp_secret(account)?;
        let Some(secret) = secret else {
            return Ok(false);
        };
        if !totp_matches(&secret, code) {
            return Ok(false);
        }
        self.mark_stepped_up(account);
        Ok(true)
    }

    fn mark_stepped_up(&self, account: &str) {
        self.stepped_up
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .put(account.to_owned(), Instant::now() + self.config.step_up_for);
    }

    /// Entries in the throttle and the step-up tables.
    pub fn table_sizes(&self) -> (usize, usize) {
        let buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let stepped = self.stepped_up.lock().unwrap_or_else(|p| p.into_inner());
        (buckets.len(), stepped.len())
    }
}

/// A fresh base32 secret of 160 bits, as authenticator apps take it.
pub fn new_totp_secret() -> String {
    totp_rs::Secret::generate_secret().to_encoded().to_string()
}

fn totp_for(secret: &str, account: &str) -> Option<totp_rs::TOTP> {
    let bytes = totp_rs::Secret::Encoded(secret.to_owned())
        .to_bytes()
        .ok()?;
    totp_rs::TOTP::new(
        totp_rs::Algorithm::SHA1,
        6,
        1,
        30,
        bytes,
        Some("vakt".into()),
        account.to_owned(),
    )
    .ok()
}

/// The `otpauth://` URI to enrol the secret in an authenticator app.
pub fn totp_uri(secret: &str, account: &str) -> Option<String> {
    Some(totp_for(secret, account)?.get_url())
}

/// The current code for a secret (for enrolment checks and tests).
pub fn totp_code(secret: &str) -> Option<String> {
    totp_for(secret, "x")?.generate_current().ok()
}

/// Whether `code` is valid now (one step of clock skew either way).
fn totp_matches(secret: &str, code: &str) -> bool {
    let code = code.trim();
    code.len() == 6 && totp_for(secret, "x").is_some_and(|t| t.check_current(code).unwrap_or(false))
}

#[cfg(test)]
mod tests {
    use super::*;
    use vakt_event::Timestamp;

    fn setup(decisions: &[(&str, &str, &str)]) -> (tempfile::TempDir, Arc<Guard>) {
        setup_with(decisions, 100_000)
    }

    fn setup_with(
        decisions: &[(&str, &str, &str)],
        table_capacity: usize,
    ) -> (tempfile::TempDir, Arc<Guard>) {
        let tmp = tempfile::tempdir().unwrap();
        let data = DataDir {
            path: tmp.path().join("data"),
        };
        let mut l = Ledger::open(&data).unwrap();
        let t = vakt_event::Timestamp::now();
        for (i, (scope, value, action)) in decisions.iter().enumerate() {
            l.put_decision(
                &Decision::new(
                    format!("d{i}"),
                    scope.parse().unwrap(),
                    value,
                    action.parse().unwrap(),
                    "test".into(),
                    Timestamp(t.0 - 1000),
                    61_000,
                )
                .unwrap(),
            )
            .unwrap();
        }
        l.set_totp_secret("anna", "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP", t)
            .unwrap();
        l.close().unwrap();
        let dir = Directory::from_toml(
            "[[organization]]\nid = \"partner-3\"\nnetworks = [\"10.3.0.0/16\"]\n\n[[account]]\nname = \"p3.anna\"\norganization = \"partner-3\"\n",
            "d",
        )
        .unwrap();
        let g = Guard::start(
            data,
            &dir,
            GuardConfig {
                throttle_per_minute: 2,
                table_capacity,
                ..Default::default()
            },
        )
        .unwrap();
        (tmp, g)
    }

    #[test]
    fn the_strongest_decision_for_account_address_or_organisation_wins() {
        let (_t, g) = setup(&[
            ("account", "bot", "throttle"),
            ("account", "bot", "block"),
            ("ip", "192.0.2.7", "step_up"),
            ("organization", "partner-3", "block"),
        ]);
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        assert!(
            matches!(g.verdict(Some("bot"), ip("192.0.2.1")), Verdict::Block(d) if d.id == "d1")
        );
        assert!(matches!(
            g.verdict(Some("eve"), ip("192.0.2.7")),
            Verdict::StepUp(_)
        ));
        // The organisation by account, and by network for an unknown account.
        assert!(
            matches!(g.verdict(Some("p3.anna"), ip("192.0.2.1")), Verdict::Block(d) if d.id == "d3")
        );
        assert!(matches!(g.verdict(None, ip("10.3.4.5")), Verdict::Block(_)));
        assert_eq!(g.verdict(Some("erik"), ip("192.0.2.1")), Verdict::Pass);
    }

    #[test]
    fn finding_3_an_address_block_holds_however_the_address_is_written_or_seen() {
        let (_t, g) = setup(&[
            ("ip", "0:0:0:0:0:0:0:1", "block"),
            ("ip", "127.0.0.1", "block"),
            ("ip", "192.0.2.0/24", "block"),
        ]);
        let verdict = |s: &str| g.verdict(None, Some(s.parse().unwrap()));
        assert!(matches!(verdict("::1"), Verdict::Block(d) if d.id == "d0"));
        // A proxy listening on [::] sees IPv4 clients in mapped form.
        assert!(matches!(verdict("::ffff:127.0.0.1"), Verdict::Block(d) if d.id == "d1"));
        assert!(matches!(verdict("127.0.0.1"), Verdict::Block(d) if d.id == "d1"));
        assert!(matches!(verdict("192.0.2.7"), Verdict::Block(d) if d.id == "d2"));
        assert!(matches!(verdict("::ffff:192.0.2.7"), Verdict::Block(d) if d.id == "d2"));
        // The neighbouring network, and other spellings that are other addresses.
        for other in [
            "192.0.3.7",
            "192.0.1.255",
            "127.0.0.2",
            "::2",
            "::127.0.0.1",
        ] {
            assert_eq!(verdict(other), Verdict::Pass, "{other}");
        }
    }

    #[test]
    fn a_throttle_lets_the_allowance_through_then_says_how_long_to_wait() {
        let (_t, g) = setup(&[("account", "bot", "throttle")]);
        assert_eq!(g.verdict(Some("bot"), None), Verdict::Pass);
        assert_eq!(g.verdict(Some("bot"), None), Verdict::Pass);
        match g.verdict(Some("bot"), None) {
            Verdict::Throttle { wait, .. } => {
                assert!(wait > Duration::from_secs(20) && wait <= Duration::from_secs(30))
            }
            v => panic!("expected a throttle, got {v:?}"),
        }
        // Another account is not affected.
        assert_eq!(g.verdict(Some("erik"), None), Verdict::Pass);
    }

    #[test]
    fn asking_without_spending_leaves_the_allowance_and_still_blocks() {
        let (_t, g) = setup(&[("account", "bot", "throttle"), ("account", "eve", "block")]);
        for _ in 0..10 {
            assert_eq!(g.verdict_without_spending(Some("bot"), None), Verdict::Pass);
        }
        assert_eq!(g.verdict(Some("bot"), None), Verdict::Pass);
        assert_eq!(g.verdict(Some("bot"), None), Verdict::Pass);
        assert!(matches!(
            g.verdict(Some("bot"), None),
            Verdict::Throttle { .. }
        ));
        assert!(matches!(
            g.verdict_without_spending(Some("eve"), None),
            Verdict::Block(_)
        ));
    }

    #[test]
    fn a_correct_totp_code_satisfies_step_up_and_a_wrong_one_does_not() {
        let (_t, g) = setup(&[("account", "anna", "step_up")]);
        assert!(matches!(g.verdict(Some("anna"), None), Verdict::StepUp(_)));
        let code = totp_code("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP").unwrap();
        let wrong = format!(
            "{:06}",
            (code.parse::<u32>().unwrap() + 500_000) % 1_000_000
        );
        assert!(!g.verify_totp("anna", &wrong).unwrap());
        assert!(!g.verify_totp("anna", "12345").unwrap());
        assert!(!g.verify_totp("nobody", "123456").unwrap());
        assert!(matches!(g.verdict(Some("anna"), None), Verdict::StepUp(_)));
        assert!(g.verify_totp("anna", &code).unwrap());
        assert_eq!(g.verdict(Some("anna"), None), Verdict::Pass);
    }

    #[test]
    fn finding_11_throttle_table_stays_bounded_under_a_flood() {
        // One decision covers a whole network: every address is a subject.
        let (_t, g) = setup_with(&[("ip", "10.0.0.0/8", "throttle")], 1000);
        let attacker = Some("10.9.9.9".parse::<IpAddr>().unwrap());
        assert_eq!(g.verdict(None, attacker), Verdict::Pass);
        assert_eq!(g.verdict(None, attacker), Verdict::Pass);
        for i in 0..20_000u32 {
            let ip = IpAddr::from([10, (i >> 16) as u8, (i >> 8) as u8, i as u8]);
            assert_eq!(g.verdict(None, Some(ip)), Verdict::Pass);
            if i % 200 == 0 {
                // The active key keeps asking, and stays throttled.
                assert!(
                    matches!(g.verdict(None, attacker), Verdict::Throttle { .. }),
                    "at {i}"
                );
            }
        }
        assert!(g.table_sizes().0 <= 1000, "{:?}", g.table_sizes());
    }

    #[test]
    fn finding_11_step_up_table_stays_bounded_under_a_flood() {
        let (_t, g) = setup_with(&[("account", "anna", "step_up")], 1000);
        g.mark_stepped_up("anna");
        for i in 0..20_000u32 {
            g.mark_stepped_up(&format!("flood-{i}"));
            if i % 200 == 0 {
                assert_eq!(g.verdict(Some("anna"), None), Verdict::Pass, "at {i}");
            }
        }
        assert!(g.table_sizes().1 <= 1000, "{:?}", g.table_sizes());
    }

    #[test]
    fn decisions_made_elsewhere_apply_within_a_second() {
        let (_t, g) = setup(&[]);
        assert_eq!(g.verdict(Some("bot"), None), Verdict::Pass);
        let mut l = Ledger::open(&g.data).unwrap();
        let t = vakt_event::Timestamp::now();
        let d = Decision::new(
            "late".into(),
            Scope::Account,
            "bot",
            Action::Block,
            "by hand".into(),
            t,
            60_000,
        );
        l.put_decision(&d.unwrap()).unwrap();
        l.close().unwrap();
        let start = Instant::now();
        while g.verdict(Some("bot"), None) == Verdict::Pass {
            assert!(
                start.elapsed() < Duration::from_secs(1),
                "not seen within a second"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
