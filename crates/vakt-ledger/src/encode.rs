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
    /// The entry's link in the chain after `prev`.
    pub fn link(&self, prev: &[u8; 32], scratch: &mut Vec<u8>) -> [u8; 32] {
        link(prev, scratch, |out| self.bytes(out))
    }

    fn bytes(&self, out: &mut Vec<u8>) {
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

/// The next link: BLAKE3 of the previous hash and the entry's (or the
/// action's) bytes, which `bytes` writes after it into `scratch`. One call
/// over one buffer hashes the same as feeding the two parts to a hasher,
/// for less.
fn link(prev: &[u8; 32], scratch: &mut Vec<u8>, bytes: impl FnOnce(&mut Vec<u8>)) -> [u8; 32] {
    scratch.clear();
    scratch.extend_from_slice(prev);
    bytes(scratch);
    *blake3::hash(scratch).as_bytes()
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
    /// The action's link in the actions chain after `prev`.
    pub fn link(&self, prev: &[u8; 32], scratch: &mut Vec<u8>) -> [u8; 32] {
        link(prev, scratch, |out| self.bytes(out))
    }

    fn bytes(&self, out: &mut Vec<u8>) {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// How the chains on disk were written: the two parts streamed.
    fn streamed(prev: &[u8; 32], bytes: impl FnOnce(&mut Vec<u8>)) -> [u8; 32] {
        let mut written = Vec::new();
        bytes(&mut written);
        let mut h = blake3::Hasher::new();
        h.update(prev);
        h.update(&written);
        *h.finalize().as_bytes()
    }

    #[test]
    fn a_link_is_blake3_of_the_previous_hash_then_the_bytes() {
        let prev = *blake3::hash(b"the entry before").as_bytes();
        let customers = ["C-1".to_owned(), "C-2".to_owned()];
        let entry = EntryFields {
            t: 1_700_000_000_000,
            account: "p3.anna",
            org: "partner-3",
            ip: "198.51.100.7",
            action: "lookup",
            records: 2,
            customers: &customers,
            categories: "name,phone",
            case_id: "",
            source: "http-proxy",
            line: 42,
        };
        let mut scratch = b"left over".to_vec();
        assert_eq!(
            entry.link(&prev, &mut scratch),
            streamed(&prev, |out| entry.bytes(out))
        );
        let action = ActionFields {
            table: "decisions",
            op: "put",
            subject: "d-1",
            payload: "{}",
            at: 5,
        };
        assert_eq!(
            action.link(&prev, &mut scratch),
            streamed(&prev, |out| action.bytes(out))
        );
    }
}
