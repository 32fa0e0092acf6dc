//! The shared-state cache, after BitBake's sstate: a package's committed output, filed under the
//! signature of its `package` task. That signature covers every input (sources, patches, config,
//! toolchain, dependencies' outputs, engine version) and names no host path, so two project trees
//! — another checkout, a CI job, a `ovm clean`ed tree, another machine — that would build the same
//! bytes get them from here instead. An entry is trusted only if its content still hashes to the
//! output recorded with it: a cache that was edited behind ovm's back is ignored, never installed.
//!
//! Two tiers:
//!
//! | tier | where | layout | written |
//! |---|---|---|---|
//! | local | `.cache/sstate/` or `[build] sstate_dir` | `DIR/<sig[..2]>/<sig>/{tree/, output}` | after every build (hard links) |
//! | remote | `[cache] remote` (`crate::remote_cache`) | `/ac/<key>` → `/cas/` blobs, below | with `[cache] write = true`: what the tree builds, or restores from the local tier, that the first remote lacks |
//!
//! A lookup asks the local tier, then each remote in order; a remote hit is verified and filed in
//! the local tier first, so the restore itself is always local. A remote entry is:
//! - `/ac/<key>`, key = sha256([`AC_SALT`] ‖ signature) (over gRPC, the digest of those bytes,
//!   [`ac_key`]): a REAPI `ActionResult` whose output files
//!   are `manifest.json` and `tree.tar.zst`, so bazel-remote, which checks entries, accepts it;
//! - the manifest ([`Manifest`]: format, package, signature, output hash, the archive's tree hash);
//! - the archive: `tree::archive` of the staged tree (deterministic), zstd-compressed.
//!
//! Uploads go blobs first (HEAD, PUT what is missing), the entry last, so a reader never finds an
//! entry whose blobs were not yet there; a killed upload leaves at worst blobs nobody names.
//! Downloads check each blob's size and sha256 (`remote_cache`), the manifest's signature, the
//! unpacked tree's hash and then ovm's own output hash before anything is filed. Any failure — 404,
//! 5xx, a timeout, a truncated or flipped blob, an unparsable entry, a missing blob — is a miss with
//! one warning and the package is built; a remote that does not answer at all is not asked again in
//! the run, and one that refuses a write (401/403) makes the run read-only.

use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::remote_cache::{self, ActionResult, Digest, OutputFile, RemoteCache, RemoteError};
use crate::tree::{self, TreeError};

/// Salt of every action-cache key: a new format of entry gets new keys instead of misreading old ones.
pub const AC_SALT: &str = "ovm-sstate-1\0";
/// The manifest's `format` this version writes and reads.
const FORMAT: u32 = 1;
const MANIFEST: &str = "manifest.json";
const ARCHIVE: &str = "tree.tar.zst";

/// What a remote entry says about its archive (the `manifest.json` blob).
#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    format: u32,
    package: String,
    /// The `package` task's signature the entry is filed under.
    signature: String,
    /// ovm's output hash of the tree (`freshness::output_hash`).
    output: String,
    /// `tree::hash_tree` of the unpacked archive (equal to `output` except for the zig toolchain).
    tree: String,
}

