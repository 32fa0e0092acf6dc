//! One URL → `sources/FILE.part`, resuming what an earlier attempt left there (`wget -c`).
//!
//! A `.part` with n bytes is continued with `Range: bytes=n-`. The server decides: `206` with a
//! `Content-Range` starting at n appends; `200` (it ignores ranges) starts the file again from
//! zero; `416` or a range starting elsewhere discards the `.part` and retries at once. Transient
//! failures — timeouts, a connection dropped mid-body, 5xx, 408, 429 — are retried with
//! exponential backoff, each retry resuming from what arrived; a 4xx, an unknown host or a refused
//! connection are final for this URL (the caller moves on to the next place). The `.part` is never
//! renamed here: the caller verifies its sha256 first.
//!
//! A response larger than the size cap (`[fetch] max_size`) is refused — up front when its
//! `Content-Length` says so, else as soon as the body crosses the cap — and its `.part` removed: a
//! broken or hostile server streaming without end must not fill the disk. That failure is final.

use std::error::Error as _;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::Path;
use std::time::Duration;

use reqwest::blocking::Client;
use reqwest::header::{CONTENT_RANGE, RANGE};
use reqwest::StatusCode;

use super::progress::Progress;
use crate::error_text::chain;

/// How often and how patiently a URL is retried, and how large its body may be.
#[derive(Debug, Clone)]
pub(super) struct HttpPolicy {
    /// Retries after the first attempt.
    pub retries: u32,
    /// Delay before the first retry; doubled for each further one.
    pub backoff: Duration,
    /// The largest file accepted, in bytes.
    pub max_size: u64,
}

#[derive(Debug)]
enum Failure {
    Status(StatusCode),
    Transport {
        message: String,
        transient: bool,
        /// No answer at all: the name did not resolve, the connection was refused or timed out
        /// (what an offline machine gets from every place).
        unreachable: bool,
    },
    /// The server cannot continue our `.part`; it was discarded and the next try starts at zero.
    Restart(String),
    Io {
        what: String,
        source: io::Error,
    },
    /// The file would be larger than the cap; the `.part` was removed.
    TooLarge {
        max_size: u64,
        announced: Option<u64>,
    },
}

impl Failure {
    fn transient(&self) -> bool {
        match self {
            Failure::Status(s) => {
                s.is_server_error() || *s == StatusCode::REQUEST_TIMEOUT || *s == StatusCode::TOO_MANY_REQUESTS
            }
            Failure::Transport { transient, .. } => *transient,
            Failure::Restart(_) => true,
            Failure::Io { .. } | Failure::TooLarge { .. } => false,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Status(s) => write!(f, "HTTP {s}"),
            Failure::Transport { message, .. } => f.write_str(message),
            Failure::Restart(why) => write!(f, "{why}; restarting from zero"),
            Failure::Io { what, source } => write!(f, "{what}: {source}"),
            Failure::TooLarge { max_size, announced: Some(len) } => write!(
                f,
                "the server announces {len} bytes, more than the size limit of {max_size} bytes \
                 ([fetch] max_size); not downloaded"
            ),
            Failure::TooLarge { max_size, announced: None } => write!(
                f,
                "the response grew past the size limit of {max_size} bytes ([fetch] max_size); \
                 stopped and discarded"
            ),
        }
    }
}

fn classify(e: reqwest::Error) -> Failure {
    // The URL is already in the list of places tried; repeating it buries the cause.
    let e = e.without_url();
    let message = chain(&e);
    // An unknown host or a refused connection will not fix itself within seconds; waiting for it
    // only delays the next mirror or the package-archive fallback.
    let refused = {
        let mut cur = e.source();
        let mut found = false;
        while let Some(s) = cur {
            if let Some(io) = s.downcast_ref::<io::Error>() {
                found |= io.kind() == io::ErrorKind::ConnectionRefused;
            }
            cur = s.source();
        }
        found
    };
    let dns = message.contains("dns error") || message.contains("failed to lookup address");
    let transient = !(e.is_connect() && (refused || dns)) && !e.is_builder() && !e.is_redirect();
    let unreachable = e.is_connect() || e.is_timeout() || dns;
    Failure::Transport { message, transient, unreachable }
}

fn io_failure(what: &str, part: &Path, source: io::Error) -> Failure {
    Failure::Io { what: format!("{what} {}", part.display()), source }
}

/// The first byte of a `Content-Range: bytes FIRST-LAST/TOTAL` header.
fn content_range_start(headers: &reqwest::header::HeaderMap) -> Option<u64> {
    let value = headers.get(CONTENT_RANGE)?.to_str().ok()?;
    let rest = value.trim().strip_prefix("bytes")?.trim_start();
    rest.split('-').next()?.trim().parse().ok()
}

/// Why a URL gave nothing: the text the user sees for it in the list of places tried, and whether
/// the place never answered (see [`super::AttemptKind::Unreachable`]).
#[derive(Debug)]
pub(super) struct HttpError {
    pub message: String,
    pub unreachable: bool,
}

