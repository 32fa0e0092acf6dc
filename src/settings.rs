//! ovm's own configuration from the environment, read once per process into [`Settings`].
//!
//! This is the only module that calls `std::env::var`, `var_os` or `vars` (clippy's
//! `disallowed-methods`, configured in `clippy.toml`, refuses them everywhere else). The entry
//! point (`main`) reads the environment with [`Settings::from_env`] and hands the value down:
//! the CLI opens the project with it ([`Project::open_with`](crate::project::Project::open_with)),
//! and the project carries it to the fetcher, the engine's run and the sandboxes it makes, as
//! cargo's global context travels with its workspace. A library caller that never reads the
//! environment passes [`Settings::default`] (no variable set): what it gets then depends on its
//! arguments and the project's files alone.
//!
//! | Variable | What it does | Read by |
//! |---|---|---|
//! | `OVM_SSTATE_DIR` | the shared-state cache directory; empty: no cache (default `[build] sstate_dir`, else `.cache/sstate`) | `engine::build::Run::new` |
//! | `OVM_BUILD_CACHE_DIR` | the host directory bound at `/ovm/cache` in every step (the zig cache) | `engine::build::Run::new` |
//! | `SOURCE_DATE_EPOCH` | overrides `[build] source_date_epoch`; decimal digits only | `project::Project::open_with` |
//! | `OVM_MIRRORS` | whitespace-separated mirrors tried before `[fetch] mirrors` and the recipe URLs | `fetch::FetchOptions::from_project` |
//! | `PIP_INDEX_URL` | the PyPI index when `[fetch] pypi_index` is unset (as pip reads it) | `fetch::FetchOptions::from_project` |
//! | `OVM_FAULT`, `OVM_FAULT_ACTION` | fault injection, a test hook: `POINT[@PKG]`, `kill` or `stop` | `fault::arm` (from `cli::run`) |
//! | `OVM_SANDBOX_PROC` | `fresh` or `host-ro`: how every sandbox gets its `/proc` | `sandbox::ProcMode::chosen`; `sandbox::cli::fast_path` |
//! | `OVM_EXE` | the ovm executable re-executed for each sandbox (`ovm __sandbox-exec`) | `sandbox::executable` |
//! | `TERM` | passed into `ovm sandbox --tty`, whose terminal is the caller's | `sandbox::cli::SandboxArgs::spec` |
//! | `container` | set by some container managers (podman, systemd-nspawn): a hint that ovm runs in one | `sandbox::HostFacts` (doctor, setup-failure hints) |
//! | `OVM_LOG` | the log filter (tracing's `EnvFilter` syntax), over `-q` / `-v` | `main` |
//! | `NO_COLOR` | set and not empty: no colour on a terminal (<https://no-color.org>) | `main`, `cli::progress` |
//! | `OVM_CACHE_AUTH` | `user:password` for the remote caches of `[cache] remote` (never in the project's files) | `remote_cache::RemoteCache::new` |
//! | `NETRC`, `HOME` | the netrc file holding a remote cache host's login (default `$HOME/.netrc`), as curl reads it | `remote_cache::RemoteCache::new` |
//!
//! A process ovm starts for a sandbox (`ovm __sandbox-exec`) is a new process: its `main` reads
//! its own [`Settings`], from the environment its parent passed on.
//!
//! Two values can be malformed, `SOURCE_DATE_EPOCH` and `OVM_SANDBOX_PROC`. They are kept as given
//! and checked by the module that uses them, with that module's error, so a malformed value fails
//! only the commands that use it (`ovm status` does not make a sandbox), as when each module read
//! its variable itself.

use std::path::PathBuf;

/// ovm's configuration from the environment (see the module comment for every variable).
/// `Default` is "nothing set".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    /// `OVM_SSTATE_DIR`, as given: `Some("")` turns the shared-state cache off.
    pub sstate_dir: Option<PathBuf>,
    /// `OVM_BUILD_CACHE_DIR`.
    pub build_cache_dir: Option<PathBuf>,
    /// `SOURCE_DATE_EPOCH`, as given (checked by `Project::open_with`).
    pub source_date_epoch: Option<String>,
    /// `OVM_MIRRORS`, split at whitespace (not yet parsed: relative directories are relative to
    /// the project).
    pub mirrors: Vec<String>,
    /// `PIP_INDEX_URL`, when set and not empty.
    pub pip_index_url: Option<String>,
    /// `OVM_FAULT`, when set and not empty: `POINT` or `POINT@PKG`.
    pub fault: Option<String>,
    /// `OVM_FAULT_ACTION`.
    pub fault_action: Option<String>,
    /// `OVM_SANDBOX_PROC`, as given (checked by `sandbox::ProcMode::chosen`).
    pub sandbox_proc: Option<String>,
    /// `OVM_EXE`.
    pub exe: Option<PathBuf>,
    /// `TERM`.
    pub term: Option<String>,
    /// `container`.
    pub container: Option<String>,
    /// `OVM_LOG`.
    pub log: Option<String>,
    /// `NO_COLOR` is set and not empty.
    pub no_color: bool,
    /// `OVM_CACHE_AUTH`: `user:password` for the remote caches (HTTP Basic).
    pub cache_auth: Option<Secret>,
    /// `NETRC`: the netrc file with the remote caches' credentials (else `$HOME/.netrc`).
    pub netrc: Option<PathBuf>,
    /// `HOME`: where `.netrc` is looked for.
    pub home: Option<PathBuf>,
}

