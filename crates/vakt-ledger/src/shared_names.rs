//! Names on a shared PostgreSQL store: every chain's name dictionary in
//! `vakt.names`, so `vakt scope` on any node answers for every node's
//! entries.
//!
//! An entry holds the ids its chain gave its account, organisation,
//! action, categories and source, interned in that node's data directory.
//! The batch that interns a name copies it to `vakt.names` in the store's
//! transaction ([`crate::store::postgres::Rider`]), so no node reads an
//! entry whose names it cannot resolve. A name is found by its kind and a
//! 64-bit BLAKE3 key ([`crate::store::customer_key`]), then compared
//! whole: a B-tree on the text itself refuses values past about 2.7 kB,
//! and an account name is hostile input, so one long name would stop
//! every batch.
//!
//! Scoping on a shared ledger reads every chain: an account's accesses in
//! each chain that interned the account, a customer's postings in each
//! chain ([`Shared::customer_entries`]). Chains are numbered by the store;
//! an answer's `source` and `line` say where each access came from.

use crate::ledger::Kind;
use crate::shared::Shared;
use crate::store::postgres::{
    account_row, entries_by_seq, entry, from_text, pg, read_design, to_text, Postings, COLUMNS,
};
use crate::store::{customer_key, AccountRow, StoredEntry};
use crate::{LedgerError, Result};
use rusqlite::{Connection, OptionalExtension};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// One interned name as the data directory holds it, to be copied.
#[derive(Debug, Clone)]
pub(crate) struct StoredName {
    id: i64,
    kind: i16,
    name: String,
}

fn local(r: &rusqlite::Row) -> rusqlite::Result<StoredName> {
    Ok(StoredName {
        id: r.get(0)?,
        kind: r.get(1)?,
        name: r.get(2)?,
    })
}

/// The data directory's names with these rowids (a batch's).
pub(crate) fn changed(conn: &Connection, rowids: &[i64]) -> rusqlite::Result<Vec<StoredName>> {
    let mut stmt = conn.prepare_cached("SELECT id, kind, name FROM names WHERE rowid = ?1")?;
    let mut out = Vec::with_capacity(rowids.len());
    for rowid in rowids {
        if let Some(n) = stmt.query_row([rowid], local).optional()? {
            out.push(n);
        }
    }
    Ok(out)
}

/// Every name of the data directory (copied once, when it interned names
/// before they were shared).
pub(crate) fn all(conn: &Connection) -> rusqlite::Result<Vec<StoredName>> {
    let mut stmt = conn.prepare("SELECT id, kind, name FROM names ORDER BY id")?;
    let rows = stmt.query_map([], local)?;
    rows.collect()
}

/// Writes `names` of `chain` to `vakt.names` in `tx`, in one statement.
/// A name once interned never changes, so one already there is kept.
pub(crate) fn write(
    tx: &mut postgres::Transaction<'_>,
    chain: i32,
    names: &[StoredName],
) -> Result<()> {
    if names.is_empty() {
        return Ok(());
    }
    let ids: Vec<i64> = names.iter().map(|n| n.id).collect();
    let kinds: Vec<i16> = names.iter().map(|n| n.kind).collect();
    let keys: Vec<i64> = names.iter().map(|n| customer_key(&n.name) as i64).collect();
    let texts: Vec<_> = names.iter().map(|n| to_text(&n.name)).collect();
    tx.execute(
        "INSERT INTO vakt.names(chain, id, kind, key, name)
         SELECT $1, * FROM unnest($2::bigint[], $3::smallint[], $4::bigint[], $5::text[])
         ON CONFLICT (chain, id) DO NOTHING",
        &[&chain, &ids, &kinds, &keys, &texts],
    )
    .map_err(pg("sharing the batch's names"))?;
    Ok(())
}

/// A name's id in one chain of the store.
pub(crate) type ChainId = (i32, u64);

impl Shared {
    /// The chains that interned `name` as a `kind`, with its id in each.
    pub(crate) fn name_ids(&self, kind: Kind, name: &str) -> Result<Vec<ChainId>> {
        let key = customer_key(name) as i64;
        let rows = self
            .client()?
            .with(|c| {
                c.query(
                    "SELECT chain, id, name FROM vakt.names WHERE kind = $1 AND key = $2 ORDER BY chain",
                    &[&(kind as i16), &key],
                )
            })
            .map_err(pg("looking up a name"))?;
        Ok(rows
            .into_iter()
            .filter(|r| from_text(r.get(2)) == name)
            .map(|r| (r.get::<_, i32>(0), r.get::<_, i64>(1) as u64))
            .collect())
    }

