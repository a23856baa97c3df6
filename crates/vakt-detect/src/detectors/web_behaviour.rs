//! `web_behaviour`: a web session that reads customer records without
//! browsing like a person.
//!
//! For S1 (a bot behind a reseller's account) and the paced scrapers that
//! keep under every rate: a person signs in, arrives at a customer from a
//! search or a list, and their browser loads each page's scripts and
//! styles; a script asks for record pages directly, one after another.
//! Pace alone cannot tell them apart (`rate`, `automation`); what the
//! session does, in what order, and what it ignores can.
//!
//! - Actor: the account when the request names one, else the session the
//!   log or proxy names (`[http] session`), else the address plus the user
//!   agent. An address many people share is said so in the alert.
//! - Features, per session (a gap of `session_idle_min` ends it): sub-resources
//!   loaded per page, share of pages with a referrer, share of pages reached
//!   from a page the session had opened (referrer chain), share of record
//!   pages reached cold (no such chain), share of pages that are record
//!   pages, records read before any sign-in, regularity of the gaps between
//!   pages (coefficient of variation) and of pages per ten minutes, records
//!   whose id follows the previous one's, error answers, HEAD and other odd
//!   methods, user-agent changes within the session, and whether dwell time
//!   follows page size.
//! - Score: each feature is compared with the population's recent sessions
//!   that read customers (median and median absolute deviation of the last
//!   1,024, no labels needed), in the direction a script would differ;
//!   features further than `deviation` robust units count. A session that
//!   has read `min_records` record pages with `min_features` such features
//!   is `medium`, with `high_features` it is `high`. The alert names the
//!   top features with the session's figure and the population's.
//! - State: 184 bytes per session (about 230 with the table), at most `max_sessions` (least
//!   recently seen forgotten), and the population's 1,024 feature vectors.
//! - Blind spots: in [`INFO`] (`vakt detectors` shows them).

use crate::detector::{actor_of, reference, Detector, DetectorInfo, Finding, WebClient};
use crate::params::{Param, Settings, Values};
use crate::state::{lru, Lru};
use serde_json::{json, Map, Value};
use std::hash::{Hash, Hasher};
use vakt_enrich::snapshot::{self, LruState, SnapshotError};
use vakt_enrich::Enriched;
use vakt_event::directory::AccountKind;
use vakt_event::time::MINUTE;
use vakt_event::{Action, Event, HttpMethod, Outcome, Severity, Timestamp};

pub const INFO: DetectorInfo = DetectorInfo {
    id: "web_behaviour",
    title: "a web session reading customers without browsing like a person",
    incidents: &["S1"],
    remediation: super::CONTAIN_ACCOUNT,
    blind_spots: "a bot driving a real browser (scripts and styles load, referrers are sent) that signs in and navigates through search pages with human timing looks like a person here; it is left to `volume_peers`, `foreign_network` and `account_sharing`. Several people behind one address with the same browser and no session in the log are one session. A site whose own users are mostly scripts sets the population, and then scripts are usual",
    params: PARAMS,
    per_organization: false,
};

pub const PARAMS: &[Param] = &[
    Param::count(
        "min_records",
        20.0,
        "record pages a session has read before it is judged (again at each doubling)",
    ),
    Param::count(
        "min_features",
        3.0,
        "features beyond `deviation` for `medium`",
    ),
    Param::count(
        "high_features",
        5.0,
        "features beyond `deviation` for `high`",
    ),
    Param::number(
        "deviation",
        3.0,
        "robust units (1.4826 x median absolute deviation) from the population's median that make a feature count",
    ),
    Param::count(
        "min_population",
        50.0,
        "sessions that read customers seen before any session is judged",
    ),
    Param::count(
        "session_idle_min",
        30.0,
        "minutes without a request that end a session",
    ),
    Param::count(
        "max_sessions",
        100_000.0,
        "sessions tracked at once; the least recently seen is forgotten",
    ),
];

struct Limits {
    min_records: u32,
    min_features: usize,
    high_features: usize,
    deviation: f32,
    min_population: usize,
    idle_ms: i64,
}

