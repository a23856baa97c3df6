//! The operator's dealer portal on the web, as its HTTP proxy (or an nginx
//! log with `[http]` routes) sees it: requests with method, status,
//! referrer, user agent, page size and session.
//!
//! - Dealer staff sign in through a browser and look customers up from a
//!   search page; each page loads its scripts and images; time on a page
//!   grows with its size. All staff of a shop share the shop's one NAT
//!   address and often the same browser build (an office NAT).
//! - Customers open the order-tracking link of a mail: a record page
//!   reached cold, without signing in, one or two pages, many of them from
//!   a mobile carrier's few NAT addresses (a carrier-grade NAT).
//! - A search crawler that announces itself reads robots.txt and keeps out
//!   of record pages; an uptime probe asks for `/health` every minute.
//!
//! It draws from its own generator, so the rest of the operator's traffic
//! is the same with or without it.

use crate::rng::{lognormal, poisson, SimRng};
use crate::world::{ip4, Hour, Role, World};
use chrono::Weekday;
use rand::seq::SliceRandom;
use rand::Rng;
use std::collections::HashSet;
use std::net::IpAddr;
use vakt_event::time::{HOUR, MINUTE, SECOND};
use vakt_event::{AccessEvent, Action, Event, HttpMethod, Outcome, Timestamp};

pub(crate) const SITE: &str = "https://portal.example-operator.se";

/// Browser builds, the first few common in shops.
pub(crate) const BROWSERS: [&str; 6] = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:132.0) Gecko/20100101 Firefox/132.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36 Edg/130.0.0.0",
];

const CRAWLER: &str = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";
const PROBE: &str = "Zabbix";

/// One request to the portal.
pub(crate) struct Request<'a> {
    /// The account, or the address for a visitor who has not signed in.
    pub user: String,
    pub ip: IpAddr,
    pub agent: &'a str,
    pub session: Option<String>,
    pub method: HttpMethod,
    pub path: String,
    pub status: u16,
    pub referrer: Option<String>,
    pub bytes: u64,
    pub action: Action,
    pub customer: Option<u32>,
}

impl Request<'_> {
    pub fn page(user: String, ip: IpAddr, agent: &str, path: String) -> Request<'_> {
        Request {
            user,
            ip,
            agent,
            session: None,
            method: HttpMethod::Get,
            path,
            status: 200,
            referrer: None,
            bytes: 20_000,
            action: Action::Request,
            customer: None,
        }
    }
}

/// A staff member's browser: the session it holds and when it was last used.
#[derive(Clone, Default)]
struct Browser {
    session: Option<String>,
    last: i64,
    agent: usize,
}

pub(crate) struct Portal {
    pub rng: SimRng,
    /// Each dealer shop's NAT address and its staff (actor indexes).
    pub shops: Vec<(IpAddr, Vec<usize>)>,
    browsers: Vec<Browser>,
    /// Staff whose accounts a script uses while they are away:
    /// (actor, first day, first day after).
    pub away: Vec<(usize, u32, u32)>,
    carrier_nat: Vec<IpAddr>,
    probe_next: i64,
    session_seq: u64,
    /// The end of the hour being written: a request after it is not made
    /// (events are written an hour at a time, in order).
    pub until: i64,
    /// Visitors' addresses seen per day, for the benign actor-days.
    pub visitors: Vec<HashSet<IpAddr>>,
}

/// Dealer shops and their staff, appended to the operator's actors.
pub(crate) fn add_dealers(
    rng: &mut SimRng,
    actors: &mut Vec<crate::world::Actor>,
    shops: u32,
    days: u32,
) -> Vec<(IpAddr, Vec<usize>)> {
    const FIRST: [&str; 12] = [
        "alva", "hugo", "ella", "liam", "saga", "noah", "alma", "axel", "wilma", "theo", "stina",
        "viggo",
    ];
    let mut out = Vec::new();
    for o in 0..shops {
        let nat = ip4(172, 24 + (o / 250) as u8, (o % 250) as u8, 1);
        let n = rng.gen_range(4..10);
        let mut staff = Vec::new();
        for k in 0..n {
            staff.push(actors.len());
            actors.push(crate::world::Actor {
                name: format!("d{o:03}.{}{k}", FIRST[rng.gen_range(0..FIRST.len())]),
                role: Role::Dealer,
                org: format!("dealer-{o:03}"),
                ip: nat,
                join_day: 0,
                leave_day: days,
                pace: rng.gen_range(0.6..1.6),
                dests: Vec::new(),
            });
        }
        out.push((nat, staff));
    }
    out
}

