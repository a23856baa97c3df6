//! The incidents of PRODUCT.md, injected into the operator's traffic with
//! variations drawn from the seed, and labelled.

use crate::rng::SimRng;
use crate::web::Request;
use crate::world::{ip4, Hour, Role, World};
use crate::{LabelActors, Scenario, ScenarioLabel};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use std::collections::HashSet;
use std::net::IpAddr;
use vakt_event::time::{HOUR, SECOND};
use vakt_event::{Action, HttpMethod, Timestamp};

struct Track {
    label: ScenarioLabel,
    customers: HashSet<u32>,
    records: u64,
}

impl Track {
    fn new(id: Scenario, actors: LabelActors) -> Track {
        Track {
            label: ScenarioLabel {
                id,
                title: id.title().into(),
                actors,
                start: Timestamp(i64::MAX),
                end: Timestamp(i64::MIN),
                customers: 0,
                events: 0,
            },
            customers: HashSet::new(),
            records: 0,
        }
    }

    fn saw(&mut self, t: i64, customers: &[u32], records: u64) {
        self.label.start = self.label.start.min(Timestamp(t));
        self.label.end = self.label.end.max(Timestamp(t));
        self.label.events += 1;
        self.customers.extend(customers.iter().copied());
        self.records += records;
    }
}

