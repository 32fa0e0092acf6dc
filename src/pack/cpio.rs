//! A writer for the cpio "newc" format (SVR4 without CRC, magic `070701`), the only format the
//! kernel's initramfs unpacker reads.
//!
//! Layout of one entry: a 110-byte ASCII header (magic + 13 fields of 8 hex digits), the name with
//! its NUL, padding to a multiple of 4, the data, padding to a multiple of 4. The archive ends with
//! an entry named `TRAILER!!!` and is padded with NULs to a multiple of 512 bytes, as GNU cpio does.
//! Hard links follow GNU cpio and the kernel (init/initramfs.c): every name of the inode carries the
//! same `ino` and `nlink`, and only the last one carries the data; the kernel links later names to
//! the first and then writes the data through whichever name has it.
//!
//! The writer only formats; it never decides metadata. Field widths are 32 bits, so sizes, times
//! and ids beyond that are errors rather than silent truncation.

use std::io::{self, Write};

pub const MAGIC: &[u8; 6] = b"070701";
pub const TRAILER: &[u8] = b"TRAILER!!!";
const HEADER_LEN: usize = 110;
const BLOCK: u64 = 512;

#[derive(Debug, thiserror::Error)]
pub enum CpioError {
    #[error("{name}: {field} {value} does not fit cpio newc's 32-bit field")]
    TooLarge { name: String, field: &'static str, value: u64 },
    #[error("{name}: names must not be empty or contain NUL")]
    BadName { name: String },
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// The metadata of one entry. `mode` includes the `S_IFMT` type bits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Header {
    pub ino: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    pub mtime: u64,
    pub filesize: u64,
    pub rdev_major: u32,
    pub rdev_minor: u32,
}

/// Streams newc entries into `W`, counting bytes for the final padding.
pub struct NewcWriter<W: Write> {
    out: W,
    offset: u64,
    /// Bytes of data the current entry still expects.
    pending: u64,
    /// Padding owed after the current entry's data.
    pad_after: usize,
}

impl<W: Write> NewcWriter<W> {
    pub fn new(out: W) -> Self {
        NewcWriter { out, offset: 0, pending: 0, pad_after: 0 }
    }

    /// Starts an entry; exactly `header.filesize` bytes must follow through [`Self::write_data`].
    pub fn start_entry(&mut self, header: &Header, name: &[u8]) -> Result<(), CpioError> {
        let shown = || String::from_utf8_lossy(name).into_owned();
        if self.pending != 0 {
            return Err(io::Error::other(format!(
                "{}: previous entry is missing {} data bytes",
                shown(),
                self.pending
            ))
            .into());
        }
        if name.is_empty() || name.contains(&0) {
            return Err(CpioError::BadName { name: shown() });
        }
        let fit = |field: &'static str, value: u64| -> Result<u32, CpioError> {
            u32::try_from(value).map_err(|_| CpioError::TooLarge { name: shown(), field, value })
        };
        let fields = [
            fit("inode", header.ino)?,
            header.mode,
            header.uid,
            header.gid,
            header.nlink,
            fit("mtime", header.mtime)?,
            fit("size", header.filesize)?,
            0, // devmajor: the archive is not tied to a host device
            0, // devminor
            header.rdev_major,
            header.rdev_minor,
            fit("name length", name.len() as u64 + 1)?,
            0, // check: unused by newc
        ];
        let mut buf = [0u8; HEADER_LEN];
        buf[..6].copy_from_slice(MAGIC);
        for (i, value) in fields.iter().enumerate() {
            write_hex8(&mut buf[6 + 8 * i..14 + 8 * i], *value);
        }
        self.put(&buf)?;
        self.put(name)?;
        let name_end = HEADER_LEN + name.len() + 1;
        self.put(&[0u8; 4][..1 + pad4(name_end as u64)])?;
        self.pending = header.filesize;
        self.pad_after = pad4(header.filesize);
        if self.pending == 0 {
            self.pad_after = 0;
        }
        Ok(())
    }

