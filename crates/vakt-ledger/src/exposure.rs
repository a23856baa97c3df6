//! Exposure: what each account and organisation did reach, and what that
//! is worth to an attacker.
//!
//! The value of a store to an attacker grows faster than its record count
//! (S3, T-Mobile): value = value_per_record x records^m with m > 1. Here
//! value_per_record is the summed sensitivity weight of the categories an
//! actor read, and records its distinct customers.

use crate::ledger::Ledger;
use crate::store::customer_key;
use crate::Result;
use serde::Serialize;
use std::collections::{BTreeSet, HashMap, HashSet};
use vakt_event::event::category_weight;
use vakt_event::Timestamp;

#[derive(Debug, Clone, Serialize)]
pub struct Exposure {
    pub name: String,
    /// `account` or `organization`.
    pub kind: &'static str,
    pub customers: u64,
    pub unlisted_records: u64,
    pub categories: BTreeSet<String>,
    pub value_per_record: u32,
    pub value: f64,
    pub first: Timestamp,
    pub last: Timestamp,
    /// Customers against the median account's.
    pub vs_median: f64,
    pub advice: String,
}

#[derive(Default)]
struct Acc {
    /// Keys of the customers read ([`customer_key`]).
    customers: HashSet<u64>,
    unlisted: u64,
    cats: HashSet<i64>,
    first: i64,
    last: i64,
}

impl Ledger {
    /// Accounts and organisations ranked by value, highest first.
    pub fn exposure(&self, m: f64) -> Result<Vec<Exposure>> {
        let names: HashMap<i64, String> = {
            let r = self
                .conn
                .prepare("SELECT id, name FROM names")
                .and_then(|mut s| s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect());
            self.db(r)?
        };
        let mut accounts: HashMap<i64, Acc> = HashMap::new();
        let mut orgs: HashMap<i64, Acc> = HashMap::new();
        self.entries()?.scan(1, &mut |e| {
            let (account, org, cats, records, t) = (
                e.account as i64,
                e.org as i64,
                e.categories as i64,
                e.records,
                e.t,
            );
            let ids: Vec<u64> = e.customers.iter().map(|c| customer_key(c)).collect();
            for acc in [
                accounts.entry(account).or_insert_with(|| Acc {
                    first: t,
                    last: t,
                    ..Acc::default()
                }),
                orgs.entry(org).or_insert_with(|| Acc {
                    first: t,
                    last: t,
                    ..Acc::default()
                }),
            ] {
                if ids.is_empty() {
                    acc.unlisted += records.max(0) as u64;
                }
                acc.customers.extend(ids.iter().copied());
                acc.cats.insert(cats);
                acc.first = acc.first.min(t);
                acc.last = acc.last.max(t);
            }
            Ok(true)
        })?;
        let mut counts: Vec<u64> = accounts
            .values()
            .map(|a| a.customers.len() as u64)
            .collect();
        counts.sort_unstable();
        let median = counts.get(counts.len() / 2).copied().unwrap_or(0).max(1) as f64;
        let mut out = Vec::new();
        for (kind, map) in [("account", accounts), ("organization", orgs)] {
            for (id, a) in map {
                let name = names.get(&id).cloned().unwrap_or_default();
                if name.is_empty() {
                    continue;
                }
                let categories: BTreeSet<String> = a
                    .cats
                    .iter()
                    .flat_map(|c| {
                        names
                            .get(c)
                            .map(|s| {
                                s.split(',')
                                    .filter(|x| !x.is_empty())
                                    .map(str::to_owned)
                                    .collect::<Vec<_>>()
                            })
                            .unwrap_or_default()
                    })
                    .collect();
                let vpr: u32 = categories
                    .iter()
                    .map(|c| category_weight(c))
                    .sum::<u32>()
                    .max(1);
                let records = a.customers.len() as u64 + a.unlisted;
                let value = vpr as f64 * (records as f64).powf(m);
                let vs_median = a.customers.len() as f64 / median;
                let days = ((a.last - a.first) as f64 / 86_400_000.0).max(1.0);
                let sensitive: Vec<&str> = categories
                    .iter()
                    .map(String::as_str)
                    .filter(|c| category_weight(c) >= 8)
                    .collect();
                let mut advice = Vec::new();
                if kind == "account" && vs_median >= 10.0 {
                    advice.push(format!(
                        "{name} read {} customers in {:.0} days, {:.0}x the median account: restrict it to the customers its work needs",
                        a.customers.len(),
                        days,
                        vs_median
                    ));
                }
                if !sensitive.is_empty() && records >= 1000 {
                    advice.push(format!("it reads {} for {records} customers: remove what its purpose does not need (data minimisation)", sensitive.join(", ")));
                }
                if a.unlisted >= 10_000 {
                    advice.push(format!(
                        "it exported {} records: limit exports to batch jobs with declared windows",
                        a.unlisted
                    ));
                }
                let advice = if advice.is_empty() {
                    "within what its peers do".to_owned()
                } else {
                    advice.join("; ")
                };
                out.push(Exposure {
                    name,
                    kind,
                    customers: a.customers.len() as u64,
                    unlisted_records: a.unlisted,
                    categories,
                    value_per_record: vpr,
                    value,
                    first: Timestamp(a.first),
                    last: Timestamp(a.last),
                    vs_median,
                    advice,
                });
            }
        }
        out.sort_by(|a, b| b.value.total_cmp(&a.value).then(a.name.cmp(&b.name)));
        Ok(out)
    }
}
