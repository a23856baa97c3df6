//! Breach scoping: which customers an account read, who read a customer.

use crate::keys::DataDir;
use crate::ledger::Ledger;
use crate::store::{EntryStore, StoredEntry};
use crate::{LedgerError, Result};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use vakt_event::Timestamp;

/// What one customer lost to one account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CustomerExposure {
    pub customer: String,
    pub categories: BTreeSet<String>,
    pub first: Timestamp,
    pub last: Timestamp,
    pub reads: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct AccountScope {
    pub account: String,
    pub since: Timestamp,
    pub until: Timestamp,
    pub accesses: u64,
    /// Records returned by reads that name no customers (exports, searches).
    pub unlisted_records: u64,
    /// Those records per data category the reads named: each record is
    /// taken for one data subject, an approximation.
    pub unlisted_by_category: BTreeMap<String, u64>,
    /// The most records one such read returned: the fewest data subjects
    /// they can be, when reads return the same customers again.
    pub unlisted_largest: u64,
    pub customers: Vec<CustomerExposure>,
    /// Distinct customers per data category.
    pub by_category: BTreeMap<String, u64>,
    pub source_ips: BTreeMap<String, u64>,
}

/// One access: to a customer (`scope --customer`), or by an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CustomerAccess {
    pub at: Timestamp,
    pub account: String,
    pub organization: String,
    pub source_ip: String,
    pub action: String,
    /// Records the access returned.
    pub records: i64,
    pub categories: String,
    pub case_id: String,
    pub source: String,
    pub line: i64,
}

/// A network to filter by: an address and a prefix length.
#[derive(Debug, Clone, Copy)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Option<Cidr> {
        let (a, p) = s.split_once('/').unwrap_or((s, ""));
        let addr: IpAddr = a.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = if p.is_empty() {
            max
        } else {
            p.parse().ok().filter(|p| *p <= max)?
        };
        Some(Cidr { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let bits = |ip: IpAddr| -> (u128, u8) {
            match ip {
                IpAddr::V4(v) => (u32::from(v) as u128, 32),
                IpAddr::V6(v) => (u128::from(v), 128),
            }
        };
        let ((a, w), (b, w2)) = (bits(self.addr), bits(ip));
        if w != w2 {
            return false;
        }
        let shift = (w - self.prefix) as u32;
        shift >= 128 || (a >> shift) == (b >> shift)
    }
}

/// Visits some of a store's entries.
type EntryWalk<'a> =
    dyn FnMut(&dyn EntryStore, &mut dyn FnMut(&StoredEntry) -> Result<()>) -> Result<()> + 'a;

impl Ledger {
    fn name_of(&self, kind_id: i64) -> Result<String> {
        let r = self
            .conn
            .prepare_cached("SELECT name FROM names WHERE id = ?1")
            .and_then(|mut s| s.query_row([kind_id], |r| r.get(0)));
        self.db(r)
    }

