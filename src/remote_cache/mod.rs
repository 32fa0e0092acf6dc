//! A remote shared-state store spoken to with bazel-remote's HTTP cache protocol, which
//! bazel-remote itself, nginx with WebDAV (`dav_methods PUT`) and HTTP gateways to object stores
//! all serve:
//!
//! | request | what it is |
//! |---|---|
//! | `GET`/`HEAD /cas/<sha256>` | a content blob, named by its sha256 |
//! | `PUT /cas/<sha256>` | stores one (blobs are uploaded before the entry naming them) |
//! | `GET /ac/<64 hex>` | an action-cache entry: a REAPI `ActionResult` ([`reapi`]) under a key |
//! | `PUT /ac/<64 hex>` | stores one, last |
//!
//! This module moves bytes and checks that content is what it is called: a blob is accepted only
//! with the size and sha256 its digest names (read at most that many bytes, hashed while written to
//! a temporary file that gets its name only when both match). A server is not trusted for
//! content — nginx stores whatever is PUT — so a wrong byte is a [`RemoteError`], never a file.
//! What the blobs mean (ovm's archive and manifest of a package output) is `engine::sstate`'s.
//!
//! Credentials never come from the project: `OVM_CACHE_AUTH` (`user:password`) or the netrc file
//! (`NETRC`, else `~/.netrc`) entry of the server's host; a URL with a password in it is refused
//! ([`RemoteError::CredentialsInUrl`]). They are sent as HTTP Basic auth on every request.

pub mod reapi;

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::StatusCode;
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
    Status { url: String, status: StatusCode },
    #[error("{url}: the server refused ({status}): no permission")]
    Denied { url: String, status: StatusCode },
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

/// One remote store (a base URL).
#[derive(Debug)]
pub struct RemoteCache {
    base: String,
    client: Client,
    auth: Option<(String, String)>,
    timeout: Duration,
}

impl RemoteCache {
    /// The store at `url` (`http://host:port/prefix`), with the credentials `settings` hold for
    /// its host.
    pub fn new(url: &str, options: &RemoteOptions, settings: &Settings) -> Result<RemoteCache, RemoteError> {
        let parsed = reqwest::Url::parse(url)
            .map_err(|e| RemoteError::BadUrl { url: url.to_string(), reason: e.to_string() })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(RemoteError::BadUrl { url: url.to_string(), reason: format!("scheme {}", parsed.scheme()) });
        }
        if parsed.password().is_some() || !parsed.username().is_empty() {
            return Err(RemoteError::CredentialsInUrl { url: redact(&parsed) });
        }
        let auth = match &settings.cache_auth {
            Some(a) => {
                Some(a.split_once(':').map(|(u, p)| (u.to_string(), p.to_string())).ok_or(RemoteError::BadAuth)?)
            }
            None => parsed.host_str().and_then(|h| netrc_entry(settings, h)),
        };
        let client = Client::builder()
            .user_agent(concat!("ovm/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(options.timeout)
            // reqwest's blocking client bounds the wait for the headers and then each read of the
            // body by this, not the whole transfer: a large blob on a slow line is not cut off.
            .timeout(options.timeout)
            .build()
            .map_err(RemoteError::Client)?;
        Ok(RemoteCache { base: url.trim_end_matches('/').to_string(), client, auth, timeout: options.timeout })
    }

    /// The base URL, for messages.
    pub fn url(&self) -> &str {
        &self.base
    }

    fn url_of(&self, kind: &str, key: &str) -> String {
        format!("{}/{kind}/{key}", self.base)
    }

    fn send(&self, req: RequestBuilder, url: &str) -> Result<Response, RemoteError> {
        let req = match &self.auth {
            Some((u, p)) => req.basic_auth(u, Some(p)),
            None => req,
        };
        req.send().map_err(|e| self.transport(url, &e))
    }

    fn transport(&self, url: &str, e: &reqwest::Error) -> RemoteError {
        if e.is_timeout() {
            RemoteError::Timeout { url: url.to_string(), timeout: self.timeout }
        } else {
            RemoteError::Unreachable { url: url.to_string(), reason: chain(e) }
        }
    }

    fn status_error(url: &str, status: StatusCode) -> RemoteError {
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            RemoteError::Denied { url: url.to_string(), status }
        } else {
            RemoteError::Status { url: url.to_string(), status }
        }
    }

