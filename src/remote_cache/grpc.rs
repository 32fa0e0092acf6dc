//! REAPI over gRPC (`grpc://host:port/instance`): the ActionCache for entries, the
//! ContentAddressableStorage's FindMissingBlobs for existence, ByteStream for blob contents of any
//! size. tonic is asynchronous; ovm's callers are scheduler threads that block, so each store owns
//! a small tokio runtime and every call is `block_on`. Deadlines: the connection and every unary
//! call get the configured timeout, a stream each message, so a large blob on a slow line is
//! not cut off while a silent server is.

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::time::Duration;

use bazel_remote_apis::build::bazel::remote::execution::v2 as re;
use bazel_remote_apis::google::bytestream as bs;
use re::action_cache_client::ActionCacheClient;
use re::content_addressable_storage_client::ContentAddressableStorageClient;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Status};

use super::{ActionResult, BlobSink, Digest, OutputFile, RemoteError, RemoteOptions};

/// ByteStream write chunks: well under gRPC's default 4 MiB message limit.
const CHUNK: usize = 1 << 20;

#[derive(Debug)]
pub(super) struct GrpcStore {
    url: String,
    instance: String,
    channel: Channel,
    runtime: tokio::runtime::Runtime,
    auth: Option<MetadataValue<tonic::metadata::Ascii>>,
    timeout: Duration,
}

impl GrpcStore {
    pub fn new(
        url: &reqwest::Url,
        options: &RemoteOptions,
        auth: Option<(String, String)>,
    ) -> Result<GrpcStore, RemoteError> {
        let shown = url.to_string();
        let bad = |reason: String| RemoteError::BadUrl { url: shown.clone(), reason };
        let host = url.host_str().ok_or_else(|| bad("no host".into()))?;
        let port = url.port().ok_or_else(|| bad("no port (grpc://host:port/instance)".into()))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("ovm-grpc")
            .enable_all()
            .build()
            .map_err(|source| RemoteError::Io { path: "tokio runtime".into(), source })?;
        let endpoint = Endpoint::from_shared(format!("http://{host}:{port}"))
            .map_err(|e| bad(e.to_string()))?
            .connect_timeout(options.timeout);
        // Lazily: a server that is down is found at the first call, as a miss, like HTTP's.
        let channel = {
            let _in_runtime = runtime.enter();
            endpoint.connect_lazy()
        };
        let auth = match auth {
            Some((u, p)) => Some(basic_auth(&u, &p).parse().map_err(|_| RemoteError::BadAuth)?),
            None => None,
        };
        Ok(GrpcStore {
            url: shown.trim_end_matches('/').to_string(),
            instance: url.path().trim_matches('/').to_string(),
            channel,
            runtime,
            auth,
            timeout: options.timeout,
        })
    }

    fn request<T>(&self, msg: T) -> Request<T> {
        let mut r = Request::new(msg);
        if let Some(a) = &self.auth {
            r.metadata_mut().insert("authorization", a.clone());
        }
        r
    }

    fn error(&self, what: &str, s: &Status) -> RemoteError {
        let url = format!("{}: {what}", self.url);
        match s.code() {
            Code::Unavailable => RemoteError::Unreachable { url, reason: s.message().to_string() },
            Code::DeadlineExceeded => RemoteError::Timeout { url, timeout: self.timeout },
            Code::Unauthenticated | Code::PermissionDenied => {
                RemoteError::Denied { url, why: format!("{:?}: {}", s.code(), s.message()) }
            }
            c => RemoteError::Status { url, status: format!("{c:?}: {}", s.message()) },
        }
    }

    /// Runs `fut` to completion with the unary deadline.
    fn call<T>(
        &self,
        what: &str,
        fut: impl std::future::Future<Output = Result<T, Status>>,
    ) -> Result<Result<T, Status>, RemoteError> {
        self.runtime.block_on(async {
            tokio::time::timeout(self.timeout, fut)
                .await
                .map_err(|_| RemoteError::Timeout { url: format!("{}: {what}", self.url), timeout: self.timeout })
        })
    }

