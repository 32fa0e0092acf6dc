//! A kernel module's `.modinfo`: the NUL-separated `key=value` strings modpost puts into an ELF
//! section of every `.ko` (`depends=`, `softdep=`, `alias=`, `name=`, `vermagic=`, `firmware=` …).
//! It is read from the section headers directly, for 32- and 64-bit ELF of either byte order, so
//! no host tool (`modinfo`, `objdump`) and no knowledge of the target architecture is needed.

use std::io::Read;
use std::path::Path;

use super::{KmodError, ModuleName};

/// How a module file is stored: the kernel's `CONFIG_MODULE_COMPRESS_*` choices ovm can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stored {
    Plain,
    Xz,
    Zstd,
}

impl Stored {
    /// The storage a file name says and the name without its `.ko…` suffix; `None` for a file that
    /// is not a module.
    pub fn of_file_name(name: &str) -> Option<(Stored, &str)> {
        for (suffix, stored) in [(".ko", Stored::Plain), (".ko.xz", Stored::Xz), (".ko.zst", Stored::Zstd)] {
            if let Some(stem) = name.strip_suffix(suffix) {
                return Some((stored, stem));
            }
        }
        None
    }
    /// The suffix the file carries in the kernel's tree.
    pub fn suffix(self) -> &'static str {
        match self {
            Stored::Plain => ".ko",
            Stored::Xz => ".ko.xz",
            Stored::Zstd => ".ko.zst",
        }
    }
}

/// A module file's bytes as the kernel loads them (decompressed).
pub fn read_module(path: &Path, stored: Stored) -> Result<Vec<u8>, KmodError> {
    let err = |source| KmodError::Read { path: path.to_path_buf(), source };
    let raw = std::fs::read(path).map_err(err)?;
    let mut out = Vec::new();
    match stored {
        Stored::Plain => return Ok(raw),
        Stored::Xz => xz2::read::XzDecoder::new_multi_decoder(raw.as_slice()).read_to_end(&mut out),
        Stored::Zstd => zstd::stream::read::Decoder::new(raw.as_slice()).and_then(|mut d| d.read_to_end(&mut out)),
    }
    .map_err(|source| KmodError::Decompress { path: path.to_path_buf(), source })?;
    Ok(out)
}

/// The fields of `.modinfo` ovm uses; the rest (`license=`, `parm=`, `srcversion=` …) is skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModInfo {
    /// `name=`: the module's own name (older kernels omit it; the file name says it then).
    pub name: Option<ModuleName>,
    /// `depends=`: modules whose symbols it uses, comma-separated.
    pub depends: Vec<ModuleName>,
    /// `softdep=pre: a b post: c`: names (or aliases) modprobe loads before / after it.
    pub softdep_pre: Vec<String>,
    pub softdep_post: Vec<String>,
    /// `alias=` patterns (`pci:v00001AF4d00001001sv*…`, `fs-ext4`, `crypto-crc32c` …), in order.
    pub aliases: Vec<String>,
    /// `vermagic=`: the kernel release it was built for, then its flags.
    pub vermagic: Option<String>,
    /// `firmware=`: files under `/lib/firmware` it may request.
    pub firmware: Vec<String>,
}

impl ModInfo {
    /// Reads the `.modinfo` section of the ELF object `bytes`; `path` names it in errors.
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<ModInfo, KmodError> {
        let section = modinfo_section(bytes).map_err(|reason| KmodError::Elf { path: path.to_path_buf(), reason })?;
        let mut info = ModInfo::default();
        for field in section.split(|&b| b == 0).filter(|f| !f.is_empty()) {
            let Ok(field) = std::str::from_utf8(field) else { continue };
            let Some((key, value)) = field.split_once('=') else { continue };
            match key {
                "name" => info.name = Some(ModuleName::new(value)),
                "depends" => {
                    info.depends.extend(value.split(',').filter(|d| !d.is_empty()).map(ModuleName::new));
                }
                "softdep" => parse_softdep(value, &mut info.softdep_pre, &mut info.softdep_post),
                "alias" => info.aliases.push(value.to_string()),
                "vermagic" => info.vermagic = Some(value.to_string()),
                "firmware" => info.firmware.push(value.to_string()),
                _ => {}
            }
        }
        Ok(info)
    }

