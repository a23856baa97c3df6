//! `no_business_context`: an account reading customers it has no case for,
//! more than it, its team usually and its team today.
//!
//! For S5 (Trend Micro): an employee read customer records outside any
//! support case and sold them. Support work is driven by cases; reads
//! without one happen (a caller hangs up, a colleague asks) but rarely, and
//! an insider blends in: 10 to 30 extra reads a day among 60 to 120 with a
//! case. So each read is judged, and the day's running count is tested.
//!
//! - A read is *justified* by a case for that customer and account: on the
//!   event (`case.id`), open in the cases file (from an hour before it
//!   opens), logged in the cases file after the read, or a later read of
//!   the same customer by the same account that carries a case. Cases are
//!   often logged late, so a read without one is *pending* until its
//!   deadline: `grace_hours` (4 h) after the read, but no later than the
//!   end of the account's working day (its `hours`; at least 30 min after
//!   the read) when the directory declares them. A read still without a
//!   case at its deadline is *unjustified*.
//! - Within the day, the account's unjustified reads `u` among its reads
//!   `n` are tested against a baseline share `p0`: the largest of the
//!   account's usual share (decayed over past days, after `own_days`), its
//!   team's (peer group's) usual share and its team's share today without
//!   the account (once the team has `group_min_reads` reads today), at
//!   least `min_share`. Judging against the team's same-day share means a
//!   case-system outage, when the whole team reads without cases at once,
//!   lifts everyone's bar together. The test is the binomial tail
//!   `P(X >= u | n, p0)`, today alone and today with the account's
//!   previous working day (so the faintest insider is found the next day):
//!   `medium` when it is at most `p_value` (1e-5) with `u >= min_reads`
//!   (10) and a share of at least `factor` (2) times `p0`; `high` at most
//!   `p_value_high` (1e-9). A day that alerted does not teach the account's
//!   usual share. Only peer groups where most reads (over `case_share`,
//!   after `group_min_reads`) carry a case are judged; until the team has a
//!   usual day or the account `own_days`, it only learns.
//! - State: per account, at most `PENDING_CAP` (256) pending reads
//!   (customer id, time, deadline, event reference); when full, a new read
//!   without a case counts as unjustified at once (the alert says how many),
//!   so flooding cannot hide reads. Per account and team, today's and the
//!   usual counts (a few numbers); one heap of deadlines, one entry per
//!   pending read. Each threshold is a parameter ([`PARAMS`]), also per
//!   organisation.
//! - Outside the queue: when events carry the customer's segment or region
//!   and the directory says which ones the account's queue serves (the
//!   account's, else its organisation's), the unjustified reads of
//!   customers outside them are counted too, with their own usual shares
//!   (own, team, team today), and tested the same way from
//!   `min_outside_reads` (5): an agent's queue rarely sends it elsewhere
//!   without a case, so a few such reads say more than many ordinary ones.
//!   The alert says which count spoke. Contacts (calls, chats) go in the
//!   cases file as short cases: a look-up no contact preceded is a read
//!   without a case.
//! - Blind spots: in [`INFO`] (`vakt detectors` shows them).

use crate::detector::{reference, Detector, DetectorInfo, Finding};
use crate::evidence;
use crate::params::{Param, PerOrg, Settings, Values};
use crate::state::Keyed;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::IpAddr;
use vakt_enrich::snapshot::{self, SnapshotError};
use vakt_enrich::{BusinessContext, Enriched, Enricher, PeerGroup};
use vakt_event::directory::AccountKind;
use vakt_event::time::{DAY, HOUR, MINUTE};
use vakt_event::{Actor, Event, Severity, Timestamp};

pub const INFO: DetectorInfo = DetectorInfo {
    id: "no_business_context",
    title: "an account reading customers it has no case for, more than it and its team usually and its team today",
    incidents: &["S5"],
    remediation: super::SUSPEND_ACCOUNT,
    blind_spots: "needs cases (a cases file, or `case.id` on events); an insider who opens a fake case for each read; an insider who reads without cases only while the whole team does (an outage); reads outside the agent's segment or region when neither the events nor the directory name them; a faint insider (about 10 extra reads among 120) is found on the second day; peer groups that do not work with cases (stores, resellers) are not judged at all",
    params: PARAMS,
    per_organization: true,
};

pub const PARAMS: &[Param] = &[
    Param::number(
        "grace_hours",
        4.0,
        "hours a read may wait for its case before it counts as unjustified (at most to the end of the working day)",
    ),
    Param::count(
        "min_reads",
        10.0,
        "unjustified reads in the window below which an account is not judged",
    ),
    Param::count(
        "min_outside_reads",
        5.0,
        "unjustified reads outside the queue's segments or regions in the window below which they are not judged on their own",
    ),
    Param::number(
        "p_value",
        1e-5,
        "binomial tail probability of the unjustified reads under the baseline share at or below which the account is `medium`",
    ),
    Param::number("p_value_high", 1e-9, "the same for `high`"),
    Param::number(
        "factor",
        2.0,
        "times the baseline share the account's unjustified share must reach",
    ),
    Param::share(
        "min_share",
        0.01,
        "smallest baseline share of unjustified reads",
    ),
    Param::count(
        "own_days",
        5.0,
        "days before the account's usual share counts",
    ),
    Param::share(
        "case_share",
        0.5,
        "share of a peer group's reads that must carry a case for it to be judged (more than this)",
    ),
    Param::count(
        "group_min_reads",
        200.0,
        "reads a peer group needs before its case share, usual day or day so far counts",
    ),
];

