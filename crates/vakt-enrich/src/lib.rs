//! Enrichment: what vakt knows about an event beyond the event itself.
//!
//! [`Enricher::enrich`] adds, once per event, what several detectors need:
//! the account's directory entry and peer group, whether the source address
//! is inside the organisation's networks, GeoIP, local working hours,
//! business context (a case) and canary customers touched. Detectors then
//! read these facts instead of each looking them up again.

pub mod cases;
pub mod geoip;
mod intern;
pub mod shared;
pub mod snapshot;

pub use cases::Cases;
pub use geoip::{Geo, GeoIp};
pub use intern::Interner;
pub use shared::{SharedAddress, SharedAddresses};

use chrono::Timelike;
use ipnet::IpNet;
use rustc_hash::FxHashMap as HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use vakt_event::directory::{Account, AccountKind, Hours, Service};
use vakt_event::{Directory, Event};

/// A dense id for an account or host, so detectors key their state by a
/// `u32` instead of a string.
pub type ActorId = u32;

/// A dense id for a peer group: organisation kind and role.
pub type PeerGroup = u32;

/// Where an access came from, relative to the actor's organisation.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum NetworkMatch<'a> {
    /// The event has no source address.
    NoAddress,
    /// The account's organisation is unknown, so nothing can be said.
    NoOrganization,
    /// The organisation declares no networks.
    OrganizationHasNoNetworks,
    /// Inside one of the organisation's networks.
    Own,
    /// Inside another organisation's networks.
    OtherOrganization(&'a str),
    /// In no network the directory declares.
    Unlisted,
}

impl NetworkMatch<'_> {
    /// True when the address is known to be outside the organisation's networks.
    pub fn is_foreign(&self) -> bool {
        matches!(
            self,
            NetworkMatch::OtherOrganization(_) | NetworkMatch::Unlisted
        )
    }
}

/// Whether an access had a business reason.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum BusinessContext {
    /// The event carries a `case.id`.
    CaseOnEvent,
    /// The cases file has a case for this account and every customer read.
    CaseFile,
    /// Cases are known, and this many of the customers read had none.
    Without(u32),
    /// No cases file and no `case.id`: nothing can be said.
    Unknown,
}

/// What vakt knows about one event. Borrowed from the event and the enricher.
pub struct Enriched<'a> {
    pub event: &'a Event,
    /// The account (access events, and flow events naming a user) or host (flow events).
    pub actor: ActorId,
    pub account: Option<&'a Account>,
    pub service: Option<&'a Service>,
    /// The directory's organisation, else the event's `organization.id`.
    pub organization: Option<&'a str>,
    pub organization_kind: Option<&'a str>,
    pub peer_group: PeerGroup,
    pub network: NetworkMatch<'a>,
    /// GeoIP of the source address (access) or destination (flow).
    pub geo: Option<Geo>,
    /// Whether the event falls in the account's declared hours.
    pub in_hours: Option<bool>,
    /// Whether the customers read lie outside the segments or regions the
    /// account's queue serves (the account's, else its organisation's);
    /// `None` when the event or the directory does not say.
    pub outside_queue: Option<bool>,
    pub context: BusinessContext,
    /// The cases file, for a case logged after the read (access events).
    pub cases: Option<&'a Cases>,
    /// Canary customer ids the event touched.
    pub canaries: Vec<&'a str>,
    /// For flows: the directory allows this host to send to this destination.
    pub egress_allowed: bool,
    /// For an actor named by its address (a web client without an
    /// account): who else was behind that address in the last hour.
    pub address: Option<SharedAddress>,
}