    /// The kernel release in `vermagic=` (its first word).
    pub fn release(&self) -> Option<&str> {
        self.vermagic.as_deref().and_then(|v| v.split_whitespace().next())
    }
}

/// `pre: a b post: c d` (kmod's syntax: either part may be missing, names are words).
fn parse_softdep(value: &str, pre: &mut Vec<String>, post: &mut Vec<String>) {
    let mut into: Option<&mut Vec<String>> = None;
    for word in value.split_whitespace() {
        match word {
            "pre:" => into = Some(&mut *pre),
            "post:" => into = Some(&mut *post),
            name => {
                if let Some(list) = into.as_deref_mut() {
                    list.push(name.to_string());
                }
            }
        }
    }
}

/// Little- or big-endian reads at an offset, bounds-checked.
struct Reader<'a> {
    bytes: &'a [u8],
    big: bool,
}

impl<'a> Reader<'a> {
    fn take<const N: usize>(&self, at: u64) -> Result<[u8; N], String> {
        let start = usize::try_from(at).map_err(|_| format!("offset {at} is out of range"))?;
        self.bytes
            .get(start..start.saturating_add(N))
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| format!("truncated: {N} bytes at offset {at} past the end ({} bytes)", self.bytes.len()))
    }
    fn u16(&self, at: u64) -> Result<u64, String> {
        let b = self.take::<2>(at)?;
        Ok(u64::from(if self.big { u16::from_be_bytes(b) } else { u16::from_le_bytes(b) }))
    }
    fn u32(&self, at: u64) -> Result<u64, String> {
        let b = self.take::<4>(at)?;
        Ok(u64::from(if self.big { u32::from_be_bytes(b) } else { u32::from_le_bytes(b) }))
    }
    fn u64(&self, at: u64) -> Result<u64, String> {
        let b = self.take::<8>(at)?;
        Ok(if self.big { u64::from_be_bytes(b) } else { u64::from_le_bytes(b) })
    }
    fn slice(&self, offset: u64, size: u64) -> Result<&'a [u8], String> {
        let range = usize::try_from(offset)
            .ok()
            .zip(usize::try_from(size).ok())
            .and_then(|(o, s)| Some(o..o.checked_add(s)?))
            .filter(|r| r.end <= self.bytes.len())
            .ok_or_else(|| format!("a section ({size} bytes at {offset}) lies past the end of the file"))?;
        Ok(&self.bytes[range])
    }
}