/// Pending reads kept per account; beyond, a read without a case is unjustified at once.
const PENDING_CAP: usize = 256;
/// A read may always wait this long for its case, even at the end of the day.
const MIN_GRACE: i64 = 30 * MINUTE;
/// Days of shares kept for the usual share (its median, so that one
/// outage day or an insider's first days do not move it).
const USUAL_DAYS: usize = 14;
/// Customers and events kept as examples for the alert.
const SAMPLES: usize = 5;
/// Accounts with fewer reads in a day do not teach their usual share.
const MIN_DAY_READS: u32 = 10;
/// Teams with fewer reads in a day do not teach theirs.
const MIN_TEAM_DAY_READS: u64 = 200;

struct Limits {
    grace: i64,
    min_reads: u32,
    min_outside_reads: u32,
    p_value: f64,
    p_value_high: f64,
    factor: f64,
    min_share: f64,
    own_days: u32,
    case_share: f64,
    group_min_reads: u64,
}

impl Limits {
    fn new(v: &Values) -> Limits {
        Limits {
            grace: (v.get("grace_hours") * HOUR as f64) as i64,
            min_reads: v.get("min_reads") as u32,
            min_outside_reads: v.get("min_outside_reads") as u32,
            p_value: v.get("p_value"),
            p_value_high: v.get("p_value_high"),
            factor: v.get("factor"),
            min_share: v.get("min_share"),
            own_days: v.get("own_days") as u32,
            case_share: v.get("case_share"),
            group_min_reads: v.get("group_min_reads") as u64,
        }
    }
}

pub(crate) fn build(s: &Settings) -> Box<dyn Detector> {
    Box::new(NoBusinessContext {
        limits: s.per_org(Limits::new),
        accounts: Keyed::default(),
        groups: Keyed::default(),
        due: BinaryHeap::new(),
        watermark: i64::MIN,
    })
}

/// A read without a case, waiting for one.
#[derive(serde::Serialize, serde::Deserialize)]
struct Pending {
    customer: Box<str>,
    read: i64,
    /// The customer is outside the segments or regions the account's queue serves.
    outside: bool,
    deadline: i64,
    /// When a case logged after the read justifies it; `i64::MAX` if none is known.
    justified: i64,
    event: Box<str>,
}

/// What is counted against an account's reads: reads still without a case
/// at their deadline, and among those, reads of customers outside the
/// segments or regions the account's queue serves. Each has its own usual
/// shares and is tested on its own.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Kind {
    WithoutCase = 0,
    OutsideQueue = 1,
}

impl Kind {
    const ALL: [Kind; 2] = [Kind::WithoutCase, Kind::OutsideQueue];

    fn says(self) -> &'static str {
        match self {
            Kind::WithoutCase => "without a case",
            Kind::OutsideQueue => {
                "without a case and outside the segments or regions its queue serves"
            }
        }
    }
}

/// Reads and unjustified reads (per [`Kind`]) of one day, and the highest
/// baseline share it was judged against (so the next day judges it the
/// same way).
#[derive(Copy, Clone, Default, serde::Serialize, serde::Deserialize)]
struct Day {
    day: i64,
    reads: u32,
    unjustified: [u32; 2],
    baseline: [f64; 2],
}

/// The last [`USUAL_DAYS`] daily shares; their median is the usual share.
#[derive(Default, serde::Serialize, serde::Deserialize)]
struct Shares(std::collections::VecDeque<f32>);

impl Shares {
    fn push(&mut self, share: f64) {
        if self.0.len() == USUAL_DAYS {
            self.0.pop_front();
        }
        self.0.push_back(share as f32);
    }

    fn median(&self) -> f64 {
        let mut v: Vec<f32> = self.0.iter().copied().collect();
        v.sort_by(f32::total_cmp);
        v.get(v.len() / 2).map_or(0.0, |m| *m as f64)
    }
}

#[derive(Default, serde::Serialize, serde::Deserialize)]
struct Account {
    name: String,
    organization: Option<String>,
    ip: Option<IpAddr>,
    group: PeerGroup,
    pending: Vec<Pending>,
    today: Day,
    /// The previous day with reads, if it was at most four days ago (a weekend).
    previous: Option<Day>,
    overflow: u32,
    first_unjustified: i64,
    samples: Vec<(Box<str>, Box<str>)>,
    usual: [Shares; 2],
    reported: Option<Severity>,
}