    /// The names of `ids`; one missing is an error naming its chain (its
    /// node has not opened its data directory to write since names were
    /// shared).
    pub(crate) fn names(&self, ids: &BTreeSet<ChainId>) -> Result<HashMap<ChainId, String>> {
        let mut per_chain: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
        for &(chain, id) in ids {
            per_chain.entry(chain).or_default().push(id as i64);
        }
        let mut out = HashMap::with_capacity(ids.len());
        let mut client = self.client()?;
        for (chain, want) in per_chain {
            let rows = client
                .with(|c| {
                    c.query(
                        "SELECT id, name FROM vakt.names WHERE chain = $1 AND id = ANY($2)",
                        &[&chain, &want],
                    )
                })
                .map_err(pg("reading names"))?;
            for r in rows {
                out.insert((chain, r.get::<_, i64>(0) as u64), from_text(r.get(1)));
            }
            if let Some(missing) = want
                .iter()
                .find(|&&id| !out.contains_key(&(chain, id as u64)))
            {
                return Err(LedgerError::Invalid(format!(
                    "chain {chain} of the PostgreSQL store names id {missing}, which is not in vakt.names: start that chain's node (`vakt serve` or `vakt watch` on its data directory) once, which shares its names"
                )));
            }
        }
        Ok(out)
    }

    /// The accesses of the account `ids` names in each chain with `since
    /// <= t <= until`, chain by chain, in order.
    pub(crate) fn account_rows(
        &self,
        ids: &[ChainId],
        since: i64,
        until: i64,
        visit: &mut dyn FnMut(i32, &AccountRow) -> Result<()>,
    ) -> Result<()> {
        for &(chain, id) in ids {
            let rows = self
                .client()?
                .with(|c| {
                    c.query(
                        "SELECT seq, t, ip, cats, records, customers FROM vakt.entries
                         WHERE chain = $1 AND account = $2 AND t >= $3 AND t <= $4 ORDER BY seq",
                        &[&chain, &(id as i64), &since, &until],
                    )
                })
                .map_err(pg("finding an account's accesses"))?;
            for r in &rows {
                visit(chain, &account_row(r))?;
            }
        }
        Ok(())
    }

    /// Every chain's entries that name `customer`, chain by chain, in order.
    pub(crate) fn customer_entries(
        &self,
        customer: &str,
        visit: &mut dyn FnMut(i32, &StoredEntry) -> Result<()>,
    ) -> Result<()> {
        let key = customer_key(customer) as i64;
        let design = self.client()?.with(read_design)?;
        if design == Some(Postings::Gin) {
            let rows = self
                .client()?
                .with(|c| {
                    c.query(
                        &format!("SELECT chain, {COLUMNS} FROM vakt.entries WHERE keys @> ARRAY[$1::bigint] ORDER BY chain, seq"),
                        &[&key],
                    )
                })
                .map_err(pg("finding a customer's entries"))?;
            for r in &rows {
                let e = entry(r);
                if e.customers.iter().any(|c| c == customer) {
                    visit(r.get("chain"), &e)?;
                }
            }
            return Ok(());
        }
        // The postings index leads with the chain: one descent per chain.
        let rows = self
            .client()?
            .with(|c| {
                c.query(
                    "SELECT chain, seq FROM vakt.customer_postings
                     WHERE chain = ANY(ARRAY(SELECT chain FROM vakt.chains)) AND key = $1 ORDER BY chain, seq",
                    &[&key],
                )
            })
            .map_err(pg("finding a customer's entries"))?;
        let mut per_chain: BTreeMap<i32, Vec<u64>> = BTreeMap::new();
        for r in &rows {
            per_chain
                .entry(r.get(0))
                .or_default()
                .push(r.get::<_, i64>(1) as u64);
        }
        for (chain, seqs) in per_chain {
            self.entries_at(chain, &seqs, &mut |e| {
                if e.customers.iter().any(|c| c == customer) {
                    visit(chain, e)?;
                }
                Ok(())
            })?;
        }
        Ok(())
    }

    /// The entries of `chain` numbered `seqs` (ascending), in order.
    pub(crate) fn entries_at(
        &self,
        chain: i32,
        seqs: &[u64],
        visit: &mut dyn FnMut(&StoredEntry) -> Result<()>,
    ) -> Result<()> {
        let mut query = |sql: &str, params: &[&(dyn postgres::types::ToSql + Sync)]| {
            self.client()?
                .with(|c| c.query(sql, params))
                .map_err(pg("reading entries"))
        };
        entries_by_seq(&mut query, chain, seqs, visit)
    }
}
