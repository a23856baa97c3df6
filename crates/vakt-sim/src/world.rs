//! The simulated operator's world: its organisations and accounts (the
//! actors), customers, the calendar of its hours, and the events and cases
//! it writes. What happens in it is told elsewhere: benign behaviour in
//! `benign.rs`, incidents in `scenarios.rs`, the hours in `operator.rs`.

use crate::rng::SimRng;
use crate::{Scale, SimConfig};
use chrono::{Datelike, TimeZone, Timelike, Weekday};
use chrono_tz::Tz;
use rand::{Rng, SeedableRng};
use std::collections::HashSet;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::net::{IpAddr, Ipv4Addr};
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
    /// Dealer shop staff on the web portal (`web.rs`).
    Dealer,
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

    /// A working day's hour from `from` to `to` local, within the `days` from `first`.
    pub fn working_day_hour(&self, first: u32, days: u32, from: u32, to: u32) -> bool {
        (first..first + days).contains(&self.day) && self.weekday_work() && self.in_local(from, to)
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
    /// Dealer shops on the web portal.
    dealers: u32,
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
            dealers: 3,
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
            dealers: 12,
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
            dealers: 400,
            service_load: 60.0,
            customers: 10_000_000,
        },
    }
}

pub(crate) const BACKUP_DEST: &str = "203.0.113.10";
/// Customers' regions (counties); the support queues are split by them.
const REGIONS: [&str; 4] = ["SE-AB", "SE-M", "SE-O", "SE-AC"];
pub(crate) const VENDOR_DEST: &str = "192.0.2.80";
/// The software update server every laptop polls: regular, but common.
pub(crate) const UPDATE_DEST: &str = "198.51.100.20";

pub(crate) struct World {
    pub rng: SimRng,
    /// Draws for the laptops' update polls, apart from `rng` so adding
    /// them left every other stream as it was.
    pub poll_rng: SimRng,
    /// Each laptop's next update poll (ms), by actor index.
    pub next_poll: Vec<i64>,
    /// Draws for late case logging and the case-system outage, apart from
    /// `rng` for the same reason.
    pub case_rng: SimRng,
    /// The weekday the case system is down from 10:00 to 14:00 local: the
    /// whole support team reads without cases.
    pub outage_day: u32,
    pub cfg: SimConfig,
    pub actors: Vec<Actor>,
    pub customers: u32,
    pub dest_pool: Vec<(IpAddr, &'static str)>,
    /// Whether actor `i` was active on day `d`, at `i * days + d`.
    pub active: Vec<bool>,
    out: Vec<(i64, u64, String)>,
    seq: u64,
    pub cases: BufWriter<File>,
    case_seq: u64,
    pub cases_written: u64,
    pub access_events: u64,
    pub flow_events: u64,
    launch_day: u32,
    tz: Tz,
    /// The web portal's own state and generator.
    pub portal: crate::web::Portal,
}

impl World {
    pub fn new(cfg: SimConfig, cases: BufWriter<File>) -> World {
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

        // The web portal draws from its own generator, after every other actor.
        let mut portal_rng = SimRng::seed_from_u64(cfg.seed ^ 0x7765_6270);
        let shops = crate::web::add_dealers(&mut portal_rng, &mut actors, s.dealers, days);
        let portal = crate::web::Portal::new(portal_rng, shops, actors.len(), days);

        let launch_day = (days / 3).max(1).min(days.saturating_sub(1))
            + rng.gen_range(0..3).min(days.saturating_sub(1));
        let n = actors.len() * days as usize;
        let mut case_rng = SimRng::seed_from_u64(cfg.seed ^ 0x0ca5_e10c);
        let outage_day = case_rng.gen_range(days / 4..days.max(2) - 1);
        let mut w = World {
            rng,
            poll_rng: SimRng::seed_from_u64(cfg.seed ^ 0x000d_a7e5),
            next_poll: vec![i64::MIN; actors.len()],
            case_rng,
            outage_day,
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
            portal,
            cfg,
        };
        while w.outage_day + 1 < days
            && !w
                .hour(w.cfg.start.0 + w.outage_day as i64 * DAY + 12 * HOUR)
                .weekday_work()
        {
            w.outage_day += 1;
        }
        w
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

    /// The region a customer lives in, as the system of record says.
    pub fn region_of(c: u32) -> &'static str {
        REGIONS[c as usize % REGIONS.len()]
    }

    /// The region a support agent's queue serves.
    pub fn queue_region(agent: usize) -> &'static str {
        REGIONS[agent % REGIONS.len()]
    }

    /// A customer from `agent`'s own queue: `c` moved into its region.
    pub fn in_queue(agent: usize, c: u32) -> u32 {
        let n = REGIONS.len() as u32;
        c - c % n + (agent as u32 % n)
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
            customer_region: match customers {
                [c] => Some(Self::region_of(*c).to_owned()),
                _ => None,
            },
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

    pub fn open_case(&mut self, actor: usize, customer: u32, ts: i64) -> String {
        let opened = ts - self.rng.gen_range(0..20 * 60_000);
        let closed = ts + self.rng.gen_range(10 * 60_000..6 * HOUR);
        self.log_case(actor, customer, opened, closed)
    }

    /// Writes a case to the cases file; its id.
    pub fn log_case(&mut self, actor: usize, customer: u32, opened: i64, closed: i64) -> String {
        self.case_seq += 1;
        let id = format!("K-{:07}", self.case_seq);
        let (opened, closed) = (Timestamp(opened), Timestamp(closed.max(opened)));
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

    pub fn flush_hour(&mut self, w: &mut impl Write) -> std::io::Result<()> {
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

    pub fn directory_toml(&self) -> String {
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
                Role::Dealer => ("reseller", vec![format!("{}/32", a.ip)]),
                _ => ("employee", vec!["10.60.0.0/16".to_string()]),
            };
            orgs.push((a.org.clone(), kind, nets));
        }
        for (id, kind, nets) in &orgs {
            let nets: Vec<String> = nets.iter().map(|n| format!("\"{n}\"")).collect();
            s += &format!("[[organization]]\nid = \"{id}\"\nkind = \"{kind}\"\nnetworks = [{}]\ncountries = [\"SE\"]\n\n", nets.join(", "));
        }
        for (i, a) in self.actors.iter().enumerate() {
            let (role, kind, hours) = match a.role {
                Role::Store => ("store", "human", Some("09:00-19:00")),
                Role::Agent => ("support", "human", Some("08:00-18:00")),
                Role::Reseller | Role::Partner => ("sales", "human", Some("10:00-18:00")),
                Role::Dba => ("dba", "human", Some("09:00-17:00")),
                Role::Dealer => ("sales", "human", Some("09:00-18:00")),
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
            if a.role == Role::Agent {
                s += &format!("regions = [\"{}\"]\n", Self::queue_region(i));
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