#[derive(Default, serde::Serialize, serde::Deserialize)]
struct Group {
    reads: u64,
    cased: u64,
    today: i64,
    today_reads: u64,
    today_unjustified: [u64; 2],
    usual: [Shares; 2],
}

impl Group {
    fn roll(&mut self, day: i64) {
        if day <= self.today {
            return;
        }
        // A quiet day says little about the team.
        if self.today != 0 && self.today_reads >= MIN_TEAM_DAY_READS {
            for k in Kind::ALL {
                self.usual[k as usize]
                    .push(self.today_unjustified[k as usize] as f64 / self.today_reads as f64);
            }
        }
        self.today = day;
        self.today_reads = 0;
        self.today_unjustified = [0; 2];
    }
}

impl Account {
    fn roll(&mut self, day: i64) {
        if day <= self.today.day {
            return;
        }
        let t = self.today;
        if t.day != 0 && t.reads > 0 {
            // A day that alerted does not teach what is usual.
            if self.reported.is_none() && t.reads >= MIN_DAY_READS {
                for k in Kind::ALL {
                    self.usual[k as usize].push(t.unjustified[k as usize] as f64 / t.reads as f64);
                }
            }
            self.previous = (day - t.day <= 4).then_some(t);
        } else if self.previous.is_some_and(|p| day - p.day > 4) {
            self.previous = None;
        }
        self.today = Day {
            day,
            ..Day::default()
        };
        self.overflow = 0;
        self.samples.clear();
        self.reported = None;
    }

    fn unjustified(
        &mut self,
        group: &mut Group,
        read: i64,
        outside: bool,
        customer: &str,
        event: &str,
    ) {
        if self.today.unjustified[0] == 0 {
            self.first_unjustified = read;
        }
        for k in Kind::ALL {
            if k == Kind::WithoutCase || outside {
                self.today.unjustified[k as usize] += 1;
                group.today_unjustified[k as usize] += 1;
            }
        }
        if self.samples.len() < SAMPLES {
            self.samples.push((customer.into(), event.into()));
        }
    }
}

pub struct NoBusinessContext {
    limits: PerOrg<Limits>,
    accounts: Keyed<Account>,
    groups: Keyed<Group>,
    /// Deadlines of pending reads: (deadline, account).
    due: BinaryHeap<Reverse<(i64, u32)>>,
    /// The latest event time seen: pending reads mature against it.
    watermark: i64,
}

/// `P(X >= u)` for `X ~ Binomial(n, p)`.
fn binomial_tail(u: u32, n: u32, p: f64) -> f64 {
    if u == 0 {
        return 1.0;
    }
    if u > n || p <= 0.0 {
        return 0.0;
    }
    if p >= 1.0 {
        return 1.0;
    }
    let (u, n) = (u as f64, n as f64);
    if u > 5000.0 {
        // Far beyond any benign day: the Chernoff bound is enough.
        let q = u / n;
        let kl = q * (q / p).ln() + (1.0 - q) * ((1.0 - q) / (1.0 - p)).max(f64::MIN_POSITIVE).ln();
        return (-n * kl).exp().min(1.0);
    }
    let ln_choose: f64 = (1..=u as u64)
        .map(|i| ((n - u + i as f64) / i as f64).ln())
        .sum();
    let mut term = (ln_choose + u * p.ln() + (n - u) * (1.0 - p).ln()).exp();
    let mut sum = 0.0;
    let mut k = u;
    while term > 0.0 && k <= n {
        sum += term;
        if term < sum * 1e-12 {
            break;
        }
        term *= (n - k) / (k + 1.0) * p / (1.0 - p);
        k += 1.0;
    }
    sum.min(1.0)
}

/// Reads and unjustified reads of one kind over one or two days, and the
/// bar they are judged against.
#[derive(Copy, Clone)]
struct Window {
    reads: u32,
    unjustified: u32,
    baseline: f64,
    days: u32,
}

/// Today alone, and with the previous working day (against the bar that
/// day had) for a faint insider: the window with the smallest binomial
/// tail among those with `min_reads` unjustified reads at `factor` times
/// their bar.
fn most_significant(
    acc: &Account,
    kind: Kind,
    min_reads: u32,
    factor: f64,
) -> Option<(Window, f64)> {
    let k = kind as usize;
    let today = Window {
        reads: acc.today.reads,
        unjustified: acc.today.unjustified[k],
        baseline: acc.today.baseline[k],
        days: 1,
    };
    let two = acc.previous.map(|p| {
        let reads = p.reads + today.reads;
        Window {
            reads,
            unjustified: p.unjustified[k] + today.unjustified,
            // A day never judged takes today's bar.
            baseline: (p.reads as f64 * p.baseline[k].max(today.baseline)
                + today.reads as f64 * today.baseline)
                / reads.max(1) as f64,
            days: 2,
        }
    });
    [Some(today), two]
        .into_iter()
        .flatten()
        .filter(|w| w.unjustified >= min_reads && w.reads > 0)
        .filter(|w| w.unjustified as f64 / w.reads as f64 >= factor * w.baseline)
        .map(|w| (w, binomial_tail(w.unjustified, w.reads, w.baseline)))
        .min_by(|a, b| a.1.total_cmp(&b.1))
}

