//! bazel-remote's HTTP cache protocol (`/ac/<hash>`, `/cas/<sha256>`) over reqwest's blocking
//! client: what bazel-remote, nginx with WebDAV and HTTP gateways to object stores serve.

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::time::Duration;

use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::StatusCode;

use crate::error_text::chain;

use super::{ActionResult, BlobSink, Digest, RemoteError, RemoteOptions};

#[derive(Debug)]
pub(super) struct HttpStore {
    base: String,
    client: Client,
    auth: Option<(String, String)>,
    timeout: Duration,
}

impl HttpStore {
    pub fn new(url: &str, options: &RemoteOptions, auth: Option<(String, String)>) -> Result<HttpStore, RemoteError> {
        let client = Client::builder()
            .user_agent(concat!("ovm/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(options.timeout)
            // reqwest's blocking client bounds the wait for the headers and then each read of the
            // body by this, not the whole transfer: a large blob on a slow line is not cut off.
            .timeout(options.timeout)
            .build()
            .map_err(RemoteError::Client)?;
        Ok(HttpStore { base: url.trim_end_matches('/').to_string(), client, auth, timeout: options.timeout })
    }

    fn url_of(&self, kind: &str, key: &str) -> String {
        format!("{}/{kind}/{key}", self.base)
    }

    fn send(&self, req: RequestBuilder, url: &str) -> Result<Response, RemoteError> {
        let req = match &self.auth {
            Some((u, p)) => req.basic_auth(u, Some(p)),
            None => req,
        };
        req.send().map_err(|e| {
            if e.is_timeout() {
                RemoteError::Timeout { url: url.to_string(), timeout: self.timeout }
            } else {
                RemoteError::Unreachable { url: url.to_string(), reason: chain(&e) }
            }
        })
    }

    fn status_error(url: &str, status: StatusCode) -> RemoteError {
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            RemoteError::Denied { url: url.to_string(), why: status.to_string() }
        } else {
            RemoteError::Status { url: url.to_string(), status: status.to_string() }
        }
    }

    pub fn get_action(&self, key: &Digest) -> Result<Option<ActionResult>, RemoteError> {
        let url = self.url_of("ac", &key.hash);
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

    pub fn has_action(&self, key: &Digest) -> Result<bool, RemoteError> {
        self.exists(&self.url_of("ac", &key.hash))
    }

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
        let mut sink = BlobSink::new(&url, digest, dest)?;
        // One byte more than announced tells a too-long body from a right one.
        let mut body = resp.take(digest.size_bytes.saturating_add(1));
        let mut buf = vec![0u8; 1 << 16];
        loop {
            match body.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => sink.write(&buf[..n])?,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                    return Err(RemoteError::Timeout { url: url.clone(), timeout: self.timeout })
                }
                Err(e) => return Err(RemoteError::Body { url: url.clone(), reason: e.to_string() }),
            }
        }
        sink.finish()?;
        Ok(true)
    }

    pub fn put_blob(&self, digest: &Digest, path: &Path) -> Result<(), RemoteError> {
        let url = self.url_of("cas", &digest.hash);
        let file = File::open(path).map_err(|source| RemoteError::Io { path: path.to_path_buf(), source })?;
        let body = reqwest::blocking::Body::sized(file, digest.size_bytes);
        self.put(&url, self.client.put(&url).body(body))
    }

    pub fn put_action(&self, key: &Digest, result: &ActionResult) -> Result<(), RemoteError> {
        let url = self.url_of("ac", &key.hash);
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
