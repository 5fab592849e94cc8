//! The keys that sign a log's checkpoints at a given moment, shared between whoever rotates the keys and
//! whoever signs, so that a rotation reaches the signer without a restart.
//!
//! A set holds one active key and any number of retiring keys, each signing until the end of its overlap
//! period. While a retiring key is in its overlap, notes carry its signature after the active key's, so a
//! reader that only knows the old key keeps verifying new checkpoints while it learns the new one. A
//! retiring key whose overlap has ended signs nothing and is dropped from the set the next time the set
//! signs. Times are milliseconds since the Unix epoch, passed in by the caller.

use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use super::{SignNoteError, Signer, key_id_hex, sign_note};

/// A signer that can be shared between threads: a key in memory or a handle on a key service.
pub type SharedSigner = Arc<dyn Signer + Send + Sync>;

/// The active key and the retiring keys still in their overlap period. See the module documentation.
pub struct SignerSet {
    keys: RwLock<Keys>,
}

struct Keys {
    active: SharedSigner,
    /// Retiring keys with the end of their overlap, exclusive.
    retiring: Vec<(SharedSigner, i64)>,
}

impl Keys {
    /// The keys that sign at `now_ms`, the active key first; a key listed twice signs once.
    fn live(&self, now_ms: i64) -> Vec<&SharedSigner> {
        let mut signers = vec![&self.active];
        for (signer, until) in &self.retiring {
            let repeated = signers.iter().any(|s| s.name() == signer.name() && s.key_id() == signer.key_id());
            if now_ms < *until && !repeated {
                signers.push(signer);
            }
        }
        signers
    }
}

impl SignerSet {
    /// A set with one key and nothing retiring.
    pub fn new(active: SharedSigner) -> SignerSet {
        SignerSet { keys: RwLock::new(Keys { active, retiring: Vec::new() }) }
    }

    /// Replaces the whole set at once: `active`, and `retiring` keys each with the end of its overlap.
    /// Notes signed after this returns carry exactly these keys' signatures (those still in overlap).
    pub fn replace(&self, active: SharedSigner, retiring: Vec<(SharedSigner, i64)>) {
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = Keys { active, retiring };
    }

    /// The active key.
    pub fn active(&self) -> SharedSigner {
        self.keys.read().unwrap_or_else(|p| p.into_inner()).active.clone()
    }

    /// The keys that sign at `now_ms`: the active key first, then the retiring keys still in overlap.
    pub fn signers_at(&self, now_ms: i64) -> Vec<SharedSigner> {
        self.keys.read().unwrap_or_else(|p| p.into_inner()).live(now_ms).into_iter().cloned().collect()
    }

    /// Signs a note body with every key that signs at `now`, the active key first, as
    /// [`sign_note`](super::sign_note) does, and forgets retiring keys whose overlap has ended.
    pub fn sign_note(&self, body: &str, now: SystemTime) -> Result<String, SignNoteError> {
        let now_ms = now.duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        let (note, expired) = {
            let keys = self.keys.read().unwrap_or_else(|p| p.into_inner());
            let signers: Vec<&dyn Signer> = keys.live(now_ms).into_iter().map(|s| s.as_ref() as &dyn Signer).collect();
            let note = sign_note(body, &signers)?;
            (note, keys.retiring.iter().any(|(_, until)| now_ms >= *until))
        };
        if expired {
            // Dropping the signer wipes a key held in memory; its public key is the caller's to keep.
            self.keys.write().unwrap_or_else(|p| p.into_inner()).retiring.retain(|(_, until)| now_ms < *until);
        }
        Ok(note)
    }
}

impl fmt::Debug for SignerSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys = self.keys.read().unwrap_or_else(|p| p.into_inner());
        let id = |s: &SharedSigner| format!("{}+{}", s.name(), key_id_hex(&s.key_id()));
        f.debug_struct("SignerSet")
            .field("active", &id(&keys.active))
            .field("retiring", &keys.retiring.iter().map(|(s, until)| (id(s), *until)).collect::<Vec<_>>())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Ed25519Signer, Verifier, open_note};
    use super::*;

    const BODY: &str = "example.test/acme\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n";

    fn key(seed: u8) -> (SharedSigner, Verifier) {
        let signer = Ed25519Signer::from_seed("example.test", &[seed; 32]).unwrap();
        let verifier = signer.verifier();
        (Arc::new(signer), verifier)
    }

    fn at(ms: i64) -> SystemTime {
        UNIX_EPOCH + std::time::Duration::from_millis(ms as u64)
    }

    #[test]
    fn both_keys_sign_during_the_overlap_and_only_the_new_one_after_it() {
        let (old, old_verifier) = key(1);
        let (new, new_verifier) = key(2);
        let set = SignerSet::new(old.clone());
        set.replace(new, vec![(old, 2_000)]);

        let during = set.sign_note(BODY, at(1_999)).unwrap();
        let (_, signed_by) = open_note(&during, &[old_verifier.clone(), new_verifier.clone()]).unwrap();
        assert_eq!(signed_by.len(), 2);
        assert_eq!(signed_by[0].key_id, new_verifier.key_id(), "the active key signs first");
        assert!(open_note(&during, std::slice::from_ref(&old_verifier)).is_ok());
        assert!(open_note(&during, std::slice::from_ref(&new_verifier)).is_ok());

        let after = set.sign_note(BODY, at(2_000)).unwrap();
        assert!(open_note(&after, &[new_verifier]).is_ok());
        assert!(open_note(&after, &[old_verifier]).is_err());
        assert_eq!(set.signers_at(0).len(), 1, "a key past its overlap is forgotten");
    }

    #[test]
    fn a_key_listed_twice_signs_once() {
        let (old, _) = key(1);
        let set = SignerSet::new(old.clone());
        set.replace(old.clone(), vec![(old, i64::MAX)]);
        assert_eq!(set.signers_at(0).len(), 1);
        assert_eq!(set.sign_note(BODY, at(0)).unwrap().matches('\u{2014}').count(), 1);
    }

    #[test]
    fn debug_shows_key_ids_but_no_secret() {
        let (old, verifier) = key(1);
        let shown = format!("{:?}", SignerSet::new(old));
        assert!(shown.contains(&verifier.to_string().split('+').nth(1).unwrap().to_owned()), "{shown}");
        assert!(!shown.contains("PRIVATE"));
    }
}