/// The baseline an account is judged against, and the figures behind it.
struct Baseline {
    own: Option<f64>,
    team_usual: Option<f64>,
    team_today: Option<f64>,
    share: f64,
}

impl NoBusinessContext {
    /// Settles `actor`'s pending reads whose case came or whose deadline passed.
    fn settle(&mut self, actor: u32, out: &mut Vec<Finding>) {
        let now = self.watermark;
        let Some(acc) = self.accounts.get(actor) else {
            return;
        };
        if !acc
            .pending
            .iter()
            .any(|p| p.deadline.min(p.justified) <= now)
        {
            return;
        }
        let acc = self.accounts.touch(actor, Timestamp(now), Account::default);
        let group = self.groups.touch(acc.group, Timestamp(now), Group::default);
        let before = acc.today.unjustified[0];
        let mut i = 0;
        while i < acc.pending.len() {
            let p = &acc.pending[i];
            if p.deadline.min(p.justified) > now {
                i += 1;
                continue;
            }
            let p = acc.pending.swap_remove(i);
            if p.justified > p.deadline {
                acc.unjustified(group, p.read, p.outside, &p.customer, &p.event);
            }
        }
        if acc.today.unjustified[0] > before {
            let lim = self.limits.get(acc.organization.as_deref());
            if let Some(f) = judge(acc, group, lim, now) {
                out.push(f);
            }
        }
    }
}

fn baseline(acc: &Account, group: &Group, lim: &Limits, kind: Kind) -> Option<Baseline> {
    let k = kind as usize;
    let own = (acc.usual[k].0.len() >= lim.own_days as usize).then(|| acc.usual[k].median());
    let team_usual = (!group.usual[k].0.is_empty()).then(|| group.usual[k].median());
    if own.is_none() && team_usual.is_none() {
        // Nothing to compare with yet: learn first.
        return None;
    }
    let others = group.today_reads.saturating_sub(acc.today.reads as u64);
    let team_today = (others >= lim.group_min_reads).then(|| {
        group.today_unjustified[k].saturating_sub(acc.today.unjustified[k] as u64) as f64
            / others as f64
    });
    let share = [own, team_usual, team_today]
        .into_iter()
        .flatten()
        .fold(lim.min_share, f64::max);
    Some(Baseline {
        own,
        team_usual,
        team_today,
        share,
    })
}

fn judge(acc: &mut Account, group: &Group, lim: &Limits, now: i64) -> Option<Finding> {
    let works_with_cases = group.reads >= lim.group_min_reads
        && group.cased as f64 / group.reads as f64 > lim.case_share;
    if !works_with_cases {
        return None;
    }
    // Each kind on its own; the most significant speaks.
    let mut best: Option<(Kind, Baseline, Window, f64)> = None;
    for kind in Kind::ALL {
        let Some(b) = baseline(acc, group, lim, kind) else {
            continue;
        };
        let k = kind as usize;
        acc.today.baseline[k] = acc.today.baseline[k].max(b.share);
        let min_reads = match kind {
            Kind::WithoutCase => lim.min_reads,
            Kind::OutsideQueue => lim.min_outside_reads,
        };
        let Some((window, p)) = most_significant(acc, kind, min_reads, lim.factor) else {
            continue;
        };
        if best.as_ref().is_none_or(|(_, _, _, q)| p < *q) {
            best = Some((kind, b, window, p));
        }
    }
    let (kind, b, window, p_value) = best?;
    if p_value > lim.p_value {
        return None;
    }
    let severity = if p_value <= lim.p_value_high {
        Severity::High
    } else {
        Severity::Medium
    };
    if acc.reported.is_some_and(|r| r >= severity) {
        return None;
    }
    acc.reported = Some(severity);
    let share = window.unjustified as f64 / window.reads as f64;
    let pct = |s: Option<f64>| s.map_or("-".to_string(), |s| format!("{:.1}%", s * 100.0));
    let round = |s: Option<f64>| s.map(|s| (s * 10_000.0).round() / 10_000.0);
    let (customers, events): (Vec<&str>, Vec<&str>) =
        acc.samples.iter().map(|(c, e)| (&**c, &**e)).unzip();
    Some(Finding {
        rule: INFO.id,
        key: acc.name.clone(),
        actor: Actor {
            user: Some(acc.name.clone()),
            host: None,
            ip: acc.ip,
        },
        organization: acc.organization.clone(),
        severity,
        at: Timestamp(now),
        first_seen: Timestamp(acc.first_unjustified),
        message: format!(
            "{} read {} of {} customers {} {} ({:.1}%); its usual share is {}, its team's {} usually and {} today; {:.1} expected, p = {:.1e}",
            acc.name,
            window.unjustified,
            window.reads,
            kind.says(),
            if window.days == 1 { "today" } else { "today and on its previous working day" },
            share * 100.0,
            pct(b.own),
            pct(b.team_usual),
            pct(b.team_today),
            window.reads as f64 * window.baseline,
            p_value,
        ),
        evidence: evidence! {
            "counted" => format!("reads {}", kind.says()),
            "observed_unjustified" => window.unjustified,
            "observed_reads" => window.reads,
            "observed_share" => round(Some(share)),
            "window_days" => window.days,
            "baseline_own_share" => round(b.own),
            "baseline_team_share" => round(b.team_usual),
            "baseline_team_share_today" => round(b.team_today),
            "baseline_share" => round(Some(window.baseline)),
            "expected_unjustified" => (window.reads as f64 * window.baseline * 10.0).round() / 10.0,
            "p_value" => p_value,
            "threshold_p_value" => lim.p_value,
            "grace_hours" => lim.grace as f64 / HOUR as f64,
            "pending" => acc.pending.len(),
            "overflow_unjustified" => acc.overflow,
            "sample_customers" => customers,
            "sample_events" => events,
        },
        customers: window.unjustified as u64,
    })
}

