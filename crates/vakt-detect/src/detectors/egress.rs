//! `egress`: a host sending unusual volumes to destinations and countries
//! it has never used, especially at night.
//!
//! For S4 (Telenor executives' laptops emptied through relays in several
//! countries) and S6 (a vendor component sending data somewhere new).
//!
//! - State: per host, its last 32 destinations (hashes), the countries it
//!   has sent to (a 64-bit set), its mean daily bytes out, days observed,
//!   and the bytes and new countries sent to new destinations in the
//!   current 6-hour window (about 200 bytes per host).
//! - Thresholds: a host learns for its first 2 days (`learn_days`). After
//!   that, 100 MB (`min_new_bytes`) to destinations it never used within 6
//!   hours (`window_hours`), and over 5x (`volume_factor`) its mean daily
//!   volume, is `medium`; two or more new countries in that window, or a
//!   time between 22:00 and 06:00 UTC+1, raise it. A new destination in a
//!   new country with little data is `low`. Destinations allowed for the
//!   host in the directory (`[[egress_allow]]`) never count, nor do
//!   destinations many hosts have taken up (`common_hosts` hosts sending to
//!   the same /24, /48 or domain: a SaaS the company adopts, a backup
//!   service every laptop uses at night): a change the whole company makes
//!   is not one host's exfiltration. Each threshold is a parameter
//!   ([`PARAMS`]).
//! - Destinations: per destination network, a HyperLogLog of the hosts that
//!   sent to it, at most 65,536 networks (least recently used forgotten).
//! - Blind spots: in [`INFO`] (`vakt detectors` shows them).

use crate::detector::{actor_of, reference, Detector, DetectorInfo, Finding};
use crate::evidence;
use crate::params::{Param, Settings, Values};
use crate::state::{lru, Distinct, Keyed, Lru};
use vakt_enrich::snapshot::{self, LruState, SnapshotError};
use vakt_enrich::Enriched;
use vakt_event::time::{DAY, HOUR};
use vakt_event::{Event, Severity, Timestamp};

pub const INFO: DetectorInfo = DetectorInfo {
    id: "egress",
    title: "a host sending unusual volumes to destinations and countries it has never used",
    incidents: &["S4", "S6"],
    remediation: "isolate the host; block the destinations; investigate for malware",
    blind_spots: "exfiltration to a destination the host or 10+ other hosts already use (a cloud drive), slow drips under the volume threshold, and hosts that have no history yet",
    params: PARAMS,
    per_organization: false,
};

pub const PARAMS: &[Param] = &[
    Param::count(
        "learn_days",
        2.0,
        "days a host only learns its destinations and volume",
    ),
    Param::count(
        "window_hours",
        6.0,
        "hours over which bytes to new destinations add up",
    ),
    Param::count(
        "min_new_bytes",
        100_000_000.0,
        "bytes to new destinations within the window below which it is not `medium`",
    ),
    Param::number(
        "volume_factor",
        5.0,
        "times the host's mean daily bytes that new destinations must exceed",
    ),
    Param::count(
        "common_hosts",
        10.0,
        "hosts sending to a destination network that make it common, no longer new to anyone",
    ),
];

struct Limits {
    learn_days: u16,
    window: i64,
    min_new_bytes: u64,
    volume_factor: f64,
    common_hosts: usize,
}

impl Limits {
    fn new(v: &Values) -> Limits {
        Limits {
            learn_days: v.get("learn_days").min(u16::MAX as f64) as u16,
            // Past a year the window no longer changes what is seen.
            window: v.get("window_hours").min(24.0 * 366.0) as i64 * HOUR,
            min_new_bytes: v.get("min_new_bytes") as u64,
            volume_factor: v.get("volume_factor"),
            common_hosts: v.get("common_hosts").min(1e9) as usize,
        }
    }
}

