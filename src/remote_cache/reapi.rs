//! The three REAPI messages an action-cache entry needs (`build.bazel.remote.execution.v2`):
//! `Digest`, `OutputFile` and `ActionResult`, encoded and decoded as protobuf by hand.
//!
//! Why by hand: ovm writes and reads a handful of fields of three messages, and the HTTP tier
//! must work in a build without the `reapi` feature, whose generated types (crate
//! `bazel-remote-apis`) come with a gRPC stack. The encoding below is the protobuf wire format for
//! exactly these fields; unknown fields a server or another client added are skipped on reading,
//! as protobuf requires. With the feature, a test checks it byte for byte against prost's
//! encoding of the generated type.
//!
//! | message | field | number | wire type |
//! |---|---|---|---|
//! | `Digest` | `hash` (string) | 1 | length-delimited |
//! | `Digest` | `size_bytes` (int64) | 2 | varint |
//! | `OutputFile` | `path` (string) | 1 | length-delimited |
//! | `OutputFile` | `digest` (Digest) | 2 | length-delimited |
//! | `OutputFile` | `is_executable` (bool) | 4 | varint |
//! | `ActionResult` | `output_files` (repeated OutputFile) | 2 | length-delimited |
//! | `ActionResult` | `exit_code` (int32) | 4 | varint |

/// A blob's name in the content-addressable store: its sha256 and size.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Digest {
    pub hash: String,
    pub size_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OutputFile {
    pub path: String,
    pub digest: Digest,
    pub is_executable: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ActionResult {
    pub output_files: Vec<OutputFile>,
    pub exit_code: i32,
}

impl ActionResult {
    /// The output file named `path`.
    pub fn file(&self, path: &str) -> Option<&Digest> {
        self.output_files.iter().find(|f| f.path == path).map(|f| &f.digest)
    }
}

/// Why bytes are not an `ActionResult`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a protobuf ActionResult: {0}")]
pub struct DecodeError(pub &'static str);

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const FIXED32: u8 = 5;

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_key(out: &mut Vec<u8>, field: u32, wire: u8) {
    put_varint(out, (u64::from(field) << 3) | u64::from(wire));
}

fn put_bytes(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    put_key(out, field, LEN);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Proto3: a field at its default value is not written.
fn put_uint(out: &mut Vec<u8>, field: u32, v: u64) {
    if v != 0 {
        put_key(out, field, VARINT);
        put_varint(out, v);
    }
}

impl Digest {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if !self.hash.is_empty() {
            put_bytes(&mut out, 1, self.hash.as_bytes());
        }
        put_uint(&mut out, 2, self.size_bytes);
        out
    }

    fn decode(bytes: &[u8]) -> Result<Digest, DecodeError> {
        let mut d = Digest::default();
        for field in Fields(bytes) {
            match field? {
                (1, Value::Bytes(b)) => d.hash = text(b)?,
                (2, Value::Varint(v)) => d.size_bytes = v,
                _ => {}
            }
        }
        Ok(d)
    }
}

impl OutputFile {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        put_bytes(&mut out, 1, self.path.as_bytes());
        put_bytes(&mut out, 2, &self.digest.encode());
        put_uint(&mut out, 4, u64::from(self.is_executable));
        out
    }

    fn decode(bytes: &[u8]) -> Result<OutputFile, DecodeError> {
        let mut f = OutputFile::default();
        for field in Fields(bytes) {
            match field? {
                (1, Value::Bytes(b)) => f.path = text(b)?,
                (2, Value::Bytes(b)) => f.digest = Digest::decode(b)?,
                (4, Value::Varint(v)) => f.is_executable = v != 0,
                _ => {}
            }
        }
        Ok(f)
    }
}

impl ActionResult {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for f in &self.output_files {
            put_bytes(&mut out, 2, &f.encode());
        }
        // int32 is sign-extended to 64 bits on the wire.
        put_uint(&mut out, 4, i64::from(self.exit_code) as u64);
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<ActionResult, DecodeError> {
        let mut r = ActionResult::default();
        for field in Fields(bytes) {
            match field? {
                (2, Value::Bytes(b)) => r.output_files.push(OutputFile::decode(b)?),
                (4, Value::Varint(v)) => r.exit_code = v as i64 as i32,
                _ => {}
            }
        }
        Ok(r)
    }
}

fn text(b: &[u8]) -> Result<String, DecodeError> {
    String::from_utf8(b.to_vec()).map_err(|_| DecodeError("a string field is not UTF-8"))
}

enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

/// The fields of one message, in order: (number, value).
struct Fields<'a>(&'a [u8]);

