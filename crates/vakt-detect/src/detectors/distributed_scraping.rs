//! `distributed_scraping`: web clients that each stay small but together
//! sweep the customer space.
//!
//! For S1 when the bot is spread out: a scraper that rotates addresses (or
//! accounts) keeps every one of them under `rate`, `enumeration` and
//! `web_behaviour`'s minimum. What gives it away is the group: clients in
//! one network, or clients that all read records the same cold way (no
//! sign-in, no page they came from), active in the same hour, that
//! between them read many customers and almost never the same one twice.
//!
//! - A client (the account, else the address plus the user agent) is
//!   *cold* once it has read `min_member_records` record pages in the hour,
//!   at least 80% of them without arriving from a page (no referrer), and
//!   has not signed in. Cold clients join their groups for the hour: their
//!   network (/24 for IPv4, /48 for IPv6), their autonomous system when a
//!   GeoIP ASN database is given, and the fingerprint group of all cold
//!   readers.
//! - Thresholds: a group with `min_members` clients, `min_customers`
//!   distinct customers in the hour (and `usual_factor` times the group's
//!   busiest ordinary hour, so the honest cold readers of a large site are
//!   its own baseline) and at least `min_distinct_share` of its
//!   reads on distinct customers (people come back to the same customers;
//!   a sweep does not) is `medium`; `high_factor` times the customers is
//!   `high`. Not judged where cold reading is the site's usual way (a site
//!   whose clients are all API scripts): half or more of the clients that
//!   read `min_member_records` records in an hour over the last week were
//!   cold (until a week holds 20 of them: half of this hour's reads). A
//!   week, so that a sweep's own hours, or a night when only the sweep
//!   reads, do not make cold usual.
//! - State: per client and hour about 40 bytes (at most `max_clients`, least
//!   recently seen forgotten), per group and hour a member list (at most 64
//!   kept by name) and a HyperLogLog of customers (at most `max_groups`);
//!   per hour of the week two counts (2 KiB).
//! - Blind spots: in [`INFO`] (`vakt detectors` shows them).

use crate::detector::{reference, Detector, DetectorInfo, Finding, Network, WebClient};
use crate::params::{Param, Settings, Values};
use crate::state::{lru, Distinct, Lru};
use serde_json::{json, Map};
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use vakt_enrich::snapshot::{self, LruState, SnapshotError};
use vakt_enrich::Enriched;
use vakt_event::directory::AccountKind;
use vakt_event::time::HOUR;
use vakt_event::{Action, Actor, Event, Outcome, Severity, Timestamp};

pub const INFO: DetectorInfo = DetectorInfo {
    id: "distributed_scraping",
    title: "web clients that each stay small but together sweep the customer space",
    incidents: &["S1"],
    remediation: "block the group's networks or addresses and require sign-in for record pages; check which customers the group covered (scope)",
    blind_spots: "clients that sign in, send referrers and revisit customers look like people; a sweep spread over more hours than one, or over networks and fingerprints that never meet in one hour, is not grouped; shared by design: a group alert names its members, not one actor",
    params: PARAMS,
    per_organization: false,
};

pub const PARAMS: &[Param] = &[
    Param::count("min_members", 3.0, "cold clients in one group and hour"),
    Param::count(
        "min_customers",
        150.0,
        "distinct customers the group read in the hour",
    ),
    Param::share(
        "min_distinct_share",
        0.9,
        "share of the group's reads that were of distinct customers",
    ),
    Param::count(
        "min_member_records",
        3.0,
        "record pages a client reads in the hour before it can be cold",
    ),
    Param::number(
        "usual_factor",
        4.0,
        "times the group's busiest ordinary hour its customers must also exceed",
    ),
    Param::number("high_factor", 4.0, "times the threshold for `high`"),
    Param::count(
        "max_clients",
        200_000.0,
        "clients tracked at once; the least recently seen is forgotten",
    ),
    Param::count(
        "max_groups",
        20_000.0,
        "groups tracked at once; the least recently seen is forgotten",
    ),
];

struct Limits {
    min_members: usize,
    min_customers: f64,
    min_distinct_share: f64,
    min_member_records: u32,
    usual_factor: f64,
    high_factor: f64,
}