impl Detector for NoBusinessContext {
    fn info(&self) -> &'static DetectorInfo {
        &INFO
    }

    fn missing(&self, enricher: &Enricher) -> Option<String> {
        (!enricher.has_cases()).then(|| {
            "no --cases file; only events that carry `case.id` show business context".into()
        })
    }

    fn observe(&mut self, ev: &Enriched, out: &mut Vec<Finding>) {
        let now = ev.event.timestamp().0;
        if now > self.watermark {
            self.watermark = now;
            while let Some(&Reverse((due, actor))) = self.due.peek() {
                if due > now {
                    break;
                }
                self.due.pop();
                self.settle(actor, out);
            }
        }
        let Event::Access(a) = ev.event else { return };
        if ev.kind() != AccountKind::Human || !a.action.reads_data() || a.customer_ids.is_empty() {
            return;
        }
        let lim = self.limits.get(ev.organization);
        let day = now.div_euclid(DAY);
        let group = self
            .groups
            .touch(ev.peer_group, Timestamp(now), Group::default);
        group.roll(day);
        group.reads += 1;
        group.today_reads += a.customer_ids.len() as u64;
        let cased = matches!(
            ev.context,
            BusinessContext::CaseOnEvent | BusinessContext::CaseFile
        );
        if cased {
            group.cased += 1;
        }
        // A team that does not work with cases is never judged: keep no
        // per-account state for it (web clients, stores, resellers).
        if group.reads >= lim.group_min_reads
            && group.cased as f64 / group.reads as f64 <= lim.case_share
        {
            return;
        }
        let acc = self
            .accounts
            .touch(ev.actor, Timestamp(now), Account::default);
        if acc.name.is_empty() {
            acc.name = a.user.clone();
            acc.group = ev.peer_group;
        }
        acc.organization = ev.organization.map(str::to_owned);
        acc.ip = a.source_ip;
        acc.roll(day);
        acc.today.reads += a.customer_ids.len() as u32;
        let before = acc.today.unjustified[0];
        let outside = ev.outside_queue == Some(true);
        let deadline = {
            let late = now + lim.grace;
            ev.shift_end().map_or(late, |end| {
                end.0.clamp(now + MIN_GRACE, late.max(now + MIN_GRACE))
            })
        };
        for c in &a.customer_ids {
            let has_case = cased
                || (ev.context != BusinessContext::Unknown
                    && ev.cases.is_some_and(|k| k.covers(&a.user, c, a.timestamp)));
            if has_case {
                // A case now justifies an earlier read of the same customer.
                acc.pending.retain(|p| *p.customer != **c);
                continue;
            }
            if acc.pending.len() >= PENDING_CAP {
                acc.overflow += 1;
                acc.unjustified(group, now, outside, c, &reference(ev));
                continue;
            }
            let justified = ev
                .cases
                .and_then(|k| k.logged_after(&a.user, c, a.timestamp, lim.grace))
                .map_or(i64::MAX, |t| t.0);
            acc.pending.push(Pending {
                customer: c.as_str().into(),
                read: now,
                outside,
                deadline,
                justified,
                event: reference(ev).into(),
            });
            self.due.push(Reverse((deadline.min(justified), ev.actor)));
        }
        if acc.today.unjustified[0] > before {
            if let Some(f) = judge(acc, group, lim, now) {
                out.push(f);
            }
        }
    }

    fn evict(&mut self, horizon: Timestamp) {
        self.accounts.evict(horizon);
        self.groups.evict(horizon);
        let accounts = &self.accounts;
        self.due
            .retain(|Reverse((_, a))| accounts.get(*a).is_some());
    }

    fn save(&self) -> Result<Vec<u8>, SnapshotError> {
        snapshot::save(&(&self.accounts, &self.groups, &self.due, self.watermark))
    }

    fn restore(&mut self, state: &[u8]) -> Result<(), SnapshotError> {
        (self.accounts, self.groups, self.due, self.watermark) = snapshot::load(state)?;
        Ok(())
    }

    fn tracked_keys(&self) -> usize {
        self.accounts.len() + self.groups.len()
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::*;
    use vakt_event::time::{DAY, HOUR, MINUTE};
    use vakt_event::Severity;

    fn directory(agents: usize) -> String {
        let mut d = "[[organization]]\nid = \"callcenter\"\nkind = \"employee\"\n".to_string();
        for i in 0..agents {
            d += &format!("\n[[account]]\nname = \"cc.{i}\"\norganization = \"callcenter\"\nrole = \"support\"\n");
        }
        d
    }

    /// A support day: 60 lookups, one in 25 without a case.
    fn support_day(h: &mut Harness, user: &str, day: i64) {
        for k in 0..60 {
            h.lookup(
                t0() + day * DAY + 8 * HOUR + k * 9 * MINUTE,
                user,
                "10.50.0.2",
                (day * 100 + k) as u64,
                k % 25 != 0,
            );
        }
    }

    #[test]
    fn an_insider_ramping_up_reads_without_cases_is_caught_on_the_second_day() {
        let mut h = Harness::new(&directory(8), None);
        for day in 0..10 {
            for i in 0..8 {
                support_day(&mut h, &format!("cc.{i}"), day);
            }
        }
        // Day 10: 12 extra reads without a case; day 11: 20; day 12: 35.
        for (d, extra) in [(10i64, 12i64), (11, 20), (12, 35)] {
            support_day(&mut h, "cc.3", d);
            for k in 0..extra {
                h.lookup(
                    t0() + d * DAY + 9 * HOUR + k * 13 * MINUTE,
                    "cc.3",
                    "10.50.0.2",
                    700_000 + (d * 100 + k) as u64,
                    false,
                );
            }
        }
        let alerts = h.finish();
        let n = Harness::rule(&alerts, "no_business_context");
        assert!(!n.is_empty());
        assert!(
            n[0].timestamp.0 < t0() + 12 * DAY,
            "detected {}",
            n[0].timestamp
        );
        assert!(n.iter().all(|a| a.actor.user.as_deref() == Some("cc.3")));
        assert!(n.iter().all(|a| a.severity <= Severity::High));
    }

    /// `directory(agents)` where agent `i` serves region `r{i % 2}`.
    fn regional_directory(agents: usize) -> String {
        directory(agents)
            .replace("role = \"support\"\n", "role = \"support\"\nREGION\n")
            .split("REGION")
            .enumerate()
            .map(|(i, part)| {
                if i == 0 {
                    part.to_string()
                } else {
                    format!("regions = [\"r{}\"]{part}", (i - 1) % 2)
                }
            })
            .collect()
    }

    /// A lookup of a customer in `region`, with or without a case.
    fn regional_lookup(
        h: &mut Harness,
        t: i64,
        user: &str,
        customer: u64,
        region: Option<&str>,
        case: bool,
    ) {
        h.push_access(vakt_event::AccessEvent {
            timestamp: vakt_event::Timestamp(t),
            user: user.into(),
            source_ip: "10.50.0.2".parse().ok(),
            action: vakt_event::Action::Lookup,
            customer_ids: vec![format!("C-{customer:07}")],
            records: 1,
            customer_region: region.map(str::to_owned),
            case_id: case.then(|| format!("K-{customer}")),
            ..Default::default()
        });
    }

    /// Ten support days of 8 agents in their own regions (one read in 25
    /// without a case, one in 10 a transfer from the other region, with a
    /// case), then on day 10 `cc.0` reads 8 more customers before its calls,
    /// without a case (`extra_case` false), in the other region (or,
    /// `regions` false, with no region on the events).
    fn day_with_eight_extra_reads(regions: bool, extra_case: bool) -> Vec<vakt_event::Alert> {
        let mut h = Harness::new(&regional_directory(8), None);
        for day in 0..11i64 {
            if day == 10 {
                // Before the day's calls, in time order with the rest.
                for k in 0..8i64 {
                    let t = t0() + 10 * DAY + 7 * HOUR + k * 7 * MINUTE;
                    let region = regions.then_some("r1");
                    regional_lookup(&mut h, t, "cc.0", 900_000 + k as u64, region, extra_case);
                }
            }
            for i in 0..8usize {
                let user = format!("cc.{i}");
                for k in 0..60i64 {
                    let own = format!("r{}", i % 2);
                    let other = format!("r{}", (i + 1) % 2);
                    let region = if k % 10 == 5 { &other } else { &own };
                    let t = t0() + day * DAY + 8 * HOUR + k * 9 * MINUTE;
                    let customer = (day * 1000 + i as i64 * 100 + k) as u64;
                    regional_lookup(
                        &mut h,
                        t,
                        &user,
                        customer,
                        regions.then_some(region.as_str()),
                        k % 25 != 0,
                    );
                }
            }
        }
        // The next morning: every pending read has met its deadline.
        regional_lookup(&mut h, t0() + 11 * DAY + 8 * HOUR, "cc.1", 1, None, true);
        h.finish()
    }

    #[test]
    fn reads_without_a_case_outside_the_queues_region_are_caught_the_same_day() {
        let alerts = day_with_eight_extra_reads(true, false);
        let n = Harness::rule(&alerts, "no_business_context");
        assert_eq!(n.len(), 1, "{n:#?}");
        assert_eq!(n[0].actor.user.as_deref(), Some("cc.0"));
        // Found once the reads' four hours of grace are over, that morning.
        assert!(
            n[0].timestamp.0 <= t0() + 10 * DAY + 12 * HOUR,
            "{}",
            n[0].timestamp
        );
        assert!(
            n[0].evidence["counted"]
                .as_str()
                .unwrap()
                .contains("outside"),
            "{:?}",
            n[0].evidence
        );
        // Fewer than `min_reads` (10): the ordinary count alone would wait.
        let observed = n[0].evidence["observed_unjustified"].as_u64().unwrap();
        assert!((5..10).contains(&observed), "{observed}");
        // The same reads without regions on the events: too few to say.
        let alerts = day_with_eight_extra_reads(false, false);
        assert!(Harness::rule(&alerts, "no_business_context").is_empty());
    }

    #[test]
    fn transfers_from_another_region_with_a_case_are_fine() {
        let alerts = day_with_eight_extra_reads(true, true);
        assert!(Harness::rule(&alerts, "no_business_context").is_empty());
    }

    #[test]
    fn ordinary_reads_without_a_case_and_groups_without_cases_are_fine() {
        let mut d = directory(8);
        d += "\n[[organization]]\nid = \"store-1\"\nkind = \"employee\"\n\n[[account]]\nname = \"st1.anna\"\norganization = \"store-1\"\nrole = \"store\"\n";
        let mut h = Harness::new(&d, None);
        for day in 0..15 {
            for i in 0..8 {
                support_day(&mut h, &format!("cc.{i}"), day);
            }
            // Stores never use cases: 40 lookups a day.
            for k in 0..40 {
                h.lookup(
                    t0() + day * DAY + 9 * HOUR + k * 10 * MINUTE,
                    "st1.anna",
                    "10.1.1.2",
                    (day * 100 + k) as u64,
                    false,
                );
            }
        }
        assert!(Harness::rule(&h.finish(), "no_business_context").is_empty());
    }
}