impl Enriched<'_> {
    pub fn kind(&self) -> AccountKind {
        if self.service.is_some() {
            AccountKind::Service
        } else {
            self.account.map(|a| a.kind).unwrap_or_default()
        }
    }

    /// The end of the account's working day, when the event falls in its
    /// declared hours (a window that wraps midnight ends the next day).
    pub fn shift_end(&self) -> Option<vakt_event::Timestamp> {
        let acc = self.account?;
        let hours = acc.work_hours?;
        if self.in_hours != Some(true) {
            return None;
        }
        let at = self.event.timestamp();
        let tz = acc.tz.unwrap_or(chrono_tz::UTC);
        let local = at.to_datetime().with_timezone(&tz);
        let now = (local.hour() * 60 + local.minute()) as i64;
        let end = hours.end_minute as i64;
        let left = if end > now {
            end - now
        } else {
            end + 24 * 60 - now
        };
        Some(vakt_event::Timestamp(
            at.0 - (local.second() as i64 * 1000 + local.timestamp_subsec_millis() as i64)
                + left * 60_000,
        ))
    }
}

struct OrgInfo {
    kind: String,
    nets: Vec<IpNet>,
    segments: Vec<String>,
    regions: Vec<String>,
}

/// Directory and side inputs, indexed for lookups on every event.
pub struct Enricher {
    directory: Arc<Directory>,
    accounts: HashMap<String, usize>,
    services: HashMap<String, usize>,
    orgs: HashMap<String, OrgInfo>,
    /// Every declared network with its organisation, for "whose network is this".
    networks: Vec<(IpNet, String)>,
    canaries: HashMap<String, usize>,
    egress_allow: HashMap<String, Vec<IpNet>>,
    /// Shared with the enrichers [`Enricher::fresh`] makes: read-only.
    cases: Option<Arc<Cases>>,
    geoip: Option<Arc<GeoIp>>,
    actors: Interner,
    hosts: Interner,
    peer_groups: Interner,
    /// Per account (by [`ActorId`]): its peer group and directory entries,
    /// fixed at first sight and again at the first sight after a
    /// [`Enricher::reload`] (`None` until then), so later events need no
    /// lookups by name.
    actor_info: Vec<Option<Ids>>,
    addresses: SharedAddresses,
}

/// The directory's organisation for an account or service, else the event's.
fn organization_of<'a>(
    account: Option<&'a Account>,
    service: Option<&'a Service>,
    a: &'a vakt_event::AccessEvent,
) -> Option<&'a str> {
    account
        .and_then(|a| a.organization.as_ref().map(|o| o.get_ref().as_str()))
        .or_else(|| service.and_then(|s| s.organization.as_ref().map(|o| o.get_ref().as_str())))
        .or(a.organization.as_deref())
}

/// Ids assigned by [`Enricher::prepare`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Ids {
    pub actor: ActorId,
    pub peer_group: PeerGroup,
    /// Index of the account's `[[account]]` entry.
    pub account: Option<u32>,
    /// Index of the account's `[[service]]` entry.
    pub service: Option<u32>,
    /// The actor is named by an address: a web client without an account.
    pub anonymous: bool,
}

impl Enricher {
    pub fn new(directory: Arc<Directory>, cases: Option<Cases>, geoip: Option<GeoIp>) -> Enricher {
        Self::with_shared(directory, cases.map(Arc::new), geoip.map(Arc::new))
    }

    /// An enricher over the same directory, cases and GeoIP databases that
    /// has seen no event: for a detection engine of its own (a Kafka
    /// partition that moves between nodes).
    pub fn fresh(&self) -> Enricher {
        Self::with_shared(
            self.directory.clone(),
            self.cases.clone(),
            self.geoip.clone(),
        )
    }