    fn re_digest(d: &Digest) -> re::Digest {
        re::Digest { hash: d.hash.clone(), size_bytes: d.size_bytes as i64 }
    }

    fn resource(&self, tail: &str) -> String {
        if self.instance.is_empty() {
            tail.to_string()
        } else {
            format!("{}/{tail}", self.instance)
        }
    }

    pub fn get_action(&self, key: &Digest) -> Result<Option<ActionResult>, RemoteError> {
        let req = self.request(re::GetActionResultRequest {
            instance_name: self.instance.clone(),
            action_digest: Some(Self::re_digest(key)),
            ..Default::default()
        });
        let mut client = ActionCacheClient::new(self.channel.clone());
        match self.call("GetActionResult", client.get_action_result(req))? {
            Ok(r) => Ok(Some(from_re(r.into_inner()))),
            Err(s) if s.code() == Code::NotFound => Ok(None),
            Err(s) => Err(self.error("GetActionResult", &s)),
        }
    }

    pub fn put_action(&self, key: &Digest, result: &ActionResult) -> Result<(), RemoteError> {
        let req = self.request(re::UpdateActionResultRequest {
            instance_name: self.instance.clone(),
            action_digest: Some(Self::re_digest(key)),
            action_result: Some(to_re(result)),
            ..Default::default()
        });
        let mut client = ActionCacheClient::new(self.channel.clone());
        self.call("UpdateActionResult", client.update_action_result(req))?
            .map(drop)
            .map_err(|s| self.error("UpdateActionResult", &s))
    }

    pub fn has_blob(&self, digest: &Digest) -> Result<bool, RemoteError> {
        let req = self.request(re::FindMissingBlobsRequest {
            instance_name: self.instance.clone(),
            blob_digests: vec![Self::re_digest(digest)],
            ..Default::default()
        });
        let mut client = ContentAddressableStorageClient::new(self.channel.clone());
        let missing = self
            .call("FindMissingBlobs", client.find_missing_blobs(req))?
            .map_err(|s| self.error("FindMissingBlobs", &s))?
            .into_inner()
            .missing_blob_digests;
        Ok(!missing.iter().any(|m| m.hash == digest.hash))
    }

    pub fn get_blob(&self, digest: &Digest, dest: &Path) -> Result<bool, RemoteError> {
        let resource = self.resource(&format!("blobs/{}/{}", digest.hash, digest.size_bytes));
        let url = format!("{}/{resource}", self.url);
        let mut sink = BlobSink::new(&url, digest, dest)?;
        let req = self.request(bs::ReadRequest { resource_name: resource.clone(), read_offset: 0, read_limit: 0 });
        let mut client = bs::byte_stream_client::ByteStreamClient::new(self.channel.clone());
        let found = self.runtime.block_on(async {
            let mut stream = match tokio::time::timeout(self.timeout, client.read(req)).await {
                Err(_) => return Err(RemoteError::Timeout { url: url.clone(), timeout: self.timeout }),
                Ok(Err(s)) if s.code() == Code::NotFound => return Ok(false),
                Ok(Err(s)) => return Err(self.error("ByteStream.Read", &s)),
                Ok(Ok(r)) => r.into_inner(),
            };
            loop {
                match tokio::time::timeout(self.timeout, stream.message()).await {
                    Err(_) => return Err(RemoteError::Timeout { url: url.clone(), timeout: self.timeout }),
                    Ok(Err(s)) if s.code() == Code::NotFound => return Ok(false),
                    Ok(Err(s)) => return Err(self.error("ByteStream.Read", &s)),
                    Ok(Ok(None)) => return Ok(true),
                    Ok(Ok(Some(m))) => sink.write(&m.data)?,
                }
            }
        })?;
        if found {
            sink.finish()?;
        }
        Ok(found)
    }

