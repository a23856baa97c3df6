//! The benign operator: who works when, reads what, sends where.

use crate::rng::{lognormal, poisson};
use crate::world::{Hour, Role, World, BACKUP_DEST, UPDATE_DEST, VENDOR_DEST};
use chrono::Weekday;
use rand::Rng;
use std::net::IpAddr;
use vakt_event::time::{HOUR, MINUTE};
use vakt_event::Action;

impl World {
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

    pub(crate) fn benign_hour(&mut self, h: &Hour) {
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
                        // The case system is down: every read goes without a case.
                        let outage = h.day == self.outage_day && h.in_local(10, 14);
                        // One agent in five logs cases late, by the end of the shift.
                        let late = i % 5 == 0;
                        let shift_end = h.start + (18 - h.local_hour as i64) * HOUR;
                        let mut last: Option<(u32, String, i64)> = None;
                        for t in sorted(self.times(h, n)) {
                            let r: f64 = self.rng.gen();
                            if r < 0.04 || outage {
                                // A quick look without a case: callers who hang up, colleagues asking
                                // (from the agent's own queue).
                                let c = World::in_queue(i, self.customer());
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
                                let (c, id, logged) = last.clone().expect("checked");
                                self.access(
                                    i,
                                    t,
                                    Action::Lookup,
                                    &[c],
                                    None,
                                    &["name", "phone", "address"],
                                    (t >= logged).then_some(id),
                                    None,
                                );
                            } else {
                                let c = self.customer();
                                // One case in twenty is a transfer from another region's queue.
                                let c = if t % 20 == 0 {
                                    c
                                } else {
                                    World::in_queue(i, c)
                                };
                                let (id, logged) = if late {
                                    let delay = self.case_rng.gen_range(20 * MINUTE..3 * HOUR);
                                    let logged = (t + delay).min(shift_end).max(t);
                                    let closed = t + self.case_rng.gen_range(HOUR..6 * HOUR);
                                    (self.log_case(i, c, logged, closed), logged)
                                } else {
                                    (self.open_case(i, c, t), t)
                                };
                                self.access(
                                    i,
                                    t,
                                    Action::Lookup,
                                    &[c],
                                    None,
                                    &["name", "phone", "address"],
                                    (t >= logged).then(|| id.clone()),
                                    None,
                                );
                                last = Some((c, id, logged));
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
                    self.update_polls(i, h);
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
                // On the web portal: `portal_hour`.
                Role::Dealer => {}
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
        self.portal_hour(h);
    }
}

impl World {
    /// A laptop's update agent asking the update server for news every
    /// 30 minutes (+-10%), day and night: as regular as a beacon, but
    /// every laptop does it.
    fn update_polls(&mut self, actor: usize, h: &Hour) {
        const EVERY: i64 = 30 * 60_000;
        let dest: IpAddr = UPDATE_DEST.parse().expect("constant address");
        if self.next_poll[actor] == i64::MIN {
            self.next_poll[actor] = h.start + self.poll_rng.gen_range(0..EVERY);
        }
        while self.next_poll[actor] < h.start + HOUR {
            let t = self.next_poll[actor];
            let bytes = self.poll_rng.gen_range(380..420);
            self.flow(actor, t, dest, "SE", bytes);
            self.next_poll[actor] = t + (EVERY as f64 * self.poll_rng.gen_range(0.9..1.1)) as i64;
        }
    }
}

fn sorted(mut v: Vec<i64>) -> Vec<i64> {
    v.sort_unstable();
    v
}
