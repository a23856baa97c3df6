//! Shared addresses: one address, many people (office NAT, carrier-grade
//! NAT, a proxy).
//!
//! A web client without an account is named by its address, so an office
//! behind one NAT address would look like one very busy reader. Per
//! address, this keeps who was behind it in the last hour: distinct user
//! agents, distinct sessions (when the log names them) and successful
//! sign-ins. Detectors that judge an address then judge it per client.
//!
//! Clients are counted from sessions and sign-ins only, never from user
//! agents: a scraper that rotates user agents on one address must not buy
//! itself a higher threshold. Known blind spot: a client that signs in
//! again and again is counted as that many clients (its sign-ins are still
//! seen by `login_failures` when they fail, and its sessions by
//! `web_behaviour`).
//!
//! State: about 150 bytes per address, at most [`SharedAddresses::CAPACITY`]
//! addresses (the least recently seen is forgotten).

use lru::LruCache;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::num::NonZeroUsize;
use vakt_event::time::{HOUR, MINUTE};
use vakt_event::{AccessEvent, Action, Outcome, Timestamp};

/// Who was behind one address in the last hour.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct SharedAddress {
    /// Distinct user agents (at most [`RECENT`]).
    pub agents: u32,
    /// Distinct sessions named by the log (at most [`RECENT`]).
    pub sessions: u32,
    /// Successful sign-ins.
    pub sign_ins: u32,
}

/// Distinct agents and sessions remembered per address.
pub const RECENT: usize = 8;

impl SharedAddress {
    /// How many clients the address is judged as: sessions or sign-ins,
    /// whichever says more, at least one.
    pub fn clients(&self) -> u32 {
        self.sessions.max(self.sign_ins).max(1)
    }

    /// Whether the address looks shared by several people.
    pub fn is_shared(&self) -> bool {
        self.agents >= 3 || self.clients() >= 3
    }

    /// For alerts: "shared address: ~25 clients (4 user agents, 25 sign-ins in the last hour)".
    pub fn describe(&self) -> String {
        format!(
            "shared address: about {} clients in the last hour ({} user agents, {} sessions, {} sign-ins)",
            self.clients(),
            self.agents,
            self.sessions,
            self.sign_ins
        )
    }
}

/// Distinct hashed values with the second they were last seen.
#[derive(Default, serde::Serialize, serde::Deserialize)]
struct Recent([(u32, u32); RECENT]);

impl Recent {
    fn see(&mut self, h: u32, sec: u32) {
        let slots = &mut self.0;
        if let Some(s) = slots.iter_mut().find(|s| s.0 == h && s.1 != 0) {
            s.1 = sec;
            return;
        }
        let oldest = slots
            .iter_mut()
            .min_by_key(|s| s.1)
            .expect("RECENT is not zero");
        *oldest = (h, sec);
    }

    fn count(&self, since: u32) -> u32 {
        self.0.iter().filter(|s| s.1 != 0 && s.1 >= since).count() as u32
    }
}

/// Sign-ins per ten-minute period over the last hour: six buckets, each
/// with the period it counts.
#[derive(Default, serde::Serialize, serde::Deserialize)]
struct TenMinutes([(u32, u16); 6]);

impl TenMinutes {
    fn add(&mut self, period: u32) {
        let slot = &mut self.0[(period % 6) as usize];
        if slot.0 != period {
            *slot = (period, 0);
        }
        slot.1 = slot.1.saturating_add(1);
    }

    fn total(&self, period: u32) -> u32 {
        self.0
            .iter()
            .filter(|(p, _)| *p <= period && *p + 6 > period)
            .map(|(_, n)| *n as u32)
            .sum()
    }
}

#[derive(Default, serde::Serialize, serde::Deserialize)]
struct Behind {
    agents: Recent,
    sessions: Recent,
    sign_ins: TenMinutes,
}

/// Bounded per-address memory of who was behind each address.
pub struct SharedAddresses {
    map: LruCache<IpAddr, Behind, rustc_hash::FxBuildHasher>,
}

impl Default for SharedAddresses {
    fn default() -> Self {
        Self::with_capacity(Self::CAPACITY)
    }
}

fn hash32(s: &str) -> u32 {
    let mut h = rustc_hash::FxHasher::default();
    s.hash(&mut h);
    (h.finish() as u32).max(1)
}

/// Seconds since the epoch, as u32 (good until 2106), never 0.
fn seconds(t: Timestamp) -> u32 {
    (t.0 / 1000).clamp(1, u32::MAX as i64) as u32
}

impl serde::Serialize for SharedAddresses {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        crate::snapshot::LruRef(&self.map).serialize(s)
    }
}