/// The bytes of the section named `.modinfo`.
fn modinfo_section(bytes: &[u8]) -> Result<&[u8], String> {
    if bytes.get(..4) != Some(b"\x7fELF") {
        return Err("not an ELF object (no \\x7fELF magic)".into());
    }
    let wide = match bytes.get(4) {
        Some(1) => false,
        Some(2) => true,
        other => return Err(format!("unknown ELF class {other:?}")),
    };
    let big = match bytes.get(5) {
        Some(1) => false,
        Some(2) => true,
        other => return Err(format!("unknown ELF byte order {other:?}")),
    };
    let r = Reader { bytes, big };
    // e_shoff, e_shentsize, e_shnum, e_shstrndx (ELF gABI, "ELF Header").
    let (shoff, shentsize, shnum, shstrndx) = if wide {
        (r.u64(0x28)?, r.u16(0x3a)?, r.u16(0x3c)?, r.u16(0x3e)?)
    } else {
        (r.u32(0x20)?, r.u16(0x2e)?, r.u16(0x30)?, r.u16(0x32)?)
    };
    if shnum == 0 {
        return Err("no section headers".into());
    }
    // sh_name, sh_offset, sh_size of section `i`.
    let header = |i: u64| -> Result<(u64, u64, u64), String> {
        let at = shoff + i * shentsize;
        if wide {
            Ok((r.u32(at)?, r.u64(at + 0x18)?, r.u64(at + 0x20)?))
        } else {
            Ok((r.u32(at)?, r.u32(at + 0x10)?, r.u32(at + 0x14)?))
        }
    };
    let (_, str_off, str_size) = header(shstrndx)?;
    let names = r.slice(str_off, str_size)?;
    for i in 0..shnum {
        let (name, offset, size) = header(i)?;
        let name = usize::try_from(name).ok().and_then(|n| names.get(n..)).unwrap_or_default();
        if name.split(|&b| b == 0).next() == Some(b".modinfo") {
            return r.slice(offset, size);
        }
    }
    Err("no .modinfo section: not a kernel module".into())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A minimal relocatable ELF object holding one `.modinfo` section with `fields` (each
    /// NUL-terminated, as modpost writes them): the smallest thing the parser must read.
    pub(crate) fn elf_with_modinfo(fields: &[&str], wide: bool, big: bool) -> Vec<u8> {
        let mut modinfo = Vec::new();
        for f in fields {
            modinfo.extend_from_slice(f.as_bytes());
            modinfo.push(0);
        }
        let shstrtab = b"\0.modinfo\0.shstrtab\0".to_vec();
        let (ehsize, shentsize) = if wide { (64u64, 64u64) } else { (52, 40) };
        let modinfo_off = ehsize;
        let shstr_off = modinfo_off + modinfo.len() as u64;
        let shoff = shstr_off + shstrtab.len() as u64;
        let put = |out: &mut Vec<u8>, v: u64, n: usize| {
            let b = v.to_le_bytes();
            let mut bytes = b[..n].to_vec();
            if big {
                bytes.reverse();
            }
            out.extend_from_slice(&bytes);
        };
        let word = if wide { 8 } else { 4 };
        let mut out = vec![0x7f, b'E', b'L', b'F', if wide { 2 } else { 1 }, if big { 2 } else { 1 }, 1];
        out.resize(16, 0);
        put(&mut out, 1, 2); // e_type ET_REL
        put(&mut out, 0x3e, 2); // e_machine
        put(&mut out, 1, 4); // e_version
        put(&mut out, 0, word); // e_entry
        put(&mut out, 0, word); // e_phoff
        put(&mut out, shoff, word); // e_shoff
        put(&mut out, 0, 4); // e_flags
        put(&mut out, ehsize, 2);
        put(&mut out, 0, 2); // e_phentsize
        put(&mut out, 0, 2); // e_phnum
        put(&mut out, shentsize, 2);
        put(&mut out, 3, 2); // e_shnum: null, .modinfo, .shstrtab
        put(&mut out, 2, 2); // e_shstrndx
        assert_eq!(out.len() as u64, ehsize);
        out.extend_from_slice(&modinfo);
        out.extend_from_slice(&shstrtab);
        let section = |out: &mut Vec<u8>, name: u64, kind: u64, off: u64, size: u64| {
            put(out, name, 4);
            put(out, kind, 4);
            put(out, 0, word); // flags
            put(out, 0, word); // addr
            put(out, off, word);
            put(out, size, word);
            put(out, 0, 4); // link
            put(out, 0, 4); // info
            put(out, 1, word); // addralign
            put(out, 0, word); // entsize
        };
        section(&mut out, 0, 0, 0, 0);
        section(&mut out, 1, 1, modinfo_off, modinfo.len() as u64);
        section(&mut out, 10, 3, shstr_off, shstrtab.len() as u64);
        out
    }

    #[test]
    fn reads_every_field_from_each_elf_class_and_byte_order() {
        let fields = [
            "license=GPL",
            "alias=fs-ext4",
            "softdep=pre: crc32c post: foo-bar baz",
            "depends=jbd2,mbcache,crc16",
            "alias=ext3",
            "name=ext4",
            "firmware=a/b.bin",
            "vermagic=6.1.0-57-amd64 SMP preempt mod_unload modversions ",
        ];
        for (wide, big) in [(true, false), (false, false), (true, true), (false, true)] {
            let bytes = elf_with_modinfo(&fields, wide, big);
            let info = ModInfo::parse(Path::new("ext4.ko"), &bytes).unwrap();
            assert_eq!(info.name, Some(ModuleName::new("ext4")));
            assert_eq!(info.depends, ["jbd2", "mbcache", "crc16"].map(ModuleName::new));
            assert_eq!(info.softdep_pre, ["crc32c"]);
            assert_eq!(info.softdep_post, ["foo-bar", "baz"]);
            assert_eq!(info.aliases, ["fs-ext4", "ext3"]);
            assert_eq!(info.firmware, ["a/b.bin"]);
            assert_eq!(info.release(), Some("6.1.0-57-amd64"));
        }
    }

    #[test]
    fn empty_depends_and_missing_fields_are_empty() {
        let bytes = elf_with_modinfo(&["depends=", "softdep=post: x"], true, false);
        let info = ModInfo::parse(Path::new("m.ko"), &bytes).unwrap();
        assert!(info.depends.is_empty() && info.softdep_pre.is_empty() && info.name.is_none());
        assert_eq!(info.softdep_post, ["x"]);
    }

    #[test]
    fn a_file_that_is_not_a_module_is_an_error_naming_it_and_why() {
        let cases: [(&[u8], &str); 4] = [
            (b"hello", "no \\x7fELF magic"),
            (b"\x7fELF\x02\x01\x01", "truncated"),
            (&elf_with_modinfo(&[], true, false)[..70], "truncated"),
            (b"\x7fELF\x09\x01", "class"),
        ];
        for (bytes, why) in cases {
            let msg = ModInfo::parse(Path::new("/x/bad.ko"), bytes).unwrap_err().to_string();
            assert!(msg.contains("/x/bad.ko") && msg.contains(why), "{msg}");
        }
        // An ELF object without the section: a user-space object is no module.
        let mut bytes = elf_with_modinfo(&["a=b"], true, false);
        let at = bytes.windows(9).rposition(|w| w == b".modinfo\0").unwrap();
        bytes[at..at + 9].copy_from_slice(b".comment\0");
        let msg = ModInfo::parse(Path::new("/x/user.o"), &bytes).unwrap_err().to_string();
        assert!(msg.contains("no .modinfo section"), "{msg}");
    }

    /// The host's compiler makes a real relocatable object with a `.modinfo` section: the parser
    /// reads what a toolchain writes, not only what the test's own writer makes.
    #[test]
    fn reads_an_object_the_host_compiler_made() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("m.c");
        std::fs::write(
            &src,
            "__attribute__((section(\".modinfo\"), used)) static const char a[] = \"depends=x,y\";\n\
             __attribute__((section(\".modinfo\"), used)) static const char b[] = \"alias=fs-m\";\n\
             __attribute__((section(\".modinfo\"), used)) static const char c[] = \"name=m\";\n",
        )
        .unwrap();
        let obj = dir.path().join("m.ko");
        let status = std::process::Command::new("cc").arg("-c").arg(&src).arg("-o").arg(&obj).status();
        match status {
            Ok(s) if s.success() => {}
            other => panic!("the host's cc could not compile a test object ({other:?}); scripts/setup.sh installs gcc"),
        }
        let info = ModInfo::parse(&obj, &std::fs::read(&obj).unwrap()).unwrap();
        assert_eq!(info.depends, ["x", "y"].map(ModuleName::new));
        assert_eq!(info.aliases, ["fs-m"]);
        assert_eq!(info.name, Some(ModuleName::new("m")));
    }

    #[test]
    fn compressed_modules_read_back_as_the_plain_object() {
        let plain = elf_with_modinfo(&["name=z"], true, false);
        let dir = tempfile::tempdir().unwrap();
        let xz = dir.path().join("z.ko.xz");
        let mut enc = xz2::write::XzEncoder::new(Vec::new(), 6);
        std::io::Write::write_all(&mut enc, &plain).unwrap();
        std::fs::write(&xz, enc.finish().unwrap()).unwrap();
        let zst = dir.path().join("z.ko.zst");
        std::fs::write(&zst, zstd::encode_all(plain.as_slice(), 3).unwrap()).unwrap();
        assert_eq!(read_module(&xz, Stored::Xz).unwrap(), plain);
        assert_eq!(read_module(&zst, Stored::Zstd).unwrap(), plain);
        std::fs::write(&xz, b"not xz").unwrap();
        let msg = read_module(&xz, Stored::Xz).unwrap_err().to_string();
        assert!(msg.contains("z.ko.xz") && msg.contains("decompress"), "{msg}");
        assert_eq!(Stored::of_file_name("a-b.ko.zst"), Some((Stored::Zstd, "a-b")));
        assert_eq!(Stored::of_file_name("modules.dep"), None);
    }
}