    fn with_shared(
        directory: Arc<Directory>,
        cases: Option<Arc<Cases>>,
        geoip: Option<Arc<GeoIp>>,
    ) -> Enricher {
        let d = &directory;
        let accounts = d
            .accounts
            .iter()
            .enumerate()
            .map(|(i, a)| (a.name.get_ref().clone(), i))
            .collect();
        let services = d
            .services
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.get_ref().clone(), i))
            .collect();
        let orgs = d
            .organizations
            .iter()
            .map(|o| {
                (
                    o.id.get_ref().clone(),
                    OrgInfo {
                        kind: o.kind.clone(),
                        nets: o.nets.clone(),
                        segments: o.segments.clone(),
                        regions: o.regions.clone(),
                    },
                )
            })
            .collect();
        let mut networks: Vec<(IpNet, String)> = d
            .organizations
            .iter()
            .flat_map(|o| o.nets.iter().map(move |n| (*n, o.id.get_ref().clone())))
            .collect();
        // Most specific first, so a shop's /28 wins over its parent's /16.
        networks.sort_by_key(|n| std::cmp::Reverse(n.0.prefix_len()));
        let canaries = d
            .canaries
            .iter()
            .enumerate()
            .map(|(i, c)| (c.customer_id.clone(), i))
            .collect();
        let mut egress_allow: HashMap<String, Vec<IpNet>> = HashMap::default();
        for e in &d.egress_allow {
            egress_allow
                .entry(e.host.clone())
                .or_default()
                .extend(e.nets.iter().copied());
        }
        Enricher {
            accounts,
            services,
            orgs,
            networks,
            canaries,
            egress_allow,
            cases,
            geoip,
            actors: Interner::default(),
            hosts: Interner::default(),
            peer_groups: Interner::default(),
            actor_info: Vec::new(),
            addresses: SharedAddresses::default(),
            directory,
        }
    }

    pub fn directory(&self) -> &Directory {
        &self.directory
    }

    /// What this enricher learned from events (the ids it gave actors,
    /// hosts and peer groups, and who was behind shared addresses), for a
    /// snapshot ([`snapshot`]).
    pub fn save(&self) -> Result<Vec<u8>, snapshot::SnapshotError> {
        snapshot::save(&(
            &self.actors,
            &self.hosts,
            &self.peer_groups,
            &self.addresses,
        ))
    }

    /// Takes back what [`Enricher::save`] saved, as a
    /// [`Enricher::reload`] keeps it: each actor's directory entries are
    /// looked up again at its next event.
    pub fn restore(&mut self, state: &[u8]) -> Result<(), snapshot::SnapshotError> {
        (self.actors, self.hosts, self.peer_groups, self.addresses) = snapshot::load(state)?;
        self.actor_info.clear();
        Ok(())
    }

    /// Swaps in an edited directory and everything indexed from it, at an
    /// event boundary. The interners stay, so actor, host and peer group
    /// ids (and the detector state keyed by them) survive; each actor's
    /// account, organisation and peer group are looked up again at its next
    /// event. Cases, GeoIP and the shared-address window stay as they are.
    pub fn reload(&mut self, directory: Arc<Directory>) {
        let fresh = Enricher::with_shared(directory, self.cases.take(), self.geoip.take());
        let old = std::mem::replace(self, fresh);
        // What is learned from events, not from the directory, is carried over.
        self.actors = old.actors;
        self.hosts = old.hosts;
        self.peer_groups = old.peer_groups;
        self.addresses = old.addresses;
    }

    pub fn has_networks(&self) -> bool {
        !self.networks.is_empty()
    }

    pub fn has_cases(&self) -> bool {
        self.cases.is_some()
    }

    pub fn has_geoip(&self) -> bool {
        self.geoip.is_some()
    }

    pub fn has_canaries(&self) -> bool {
        !self.canaries.is_empty()
    }

    pub fn has_accounts(&self) -> bool {
        !self.accounts.is_empty() || !self.services.is_empty()
    }

    /// The name behind an actor id (account, or host for flow events).
    pub fn actor_name(&self, id: ActorId, flow: bool) -> &str {
        if flow {
            self.hosts.name(id)
        } else {
            self.actors.name(id)
        }
    }

    pub fn peer_group_name(&self, id: PeerGroup) -> &str {
        self.peer_groups.name(id)
    }

    /// Number of distinct accounts and hosts seen.
    pub fn actors_seen(&self) -> usize {
        self.actors.len() + self.hosts.len()
    }

    /// The directory's canary entry for a customer id.
    pub fn canary(&self, customer: &str) -> Option<&vakt_event::directory::Canary> {
        self.canaries
            .get(customer)
            .map(|&i| &self.directory.canaries[i])
    }

    /// Whether the directory allows `host` to send to `ip`.
    pub fn egress_allowed(&self, host: &str, ip: IpAddr) -> bool {
        self.egress_allow
            .get(host)
            .is_some_and(|nets| nets.iter().any(|n| n.contains(&ip)))
    }

    pub fn geo(&self, ip: IpAddr) -> Option<Geo> {
        self.geoip.as_ref()?.lookup(ip)
    }

    /// The organisation whose declared networks hold `ip`.
    pub fn network_owner(&self, ip: IpAddr) -> Option<&str> {
        self.networks
            .iter()
            .find(|(n, _)| n.contains(&ip))
            .map(|(_, o)| o.as_str())
    }

    /// An access's organisation: the directory's when it names one, else the event's.
    pub fn organization_of<'a>(&'a self, a: &'a vakt_event::AccessEvent) -> Option<&'a str> {
        self.declared(a).2
    }

    /// The directory's account and service entries for an access, and its
    /// organisation: the directory's when it names one, else the event's.
    fn declared<'a>(
        &'a self,
        a: &'a vakt_event::AccessEvent,
    ) -> (Option<&'a Account>, Option<&'a Service>, Option<&'a str>) {
        let account = self
            .accounts
            .get(&a.user)
            .map(|&i| &self.directory.accounts[i]);
        let service = self
            .services
            .get(&a.user)
            .map(|&i| &self.directory.services[i]);
        (account, service, organization_of(account, service, a))
    }

    /// Assigns the event's actor and peer group their ids. Separate from
    /// [`Enricher::enrich`] because it is the only step that writes.
    pub fn prepare(&mut self, event: &Event) -> Ids {
        match event {
            Event::Access(a) => {
                let actor = self.actors.intern(&a.user);
                if let Some(Some(ids)) = self.actor_info.get(actor as usize) {
                    if ids.anonymous {
                        self.addresses.observe(a);
                    }
                    return *ids;
                }
                let (account, service, organization) = self.declared(a);
                let kind = organization
                    .and_then(|o| self.orgs.get(o))
                    .map(|o| o.kind.as_str());
                let role = account
                    .and_then(|a| a.role.as_deref())
                    .unwrap_or(if service.is_some() { "service" } else { "-" });
                let group = format!("{}/{}", kind.unwrap_or("-"), role);
                let ids = Ids {
                    actor,
                    peer_group: self.peer_groups.intern(&group),
                    account: self.accounts.get(&a.user).map(|&i| i as u32),
                    service: self.services.get(&a.user).map(|&i| i as u32),
                    anonymous: a.user.parse::<IpAddr>().is_ok(),
                };
                if ids.anonymous {
                    self.addresses.observe(a);
                }
                // Interned ids are dense: the slot exists or is the next one
                // (or, after a reload, an earlier actor's slot is refilled).
                let slot = actor as usize;
                if self.actor_info.len() <= slot {
                    self.actor_info.resize(slot + 1, None);
                }
                self.actor_info[slot] = Some(ids);
                ids
            }
            Event::Flow(f) => Ids {
                actor: self.hosts.intern(&f.host),
                peer_group: self.peer_groups.intern("host"),
                account: None,
                service: None,
                anonymous: false,
            },
        }
    }

    pub fn enrich<'a>(&'a self, event: &'a Event, ids: Ids) -> Enriched<'a> {
        /// Whether `value` lies outside `served`; `None` when either is not known.
        fn outside(served: &[String], value: Option<&str>) -> Option<bool> {
            let value = value?;
            (!served.is_empty()).then(|| !served.iter().any(|s| s.eq_ignore_ascii_case(value)))
        }

        let Ids {
            actor, peer_group, ..
        } = ids;
        match event {
            Event::Access(a) => {
                let account = ids.account.map(|i| &self.directory.accounts[i as usize]);
                let service = ids.service.map(|i| &self.directory.services[i as usize]);
                let organization = organization_of(account, service, a);
                let org = organization.and_then(|o| self.orgs.get(o));
                let organization_kind = org.map(|o| o.kind.as_str());
                let network = match (a.source_ip, org) {
                    (None, _) => NetworkMatch::NoAddress,
                    (Some(_), None) => NetworkMatch::NoOrganization,
                    (Some(_), Some(o)) if o.nets.is_empty() => {
                        NetworkMatch::OrganizationHasNoNetworks
                    }
                    (Some(ip), Some(o)) if o.nets.iter().any(|n| n.contains(&ip)) => {
                        NetworkMatch::Own
                    }
                    (Some(ip), Some(_)) => {
                        match self.networks.iter().find(|(n, _)| n.contains(&ip)) {
                            Some((_, other)) => NetworkMatch::OtherOrganization(other.as_str()),
                            None => NetworkMatch::Unlisted,
                        }
                    }
                };
                let in_hours = account.and_then(|acc| {
                    let hours: Hours = acc.work_hours?;
                    let tz = acc.tz.unwrap_or(chrono_tz::UTC);
                    let local = a.timestamp.to_datetime().with_timezone(&tz);
                    Some(hours.contains((local.hour() * 60 + local.minute()) as u16))
                });
                // Each of the account's lists, else its organisation's.
                let outside_queue =
                    account.and_then(|acc| {
                        let served =
                            |own: &'a [String], of_org: fn(&'a OrgInfo) -> &'a [String]| match (
                                own.is_empty(),
                                org,
                            ) {
                                (true, Some(o)) => of_org(o),
                                _ => own,
                            };
                        let segments = served(&acc.segments, |o| &o.segments);
                        let regions = served(&acc.regions, |o| &o.regions);
                        outside(segments, a.customer_segment.as_deref())
                            .into_iter()
                            .chain(outside(regions, a.customer_region.as_deref()))
                            .reduce(|x, y| x || y)
                    });
                let context = if a.case_id.is_some() {
                    BusinessContext::CaseOnEvent
                } else if let Some(cases) = &self.cases {
                    let without = a
                        .customer_ids
                        .iter()
                        .filter(|c| !cases.covers(&a.user, c, a.timestamp))
                        .count() as u32;
                    if without == 0 && !a.customer_ids.is_empty() {
                        BusinessContext::CaseFile
                    } else {
                        BusinessContext::Without(without)
                    }
                } else {
                    BusinessContext::Unknown
                };
                let canaries = if self.canaries.is_empty() {
                    Vec::new()
                } else {
                    a.customer_ids
                        .iter()
                        .filter(|c| self.canaries.contains_key(c.as_str()))
                        .map(|c| c.as_str())
                        .collect()
                };
                let geo = match (&self.geoip, a.source_ip) {
                    (Some(g), Some(ip)) => g.lookup(ip),
                    _ => None,
                };
                Enriched {
                    event,
                    actor,
                    account,
                    service,
                    organization,
                    organization_kind,
                    peer_group,
                    network,
                    geo,
                    in_hours,
                    outside_queue,
                    context,
                    cases: self.cases.as_deref(),
                    canaries,
                    egress_allowed: false,
                    address: match (ids.anonymous, a.source_ip) {
                        (true, Some(ip)) => Some(self.addresses.get(ip, a.timestamp)),
                        _ => None,
                    },
                }
            }
            Event::Flow(f) => {
                let geo = match (&self.geoip, f.destination_ip) {
                    (Some(g), Some(ip)) => g.lookup(ip),
                    _ => None,
                }
                .or_else(|| {
                    f.destination_country.as_ref().map(|c| Geo {
                        country: Some(c.clone()),
                        ..Geo::default()
                    })
                });
                let account = f
                    .user
                    .as_ref()
                    .and_then(|u| self.accounts.get(u))
                    .map(|&i| &self.directory.accounts[i]);
                Enriched {
                    event,
                    actor,
                    account,
                    service: None,
                    organization: account
                        .and_then(|a| a.organization.as_ref().map(|o| o.get_ref().as_str())),
                    organization_kind: None,
                    peer_group,
                    network: NetworkMatch::NoAddress,
                    geo,
                    in_hours: None,
                    outside_queue: None,
                    context: BusinessContext::Unknown,
                    cases: None,
                    canaries: Vec::new(),
                    egress_allowed: f
                        .destination_ip
                        .is_some_and(|ip| self.egress_allowed(&f.host, ip)),
                    address: None,
                }
            }
        }
    }
}
