//! Breach scoping: which customers an account read, who read a customer.

use crate::keys::DataDir;
use crate::ledger::Kind;
use crate::ledger::Ledger;
use crate::store::{AccountRow, StoredEntry};
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

/// The chain an entry is in: the data directory's own (`None`), or one of
/// a shared store's, by its number ([`crate::shared_names`]).
type Chain = Option<i32>;

/// A set of data categories by its name id, in its chain.
type CategorySet = (Chain, u64);

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
        // Per customer: the category sets read, first and last read, reads.
        let mut per: HashMap<String, (BTreeSet<CategorySet>, i64, i64, u64)> = HashMap::new();
        let mut cat_ids: BTreeSet<CategorySet> = BTreeSet::new();
        // Records of reads that name no customers, per category set.
        let mut unlisted: HashMap<CategorySet, u64> = HashMap::new();
        self.account_rows(account, since.0, until.0, &mut |chain, row| {
            if let Some(net) = ip {
                if !row.ip.parse().is_ok_and(|a| net.contains(a)) {
                    return Ok(());
                }
            }
            let cats = (chain, row.categories);
            scope.accesses += 1;
            *scope.source_ips.entry(row.ip.clone()).or_default() += 1;
            if row.customers.is_empty() {
                scope.unlisted_records += row.records.max(0) as u64;
                scope.unlisted_largest = scope.unlisted_largest.max(row.records.max(0) as u64);
                *unlisted.entry(cats).or_default() += row.records.max(0) as u64;
            }
            for c in &row.customers {
                let e = per
                    .entry(c.clone())
                    .or_insert((BTreeSet::new(), row.t, row.t, 0));
                e.0.insert(cats);
                e.1 = e.1.min(row.t);
                e.2 = e.2.max(row.t);
                e.3 += 1;
            }
            cat_ids.insert(cats);
            Ok(())
        })?;
        let cat_names: HashMap<CategorySet, Vec<String>> = self
            .names_in(&cat_ids)?
            .into_iter()
            .map(|(id, joined)| {
                let names = joined
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect();
                (id, names)
            })
            .collect();
        for (cats, records) in unlisted {
            for c in cat_names.get(&cats).into_iter().flatten() {
                *scope.unlisted_by_category.entry(c.clone()).or_default() += records;
            }
        }
        let mut customers = Vec::with_capacity(per.len());
        for (customer, (cats, first, last, reads)) in per {
            let categories: BTreeSet<String> = cats
                .iter()
                .flat_map(|c| cat_names.get(c).into_iter().flatten().cloned())
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

    /// Every access to one customer, oldest first: on a shared store, in
    /// every node's chain.
    pub fn scope_customer(&self, customer: &str) -> Result<Vec<CustomerAccess>> {
        let mut found = Vec::new();
        let mut keep = |chain: Chain, e: &StoredEntry| {
            found.push((chain, e.clone()));
            Ok(())
        };
        match &self.shared {
            Some(shared) => shared.customer_entries(customer, &mut |c, e| keep(Some(c), e))?,
            None => self.entries()?.customer(customer, &mut |e| keep(None, e))?,
        }
        let mut out = self.named_accesses(found)?;
        // Oldest first: entries are in seq order, which a source's late
        // lines do not follow.
        out.sort_by_key(|a| a.at);
        Ok(out)
    }

    /// Every access `account` made, in the order recorded (chain by chain
    /// on a shared store).
    pub fn accesses(&self, account: &str) -> Result<Vec<CustomerAccess>> {
        let mut seqs: BTreeMap<Chain, Vec<u64>> = BTreeMap::new();
        self.account_rows(account, i64::MIN, i64::MAX, &mut |chain, row| {
            seqs.entry(chain).or_default().push(row.seq);
            Ok(())
        })?;
        let mut found = Vec::new();
        for (chain, seqs) in seqs {
            let mut keep = |e: &StoredEntry| {
                found.push((chain, e.clone()));
                Ok(())
            };
            match (chain, &self.shared) {
                (Some(c), Some(shared)) => shared.entries_at(c, &seqs, &mut keep)?,
                _ => self.entries()?.entries_at(&seqs, &mut keep)?,
            }
        }
        self.named_accesses(found)
    }

    /// Visits the accesses of `account` with `since <= t <= until`: on a
    /// shared store, those of every chain that knows the account.
    pub(crate) fn account_rows(
        &self,
        account: &str,
        since: i64,
        until: i64,
        visit: &mut dyn FnMut(Chain, &AccountRow) -> Result<()>,
    ) -> Result<()> {
        if let Some(shared) = &self.shared {
            let ids = shared.name_ids(Kind::Account, account)?;
            return shared.account_rows(&ids, since, until, &mut |c, row| visit(Some(c), row));
        }
        let Some(id) = self.account_id(account)? else {
            return Ok(());
        };
        self.entries()?
            .account(id as u64, since, until, &mut |row| visit(None, row))
    }

    /// The names of `ids`, each in its chain.
    fn names_in(&self, ids: &BTreeSet<(Chain, u64)>) -> Result<HashMap<(Chain, u64), String>> {
        let Some(shared) = &self.shared else {
            return ids
                .iter()
                .map(|&(c, id)| Ok(((c, id), self.name_of(id as i64)?)))
                .collect();
        };
        let want = ids.iter().filter_map(|&(c, id)| Some((c?, id))).collect();
        Ok(shared
            .names(&want)?
            .into_iter()
            .map(|((c, id), name)| ((Some(c), id), name))
            .collect())
    }

    /// `found`'s entries with their names.
    fn named_accesses(&self, found: Vec<(Chain, StoredEntry)>) -> Result<Vec<CustomerAccess>> {
        let mut ids = BTreeSet::new();
        for (c, e) in &found {
            for id in [e.account, e.org, e.action, e.categories, e.source] {
                ids.insert((*c, id));
            }
        }
        let names = self.names_in(&ids)?;
        let name = |c: Chain, id: u64| -> Result<String> {
            names.get(&(c, id)).cloned().ok_or_else(|| {
                LedgerError::Invalid(format!(
                    "name id {id} of an entry is not in the ledger's names; run `vakt ledger verify`"
                ))
            })
        };
        found
            .into_iter()
            .map(|(c, e)| {
                Ok(CustomerAccess {
                    at: Timestamp(e.t),
                    account: name(c, e.account)?,
                    organization: name(c, e.org)?,
                    source_ip: e.ip,
                    action: name(c, e.action)?,
                    records: e.records,
                    categories: name(c, e.categories)?,
                    case_id: e.case_id,
                    source: name(c, e.source)?,
                    line: e.line,
                })
            })
            .collect()
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