    /// Data of the current entry; more than the header announced is an error.
    pub fn write_data(&mut self, data: &[u8]) -> Result<(), CpioError> {
        if data.len() as u64 > self.pending {
            return Err(io::Error::other("more data than the entry's size").into());
        }
        self.put(data)?;
        self.pending -= data.len() as u64;
        if self.pending == 0 && self.pad_after > 0 {
            let pad = self.pad_after;
            self.pad_after = 0;
            self.put(&[0u8; 4][..pad])?;
        }
        Ok(())
    }

    /// Bytes the current entry still expects.
    pub fn pending(&self) -> u64 {
        self.pending
    }

    /// Writes the trailer and the padding to 512 bytes; returns the inner writer.
    pub fn finish(mut self) -> Result<W, CpioError> {
        let trailer = Header { nlink: 1, ..Header::default() };
        self.start_entry(&trailer, TRAILER)?;
        let rem = self.offset % BLOCK;
        if rem != 0 {
            let zeros = [0u8; BLOCK as usize];
            self.put(&zeros[..(BLOCK - rem) as usize])?;
        }
        Ok(self.out)
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.offset += bytes.len() as u64;
        Ok(())
    }
}

/// Bytes needed to bring `len` to a multiple of 4.
fn pad4(len: u64) -> usize {
    ((4 - len % 4) % 4) as usize
}

fn write_hex8(out: &mut [u8], value: u32) {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    for (i, slot) in out.iter_mut().enumerate() {
        *slot = DIGITS[((value >> (28 - 4 * i)) & 0xf) as usize];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive(entries: &[(Header, &[u8], &[u8])]) -> Vec<u8> {
        let mut w = NewcWriter::new(Vec::new());
        for (h, name, data) in entries {
            w.start_entry(h, name).unwrap();
            w.write_data(data).unwrap();
        }
        w.finish().unwrap()
    }

    #[test]
    fn layout_matches_the_newc_spec() {
        let h = Header { ino: 1, mode: 0o100644, nlink: 1, mtime: 0x1234, filesize: 5, ..Header::default() };
        let out = archive(&[(h, b"ab", b"hello")]);
        let fields = ["00000001", "000081A4", "00000000", "00000000", "00000001", "00001234", "00000005"];
        let zeros = ["00000000"; 4];
        let expected = format!("070701{}{}0000000300000000", fields.concat(), zeros.concat());
        assert_eq!(std::str::from_utf8(&out[..110]).unwrap(), expected);
        // name "ab\0" ends at 113 → padded to 116; data 5 → padded to 124.
        assert_eq!(&out[110..116], b"ab\0\0\0\0");
        assert_eq!(&out[116..124], b"hello\0\0\0");
        assert_eq!(&out[124..130], MAGIC);
        assert_eq!(out.len() % 512, 0);
        let trailer_name = &out[124 + 110..124 + 110 + 11];
        assert_eq!(trailer_name, b"TRAILER!!!\0");
    }

    #[test]
    fn fields_beyond_32_bits_are_errors_not_truncations() {
        let mut w = NewcWriter::new(Vec::new());
        let h = Header { mtime: 1 << 32, ..Header::default() };
        let msg = w.start_entry(&h, b"x").unwrap_err().to_string();
        assert!(msg.contains("mtime") && msg.contains("x:"), "{msg}");
        let h = Header { filesize: 5 << 30, ..Header::default() };
        assert!(w.start_entry(&h, b"big").unwrap_err().to_string().contains("size"));
    }

    #[test]
    fn short_or_long_data_is_detected() {
        let mut w = NewcWriter::new(Vec::new());
        w.start_entry(&Header { filesize: 3, ..Header::default() }, b"a").unwrap();
        assert!(w.write_data(b"abcd").is_err());
        w.write_data(b"ab").unwrap();
        assert_eq!(w.pending(), 1);
        assert!(w.start_entry(&Header::default(), b"b").is_err());
        assert!(w.start_entry(&Header::default(), b"").is_err());
    }
}
