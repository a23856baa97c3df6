//! The benign operator: who works when, reads what, sends where.

use crate::rng::{lognormal, poisson, SimRng};
use crate::scenarios::Plans;
use crate::{BenignSummary, Labels, Scale, SimConfig, SimError, SimSummary};
use chrono::{Datelike, TimeZone, Timelike, Weekday};
use chrono_tz::Tz;
use rand::{Rng, SeedableRng};
use std::collections::HashSet;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use vakt_event::time::{DAY, HOUR};
use vakt_event::{AccessEvent, Action, Event, FlowEvent, Timestamp};

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    Store,
    Agent,
    Reseller,
    Partner,
    SelfService,
    Billing,
    Batch,
    Dba,
    Vendor,
    Laptop,
    Server,
    Backup,
    ChatGateway,
}

pub(crate) struct Actor {
    pub name: String,
    pub role: Role,
    pub org: String,
    pub ip: IpAddr,
    pub join_day: u32,
    pub leave_day: u32,
    /// Personal pace relative to the role's.
    pub pace: f64,
    /// Usual destinations (indexes into the destination pool), for hosts.
    pub dests: Vec<usize>,
}

impl Actor {
    pub fn is_host(&self) -> bool {
        matches!(
            self.role,
            Role::Laptop | Role::Server | Role::Backup | Role::ChatGateway
        )
    }
}

/// Local time facts of one simulated hour.
#[derive(Copy, Clone, Debug)]
pub(crate) struct Hour {
    pub start: i64,
    pub day: u32,
    pub local_hour: u32,
    pub weekday: Weekday,
    pub holiday: bool,
    pub launch: bool,
}

impl Hour {
    pub fn weekday_work(&self) -> bool {
        !self.holiday && !matches!(self.weekday, Weekday::Sat | Weekday::Sun)
    }

    pub fn in_local(&self, from: u32, to: u32) -> bool {
        (from..to).contains(&self.local_hour)
    }
}

pub(crate) struct Sizes {
    stores: u32,
    staff_per_store: u32,
    agents: u32,
    resellers: u32,
    partners: u32,
    laptops: u32,
    servers: u32,
    /// Multiplier for service traffic.
    service_load: f64,
    pub customers: u32,
}

fn sizes(scale: Scale) -> Sizes {
    match scale {
        Scale::Small => Sizes {
            stores: 8,
            staff_per_store: 3,
            agents: 15,
            resellers: 6,
            partners: 3,
            laptops: 20,
            servers: 3,
            service_load: 0.1,
            customers: 20_000,
        },
        Scale::Medium => Sizes {
            stores: 60,
            staff_per_store: 4,
            agents: 120,
            resellers: 40,
            partners: 10,
            laptops: 200,
            servers: 10,
            service_load: 1.0,
            customers: 200_000,
        },
        Scale::Large => Sizes {
            stores: 3000,
            staff_per_store: 6,
            agents: 7000,
            resellers: 2000,
            partners: 500,
            laptops: 10_000,
            servers: 300,
            service_load: 60.0,
            customers: 10_000_000,
        },
    }
}

pub(crate) const BACKUP_DEST: &str = "203.0.113.10";
pub(crate) const VENDOR_DEST: &str = "192.0.2.80";

pub(crate) struct World {
    pub rng: SimRng,
    pub cfg: SimConfig,
    pub actors: Vec<Actor>,
    pub customers: u32,
    pub dest_pool: Vec<(IpAddr, &'static str)>,
    active: Vec<bool>,
    out: Vec<(i64, u64, String)>,
    seq: u64,
    cases: BufWriter<File>,
    case_seq: u64,
    pub cases_written: u64,
    pub access_events: u64,
    pub flow_events: u64,
    launch_day: u32,
    tz: Tz,
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> SimError + '_ {
    move |source| SimError::Io {
        path: path.display().to_string(),
        source,
    }
}

pub(crate) fn run(
    cfg: &SimConfig,
    dir: &Path,
    mut progress: impl FnMut(u64),
) -> Result<SimSummary, SimError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let events_path = dir.join("events.jsonl");
    let cases_path = dir.join("cases.csv");
    let mut events = BufWriter::with_capacity(
        1 << 20,
        File::create(&events_path).map_err(io(&events_path))?,
    );
    let mut cases = BufWriter::new(File::create(&cases_path).map_err(io(&cases_path))?);
    writeln!(cases, "case_id,customer_id,account,opened,closed").map_err(io(&cases_path))?;

