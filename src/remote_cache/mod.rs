//! A remote shared-state store, in one of two protocols with the same model — an action cache
//! mapping a key to a REAPI `ActionResult` that names content blobs by sha256:
//!
//! | URL | protocol | served by |
//! |---|---|---|
//! | `http(s)://host/prefix` | bazel-remote's HTTP cache: `GET`/`HEAD`/`PUT /ac/<key>` and `/cas/<sha256>` (`http.rs`) | bazel-remote, nginx WebDAV, HTTP gateways to object stores |
//! | `grpc://host:port/instance` | REAPI over gRPC: ActionCache, ContentAddressableStorage, ByteStream (`grpc.rs`, cargo feature `reapi`) | BuildGrid, bazel-remote, Buildbarn, NativeLink |
//!
//! Blobs are uploaded before the entry naming them. The entry ([`reapi`]) is a real
//! `ActionResult`, so servers that check entries accept it.
//!
//! This module moves bytes and checks that content is what it is called: a blob is accepted only
//! with the size and sha256 its digest names (read at most that many bytes, hashed while written to
//! a temporary file that gets its name only when both match). A server is not trusted for
//! content — nginx stores whatever is PUT — so a wrong byte is a [`RemoteError`], never a file.
//! What the blobs mean (ovm's archive and manifest of a package output) is `engine::sstate`'s.
//!
//! Credentials never come from the project: `OVM_CACHE_AUTH` (`user:password`) or the netrc file
//! (`NETRC`, else `~/.netrc`) entry of the server's host; a URL with a password in it is refused
//! ([`RemoteError::CredentialsInUrl`]). They are sent as HTTP Basic auth on every request (as an
//! `authorization` header in gRPC metadata).

#[cfg(feature = "reapi")]
mod grpc;
mod http;
pub mod reapi;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest as _, Sha256};

use crate::settings::Settings;

pub use reapi::{ActionResult, Digest, OutputFile};

/// Why a request to the remote store did not give what was asked. Each is a cache miss for the
/// caller (a local build follows), and some say more about the server (see [`RemoteError::is_down`]
/// and [`RemoteError::is_denied`]).
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("{url}: not an http(s) URL ({reason})")]
    BadUrl { url: String, reason: String },
    #[error("{url}: credentials in a cache URL are refused (the config is part of the project); set OVM_CACHE_AUTH=user:password or a netrc entry for the host")]
    CredentialsInUrl { url: String },
    #[error("OVM_CACHE_AUTH is not `user:password`")]
    BadAuth,
    #[error("cannot make an HTTP client: {0}")]
    Client(reqwest::Error),
    #[error("{url}: no answer ({reason})")]
    Unreachable { url: String, reason: String },
    #[error("{url}: no answer within {}s", timeout.as_secs())]
    Timeout { url: String, timeout: Duration },
    #[error("{url}: the server answered {status}")]
    Status { url: String, status: String },
    #[error("{url}: the server refused ({why}): no permission")]
    Denied { url: String, why: String },
    #[error("{url}: body of {got} bytes where the digest says {want}")]
    WrongSize { url: String, want: u64, got: u64 },
    #[error("{url}: content hashes to sha256 {got}, not {want}: the stored blob is corrupt")]
    WrongHash { url: String, want: String, got: String },
    #[error("{url}: {source}")]
    BadEntry { url: String, source: reapi::DecodeError },
    #[error("{url}: reading the body: {reason}")]
    Body { url: String, reason: String },
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
}

impl RemoteError {
    /// The server did not answer at all (refused, unresolvable, timed out): asking it again in
    /// this run would only wait again.
    pub fn is_down(&self) -> bool {
        matches!(self, RemoteError::Unreachable { .. } | RemoteError::Timeout { .. })
    }

    /// The server refused the credentials (401, 403).
    pub fn is_denied(&self) -> bool {
        matches!(self, RemoteError::Denied { .. })
    }
}

/// How a remote store is reached.
#[derive(Debug, Clone)]
pub struct RemoteOptions {
    /// Seconds to wait for a connection, for the response's headers and for each read.
    pub timeout: Duration,
}

/// One remote store: a base URL and the protocol it speaks.
#[derive(Debug)]
pub struct RemoteCache {
    url: String,
    backend: Backend,
}

#[derive(Debug)]
enum Backend {
    Http(http::HttpStore),
    #[cfg(feature = "reapi")]
    Grpc(grpc::GrpcStore),
}

