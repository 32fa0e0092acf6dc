//! What the package step and its QA checks need to know about an ELF file, read (never written)
//! with the `object` crate: its type and machine, whether it still carries symbols or debug info,
//! its GNU build-id, its interpreter, the libraries it needs and any RPATH/RUNPATH.
//!
//! A file that is not ELF is `None`, not an error: a package's tree is mostly scripts and data. A
//! file that says it is ELF but cannot be read as one is an error, so a truncated binary is named
//! rather than shipped unchecked.

use object::elf;
use object::read::elf::{Dyn, FileHeader, ProgramHeader, SectionHeader};
use object::{Endianness, FileKind};

#[derive(Debug, thiserror::Error)]
#[error("not a readable ELF file: {0}")]
pub struct ElfError(String);

/// `e_type`, as far as packaging cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElfType {
    /// An object file or a kernel module (`ET_REL`): linked later, never stripped here.
    Relocatable,
    /// A program (`ET_EXEC`).
    Executable,
    /// A shared library or a position-independent program (`ET_DYN`).
    Shared,
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Elf {
    pub kind: ElfType,
    /// `e_machine` (`Arch::elf_machine`).
    pub machine: u16,
    /// A `.symtab` or any `.debug_*`/`.zdebug_*` section: what strip removes.
    pub unstripped: bool,
    /// The `NT_GNU_BUILD_ID` note, as lower-case hex.
    pub build_id: Option<String>,
    /// `PT_INTERP`: the dynamic loader a program asks for.
    pub interpreter: Option<String>,
    /// `DT_NEEDED`, in order.
    pub needed: Vec<String>,
    /// `DT_RPATH` and `DT_RUNPATH` entries.
    pub rpath: Vec<String>,
    /// The file ranges of the sections that are loaded (`SHF_ALLOC` with contents): what a
    /// program carries at run time, unlike its symbols and debug info.
    pub loaded: Vec<std::ops::Range<usize>>,
}

impl ElfType {
    fn of(e_type: u16) -> ElfType {
        match e_type {
            elf::ET_REL => ElfType::Relocatable,
            elf::ET_EXEC => ElfType::Executable,
            elf::ET_DYN => ElfType::Shared,
            _ => ElfType::Other,
        }
    }
}

/// Whether `data` starts like an ELF file.
pub fn is_elf(data: &[u8]) -> bool {
    data.starts_with(b"\x7fELF")
}

/// The ELF facts of `data`; `Ok(None)` when it is not ELF at all.
pub fn read(data: &[u8]) -> Result<Option<Elf>, ElfError> {
    if !is_elf(data) {
        return Ok(None);
    }
    match FileKind::parse(data).map_err(ElfError::from)? {
        FileKind::Elf32 => read_as::<elf::FileHeader32<Endianness>>(data).map(Some),
        FileKind::Elf64 => read_as::<elf::FileHeader64<Endianness>>(data).map(Some),
        other => Err(ElfError(format!("unexpected kind {other:?}"))),
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

impl From<object::read::Error> for ElfError {
    fn from(e: object::read::Error) -> ElfError {
        ElfError(e.to_string())
    }
}

fn read_as<H: FileHeader<Endian = Endianness>>(data: &[u8]) -> Result<Elf, ElfError> {
    let header = H::parse(data)?;
    let e = header.endian()?;
    let mut out = Elf {
        kind: ElfType::of(header.e_type(e)),
        machine: header.e_machine(e),
        unstripped: false,
        build_id: None,
        interpreter: None,
        needed: Vec::new(),
        rpath: Vec::new(),
        loaded: Vec::new(),
    };
    for ph in header.program_headers(e, data)? {
        if ph.p_type(e) == elf::PT_INTERP {
            let bytes = ph.data(e, data).map_err(|()| ElfError("PT_INTERP lies outside the file".into()))?;
            out.interpreter = Some(text(bytes.split(|b| *b == 0).next().unwrap_or_default()));
        }
    }
    let sections = header.sections(e, data)?;
    for section in sections.iter() {
        let name = sections.section_name(e, section)?;
        if section.sh_flags(e).into() & u64::from(elf::SHF_ALLOC) != 0 {
            if let Some((offset, size)) = section.file_range(e) {
                let (start, len) = (offset as usize, size as usize);
                if start.checked_add(len).is_some_and(|end| end <= data.len()) {
                    out.loaded.push(start..start + len);
                }
            }
        }
        if section.sh_type(e) == elf::SHT_SYMTAB || name.starts_with(b".debug_") || name.starts_with(b".zdebug_") {
            out.unstripped = true;
        }
        if let Some(mut notes) = section.notes(e, data)? {
            while let Some(note) = notes.next()? {
                if note.name() == elf::ELF_NOTE_GNU && note.n_type(e) == elf::NT_GNU_BUILD_ID {
                    out.build_id = Some(crate::digest::hex(note.desc()));
                }
            }
        }
        if let Some((entries, link)) = section.dynamic(e, data)? {
            let strings = sections.strings(e, data, link)?;
            for d in entries {
                let value = || d.string(e, strings).map(text);
                match d.tag32(e) {
                    Some(elf::DT_NEEDED) => out.needed.push(value()?),
                    Some(elf::DT_RPATH | elf::DT_RUNPATH) => {
                        out.rpath.extend(value()?.split(':').filter(|p| !p.is_empty()).map(String::from))
                    }
                    _ => {}
                }
            }
        }
    }
    Ok(out)
}

/// The loaded bytes of `data`: of each loaded section when it is ELF, of each ELF member's when it
/// is an `ar` archive (a static library); `None` when it is neither.
pub fn loaded_bytes(data: &[u8]) -> Result<Option<Vec<&[u8]>>, ElfError> {
    if let Some(f) = read(data)? {
        return Ok(Some(f.loaded.iter().map(|r| &data[r.clone()]).collect()));
    }
    if !data.starts_with(b"!<arch>\n") {
        return Ok(None);
    }
    let archive = object::read::archive::ArchiveFile::parse(data)?;
    let mut out = Vec::new();
    for member in archive.members() {
        let member = member?;
        let bytes = member.data(data)?;
        match read(bytes)? {
            Some(f) => out.extend(f.loaded.iter().map(|r| &bytes[r.clone()])),
            // A member that is not ELF (the symbol index is not a member) is data as it is.
            None => out.push(bytes),
        }
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The host's own programs are ELF of the host's machine; Debian links them with a build-id
    /// and an interpreter, and strips them.
    #[test]
    fn a_host_program_reads_with_its_loader_libraries_and_build_id() {
        let data = std::fs::read("/bin/ls").unwrap();
        let f = read(&data).unwrap().unwrap();
        assert!(matches!(f.kind, ElfType::Shared | ElfType::Executable));
        #[cfg(target_arch = "x86_64")]
        assert_eq!(f.machine, crate::arch::Arch::X86_64.elf_machine());
        assert!(f.interpreter.as_deref().is_some_and(|i| i.starts_with("/lib")), "{f:?}");
        assert!(f.needed.iter().any(|n| n.starts_with("libc.so")), "{f:?}");
        assert_eq!(f.build_id.as_ref().map(String::len), Some(40), "{f:?}");
        assert!(!f.unstripped, "{f:?}");
    }

    #[test]
    fn text_is_not_elf_and_a_cut_elf_is_an_error() {
        assert_eq!(read(b"#!/bin/sh\necho hi\n").unwrap(), None);
        let data = std::fs::read("/bin/ls").unwrap();
        assert!(read(&data[..40]).is_err());
    }
}