impl Limits {
    fn new(v: &Values) -> Limits {
        let n = |name| v.get(name).min(u32::MAX as f64) as u32;
        Limits {
            min_records: n("min_records"),
            min_features: n("min_features") as usize,
            high_features: n("high_features") as usize,
            deviation: v.get("deviation") as f32,
            min_population: n("min_population") as usize,
            idle_ms: n("session_idle_min") as i64 * MINUTE,
        }
    }
}

pub(crate) fn build(s: &Settings) -> Box<dyn Detector> {
    let capacity = s.global.get("max_sessions").clamp(1.0, 10_000_000.0) as usize;
    Box::new(WebBehaviour {
        limits: Limits::new(&s.global),
        sessions: lru(capacity),
        population: Population::default(),
    })
}

/// One feature: its name, how to say it, which way a script differs, and
/// the smallest spread it is judged with (so a population where every
/// person does the same does not make any difference infinite).
struct Feature {
    name: &'static str,
    says: &'static str,
    /// +1: scripts are higher; -1: scripts are lower.
    direction: f32,
    floor: f32,
}

const FEATURES: [Feature; 13] = [
    Feature {
        name: "assets_per_page",
        says: "sub-resources (scripts, styles, images) loaded per page",
        direction: -1.0,
        floor: 0.05,
    },
    Feature {
        name: "referred_share",
        says: "share of pages sent with a referrer",
        direction: -1.0,
        floor: 0.1,
    },
    Feature {
        name: "chained_share",
        says: "share of pages reached from a page the session had opened",
        direction: -1.0,
        floor: 0.1,
    },
    Feature {
        name: "cold_record_share",
        says: "share of record pages opened cold, not from a page of the session",
        direction: 1.0,
        floor: 0.1,
    },
    Feature {
        name: "record_share",
        says: "share of pages that are customer records",
        direction: 1.0,
        floor: 0.1,
    },
    Feature {
        name: "records_before_sign_in",
        says: "share of records read before signing in",
        direction: 1.0,
        floor: 0.1,
    },
    Feature {
        name: "gap_cv",
        says: "variation of the gaps between pages (coefficient of variation)",
        direction: -1.0,
        floor: 0.15,
    },
    Feature {
        name: "ten_minute_cv",
        says: "variation of pages per ten minutes (coefficient of variation)",
        direction: -1.0,
        floor: 0.15,
    },
    Feature {
        name: "sequential_records",
        says: "share of records whose id follows the previous one's (within 3)",
        direction: 1.0,
        floor: 0.1,
    },
    Feature {
        name: "error_share",
        says: "share of requests answered with an error",
        direction: 1.0,
        floor: 0.05,
    },
    Feature {
        name: "odd_method_share",
        says: "share of HEAD, OPTIONS and other unusual methods",
        direction: 1.0,
        floor: 0.05,
    },
    Feature {
        name: "agent_changes",
        says: "user-agent changes within the session",
        direction: 1.0,
        floor: 0.5,
    },
    Feature {
        name: "dwell_follows_size",
        says: "correlation of time on a page with its size",
        direction: -1.0,
        floor: 0.2,
    },
];

type Vector = [f32; FEATURES.len()];

/// Welford's running mean and variance.
#[derive(Default, Clone, Copy, serde::Serialize, serde::Deserialize)]
struct Running {
    n: u32,
    mean: f32,
    m2: f32,
}

impl Running {
    fn push(&mut self, x: f32) {
        self.n += 1;
        let d = x - self.mean;
        self.mean += d / self.n as f32;
        self.m2 += d * (x - self.mean);
    }

    fn cv(&self) -> Option<f32> {
        (self.n >= 5 && self.mean > 0.0).then(|| (self.m2 / (self.n - 1) as f32).sqrt() / self.mean)
    }
}

/// Sums for a correlation between a page's size and the time spent on it.
#[derive(Default, Clone, Copy, serde::Serialize, serde::Deserialize)]
struct Pairs {
    n: u32,
    sx: f32,
    sy: f32,
    sxx: f32,
    syy: f32,
    sxy: f32,
}

impl Pairs {
    fn push(&mut self, x: f32, y: f32) {
        self.n += 1;
        self.sx += x;
        self.sy += y;
        self.sxx += x * x;
        self.syy += y * y;
        self.sxy += x * y;
    }