pub(crate) fn build(s: &Settings) -> Box<dyn Detector> {
    Box::new(Egress {
        limits: Limits::new(&s.global),
        hosts: Keyed::default(),
        destinations: lru(DESTINATIONS),
    })
}

/// Destination networks whose hosts are counted.
const DESTINATIONS: usize = 65_536;
const KNOWN: usize = 32;

#[derive(serde::Serialize, serde::Deserialize)]
struct Host {
    first: Timestamp,
    day: i32,
    days: u16,
    today: u64,
    mean_daily: f64,
    known: [u32; KNOWN],
    next: u8,
    countries: u64,
    window: i32,
    new_bytes: u64,
    new_countries: u64,
    new_dests: u16,
    since: Timestamp,
    reported: Option<Severity>,
}

impl Host {
    fn new(now: Timestamp) -> Host {
        Host {
            first: now,
            day: now.0.div_euclid(DAY) as i32,
            days: 0,
            today: 0,
            mean_daily: 0.0,
            known: [0; KNOWN],
            next: 0,
            countries: 0,
            window: 0,
            new_bytes: 0,
            new_countries: 0,
            new_dests: 0,
            since: now,
            reported: None,
        }
    }
}

fn hash(s: &[u8]) -> u32 {
    // FNV-1a; 0 is kept for "empty slot".
    let h = s.iter().fold(0x811c_9dc5u32, |h, &b| {
        (h ^ b as u32).wrapping_mul(0x0100_0193)
    });
    h.max(1)
}

fn country_bit(cc: &str) -> u64 {
    1u64 << (hash(cc.as_bytes()) % 64)
}

pub struct Egress {
    limits: Limits,
    hosts: Keyed<Host>,
    /// Hosts that sent to each destination network (/24, /48 or domain).
    destinations: Lru<u32, Distinct>,
}

/// The network a destination is in: its /24 or /48, else its domain.
fn destination_network(f: &vakt_event::FlowEvent) -> Option<u32> {
    // `::ffff:192.0.2.1` is in 192.0.2.0/24, not in one bucket with every mapped address.
    match (
        &f.destination_ip.map(|ip| ip.to_canonical()),
        &f.destination_domain,
    ) {
        (Some(std::net::IpAddr::V4(v)), _) => Some(hash(&v.octets()[..3])),
        (Some(std::net::IpAddr::V6(v)), _) => Some(hash(&v.octets()[..6])),
        (None, Some(d)) => Some(hash(d.to_ascii_lowercase().as_bytes())),
        (None, None) => None,
    }
}