enum Plan {
    /// A bot on a partner account: from `day`, `hours` of lookups every `interval` s, for `nights` days.
    S1 {
        actor: usize,
        ip: IpAddr,
        day: u32,
        hour: u32,
        hours: u32,
        days: u32,
        interval: f64,
        sequential: bool,
        cursor: u32,
    },
    /// Two reseller accounts used from other networks at human pace.
    S2 {
        actors: [usize; 2],
        ips: [IpAddr; 2],
        day: u32,
        days: u32,
        gap: (f64, f64),
    },
    /// A bulk export at night from a new address.
    S3 {
        actor: usize,
        ip: IpAddr,
        day: u32,
        records: u64,
    },
    /// A laptop uploading to relays at night.
    S4 {
        actor: usize,
        day: u32,
        nights: u32,
        relays: Vec<(IpAddr, &'static str)>,
    },
    /// An insider reading customers without a case, blended into a
    /// normal day's work: `extra` a day, more or less, for `days`.
    S5 {
        actor: usize,
        day: u32,
        days: u32,
        extra: (f64, f64),
    },
    /// A vendor integration reading payment data and sending to a new destination.
    S6 {
        actor: usize,
        host: usize,
        day: u32,
        share: f64,
        dest: IpAddr,
    },
    /// A laptop's trojan calling its command server every `every` s, with
    /// +-20% jitter and a few bytes, for `hours` from `day` at `hour` UTC.
    /// Its own generator, so the other incidents and the benign traffic
    /// stay as they were without it.
    S4b {
        actor: usize,
        day: u32,
        hour: u32,
        hours: u32,
        every: f64,
        dest: IpAddr,
        next: i64,
        rng: Box<SimRng>,
    },
    /// A script behind `accounts` of one dealer shop, from the shop's own
    /// address while their owners are away: it signs in, then opens record
    /// pages straight from a list (no search, no referrer, no scripts or
    /// images), a page every `gap` s or so (log-normal, like a person's).
    S1b {
        accounts: Vec<usize>,
        nat: IpAddr,
        agent: &'static str,
        day: u32,
        days: u32,
        gap: f64,
        sessions: Vec<Option<String>>,
        rng: Box<SimRng>,
    },
    /// A scraper on the order-tracking page from `ips` of one network,
    /// each with its own browser name, `per_hour` pages an address, for
    /// `hours` from `day` at `hour` UTC.
    S1c {
        ips: Vec<IpAddr>,
        agents: Vec<&'static str>,
        day: u32,
        hour: u32,
        hours: u32,
        per_hour: f64,
        rng: Box<SimRng>,
    },
}

/// Poisson(`lambda`) lookups of one customer each by `actor` within the
/// hour, labelled as the incident's.
fn injected_lookups(
    w: &mut World,
    track: &mut Track,
    actor: usize,
    h: &Hour,
    lambda: f64,
    categories: &[&str],
) {
    let n = crate::rng::poisson(&mut w.rng, lambda);
    for _ in 0..n {
        let t = h.start + w.rng.gen_range(0..HOUR);
        let c = w.customer();
        w.access(actor, t, Action::Lookup, &[c], None, categories, None, None);
        track.saw(t, &[c], 0);
    }
}

pub(crate) struct Plans {
    plans: Vec<(Plan, Track)>,
}

fn weekday_on_or_after(w: &World, mut day: u32) -> u32 {
    loop {
        let h = w.hour(w.cfg.start.0 + day as i64 * 24 * HOUR + 12 * HOUR);
        if h.weekday_work() || day + 1 >= w.cfg.days {
            return day;
        }
        day += 1;
    }
}

fn outside_ip(w: &mut World, first: u8) -> IpAddr {
    ip4(
        first,
        w.rng.gen_range(1..250),
        w.rng.gen_range(0..250),
        w.rng.gen_range(2..250),
    )
}

impl Plans {
    pub fn new(w: &mut World) -> Plans {
        let days = w.cfg.days.max(1);
        let span = |w: &mut World, lo: f64, hi: f64| -> u32 {
            let lo = ((days as f64 * lo) as u32).min(days - 1);
            let hi = ((days as f64 * hi) as u32).clamp(lo + 1, days);
            w.rng.gen_range(lo..hi)
        };
        let mut plans = Vec::new();
        let mut scenarios = w.cfg.scenarios.clone();
        scenarios.sort();
        scenarios.dedup();
        for s in scenarios {
            let plan = match s {
                Scenario::S1 => {
                    let actor = *w
                        .find(Role::Partner)
                        .choose(&mut w.rng)
                        .expect("partners exist");
                    let day = span(w, 0.3, 0.7);
                    Plan::S1 {
                        actor,
                        ip: outside_ip(w, 45),
                        day,
                        hour: w.rng.gen_range(0..24),
                        hours: w.rng.gen_range(3..9),
                        days: w.rng.gen_range(1..4),
                        interval: w.rng.gen_range(1.0..4.0),
                        sequential: w.rng.gen_bool(0.5),
                        cursor: w.rng.gen_range(1000..w.customers / 2),
                    }
                }
                Scenario::S2 => {
                    let mut r = w.find(Role::Reseller);
                    r.shuffle(&mut w.rng);
                    let d = span(w, 0.25, 0.6);
                    let day = weekday_on_or_after(w, d);
                    Plan::S2 {
                        actors: [r[0], r[1]],
                        ips: [outside_ip(w, 185), outside_ip(w, 91)],
                        day,
                        days: w.rng.gen_range(5..11),
                        gap: if w.rng.gen_bool(0.5) {
                            (30.0, 90.0)
                        } else {
                            (45.0, 120.0)
                        },
                    }
                }
                Scenario::S3 => {
                    let dbas = w.find(Role::Dba);
                    let actor = *dbas.choose(&mut w.rng).expect("dbas exist");
                    Plan::S3 {
                        actor,
                        ip: ip4(10, 99, w.rng.gen_range(0..250), w.rng.gen_range(2..250)),
                        day: span(w, 0.4, 0.9),
                        records: w.rng.gen_range(200_000..2_000_000),
                    }
                }
                Scenario::S4 => {
                    let actor = *w
                        .find(Role::Laptop)
                        .choose(&mut w.rng)
                        .expect("laptops exist");
                    let mut countries = ["RU", "BR", "VN", "NG", "RO", "KZ", "PA"];
                    countries.shuffle(&mut w.rng);
                    let n = w.rng.gen_range(3..6);
                    let relays = countries[..n]
                        .iter()
                        .map(|c| (outside_ip(w, 77), *c))
                        .collect();
                    Plan::S4 {
                        actor,
                        day: span(w, 0.35, 0.9),
                        nights: w.rng.gen_range(1..3),
                        relays,
                    }
                }
                Scenario::S5 => {
                    let agents: Vec<usize> = w
                        .find(Role::Agent)
                        .into_iter()
                        .filter(|&a| w.actors[a].join_day == 0 && w.actors[a].leave_day == days)
                        .collect();
                    let actor = *agents.choose(&mut w.rng).expect("agents exist");
                    let d = span(w, 0.3, 0.6);
                    Plan::S5 {
                        actor,
                        day: weekday_on_or_after(w, d),
                        days: w.rng.gen_range(6..12),
                        extra: (10.0, 30.0),
                    }
                }
                Scenario::S4b => {
                    let mut rng = SimRng::seed_from_u64(w.cfg.seed ^ 0x5b4b_ea60);
                    let laptops = w.find(Role::Laptop);
                    let actor = laptops[rng.gen_range(0..laptops.len())];
                    let lo = ((days as f64 * 0.3) as u32).min(days - 1);
                    let hi = ((days as f64 * 0.8) as u32).clamp(lo + 1, days);
                    Plan::S4b {
                        actor,
                        day: rng.gen_range(lo..hi),
                        hour: rng.gen_range(0..24),
                        hours: rng.gen_range(3..10),
                        every: rng.gen_range(45.0..90.0),
                        dest: ip4(
                            185,
                            rng.gen_range(1..250),
                            rng.gen_range(0..250),
                            rng.gen_range(2..250),
                        ),
                        next: i64::MIN,
                        rng: Box::new(rng),
                    }
                }
                Scenario::S1b => {
                    let mut rng = SimRng::seed_from_u64(w.cfg.seed ^ 0x051b_0b07);
                    let shops: Vec<(IpAddr, Vec<usize>)> = w
                        .portal
                        .shops
                        .iter()
                        .filter(|(_, staff)| staff.len() >= 5)
                        .cloned()
                        .collect();
                    let (nat, staff) = shops
                        .choose(&mut rng)
                        .cloned()
                        .or_else(|| w.portal.shops.first().cloned())
                        .expect("dealer shops exist");
                    let mut staff = staff;
                    staff.shuffle(&mut rng);
                    staff.truncate(3);
                    let lo = ((days as f64 * 0.3) as u32).min(days - 1);
                    let hi = ((days as f64 * 0.7) as u32).clamp(lo + 1, days);
                    let day = weekday_on_or_after(w, rng.gen_range(lo..hi));
                    let n = rng.gen_range(2..5);
                    for &a in &staff {
                        w.portal.away.push((a, day, day + n));
                    }
                    Plan::S1b {
                        sessions: vec![None; staff.len()],
                        accounts: staff,
                        nat,
                        agent: crate::web::BROWSERS[0],
                        day,
                        days: n,
                        gap: rng.gen_range(240.0..400.0),
                        rng: Box::new(rng),
                    }
                }
                Scenario::S1c => {
                    let mut rng = SimRng::seed_from_u64(w.cfg.seed ^ 0x51c5_c4a9);
                    let net = (
                        rng.gen_range(2..224u8),
                        rng.gen_range(0..250u8),
                        rng.gen_range(0..250u8),
                    );
                    let n = rng.gen_range(5..9);
                    let mut hosts: Vec<u8> = (2..250).collect();
                    hosts.shuffle(&mut rng);
                    let ips: Vec<IpAddr> = hosts[..n]
                        .iter()
                        .map(|&d| ip4(net.0, net.1, net.2, d))
                        .collect();
                    let agents = (0..n)
                        .map(|_| crate::web::BROWSERS[rng.gen_range(0..crate::web::BROWSERS.len())])
                        .collect();
                    let lo = ((days as f64 * 0.3) as u32).min(days - 1);
                    let hi = ((days as f64 * 0.8) as u32).clamp(lo + 1, days);
                    Plan::S1c {
                        ips,
                        agents,
                        day: rng.gen_range(lo..hi),
                        hour: rng.gen_range(0..24),
                        hours: rng.gen_range(4..11),
                        per_hour: rng.gen_range(30.0..45.0),
                        rng: Box::new(rng),
                    }
                }
                Scenario::S6 => {
                    let actor = w.find(Role::Vendor)[0];
                    let host = w.find(Role::ChatGateway)[0];
                    Plan::S6 {
                        actor,
                        host,
                        day: span(w, 0.3, 0.8),
                        share: w.rng.gen_range(0.2..0.5),
                        dest: outside_ip(w, 103),
                    }
                }
            };
            let actors = match &plan {
                Plan::S1 { actor, ip, .. } => LabelActors {
                    users: vec![w.actors[*actor].name.clone()],
                    hosts: vec![],
                    ips: vec![ip.to_string()],
                },
                Plan::S2 { actors, ips, .. } => LabelActors {
                    users: actors.iter().map(|&a| w.actors[a].name.clone()).collect(),
                    hosts: vec![],
                    ips: ips.iter().map(|i| i.to_string()).collect(),
                },
                Plan::S3 { actor, ip, .. } => LabelActors {
                    users: vec![w.actors[*actor].name.clone()],
                    hosts: vec![],
                    ips: vec![ip.to_string()],
                },
                Plan::S4 { actor, .. } => LabelActors {
                    users: vec![],
                    hosts: vec![w.actors[*actor].name.clone()],
                    ips: vec![],
                },
                Plan::S5 { actor, .. } => LabelActors {
                    users: vec![w.actors[*actor].name.clone()],
                    hosts: vec![],
                    ips: vec![],
                },
                Plan::S6 {
                    actor, host, dest, ..
                } => LabelActors {
                    users: vec![w.actors[*actor].name.clone()],
                    hosts: vec![w.actors[*host].name.clone()],
                    ips: vec![dest.to_string()],
                },
                Plan::S4b { actor, .. } => LabelActors {
                    users: vec![],
                    hosts: vec![w.actors[*actor].name.clone()],
                    ips: vec![],
                },
                // The shop's address is its honest staff's too: not the incident's.
                Plan::S1b { accounts, .. } => LabelActors {
                    users: accounts.iter().map(|&a| w.actors[a].name.clone()).collect(),
                    hosts: vec![],
                    ips: vec![],
                },
                // A visitor who has not signed in is named by the address.
                Plan::S1c { ips, .. } => LabelActors {
                    users: ips.iter().map(|i| i.to_string()).collect(),
                    hosts: vec![],
                    ips: ips.iter().map(|i| i.to_string()).collect(),
                },
            };
            plans.push((plan, Track::new(s, actors)));
        }
        Plans { plans }
    }