impl Portal {
    pub fn new(
        mut rng: SimRng,
        shops: Vec<(IpAddr, Vec<usize>)>,
        actors: usize,
        days: u32,
    ) -> Portal {
        // A shop's computers mostly run one browser build.
        let mut browsers = vec![Browser::default(); actors];
        for (_, staff) in &shops {
            let usual = rng.gen_range(0..3);
            for &s in staff {
                browsers[s].agent = if rng.gen_bool(0.8) {
                    usual
                } else {
                    rng.gen_range(0..BROWSERS.len())
                };
                browsers[s].last = i64::MIN / 2;
            }
        }
        let carrier_nat = (0..48)
            .map(|i| {
                ip4(
                    [90, 78, 213][i % 3],
                    [224, 67, 64][i % 3],
                    7 + (i % 3) as u8,
                    10 + i as u8,
                )
            })
            .collect();
        Portal {
            rng,
            shops,
            browsers,
            away: Vec::new(),
            carrier_nat,
            probe_next: i64::MIN,
            session_seq: 0,
            until: i64::MIN,
            visitors: vec![HashSet::new(); days as usize],
        }
    }

    fn session(&mut self) -> String {
        self.session_seq += 1;
        format!(
            "{:016x}",
            self.session_seq.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ self.rng.gen::<u64>()
        )
    }

    fn is_away(&self, actor: usize, day: u32) -> bool {
        self.away
            .iter()
            .any(|&(a, from, to)| a == actor && (from..to).contains(&day))
    }
}

/// A customer, popular ones more often (as the operator's other staff read them).
pub(crate) fn customer(rng: &mut SimRng, customers: u32) -> u32 {
    (customers as f64 * rng.gen::<f64>().powi(3)) as u32
}

pub(crate) fn record_path(c: u32) -> String {
    format!("/customers/{}", World::customer_id(c))
}

pub(crate) fn tracking_path(c: u32) -> String {
    format!(
        "/track?order=O{:08}&c={}",
        c as u64 * 7 + 3,
        World::customer_id(c)
    )
}

impl World {
    /// One request; `actor` marks a known account active that day.
    pub(crate) fn request(&mut self, actor: Option<usize>, ts: i64, r: Request) {
        if ts >= self.portal.until {
            return;
        }
        let ev = AccessEvent {
            timestamp: Timestamp(ts),
            user: r.user,
            source_ip: Some(r.ip),
            user_agent: Some(r.agent.to_owned()),
            session_id: r.session,
            action: r.action,
            outcome: if r.status >= 400 {
                Outcome::Failure
            } else {
                Outcome::Success
            },
            customer_ids: r.customer.map(World::customer_id).into_iter().collect(),
            records: r.customer.is_some() as u64,
            categories: if r.customer.is_some() {
                ["name", "address", "phone"]
                    .iter()
                    .map(|s| s.to_string())
                    .collect()
            } else {
                Vec::new()
            },
            bytes: Some(r.bytes),
            url_path: Some(r.path),
            http_method: Some(r.method),
            http_status: Some(r.status),
            referrer: r.referrer,
            ..Default::default()
        };
        if actor.is_none() {
            let day = ((ts - self.cfg.start.0) / vakt_event::time::DAY) as usize;
            if let Some(set) = self.portal.visitors.get_mut(day) {
                set.insert(r.ip);
            }
        }
        self.emit(actor, Event::Access(ev));
    }

    /// The page's scripts, styles and images, loaded right after it.
    fn assets(&mut self, actor: Option<usize>, t: i64, page: &Request, n: u32) -> i64 {
        let mut t = t;
        for k in 0..n {
            t += self.portal.rng.gen_range(30..400);
            let path = [
                "/static/app.js",
                "/static/app.css",
                "/img/logo.svg",
                "/img/icons.png",
                "/static/fonts/inter.woff2",
            ][k as usize % 5]
                .to_string();
            let mut r = Request::page(page.user.clone(), page.ip, page.agent, path);
            r.session = page.session.clone();
            r.referrer = Some(format!("{SITE}{}", page.path));
            r.bytes = self.portal.rng.gen_range(2_000..90_000);
            self.request(actor, t, r);
        }
        t
    }