    fn correlation(&self) -> f32 {
        let n = self.n as f32;
        let vx = n * self.sxx - self.sx * self.sx;
        let vy = n * self.syy - self.sy * self.sy;
        if self.n < 5 || vx <= 0.0 || vy <= 0.0 {
            return 0.0;
        }
        (n * self.sxy - self.sx * self.sy) / (vx.sqrt() * vy.sqrt())
    }
}

#[derive(Default, serde::Serialize, serde::Deserialize)]
struct Session {
    first: i64,
    last: i64,
    last_page: i64,
    last_page_bytes: f32,
    requests: u32,
    pages: u32,
    assets: u32,
    referred: u32,
    chained: u32,
    records: u32,
    records_cold: u32,
    records_before_sign_in: u32,
    signed_in: bool,
    errors: u32,
    odd: u32,
    agent: u32,
    agent_changes: u32,
    /// Hashes of the last pages opened, for referrer chains.
    recent: [u32; 8],
    head: u8,
    gaps: Running,
    /// Pages per ten minutes, the current window and the finished ones.
    window: u32,
    in_window: u16,
    windows: Running,
    last_id: u64,
    sequential: u32,
    dwell: Pairs,
    next_judgement: u32,
    reported: Option<Severity>,
}

impl Session {
    fn features(&self) -> Vector {
        let share = |n: u32, d: u32| if d == 0 { 0.0 } else { n as f32 / d as f32 };
        [
            share(self.assets, self.pages),
            share(self.referred, self.pages),
            share(self.chained, self.pages),
            share(self.records_cold, self.records),
            share(self.records, self.pages),
            share(self.records_before_sign_in, self.records),
            self.gaps.cv().unwrap_or(1.0),
            self.windows.cv().unwrap_or(1.0),
            share(self.sequential, self.records),
            share(self.errors, self.requests),
            share(self.odd, self.requests),
            self.agent_changes as f32,
            self.dwell.correlation(),
        ]
    }

    fn opened(&self, page: u32) -> bool {
        self.recent.contains(&page)
    }

    fn open(&mut self, page: u32) {
        self.recent[self.head as usize % self.recent.len()] = page;
        self.head = self.head.wrapping_add(1);
    }
}

/// The recent sessions that read customers, as feature vectors, with their
/// medians and spreads recomputed every so often.
#[derive(serde::Serialize, serde::Deserialize)]
struct Population {
    ring: Vec<Vector>,
    next: usize,
    since_update: usize,
    median: Vector,
    spread: Vector,
}

impl Default for Population {
    fn default() -> Self {
        Population {
            ring: Vec::with_capacity(Self::SIZE),
            next: 0,
            since_update: 0,
            median: [0.0; FEATURES.len()],
            spread: [0.0; FEATURES.len()],
        }
    }
}

impl Population {
    const SIZE: usize = 1024;

    fn push(&mut self, v: Vector) {
        if self.ring.len() < Self::SIZE {
            self.ring.push(v);
        } else {
            self.ring[self.next] = v;
        }
        self.next = (self.next + 1) % Self::SIZE;
        self.since_update += 1;
        if self.since_update >= 32 || self.ring.len() < 256 {
            self.update();
        }
    }

    fn update(&mut self) {
        self.since_update = 0;
        let mut column = Vec::with_capacity(self.ring.len());
        for f in 0..FEATURES.len() {
            column.clear();
            column.extend(self.ring.iter().map(|v| v[f]));
            let med = median(&mut column);
            for x in column.iter_mut() {
                *x = (*x - med).abs();
            }
            self.median[f] = med;
            self.spread[f] = 1.4826 * median(&mut column);
        }
    }

    /// Robust deviation of each feature in the direction scripts differ.
    fn deviations(&self, v: &Vector) -> Vector {
        let mut d = [0.0; FEATURES.len()];
        for (f, feature) in FEATURES.iter().enumerate() {
            let scale = self.spread[f].max(feature.floor);
            d[f] = feature.direction * (v[f] - self.median[f]) / scale;
        }
        d
    }
}

fn median(xs: &mut [f32]) -> f32 {
    if xs.is_empty() {
        return 0.0;
    }
    let mid = xs.len() / 2;
    let (_, m, _) = xs.select_nth_unstable_by(mid, |a, b| a.total_cmp(b));
    *m
}