    pub fn labels(&self) -> Vec<ScenarioLabel> {
        self.plans
            .iter()
            .filter(|(_, t)| t.label.events > 0)
            .map(|(_, t)| {
                let mut l = t.label.clone();
                l.customers = (t.customers.len() as u64).max(t.records);
                l
            })
            .collect()
    }

    pub fn hour(&mut self, w: &mut World, h: &Hour) {
        for (plan, track) in &mut self.plans {
            match plan {
                Plan::S1 {
                    actor,
                    ip,
                    day,
                    hour,
                    hours,
                    days,
                    interval,
                    sequential,
                    cursor,
                } => {
                    let d = h.day as i64 - *day as i64;
                    if d < 0 || d >= *days as i64 {
                        continue;
                    }
                    // Runs `hours` from `hour` UTC each day.
                    let offset = (h.start
                        - (w.cfg.start.0 + *day as i64 * 24 * HOUR + d * 24 * HOUR))
                        / HOUR
                        - *hour as i64;
                    if offset < 0 || offset >= *hours as i64 {
                        continue;
                    }
                    let step = (*interval * SECOND as f64) as i64;
                    let mut t = h.start + w.rng.gen_range(0..step);
                    while t < h.start + HOUR {
                        let c = if *sequential {
                            *cursor += 1;
                            *cursor
                        } else {
                            w.customer()
                        };
                        w.access(
                            *actor,
                            t,
                            Action::Lookup,
                            &[c],
                            None,
                            &["name", "address", "phone"],
                            None,
                            Some(*ip),
                        );
                        track.saw(t, &[c], 0);
                        // A regular cadence with a little jitter.
                        t += (step as f64 * w.rng.gen_range(0.9..1.1)) as i64;
                    }
                }
                Plan::S2 {
                    actors,
                    ips,
                    day,
                    days,
                    gap,
                } => {
                    if !h.working_day_hour(*day, *days, 9, 17) {
                        continue;
                    }
                    for k in 0..2 {
                        let mut t = h.start + w.rng.gen_range(0..60 * SECOND);
                        loop {
                            t += (w.rng.gen_range(gap.0..gap.1) * SECOND as f64) as i64;
                            if t >= h.start + HOUR {
                                break;
                            }
                            // A break now and then, like a person.
                            if w.rng.gen_bool(0.1) {
                                continue;
                            }
                            let c = w.customer();
                            w.access(
                                actors[k],
                                t,
                                Action::Lookup,
                                &[c],
                                None,
                                &["name", "address", "phone"],
                                None,
                                Some(ips[k]),
                            );
                            track.saw(t, &[c], 0);
                        }
                    }
                }
                Plan::S3 {
                    actor,
                    ip,
                    day,
                    records,
                } => {
                    if h.day != *day || h.local_hour != 2 {
                        continue;
                    }
                    let t = h.start + w.rng.gen_range(0..HOUR / 2);
                    let cats = ["name", "address", "phone", "national_id", "driver_license"];
                    w.access(
                        *actor,
                        t,
                        Action::Search,
                        &[],
                        Some(*records / 3),
                        &cats,
                        None,
                        Some(*ip),
                    );
                    track.saw(t, &[], *records / 3);
                    let t2 = t + w.rng.gen_range(5 * 60 * SECOND..20 * 60 * SECOND);
                    w.access(
                        *actor,
                        t2,
                        Action::Export,
                        &[],
                        Some(*records - *records / 3),
                        &cats,
                        None,
                        Some(*ip),
                    );
                    track.saw(t2, &[], *records - *records / 3);
                }
                Plan::S4 {
                    actor,
                    day,
                    nights,
                    relays,
                } => {
                    if h.day < *day || h.day >= *day + *nights || !(1..5).contains(&h.local_hour) {
                        continue;
                    }
                    let n = w.rng.gen_range(4..10);
                    for _ in 0..n {
                        let t = h.start + w.rng.gen_range(0..HOUR);
                        let (ip, cc) = relays[w.rng.gen_range(0..relays.len())];
                        let bytes = w.rng.gen_range(50_000_000..400_000_000);
                        w.flow(*actor, t, ip, cc, bytes);
                        track.saw(t, &[], 0);
                    }
                }
                Plan::S5 {
                    actor,
                    day,
                    days,
                    extra,
                } => {
                    if !h.working_day_hour(*day, *days, 8, 18) {
                        continue;
                    }
                    let per_day = w.rng.gen_range(extra.0..extra.1);
                    injected_lookups(
                        w,
                        track,
                        *actor,
                        h,
                        per_day / 10.0,
                        &["name", "address", "phone", "email"],
                    );
                }
                Plan::S6 {
                    actor,
                    host,
                    day,
                    share,
                    dest,
                } => {
                    if h.day < *day {
                        continue;
                    }
                    let lambda = if h.in_local(8, 22) { 60.0 } else { 8.0 } * *share;
                    injected_lookups(
                        w,
                        track,
                        *actor,
                        h,
                        lambda,
                        &["name", "email", "payment_card", "password"],
                    );
                    for _ in 0..crate::rng::poisson(&mut w.rng, 6.0) {
                        let t = h.start + w.rng.gen_range(0..HOUR);
                        let bytes = w.rng.gen_range(20_000..200_000);
                        w.flow(*host, t, *dest, "PA", bytes);
                        track.saw(t, &[], 0);
                    }
                }
                Plan::S4b {
                    actor,
                    day,
                    hour,
                    hours,
                    every,
                    dest,
                    next,
                    rng,
                } => {
                    let start = w.cfg.start.0 + *day as i64 * 24 * HOUR + *hour as i64 * HOUR;
                    let end = start + *hours as i64 * HOUR;
                    if h.start + HOUR <= start || h.start >= end {
                        continue;
                    }
                    if *next == i64::MIN {
                        *next = start + rng.gen_range(0..(*every * SECOND as f64) as i64);
                    }
                    while *next < (h.start + HOUR).min(end) {
                        // A check-in: a few bytes, often none.
                        let bytes = if rng.gen_bool(0.3) {
                            0
                        } else {
                            rng.gen_range(60..200)
                        };
                        w.flow(*actor, *next, *dest, "NL", bytes);
                        track.saw(*next, &[], 0);
                        *next += (*every * SECOND as f64 * rng.gen_range(0.8..1.2)) as i64;
                    }
                }
                Plan::S1b {
                    accounts,
                    nat,
                    agent,
                    day,
                    days,
                    gap,
                    sessions,
                    rng,
                } => {
                    if !h.working_day_hour(*day, *days, 9, 17) {
                        continue;
                    }
                    for (k, &a) in accounts.iter().enumerate() {
                        let name = w.actors[a].name.clone();
                        let mut t = h.start + rng.gen_range(0..5 * 60 * SECOND);
                        if h.in_local(9, 10) || sessions[k].is_none() {
                            // A new day's sign-in: straight to the form's target.
                            let session = format!("{:016x}", rng.gen::<u64>());
                            sessions[k] = Some(session.clone());
                            let mut login =
                                Request::page(name.clone(), *nat, agent, "/login".into());
                            login.method = HttpMethod::Post;
                            login.action = Action::Login;
                            login.status = 302;
                            login.bytes = 300;
                            login.session = Some(session);
                            w.request(Some(a), t, login);
                            track.saw(t, &[], 0);
                        }
                        loop {
                            t += crate::rng::lognormal(rng, *gap * SECOND as f64, 0.6) as i64;
                            if t >= h.start + HOUR {
                                break;
                            }
                            // A purchased list: customers anywhere, a few gone.
                            let c = rng.gen_range(0..w.customers);
                            let missing = rng.gen_bool(0.02);
                            let page = Request {
                                session: sessions[k].clone(),
                                action: Action::Lookup,
                                customer: (!missing).then_some(c),
                                status: if missing { 404 } else { 200 },
                                bytes: rng.gen_range(25_000..60_000),
                                ..Request::page(
                                    name.clone(),
                                    *nat,
                                    agent,
                                    crate::web::record_path(c),
                                )
                            };
                            w.request(Some(a), t, page);
                            track.saw(
                                t,
                                if missing {
                                    &[]
                                } else {
                                    std::slice::from_ref(&c)
                                },
                                0,
                            );
                        }
                    }
                }
                Plan::S1c {
                    ips,
                    agents,
                    day,
                    hour,
                    hours,
                    per_hour,
                    rng,
                } => {
                    let start = w.cfg.start.0 + *day as i64 * 24 * HOUR + *hour as i64 * HOUR;
                    let end = start + *hours as i64 * HOUR;
                    if h.start < start || h.start >= end {
                        continue;
                    }
                    for (ip, agent) in ips.iter().zip(agents.iter()) {
                        for _ in 0..crate::rng::poisson(rng, *per_hour) {
                            let t = h.start + rng.gen_range(0..HOUR);
                            let c = rng.gen_range(0..w.customers);
                            let page = Request {
                                action: Action::Lookup,
                                customer: Some(c),
                                bytes: 22_000,
                                ..Request::page(
                                    ip.to_string(),
                                    *ip,
                                    agent,
                                    crate::web::tracking_path(c),
                                )
                            };
                            w.request(None, t, page);
                            track.saw(t, &[c], 0);
                        }
                    }
                }
            }
        }
    }
}