    /// The portal's benign hour: staff, tracking visitors, the crawler, the probe.
    pub(crate) fn portal_hour(&mut self, h: &Hour) {
        self.portal.until = h.start + HOUR;
        self.staff_hour(h);
        self.visitors_hour(h);
        self.crawler_hour(h);
        self.probe_hour(h);
    }

    fn staff_hour(&mut self, h: &Hour) {
        let open = !h.holiday
            && match h.weekday {
                Weekday::Sun => false,
                Weekday::Sat => h.in_local(10, 16),
                _ => h.in_local(9, 18),
            };
        if !open {
            return;
        }
        let end = h.start + HOUR;
        let shops = self.portal.shops.clone();
        for (nat, staff) in shops {
            for s in staff {
                if self.portal.is_away(s, h.day) || !self.portal.rng.gen_bool(0.8) {
                    continue;
                }
                let tasks = poisson(&mut self.portal.rng, 5.0 * self.actors[s].pace);
                let mut t = h.start + self.portal.rng.gen_range(0..20 * MINUTE);
                for _ in 0..tasks {
                    if t >= end - 8 * MINUTE {
                        break;
                    }
                    t = self.staff_task(s, nat, t);
                    t += lognormal(&mut self.portal.rng, 2.5 * MINUTE as f64, 0.8) as i64;
                }
            }
        }
    }

    /// A staff member looks a customer up: search, record, sometimes the
    /// subscriptions page. Signs in first when the session has lapsed.
    /// Returns when the last page was left.
    fn staff_task(&mut self, s: usize, nat: IpAddr, mut t: i64) -> i64 {
        let agent = BROWSERS[self.portal.browsers[s].agent];
        let name = self.actors[s].name.clone();
        let mut from = "/start".to_string();
        if self.portal.browsers[s].session.is_none()
            || t - self.portal.browsers[s].last > 30 * MINUTE
        {
            let login = Request::page(nat.to_string(), nat, agent, "/login".into());
            self.request(
                None,
                t,
                Request {
                    bytes: 9_000,
                    ..login
                },
            );
            let login = Request::page(nat.to_string(), nat, agent, "/login".into());
            t = self.assets(None, t, &login, 5);
            t += self.portal.rng.gen_range(4 * SECOND..20 * SECOND);
            let session = self.portal.session();
            self.portal.browsers[s].session = Some(session.clone());
            let mut post = Request::page(name.clone(), nat, agent, "/login".into());
            post.method = HttpMethod::Post;
            post.action = Action::Login;
            post.referrer = Some(format!("{SITE}/login"));
            post.session = Some(session.clone());
            post.status = 302;
            post.bytes = 300;
            self.request(Some(s), t, post);
            t += self.portal.rng.gen_range(200..900);
            let mut start = Request::page(name.clone(), nat, agent, "/start".into());
            start.referrer = Some(format!("{SITE}/login"));
            start.session = Some(session);
            start.bytes = 30_000;
            self.request(Some(s), t, start);
            let start = Request {
                session: self.portal.browsers[s].session.clone(),
                ..Request::page(name.clone(), nat, agent, "/start".into())
            };
            t = self.assets(Some(s), t, &start, 3);
            t += self.portal.rng.gen_range(3 * SECOND..15 * SECOND);
        }
        let session = self.portal.browsers[s].session.clone();
        let customers = self.customers;
        let c = customer(&mut self.portal.rng, customers);
        // Search, then the record, then perhaps the subscriptions.
        let q: String = (0..4)
            .map(|_| self.portal.rng.gen_range(b'a'..=b'z') as char)
            .collect();
        let mut pages = vec![(format!("/customers?q={q}"), None)];
        let missing = self.portal.rng.gen_bool(0.02);
        pages.push((record_path(c), Some(c)));
        if !missing && self.portal.rng.gen_bool(0.35) {
            pages.push((format!("{}/subscriptions", record_path(c)), Some(c)));
        }
        for (path, cust) in pages {
            let bytes = lognormal(&mut self.portal.rng, 35_000.0, 0.5) as u64;
            let status = if cust.is_some() && missing { 404 } else { 200 };
            let page = Request {
                session: session.clone(),
                referrer: Some(format!("{SITE}{from}")),
                bytes,
                status,
                action: if cust.is_some() {
                    Action::Lookup
                } else {
                    Action::Request
                },
                customer: cust.filter(|_| status == 200),
                ..Request::page(name.clone(), nat, agent, path.clone())
            };
            self.request(Some(s), t, page);
            let shown = Request {
                session: session.clone(),
                ..Request::page(name.clone(), nat, agent, path.clone())
            };
            let n = self.portal.rng.gen_range(1..4);
            self.assets(Some(s), t, &shown, n);
            // Reading takes longer on a longer page.
            let read = 5.0 * SECOND as f64 + bytes as f64 * 1.2;
            t += lognormal(&mut self.portal.rng, read, 0.4) as i64;
            from = path;
            if status == 404 {
                break;
            }
        }
        self.portal.browsers[s].last = t;
        t
    }