    /// Every customer `account` read in `[since, until]`, from addresses in `ip` when given.
    pub fn scope_account(
        &self,
        account: &str,
        since: Timestamp,
        until: Timestamp,
        ip: Option<Cidr>,
    ) -> Result<AccountScope> {
        let id = self.account_id(account)?;
        let mut scope = AccountScope {
            account: account.to_owned(),
            since,
            until,
            accesses: 0,
            unlisted_records: 0,
            unlisted_by_category: BTreeMap::new(),
            unlisted_largest: 0,
            customers: Vec::new(),
            by_category: BTreeMap::new(),
            source_ips: BTreeMap::new(),
        };
        let Some(id) = id else { return Ok(scope) };
        let mut per: HashMap<String, (BTreeSet<u64>, i64, i64, u64)> = HashMap::new();
        let mut cat_names: HashMap<u64, Vec<String>> = HashMap::new();
        // Records of reads that name no customers, per category set.
        let mut unlisted: HashMap<u64, u64> = HashMap::new();
        self.entries()?
            .account(id as u64, since.0, until.0, &mut |row| {
                if let Some(net) = ip {
                    if !row.ip.parse().is_ok_and(|a| net.contains(a)) {
                        return Ok(());
                    }
                }
                scope.accesses += 1;
                *scope.source_ips.entry(row.ip.clone()).or_default() += 1;
                if row.customers.is_empty() {
                    scope.unlisted_records += row.records.max(0) as u64;
                    scope.unlisted_largest = scope.unlisted_largest.max(row.records.max(0) as u64);
                    *unlisted.entry(row.categories).or_default() += row.records.max(0) as u64;
                }
                for c in &row.customers {
                    let e = per
                        .entry(c.clone())
                        .or_insert((BTreeSet::new(), row.t, row.t, 0));
                    e.0.insert(row.categories);
                    e.1 = e.1.min(row.t);
                    e.2 = e.2.max(row.t);
                    e.3 += 1;
                }
                cat_names.entry(row.categories).or_default();
                Ok(())
            })?;
        for (id, names) in cat_names.iter_mut() {
            *names = self
                .name_of(*id as i64)?
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
        }
        for (cats, records) in unlisted {
            for c in &cat_names[&cats] {
                *scope.unlisted_by_category.entry(c.clone()).or_default() += records;
            }
        }
        let mut customers = Vec::with_capacity(per.len());
        for (customer, (cats, first, last, reads)) in per {
            let categories: BTreeSet<String> = cats
                .iter()
                .flat_map(|c| cat_names[c].iter().cloned())
                .collect();
            for c in &categories {
                *scope.by_category.entry(c.clone()).or_default() += 1;
            }
            customers.push(CustomerExposure {
                customer,
                categories,
                first: Timestamp(first),
                last: Timestamp(last),
                reads,
            });
        }
        customers.sort_by(|a, b| a.customer.cmp(&b.customer));
        scope.customers = customers;
        Ok(scope)
    }

    /// Every access to one customer, oldest first.
    pub fn scope_customer(&self, customer: &str) -> Result<Vec<CustomerAccess>> {
        let mut out = self.named_accesses(&mut |store, visit| store.customer(customer, visit))?;
        // Oldest first: entries are in seq order, which a source's late
        // lines do not follow.
        out.sort_by_key(|a| a.at);
        Ok(out)
    }

    /// Every access `account` made, in the order recorded.
    pub fn accesses(&self, account: &str) -> Result<Vec<CustomerAccess>> {
        let Some(id) = self.account_id(account)? else {
            return Ok(Vec::new());
        };
        let mut seqs = Vec::new();
        self.entries()?
            .account(id as u64, i64::MIN, i64::MAX, &mut |row| {
                seqs.push(row.seq);
                Ok(())
            })?;
        self.named_accesses(&mut |store, visit| store.entries_at(&seqs, visit))
    }

    /// The entries `walk` visits, with their names.
    fn named_accesses(&self, walk: &mut EntryWalk) -> Result<Vec<CustomerAccess>> {
        let mut names: HashMap<u64, String> = HashMap::new();
        let mut out = Vec::new();
        let store = self.entries()?;
        walk(store.as_ref(), &mut |e| {
            let mut name = |id: u64| -> Result<String> {
                if let Some(n) = names.get(&id) {
                    return Ok(n.clone());
                }
                let n = self.name_of(id as i64)?;
                names.insert(id, n.clone());
                Ok(n)
            };
            out.push(CustomerAccess {
                at: Timestamp(e.t),
                account: name(e.account)?,
                organization: name(e.org)?,
                source_ip: e.ip.clone(),
                action: name(e.action)?,
                records: e.records,
                categories: name(e.categories)?,
                case_id: e.case_id.clone(),
                source: name(e.source)?,
                line: e.line,
            });
            Ok(())
        })?;
        Ok(out)
    }

    /// The account and window of a recorded alert.
    pub fn alert_window(&self, id: &str) -> Result<(String, Timestamp, Timestamp)> {
        let row = self
            .alert_row(id)?
            .map(|a| (a.user, a.first_seen.0, a.last.0));
        match row {
            Some((Some(user), first, last)) => Ok((user, Timestamp(first), Timestamp(last))),
            Some((None, _, _)) => Err(LedgerError::Invalid(format!(
                "alert {id} is about a host, not an account; scope its accounts with --account"
            ))),
            None => Err(LedgerError::Invalid(format!(
                "no alert {id} in this ledger; alerts are recorded by `vakt watch --data`"
            ))),
        }
    }
}

/// Opens a data directory's ledger for scoping.
pub fn open(dir: &DataDir) -> Result<Ledger> {
    Ledger::open_read(dir)
}
