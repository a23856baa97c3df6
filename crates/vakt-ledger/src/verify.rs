//! Walking the chain and the checkpoints.

use crate::encode::{checkpoint_message, link, EntryFields};
use crate::keys::DataDir;
use crate::ledger::{decode_ids, Ledger, LINK_BYTES};
use crate::Result;
use ed25519_dalek::{Signature, Verifier};
use std::collections::HashMap;

/// The first thing found wrong, with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// Entries `from..=to` are missing.
    Removed { from: i64, to: i64 },
    /// The entry at `seq` no longer matches the chain: changed, inserted
    /// before or moved.
    Changed { seq: i64 },
    /// The chain up to `seq` does not match what its checkpoint signed.
    CheckpointMismatch { seq: i64 },
    /// The checkpoint at `seq` has an invalid signature.
    BadSignature { seq: i64 },
    /// Entries from `seq` on are not covered by any checkpoint: appended
    /// outside vakt.
    Unsealed { seq: i64 },
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::Removed { from, to } => write!(f, "entries {from} to {to} were removed"),
            Problem::Changed { seq } => write!(
                f,
                "entry {seq} was changed, inserted or moved: it no longer matches the chain"
            ),
            Problem::CheckpointMismatch { seq } => write!(
                f,
                "the entries up to {seq} do not match what their signed checkpoint vouches for"
            ),
            Problem::BadSignature { seq } => {
                write!(f, "the checkpoint at entry {seq} has an invalid signature")
            }
            Problem::Unsealed { seq } => write!(
                f,
                "entries from {seq} on are not sealed by any checkpoint: added outside vakt"
            ),
        }
    }
}

#[derive(Debug, Clone)]
pub struct VerifyReport {
    pub entries: i64,
    pub checkpoints: i64,
    pub last_checkpoint: Option<(i64, String)>,
    pub problem: Option<Problem>,
}

pub fn verify(dir: &DataDir) -> Result<VerifyReport> {
    verify_with_progress(dir, &mut |_, _| {})
}

/// [`verify`], calling `progress(entries checked, entries in all)` now and then.
pub fn verify_with_progress(
    dir: &DataDir,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<VerifyReport> {
    let l = Ledger::open_read(dir)?;
    let total = l.len().max(0) as u64;
    let key = dir.verifying_key()?;
    let names: HashMap<i64, String> = {
        let r = l
            .conn
            .prepare("SELECT id, name FROM names")
            .and_then(|mut s| s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect());
        l.db(r)?
    };
    let customers: HashMap<i64, String> = {
        let r = l
            .conn
            .prepare("SELECT id, name FROM customers")
            .and_then(|mut s| s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect());
        l.db(r)?
    };
    let checkpoints: HashMap<i64, (Vec<u8>, Vec<u8>)> = {
        let r = l
            .conn
            .prepare("SELECT seq, hash, signature FROM checkpoints")
            .and_then(|mut s| {
                s.query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?))))?
                    .collect()
            });
        l.db(r)?
    };
    let last_cp = checkpoints.keys().max().copied().unwrap_or(0);
    let name = |id: i64| names.get(&id).map(String::as_str).unwrap_or("\u{0}missing");
    let mut stmt = l.db(l.conn.prepare("SELECT seq, t, account, org, ip, action, records, cats, case_id, source, line, custs, link FROM entries ORDER BY seq"))?;
    let mut rows = l.db(stmt.query([]))?;
    let (mut prev, mut expected, mut entries, mut buf) = ([0u8; 32], 1i64, 0i64, Vec::new());
    let mut problem = None;
    while let Some(row) = l.db(rows.next())? {
        let get = |i| row.get::<_, i64>(i);
        let seq = l.db(get(0))?;
        entries += 1;
        if entries % (1 << 16) == 0 {
            progress(entries as u64, total);
        }
        if seq != expected {
            problem = Some(if seq > expected {
                Problem::Removed {
                    from: expected,
                    to: seq - 1,
                }
            } else {
                Problem::Changed { seq }
            });
            break;
        }
        expected = seq + 1;
        let ip: String = l.db(row.get(4))?;
        let case_id: String = l.db(row.get(8))?;
        let custs: Vec<u8> = l.db(row.get(11))?;
        let stored: Vec<u8> = l.db(row.get(12))?;
        let mut names_of: Vec<String> = decode_ids(&custs)
            .into_iter()
            .map(|c| customers.get(&c).cloned().unwrap_or_default())
            .collect();
        names_of.sort_unstable();
        let fields = EntryFields {
            t: l.db(get(1))?,
            account: name(l.db(get(2))?),
            org: name(l.db(get(3))?),
            ip: &ip,
            action: name(l.db(get(5))?),
            records: l.db(get(6))?,
            customers: &names_of,
            categories: name(l.db(get(7))?),
            case_id: &case_id,
            source: name(l.db(get(9))?),
            line: l.db(get(10))?,
        };
        fields.bytes(&mut buf);
        let hash = link(&prev, &buf);
        if stored != hash[..LINK_BYTES] {
            problem = Some(Problem::Changed { seq });
            break;
        }
        if let Some((h, sig)) = checkpoints.get(&seq) {
            if h[..] != hash[..] {
                problem = Some(Problem::CheckpointMismatch { seq });
                break;
            }
            let ok = <[u8; 64]>::try_from(&sig[..])
                .map(|s| {
                    key.verify(&checkpoint_message(seq, &hash), &Signature::from_bytes(&s))
                        .is_ok()
                })
                .unwrap_or(false);
            if !ok {
                problem = Some(Problem::BadSignature { seq });
                break;
            }
        }
        if seq > last_cp && problem.is_none() {
            problem = Some(Problem::Unsealed { seq });
            break;
        }
        prev = hash;
    }
    if problem.is_none() && last_cp >= expected {
        // A checkpoint vouches for entries that are gone: the tail was cut.
        problem = Some(Problem::Removed {
            from: expected,
            to: last_cp,
        });
    }
    drop(rows);
    drop(stmt);
    Ok(VerifyReport {
        entries,
        checkpoints: checkpoints.len() as i64,
        last_checkpoint: checkpoints
            .get(&last_cp)
            .map(|(h, _)| (last_cp, crate::keys::hex(h))),
        problem,
    })
}
