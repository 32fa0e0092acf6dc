//! Compression of the cpio stream: gzip, xz, zstd or none, each with fixed parameters so that the
//! image's bytes depend only on the archive, never on the thread count or the time.
//!
//! - **gzip**: pigz's scheme (`pargz`): 128 KiB blocks compressed in parallel, each with the
//!   previous block's last 32 KiB as dictionary, joined into ONE deflate stream in ONE gzip member.
//!   Block borders are fixed by the input, so 1 and N threads produce the same bytes; the header
//!   has no name and mtime 0 (gzip -n). The kernel's inflate sees an ordinary stream (sync flushes
//!   are just empty stored blocks).
//! - **xz**: liblzma's multi-threaded encoder, always (even for one thread: the single-threaded
//!   encoder writes a different, single-block stream), with a fixed block size, preset 6 with a
//!   dictionary of one block, and the CRC32 check: the kernel's XZ decoder rejects CRC64/SHA-256. Blocks are compressed
//!   independently, so the thread count only changes the speed.
//! - **zstd**: level 19 in zstd's multi-threaded mode with at least one worker, a fixed job size
//!   and overlap (zstd documents MT output as independent of the worker count, but different from
//!   its single-threaded mode, which is therefore never used), with a content checksum.
//!
//! Every encoder writes to a `BufWriter` of 1 MiB so the file sees few, large writes.

use std::io::{self, BufWriter, Write};
use std::str::FromStr;

use super::pargz::ParGzWriter;

/// Size of the buffer between an encoder and the output file.
pub const OUTPUT_BUFFER: usize = 1 << 20;
/// gzip level: the same as `gzip -9`/`pigz -9`, so sizes compare directly.
pub const GZIP_LEVEL: u32 = 9;
/// xz preset (6 = xz's default), with its dictionary cut to [`XZ_DICT`].
pub const XZ_PRESET: u32 = 6;
/// Independent xz blocks: the unit of parallelism, fixed so the output never depends on threads.
/// 4 MiB lets a typical few-MiB initrd use two cores while costing well under 1 % in size.
pub const XZ_BLOCK: u64 = 4 << 20;
/// The LZMA2 dictionary: one block, since a block never refers to another (preset 6's 8 MiB
/// could never be filled). The header names it, and the kernel's decoder allocates that much
/// before it unpacks a byte: half of it is one less thing to pay for at every boot.
pub const XZ_DICT: u32 = 4 << 20;
/// zstd level (19 = the highest before --ultra, 8 MiB window).
pub const ZSTD_LEVEL: i32 = 19;
/// zstd's MT job size, fixed for the same reason as XZ_BLOCK.
pub const ZSTD_JOB: u32 = 4 << 20;
/// How much of the previous job each job re-reads as history: 2^(6-9) of the 8 MiB window = 1 MiB.
/// Level 19's default (the full window) makes every 4 MiB job process 12 MiB, 2.2x slower for
/// +0.2 % size.
pub const ZSTD_OVERLAP_LOG: u32 = 6;

#[derive(Debug, thiserror::Error)]
pub enum CompressError {
    #[error("unknown compression `{0}`: expected gzip, xz, zstd or none")]
    Unknown(String),
    #[error("setting up the {format} encoder: {message}")]
    Setup { format: &'static str, message: String },
    #[error("{format} compression failed: {source}")]
    Io { format: &'static str, source: io::Error },
}

/// How the image is compressed: the config's `[pack] compress` type itself (defined with the
/// config, the lower layer), which is also the command line's `clap::ValueEnum`; its names and
/// aliases are the ones `FromStr` takes.
pub use crate::project::Compress as Compression;

impl Compression {
    pub const ALL: [Compression; 4] = [Compression::None, Compression::Gzip, Compression::Xz, Compression::Zstd];

    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Xz => "xz",
            Compression::Zstd => "zstd",
        }
    }

    /// The image's file name: `initrd.cpio`, `initrd.cpio.gz`, `.xz`, `.zst`.
    pub fn image_name(self) -> &'static str {
        match self {
            Compression::None => "initrd.cpio",
            Compression::Gzip => "initrd.cpio.gz",
            Compression::Xz => "initrd.cpio.xz",
            Compression::Zstd => "initrd.cpio.zst",
        }
    }

    /// The file name of the image's tree as a tar archive (a named image's `tar = true`).
    pub fn tar_name(self) -> &'static str {
        match self {
            Compression::None => "rootfs.tar",
            Compression::Gzip => "rootfs.tar.gz",
            Compression::Xz => "rootfs.tar.xz",
            Compression::Zstd => "rootfs.tar.zst",
        }
    }
}

