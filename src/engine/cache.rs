//! `ovm cache stats|verify|prune`: the local shared-state cache (`engine::sstate`) looked at and
//! kept in bounds. The remote tier is the server's to evict (docs/cache.md).

use std::time::Duration;

use crate::project::Project;

use super::sstate::CacheCounts;
use super::EngineError;

/// What `ovm cache` does.
#[derive(Debug, Clone)]
pub enum Action {
    Stats,
    Verify,
    Prune { older_than: Option<Duration>, max_bytes: Option<u64> },
}

/// Runs `action` on the project's local cache; returns what to print.
pub fn run(project: &Project, action: &Action) -> Result<String, EngineError> {
    let Some(sstate) = super::build::local_sstate(project) else {
        return Ok("no shared-state cache (OVM_SSTATE_DIR is empty)\n".into());
    };
    let dir = sstate.dir().display().to_string();
    let mb = |b: u64| b as f64 / 1e6;
    match action {
        Action::Stats => {
            let entries = sstate.entries()?;
            let bytes: u64 = entries.iter().map(|e| e.bytes).sum();
            let mut out =
                format!("cache: {dir}\nentries: {}\nsize: {bytes} bytes ({:.1} MB)\n", entries.len(), mb(bytes));
            if let Some(oldest) = entries.first() {
                let age = std::time::SystemTime::now().duration_since(oldest.used).unwrap_or_default();
                out.push_str(&format!("least recently used: {} ago\n", humantime::format_duration(round(age))));
            }
            let remotes = &project.config.cache.remote;
            out.push_str(&format!(
                "remote: {}\n",
                if remotes.is_empty() {
                    "none".to_string()
                } else {
                    format!(
                        "{} ({})",
                        remotes.join(" "),
                        if project.config.cache.write { "read-write" } else { "read-only" }
                    )
                }
            ));
            match std::fs::read(project.layout().cache_counts())
                .ok()
                .and_then(|b| serde_json::from_slice::<CacheCounts>(&b).ok())
            {
                Some(c) => out.push_str(&format!(
                    "last build: {} local hits, {} remote hits, {} misses, {} uploads ({:.1} MB down, {:.1} MB up)\n",
                    c.local_hits,
                    c.remote_hits,
                    c.misses,
                    c.uploads,
                    mb(c.bytes_down),
                    mb(c.bytes_up)
                )),
                None => out.push_str("last build: none recorded\n"),
            }
            Ok(out)
        }
        Action::Verify => {
            let zig =
                |tree: &std::path::Path| super::freshness::output_hash(crate::layout::Domain::Toolchain, tree).ok();
            let (n, bad) = sstate.verify(&zig)?;
            let mut out = format!("cache: {dir}\nverified {n} entries: {} good, {} bad\n", n - bad.len(), bad.len());
            for sig in &bad {
                out.push_str(&format!("evicted {sig}: its tree no longer hashes to its recorded output\n"));
            }
            if bad.is_empty() {
                Ok(out)
            } else {
                Err(EngineError::CacheCorrupt { report: out.trim_end().to_string() })
            }
        }
        Action::Prune { older_than, max_bytes } => {
            let (removed, freed) = sstate.prune(*older_than, *max_bytes)?;
            let left: u64 = sstate.entries()?.iter().map(|e| e.bytes).sum();
            Ok(format!(
                "cache: {dir}\npruned {removed} entries, {freed} bytes ({:.1} MB); {:.1} MB left\n",
                mb(freed),
                mb(left)
            ))
        }
    }
}

/// A duration to whole seconds, for people.
fn round(d: Duration) -> Duration {
    Duration::from_secs(d.as_secs())
}