impl<'a> Fields<'a> {
    fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = self.0.split_first().ok_or(DecodeError("truncated varint"))?;
            self.0 = rest;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(DecodeError("varint longer than 10 bytes"))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.0.len() {
            return Err(DecodeError("a field runs past the end"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u64, Value<'a>), DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.0.is_empty() {
            return None;
        }
        let field = (|| {
            let key = self.varint()?;
            let value = match (key & 7) as u8 {
                VARINT => Value::Varint(self.varint()?),
                FIXED64 => self.take(8).map(|_| Value::Fixed)?,
                LEN => {
                    let n = usize::try_from(self.varint()?).map_err(|_| DecodeError("length too large"))?;
                    Value::Bytes(self.take(n)?)
                }
                FIXED32 => self.take(4).map(|_| Value::Fixed)?,
                _ => return Err(DecodeError("unknown wire type")),
            };
            Ok((key >> 3, value))
        })();
        if field.is_err() {
            // One error ends the message: the rest cannot be framed.
            self.0 = &[];
        }
        Some(field)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ActionResult {
        ActionResult {
            output_files: vec![
                OutputFile {
                    path: "ovm/manifest.json".into(),
                    digest: Digest { hash: "ab".repeat(32), size_bytes: 300 },
                    is_executable: false,
                },
                OutputFile {
                    path: "x".into(),
                    digest: Digest { hash: "cd".repeat(32), size_bytes: 0 },
                    is_executable: true,
                },
            ],
            exit_code: 0,
        }
    }

    #[test]
    fn round_trips() {
        let r = sample();
        assert_eq!(ActionResult::decode(&r.encode()).unwrap(), r);
        let neg = ActionResult { exit_code: -2, ..r };
        assert_eq!(ActionResult::decode(&neg.encode()).unwrap(), neg);
    }

    /// Bytes written out by hand from the protobuf encoding rules, so the encoder is checked against
    /// the wire format, not against its own decoder.
    #[test]
    fn matches_the_wire_format() {
        let r = ActionResult {
            output_files: vec![OutputFile {
                path: "a".into(),
                digest: Digest { hash: "h".into(), size_bytes: 300 },
                is_executable: true,
            }],
            exit_code: 1,
        };
        // field 2 LEN(13): [field 1 "a"][field 2 LEN(6): [field 1 "h"][field 2 varint 300 = ac 02]][field 4 = 1]; field 4 = 1
        let want = [0x12, 13, 0x0a, 1, b'a', 0x12, 6, 0x0a, 1, b'h', 0x10, 0xac, 0x02, 0x20, 1, 0x20, 1];
        assert_eq!(r.encode(), want);
    }

    /// The same entry encoded by prost from the generated REAPI type is the same bytes, and each
    /// side decodes the other's.
    #[cfg(feature = "reapi")]
    #[test]
    fn encodes_as_prost_does_with_the_generated_types() {
        use bazel_remote_apis::build::bazel::remote::execution::v2 as re;
        use prost::Message;
        let theirs = re::ActionResult {
            output_files: sample()
                .output_files
                .iter()
                .map(|f| re::OutputFile {
                    path: f.path.clone(),
                    digest: Some(re::Digest { hash: f.digest.hash.clone(), size_bytes: f.digest.size_bytes as i64 }),
                    is_executable: f.is_executable,
                    ..Default::default()
                })
                .collect(),
            exit_code: 0,
            ..Default::default()
        };
        assert_eq!(sample().encode(), theirs.encode_to_vec());
        assert_eq!(re::ActionResult::decode(sample().encode().as_slice()).unwrap(), theirs);
        assert_eq!(ActionResult::decode(&theirs.encode_to_vec()).unwrap(), sample());
    }

    #[test]
    fn unknown_fields_are_skipped_and_garbage_refused() {
        let mut bytes = sample().encode();
        // execution_metadata (9, LEN) and a fixed64 and fixed32 field another client might write.
        bytes.extend_from_slice(&[0x4a, 2, 0x08, 0x01, 0x29, 0, 0, 0, 0, 0, 0, 0, 0, 0x35, 0, 0, 0, 0]);
        assert_eq!(ActionResult::decode(&bytes).unwrap(), sample());
        assert!(ActionResult::decode(b"<html>404</html>").is_err());
        let full = sample().encode();
        assert!(ActionResult::decode(&full[..full.len() - 3]).is_err());
    }
}
