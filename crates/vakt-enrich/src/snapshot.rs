//! Snapshots of what enrichment and detection learned from events, so a
//! stream's state can move to another process (a Kafka partition handed
//! to another node) without reading the stream again.
//!
//! The encoding is CBOR (`ciborium`): self-describing, so alert evidence
//! (free-form JSON) and maps keyed by tuples round-trip, and binary, so
//! timestamps keep their milliseconds (see `vakt_event::Timestamp`'s
//! serde). A snapshot is a cache of state that events can rebuild: one
//! that does not decode is refused with a message, and the caller reads
//! the stream from its start instead.

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

/// An LRU cache as it is saved: its capacity and its entries from the
/// least to the most recently used, so the order of eviction survives.
pub struct LruRef<'a, K, V, S>(pub &'a lru::LruCache<K, V, S>);

impl<K: Hash + Eq + Serialize, V: Serialize, S: BuildHasher> Serialize for LruRef<'_, K, V, S> {
    fn serialize<Ser: serde::Serializer>(&self, s: Ser) -> Result<Ser::Ok, Ser::Error> {
        let entries: Vec<(&K, &V)> = self.0.iter().rev().collect();
        (self.0.cap().get(), entries).serialize(s)
    }
}

/// An LRU cache read back from [`LruRef`]'s form.
#[derive(Deserialize)]
pub struct LruState<K, V>(usize, Vec<(K, V)>);

impl<K: Hash + Eq, V> LruState<K, V> {
    /// The cache, with its entries in their order of use.
    pub fn into_lru<S: BuildHasher + Default>(self) -> lru::LruCache<K, V, S> {
        let cap = std::num::NonZeroUsize::new(self.0.max(1)).expect("at least one");
        let mut lru = lru::LruCache::with_hasher(cap, S::default());
        for (k, v) in self.1 {
            lru.put(k, v);
        }
        lru
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
            load::<LruState<u32, String>>(&bytes).unwrap().into_lru();
        back.put(4, "d".into());
        // 2 was the least recently used before the snapshot.
        assert!(back.get(&2).is_none());
        assert_eq!(back.get(&1).map(String::as_str), Some("a"));
        assert_eq!(back.len(), 3);
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