#[cfg(test)]
mod blended {
    use crate::testing::*;
    use vakt_event::time::{DAY, HOUR, MINUTE};
    use vakt_event::{Alert, Timestamp};

    const AGENTS: usize = 10;
    const INSIDER: &str = "cc.3";

    /// A support team working 08:00-18:00 UTC, and a store account whose
    /// lookups (not judged: stores work without cases) keep time moving.
    fn directory() -> String {
        let mut d = "[[organization]]\nid = \"callcenter\"\nkind = \"employee\"\n\n[[organization]]\nid = \"store-1\"\nkind = \"employee\"\n\n[[account]]\nname = \"st.clock\"\norganization = \"store-1\"\nrole = \"store\"\n".to_string();
        for i in 0..AGENTS {
            d += &format!("\n[[account]]\nname = \"cc.{i}\"\norganization = \"callcenter\"\nrole = \"support\"\nhours = \"08:00-18:00\"\ntimezone = \"UTC\"\n");
        }
        d
    }

    #[derive(Default)]
    struct Day {
        /// Extra reads without a case, by agent.
        extra: Vec<(usize, i64)>,
        /// Agents who log their cases two to three hours after the read.
        late: Vec<usize>,
        /// The case system is down from 10:00 to 14:00.
        outage: bool,
    }