fn hash32(parts: &[&str]) -> u32 {
    let mut h = rustc_hash::FxHasher::default();
    parts.hash(&mut h);
    h.finish() as u32
}

/// Scripts, styles, images and fonts: what a browser loads for a page.
fn is_asset(path: &str) -> bool {
    let path = path.split(['?', '#']).next().unwrap_or(path);
    let ext = path.rsplit_once('.').map_or("", |(_, e)| e);
    const ASSETS: [&str; 16] = [
        "js", "mjs", "css", "png", "jpg", "jpeg", "gif", "svg", "ico", "webp", "avif", "woff",
        "woff2", "ttf", "otf", "map",
    ];
    ASSETS.iter().any(|a| a.eq_ignore_ascii_case(ext))
}

/// The number a customer id ends with (`C-0001234` is 1234), if any.
fn trailing_number(id: &str) -> Option<u64> {
    let digits = id.len() - id.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    id[id.len() - digits..].parse().ok()
}

/// The path (with query) a referrer names: `https://host/a?b` is `/a?b`.
fn referrer_path(r: &str) -> &str {
    match r.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => r,
    }
}

pub struct WebBehaviour {
    limits: Limits,
    sessions: Lru<u64, Session>,
    population: Population,
}

impl Detector for WebBehaviour {
    fn info(&self) -> &'static DetectorInfo {
        &INFO
    }

    fn observe(&mut self, ev: &Enriched, out: &mut Vec<Finding>) {
        let Event::Access(a) = ev.event else { return };
        let Some(method) = a.http_method else { return };
        if matches!(ev.kind(), AccountKind::Service | AccountKind::Batch) {
            return;
        }
        let now = a.timestamp.0;
        let lim = &self.limits;
        let client = WebClient::of(ev, a);
        let s = self
            .sessions
            .get_or_insert_mut(client.key(), Session::default);
        if s.requests > 0 && now - s.last > lim.idle_ms {
            // The session ended: it joins the population if it read customers.
            if s.records >= 5 {
                self.population.push(s.features());
            }
            *s = Session::default();
        }
        if s.requests == 0 {
            s.first = now;
            s.next_judgement = lim.min_records;
        }
        s.requests += 1;
        s.last = now.max(s.last);
        let agent = hash32(&[a.user_agent.as_deref().unwrap_or("")]);
        if s.requests > 1 && agent != s.agent {
            s.agent_changes += 1;
        }
        s.agent = agent;
        let status = a.http_status.unwrap_or(200);
        if status >= 400 {
            s.errors += 1;
        }
        if !matches!(method, HttpMethod::Get | HttpMethod::Post) {
            s.odd += 1;
        }
        if a.action == Action::Login && a.outcome == Outcome::Success {
            s.signed_in = true;
        }
        let path = a
            .url_path
            .as_deref()
            .map_or("/", |p| p.split_once(' ').map_or(p, |(_, p)| p));
        if is_asset(path) {
            s.assets += 1;
            return;
        }
        // A page (or an API call): how it was reached and what it read.
        s.pages += 1;
        if s.pages > 1 {
            let dwell = (now - s.last_page).max(0) as f32 / 1000.0;
            s.gaps.push(dwell);
            s.dwell.push(s.last_page_bytes, dwell);
        }
        s.last_page = now;
        // Pages per ten minutes; a pause of several windows counts as empty
        // windows (up to an hour).
        let window = now.div_euclid(10 * MINUTE) as u32;
        if s.pages > 1 && window != s.window {
            s.windows.push(s.in_window as f32);
            for _ in 0..window.saturating_sub(s.window + 1).min(5) {
                s.windows.push(0.0);
            }
            s.in_window = 0;
        }
        s.window = window;
        s.in_window = s.in_window.saturating_add(1);
        s.last_page_bytes = a.bytes.unwrap_or(0) as f32;
        let chained = match a.referrer.as_deref() {
            Some(r) => {
                s.referred += 1;
                let from = hash32(&[referrer_path(r)]);
                let chained = s.opened(from);
                s.chained += chained as u32;
                chained
            }
            None => false,
        };
        s.open(hash32(&[path]));
        let record = a.action.reads_data() && !a.customer_ids.is_empty();
        if !record {
            return;
        }
        s.records += 1;
        s.records_cold += !chained as u32;
        s.records_before_sign_in += !s.signed_in as u32;
        if let Some(id) = a.customer_ids.first().and_then(|c| trailing_number(c)) {
            s.sequential +=
                (s.last_id != 0 && id != s.last_id && id.abs_diff(s.last_id) <= 3) as u32;
            s.last_id = id;
        }
        if s.records < s.next_judgement {
            return;
        }
        s.next_judgement = s.next_judgement.saturating_mul(2);
        let v = s.features();
        self.population.push(v);
        if self.population.ring.len() < lim.min_population {
            return;
        }
        let d = self.population.deviations(&v);
        let mut strong: Vec<usize> = (0..FEATURES.len())
            .filter(|&f| d[f] >= lim.deviation)
            .collect();
        let severity = match strong.len() {
            n if n >= lim.high_features => Severity::High,
            n if n >= lim.min_features => Severity::Medium,
            _ => return,
        };
        if s.reported.is_some_and(|r| r >= severity) {
            return;
        }
        s.reported = Some(severity);
        let name = client.name();
        strong.sort_by(|&x, &y| d[y].total_cmp(&d[x]));
        let round = |x: f32| ((x as f64) * 100.0).round() / 100.0;
        let mut features = Map::new();
        for &f in &strong {
            features.insert(
                FEATURES[f].name.into(),
                json!({
                    "observed": round(v[f]),
                    "population_median": round(self.population.median[f]),
                    "robust_deviation": round(d[f].min(99.0)),
                }),
            );
        }
        let top: Vec<String> = strong
            .iter()
            .take(3)
            .map(|&f| {
                format!(
                    "{} {:.2} (usual {:.2})",
                    FEATURES[f].says, v[f], self.population.median[f]
                )
            })
            .collect();
        let shared = ev.address.filter(|s| s.is_shared());
        let mut evidence = Map::new();
        evidence.insert("features".into(), Value::Object(features));
        evidence.insert("pages".into(), json!(s.pages));
        evidence.insert("record_pages".into(), json!(s.records));
        evidence.insert("requests".into(), json!(s.requests));
        evidence.insert("signed_in".into(), json!(s.signed_in));
        evidence.insert(
            "session_minutes".into(),
            json!(((now - s.first) as f64 / 60_000.0).round()),
        );
        evidence.insert("session".into(), json!(name));
        evidence.insert(
            "population_sessions".into(),
            json!(self.population.ring.len()),
        );
        evidence.insert("event".into(), json!(reference(ev)));
        if let Some(sh) = shared {
            evidence.insert("shared_address".into(), json!(sh.describe()));
        }
        out.push(Finding {
            rule: INFO.id,
            key: name.clone(),
            actor: actor_of(ev),
            organization: ev.organization.map(str::to_owned),
            severity,
            at: a.timestamp,
            first_seen: Timestamp(s.first),
            message: format!(
                "{name} read {} customer records without browsing like a person: {}{}",
                s.records,
                top.join("; "),
                if shared.is_some() {
                    " (a shared address: judged as this session, not as the address)"
                } else {
                    ""
                }
            ),
            evidence,
            customers: s.records as u64,
        });
    }

    fn evict(&mut self, horizon: Timestamp) {
        while let Some((_, s)) = self.sessions.peek_lru() {
            if s.last >= horizon.0 {
                break;
            }
            self.sessions.pop_lru();
        }
    }

    fn save(&self) -> Result<Vec<u8>, SnapshotError> {
        snapshot::save(&(snapshot::LruRef(&self.sessions), &self.population))
    }

    fn restore(&mut self, state: &[u8]) -> Result<(), SnapshotError> {
        let (sessions, population): (LruState<u64, Session>, Population) = snapshot::load(state)?;
        self.population = population;
        sessions.restore_into(&mut self.sessions);
        Ok(())
    }

    fn tracked_keys(&self) -> usize {
        self.sessions.len()
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::*;
    use vakt_event::time::{HOUR, SECOND};
    use vakt_event::{AccessEvent, Action, HttpMethod, Outcome, Timestamp};

    const HOST: &str = "https://crm.example.com";

    /// A small deterministic generator for jitter.
    struct Lcg(u64);

    impl Lcg {
        fn next(&mut self) -> f64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (self.0 >> 11) as f64 / (1u64 << 53) as f64
        }

        /// A positive number around `median` spread by `sigma` (log-normal-ish).
        fn around(&mut self, median: f64, sigma: f64) -> i64 {
            let z = (self.next() + self.next() + self.next() - 1.5) * 2.0;
            (median * (sigma * z).exp() * 1000.0) as i64
        }
    }

    struct Client<'a> {
        h: &'a mut Harness,
        ip: &'a str,
        ua: &'a str,
        t: i64,
    }

    impl Client<'_> {
        fn get(&mut self, path: &str, referrer: Option<&str>, customer: Option<u64>) {
            let (action, customer_ids) = match customer {
                Some(c) => (Action::Lookup, vec![format!("C-{c}")]),
                None => (Action::Request, vec![]),
            };
            self.h.push_access(AccessEvent {
                timestamp: Timestamp(self.t),
                user: self.ip.into(),
                source_ip: self.ip.parse().ok(),
                user_agent: Some(self.ua.into()),
                action,
                records: customer_ids.len() as u64,
                customer_ids,
                url_path: Some(format!("GET {path}")),
                http_method: Some(HttpMethod::Get),
                http_status: Some(200),
                bytes: Some(4000),
                referrer: referrer.map(|r| format!("{HOST}{r}")),
                ..Default::default()
            });
        }

        fn sign_in(&mut self) {
            self.get("/login", None, None);
            self.t += 4 * SECOND;
            self.h.push_access(AccessEvent {
                timestamp: Timestamp(self.t),
                user: self.ip.into(),
                source_ip: self.ip.parse().ok(),
                user_agent: Some(self.ua.into()),
                action: Action::Login,
                outcome: Outcome::Success,
                url_path: Some("POST /login".into()),
                http_method: Some(HttpMethod::Post),
                http_status: Some(302),
                referrer: Some(format!("{HOST}/login")),
                ..Default::default()
            });
            self.t += 300;
            self.get("/", Some("/login"), None);
            for asset in ["/static/app.js", "/static/app.css", "/static/logo.svg"] {
                self.t += 100;
                self.get(asset, Some("/"), None);
            }
        }

        /// A person: search, open a customer from the results, sometimes a sub-page.
        fn person(&mut self, rng: &mut Lcg, lookups: u64, first_customer: u64) {
            self.sign_in();
            for k in 0..lookups {
                self.t += rng.around(12.0, 0.9);
                let q = format!("/search?q=n{k}");
                self.get(&q, Some("/"), None);
                self.t += rng.around(12.0, 0.9);
                let c = first_customer + k * 7;
                let page = format!("/customers/{c}");
                self.get(&page, Some(&q), Some(c));
                if rng.next() < 0.5 {
                    self.t += 400;
                    self.get(&format!("{page}/orders"), Some(&page), Some(c));
                }
            }
        }
    }

    /// 120 people in the morning, each from an address of their own.
    fn people(h: &mut Harness) {
        let mut rng = Lcg(7);
        for p in 0..120u64 {
            let ip = format!("198.51.{}.{}", p / 200, p % 200 + 1);
            let mut c = Client {
                h,
                ip: &ip,
                ua: "Mozilla/5.0 (Windows NT 10.0) Firefox/123.0",
                t: t0() + 8 * HOUR + p as i64 * 60 * SECOND,
            };
            c.person(&mut rng, 8 + p % 20, p * 1000);
        }
    }

    #[test]
    fn a_paced_scraper_jumping_straight_to_records_is_caught() {
        let mut h = Harness::new("", None);
        people(&mut h);
        // One record every ~27 s like the people's pace, random ids, no
        // sign-in, no referrer, no scripts or styles: a script.
        let mut rng = Lcg(99);
        let mut c = Client {
            h: &mut h,
            ip: "203.0.113.50",
            ua: "Mozilla/5.0 (Windows NT 10.0) Chrome/122.0",
            t: t0() + 9 * HOUR,
        };
        for _ in 0..200 {
            c.t += rng.around(27.0, 0.5);
            let id = (rng.next() * 250_000.0) as u64;
            c.get(&format!("/customers/{id}"), None, Some(id));
        }
        let alerts = h.finish();
        let found = Harness::rule(&alerts, "web_behaviour");
        assert_eq!(found.len(), 1, "{found:#?}");
        let a = found[0];
        assert_eq!(a.actor.user.as_deref(), Some("203.0.113.50"));
        let features = a.evidence["features"].as_object().unwrap();
        for f in [
            "referred_share",
            "chained_share",
            "cold_record_share",
            "records_before_sign_in",
        ] {
            assert!(features.contains_key(f), "{f} missing: {features:?}");
        }
        assert!(
            a.message.contains("without browsing like a person"),
            "{}",
            a.message
        );
    }

    #[test]
    fn people_a_monitoring_probe_and_a_polite_crawler_are_not_flagged() {
        let mut h = Harness::new("", None);
        people(&mut h);
        // An uptime probe every 30 s all day: no customer records.
        let mut probe = Client {
            h: &mut h,
            ip: "192.0.2.10",
            ua: "UptimeRobot/2.0",
            t: t0(),
        };
        for _ in 0..2880 {
            probe.t += 30 * SECOND;
            probe.get("/healthz", None, None);
        }
        // A crawler that announces itself, reads robots.txt and keeps out of /customers.
        let mut crawler = Client {
            h: &mut h,
            ip: "192.0.2.20",
            ua: "Googlebot/2.1 (+http://www.google.com/bot.html)",
            t: t0() + 10 * HOUR,
        };
        crawler.get("/robots.txt", None, None);
        for k in 0..300 {
            crawler.t += 2 * SECOND;
            crawler.get(&format!("/help/article-{k}"), None, None);
        }
        // Later, 60 more people on one office address, with the same browser.
        let mut rng = Lcg(3);
        for p in 0..60u64 {
            let mut c = Client {
                h: &mut h,
                ip: "198.51.100.200",
                ua: "Mozilla/5.0 (Macintosh) Safari/605.1.15",
                t: t0() + 13 * HOUR + p as i64 * 30 * SECOND,
            };
            c.person(&mut rng, 10, 500_000 + p * 1000);
        }
        let alerts = h.finish();
        assert!(
            Harness::rule(&alerts, "web_behaviour").is_empty(),
            "{alerts:#?}"
        );
    }

    #[test]
    fn sessions_are_bounded_in_size_and_number() {
        let size = std::mem::size_of::<super::Session>();
        assert!(size <= 192, "a session takes {size} bytes");
        let dir = "[detectors.web_behaviour]\nmax_sessions = 100\n";
        let d = vakt_event::Directory::from_toml(dir, "d").unwrap();
        let settings = crate::detectors::settings(&d).unwrap();
        let s = settings
            .iter()
            .find(|s| s.info.id == "web_behaviour")
            .unwrap();
        let mut detector = super::build(s);
        // A thousand clients, one page each, straight into the detector.
        let dir = std::sync::Arc::new(vakt_event::Directory::default());
        let mut enricher = vakt_enrich::Enricher::new(dir, None, None);
        let mut out = Vec::new();
        for i in 0..1000u32 {
            let ip = std::net::Ipv4Addr::from(0x0a00_0000 + i);
            let ev = vakt_event::Event::Access(AccessEvent {
                timestamp: Timestamp(t0() + i as i64 * SECOND),
                user: ip.to_string(),
                source_ip: Some(ip.into()),
                url_path: Some("GET /".into()),
                http_method: Some(HttpMethod::Get),
                ..Default::default()
            });
            let ids = enricher.prepare(&ev);
            detector.observe(&enricher.enrich(&ev, ids), &mut out);
        }
        assert_eq!(detector.tracked_keys(), 100);
    }

    #[test]
    fn customer_ids_are_ordered_by_their_trailing_number() {
        assert_eq!(super::trailing_number("C-0001234"), Some(1234));
        assert_eq!(super::trailing_number("77"), Some(77));
        assert_eq!(super::trailing_number("alice"), None);
        assert_eq!(super::trailing_number("99999999999999999999999"), None);
    }
}