/// Why a remote entry was not used.
#[derive(Debug, thiserror::Error)]
pub enum RemoteMiss {
    #[error(transparent)]
    Remote(#[from] RemoteError),
    #[error("the entry names no {0}")]
    Incomplete(&'static str),
    #[error("the entry's blob {0} is gone")]
    BlobGone(String),
    #[error("unreadable manifest: {0}")]
    Manifest(String),
    #[error("the manifest is for {what} {got}, not {want}")]
    Mismatch { what: &'static str, want: String, got: String },
    #[error(transparent)]
    Unpack(#[from] crate::unpack::UnpackError),
    #[error(transparent)]
    Tree(#[from] TreeError),
    #[error("{0}")]
    Verify(String),
}

fn mismatch(what: &'static str, want: &str, got: &str) -> RemoteMiss {
    RemoteMiss::Mismatch { what, want: want.into(), got: got.into() }
}

/// Counts of one run, for the build summary.
#[derive(Debug, Default)]
pub struct Counters {
    local_hits: AtomicU64,
    remote_hits: AtomicU64,
    misses: AtomicU64,
    uploads: AtomicU64,
    bytes_down: AtomicU64,
    bytes_up: AtomicU64,
}

/// A snapshot of [`Counters`]; the last build's is kept in `states/cache-counts.json` for
/// `ovm cache stats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheCounts {
    pub local_hits: u64,
    pub remote_hits: u64,
    pub misses: u64,
    pub uploads: u64,
    pub bytes_down: u64,
    pub bytes_up: u64,
    /// Whether any remote is configured.
    pub remote: bool,
}

/// One remote store and what this run learnt of it.
#[derive(Debug)]
struct Store {
    cache: RemoteCache,
    /// It did not answer: not asked again in this run.
    down: AtomicBool,
}

impl Store {
    /// Notes that the store did not answer: one warning, and it is not asked again in the run.
    fn went_down(&self, e: &RemoteError) {
        if !self.down.swap(true, Ordering::Relaxed) {
            tracing::warn!("remote cache {} is not answering ({e}); not asked again in this run", self.cache.url());
        }
    }
}

#[derive(Debug)]
struct Remotes {
    stores: Vec<Store>,
    /// Uploads to the first store are on (`[cache] write`) and were not refused yet.
    write: AtomicBool,
}

/// One local entry, as [`Sstate::entries`] lists it.
#[derive(Debug, Clone)]
pub struct Entry {
    pub sig: String,
    pub dir: PathBuf,
    /// Last restored (or filed).
    pub used: std::time::SystemTime,
    pub bytes: u64,
}

#[derive(Debug, Clone)]
pub struct Sstate {
    dir: PathBuf,
    remotes: Option<Arc<Remotes>>,
    counters: Arc<Counters>,
}

/// The action-cache key of a `package` signature: the digest of the salted signature (REAPI
/// keys are digests; the HTTP protocol uses the hash).
pub fn ac_key(sig: &str) -> Digest {
    remote_cache::digest_of(format!("{AC_SALT}{sig}").as_bytes())
}

impl Sstate {
    pub fn new(dir: PathBuf) -> Sstate {
        Sstate { dir, remotes: None, counters: Arc::default() }
    }

    /// The same local cache with `stores` behind it; uploads to the first when `write`.
    pub fn with_remotes(self, stores: Vec<RemoteCache>, write: bool) -> Sstate {
        if stores.is_empty() {
            return self;
        }
        let stores = stores.into_iter().map(|cache| Store { cache, down: AtomicBool::new(false) }).collect();
        Sstate { remotes: Some(Arc::new(Remotes { stores, write: AtomicBool::new(write) })), ..self }
    }

    pub fn counts(&self) -> CacheCounts {
        let c = &self.counters;
        CacheCounts {
            local_hits: c.local_hits.load(Ordering::Relaxed),
            remote_hits: c.remote_hits.load(Ordering::Relaxed),
            misses: c.misses.load(Ordering::Relaxed),
            uploads: c.uploads.load(Ordering::Relaxed),
            bytes_down: c.bytes_down.load(Ordering::Relaxed),
            bytes_up: c.bytes_up.load(Ordering::Relaxed),
            remote: self.remotes.is_some(),
        }
    }

    fn entry(&self, sig: &str) -> PathBuf {
        self.dir.join(&sig[..sig.len().min(2)]).join(sig)
    }

    /// The locally cached tree of `sig` and its recorded output hash, if present.
    pub fn lookup(&self, sig: &str) -> Option<(PathBuf, String)> {
        let e = self.entry(sig);
        let output = fs::read_to_string(e.join("output")).ok()?;
        let tree = e.join("tree");
        tree.is_dir().then(|| (tree, output.trim().to_string()))
    }

    /// [`lookup`](Self::lookup), else the first remote that has `sig` (filed locally once
    /// verified; `output_hash` is ovm's hash of a tree of this domain). Counts the hit or miss.
    pub fn find(
        &self,
        sig: &str,
        pkg: &str,
        output_hash: &dyn Fn(&Path) -> Result<String, String>,
    ) -> Option<(PathBuf, String)> {
        if let Some(hit) = self.lookup(sig) {
            self.counters.local_hits.fetch_add(1, Ordering::Relaxed);
            self.touch(sig);
            return Some(hit);
        }
        let fetched = self
            .ask_remotes(pkg, "building instead", |store| Ok(self.fetch(store, sig, pkg, output_hash)?.then_some(())));
        if fetched.is_some() {
            match self.lookup(sig) {
                Some(hit) => {
                    self.counters.remote_hits.fetch_add(1, Ordering::Relaxed);
                    return Some(hit);
                }
                None => tracing::warn!("{pkg}: the shared-state entry from a remote cache vanished locally"),
            }
        }
        self.counters.misses.fetch_add(1, Ordering::Relaxed);
        None
    }

    /// Downloads, verifies and files the remote entry of `sig`; `Ok(false)` when `store` has none.
    fn fetch(
        &self,
        store: &Store,
        sig: &str,
        pkg: &str,
        output_hash: &dyn Fn(&Path) -> Result<String, String>,
    ) -> Result<bool, RemoteMiss> {
        let tmp = self.temp_entry()?;
        let Some((result, manifest)) = self.remote_manifest(store, sig, pkg, tmp.path())? else { return Ok(false) };
        let archive_digest = result.file(ARCHIVE).ok_or(RemoteMiss::Incomplete(ARCHIVE))?;
        let archive = self.get_blob(store, archive_digest, &tmp.path().join(ARCHIVE))?;
        let staged = tmp.path().join("tree");
        crate::unpack::unpack(&archive, &staged, 0)?;
        fs::create_dir_all(&staged).map_err(|source| TreeError::Write { path: staged.clone(), source })?;
        let _ = fs::remove_file(&archive);
        let tree_hash = tree::hash_tree(&staged)?;
        if tree_hash != manifest.tree {
            return Err(mismatch("tree hash", &manifest.tree, &tree_hash));
        }
        let output = output_hash(&staged).map_err(RemoteMiss::Verify)?;
        if output != manifest.output {
            return Err(mismatch("output hash", &manifest.output, &output));
        }
        fs::write(tmp.path().join("output"), format!("{output}\n"))
            .map_err(|source| TreeError::Write { path: tmp.path().join("output"), source })?;
        self.file_entry(tmp, sig)?;
        Ok(true)
    }

    /// `store`'s entry of `sig` and its manifest (downloaded into `dir` and checked to be of this
    /// format, signature and package); `None` when the store has no entry.
    fn remote_manifest(
        &self,
        store: &Store,
        sig: &str,
        pkg: &str,
        dir: &Path,
    ) -> Result<Option<(ActionResult, Manifest)>, RemoteMiss> {
        let Some(result) = store.cache.get_action(&ac_key(sig))? else { return Ok(None) };
        let digest = result.file(MANIFEST).ok_or(RemoteMiss::Incomplete(MANIFEST))?;
        let path = self.get_blob(store, digest, &dir.join(MANIFEST))?;
        let bytes = fs::read(&path).map_err(|e| RemoteMiss::Manifest(e.to_string()))?;
        let _ = fs::remove_file(&path);
        let manifest: Manifest = serde_json::from_slice(&bytes).map_err(|e| RemoteMiss::Manifest(e.to_string()))?;
        if manifest.format != FORMAT {
            return Err(mismatch("format", &FORMAT.to_string(), &manifest.format.to_string()));
        }
        if manifest.signature != sig {
            return Err(mismatch("signature", sig, &manifest.signature));
        }
        if manifest.package != pkg {
            return Err(mismatch("package", pkg, &manifest.package));
        }
        Ok(Some((result, manifest)))
    }

    /// Downloads the blob `digest` to `dest` (verified by `remote_cache`); a 404 is [`RemoteMiss::BlobGone`].
    fn get_blob(&self, store: &Store, digest: &Digest, dest: &Path) -> Result<PathBuf, RemoteMiss> {
        if !store.cache.get_blob(digest, dest)? {
            return Err(RemoteMiss::BlobGone(digest.hash.clone()));
        }
        self.counters.bytes_down.fetch_add(digest.size_bytes, Ordering::Relaxed);
        Ok(dest.to_path_buf())
    }

    /// The output hash filed under `sig`: the local entry's, else the first remote's manifest's
    /// (only the manifest is downloaded). What setscene needs to compute the signatures of
    /// dependents without the output itself (BitBake's unihash from a hash-equivalence server).
    pub fn output_of(&self, sig: &str, pkg: &str) -> Option<String> {
        if let Some((_, output)) = self.lookup(sig) {
            return Some(output);
        }
        self.ask_remotes(pkg, "its output unknown", |store| {
            let tmp = self.temp_entry()?;
            Ok(self.remote_manifest(store, sig, pkg, tmp.path())?.map(|(_, manifest)| manifest.output))
        })
    }

    /// `ask` of each remote store that has not gone down, in order, until one answers `Some`. A
    /// store that does not answer is noted down; any other failure is one warning, ending in
    /// `then` (what the caller does instead), and the next store is asked.
    fn ask_remotes<T>(
        &self,
        pkg: &str,
        then: &str,
        ask: impl Fn(&Store) -> Result<Option<T>, RemoteMiss>,
    ) -> Option<T> {
        for store in self.remotes.iter().flat_map(|r| &r.stores) {
            if store.down.load(Ordering::Relaxed) {
                continue;
            }
            match ask(store) {
                Ok(Some(found)) => return Some(found),
                Ok(None) => {}
                Err(RemoteMiss::Remote(e)) if e.is_down() => store.went_down(&e),
                Err(e) => tracing::warn!("{pkg}: remote cache {}: entry unusable ({e}); {then}", store.cache.url()),
            }
        }
        None
    }

    /// Whether any remote store is configured.
    pub fn has_remotes(&self) -> bool {
        self.remotes.is_some()
    }

    /// A temporary directory in the cache, renamed into an entry by [`file_entry`](Self::file_entry).
    fn temp_entry(&self) -> Result<tempfile::TempDir, TreeError> {
        fs::create_dir_all(&self.dir).map_err(|source| TreeError::Write { path: self.dir.clone(), source })?;
        tempfile::Builder::new()
            .prefix(".tmp-")
            .tempdir_in(&self.dir)
            .map_err(|source| TreeError::Write { path: self.dir.clone(), source })
    }

    /// Renames a complete temporary entry into place under `sig`.
    fn file_entry(&self, tmp: tempfile::TempDir, sig: &str) -> Result<(), TreeError> {
        let entry = self.entry(sig);
        let parent = entry.parent().unwrap_or(&self.dir).to_path_buf();
        fs::create_dir_all(&parent).map_err(|source| TreeError::Write { path: parent.clone(), source })?;
        let tmp = tmp.keep();
        if let Err(source) = fs::rename(&tmp, &entry) {
            // Another ovm filed the same signature first: theirs is as good as ours.
            let _ = tree::remove_all(&tmp);
            if !entry.exists() {
                return Err(TreeError::Write { path: entry, source });
            }
        }
        Ok(())
    }

    /// Files `staged` (already committed, hashing to `output`) under `sig`. Hard links: no copy.
    pub fn store(&self, sig: &str, staged: &Path, output: &str) -> Result<(), TreeError> {
        if self.entry(sig).exists() {
            return Ok(());
        }
        let tmp = self.temp_entry()?;
        tree::compose(&[("staged".into(), staged.to_path_buf())], &tmp.path().join("tree"))?;
        fs::write(tmp.path().join("output"), format!("{output}\n"))
            .map_err(|source| TreeError::Write { path: tmp.path().join("output"), source })?;
        self.file_entry(tmp, sig)
    }

    /// Uploads `staged` (the output `output` of `pkg`, signature `sig`) to the first remote when
    /// writing is on and it lacks the entry. Never fails the build: a refusal turns writing off
    /// for the run, any other failure is a warning.
    pub fn publish(&self, sig: &str, pkg: &str, staged: &Path, output: &str) {
        let Some(remotes) = &self.remotes else { return };
        let Some(store) = remotes.stores.first() else { return };
        if !remotes.write.load(Ordering::Relaxed) || store.down.load(Ordering::Relaxed) {
            return;
        }
        match self.upload(store, sig, pkg, staged, output) {
            Ok(None) => {}
            Ok(Some(sent)) => {
                self.counters.uploads.fetch_add(1, Ordering::Relaxed);
                self.counters.bytes_up.fetch_add(sent, Ordering::Relaxed);
            }
            Err(RemoteMiss::Remote(e)) if e.is_denied() => {
                if remotes.write.swap(false, Ordering::Relaxed) {
                    tracing::warn!(
                        "remote cache {} refused a write ({e}): read-only for the rest of this run (check OVM_CACHE_AUTH or netrc)",
                        store.cache.url()
                    );
                }
            }
            Err(RemoteMiss::Remote(e)) if e.is_down() => {
                store.went_down(&e);
            }
            Err(e) => tracing::warn!("{pkg}: could not upload to remote cache {}: {e}", store.cache.url()),
        }
    }

    /// The upload itself; returns the blob bytes sent, `None` when the store had the entry.
    fn upload(
        &self,
        store: &Store,
        sig: &str,
        pkg: &str,
        staged: &Path,
        output: &str,
    ) -> Result<Option<u64>, RemoteMiss> {
        let key = ac_key(sig);
        if store.cache.has_action(&key)? {
            return Ok(None);
        }
        let tmp = self.temp_entry()?;
        let archive = tmp.path().join(ARCHIVE);
        let werr = |source| TreeError::Write { path: archive.clone(), source };
        {
            let file = fs::File::create(&archive).map_err(werr)?;
            let mut z = zstd::stream::write::Encoder::new(BufWriter::new(file), 3).map_err(werr)?;
            tree::archive(staged, &mut z)?;
            z.finish().map_err(werr)?.flush().map_err(werr)?;
        }
        let manifest = Manifest {
            format: FORMAT,
            package: pkg.to_string(),
            signature: sig.to_string(),
            output: output.to_string(),
            tree: tree::hash_tree(staged)?,
        };
        let manifest_path = tmp.path().join(MANIFEST);
        let bytes = serde_json::to_vec_pretty(&manifest).map_err(|e| RemoteMiss::Manifest(e.to_string()))?;
        fs::write(&manifest_path, &bytes).map_err(|source| TreeError::Write { path: manifest_path.clone(), source })?;
        let archive_digest = remote_cache::digest_of_file(&archive)?;
        let manifest_digest = remote_cache::digest_of(&bytes);
        let mut sent = 0;
        for (digest, path) in [(&archive_digest, &archive), (&manifest_digest, &manifest_path)] {
            if store.cache.put_blob(digest, path)? {
                sent += digest.size_bytes;
            }
        }
        let result = ActionResult {
            output_files: vec![
                OutputFile { path: MANIFEST.into(), digest: manifest_digest, is_executable: false },
                OutputFile { path: ARCHIVE.into(), digest: archive_digest, is_executable: false },
            ],
            exit_code: 0,
        };
        store.cache.put_action(&key, &result)?;
        Ok(Some(sent))
    }

    /// Marks `sig`'s entry as used now (its `output` file's mtime): [`prune`](Self::prune) drops
    /// the least recently used first. A read-only cache is still usable, so failing is fine.
    fn touch(&self, sig: &str) {
        let _ = fs::File::options()
            .write(true)
            .open(self.entry(sig).join("output"))
            .and_then(|f| f.set_modified(std::time::SystemTime::now()));
    }

    /// Every complete entry: its signature, directory, last use and size (bytes of distinct
    /// files; hard links to staging dirs count, they are what the cache keeps alive).
    pub fn entries(&self) -> Result<Vec<Entry>, TreeError> {
        let mut out = Vec::new();
        let rd = match fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(source) => return Err(TreeError::Read { path: self.dir.clone(), source }),
        };
        for shard in rd.flatten() {
            let name = shard.file_name().to_string_lossy().into_owned();
            if name.len() != 2 || !shard.path().is_dir() {
                continue;
            }
            let inner = fs::read_dir(shard.path()).map_err(|source| TreeError::Read { path: shard.path(), source })?;
            for e in inner.flatten() {
                let sig = e.file_name().to_string_lossy().into_owned();
                if sig.starts_with('.') {
                    continue;
                }
                let dir = e.path();
                let Ok(md) = fs::metadata(dir.join("output")) else { continue };
                let used = md.modified().unwrap_or(std::time::UNIX_EPOCH);
                let (bytes, _) = tree::size_of(&dir)?;
                out.push(Entry { sig, dir, used, bytes });
            }
        }
        out.sort_by(|a, b| a.used.cmp(&b.used).then_with(|| a.sig.cmp(&b.sig)));
        Ok(out)
    }

    /// Re-hashes every entry against its recorded output (`output_hash` for the zig toolchain's
    /// entries, whose output is not a tree hash); returns the bad ones, evicted.
    pub fn verify(&self, other_hash: &dyn Fn(&Path) -> Option<String>) -> Result<(usize, Vec<String>), TreeError> {
        let entries = self.entries()?;
        let mut bad = Vec::new();
        for e in &entries {
            let recorded = fs::read_to_string(e.dir.join("output")).unwrap_or_default();
            let recorded = recorded.trim();
            let tree = e.dir.join("tree");
            let ok =
                tree::hash_tree(&tree).is_ok_and(|h| h == recorded) || other_hash(&tree).is_some_and(|h| h == recorded);
            if !ok {
                self.evict(&e.sig);
                bad.push(e.sig.clone());
            }
        }
        Ok((entries.len(), bad))
    }

    /// Evicts entries last used before `older_than` ago, then the least recently used until the
    /// cache holds at most `max_bytes`, and temporaries a killed ovm left (a day old). Returns the
    /// entries removed and the bytes freed.
    pub fn prune(
        &self,
        older_than: Option<std::time::Duration>,
        max_bytes: Option<u64>,
    ) -> Result<(usize, u64), TreeError> {
        let now = std::time::SystemTime::now();
        let mut entries = self.entries()?;
        let mut total: u64 = entries.iter().map(|e| e.bytes).sum();
        let (mut removed, mut freed) = (0, 0);
        entries.retain(|e| {
            let old = older_than.is_some_and(|d| now.duration_since(e.used).unwrap_or_default() > d);
            let over = max_bytes.is_some_and(|m| total > m);
            if old || over {
                if tree::remove_all(&e.dir).is_ok() {
                    removed += 1;
                    freed += e.bytes;
                    total -= e.bytes;
                }
                return false;
            }
            true
        });
        let day = std::time::Duration::from_secs(86_400);
        let list =
            |d: &Path| -> Vec<PathBuf> { fs::read_dir(d).into_iter().flatten().flatten().map(|e| e.path()).collect() };
        let top = list(&self.dir);
        let nested: Vec<PathBuf> = top.iter().filter(|p| p.is_dir()).flat_map(|p| list(p)).collect();
        for p in top.into_iter().chain(nested) {
            let is_tmp = p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(".tmp-"));
            let stale = fs::symlink_metadata(&p)
                .and_then(|m| m.modified())
                .is_ok_and(|t| now.duration_since(t).unwrap_or_default() > day);
            if is_tmp && stale {
                let _ = tree::remove_all(&p);
            }
        }
        Ok((removed, freed))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Drops a bad entry so it is not offered again.
    pub fn evict(&self, sig: &str) {
        let _ = tree::remove_all(&self.entry(sig));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_then_lookup_and_evict() {
        let d = tempfile::tempdir().unwrap();
        let staged = d.path().join("staged");
        fs::create_dir_all(staged.join("usr/bin")).unwrap();
        fs::write(staged.join("usr/bin/x"), "1").unwrap();
        let out = tree::hash_tree(&staged).unwrap();
        let s = Sstate::new(d.path().join("sstate"));
        assert!(s.lookup("abcdef").is_none());
        s.store("abcdef", &staged, &out).unwrap();
        s.store("abcdef", &staged, &out).unwrap();
        let (t, o) = s.lookup("abcdef").unwrap();
        assert_eq!(o, out);
        assert_eq!(tree::hash_tree(&t).unwrap(), out);
        s.evict("abcdef");
        assert!(s.lookup("abcdef").is_none());
    }

    #[test]
    fn verify_evicts_bad_entries_and_prune_drops_old_then_least_recently_used() {
        let d = tempfile::tempdir().unwrap();
        let s = Sstate::new(d.path().join("sstate"));
        let hour = std::time::Duration::from_secs(3600);
        let now = std::time::SystemTime::now();
        for (i, sig) in ["aa01", "bb02", "cc03"].iter().enumerate() {
            let staged = d.path().join(sig);
            fs::create_dir_all(&staged).unwrap();
            fs::write(staged.join("f"), vec![b'x'; 1000]).unwrap();
            s.store(sig, &staged, &tree::hash_tree(&staged).unwrap()).unwrap();
            // aa01 used 3 h ago, bb02 2 h ago, cc03 1 h ago.
            let used = now - hour * (3 - i as u32);
            fs::File::options().write(true).open(s.entry(sig).join("output")).unwrap().set_modified(used).unwrap();
        }
        let entries = s.entries().unwrap();
        assert_eq!(entries.iter().map(|e| e.sig.as_str()).collect::<Vec<_>>(), ["aa01", "bb02", "cc03"]);
        assert!(entries.iter().all(|e| e.bytes >= 1000));

        fs::write(s.entry("bb02").join("tree/f"), "flipped").unwrap();
        let (n, bad) = s.verify(&|_| None).unwrap();
        assert_eq!((n, bad), (3, vec!["bb02".to_string()]));
        assert!(s.lookup("bb02").is_none());

        // A hit makes cc03 the most recently used; aa01 is older than 2 h.
        s.find("cc03", "p", &|_| Err("unused".into())).unwrap();
        let (removed, _) = s.prune(Some(hour * 2), None).unwrap();
        assert_eq!(removed, 1);
        assert!(s.lookup("aa01").is_none() && s.lookup("cc03").is_some());
        let (removed, _) = s.prune(None, Some(0)).unwrap();
        assert_eq!(removed, 1);
        assert!(s.entries().unwrap().is_empty());
    }

    #[test]
    fn keys_are_salted_hex_of_the_signature() {
        let k = ac_key("abc");
        assert_eq!(k.hash.len(), 64);
        assert_eq!(k.size_bytes, (AC_SALT.len() + 3) as u64);
        assert_ne!(k.hash, crate::digest::sha256_hex(b"abc"));
        assert_eq!(k, ac_key("abc"));
    }
}