    /// Builds the days' lookups (time, user, customer, case on the event)
    /// and cases file; `justified` reads per agent a day, every 25th
    /// without a case (a caller who hung up).
    fn team(days: &[Day], justified: i64) -> (Vec<(i64, String, u64, bool)>, String) {
        let mut reads = Vec::new();
        let mut cases = String::from("case_id,customer_id,account,opened,closed\n");
        for (d, day) in days.iter().enumerate() {
            let base = t0() + d as i64 * DAY;
            for a in 0..AGENTS {
                let user = format!("cc.{a}");
                for k in 0..justified {
                    let t = base + 8 * HOUR + k * (9 * HOUR) / justified + a as i64 * 7_000;
                    let c = (d * 1_000_000 + a * 10_000) as u64 + k as u64;
                    let down = day.outage && (base + 10 * HOUR..base + 14 * HOUR).contains(&t);
                    let cased = k % 25 != 7 && !down;
                    if cased && day.late.contains(&a) {
                        let opened = (t + 2 * HOUR + (k % 4) * 15 * MINUTE).min(base + 18 * HOUR);
                        cases += &format!(
                            "K-{c},C-{c:07},{user},{},{}\n",
                            Timestamp(opened),
                            Timestamp(opened + HOUR)
                        );
                        reads.push((t, user.clone(), c, false));
                    } else {
                        reads.push((t, user.clone(), c, cased));
                    }
                }
                for &(_, n) in day.extra.iter().filter(|(x, _)| *x == a) {
                    for k in 0..n {
                        let t = base + 8 * HOUR + 10 * MINUTE + k * (8 * HOUR) / n;
                        reads.push((
                            t,
                            user.clone(),
                            (d * 1_000_000 + 900_000 + k as usize) as u64,
                            false,
                        ));
                    }
                }
            }
            for k in 0..48 {
                reads.push((
                    base + k * 30 * MINUTE,
                    "st.clock".into(),
                    5_000_000 + k as u64,
                    false,
                ));
            }
        }
        reads.sort();
        (reads, cases)
    }