impl Detector for Egress {
    fn info(&self) -> &'static DetectorInfo {
        &INFO
    }

    fn observe(&mut self, ev: &Enriched, out: &mut Vec<Finding>) {
        let Event::Flow(f) = ev.event else { return };
        let now = f.timestamp;
        let lim = &self.limits;
        let h = self.hosts.touch(ev.actor, now, || Host::new(now));
        let day = now.0.div_euclid(DAY) as i32;
        if day != h.day {
            let n = h.days.min(13) as f64;
            h.mean_daily = (h.mean_daily * n + h.today as f64) / (n + 1.0);
            h.days = h.days.saturating_add((day - h.day).clamp(0, 1000) as u16);
            h.today = 0;
            h.day = day;
        }
        h.today = h.today.saturating_add(f.bytes_out);
        if ev.egress_allowed {
            return;
        }
        let adopted_by = match destination_network(f) {
            Some(net) => {
                let hosts = self.destinations.get_or_insert_mut(net, Distinct::new);
                hosts.insert(f.host.as_str());
                hosts.estimate()
            }
            None => 0,
        };
        if adopted_by >= lim.common_hosts {
            return;
        }
        let dest = match (&f.destination_ip, &f.destination_domain) {
            (Some(ip), _) => match ip {
                std::net::IpAddr::V4(v) => hash(&v.octets()),
                std::net::IpAddr::V6(v) => hash(&v.octets()),
            },
            (None, Some(d)) => hash(d.as_bytes()),
            (None, None) => return,
        };
        let known = h.known.contains(&dest);
        let country = f
            .destination_country
            .as_deref()
            .or(ev.geo.as_ref().and_then(|g| g.country.as_deref()));
        let new_country = country.is_some_and(|c| h.countries & country_bit(c) == 0);
        if !known {
            h.known[h.next as usize] = dest;
            h.next = ((h.next as usize + 1) % KNOWN) as u8;
        }
        if let Some(c) = country {
            h.countries |= country_bit(c);
        }
        let learning = h.days < lim.learn_days || now.0 - h.first.0 < lim.learn_days as i64 * DAY;
        if known || learning {
            return;
        }
        let window = now.0.div_euclid(lim.window) as i32;
        if window != h.window {
            if window > h.window + 1 {
                h.reported = None;
            }
            h.window = window;
            h.new_bytes = 0;
            h.new_countries = 0;
            h.new_dests = 0;
        }
        if h.new_bytes == 0 && h.new_dests == 0 {
            h.since = now;
        }
        h.new_bytes = h.new_bytes.saturating_add(f.bytes_out);
        h.new_dests = h.new_dests.saturating_add(1);
        if new_country {
            h.new_countries |= country_bit(country.unwrap_or(""));
        }
        let n_countries = h.new_countries.count_ones();
        let night = {
            let hour = (now.0 + HOUR).rem_euclid(DAY) / HOUR;
            !(6..22).contains(&hour)
        };
        let volume = h.new_bytes >= lim.min_new_bytes
            && h.new_bytes as f64 > lim.volume_factor * h.mean_daily;
        let severity = if volume {
            let mut s = Severity::Medium;
            if n_countries >= 2 {
                s = s.raised();
            }
            if night {
                s = s.raised();
            }
            s
        } else if new_country {
            Severity::Low
        } else {
            return;
        };
        if h.reported.is_some_and(|r| r >= severity) {
            return;
        }
        h.reported = Some(severity);
        out.push(Finding {
            rule: INFO.id,
            key: f.host.clone(),
            actor: actor_of(ev),
            organization: ev.organization.map(str::to_owned),
            severity,
            at: now,
            first_seen: h.since,
            message: format!(
                "{} sent {:.1} MB to {} destination{} it never used before ({} new countr{}{}) in the last {} h; it sends {:.1} MB on a normal day",
                f.host,
                h.new_bytes as f64 / 1e6,
                h.new_dests,
                if h.new_dests == 1 { "" } else { "s" },
                n_countries,
                if n_countries == 1 { "y" } else { "ies" },
                if night { ", at night" } else { "" },
                (now.0 - h.since.0) / HOUR + 1,
                h.mean_daily / 1e6
            ),
            evidence: evidence! {
                "observed_new_destination_bytes" => h.new_bytes,
                "observed_new_destinations" => h.new_dests,
                "observed_new_countries" => n_countries,
                "baseline_mean_daily_bytes" => h.mean_daily.round(),
                "threshold_bytes" => (lim.volume_factor * h.mean_daily).max(lim.min_new_bytes as f64).round(),
                "destination" => f.destination(),
                "country" => country,
                "night" => night,
                "hosts_sending_to_destination_network" => adopted_by,
                "event" => reference(ev),
            },
            customers: 0,
        });
    }

    fn evict(&mut self, horizon: Timestamp) {
        self.hosts.evict(horizon);
    }

    fn save(&self) -> Result<Vec<u8>, SnapshotError> {
        snapshot::save(&(&self.hosts, snapshot::LruRef(&self.destinations)))
    }

    fn restore(&mut self, state: &[u8]) -> Result<(), SnapshotError> {
        let (hosts, destinations): (_, LruState<u32, Distinct>) = snapshot::load(state)?;
        self.hosts = hosts;
        destinations.restore_into(&mut self.destinations);
        Ok(())
    }

    fn tracked_keys(&self) -> usize {
        self.hosts.len() + self.destinations.len()
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::*;
    use vakt_event::time::{DAY, HOUR, MINUTE};
    use vakt_event::{FlowEvent, Severity, Timestamp};

    fn flow(h: &mut Harness, t: i64, host: &str, dest: &str, cc: &str, bytes: u64) {
        h.push_flow(FlowEvent {
            timestamp: Timestamp(t),
            host: host.into(),
            destination_ip: dest.parse().ok(),
            destination_country: Some(cc.into()),
            bytes_out: bytes,
            ..Default::default()
        });
    }

    /// A laptop's working days: a few destinations, a few MB.
    fn workdays(h: &mut Harness, host: &str, days: i64) {
        for d in 0..days {
            for k in 0..40 {
                let dest = ["198.18.0.10", "198.18.0.11", "198.18.0.12"][k % 3];
                flow(
                    h,
                    t0() + d * DAY + 8 * HOUR + k as i64 * 15 * MINUTE,
                    host,
                    dest,
                    "SE",
                    150_000,
                );
            }
        }
    }

    #[test]
    fn a_laptop_uploading_to_relays_in_several_countries_at_night_is_caught() {
        let mut h = Harness::new("", None);
        workdays(&mut h, "lt-0042", 10);
        let night = t0() + 10 * DAY + 2 * HOUR;
        for (k, (ip, cc)) in [("77.1.1.1", "RU"), ("77.2.2.2", "BR"), ("77.3.3.3", "VN")]
            .iter()
            .enumerate()
        {
            flow(
                &mut h,
                night + k as i64 * 10 * MINUTE,
                "lt-0042",
                ip,
                cc,
                150_000_000,
            );
        }
        let alerts = h.finish();
        let e = Harness::rule(&alerts, "egress");
        assert!(e.iter().any(|a| a.severity >= Severity::High), "{e:#?}");
        assert!(e.iter().all(|a| a.id == e[0].id));
        assert!(
            e.iter()
                .find(|a| a.severity >= Severity::Medium)
                .unwrap()
                .timestamp
                .0
                - night
                < HOUR
        );
    }

    #[test]
    fn a_backup_host_sending_gigabytes_to_its_allowed_destination_is_quiet() {
        let dir = "[[egress_allow]]\nhost = \"backup-01\"\ndestinations = [\"203.0.113.10/32\"]\n";
        let mut h = Harness::new(dir, None);
        for d in 0..20 {
            for k in 0..4 {
                flow(
                    &mut h,
                    t0() + d * DAY + HOUR + k * 10 * MINUTE,
                    "backup-01",
                    "203.0.113.10",
                    "SE",
                    1_000_000_000,
                );
            }
        }
        // And a laptop's ordinary days, including its first ones.
        workdays(&mut h, "lt-0001", 20);
        assert!(Harness::rule(&h.finish(), "egress").is_empty());
    }

    #[test]
    fn a_destination_the_whole_company_takes_up_is_not_exfiltration() {
        let run = |dir: &str| {
            let mut h = Harness::new(dir, None);
            for n in 0..30 {
                workdays(&mut h, &format!("lt-{n:04}"), 10);
            }
            // Day 10: every laptop starts its nightly backup to a new service.
            for n in 0..30 {
                let t = t0() + 10 * DAY + HOUR + n as i64 * MINUTE;
                let dest = format!("185.199.10.{}", 1 + n % 4);
                flow(&mut h, t, &format!("lt-{n:04}"), &dest, "US", 400_000_000);
            }
            Harness::rule(&h.finish(), "egress").len()
        };
        // Only the first adopters, before the destination is common.
        assert!(run("") < 10);
        // Judged one host at a time, every laptop would be an alert.
        assert_eq!(run("[detectors.egress]\ncommon_hosts = 1000\n"), 30);
    }
}
