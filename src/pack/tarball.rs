//! The image's tree as a tar archive: the `tar` output type of a named image, a root file
//! system to unpack onto a disk or import as a container rather than for the kernel to unpack.
//!
//! The same entries, metadata and order as the cpio ([`super::write_archive`]), written so that
//! the bytes depend on the tree alone: GNU headers (a name or link target over 100 bytes as GNU's
//! long-name entries), every mtime the pack's one, numeric ids only (no user or group names),
//! no access or change times. A hard-linked file's data goes with its first name and each later
//! name is a link entry to it, as tar readers expect (cpio carries it on the last name).

use std::ffi::OsStr;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::tree::{display_path, Kind, LinkRole, Tree};
use super::PackError;

/// Writes `tree` to `out` as a tar archive (with the two zero blocks that end it).
pub fn write_tar<W: Write>(tree: &Tree, mtime: u64, out: W) -> Result<W, PackError> {
    let roles = tree.link_roles();
    let mut builder = tar::Builder::new(out);
    for (rel, node) in &tree.entries {
        let tar_err = |source| PackError::Tar { entry: display_path(rel), source };
        // The root as `./`, every other entry relative to it, directories with a trailing slash.
        let mut name = if rel.is_empty() { b".".to_vec() } else { rel.clone() };
        if node.kind.is_dir() {
            name.push(b'/');
        }
        let path = Path::new(OsStr::from_bytes(&name));
        let mut header = tar::Header::new_gnu();
        header.set_mode(node.mode);
        header.set_uid(u64::from(node.uid));
        header.set_gid(u64::from(node.gid));
        header.set_mtime(mtime);
        header.set_size(0);
        match &node.kind {
            Kind::Dir => {
                header.set_entry_type(tar::EntryType::Directory);
                builder.append_data(&mut header, path, io::empty()).map_err(tar_err)?;
            }
            Kind::File { source, size } => match roles.get(rel) {
                Some(LinkRole::Later { first, .. }) => {
                    header.set_entry_type(tar::EntryType::Link);
                    let target = Path::new(OsStr::from_bytes(first));
                    builder.append_link(&mut header, path, target).map_err(tar_err)?;
                }
                _ => {
                    let changed = || PackError::Changed { path: source.clone(), owner: node.owner.clone() };
                    let data = std::fs::read(source).map_err(|e| PackError::ReadFile {
                        path: source.clone(),
                        owner: node.owner.clone(),
                        source: e,
                    })?;
                    if data.len() as u64 != *size {
                        return Err(changed());
                    }
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_size(*size);
                    builder.append_data(&mut header, path, data.as_slice()).map_err(tar_err)?;
                }
            },
            Kind::Symlink { target } => {
                header.set_entry_type(tar::EntryType::Symlink);
                builder.append_link(&mut header, path, Path::new(OsStr::from_bytes(target))).map_err(tar_err)?;
            }
            Kind::CharDev { major, minor } | Kind::BlockDev { major, minor } => {
                let kind = if matches!(node.kind, Kind::CharDev { .. }) {
                    tar::EntryType::Char
                } else {
                    tar::EntryType::Block
                };
                header.set_entry_type(kind);
                header.set_device_major(*major).map_err(tar_err)?;
                header.set_device_minor(*minor).map_err(tar_err)?;
                builder.append_data(&mut header, path, io::empty()).map_err(tar_err)?;
            }
            Kind::Fifo => {
                header.set_entry_type(tar::EntryType::Fifo);
                builder.append_data(&mut header, path, io::empty()).map_err(tar_err)?;
            }
        }
    }
    builder.into_inner().map_err(|source| PackError::Tar { entry: "the end of the archive".into(), source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pack::table::DeviceTable;
    use crate::pack::Layer;
    use std::io::Read;
    use std::os::unix::fs::symlink;

    /// A tree with every kind the tar writer handles: a directory, files (one with a name past
    /// tar's 100 bytes), a hard-linked pair, a symlink, and the device table's console node.
    fn tree(root: &Path) -> Tree {
        let r = root.join("rootfs");
        std::fs::create_dir_all(r.join("bin")).unwrap();
        std::fs::write(r.join("bin/tool"), "tool's bytes").unwrap();
        std::fs::hard_link(r.join("bin/tool"), r.join("bin/tool2")).unwrap();
        symlink("tool", r.join("bin/alias")).unwrap();
        let long = format!("usr/share/{}", "n".repeat(120));
        std::fs::create_dir_all(r.join(&long).parent().unwrap()).unwrap();
        std::fs::write(r.join(&long), "long").unwrap();
        let table =
            DeviceTable::parse("/dev d 755 0 0 - - - - -\n/dev/console c 600 0 5 5 1 - - -\n", Path::new("t")).unwrap();
        Tree::assemble(&[Layer::rootfs(&r)], &table).unwrap()
    }

    #[test]
    fn the_tree_as_tar_is_deterministic_and_keeps_links_devices_and_long_names() {
        let d = tempfile::tempdir().unwrap();
        let t = tree(d.path());
        let a = write_tar(&t, 1_700_000_000, Vec::new()).unwrap();
        let b = write_tar(&t, 1_700_000_000, Vec::new()).unwrap();
        assert!(a == b, "two writes of one tree differ");

        let mut seen = Vec::new();
        let mut archive = tar::Archive::new(a.as_slice());
        for entry in archive.entries().unwrap() {
            let mut e = entry.unwrap();
            let h = e.header().clone();
            let path = e.path().unwrap().to_string_lossy().into_owned();
            assert_eq!(h.mtime().unwrap(), 1_700_000_000, "{path}");
            assert!(h.username().unwrap().unwrap_or_default().is_empty(), "{path}: a user name");
            let what = match h.entry_type() {
                tar::EntryType::Regular => {
                    let mut data = String::new();
                    e.read_to_string(&mut data).unwrap();
                    format!("file {data}")
                }
                tar::EntryType::Link => format!("link {}", e.link_name().unwrap().unwrap().display()),
                tar::EntryType::Symlink => format!("symlink {}", e.link_name().unwrap().unwrap().display()),
                tar::EntryType::Char => {
                    format!(
                        "char {}:{} gid {}",
                        h.device_major().unwrap().unwrap(),
                        h.device_minor().unwrap().unwrap(),
                        h.gid().unwrap()
                    )
                }
                tar::EntryType::Directory => "dir".into(),
                other => format!("{other:?}"),
            };
            seen.push(format!("{path} {what}"));
        }
        let long = format!("usr/share/{}", "n".repeat(120));
        for want in [
            "./ dir".to_string(),
            "bin/alias symlink tool".into(),
            "bin/tool file tool's bytes".into(),
            "bin/tool2 link bin/tool".into(),
            "dev/console char 5:1 gid 5".into(),
            format!("{long} file long"),
        ] {
            assert!(seen.contains(&want), "`{want}` not in {seen:#?}");
        }
        assert_eq!(seen.len(), t.entries.len(), "{seen:#?}");
    }
}
