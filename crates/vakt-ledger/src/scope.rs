//! Breach scoping: which customers an account read, who read a customer.

use crate::keys::DataDir;
use crate::ledger::{decode_ids, Ledger};
use crate::{LedgerError, Result};
use rusqlite::{params, OptionalExtension};
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
    pub customers: Vec<CustomerExposure>,
    /// Distinct customers per data category.
    pub by_category: BTreeMap<String, u64>,
    pub source_ips: BTreeMap<String, u64>,
}

/// One access to a customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CustomerAccess {
    pub at: Timestamp,
    pub account: String,
    pub organization: String,
    pub source_ip: String,
    pub action: String,
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
        let id: Option<i64> = {
            let r = self
                .conn
                .query_row(
                    "SELECT id FROM names WHERE kind = 1 AND name = ?1",
                    [account],
                    |r| r.get(0),
                )
                .optional();
            self.db(r)?
        };
        let mut scope = AccountScope {
            account: account.to_owned(),
            since,
            until,
            accesses: 0,
            unlisted_records: 0,
            customers: Vec::new(),
            by_category: BTreeMap::new(),
            source_ips: BTreeMap::new(),
        };
        let Some(id) = id else { return Ok(scope) };
        let mut stmt = self.db(self.conn.prepare("SELECT t, ip, cats, records, custs FROM entries WHERE account = ?1 AND t BETWEEN ?2 AND ?3"))?;
        let mut rows = self.db(stmt.query(params![id, since.0, until.0]))?;
        let mut per: HashMap<i64, (BTreeSet<i64>, i64, i64, u64)> = HashMap::new();
        let mut cat_names: HashMap<i64, Vec<String>> = HashMap::new();
        while let Some(row) = self.db(rows.next())? {
            let (t, addr, cats, records, custs): (i64, String, i64, i64, Vec<u8>) =
                self.db((|| {
                    Ok((
                        row.get(0)?,
                        row.get(1)?,
                        row.get(2)?,
                        row.get(3)?,
                        row.get(4)?,
                    ))
                })())?;
            if let Some(net) = ip {
                if !addr.parse().is_ok_and(|a| net.contains(a)) {
                    continue;
                }
            }
            scope.accesses += 1;
            *scope.source_ips.entry(addr).or_default() += 1;
            let ids = decode_ids(&custs);
            if ids.is_empty() {
                scope.unlisted_records += records.max(0) as u64;
            }
            for c in ids {
                let e = per.entry(c).or_insert((BTreeSet::new(), t, t, 0));
                e.0.insert(cats);
                e.1 = e.1.min(t);
                e.2 = e.2.max(t);
                e.3 += 1;
            }
            cat_names.entry(cats).or_default();
        }
        drop(rows);
        drop(stmt);
        for (id, names) in cat_names.iter_mut() {
            *names = self
                .name_of(*id)?
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
        }
        let mut customers = Vec::with_capacity(per.len());
        for (cid, (cats, first, last, reads)) in per {
            let r = self
                .conn
                .prepare_cached("SELECT name FROM customers WHERE id = ?1")
                .and_then(|mut s| s.query_row([cid], |r| r.get::<_, String>(0)));
            let customer = self.db(r)?;
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
        let cid: Option<i64> = {
            let r = self
                .conn
                .query_row(
                    "SELECT id FROM customers WHERE name = ?1",
                    [customer],
                    |r| r.get(0),
                )
                .optional();
            self.db(r)?
        };
        let Some(cid) = cid else {
            return Ok(Vec::new());
        };
        let sql = "SELECT e.t, a.name, o.name, e.ip, x.name, c.name, e.case_id, s.name, e.line
                   FROM reads r JOIN entries e ON e.seq = r.seq
                   JOIN names a ON a.id = e.account JOIN names o ON o.id = e.org JOIN names x ON x.id = e.action
                   JOIN names c ON c.id = e.cats JOIN names s ON s.id = e.source
                   WHERE r.customer = ?1 ORDER BY e.t, e.seq";
        let r = self.conn.prepare(sql).and_then(|mut s| {
            s.query_map([cid], |r| {
                Ok(CustomerAccess {
                    at: Timestamp(r.get(0)?),
                    account: r.get(1)?,
                    organization: r.get(2)?,
                    source_ip: r.get(3)?,
                    action: r.get(4)?,
                    categories: r.get(5)?,
                    case_id: r.get(6)?,
                    source: r.get(7)?,
                    line: r.get(8)?,
                })
            })?
            .collect()
        });
        self.db(r)
    }

    /// The account and window of a recorded alert.
    pub fn alert_window(&self, id: &str) -> Result<(String, Timestamp, Timestamp)> {
        let r = self
            .conn
            .query_row(
                "SELECT user, first_seen, last FROM alerts WHERE id = ?1",
                [id],
                |r| {
                    Ok((
                        r.get::<_, Option<String>>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, i64>(2)?,
                    ))
                },
            )
            .optional();
        match self.db(r)? {
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