/// Downloads `url` into `part` (resuming it), retrying transient failures. `package` only names
/// the fault point.
pub(super) fn download(
    client: &Client,
    url: &reqwest::Url,
    part: &Path,
    file: &str,
    policy: &HttpPolicy,
    progress: &Progress,
    package: &str,
) -> Result<(), HttpError> {
    let mut retry = 0;
    loop {
        match once(client, url, part, file, policy.max_size, progress, package) {
            Ok(()) => return Ok(()),
            Err(e) if e.transient() && retry < policy.retries => {
                retry += 1;
                let delay = match e {
                    Failure::Restart(_) => Duration::ZERO,
                    _ => policy.backoff.saturating_mul(1 << (retry - 1).min(16)),
                };
                progress.note(&format!("{file}: {e} from {url}; retry {retry}/{} in {delay:.1?}", policy.retries));
                std::thread::sleep(delay);
            }
            Err(e) => {
                let unreachable = matches!(e, Failure::Transport { unreachable: true, .. });
                let message =
                    if retry > 0 { format!("{e} (gave up after {} attempts)", retry + 1) } else { e.to_string() };
                return Err(HttpError { message, unreachable });
            }
        }
    }
}

fn once(
    client: &Client,
    url: &reqwest::Url,
    part: &Path,
    file: &str,
    max_size: u64,
    progress: &Progress,
    package: &str,
) -> Result<(), Failure> {
    let have = match fs::metadata(part) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
        Err(e) => return Err(io_failure("cannot inspect", part, e)),
    };
    let mut request = client.get(url.clone());
    if have > 0 {
        request = request.header(RANGE, format!("bytes={have}-"));
    }
    let mut response = request.send().map_err(classify)?;
    let status = response.status();
    if let Some(len) = response.content_length() {
        let whole = if status == StatusCode::PARTIAL_CONTENT { len.saturating_add(have) } else { len };
        if whole > max_size {
            truncate(part)?;
            return Err(Failure::TooLarge { max_size, announced: Some(whole) });
        }
    }
    let (mut out, offset) = match status {
        StatusCode::PARTIAL_CONTENT if have > 0 => {
            if content_range_start(response.headers()) != Some(have) {
                truncate(part)?;
                return Err(Failure::Restart(format!("server answered a resume at byte {have} with another range")));
            }
            let f = OpenOptions::new().append(true).open(part).map_err(|e| io_failure("cannot open", part, e))?;
            // An interrupted download (Ctrl-C, a lost connection) continues: say so, or a rerun
            // looks like it silently started over or skipped work.
            progress.note(&format!("resuming {file} at {} (already downloaded)", indicatif::HumanBytes(have)));
            (f, have)
        }
        StatusCode::OK => {
            if have > 0 {
                progress.note(&format!(
                    "{file}: the server cannot resume at {}: downloading it again from the start",
                    indicatif::HumanBytes(have)
                ));
            }
            (File::create(part).map_err(|e| io_failure("cannot create", part, e))?, 0)
        }
        StatusCode::RANGE_NOT_SATISFIABLE if have > 0 => {
            truncate(part)?;
            return Err(Failure::Restart(format!("server cannot resume at byte {have}")));
        }
        s => return Err(Failure::Status(s)),
    };
    let total = response.content_length().map(|len| len + offset);
    let mut transfer = progress.start(file, url.as_str(), offset, total);
    let mut buf = vec![0u8; 256 * 1024];
    let mut received = offset;
    loop {
        let n = match response.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                transfer.finish(false);
                // Keep what arrived: the next attempt resumes after it.
                let _ = out.sync_all();
                return Err(Failure::Transport {
                    message: format!("connection lost after {received} bytes: {}", chain(&e)),
                    transient: true,
                    unreachable: false,
                });
            }
        };
        if received.saturating_add(n as u64) > max_size {
            transfer.finish(false);
            drop(out);
            truncate(part)?;
            return Err(Failure::TooLarge { max_size, announced: None });
        }
        if let Err(e) = out.write_all(&buf[..n]) {
            transfer.finish(false);
            return Err(io_failure("cannot write", part, e));
        }
        if received == offset {
            crate::fault::point("fetch.partial", package);
        }
        received += n as u64;
        transfer.advance(n as u64);
    }
    if let Some(total) = total {
        if received < total {
            transfer.finish(false);
            let _ = out.sync_all();
            return Err(Failure::Transport {
                message: format!("connection closed after {received} of {total} bytes"),
                transient: true,
                unreachable: false,
            });
        }
    }
    out.sync_all().map_err(|e| io_failure("cannot flush", part, e))?;
    transfer.finish(true);
    Ok(())
}

fn truncate(part: &Path) -> Result<(), Failure> {
    match fs::remove_file(part) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_failure("cannot remove", part, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue};

    #[test]
    fn content_range_start_is_parsed() {
        let mut h = HeaderMap::new();
        h.insert(CONTENT_RANGE, HeaderValue::from_static("bytes 100-199/200"));
        assert_eq!(content_range_start(&h), Some(100));
        h.insert(CONTENT_RANGE, HeaderValue::from_static("bytes */200"));
        assert_eq!(content_range_start(&h), None);
    }

    #[test]
    fn which_statuses_are_retried() {
        assert!(Failure::Status(StatusCode::SERVICE_UNAVAILABLE).transient());
        assert!(Failure::Status(StatusCode::TOO_MANY_REQUESTS).transient());
        assert!(!Failure::Status(StatusCode::NOT_FOUND).transient());
        assert!(!Failure::Status(StatusCode::FORBIDDEN).transient());
        assert!(!Failure::TooLarge { max_size: 1, announced: None }.transient());
    }
}
