//! The PyPI fallback: find a release file's URL through the package index's "simple" API.
//!
//! # Why not `pip download`
//! `pip download --no-deps NAME==VERSION` picks a file for the *host's* Python and platform, needs
//! Python and pip installed, and cannot be told "exactly this file name". The simple API (PEP 503
//! HTML, PEP 691 JSON) is what pip itself reads: one request lists every file of a project with its
//! URL and sha256. ovm asks for JSON and accepts HTML, because index proxies (devpi, Artifactory,
//! the one on this very machine) often serve only HTML. The index is `fetch.pypi_index` in the
//! project config, else `PIP_INDEX_URL` (so an existing pip setup is honoured), else
//! `https://pypi.org/simple/`. The file itself is then downloaded like any URL (resume, retries).

use reqwest::blocking::Client;
use reqwest::header::{ACCEPT, CONTENT_TYPE};

use crate::recipe::PypiSource;

pub const DEFAULT_INDEX: &str = "https://pypi.org/simple/";

/// A release file as the index lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct IndexFile {
    pub filename: String,
    pub url: reqwest::Url,
    pub sha256: Option<String>,
}

/// PEP 503 name normalisation: lower case, runs of `-`, `_`, `.` become one `-`.
fn normalize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut sep = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            sep = true;
        } else {
            if sep && !out.is_empty() {
                out.push('-');
            }
            sep = false;
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

/// Looks `source.file` up in the index; the returned URL is then downloaded by the caller.
pub(super) fn locate(client: &Client, index: &str, source: &PypiSource) -> Result<IndexFile, String> {
    let mut base = reqwest::Url::parse(index).map_err(|e| format!("bad PyPI index URL `{index}`: {e}"))?;
    if !base.path().ends_with('/') {
        let p = format!("{}/", base.path());
        base.set_path(&p);
    }
    let page = base
        .join(&format!("{}/", normalize(&source.package)))
        .map_err(|e| format!("bad PyPI index URL `{index}`: {e}"))?;
    let response = client
        .get(page.clone())
        .header(
            ACCEPT,
            "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.1",
        )
        .send()
        .map_err(|e| format!("{page}: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("{page}: HTTP {}", response.status()));
    }
    let json = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/vnd.pypi.simple.v1+json"));
    let body = response.text().map_err(|e| format!("{page}: {e}"))?;
    let files = if json { parse_json(&body, &page)? } else { parse_html(&body, &page) };
    files.into_iter().find(|f| f.filename == source.file).ok_or_else(|| {
        format!("{page} lists no file {} (version {} of {})", source.file, source.version, source.package)
    })
}

fn parse_json(body: &str, page: &reqwest::Url) -> Result<Vec<IndexFile>, String> {
    #[derive(serde::Deserialize)]
    struct Project {
        files: Vec<File>,
    }
    #[derive(serde::Deserialize)]
    struct File {
        filename: String,
        url: String,
        #[serde(default)]
        hashes: std::collections::BTreeMap<String, String>,
    }
    let project: Project = serde_json::from_str(body).map_err(|e| format!("{page}: unreadable index JSON: {e}"))?;
    Ok(project
        .files
        .into_iter()
        .filter_map(|f| {
            let url = page.join(&f.url).ok()?;
            Some(IndexFile {
                filename: f.filename,
                url,
                sha256: f.hashes.get("sha256").map(|h| h.to_ascii_lowercase()),
            })
        })
        .collect())
}

/// Anchors of a PEP 503 page: `<a href="URL#sha256=HEX" …>FILENAME</a>`.
fn parse_html(body: &str, page: &reqwest::Url) -> Vec<IndexFile> {
    // ASCII lower-casing keeps byte offsets, so positions found in `lower` index `body` too.
    let lower = body.to_ascii_lowercase();
    let mut files = Vec::new();
    let mut pos = 0;
    while let Some(found) = lower[pos..].find("<a ") {
        let attrs_start = pos + found + 3;
        let Some(tag_end) = lower[attrs_start..].find('>').map(|i| attrs_start + i) else { break };
        let Some(close) = lower[tag_end..].find("</a>").map(|i| tag_end + i) else { break };
        pos = close + 4;
        let filename = unescape(body[tag_end + 1..close].trim());
        let Some(href) = attribute(&body[attrs_start..tag_end], "href") else { continue };
        let Ok(mut url) = page.join(&unescape(&href)) else { continue };
        let sha256 = url.fragment().and_then(|f| f.strip_prefix("sha256=")).map(|h| h.to_ascii_lowercase());
        url.set_fragment(None);
        files.push(IndexFile { filename, url, sha256 });
    }
    files
}

fn attribute(attrs: &str, name: &str) -> Option<String> {
    let lower = attrs.to_ascii_lowercase();
    let mut from = 0;
    while let Some(pos) = lower[from..].find(name) {
        let at = from + pos;
        from = at + name.len();
        let before_ok = at == 0 || lower.as_bytes()[at - 1].is_ascii_whitespace();
        let rest = attrs[from..].trim_start();
        if !before_ok || !rest.starts_with('=') {
            continue;
        }
        let value = rest[1..].trim_start();
        let quote = value.chars().next()?;
        return if quote == '"' || quote == '\'' {
            value[1..].split(quote).next().map(str::to_string)
        } else {
            value.split_whitespace().next().map(str::to_string)
        };
    }
    None
}

fn unescape(s: &str) -> String {
    s.replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&#39;", "'")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_normalised() {
        assert_eq!(normalize("ziglang"), "ziglang");
        assert_eq!(normalize("Foo.Bar__baz"), "foo-bar-baz");
    }

    #[test]
    fn html_index_pages_are_read() {
        let page = reqwest::Url::parse("https://pypi.org/simple/ziglang/").unwrap();
        let body = r#"<html><body><h1>Links</h1>
<a href="https://files.example/p/ziglang-0.14.1-py3-none-any.whl#sha256=ABCD" data-requires-python="~=3.5">ziglang-0.14.1-py3-none-any.whl</a><br/>
<A HREF='../../packages/z/ziglang-0.14.1.tar.gz?a=1&amp;b=2'>ziglang-0.14.1.tar.gz</A>
</body></html>"#;
        let files = parse_html(body, &page);
        assert_eq!(files.len(), 2);
        assert_eq!(files[0].filename, "ziglang-0.14.1-py3-none-any.whl");
        assert_eq!(files[0].url.as_str(), "https://files.example/p/ziglang-0.14.1-py3-none-any.whl");
        assert_eq!(files[0].sha256.as_deref(), Some("abcd"));
        assert_eq!(files[1].url.as_str(), "https://pypi.org/packages/z/ziglang-0.14.1.tar.gz?a=1&b=2");
        assert_eq!(files[1].sha256, None);
    }

    #[test]
    fn json_index_pages_are_read() {
        let page = reqwest::Url::parse("https://pypi.org/simple/ziglang/").unwrap();
        let body = r#"{"meta":{"api-version":"1.0"},"name":"ziglang","files":[
            {"filename":"ziglang-0.14.1.tar.gz","url":"https://files.example/z.tar.gz","hashes":{"sha256":"EF01"}}]}"#;
        let files = parse_json(body, &page).unwrap();
        assert_eq!(files[0].sha256.as_deref(), Some("ef01"));
        assert_eq!(files[0].url.as_str(), "https://files.example/z.tar.gz");
    }
}