impl RemoteCache {
    /// The store at `url` — `http(s)://host:port/prefix` (bazel-remote's HTTP protocol) or
    /// `grpc://host:port/instance` (REAPI) — with the credentials `settings` hold for its host.
    pub fn new(url: &str, options: &RemoteOptions, settings: &Settings) -> Result<RemoteCache, RemoteError> {
        let parsed = reqwest::Url::parse(url)
            .map_err(|e| RemoteError::BadUrl { url: url.to_string(), reason: e.to_string() })?;
        if parsed.password().is_some() || !parsed.username().is_empty() {
            return Err(RemoteError::CredentialsInUrl { url: redact(&parsed) });
        }
        let auth = match &settings.cache_auth {
            Some(a) => {
                Some(a.split_once(':').map(|(u, p)| (u.to_string(), p.to_string())).ok_or(RemoteError::BadAuth)?)
            }
            None => parsed.host_str().and_then(|h| netrc_entry(settings, h)),
        };
        let backend = match parsed.scheme() {
            "http" | "https" => Backend::Http(http::HttpStore::new(url, options, auth)?),
            #[cfg(feature = "reapi")]
            "grpc" => Backend::Grpc(grpc::GrpcStore::new(&parsed, options, auth)?),
            #[cfg(not(feature = "reapi"))]
            "grpc" => {
                return Err(RemoteError::BadUrl {
                    url: url.to_string(),
                    reason: "this ovm was built without the `reapi` feature".into(),
                })
            }
            other => {
                return Err(RemoteError::BadUrl {
                    url: url.to_string(),
                    reason: format!("scheme {other}: http, https or grpc (grpcs is not supported)"),
                })
            }
        };
        Ok(RemoteCache { url: url.trim_end_matches('/').to_string(), backend })
    }

    /// The base URL, for messages.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The action-cache entry under `key`, `None` when the store has none.
    pub fn get_action(&self, key: &Digest) -> Result<Option<ActionResult>, RemoteError> {
        match &self.backend {
            Backend::Http(h) => h.get_action(key),
            #[cfg(feature = "reapi")]
            Backend::Grpc(g) => g.get_action(key),
        }
    }

    /// Whether an action-cache entry exists under `key`.
    pub fn has_action(&self, key: &Digest) -> Result<bool, RemoteError> {
        match &self.backend {
            Backend::Http(h) => h.has_action(key),
            #[cfg(feature = "reapi")]
            Backend::Grpc(g) => g.get_action(key).map(|a| a.is_some()),
        }
    }

    /// Whether the store holds the blob `digest`.
    pub fn has_blob(&self, digest: &Digest) -> Result<bool, RemoteError> {
        match &self.backend {
            Backend::Http(h) => h.has_blob(digest),
            #[cfg(feature = "reapi")]
            Backend::Grpc(g) => g.has_blob(digest),
        }
    }

    /// Downloads the blob `digest` to `dest`, which exists afterwards only if the content has the
    /// digest's size and sha256 ([`BlobSink`]). Returns `false`, writing nothing, when the store
    /// has no such blob.
    pub fn get_blob(&self, digest: &Digest, dest: &Path) -> Result<bool, RemoteError> {
        match &self.backend {
            Backend::Http(h) => h.get_blob(digest, dest),
            #[cfg(feature = "reapi")]
            Backend::Grpc(g) => g.get_blob(digest, dest),
        }
    }

    /// Uploads `path` as the blob `digest` unless the store already has it; `true` when sent.
    pub fn put_blob(&self, digest: &Digest, path: &Path) -> Result<bool, RemoteError> {
        if self.has_blob(digest)? {
            return Ok(false);
        }
        match &self.backend {
            Backend::Http(h) => h.put_blob(digest, path)?,
            #[cfg(feature = "reapi")]
            Backend::Grpc(g) => g.put_blob(digest, path)?,
        }
        Ok(true)
    }

    /// Stores the action-cache entry `result` under `key`: call it after every blob it names is up.
    pub fn put_action(&self, key: &Digest, result: &ActionResult) -> Result<(), RemoteError> {
        match &self.backend {
            Backend::Http(h) => h.put_action(key, result),
            #[cfg(feature = "reapi")]
            Backend::Grpc(g) => g.put_action(key, result),
        }
    }
}

/// A blob on its way to `dest`: written to a temporary file beside it and hashed as it arrives;
/// [`finish`](Self::finish) gives it its name only if size and sha256 are the digest's. More
/// bytes than the digest's size fail at once (a server streaming without end fills no disk).
pub(crate) struct BlobSink<'a> {
    url: &'a str,
    digest: &'a Digest,
    dest: &'a Path,
    tmp: tempfile::NamedTempFile,
    hasher: Sha256,
    got: u64,
}

