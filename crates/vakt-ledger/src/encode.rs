//! The canonical bytes of an entry, hashed into the chain. Everything a
//! scope answer rests on is in them, so changing any stored field breaks
//! the chain.

pub(crate) struct EntryFields<'a> {
    pub t: i64,
    pub account: &'a str,
    pub org: &'a str,
    pub ip: &'a str,
    pub action: &'a str,
    pub records: i64,
    pub customers: &'a [String],
    pub categories: &'a str,
    pub case_id: &'a str,
    pub source: &'a str,
    pub line: i64,
}

fn put(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

impl EntryFields<'_> {
    pub fn bytes(&self, out: &mut Vec<u8>) {
        out.clear();
        out.extend_from_slice(&self.t.to_le_bytes());
        for s in [self.account, self.org, self.ip, self.action] {
            put(out, s);
        }
        out.extend_from_slice(&self.records.to_le_bytes());
        out.extend_from_slice(&(self.customers.len() as u32).to_le_bytes());
        for c in self.customers {
            put(out, c);
        }
        for s in [self.categories, self.case_id, self.source] {
            put(out, s);
        }
        out.extend_from_slice(&self.line.to_le_bytes());
    }
}

/// The next link: BLAKE3 of the previous hash and the entry's bytes.
pub(crate) fn link(prev: &[u8; 32], bytes: &[u8]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(prev);
    h.update(bytes);
    *h.finalize().as_bytes()
}

/// The canonical bytes of an action (a row of a chained table put or
/// deleted), hashed into the actions chain.
pub(crate) struct ActionFields<'a> {
    pub table: &'a str,
    pub op: &'a str,
    pub subject: &'a str,
    pub payload: &'a str,
    pub at: i64,
}

impl ActionFields<'_> {
    pub fn bytes(&self, out: &mut Vec<u8>) {
        out.clear();
        for s in [self.table, self.op, self.subject, self.payload] {
            put(out, s);
        }
        out.extend_from_slice(&self.at.to_le_bytes());
    }
}

/// What a checkpoint signs. v1, written before alerts, decisions and human
/// actions were chained: the entries' head only. v2: the entries' head and
/// the actions chain's head (`actions` = its last seq, 0 when empty).
pub(crate) fn checkpoint_message(
    seq: i64,
    hash: &[u8; 32],
    actions: Option<(i64, &[u8; 32])>,
) -> Vec<u8> {
    let mut m = match actions {
        None => b"vakt-ledger-checkpoint-v1".to_vec(),
        Some(_) => b"vakt-ledger-checkpoint-v2".to_vec(),
    };
    m.extend_from_slice(&seq.to_le_bytes());
    m.extend_from_slice(hash);
    if let Some((n, head)) = actions {
        m.extend_from_slice(&n.to_le_bytes());
        m.extend_from_slice(head);
    }
    m
}
