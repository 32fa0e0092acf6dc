//! Task signatures, after cargo's fingerprints and BitBake's stamp checksums.
//!
//! A task's *inputs* are a flat, ordered map `name → value` of everything that can change its
//! output: the recipe fields the task uses, the sha256 of every source, patch and config file, the
//! toolchain's signature, the output hashes of declared dependencies, the signature of the task
//! before it in the package, and `ENGINE_VERSION` (bumped whenever the way ovm runs a task changes).
//! The *signature* is the sha256 of a canonical encoding of that map. Long values (shell snippets,
//! file contents) are stored as their own sha256 so stamps stay small, while short values are kept
//! verbatim so `ovm status --why` can say "source.0.strip changed (1 → 0)". Mtimes are never an
//! input: a `touch` changes nothing, an edit that restores the old bytes is not a change.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Bumped when the engine changes how tasks run (environment, sandbox layout, default steps), so
/// that every stamp made by an older ovm is stale.
pub const ENGINE_VERSION: &str = "ovm-engine-1";

/// Values longer than this are recorded by hash only.
const VERBATIM_LIMIT: usize = 96;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Inputs(BTreeMap<String, String>);

/// One difference between the inputs a stamp recorded and the inputs of now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Added { key: String, value: String },
    Removed { key: String, value: String },
    Changed { key: String, old: String, new: String },
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::Added { key, value } => write!(f, "{key} added ({value})"),
            Change::Removed { key, value } => write!(f, "{key} removed (was {value})"),
            Change::Changed { key, old, new } => write!(f, "{key} changed ({old} → {new})"),
        }
    }
}

pub use crate::digest::{hex, sha256_hex};

impl Inputs {
    pub fn new() -> Self {
        Inputs::default()
    }

    /// Records a value; long values are replaced by `sha256:<hex>` of their bytes.
    pub fn set(&mut self, key: impl Into<String>, value: impl AsRef<str>) -> &mut Self {
        let value = value.as_ref();
        let stored = if value.len() > VERBATIM_LIMIT || value.contains('\n') {
            format!("sha256:{}", sha256_hex(value.as_bytes()))
        } else {
            value.to_string()
        };
        self.0.insert(key.into(), stored);
        self
    }

    /// Records the content of a file or blob by hash.
    pub fn set_bytes(&mut self, key: impl Into<String>, bytes: &[u8]) -> &mut Self {
        self.0.insert(key.into(), format!("sha256:{}", sha256_hex(bytes)));
        self
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// sha256 over `len(key) key len(value) value` for every entry in key order: unambiguous, and
    /// independent of how serde happens to format JSON.
    pub fn signature(&self) -> String {
        let mut h = Sha256::new();
        for (k, v) in &self.0 {
            h.update((k.len() as u64).to_le_bytes());
            h.update(k.as_bytes());
            h.update((v.len() as u64).to_le_bytes());
            h.update(v.as_bytes());
        }
        hex(&h.finalize())
    }

    /// What changed from `old` to `self`, in key order.
    pub fn diff(&self, old: &Inputs) -> Vec<Change> {
        let mut changes = Vec::new();
        for (k, v) in &self.0 {
            match old.0.get(k) {
                None => changes.push(Change::Added { key: k.clone(), value: v.clone() }),
                Some(o) if o != v => changes.push(Change::Changed { key: k.clone(), old: o.clone(), new: v.clone() }),
                Some(_) => {}
            }
        }
        for (k, v) in &old.0 {
            if !self.0.contains_key(k) {
                changes.push(Change::Removed { key: k.clone(), value: v.clone() });
            }
        }
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_depends_on_content_not_insertion_order() {
        let mut a = Inputs::new();
        a.set("x", "1").set("y", "2");
        let mut b = Inputs::new();
        b.set("y", "2").set("x", "1");
        assert_eq!(a.signature(), b.signature());
        b.set("y", "3");
        assert_ne!(a.signature(), b.signature());
    }

    #[test]
    fn key_value_boundaries_are_unambiguous() {
        let mut a = Inputs::new();
        a.set("ab", "c");
        let mut b = Inputs::new();
        b.set("a", "bc");
        assert_ne!(a.signature(), b.signature());
    }

    #[test]
    fn long_values_are_hashed_short_values_kept() {
        let mut i = Inputs::new();
        i.set("short", "4").set("script", "make\nmake install\n");
        assert_eq!(i.get("short"), Some("4"));
        assert!(i.get("script").is_some_and(|v| v.starts_with("sha256:")));
    }

    #[test]
    fn diff_names_added_removed_and_changed_keys() {
        let mut old = Inputs::new();
        old.set("keep", "1").set("gone", "2").set("edit", "a");
        let mut new = Inputs::new();
        new.set("keep", "1").set("edit", "b").set("fresh", "3");
        let d: Vec<String> = new.diff(&old).iter().map(ToString::to_string).collect();
        assert_eq!(d, vec!["edit changed (a → b)", "fresh added (3)", "gone removed (was 2)"]);
    }

    #[test]
    fn serde_round_trip_keeps_signature() {
        let mut i = Inputs::new();
        i.set("a", "1").set_bytes("file:x", b"hello");
        let json = serde_json::to_string(&i).unwrap();
        let back: Inputs = serde_json::from_str(&json).unwrap();
        assert_eq!(back.signature(), i.signature());
    }
}