impl<'a> BlobSink<'a> {
    pub fn new(url: &'a str, digest: &'a Digest, dest: &'a Path) -> Result<BlobSink<'a>, RemoteError> {
        let dir = dest.parent().unwrap_or(Path::new("."));
        let tmp = tempfile::Builder::new()
            .prefix(".blob-")
            .tempfile_in(dir)
            .map_err(|source| RemoteError::Io { path: dest.to_path_buf(), source })?;
        Ok(BlobSink { url, digest, dest, tmp, hasher: Sha256::new(), got: 0 })
    }

    pub fn write(&mut self, chunk: &[u8]) -> Result<(), RemoteError> {
        self.got += chunk.len() as u64;
        if self.got > self.digest.size_bytes {
            return Err(self.wrong_size());
        }
        self.hasher.update(chunk);
        self.tmp.write_all(chunk).map_err(|source| RemoteError::Io { path: self.dest.to_path_buf(), source })
    }

    fn wrong_size(&self) -> RemoteError {
        RemoteError::WrongSize { url: self.url.to_string(), want: self.digest.size_bytes, got: self.got }
    }

    pub fn finish(self) -> Result<(), RemoteError> {
        if self.got != self.digest.size_bytes {
            return Err(self.wrong_size());
        }
        let hash = crate::digest::hex(&self.hasher.finalize());
        if hash != self.digest.hash {
            return Err(RemoteError::WrongHash {
                url: self.url.to_string(),
                want: self.digest.hash.clone(),
                got: hash,
            });
        }
        self.tmp.persist(self.dest).map_err(|e| RemoteError::Io { path: self.dest.to_path_buf(), source: e.error })?;
        Ok(())
    }
}

/// The digest of a file's content.
pub fn digest_of_file(path: &Path) -> Result<Digest, RemoteError> {
    let io = |source| RemoteError::Io { path: path.to_path_buf(), source };
    let size_bytes = fs::metadata(path).map_err(io)?.len();
    Ok(Digest { hash: crate::digest::sha256_file(path).map_err(io)?, size_bytes })
}

/// The digest of `bytes`.
pub fn digest_of(bytes: &[u8]) -> Digest {
    Digest { hash: crate::digest::hex(&Sha256::digest(bytes)), size_bytes: bytes.len() as u64 }
}

/// A URL without its credentials, for messages.
fn redact(url: &reqwest::Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.to_string()
}

/// The login and password of `host` in the netrc file (`NETRC`, else `$HOME/.netrc`), or of its
/// `default` entry; `None` when there is no file or no entry.
fn netrc_entry(settings: &Settings, host: &str) -> Option<(String, String)> {
    let path = settings.netrc.clone().or_else(|| settings.home.as_ref().map(|h| h.join(".netrc")))?;
    parse_netrc(&fs::read_to_string(path).ok()?, host)
}

/// curl's reading of a netrc: whitespace-separated tokens; `machine NAME` (or `default`) starts an
/// entry, `login` and `password` fill it; `macdef` bodies run to the next blank line.
fn parse_netrc(text: &str, host: &str) -> Option<(String, String)> {
    let mut found = None;
    let mut default = None;
    let mut current: Option<(bool, Option<String>, Option<String>)> = None;
    let mut finish = |e: Option<(bool, Option<String>, Option<String>)>, found: &mut Option<_>| {
        if let Some((is_default, Some(l), Some(p))) = e {
            if is_default {
                default.get_or_insert((l, p));
            } else {
                found.get_or_insert((l, p));
            }
        }
    };
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let mut tokens = line.split_whitespace();
        while let Some(t) = tokens.next() {
            match t {
                "machine" => {
                    finish(current.take(), &mut found);
                    let name = tokens.next().unwrap_or_default();
                    // Another host's entry: its login and password tokens fill nothing.
                    current = (name == host).then_some((false, None, None));
                }
                "default" => {
                    finish(current.take(), &mut found);
                    current = Some((true, None, None));
                }
                "login" => {
                    if let (Some(c), Some(v)) = (current.as_mut(), tokens.next()) {
                        c.1 = Some(v.to_string());
                    }
                }
                "password" => {
                    if let (Some(c), Some(v)) = (current.as_mut(), tokens.next()) {
                        c.2 = Some(v.to_string());
                    }
                }
                "macdef" => {
                    for body in lines.by_ref() {
                        if body.trim().is_empty() {
                            break;
                        }
                    }
                    break;
                }
                _ => {}
            }
        }
    }
    finish(current.take(), &mut found);
    found.or(default)
}

#[cfg(test)]
mod tests;