    /// Customers opening the tracking link of a mail: cold, one or two pages.
    fn visitors_hour(&mut self, h: &Hour) {
        let day_time = h.in_local(7, 23);
        // A mailing goes out on one weekday evening a week.
        let mailing = h.weekday == Weekday::Tue && h.in_local(17, 21);
        let lambda = 25.0 * if day_time { 1.0 } else { 0.15 } * if mailing { 4.0 } else { 1.0 };
        let n = poisson(&mut self.portal.rng, lambda);
        let customers = self.customers;
        for _ in 0..n {
            let mut t = h.start + self.portal.rng.gen_range(0..55 * MINUTE);
            let ip = if self.portal.rng.gen_bool(0.6) {
                *self
                    .portal
                    .carrier_nat
                    .choose(&mut self.portal.rng)
                    .expect("carrier addresses")
            } else {
                ip4(
                    self.portal.rng.gen_range(81..96),
                    self.portal.rng.gen_range(0..250),
                    self.portal.rng.gen_range(0..250),
                    self.portal.rng.gen_range(2..250),
                )
            };
            let agent = BROWSERS[self.portal.rng.gen_range(0..BROWSERS.len())];
            let c = customer(&mut self.portal.rng, customers);
            let path = tracking_path(c);
            let page = Request {
                action: Action::Lookup,
                customer: Some(c),
                bytes: 22_000,
                ..Request::page(ip.to_string(), ip, agent, path.clone())
            };
            self.request(None, t, page);
            let shown = Request::page(ip.to_string(), ip, agent, path.clone());
            self.assets(None, t, &shown, 4);
            if self.portal.rng.gen_bool(0.3) {
                t += lognormal(&mut self.portal.rng, 25.0 * SECOND as f64, 0.5) as i64;
                let details = Request {
                    action: Action::Lookup,
                    customer: Some(c),
                    referrer: Some(format!("{SITE}{path}")),
                    bytes: 15_000,
                    ..Request::page(ip.to_string(), ip, agent, format!("{path}&details=1"))
                };
                self.request(None, t, details);
            }
        }
    }

    /// A search crawler at night: robots.txt, then the shop and help pages.
    fn crawler_hour(&mut self, h: &Hour) {
        if !h.in_local(1, 5) {
            return;
        }
        let ip = ip4(66, 249, 66, 1 + self.portal.rng.gen_range(0..4));
        let mut t = h.start + self.portal.rng.gen_range(0..10 * MINUTE);
        let robots = Request::page(ip.to_string(), ip, CRAWLER, "/robots.txt".into());
        self.request(
            None,
            t,
            Request {
                bytes: 300,
                ..robots
            },
        );
        while t < h.start + 50 * MINUTE {
            t += (self.portal.rng.gen_range(6.0..14.0) * SECOND as f64) as i64;
            let k = self.portal.rng.gen_range(0..400);
            let path = if k % 2 == 0 {
                format!("/shop/phones/{k}")
            } else {
                format!("/help/article-{k}")
            };
            let page = Request::page(ip.to_string(), ip, CRAWLER, path);
            self.request(
                None,
                t,
                Request {
                    bytes: 40_000,
                    ..page
                },
            );
        }
    }

    /// The uptime probe: `/health` every minute, day and night.
    fn probe_hour(&mut self, h: &Hour) {
        let ip = ip4(10, 60, 3, 5);
        if self.portal.probe_next == i64::MIN {
            self.portal.probe_next = h.start + self.portal.rng.gen_range(0..MINUTE);
        }
        while self.portal.probe_next < h.start + HOUR {
            let t = self.portal.probe_next;
            let probe = Request::page(ip.to_string(), ip, PROBE, "/health".into());
            self.request(None, t, Request { bytes: 40, ..probe });
            self.portal.probe_next += MINUTE;
        }
    }
}