    /// The action-cache entry under `key`, `None` when the store has none (404).
    pub fn get_action(&self, key: &str) -> Result<Option<ActionResult>, RemoteError> {
        let url = self.url_of("ac", key);
        let resp = self.send(self.client.get(&url), &url)?;
        match resp.status() {
            StatusCode::NOT_FOUND => return Ok(None),
            s if !s.is_success() => return Err(Self::status_error(&url, s)),
            _ => {}
        }
        // An entry is a few hundred bytes; a megabyte is not one.
        let mut body = Vec::new();
        resp.take(1 << 20)
            .read_to_end(&mut body)
            .map_err(|e| RemoteError::Body { url: url.clone(), reason: e.to_string() })?;
        ActionResult::decode(&body).map(Some).map_err(|source| RemoteError::BadEntry { url, source })
    }

    /// Whether an action-cache entry exists under `key`.
    pub fn has_action(&self, key: &str) -> Result<bool, RemoteError> {
        self.exists(&self.url_of("ac", key))
    }

    /// Whether the store holds the blob `digest`.
    pub fn has_blob(&self, digest: &Digest) -> Result<bool, RemoteError> {
        self.exists(&self.url_of("cas", &digest.hash))
    }

    fn exists(&self, url: &str) -> Result<bool, RemoteError> {
        let resp = self.send(self.client.head(url), url)?;
        match resp.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            s => Err(Self::status_error(url, s)),
        }
    }

    /// Downloads the blob `digest` to `dest`, which exists afterwards only if the content has the
    /// digest's size and sha256 (written to a temporary name beside it, renamed when verified).
    /// Returns `false`, writing nothing, when the store has no such blob.
    pub fn get_blob(&self, digest: &Digest, dest: &Path) -> Result<bool, RemoteError> {
        let url = self.url_of("cas", &digest.hash);
        let resp = self.send(self.client.get(&url), &url)?;
        match resp.status() {
            StatusCode::NOT_FOUND => return Ok(false),
            s if !s.is_success() => return Err(Self::status_error(&url, s)),
            _ => {}
        }
        if let Some(n) = resp.content_length().filter(|&n| n != digest.size_bytes) {
            return Err(RemoteError::WrongSize { url, want: digest.size_bytes, got: n });
        }
        let dir = dest.parent().unwrap_or(Path::new("."));
        let io = |source| RemoteError::Io { path: dest.to_path_buf(), source };
        let mut tmp = tempfile::Builder::new().prefix(".blob-").tempfile_in(dir).map_err(io)?;
        // One byte more than announced tells a too-long body from a right one.
        let mut body = resp.take(digest.size_bytes.saturating_add(1));
        let mut hasher = Sha256::new();
        let mut got = 0u64;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = match body.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                    return Err(RemoteError::Timeout { url, timeout: self.timeout })
                }
                Err(e) => return Err(RemoteError::Body { url, reason: e.to_string() }),
            };
            hasher.update(&buf[..n]);
            tmp.write_all(&buf[..n]).map_err(io)?;
            got += n as u64;
        }
        if got != digest.size_bytes {
            return Err(RemoteError::WrongSize { url, want: digest.size_bytes, got });
        }
        let hash = crate::digest::hex(&hasher.finalize());
        if hash != digest.hash {
            return Err(RemoteError::WrongHash { url, want: digest.hash.clone(), got: hash });
        }
        tmp.persist(dest).map_err(|e| io(e.error))?;
        Ok(true)
    }

    /// Uploads `path` as the blob `digest` unless the store already has it; `true` when sent.
    pub fn put_blob(&self, digest: &Digest, path: &Path) -> Result<bool, RemoteError> {
        if self.has_blob(digest)? {
            return Ok(false);
        }
        let url = self.url_of("cas", &digest.hash);
        let file = File::open(path).map_err(|source| RemoteError::Io { path: path.to_path_buf(), source })?;
        let body = reqwest::blocking::Body::sized(file, digest.size_bytes);
        self.put(&url, self.client.put(&url).body(body)).map(|()| true)
    }

    /// Stores the action-cache entry `result` under `key`: call it after every blob it names is up.
    pub fn put_action(&self, key: &str, result: &ActionResult) -> Result<(), RemoteError> {
        let url = self.url_of("ac", key);
        self.put(&url, self.client.put(&url).body(result.encode()))
    }

    fn put(&self, url: &str, req: RequestBuilder) -> Result<(), RemoteError> {
        let resp = self.send(req, url)?;
        match resp.status() {
            s if s.is_success() => Ok(()),
            s => Err(Self::status_error(url, s)),
        }
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

/// The error and its causes on one line ("error sending request: … : Connection refused").
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
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