    let mut world = World::new(cfg.clone(), cases);
    let mut plans = Plans::new(&mut world);
    let dir_path = dir.join("directory.toml");
    std::fs::write(&dir_path, world.directory_toml()).map_err(io(&dir_path))?;

    let hours = cfg.days as i64 * 24;
    for h in 0..hours {
        let hour = world.hour(cfg.start.0 + h * HOUR);
        world.benign_hour(&hour);
        plans.hour(&mut world, &hour);
        world.flush_hour(&mut events).map_err(io(&events_path))?;
        progress(hour.start as u64 + HOUR as u64);
    }
    events.flush().map_err(io(&events_path))?;
    world.cases.flush().map_err(io(&cases_path))?;

    let scenario_labels = plans.labels();
    let scenario_actors: HashSet<&str> = scenario_labels
        .iter()
        .flat_map(|l| l.actors.users.iter().chain(&l.actors.hosts))
        .map(String::as_str)
        .collect();
    let mut benign = BenignSummary::default();
    let days = cfg.days as usize;
    for (i, a) in world.actors.iter().enumerate() {
        if scenario_actors.contains(a.name.as_str()) {
            continue;
        }
        let d = world.active[i * days..(i + 1) * days]
            .iter()
            .filter(|&&x| x)
            .count() as u64;
        if d > 0 {
            benign.actors += 1;
            benign.actor_days += d;
        }
    }
    let labels = Labels {
        seed: cfg.seed,
        days: cfg.days,
        start: cfg.start,
        end: Timestamp(cfg.start.0 + hours * HOUR),
        scenarios: scenario_labels.clone(),
        benign,
    };
    let labels_path = dir.join("labels.json");
    std::fs::write(
        &labels_path,
        serde_json::to_string_pretty(&labels).expect("labels serialize"),
    )
    .map_err(io(&labels_path))?;
    Ok(SimSummary {
        events: world.access_events + world.flow_events,
        access_events: world.access_events,
        flow_events: world.flow_events,
        cases: world.cases_written,
        labels: Some(labels),
    })
}