impl Limits {
    fn new(v: &Values) -> Limits {
        Limits {
            min_members: v.get("min_members") as usize,
            min_customers: v.get("min_customers"),
            min_distinct_share: v.get("min_distinct_share"),
            min_member_records: v.get("min_member_records").min(u32::MAX as f64) as u32,
            usual_factor: v.get("usual_factor"),
            high_factor: v.get("high_factor"),
        }
    }
}

fn capacity(v: &Values, name: &str) -> usize {
    v.get(name).clamp(1.0, 10_000_000.0) as usize
}

pub(crate) fn build(s: &Settings) -> Box<dyn Detector> {
    Box::new(DistributedScraping {
        limits: Limits::new(&s.global),
        clients: lru(capacity(&s.global, "max_clients")),
        groups: lru(capacity(&s.global, "max_groups")),
        population: Population::default(),
        group_name: String::new(),
    })
}

/// Members kept by name per group; more are counted, not named.
const NAMED_MEMBERS: usize = 64;

#[derive(Default, serde::Serialize, serde::Deserialize)]
struct Client {
    hour: i64,
    records: u32,
    cold: u32,
    signed_in: bool,
}

impl Client {
    fn is_cold(&self, min_records: u32) -> bool {
        !self.signed_in && self.records >= min_records && self.cold * 5 >= self.records * 4
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Group {
    hour: i64,
    what: String,
    members: Vec<(String, u32)>,
    more_members: u32,
    customers: Distinct,
    reads: u32,
    first_seen: Timestamp,
    reported: Option<Severity>,
    /// The group's busiest quiet hour so far (decaying): on a large site
    /// honest cold readers together cover many customers every hour.
    usual: f32,
}

impl Group {
    fn new(hour: i64, what: String, now: Timestamp) -> Group {
        Group {
            hour,
            what,
            members: Vec::new(),
            more_members: 0,
            customers: Distinct::new(),
            reads: 0,
            first_seen: now,
            reported: None,
            usual: 0.0,
        }
    }

    /// Starts `hour`, learning from the hour that ended unless it was a sweep.
    fn roll(&mut self, hour: i64, now: Timestamp) {
        let learned = if self.reported.is_some() {
            self.usual
        } else {
            (self.usual * 0.98).max(self.customers.estimate() as f32)
        };
        *self = Group::new(hour, std::mem::take(&mut self.what), now);
        self.usual = learned;
    }

    fn member_count(&self) -> usize {
        self.members.len() + self.more_members as usize
    }
}

/// Whether reading cold is the site's usual way, so that cold groups mean
/// nothing: judged on the clients that read `min_member_records` records
/// in an hour over the last week (how many of them were cold), once the
/// week holds `MIN_HISTORY` of them; before that, on the record reads of
/// the current hour (or the previous one). A week, so that a sweep's own
/// hours (or a night when only the sweep reads) cannot make cold usual.
#[derive(Default, serde::Serialize, serde::Deserialize)]
struct Population {
    hour: i64,
    records: u64,
    cold: u64,
    last_share: Option<f64>,
    /// Per hour of the week (by `hour % 168`): that hour, its reading
    /// clients and the cold ones among them.
    week: Vec<(i64, u32, u32)>,
    /// The week's reading clients and cold ones, before the current hour.
    history: (u64, u64),
}

/// Reading clients a week must hold before it decides.
const MIN_HISTORY: u64 = 20;
const WEEK_HOURS: i64 = 168;

impl Population {
    fn add(&mut self, hour: i64, cold: bool) {
        if hour != self.hour {
            if self.records > 0 {
                self.last_share = Some(self.cold as f64 / self.records as f64);
            }
            self.hour = hour;
            self.records = 0;
            self.cold = 0;
            self.history = self
                .week
                .iter()
                .filter(|(h, _, _)| *h < hour && hour.saturating_sub(*h) <= WEEK_HOURS)
                .fold((0, 0), |(r, c), (_, readers, cold)| {
                    (r + *readers as u64, c + *cold as u64)
                });
        }
        self.records += 1;
        self.cold += cold as u64;
    }

    /// A client read its `min_member_records`-th record this hour.
    fn reader(&mut self, hour: i64, cold: bool) {
        if self.week.is_empty() {
            self.week = vec![(i64::MIN, 0, 0); WEEK_HOURS as usize];
        }
        let slot = &mut self.week[hour.rem_euclid(WEEK_HOURS) as usize];
        if slot.0 != hour {
            *slot = (hour, 0, 0);
        }
        slot.1 += 1;
        slot.2 += cold as u32;
    }

    /// Whether cold reads are unusual: under half of the week's reading
    /// clients were cold (or, without a week, of this hour's reads).
    fn cold_is_unusual(&self) -> bool {
        let (readers, cold) = self.history;
        if readers >= MIN_HISTORY {
            return (cold as f64 / readers as f64) < 0.5;
        }
        let now = (self.records >= 100).then(|| self.cold as f64 / self.records as f64);
        now.or(self.last_share).is_some_and(|s| s < 0.5)
    }
}

fn hash64(s: &str) -> u64 {
    let mut h = rustc_hash::FxHasher::default();
    s.hash(&mut h);
    h.finish()
}

pub struct DistributedScraping {
    limits: Limits,
    clients: Lru<u64, Client>,
    groups: Lru<u64, Group>,
    population: Population,
    /// Scratch for a group's name, so a read allocates nothing.
    group_name: String,
}

/// The kinds of group a cold client joins; a group's key is the hash of
/// its name with its kind.
const COLD: u64 = 0;
const NETWORK: u64 = 1;
const AUTONOMOUS_SYSTEM: u64 = 2;

/// Writes the name of the group of `kind` a read falls in, as alerts show
/// it; false if the read has none (no address, no ASN).
fn write_group_name(out: &mut String, kind: u64, ip: Option<IpAddr>, asn: Option<u32>) -> bool {
    out.clear();
    match (kind, ip, asn) {
        (COLD, _, _) => out.push_str("cold readers (no sign-in, no referring page)"),
        (NETWORK, Some(ip), _) => {
            let _ = write!(out, "network {}", Network(ip));
        }
        (AUTONOMOUS_SYSTEM, _, Some(asn)) => {
            let _ = write!(out, "AS{asn}");
        }
        _ => return false,
    }
    true
}

impl Detector for DistributedScraping {
    fn info(&self) -> &'static DetectorInfo {
        &INFO
    }

    fn observe(&mut self, ev: &Enriched, out: &mut Vec<Finding>) {
        let Event::Access(a) = ev.event else { return };
        if a.http_method.is_none() || matches!(ev.kind(), AccountKind::Service | AccountKind::Batch)
        {
            return;
        }
        let now = a.timestamp;
        let hour = now.0.div_euclid(HOUR);
        let web = WebClient::of(ev, a);
        let lim = &self.limits;
        let client = self.clients.get_or_insert_mut(web.key(), Client::default);
        if client.hour != hour {
            *client = Client {
                hour,
                // A sign-in lasts past the hour it happened in.
                signed_in: client.signed_in,
                ..Client::default()
            };
        }
        if a.action == Action::Login && a.outcome == Outcome::Success {
            client.signed_in = true;
        }
        if !a.action.reads_data() || a.customer_ids.is_empty() {
            return;
        }
        client.records += 1;
        let cold_read = a.referrer.is_none();
        client.cold += cold_read as u32;
        self.population.add(hour, cold_read && !client.signed_in);
        if client.records == lim.min_member_records.max(1) {
            self.population
                .reader(hour, client.is_cold(lim.min_member_records));
        }
        if !client.is_cold(lim.min_member_records) {
            return;
        }
        // Groups learn their usual hour always; they are judged only where
        // cold reads are unusual.
        let judged = self.population.cold_is_unusual();
        let member_reads = client.records;
        let asn = ev.geo.as_ref().and_then(|g| g.asn);
        for kind in [COLD, NETWORK, AUTONOMOUS_SYSTEM] {
            // Written into one reused buffer; a group copies its name only
            // when it is new, so a read allocates nothing.
            let what = &mut self.group_name;
            if !write_group_name(what, kind, a.source_ip, asn) {
                continue;
            }
            let key = hash64(what) ^ kind;
            let g = self
                .groups
                .get_or_insert_mut(key, || Group::new(hour, what.clone(), now));
            if g.hour != hour {
                g.roll(hour, now);
            }
            let named = g.members.len();
            match g.members.iter_mut().find(|(m, _)| web.is_named(m)) {
                Some(m) => m.1 = member_reads,
                None if named < NAMED_MEMBERS => g.members.push((web.name(), member_reads)),
                None => g.more_members += 1,
            }
            g.reads += a.customer_ids.len() as u32;
            for c in &a.customer_ids {
                g.customers.insert(c.as_str());
            }
            let customers = g.customers.estimate() as f64;
            let distinct_share = customers / g.reads.max(1) as f64;
            let threshold = lim.min_customers.max(lim.usual_factor * g.usual as f64);
            if !judged
                || g.member_count() < lim.min_members
                || customers < threshold
                || distinct_share < lim.min_distinct_share
            {
                continue;
            }
            let severity = if customers >= threshold * lim.high_factor {
                Severity::High
            } else {
                Severity::Medium
            };
            if g.reported.is_some_and(|r| r >= severity) {
                continue;
            }
            g.reported = Some(severity);
            let mut members = g.members.clone();
            members.sort_by_key(|m| std::cmp::Reverse(m.1));
            let mut evidence = Map::new();
            evidence.insert("group".into(), json!(g.what));
            evidence.insert("members".into(), json!(g.member_count()));
            evidence.insert(
                "member_reads".into(),
                json!(members
                    .iter()
                    .take(20)
                    .map(|(m, n)| json!({"client": m, "record_pages": n}))
                    .collect::<Vec<_>>()),
            );
            evidence.insert("observed_customers".into(), json!(customers.round()));
            evidence.insert("observed_reads".into(), json!(g.reads));
            evidence.insert(
                "observed_distinct_share".into(),
                json!((distinct_share.min(1.0) * 100.0).round() / 100.0),
            );
            evidence.insert("threshold_customers".into(), json!(threshold.round()));
            evidence.insert(
                "baseline_usual_hour_customers".into(),
                json!(g.usual.round()),
            );
            evidence.insert("threshold_members".into(), json!(lim.min_members));
            evidence.insert("window".into(), json!("hour"));
            evidence.insert("event".into(), json!(reference(ev)));
            out.push(Finding {
                rule: INFO.id,
                key: g.what.clone(),
                actor: Actor {
                    user: Some(format!("{} clients in {}", g.member_count(), g.what)),
                    host: None,
                    ip: None,
                },
                organization: None,
                severity,
                at: now,
                first_seen: g.first_seen,
                message: format!(
                    "{} clients in {} read {:.0} distinct customers in an hour ({:.0}% of their reads on customers not read before), none of them signed in or came from a page; each stays small, together they sweep: {}",
                    g.member_count(),
                    g.what,
                    customers,
                    distinct_share.min(1.0) * 100.0,
                    members
                        .iter()
                        .take(5)
                        .map(|(m, n)| format!("{m} ({n})"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                evidence,
                customers: customers as u64,
            });
        }
    }

    fn evict(&mut self, horizon: Timestamp) {
        let hour = horizon.0.div_euclid(HOUR);
        while self.clients.peek_lru().is_some_and(|(_, c)| c.hour < hour) {
            self.clients.pop_lru();
        }
        while self.groups.peek_lru().is_some_and(|(_, g)| g.hour < hour) {
            self.groups.pop_lru();
        }
    }

    fn save(&self) -> Result<Vec<u8>, SnapshotError> {
        snapshot::save(&(
            snapshot::LruRef(&self.clients),
            snapshot::LruRef(&self.groups),
            &self.population,
        ))
    }

    fn restore(&mut self, state: &[u8]) -> Result<(), SnapshotError> {
        let (clients, groups, population): (
            LruState<u64, Client>,
            LruState<u64, Group>,
            Population,
        ) = snapshot::load(state)?;
        clients.restore_into(&mut self.clients);
        groups.restore_into(&mut self.groups);
        self.population = population;
        Ok(())
    }

    fn tracked_keys(&self) -> usize {
        self.clients.len() + self.groups.len()
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::*;
    use vakt_event::time::{HOUR, SECOND};
    use vakt_event::{AccessEvent, Action, HttpMethod, Outcome, Timestamp};

    /// Events of several clients, replayed in time order as a log has them.
    #[derive(Default)]
    struct Log(Vec<AccessEvent>);

    impl Log {
        fn read(&mut self, t: i64, ip: &str, customer: u64, referrer: Option<&str>) {
            self.0.push(AccessEvent {
                timestamp: Timestamp(t),
                user: ip.into(),
                source_ip: ip.parse().ok(),
                user_agent: Some("Mozilla/5.0 (X11; Linux x86_64) Chrome/121.0".into()),
                action: Action::Lookup,
                customer_ids: vec![format!("C-{customer}")],
                records: 1,
                url_path: Some(format!("GET /customers/{customer}")),
                http_method: Some(HttpMethod::Get),
                http_status: Some(200),
                referrer: referrer.map(str::to_owned),
                ..Default::default()
            });
        }

        fn sign_in(&mut self, t: i64, ip: &str) {
            self.0.push(AccessEvent {
                timestamp: Timestamp(t),
                user: ip.into(),
                source_ip: ip.parse().ok(),
                user_agent: Some("Mozilla/5.0 (X11; Linux x86_64) Chrome/121.0".into()),
                action: Action::Login,
                outcome: Outcome::Success,
                http_method: Some(HttpMethod::Post),
                http_status: Some(302),
                ..Default::default()
            });
        }

        /// 100 people, each signing in and reading 30 (often the same)
        /// customers an hour from a search page, 08:00 to 12:00.
        fn people(&mut self) {
            for hour in 8..12i64 {
                for p in 0..100u64 {
                    let ip = format!("198.51.{}.{}", p / 50, p % 50 + 1);
                    let start = t0() + hour * HOUR + p as i64 * 20 * SECOND;
                    self.sign_in(start, &ip);
                    for k in 0..30u64 {
                        let c = (p * 7 + k * 13) % 400;
                        let t = start + (k as i64 + 1) * 90 * SECOND;
                        self.read(t, &ip, c, Some("https://crm/search?q=x"));
                    }
                }
            }
        }

        /// From 02:00, 20 clients an hour each open 10 customers cold (links
        /// from e-mails): 200 distinct customers an hour, every hour.
        fn cold_links(&mut self) {
            for hour in 2..12i64 {
                for c in 0..20u64 {
                    for k in 0..10u64 {
                        let ip = format!("100.{}.{}.{}", 64 + c % 3, hour, c);
                        let t = t0() + hour * HOUR + (c * 10 + k) as i64 * 15 * SECOND;
                        self.read(t, &ip, (hour as u64 * 1000) + c * 10 + k, None);
                    }
                }
            }
        }

        /// `n` cold reads of distinct customers from `hosts` addresses of
        /// `net` (a /24's first three octets), one every `every` ms from `at`.
        fn sweep(&mut self, net: &str, hosts: u64, at: i64, n: u64, every: i64, step: u64) {
            for k in 0..n {
                let ip = format!("{net}.{}", 10 + k % hosts);
                self.read(t0() + at + k as i64 * every, &ip, 5_000 + k * step, None);
            }
        }

        fn run(mut self, directory: &str) -> Vec<vakt_event::Alert> {
            let mut h = Harness::new(directory, None);
            self.0.sort_by_key(|e| e.timestamp);
            for e in self.0 {
                h.push_access(e);
            }
            h.finish()
        }
    }

    /// A rotating scraper's addresses, one in each of six networks.
    const SIX_NETWORKS: [&str; 6] = [
        "45.1.2.3",
        "77.8.9.10",
        "91.20.30.40",
        "103.4.5.6",
        "151.60.70.80",
        "185.9.8.7",
    ];

    fn assert_network_group(alerts: &[vakt_event::Alert], network: &str) {
        let groups = Harness::rule(alerts, "distributed_scraping");
        let want = format!("network {network}");
        assert!(
            groups.iter().any(|g| g.evidence["group"] == want.as_str()),
            "{groups:#?}"
        );
    }

    #[test]
    fn a_scraper_rotating_addresses_is_caught_as_a_group_with_its_members() {
        let mut log = Log::default();
        log.people();
        // Six addresses in six networks, 40 random customers each an hour:
        // each under every individual threshold, 240 distinct together.
        let ips = SIX_NETWORKS;
        for k in 0..240u64 {
            let t = t0() + 9 * HOUR + k as i64 * 14 * SECOND;
            log.read(t, ips[k as usize % 6], 1_000 + k * 977 % 250_000, None);
        }
        let alerts = log.run("");
        let groups = Harness::rule(&alerts, "distributed_scraping");
        assert_eq!(groups.len(), 1, "{groups:#?}");
        let g = groups[0];
        assert_eq!(g.evidence["members"], 6);
        assert!(g.evidence["observed_customers"].as_f64().unwrap() >= 150.0);
        let named: Vec<&str> = g.evidence["member_reads"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["client"].as_str().unwrap())
            .collect();
        assert!(
            ips.iter().all(|ip| named.iter().any(|n| n.starts_with(ip))),
            "{named:?}"
        );
    }

    #[test]
    fn a_scraper_spread_over_one_network_is_named_by_its_network() {
        let mut log = Log::default();
        log.people();
        log.sweep("203.0.113", 4, 10 * HOUR, 300, 10 * SECOND, 31);
        assert_network_group(&log.run(""), "203.0.113.0/24");
    }

    #[test]
    fn an_office_signed_in_people_revisiting_customers_and_an_api_site_are_not_groups() {
        let mut log = Log::default();
        log.people();
        // An office: 40 signed-in people in one /24 reading from search pages.
        for p in 0..40u64 {
            let ip = format!("192.0.2.{}", p + 1);
            log.sign_in(t0() + 9 * HOUR, &ip);
            for k in 0..20u64 {
                let t = t0() + 9 * HOUR + (k as i64 + 1) * 60 * SECOND;
                log.read(t, &ip, p * 100 + k, Some("https://crm/search?q=y"));
            }
        }
        // Five clients without sign-in opening the same 30 bookmarked customers again and again.
        for k in 0..300u64 {
            let ip = format!("100.64.{}.1", k % 5);
            log.read(t0() + 10 * HOUR + k as i64 * 10 * SECOND, &ip, k % 30, None);
        }
        assert!(Harness::rule(&log.run(""), "distributed_scraping").is_empty());

        // An API site: every client reads cold, so cold is usual.
        let mut log = Log::default();
        for k in 0..3000u64 {
            let ip = format!("198.18.{}.{}", k % 7, k % 11);
            log.read(t0() + 9 * HOUR + k as i64 * SECOND, &ip, k, None);
        }
        assert!(Harness::rule(&log.run(""), "distributed_scraping").is_empty());
    }

    #[test]
    fn a_sweep_at_night_when_only_it_reads_is_still_judged() {
        let mut log = Log::default();
        log.people();
        // 22:00: the people have gone home; a few mail links are opened
        // and a sweep from five addresses is all the site reads.
        for k in 0..20u64 {
            let ip = format!("100.64.9.{k}");
            log.read(
                t0() + 22 * HOUR + k as i64 * 90 * SECOND,
                &ip,
                90_000 + k,
                None,
            );
        }
        log.sweep("45.1.2", 5, 22 * HOUR, 400, 8 * SECOND, 613);
        assert_network_group(&log.run(""), "45.1.2.0/24");

        // A site where every reading client is a script all week: cold
        // stays usual at night too.
        let mut log = Log::default();
        for hour in 0..24i64 {
            for k in 0..200u64 {
                let ip = format!("198.18.{}.{}", k % 7, k % 11);
                log.read(
                    t0() + hour * HOUR + k as i64 * 15 * SECOND,
                    &ip,
                    hour as u64 * 1000 + k,
                    None,
                );
            }
        }
        assert!(Harness::rule(&log.run(""), "distributed_scraping").is_empty());
    }

    #[test]
    fn honest_cold_readers_of_a_large_site_are_their_own_baseline() {
        let mut log = Log::default();
        log.cold_links();
        log.people();
        assert!(Harness::rule(&log.run(""), "distributed_scraping").is_empty());

        // The same site with a sweep of 900 customers in one hour on top.
        let mut log = Log::default();
        log.cold_links();
        log.people();
        let ips = SIX_NETWORKS;
        for k in 0..900u64 {
            let t = t0() + 10 * HOUR + k as i64 * 3 * SECOND;
            log.read(t, ips[k as usize % 6], 100_000 + k * 977, None);
        }
        let alerts = log.run("");
        let groups = Harness::rule(&alerts, "distributed_scraping");
        assert_eq!(groups.len(), 1, "{groups:#?}");
        assert!(
            groups[0].evidence["baseline_usual_hour_customers"]
                .as_f64()
                .unwrap()
                >= 150.0
        );
    }
}