    pub fn put_blob(&self, digest: &Digest, path: &Path) -> Result<(), RemoteError> {
        // A fresh upload name per attempt, as REAPI asks (`uploads/{uuid}/blobs/…`).
        let uuid = upload_id(digest);
        let resource = self.resource(&format!("uploads/{uuid}/blobs/{}/{}", digest.hash, digest.size_bytes));
        let mut file = File::open(path).map_err(|source| RemoteError::Io { path: path.to_path_buf(), source })?;
        let size = digest.size_bytes;
        let mut offset = 0u64;
        let mut first = true;
        // Read lazily, one chunk per message: a large archive is never in memory whole.
        let chunks = std::iter::from_fn(move || {
            if !first && offset >= size {
                return None;
            }
            let mut buf = vec![0u8; CHUNK.min((size - offset) as usize)];
            if file.read_exact(&mut buf).is_err() {
                return None;
            }
            let req = bs::WriteRequest {
                resource_name: if first { resource.clone() } else { String::new() },
                write_offset: offset as i64,
                finish_write: offset + buf.len() as u64 >= size,
                data: buf,
            };
            offset += req.data.len() as u64;
            first = false;
            Some(req)
        });
        let req = self.request(futures_util::stream::iter(chunks));
        let mut client = bs::byte_stream_client::ByteStreamClient::new(self.channel.clone());
        // The stream is only as slow as the disk and the server: the whole write gets the
        // deadline of one message per chunk.
        let deadline = self.timeout * (1 + (size / CHUNK as u64) as u32);
        let url = format!("{}/uploads/…/{}", self.url, digest.hash);
        let resp = self.runtime.block_on(async {
            tokio::time::timeout(deadline, client.write(req))
                .await
                .map_err(|_| RemoteError::Timeout { url: url.clone(), timeout: deadline })
        })?;
        let committed = resp.map_err(|s| self.error("ByteStream.Write", &s))?.into_inner().committed_size;
        if committed != size as i64 {
            return Err(RemoteError::WrongSize { url, want: size, got: committed.max(0) as u64 });
        }
        Ok(())
    }
}

fn from_re(r: re::ActionResult) -> ActionResult {
    ActionResult {
        output_files: r
            .output_files
            .into_iter()
            .map(|f| OutputFile {
                path: f.path,
                digest: f
                    .digest
                    .map(|d| Digest { hash: d.hash, size_bytes: d.size_bytes.max(0) as u64 })
                    .unwrap_or_default(),
                is_executable: f.is_executable,
            })
            .collect(),
        exit_code: r.exit_code,
    }
}

fn to_re(r: &ActionResult) -> re::ActionResult {
    re::ActionResult {
        output_files: r
            .output_files
            .iter()
            .map(|f| re::OutputFile {
                path: f.path.clone(),
                digest: Some(GrpcStore::re_digest(&f.digest)),
                is_executable: f.is_executable,
                ..Default::default()
            })
            .collect(),
        exit_code: r.exit_code,
        ..Default::default()
    }
}

/// A unique upload name in UUID form: the digest, the process and the time, hashed.
fn upload_id(digest: &Digest) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let h = crate::digest::sha256_hex(format!("{}:{}:{nanos}", digest.hash, std::process::id()).as_bytes());
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

/// The `authorization` value of HTTP Basic credentials.
fn basic_auth(user: &str, password: &str) -> String {
    use base64::Engine as _;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}

#[cfg(test)]
mod tests {
    #[test]
    fn credentials_are_http_basic() {
        assert_eq!(super::basic_auth("ci", "s3cret"), "Basic Y2k6czNjcmV0");
    }

    use super::*;

    #[test]
    fn entries_convert_both_ways() {
        let r = ActionResult {
            output_files: vec![OutputFile {
                path: "manifest.json".into(),
                digest: Digest { hash: "ab".repeat(32), size_bytes: 12 },
                is_executable: false,
            }],
            exit_code: 0,
        };
        assert_eq!(from_re(to_re(&r)), r);
    }
}