/// The names of the variables, for messages and for tests that set them on a child process.
pub const SSTATE_DIR: &str = "OVM_SSTATE_DIR";
pub const BUILD_CACHE_DIR: &str = "OVM_BUILD_CACHE_DIR";
pub const SOURCE_DATE_EPOCH: &str = "SOURCE_DATE_EPOCH";
pub const MIRRORS: &str = "OVM_MIRRORS";
pub const PIP_INDEX_URL: &str = "PIP_INDEX_URL";
pub const FAULT: &str = "OVM_FAULT";
pub const FAULT_ACTION: &str = "OVM_FAULT_ACTION";
pub const SANDBOX_PROC: &str = "OVM_SANDBOX_PROC";
pub const EXE: &str = "OVM_EXE";
pub const TERM: &str = "TERM";
pub const CONTAINER: &str = "container";
pub const LOG: &str = "OVM_LOG";
pub const NO_COLOR: &str = "NO_COLOR";
pub const CACHE_AUTH: &str = "OVM_CACHE_AUTH";
pub const NETRC: &str = "NETRC";
pub const HOME: &str = "HOME";

/// A value that must not appear in a log or a `{:?}` (a password): its `Debug` prints stars.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Secret {
        Secret(s.to_string())
    }
}

impl std::ops::Deref for Secret {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl Settings {
    /// Reads every variable of the table once. Never fails: values that can be malformed are kept
    /// as given and checked where they are used (see the module comment).
    #[allow(clippy::disallowed_methods)] // The one place ovm reads its configuration from the environment.
    pub fn from_env() -> Settings {
        Settings::from_lookup(|name| std::env::var_os(name))
    }

    /// [`Settings::from_env`] over any source of variables (a test's map).
    pub fn from_lookup(get: impl Fn(&str) -> Option<std::ffi::OsString>) -> Settings {
        // Text values that are not UTF-8 count as unset, as `std::env::var(..).ok()` had them, except
        // the two that are checked: a malformed value is reported (lossily shown), never ignored.
        let text = |name: &str| get(name).and_then(|v| v.into_string().ok());
        let checked = |name: &str| get(name).map(|v| v.to_string_lossy().into_owned());
        Settings {
            sstate_dir: get(SSTATE_DIR).map(PathBuf::from),
            build_cache_dir: get(BUILD_CACHE_DIR).map(PathBuf::from),
            source_date_epoch: checked(SOURCE_DATE_EPOCH),
            mirrors: text(MIRRORS).map(|v| v.split_whitespace().map(str::to_string).collect()).unwrap_or_default(),
            pip_index_url: text(PIP_INDEX_URL).filter(|v| !v.is_empty()),
            fault: text(FAULT).filter(|v| !v.is_empty()),
            fault_action: text(FAULT_ACTION),
            sandbox_proc: checked(SANDBOX_PROC),
            exe: get(EXE).map(PathBuf::from),
            term: text(TERM),
            container: text(CONTAINER),
            log: text(LOG),
            no_color: get(NO_COLOR).is_some_and(|v| !v.is_empty()),
            cache_auth: text(CACHE_AUTH).filter(|v| !v.is_empty()).map(Secret),
            netrc: get(NETRC).filter(|v| !v.is_empty()).map(PathBuf::from),
            home: get(HOME).filter(|v| !v.is_empty()).map(PathBuf::from),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::ffi::OsString;
    use std::os::unix::ffi::OsStringExt;

    fn from(vars: &[(&str, OsString)]) -> Settings {
        let map: HashMap<String, OsString> = vars.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        Settings::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn nothing_set_is_the_default() {
        assert_eq!(from(&[]), Settings::default());
    }

    #[test]
    fn values_are_typed_and_empty_ones_mean_what_they_meant() {
        let s = from(&[
            (SSTATE_DIR, "".into()),
            (BUILD_CACHE_DIR, "/c".into()),
            (MIRRORS, " /m1\n https://m2/ ".into()),
            (PIP_INDEX_URL, "".into()),
            (FAULT, "".into()),
            (SANDBOX_PROC, "host-ro".into()),
            (NO_COLOR, "1".into()),
        ]);
        // An empty OVM_SSTATE_DIR is kept: it turns the cache off.
        assert_eq!(s.sstate_dir, Some(PathBuf::new()));
        assert_eq!(s.build_cache_dir, Some(PathBuf::from("/c")));
        assert_eq!(s.mirrors, ["/m1", "https://m2/"]);
        assert_eq!((s.pip_index_url, s.fault), (None, None));
        assert_eq!(s.sandbox_proc.as_deref(), Some("host-ro"));
        assert!(s.no_color);
        // no-color.org: set but empty means colour as usual.
        assert!(!from(&[(NO_COLOR, "".into())]).no_color);
    }

    #[test]
    fn a_malformed_checked_value_is_kept_to_be_reported() {
        let bad = OsString::from_vec(b"12\xff".to_vec());
        let s = from(&[(SOURCE_DATE_EPOCH, bad.clone()), (SANDBOX_PROC, bad.clone()), (TERM, bad)]);
        assert_eq!(s.source_date_epoch.as_deref(), Some("12\u{fffd}"));
        assert_eq!(s.sandbox_proc.as_deref(), Some("12\u{fffd}"));
        assert_eq!(s.term, None);
    }
}