impl World {
    fn new(cfg: SimConfig, cases: BufWriter<File>) -> World {
        let mut rng = SimRng::seed_from_u64(cfg.seed);
        let s = sizes(cfg.scale);
        let days = cfg.days;
        let mut actors = Vec::new();
        let tenure = |rng: &mut SimRng| -> (u32, u32) {
            // 4% join mid-period (new hires with no history), 3% leave.
            let r: f64 = rng.gen();
            let mid = || days / 3 + (days / 3).max(1);
            if r < 0.04 {
                (rng.gen_range(days / 3..mid().max(days / 3 + 1)), days)
            } else if r < 0.07 {
                (0, rng.gen_range(days / 3..mid().max(days / 3 + 1)))
            } else {
                (0, days)
            }
        };
        const FIRST: [&str; 16] = [
            "anna", "erik", "maria", "lars", "sara", "johan", "emma", "karl", "lina", "nils",
            "eva", "olof", "ida", "per", "elin", "jonas",
        ];
        for st in 0..s.stores {
            for k in 0..s.staff_per_store {
                let (join_day, leave_day) = tenure(&mut rng);
                actors.push(Actor {
                    name: format!("st{st:03}.{}{k}", FIRST[rng.gen_range(0..16)]),
                    role: Role::Store,
                    org: format!("store-{st:03}"),
                    ip: ip4(10, 1 + (st / 250) as u8, (st % 250) as u8, 2 + k as u8),
                    join_day,
                    leave_day,
                    pace: rng.gen_range(0.6..1.4),
                    dests: Vec::new(),
                });
            }
        }
        for i in 0..s.agents {
            let (join_day, leave_day) = tenure(&mut rng);
            actors.push(Actor {
                name: format!("cc.{}{i:04}", FIRST[rng.gen_range(0..16)]),
                role: Role::Agent,
                org: "callcenter".into(),
                ip: ip4(10, 50, (i / 250) as u8, (i % 250) as u8 + 2),
                join_day,
                leave_day,
                pace: rng.gen_range(0.7..1.3),
                dests: Vec::new(),
            });
        }
        for (role, n, prefix, net) in [
            (Role::Reseller, s.resellers, "r", 16u8),
            (Role::Partner, s.partners, "p", 20u8),
        ] {
            for o in 0..n {
                for k in 0..2u32 {
                    actors.push(Actor {
                        name: format!("{prefix}{o:03}.{}", FIRST[rng.gen_range(0..16)]),
                        role,
                        org: format!(
                            "{}-{o:03}",
                            if role == Role::Reseller {
                                "reseller"
                            } else {
                                "partner"
                            }
                        ),
                        ip: ip4(172, net + (o / 250) as u8, (o % 250) as u8, 2 + k as u8),
                        join_day: 0,
                        leave_day: days,
                        pace: rng.gen_range(0.5..1.5),
                        dests: Vec::new(),
                    });
                }
            }
        }
        // Names must be unique: suffix duplicates.
        let mut seen = HashSet::new();
        for a in &mut actors {
            while !seen.insert(a.name.clone()) {
                a.name.push('x');
            }
        }
        let fixed = |name: &str, role, org: &str, ip| Actor {
            name: name.into(),
            role,
            org: org.into(),
            ip,
            join_day: 0,
            leave_day: days,
            pace: s.service_load,
            dests: Vec::new(),
        };
        actors.push(fixed(
            "svc-selfservice",
            Role::SelfService,
            "itops",
            ip4(10, 60, 0, 10),
        ));
        actors.push(fixed(
            "svc-billing-sync",
            Role::Billing,
            "itops",
            ip4(10, 60, 0, 11),
        ));
        actors.push(fixed(
            "batch-nightly-export",
            Role::Batch,
            "itops",
            ip4(10, 60, 0, 12),
        ));
        actors.push(fixed(
            "svc-chatvendor",
            Role::Vendor,
            "chatvendor",
            ip4(192, 0, 2, 5),
        ));
        for i in 0..3 {
            let mut a = fixed(
                &format!("dba.{}", ["olsson", "berg", "lind"][i]),
                Role::Dba,
                "itops",
                ip4(10, 60, 0, 20 + i as u8),
            );
            a.pace = 1.0;
            actors.push(a);
        }
        // Destinations benign hosts talk to: mostly Swedish and EU services.
        let countries = [
            "SE", "SE", "SE", "SE", "DE", "IE", "IE", "NL", "FI", "US", "US", "GB",
        ];
        let dest_pool: Vec<(IpAddr, &'static str)> = (0..60)
            .map(|i| {
                (
                    ip4(
                        198,
                        18 + (i / 200) as u8,
                        (i * 7 % 250) as u8,
                        10 + (i % 200) as u8,
                    ),
                    countries[i as usize % countries.len()],
                )
            })
            .collect();
        for i in 0..s.laptops {
            let dests = (0..6).map(|_| rng.gen_range(0..dest_pool.len())).collect();
            actors.push(Actor {
                name: format!("lt-{i:04}"),
                role: Role::Laptop,
                org: "itops".into(),
                ip: ip4(10, 70 + (i / 250) as u8, (i % 250) as u8, 5),
                join_day: 0,
                leave_day: days,
                pace: rng.gen_range(0.5..1.5),
                dests,
            });
        }
        for i in 0..s.servers {
            let dests = (0..3).map(|_| rng.gen_range(0..dest_pool.len())).collect();
            actors.push(Actor {
                name: format!("srv-{i:02}"),
                role: Role::Server,
                org: "itops".into(),
                ip: ip4(10, 60, 1, 10 + i as u8),
                join_day: 0,
                leave_day: days,
                pace: 1.0,
                dests,
            });
        }
        actors.push(fixed(
            "backup-01",
            Role::Backup,
            "itops",
            ip4(10, 60, 2, 10),
        ));
        actors.push(fixed(
            "chat-gw-01",
            Role::ChatGateway,
            "itops",
            ip4(10, 60, 2, 20),
        ));

        let launch_day = (days / 3).max(1).min(days.saturating_sub(1))
            + rng.gen_range(0..3).min(days.saturating_sub(1));
        let n = actors.len() * days as usize;
        World {
            rng,
            launch_day: launch_day.min(days.saturating_sub(1)),
            actors,
            customers: s.customers,
            dest_pool,
            active: vec![false; n],
            out: Vec::new(),
            seq: 0,
            cases,
            case_seq: 0,
            cases_written: 0,
            access_events: 0,
            flow_events: 0,
            tz: chrono_tz::Europe::Stockholm,
            cfg,
        }
    }

    pub fn hour(&self, start: i64) -> Hour {
        let local = self
            .tz
            .timestamp_millis_opt(start)
            .single()
            .expect("UTC times map to one local time");
        let day = ((start - self.cfg.start.0) / DAY) as u32;
        let holiday = matches!(
            (local.month(), local.day()),
            (12, 24..=26) | (12, 31) | (1, 1) | (1, 6)
        );
        Hour {
            start,
            day,
            local_hour: local.hour(),
            weekday: local.weekday(),
            holiday,
            launch: day == self.launch_day,
        }
    }

    /// A customer id, popular ones more often.
    pub fn customer(&mut self) -> u32 {
        (self.customers as f64 * self.rng.gen::<f64>().powi(3)) as u32
    }

    pub fn customer_id(c: u32) -> String {
        format!("C-{c:07}")
    }

    fn mark(&mut self, actor: usize, ts: i64) {
        let day = ((ts - self.cfg.start.0) / DAY) as usize;
        if day < self.cfg.days as usize {
            self.active[actor * self.cfg.days as usize + day] = true;
        }
    }

    pub fn emit(&mut self, actor: Option<usize>, ev: Event) {
        let ts = ev.timestamp().0;
        if let Some(a) = actor {
            self.mark(a, ts);
        }
        match ev {
            Event::Access(_) => self.access_events += 1,
            Event::Flow(_) => self.flow_events += 1,
        }
        self.seq += 1;
        self.out.push((ts, self.seq, ev.to_json_line()));
    }

    #[allow(clippy::too_many_arguments)]
    pub fn access(
        &mut self,
        actor: usize,
        ts: i64,
        action: Action,
        customers: &[u32],
        records: Option<u64>,
        categories: &[&str],
        case_id: Option<String>,
        ip: Option<IpAddr>,
    ) {
        let a = &self.actors[actor];
        let ev = AccessEvent {
            timestamp: Timestamp(ts),
            user: a.name.clone(),
            source_ip: Some(ip.unwrap_or(a.ip)),
            session_id: None,
            action,
            customer_ids: customers.iter().map(|&c| Self::customer_id(c)).collect(),
            records: records.unwrap_or(customers.len() as u64),
            categories: categories.iter().map(|s| s.to_string()).collect(),
            case_id,
            ..Default::default()
        };
        self.emit(Some(actor), Event::Access(ev));
    }

    pub fn flow(&mut self, actor: usize, ts: i64, dest: IpAddr, country: &str, bytes_out: u64) {
        let a = &self.actors[actor];
        let ev = FlowEvent {
            timestamp: Timestamp(ts),
            host: a.name.clone(),
            source_ip: Some(a.ip),
            destination_ip: Some(dest),
            destination_port: Some(443),
            destination_country: Some(country.to_owned()),
            bytes_out,
            bytes_in: Some(bytes_out / 4 + 800),
            ..Default::default()
        };
        self.emit(Some(actor), Event::Flow(ev));
    }

    fn open_case(&mut self, actor: usize, customer: u32, ts: i64) -> String {
        self.case_seq += 1;
        let id = format!("K-{:07}", self.case_seq);
        let opened = Timestamp(ts - self.rng.gen_range(0..20 * 60_000));
        let closed = Timestamp(ts + self.rng.gen_range(10 * 60_000..6 * HOUR));
        // The cases file is a side output; a failed write shows at flush.
        let _ = writeln!(
            self.cases,
            "{id},{},{},{},{}",
            Self::customer_id(customer),
            self.actors[actor].name,
            opened,
            closed
        );
        self.cases_written += 1;
        id
    }

    fn times(&mut self, hour: &Hour, n: u32) -> Vec<i64> {
        (0..n)
            .map(|_| hour.start + self.rng.gen_range(0..HOUR))
            .collect()
    }

    /// Poisson(`lambda`) lookups of one customer each within the hour.
    fn lookups(&mut self, actor: usize, h: &Hour, lambda: f64, categories: &[&str]) {
        let n = poisson(&mut self.rng, lambda);
        for t in self.times(h, n) {
            let c = self.customer();
            self.access(actor, t, Action::Lookup, &[c], None, categories, None, None);
        }
    }

    /// Poisson(`lambda`) flows to the host's usual destinations within the hour.
    fn usual_flows(&mut self, actor: usize, h: &Hour, lambda: f64, median_bytes: f64, sigma: f64) {
        let n = poisson(&mut self.rng, lambda);
        for t in self.times(h, n) {
            let d = self.actors[actor].dests[self.rng.gen_range(0..self.actors[actor].dests.len())];
            let (ip, cc) = self.dest_pool[d];
            let bytes = lognormal(&mut self.rng, median_bytes, sigma) as u64;
            self.flow(actor, t, ip, cc, bytes);
        }
    }

    fn benign_hour(&mut self, h: &Hour) {
        for i in 0..self.actors.len() {
            let a = &self.actors[i];
            if h.day < a.join_day || h.day >= a.leave_day {
                continue;
            }
            let (role, pace) = (a.role, a.pace);
            let busy = if h.launch { 3.0 } else { 1.0 };
            match role {
                Role::Store => {
                    let open = if h.holiday {
                        false
                    } else {
                        match h.weekday {
                            Weekday::Sun => false,
                            Weekday::Sat => h.in_local(10, 16),
                            _ => h.in_local(9, 19),
                        }
                    };
                    if open {
                        self.lookups(i, h, 4.0 * pace * busy, &["name", "phone", "address"]);
                    }
                }
                Role::Agent => {
                    if h.weekday_work() && h.in_local(8, 18) {
                        let n = poisson(&mut self.rng, 7.0 * pace);
                        let mut last: Option<(u32, String)> = None;
                        for t in sorted(self.times(h, n)) {
                            let r: f64 = self.rng.gen();
                            if r < 0.04 {
                                // A quick look without a case: callers who hang up, colleagues asking.
                                let c = self.customer();
                                self.access(
                                    i,
                                    t,
                                    Action::Lookup,
                                    &[c],
                                    None,
                                    &["name", "phone"],
                                    None,
                                    None,
                                );
                            } else if r < 0.45 && last.is_some() {
                                let (c, id) = last.clone().expect("checked");
                                self.access(
                                    i,
                                    t,
                                    Action::Lookup,
                                    &[c],
                                    None,
                                    &["name", "phone", "address"],
                                    Some(id),
                                    None,
                                );
                            } else {
                                let c = self.customer();
                                let id = self.open_case(i, c, t);
                                self.access(
                                    i,
                                    t,
                                    Action::Lookup,
                                    &[c],
                                    None,
                                    &["name", "phone", "address"],
                                    Some(id.clone()),
                                    None,
                                );
                                last = Some((c, id));
                            }
                        }
                    }
                }
                Role::Reseller | Role::Partner => {
                    if !h.holiday && h.weekday != Weekday::Sun && h.in_local(10, 18) {
                        self.lookups(i, h, 3.0 * pace * busy, &["name", "address"]);
                    }
                }
                Role::SelfService => {
                    let diurnal = if h.in_local(7, 23) { 1.0 } else { 0.25 };
                    self.lookups(i, h, 300.0 * pace * diurnal, &["name", "address", "email"]);
                }
                Role::Billing => {
                    // A sync every 20 s, like clockwork.
                    let per_hour = (180.0 * pace).round() as i64;
                    for k in 0..per_hour {
                        let t = h.start + k * HOUR / per_hour.max(1);
                        let c = self.customer();
                        self.access(
                            i,
                            t,
                            Action::Update,
                            &[c],
                            None,
                            &["name", "address"],
                            None,
                            None,
                        );
                    }
                }
                Role::Batch => {
                    if h.local_hour == 1 {
                        let t = h.start + self.rng.gen_range(20 * 60_000..50 * 60_000);
                        let records = self.rng.gen_range(50_000..100_000);
                        self.access(
                            i,
                            t,
                            Action::Export,
                            &[],
                            Some(records),
                            &["name", "address", "phone"],
                            None,
                            None,
                        );
                    }
                }
                Role::Vendor => {
                    let lambda = if h.in_local(8, 22) { 60.0 } else { 8.0 } * pace.min(5.0);
                    self.lookups(i, h, lambda, &["name", "email"]);
                }
                Role::Dba => {
                    if h.weekday_work() && h.in_local(9, 17) {
                        let n = poisson(&mut self.rng, 0.4);
                        for t in self.times(h, n) {
                            let k = self.rng.gen_range(1..4);
                            let cs: Vec<u32> = (0..k).map(|_| self.customer()).collect();
                            self.access(i, t, Action::Search, &cs, None, &["name"], None, None);
                        }
                    }
                }
                Role::Laptop => {
                    let lambda = if h.weekday_work() && h.in_local(8, 18) {
                        6.0 * pace
                    } else {
                        0.15
                    };
                    self.usual_flows(i, h, lambda, 150_000.0, 1.2);
                }
                Role::Server => {
                    self.usual_flows(i, h, 20.0, 1_000_000.0, 0.8);
                }
                Role::Backup => {
                    if h.local_hour == 2 {
                        let dest: IpAddr = BACKUP_DEST.parse().expect("constant address");
                        for k in 0..4 {
                            let bytes = self.rng.gen_range(500_000_000..1_200_000_000);
                            self.flow(i, h.start + k * 10 * 60_000, dest, "SE", bytes);
                        }
                    }
                }
                Role::ChatGateway => {
                    let dest: IpAddr = VENDOR_DEST.parse().expect("constant address");
                    let n = poisson(&mut self.rng, 12.0);
                    for t in self.times(h, n) {
                        let bytes = lognormal(&mut self.rng, 40_000.0, 0.7) as u64;
                        self.flow(i, t, dest, "IE", bytes);
                    }
                }
            }
        }
    }

    fn flush_hour(&mut self, w: &mut impl Write) -> std::io::Result<()> {
        self.out.sort_unstable_by_key(|(t, s, _)| (*t, *s));
        for (_, _, line) in self.out.drain(..) {
            w.write_all(line.as_bytes())?;
            w.write_all(b"\n")?;
        }
        Ok(())
    }

    pub fn find(&self, role: Role) -> Vec<usize> {
        (0..self.actors.len())
            .filter(|&i| self.actors[i].role == role)
            .collect()
    }

    fn directory_toml(&self) -> String {
        let mut s =
            String::from("# Directory of the simulated operator (written by `vakt simulate`).\n\n");
        let mut orgs: Vec<(String, &'static str, Vec<String>)> = Vec::new();
        let mut seen = HashSet::new();
        for a in &self.actors {
            if a.is_host() || !seen.insert(a.org.clone()) {
                continue;
            }
            let (kind, nets) = match a.role {
                Role::Store => ("employee", vec![format!("{}/28", net_of(a.ip, 28))]),
                Role::Agent => ("employee", vec!["10.50.0.0/16".to_string()]),
                Role::Reseller => ("reseller", vec![format!("{}/28", net_of(a.ip, 28))]),
                Role::Partner => ("partner", vec![format!("{}/28", net_of(a.ip, 28))]),
                Role::Vendor => ("vendor", vec!["192.0.2.0/28".to_string()]),
                _ => ("employee", vec!["10.60.0.0/16".to_string()]),
            };
            orgs.push((a.org.clone(), kind, nets));
        }
        for (id, kind, nets) in &orgs {
            let nets: Vec<String> = nets.iter().map(|n| format!("\"{n}\"")).collect();
            s += &format!("[[organization]]\nid = \"{id}\"\nkind = \"{kind}\"\nnetworks = [{}]\ncountries = [\"SE\"]\n\n", nets.join(", "));
        }
        for a in &self.actors {
            let (role, kind, hours) = match a.role {
                Role::Store => ("store", "human", Some("09:00-19:00")),
                Role::Agent => ("support", "human", Some("08:00-18:00")),
                Role::Reseller | Role::Partner => ("sales", "human", Some("10:00-18:00")),
                Role::Dba => ("dba", "human", Some("09:00-17:00")),
                Role::Batch => ("export", "batch", Some("01:00-03:00")),
                _ => continue,
            };
            s += &format!("[[account]]\nname = \"{}\"\norganization = \"{}\"\nrole = \"{role}\"\nkind = \"{kind}\"\n", a.name, a.org);
            if let Some(h) = hours {
                s += &format!("hours = \"{h}\"\ntimezone = \"Europe/Stockholm\"\n");
            }
            if a.role == Role::Batch {
                s += "max_records = 120000\n";
            }
            s += "\n";
        }
        let svc = |name: &str, org: &str, max: u32, cats: &str| {
            format!("[[service]]\nname = \"{name}\"\norganization = \"{org}\"\nmax_rate_per_minute = {max}\ncategories = [{cats}]\n\n")
        };
        let load = sizes(self.cfg.scale).service_load;
        s += &svc(
            "svc-selfservice",
            "itops",
            (30.0 * load).ceil().max(10.0) as u32,
            "\"name\", \"address\", \"email\"",
        );
        s += &svc(
            "svc-billing-sync",
            "itops",
            (6.0 * load).ceil().max(6.0) as u32,
            "\"name\", \"address\"",
        );
        s += &svc(
            "svc-chatvendor",
            "chatvendor",
            (10.0 * load.min(5.0)).ceil().max(10.0) as u32,
            "\"name\", \"email\"",
        );
        for i in 0..5 {
            s += &format!(
                "[[canary]]\ncustomer_id = \"{}\"\nlabel = \"planted, Stockholm prepaid\"\ncontact = [\"+4670174{i:04}\", \"canary{i}@example.net\"]\n\n",
                Self::customer_id(9_900_001 + i)
            );
        }
        s += &format!(
            "[[egress_allow]]\nhost = \"backup-01\"\ndestinations = [\"{BACKUP_DEST}/32\"]\n\n"
        );
        s += &format!(
            "[[egress_allow]]\nhost = \"chat-gw-01\"\ndestinations = [\"{VENDOR_DEST}/32\"]\n"
        );
        s
    }
}

fn sorted(mut v: Vec<i64>) -> Vec<i64> {
    v.sort_unstable();
    v
}

pub(crate) fn ip4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

fn net_of(ip: IpAddr, prefix: u32) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let mask = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - prefix)
            };
            IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask))
        }
        v6 => v6,
    }
}