impl FromStr for Compression {
    type Err = CompressError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(Compression::None),
            "gzip" | "gz" => Ok(Compression::Gzip),
            "xz" => Ok(Compression::Xz),
            "zstd" | "zst" => Ok(Compression::Zstd),
            other => Err(CompressError::Unknown(other.to_string())),
        }
    }
}

impl std::fmt::Display for Compression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A compressing writer; [`Encoder::finish`] must be called to complete the stream.
pub enum Encoder<W: Write + Send + 'static> {
    None(BufWriter<W>),
    Gzip(ParGzWriter<BufWriter<W>>),
    Xz(xz2::write::XzEncoder<BufWriter<W>>),
    Zstd(zstd::stream::write::Encoder<'static, BufWriter<W>>),
}

impl<W: Write + Send + 'static> Encoder<W> {
    /// `threads` ≥ 1 compression threads.
    pub fn new(format: Compression, threads: usize, sink: W) -> Result<Encoder<W>, CompressError> {
        let threads = threads.max(1);
        let out = BufWriter::with_capacity(OUTPUT_BUFFER, sink);
        let setup = |format: &'static str| {
            move |e: &dyn std::fmt::Display| CompressError::Setup { format, message: e.to_string() }
        };
        Ok(match format {
            Compression::None => Encoder::None(out),
            Compression::Gzip => Encoder::Gzip(ParGzWriter::new(out, GZIP_LEVEL, threads)),
            Compression::Xz => {
                let err = setup("xz");
                let mut lzma2 = xz2::stream::LzmaOptions::new_preset(XZ_PRESET).map_err(|e| err(&e))?;
                lzma2.dict_size(XZ_DICT);
                let mut filters = xz2::stream::Filters::new();
                filters.lzma2(&lzma2);
                let stream = xz2::stream::MtStreamBuilder::new()
                    .threads(u32::try_from(threads).unwrap_or(u32::MAX))
                    .block_size(XZ_BLOCK)
                    .filters(filters)
                    .check(xz2::stream::Check::Crc32)
                    .encoder()
                    .map_err(|e| err(&e))?;
                Encoder::Xz(xz2::write::XzEncoder::new_stream(out, stream))
            }
            Compression::Zstd => {
                let err = setup("zstd");
                let mut enc = zstd::stream::write::Encoder::new(out, ZSTD_LEVEL).map_err(|e| err(&e))?;
                enc.multithread(u32::try_from(threads).unwrap_or(u32::MAX)).map_err(|e| err(&e))?;
                enc.set_parameter(zstd::zstd_safe::CParameter::JobSize(ZSTD_JOB)).map_err(|e| err(&e))?;
                enc.set_parameter(zstd::zstd_safe::CParameter::OverlapSizeLog(ZSTD_OVERLAP_LOG))
                    .map_err(|e| err(&e))?;
                enc.include_checksum(true).map_err(|e| err(&e))?;
                Encoder::Zstd(enc)
            }
        })
    }

    pub fn format(&self) -> Compression {
        match self {
            Encoder::None(_) => Compression::None,
            Encoder::Gzip(_) => Compression::Gzip,
            Encoder::Xz(_) => Compression::Xz,
            Encoder::Zstd(_) => Compression::Zstd,
        }
    }

    /// Completes the stream and flushes everything to the sink.
    pub fn finish(self) -> Result<W, CompressError> {
        let format = self.format().name();
        let io_err = |source: io::Error| CompressError::Io { format, source };
        let mut out = match self {
            Encoder::None(out) => out,
            Encoder::Gzip(enc) => enc.finish().map_err(io_err)?,
            Encoder::Xz(enc) => enc.finish().map_err(io_err)?,
            Encoder::Zstd(enc) => enc.finish().map_err(io_err)?,
        };
        out.flush().map_err(io_err)?;
        out.into_inner().map_err(|e| io_err(e.into_error()))
    }
}