impl<'de> serde::Deserialize<'de> for SharedAddresses {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let state = crate::snapshot::LruState::<IpAddr, Behind>::deserialize(d)?;
        let mut addresses = SharedAddresses::default();
        state.restore_into(&mut addresses.map);
        Ok(addresses)
    }
}

impl SharedAddresses {
    pub const CAPACITY: usize = 65_536;

    pub fn with_capacity(capacity: usize) -> Self {
        SharedAddresses {
            map: LruCache::with_hasher(
                NonZeroUsize::new(capacity.max(1)).expect("at least one"),
                rustc_hash::FxBuildHasher,
            ),
        }
    }

    /// Notes one anonymous web request from its address.
    pub fn observe(&mut self, a: &AccessEvent) {
        // One address however it is spelled (`::ffff:192.0.2.1` is `192.0.2.1`).
        let Some(ip) = a.source_ip.map(|ip| ip.to_canonical()) else {
            return;
        };
        let sec = seconds(a.timestamp);
        let behind = self.map.get_or_insert_mut(ip, Behind::default);
        if let Some(ua) = &a.user_agent {
            behind.agents.see(hash32(ua), sec);
        }
        if let Some(s) = &a.session_id {
            behind.sessions.see(hash32(s), sec);
        }
        if a.action == Action::Login && a.outcome == Outcome::Success {
            behind
                .sign_ins
                .add((a.timestamp.0.div_euclid(10 * MINUTE)) as u32);
        }
    }

    /// Who was behind `ip` in the hour before `now`.
    pub fn get(&self, ip: IpAddr, now: Timestamp) -> SharedAddress {
        let Some(b) = self.map.peek(&ip.to_canonical()) else {
            return SharedAddress::default();
        };
        let since = seconds(now).saturating_sub((HOUR / 1000) as u32);
        SharedAddress {
            agents: b.agents.count(since),
            sessions: b.sessions.count(since),
            sign_ins: b.sign_ins.total(now.0.div_euclid(10 * MINUTE) as u32),
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(ip: &str, at: i64, ua: &str, action: Action) -> AccessEvent {
        AccessEvent {
            timestamp: Timestamp(at),
            user: ip.into(),
            source_ip: ip.parse().ok(),
            user_agent: Some(ua.into()),
            action,
            ..Default::default()
        }
    }

    const T0: i64 = 1_709_510_400_000;

    #[test]
    fn an_office_behind_one_address_is_judged_by_its_sign_ins() {
        let mut s = SharedAddresses::default();
        for i in 0..40 {
            let ua = format!("Mozilla/5.0 browser {}", i % 5);
            s.observe(&req("198.51.100.1", T0 + i * MINUTE, &ua, Action::Login));
            s.observe(&req(
                "198.51.100.1",
                T0 + i * MINUTE + 1000,
                &ua,
                Action::Lookup,
            ));
        }
        let now = Timestamp(T0 + 40 * MINUTE);
        let office = s.get("198.51.100.1".parse().unwrap(), now);
        assert_eq!((office.agents, office.sign_ins), (5, 40));
        assert_eq!(office.clients(), 40);
        assert!(office.is_shared());
        // An hour later the sign-ins have aged out.
        let later = s.get("198.51.100.1".parse().unwrap(), Timestamp(now.0 + 2 * HOUR));
        assert_eq!((later.agents, later.sign_ins, later.clients()), (0, 0, 1));
    }

    #[test]
    fn rotating_user_agents_buy_no_extra_clients() {
        let mut s = SharedAddresses::default();
        for i in 0..500 {
            let ua = format!("agent-{i}");
            s.observe(&req("203.0.113.9", T0 + i * 1000, &ua, Action::Lookup));
        }
        let one = s.get("203.0.113.9".parse().unwrap(), Timestamp(T0 + 500_000));
        assert_eq!(one.agents as usize, RECENT);
        assert_eq!(one.clients(), 1);
        assert!(
            one.is_shared(),
            "recognised as shared, judged as one client"
        );
    }

    #[test]
    fn memory_is_bounded_by_addresses() {
        let mut s = SharedAddresses::with_capacity(100);
        for i in 0..1000u32 {
            let ip = std::net::Ipv4Addr::from(0x0a00_0000 + i).to_string();
            s.observe(&req(&ip, T0, "ua", Action::Lookup));
        }
        assert_eq!(s.len(), 100);
    }

    #[test]
    fn an_address_is_one_address_however_it_is_spelled() {
        let mut s = SharedAddresses::default();
        s.observe(&req("198.51.100.7", T0, "a", Action::Login));
        s.observe(&req("::ffff:198.51.100.7", T0 + 1000, "b", Action::Login));
        let both = s.get("198.51.100.7".parse().unwrap(), Timestamp(T0 + 2000));
        assert_eq!((both.agents, both.sign_ins), (2, 2));
        assert_eq!(s.len(), 1);
    }
}
