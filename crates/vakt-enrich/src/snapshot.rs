//! Snapshots of what enrichment and detection learned from events, so a
//! stream's state can move to another process (a Kafka partition handed
//! to another node) without reading the stream again.
//!
//! The encoding is CBOR (`ciborium`): self-describing, so alert evidence
//! (free-form JSON) and maps keyed by tuples round-trip, and binary, so
//! timestamps keep their milliseconds (see `vakt_event::Timestamp`'s
//! serde). A snapshot is a cache of state that events can rebuild: one
//! that does not decode is refused with a message, and the caller reads
//! the stream from its start instead. A whole snapshot is sealed with a
//! digest ([`seal`]): detector state holds ring positions and the like,
//! so a damaged one that still decoded could make a detector index out
//! of its bounds later.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::hash::{BuildHasher, Hash};

/// A snapshot that could not be written or read back.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("cannot encode detector state: {0}")]
    Encode(String),
    #[error("cannot decode detector state ({0}); it was written by another version or is damaged")]
    Decode(String),
    #[error("the snapshot does not fit this engine: {0}")]
    Mismatch(String),
}

/// Encodes `state`.
pub fn save<T: Serialize + ?Sized>(state: &T) -> Result<Vec<u8>, SnapshotError> {
    let mut out = Vec::new();
    ciborium::into_writer(state, &mut out).map_err(|e| SnapshotError::Encode(e.to_string()))?;
    Ok(out)
}

/// Decodes what [`save`] encoded.
pub fn load<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, SnapshotError> {
    ciborium::from_reader(bytes).map_err(|e| SnapshotError::Decode(e.to_string()))
}

/// Bytes of the BLAKE3 digest [`seal`] appends.
const DIGEST: usize = 16;

/// `state` with its digest appended, for [`unseal`] to check.
pub fn seal(mut state: Vec<u8>) -> Vec<u8> {
    let digest = blake3::hash(&state);
    state.extend_from_slice(&digest.as_bytes()[..DIGEST]);
    state
}

/// What [`seal`] sealed, if its digest holds.
pub fn unseal(sealed: &[u8]) -> Result<&[u8], SnapshotError> {
    let damaged =
        || SnapshotError::Decode("its digest does not match: it is damaged or cut short".into());
    let at = sealed.len().checked_sub(DIGEST).ok_or_else(damaged)?;
    let (state, digest) = sealed.split_at(at);
    if &blake3::hash(state).as_bytes()[..DIGEST] != digest {
        return Err(damaged());
    }
    Ok(state)
}

/// An LRU cache as it is saved: its entries from the least to the most
/// recently used, so the order of eviction survives.
pub struct LruRef<'a, K, V, S>(pub &'a lru::LruCache<K, V, S>);

impl<K: Hash + Eq + Serialize, V: Serialize, S: BuildHasher> Serialize for LruRef<'_, K, V, S> {
    fn serialize<Ser: serde::Serializer>(&self, s: Ser) -> Result<Ser::Ok, Ser::Error> {
        let entries: Vec<(&K, &V)> = self.0.iter().rev().collect();
        entries.serialize(s)
    }
}

/// An LRU cache read back from [`LruRef`]'s form.
#[derive(Deserialize)]
pub struct LruState<K, V>(Vec<(K, V)>);

impl<K: Hash + Eq, V> LruState<K, V> {
    /// The entries put back into `cache` (emptied first) in their order of
    /// use. Its capacity stays the one the code gives it, not one read
    /// from the snapshot: beyond it, the least recently used go.
    pub fn restore_into<S: BuildHasher>(self, cache: &mut lru::LruCache<K, V, S>) {
        cache.clear();
        for (k, v) in self.0 {
            cache.put(k, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_lru_keeps_its_order_of_eviction() {
        let mut l: lru::LruCache<u32, String, rustc_hash::FxBuildHasher> =
            lru::LruCache::with_hasher(3.try_into().unwrap(), Default::default());
        l.put(1, "a".into());
        l.put(2, "b".into());
        l.put(3, "c".into());
        l.get(&1);
        let bytes = save(&LruRef(&l)).unwrap();
        let mut back: lru::LruCache<u32, String, rustc_hash::FxBuildHasher> =
            lru::LruCache::with_hasher(3.try_into().unwrap(), Default::default());
        load::<LruState<u32, String>>(&bytes)
            .unwrap()
            .restore_into(&mut back);
        back.put(4, "d".into());
        // 2 was the least recently used before the snapshot.
        assert!(back.get(&2).is_none());
        assert_eq!(back.get(&1).map(String::as_str), Some("a"));
        assert_eq!(back.len(), 3);
        // A smaller cache keeps the most recently used.
        let mut small: lru::LruCache<u32, String, rustc_hash::FxBuildHasher> =
            lru::LruCache::with_hasher(1.try_into().unwrap(), Default::default());
        load::<LruState<u32, String>>(&bytes)
            .unwrap()
            .restore_into(&mut small);
        assert_eq!(small.get(&1).map(String::as_str), Some("a"));
        assert_eq!(small.len(), 1);
    }

    #[test]
    fn a_sealed_state_opens_only_whole_and_unchanged() {
        let sealed = seal(b"state".to_vec());
        assert_eq!(unseal(&sealed).unwrap(), b"state");
        for cut in 0..sealed.len() {
            assert!(unseal(&sealed[..cut]).is_err());
        }
        for i in 0..sealed.len() {
            let mut flipped = sealed.clone();
            flipped[i] ^= 1;
            assert!(unseal(&flipped).is_err(), "byte {i}");
        }
    }

    #[test]
    fn damaged_bytes_are_an_error_not_a_panic() {
        let bytes = save(&(1u32, vec![2u64, 3])).unwrap();
        for cut in 0..bytes.len() {
            assert!(load::<(u32, Vec<u64>)>(&bytes[..cut]).is_err());
        }
        assert!(load::<(String, u8)>(&bytes).is_err());
    }
}