impl<W: Write + Send + 'static> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::None(w) => w.write(buf),
            Encoder::Gzip(w) => w.write(buf),
            Encoder::Xz(w) => w.write(buf),
            Encoder::Zstd(w) => w.write(buf),
        }
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Encoder::None(w) => w.write_all(buf),
            Encoder::Gzip(w) => w.write_all(buf),
            Encoder::Xz(w) => w.write_all(buf),
            Encoder::Zstd(w) => w.write_all(buf),
        }
    }
    /// Deliberately not forwarded: a flush would cut a gzip/xz block early and make block borders
    /// (and so the bytes) depend on when flushes happen.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn the_command_line_takes_the_same_names_as_the_config() {
        use clap::ValueEnum;
        for name in ["none", "gzip", "gz", "xz", "zstd", "zst", "lz4", "GZIP", ""] {
            assert_eq!(
                <Compression as ValueEnum>::from_str(name, false).ok(),
                name.parse::<Compression>().ok(),
                "{name}"
            );
        }
        for c in Compression::ALL {
            assert_eq!(c.to_possible_value().map(|v| v.get_name().to_string()), Some(c.name().to_string()));
        }
    }

    fn sample() -> Vec<u8> {
        // Compressible text mixed with pseudo-random bytes, several gzip blocks and an odd tail.
        let mut data = Vec::new();
        let mut x: u32 = 12345;
        for i in 0..40_000u32 {
            data.extend_from_slice(format!("line {i} of some text\n").as_bytes());
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            data.extend_from_slice(&x.to_le_bytes());
        }
        data
    }

    fn compress(format: Compression, threads: usize, data: &[u8]) -> Vec<u8> {
        let mut enc = Encoder::new(format, threads, Vec::new()).unwrap();
        for chunk in data.chunks(10_007) {
            enc.write_all(chunk).unwrap();
        }
        enc.flush().unwrap();
        enc.finish().unwrap()
    }

    fn decompress(format: Compression, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        match format {
            Compression::None => out.extend_from_slice(data),
            Compression::Gzip => {
                flate2::read::GzDecoder::new(data).read_to_end(&mut out).unwrap();
            }
            Compression::Xz => {
                xz2::read::XzDecoder::new(data).read_to_end(&mut out).unwrap();
            }
            Compression::Zstd => {
                zstd::stream::read::Decoder::new(data).unwrap().read_to_end(&mut out).unwrap();
            }
        }
        out
    }

    #[test]
    fn every_format_round_trips_and_ignores_the_thread_count() {
        let data = sample();
        for format in Compression::ALL {
            let one = compress(format, 1, &data);
            let two = compress(format, 2, &data);
            let three = compress(format, 3, &data);
            assert_eq!(decompress(format, &one), data, "{format}");
            assert!(one == two && two == three, "{format}: output depends on the thread count");
        }
    }

    #[test]
    fn gzip_header_has_no_name_and_no_mtime() {
        let out = compress(Compression::Gzip, 2, b"hello");
        assert_eq!(&out[..4], &[0x1f, 0x8b, 8, 0], "FLG must be 0: no name, no comment");
        assert_eq!(&out[4..8], &[0, 0, 0, 0], "MTIME must be 0");
    }

    #[test]
    fn xz_uses_the_crc32_check_the_kernel_requires() {
        let out = compress(Compression::Xz, 1, b"hello");
        // Stream header: magic (6 bytes), then stream flags 0x00 0x01 = CRC32.
        assert_eq!(&out[..6], b"\xfd7zXZ\0");
        assert_eq!(&out[6..8], &[0x00, 0x01]);
    }

    #[test]
    fn xz_names_a_dictionary_of_one_block() {
        let out = compress(Compression::Xz, 1, &sample());
        // The first block header follows the 12-byte stream header: size, flags, the sizes the
        // flags announce (varints), then the filter: ID 0x21 (LZMA2), 1 property byte.
        let header = &out[12..];
        let varint = |at: &mut usize| {
            let mut value = 0u64;
            for shift in (0..63).step_by(7) {
                let byte = header[*at];
                *at += 1;
                value |= u64::from(byte & 0x7f) << shift;
                if byte & 0x80 == 0 {
                    break;
                }
            }
            value
        };
        let mut at = 2;
        for announced in [0x40, 0x80] {
            if header[1] & announced != 0 {
                varint(&mut at);
            }
        }
        assert_eq!(varint(&mut at), 0x21, "the filter is LZMA2");
        assert_eq!(varint(&mut at), 1, "LZMA2 has one property byte");
        let bits = u32::from(header[at]);
        let dict = (2 | (bits & 1)) << (bits / 2 + 11);
        assert_eq!(dict, XZ_DICT);
        assert_eq!(u64::from(XZ_DICT), XZ_BLOCK, "a dictionary beyond one block is never filled");
    }

    #[test]
    fn names_parse_and_map_to_file_names() {
        assert_eq!("gz".parse::<Compression>().unwrap().image_name(), "initrd.cpio.gz");
        assert_eq!("zstd".parse::<Compression>().unwrap().image_name(), "initrd.cpio.zst");
        assert!("lz4".parse::<Compression>().unwrap_err().to_string().contains("gzip, xz, zstd or none"));
        // The config's names are the command line's.
        #[derive(serde::Deserialize)]
        struct Cfg {
            compress: crate::project::Compress,
        }
        for name in ["none", "gzip", "gz", "xz", "zstd", "zst", "bzip2", "lz4", "GZIP"] {
            let cfg = toml::from_str::<Cfg>(&format!("compress = \"{name}\"")).ok().map(|c| c.compress);
            assert_eq!(cfg, name.parse::<Compression>().ok(), "{name}");
        }
    }
}
