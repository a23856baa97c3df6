//! Anchors: signed checkpoints kept outside the data directory (a file on
//! another machine, syslog, a published note), so that a ledger cut back
//! to an earlier checkpoint, or rewritten by someone holding its key, is
//! found by `vakt ledger verify --anchor FILE --public-key FILE`.

use crate::encode::checkpoint_message;
use crate::keys::{fingerprint, hex, unhex, DataDir};
use crate::ledger::Ledger;
use crate::{LedgerError, Result};
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use rusqlite::OptionalExtension;
use serde::{Deserialize, Serialize};

/// One signed checkpoint as a JSON line: entries up to `seq` hash to
/// `hash`; with `actions`, the actions chain up to that seq ends in
/// `actions_head` (a v2 checkpoint).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anchor {
    pub seq: i64,
    pub hash: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actions: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actions_head: Option<String>,
    pub signature: String,
    /// Fingerprint of the public key that signed it.
    pub key: String,
}

fn hash32(s: &str) -> Option<[u8; 32]> {
    unhex(s)?.try_into().ok()
}

impl Anchor {
    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The anchors in `text`, one JSON line each (blank lines skipped);
    /// `origin` names the text in errors.
    pub fn parse_lines(text: &str, origin: &str) -> Result<Vec<Anchor>> {
        text.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| {
                serde_json::from_str::<Anchor>(l).map_err(|e| {
                    LedgerError::Invalid(format!(
                        "{origin}:{}: not a line written by `vakt ledger anchor`: {e}",
                        i + 1
                    ))
                })
            })
            .collect()
    }

    pub(crate) fn hash_bytes(&self) -> Option<[u8; 32]> {
        hash32(&self.hash)
    }

    pub(crate) fn actions_head_bytes(&self) -> Option<Option<(i64, [u8; 32])>> {
        match (self.actions, &self.actions_head) {
            (None, None) => Some(None),
            (Some(n), Some(h)) => Some(Some((n, hash32(h)?))),
            _ => None,
        }
    }

    /// Whether `key` signed this checkpoint as written.
    pub fn signed_by(&self, key: &VerifyingKey) -> bool {
        let (Some(hash), Some(actions)) = (self.hash_bytes(), self.actions_head_bytes()) else {
            return false;
        };
        let message = checkpoint_message(self.seq, &hash, actions.as_ref().map(|(n, h)| (*n, h)));
        unhex(&self.signature)
            .and_then(|s| <[u8; 64]>::try_from(s).ok())
            .is_some_and(|s| key.verify(&message, &Signature::from_bytes(&s)).is_ok())
    }
}

/// The newest signed checkpoint of the ledger in `dir`, checked against
/// the directory's public key before it is handed out.
pub fn latest(dir: &DataDir) -> Result<Anchor> {
    type Cp = (i64, Vec<u8>, Vec<u8>, Option<i64>, Option<Vec<u8>>);
    let l = Ledger::open_read(dir)?;
    let r = l
        .conn
        .query_row(
            "SELECT seq, hash, signature, actions, actions_head FROM checkpoints ORDER BY seq DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .optional();
    let Some((seq, hash, signature, actions, head)): Option<Cp> = l.db(r)? else {
        return Err(LedgerError::Invalid(format!(
            "no signed checkpoint in {} yet; run `vakt watch --data {}` on some input first",
            dir.path.display(),
            dir.path.display()
        )));
    };
    let key = dir.verifying_key()?;
    let anchor = Anchor {
        seq,
        hash: hex(&hash),
        actions,
        actions_head: head.as_deref().map(hex),
        signature: hex(&signature),
        key: fingerprint(&key),
    };
    if !anchor.signed_by(&key) {
        return Err(LedgerError::Invalid(format!(
            "the newest checkpoint (entry {seq}) is not signed by {}/ledger.pub; run `vakt ledger verify` before anchoring",
            dir.path.display()
        )));
    }
    Ok(anchor)
}