    fn run(days: &[Day], justified: i64) -> Vec<Alert> {
        let (reads, cases) = team(days, justified);
        let mut h = Harness::new(&directory(), Some(&cases));
        for (t, user, c, cased) in reads {
            h.lookup(t, &user, "10.50.0.2", c, cased);
        }
        h.finish()
            .into_iter()
            .filter(|a| a.rule == "no_business_context")
            .collect()
    }

    /// Eight ordinary days, then `last`.
    fn weeks(last: Day) -> Vec<Day> {
        let mut days: Vec<Day> = (0..8).map(|_| Day::default()).collect();
        days.push(last);
        days
    }

    #[test]
    fn a_blended_insider_is_found_before_the_end_of_the_first_working_day() {
        for (justified, extra) in [(60, 15), (90, 20), (120, 30)] {
            let alerts = run(
                &weeks(Day {
                    extra: vec![(3, extra)],
                    ..Day::default()
                }),
                justified,
            );
            assert!(!alerts.is_empty(), "{extra} among {justified} not found");
            let first = &alerts[0];
            assert_eq!(first.actor.user.as_deref(), Some(INSIDER));
            assert!(alerts
                .iter()
                .all(|a| a.actor.user.as_deref() == Some(INSIDER)));
            // Found by the end of the working day of the first extra read.
            assert!(
                first.timestamp.0 <= t0() + 8 * DAY + 18 * HOUR,
                "{extra} among {justified}: found at {}",
                first.timestamp
            );
            let e = &first.evidence;
            assert!(e["p_value"].as_f64().unwrap() <= 1e-5, "{e:?}");
            assert!(e["observed_unjustified"].as_u64().unwrap() >= 10);
            assert!(!e["sample_customers"].as_array().unwrap().is_empty());
            assert!(
                first.message.contains("without a case"),
                "{}",
                first.message
            );
        }
    }

    #[test]
    fn the_faintest_insider_is_found_on_the_second_day() {
        let mut days = weeks(Day {
            extra: vec![(3, 10)],
            ..Day::default()
        });
        days.push(Day {
            extra: vec![(3, 10)],
            ..Day::default()
        });
        let alerts = run(&days, 120);
        assert!(!alerts.is_empty());
        assert!(alerts
            .iter()
            .all(|a| a.actor.user.as_deref() == Some(INSIDER)));
        assert!(alerts[0].timestamp.0 <= t0() + 9 * DAY + 18 * HOUR);
    }

    #[test]
    fn cases_logged_hours_late_are_not_unjustified_reads() {
        let alerts = run(
            &weeks(Day {
                late: vec![2, 5],
                ..Day::default()
            }),
            90,
        );
        assert!(alerts.is_empty(), "{:?}", alerts[0].message);
    }

    #[test]
    fn a_case_system_outage_for_the_whole_team_flags_nobody_that_day_or_the_next() {
        let mut days = weeks(Day {
            outage: true,
            ..Day::default()
        });
        days.push(Day {
            extra: vec![(6, 4)],
            ..Day::default()
        });
        let alerts = run(&days, 90);
        assert!(alerts.is_empty(), "{:?}", alerts[0].message);
    }

    #[test]
    fn a_busy_agent_with_a_case_for_every_read_is_fine() {
        let mut days = weeks(Day::default());
        // cc.4 reads 300 more customers, each with a case.
        let (mut reads, cases) = team(&days, 80);
        for k in 0..300 {
            reads.push((
                t0() + 8 * DAY + 8 * HOUR + k * 100_000,
                "cc.4".into(),
                7_000_000 + k as u64,
                true,
            ));
        }
        reads.sort();
        days.clear();
        let mut h = Harness::new(&directory(), Some(&cases));
        for (t, user, c, cased) in reads {
            h.lookup(t, &user, "10.50.0.2", c, cased);
        }
        assert!(Harness::rule(&h.finish(), "no_business_context").is_empty());
    }
}
