//! Rootfs assembly: layers (the `rootfs/` skeleton, each package's staging directory, an overlay)
//! plus the device table → one sorted tree of normalised entries, ready to be written.
//!
//! Everything that could make two packs of the same content differ is dropped here: owners
//! (uid/gid 0 unless the table says otherwise), timestamps (the writer stamps SOURCE_DATE_EPOCH),
//! inode numbers (the writer counts), umask-dependent modes (regular files become 0644, or 0755
//! when any execute bit is set; directories 0755; symlinks 0777; setuid/setgid/sticky are cleared
//! and only the table can grant them), and directory read order (a `BTreeMap` keyed by path bytes,
//! so parents always precede their children). Symlinks are read, never followed, wherever they
//! point. Hard links are recognised within one layer by (device, inode) and kept as links.
//!
//! Precedence: a package must not silently replace another package's file, so two packages
//! providing the same non-directory path is an error naming both unless the later one was
//! explicitly allowed to override (a recipe decision the engine passes in). The `rootfs/` skeleton
//! and the overlay exist to hand-edit the image, so they win over package files whatever the order;
//! the overlay wins over the skeleton. A directory in one layer and a non-directory at the same
//! path in another is always an error: replacing either would silently drop files.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::table::{DeviceTable, Id, Rule, RuleKind};
use super::{Layer, LayerKind, PackError};

/// The name recorded as owner of entries the device table creates.
pub const TABLE_OWNER: &str = "device_table";

/// What an entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Dir,
    /// Contents are read from `source` when the archive is written.
    File {
        source: PathBuf,
        size: u64,
    },
    Symlink {
        target: Vec<u8>,
    },
    CharDev {
        major: u32,
        minor: u32,
    },
    BlockDev {
        major: u32,
        minor: u32,
    },
    Fifo,
}

impl Kind {
    pub fn is_dir(&self) -> bool {
        matches!(self, Kind::Dir)
    }
    /// The `S_IFMT` bits for cpio's mode field.
    pub fn type_bits(&self) -> u32 {
        match self {
            Kind::Dir => libc::S_IFDIR,
            Kind::File { .. } => libc::S_IFREG,
            Kind::Symlink { .. } => libc::S_IFLNK,
            Kind::CharDev { .. } => libc::S_IFCHR,
            Kind::BlockDev { .. } => libc::S_IFBLK,
            Kind::Fifo => libc::S_IFIFO,
        }
    }
    pub fn describe(&self) -> &'static str {
        match self {
            Kind::Dir => "a directory",
            Kind::File { .. } => "a file",
            Kind::Symlink { .. } => "a symlink",
            Kind::CharDev { .. } => "a character device",
            Kind::BlockDev { .. } => "a block device",
            Kind::Fifo => "a fifo",
        }
    }
}

/// Identity of a hard-linked inode in one layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LinkKey {
    layer: usize,
    dev: u64,
    ino: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub kind: Kind,
    /// Permission bits only (0..=0o7777).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// The layer name (package, `rootfs`, `overlay`) or [`TABLE_OWNER`].
    pub owner: String,
    /// Index into the request's layers; `usize::MAX` for table-made entries.
    layer: usize,
    link: Option<LinkKey>,
}

/// The assembled image: relative path bytes (`bin/sh`; the root is the empty path) → entry.
#[derive(Debug, Default)]
pub struct Tree {
    pub entries: BTreeMap<Vec<u8>, Node>,
}

/// How an entry relates to others sharing its inode, as the cpio writer needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkRole {
    /// Not hard-linked (or the only remaining name).
    Single,
    /// The first name (in path order) of a group of `count`.
    First { count: u32 },
    /// A later name; `first` is the first name's path.
    Later { first: Vec<u8>, count: u32, last: bool },
}

impl Tree {
    /// Builds the tree from `layers` (in order) and applies `table`.
    pub fn assemble(layers: &[Layer], table: &DeviceTable) -> Result<Tree, PackError> {
        let mut tree = Tree::default();
        tree.entries.insert(Vec::new(), dir_node("rootfs", usize::MAX));
        for (index, layer) in layers.iter().enumerate() {
            let meta = std::fs::metadata(&layer.dir).map_err(|source| PackError::LayerRead {
                layer: layer.name.clone(),
                path: layer.dir.clone(),
                source,
            })?;
            if !meta.is_dir() {
                return Err(PackError::LayerNotDir { layer: layer.name.clone(), path: layer.dir.clone() });
            }
            // The root belongs to the first layer that exists; its mode is normalised anyway.
            if index == 0 {
                tree.entries.insert(Vec::new(), dir_node(&layer.name, index));
            }
            tree.walk(layers, index, &layer.dir, &mut Vec::new())?;
        }
        tree.apply_table(table)?;
        Ok(tree)
    }

    fn walk(&mut self, layers: &[Layer], index: usize, dir: &Path, rel: &mut Vec<u8>) -> Result<(), PackError> {
        let layer = &layers[index];
        let read_err =
            |path: &Path, source| PackError::LayerRead { layer: layer.name.clone(), path: path.to_path_buf(), source };
        let mut children = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| read_err(dir, e))? {
            let entry = entry.map_err(|e| read_err(dir, e))?;
            children.push(entry.file_name());
        }
        // Sorted so that errors (the first conflict found) do not depend on directory order.
        children.sort();
        for name in children {
            let path = dir.join(&name);
            let meta = std::fs::symlink_metadata(&path).map_err(|e| read_err(&path, e))?;
            let ft = meta.file_type();
            let kind = if ft.is_dir() {
                Kind::Dir
            } else if ft.is_file() {
                Kind::File { source: path.clone(), size: meta.len() }
            } else if ft.is_symlink() {
                let target = std::fs::read_link(&path).map_err(|e| read_err(&path, e))?;
                Kind::Symlink { target: target.as_os_str().as_bytes().to_vec() }
            } else if ft.is_char_device() {
                Kind::CharDev { major: libc::major(meta.rdev()), minor: libc::minor(meta.rdev()) }
            } else if ft.is_block_device() {
                Kind::BlockDev { major: libc::major(meta.rdev()), minor: libc::minor(meta.rdev()) }
            } else if ft.is_fifo() {
                Kind::Fifo
            } else {
                return Err(PackError::Unsupported { layer: layer.name.clone(), path, what: "a socket" });
            };
            if matches!(layer.kind, LayerKind::Package { .. })
                && matches!(kind, Kind::CharDev { .. } | Kind::BlockDev { .. } | Kind::Fifo)
            {
                return Err(PackError::PackageSpecial { layer: layer.name.clone(), path, what: kind.describe() });
            }
            let mode = normalised_mode(&kind, meta.mode());
            let link = match kind {
                Kind::File { .. } if meta.nlink() > 1 => {
                    Some(LinkKey { layer: index, dev: meta.dev(), ino: meta.ino() })
                }
                _ => None,
            };
            let len = rel.len();
            if !rel.is_empty() {
                rel.push(b'/');
            }
            rel.extend_from_slice(name.as_bytes());
            let is_dir = kind.is_dir();
            let node = Node { kind, mode, uid: 0, gid: 0, owner: layer.name.clone(), layer: index, link };
            self.insert(layers, rel.clone(), node)?;
            if is_dir {
                self.walk(layers, index, &path, rel)?;
            }
            rel.truncate(len);
        }
        Ok(())
    }

    /// Adds `node` at `rel`, resolving a clash with what earlier layers put there.
    fn insert(&mut self, layers: &[Layer], rel: Vec<u8>, node: Node) -> Result<(), PackError> {
        let Some(existing) = self.entries.get(&rel) else {
            self.entries.insert(rel, node);
            return Ok(());
        };
        let name_of = |n: &Node| layers.get(n.layer).map_or(TABLE_OWNER.to_string(), |l| l.name.clone());
        if existing.kind.is_dir() && node.kind.is_dir() {
            return Ok(()); // merged: children are added by the walk; the first layer stays owner
        }
        if existing.kind.is_dir() != node.kind.is_dir() {
            return Err(PackError::TypeClash {
                path: display_path(&rel),
                first: name_of(existing),
                first_kind: existing.kind.describe(),
                second: name_of(&node),
                second_kind: node.kind.describe(),
            });
        }
        // Only layer entries reach here (the table is applied after every layer), so both
        // indices are valid; a missing one is treated as the highest precedence.
        let old_kind = layers.get(existing.layer).map_or(LayerKind::Overlay, |l| l.kind);
        let new_kind = layers.get(node.layer).map_or(LayerKind::Overlay, |l| l.kind);
        let replace = match (precedence(old_kind), precedence(new_kind)) {
            (old, new) if new > old => true,
            (old, new) if new < old => false,
            _ => match new_kind {
                LayerKind::Package { allow_override: true } => true,
                LayerKind::Package { allow_override: false }
                    if layers.get(node.layer).is_some_and(|l| l.replaces.contains(&name_of(existing))) =>
                {
                    true
                }
                LayerKind::Package { allow_override: false } | LayerKind::KernelModules => {
                    return Err(PackError::Conflict {
                        path: display_path(&rel),
                        first: name_of(existing),
                        second: name_of(&node),
                    })
                }
                LayerKind::Rootfs | LayerKind::Overlay => true,
            },
        };
        if replace {
            self.entries.insert(rel, node);
        }
        Ok(())
    }

    fn apply_table(&mut self, table: &DeviceTable) -> Result<(), PackError> {
        let mut ids = IdResolver::default();
        for rule in &table.rules {
            let uid = ids.resolve(self, &rule.uid, Database::Passwd, rule)?;
            let gid = ids.resolve(self, &rule.gid, Database::Group, rule)?;
            let rule_err = |message: String| PackError::TableRule { origin: rule.origin.clone(), message };
            match rule.kind {
                RuleKind::File => {
                    let node = self
                        .entries
                        .get_mut(&rule.path)
                        .ok_or_else(|| rule_err(format!("{} is not in the image", display_path(&rule.path))))?;
                    if !matches!(node.kind, Kind::File { .. }) {
                        return Err(rule_err(format!(
                            "{} is {}, not a file (use d or r for directories)",
                            display_path(&rule.path),
                            node.kind.describe()
                        )));
                    }
                    (node.mode, node.uid, node.gid) = (rule.mode, uid, gid);
                    // Every name of a hard-linked inode shares its metadata.
                    if let Some(key) = node.link {
                        for other in self.entries.values_mut().filter(|n| n.link == Some(key)) {
                            (other.mode, other.uid, other.gid) = (rule.mode, uid, gid);
                        }
                    }
                }
                RuleKind::Dir => {
                    match self.entries.get(&rule.path) {
                        Some(n) if !n.kind.is_dir() => {
                            return Err(rule_err(format!(
                                "{} is {} in {}, not a directory",
                                display_path(&rule.path),
                                n.kind.describe(),
                                n.owner
                            )))
                        }
                        Some(_) => {}
                        None => self.create(&rule.path, dir_node(TABLE_OWNER, usize::MAX), rule)?,
                    }
                    if let Some(n) = self.entries.get_mut(&rule.path) {
                        (n.mode, n.uid, n.gid) = (rule.mode, uid, gid);
                    }
                }
                RuleKind::Recursive => {
                    match self.entries.get(&rule.path) {
                        Some(n) if n.kind.is_dir() => {}
                        Some(n) => {
                            return Err(rule_err(format!(
                                "{} is {}, not a directory",
                                display_path(&rule.path),
                                n.kind.describe()
                            )))
                        }
                        None => return Err(rule_err(format!("{} is not in the image", display_path(&rule.path)))),
                    }
                    let mut prefix = rule.path.clone();
                    prefix.push(b'/');
                    let below = |p: &Vec<u8>| *p == rule.path || p.starts_with(&prefix);
                    for (_, n) in self.entries.iter_mut().filter(|(p, _)| below(p)) {
                        n.uid = uid;
                        n.gid = gid;
                        if !matches!(n.kind, Kind::Symlink { .. }) {
                            n.mode = rule.mode;
                        }
                    }
                }
                RuleKind::CharDev | RuleKind::BlockDev | RuleKind::Fifo => {
                    let kind = match rule.kind {
                        RuleKind::CharDev => Kind::CharDev { major: rule.major, minor: rule.minor },
                        RuleKind::BlockDev => Kind::BlockDev { major: rule.major, minor: rule.minor },
                        _ => Kind::Fifo,
                    };
                    if let Some(n) = self.entries.get(&rule.path) {
                        if n.kind.is_dir() {
                            return Err(rule_err(format!(
                                "{} is a directory in {}; a device cannot replace it",
                                display_path(&rule.path),
                                n.owner
                            )));
                        }
                    }
                    let node = Node {
                        kind,
                        mode: rule.mode,
                        uid,
                        gid,
                        owner: TABLE_OWNER.into(),
                        layer: usize::MAX,
                        link: None,
                    };
                    self.create(&rule.path, node, rule)?;
                }
            }
        }
        Ok(())
    }

    /// Inserts a table-made node, creating missing parent directories (0755, root).
    fn create(&mut self, path: &[u8], node: Node, rule: &Rule) -> Result<(), PackError> {
        for (i, _) in path.iter().enumerate().filter(|(_, b)| **b == b'/') {
            let parent = &path[..i];
            match self.entries.get(parent) {
                Some(n) if n.kind.is_dir() => {}
                Some(n) => {
                    return Err(PackError::TableRule {
                        origin: rule.origin.clone(),
                        message: format!(
                            "parent {} of {} is {} in {}",
                            display_path(parent),
                            display_path(path),
                            n.kind.describe(),
                            n.owner
                        ),
                    })
                }
                None => {
                    self.entries.insert(parent.to_vec(), dir_node(TABLE_OWNER, usize::MAX));
                }
            }
        }
        self.entries.insert(path.to_vec(), node);
        Ok(())
    }

    /// Hard-link roles for every entry that shares its inode with another remaining entry.
    pub fn link_roles(&self) -> HashMap<Vec<u8>, LinkRole> {
        let mut groups: HashMap<LinkKey, Vec<&Vec<u8>>> = HashMap::new();
        for (path, node) in &self.entries {
            if let Some(key) = node.link {
                groups.entry(key).or_default().push(path);
            }
        }
        let mut roles = HashMap::new();
        for members in groups.values().filter(|m| m.len() > 1) {
            // BTreeMap iteration order: members are already in path order.
            let count = u32::try_from(members.len()).unwrap_or(u32::MAX);
            roles.insert(members[0].clone(), LinkRole::First { count });
            for (i, m) in members.iter().enumerate().skip(1) {
                let last = i + 1 == members.len();
                roles.insert((*m).clone(), LinkRole::Later { first: members[0].clone(), count, last });
            }
        }
        roles
    }

    /// Number of immediate subdirectories of every directory (for the cpio nlink field).
    pub fn subdir_counts(&self) -> HashMap<Vec<u8>, u32> {
        let mut counts: HashMap<Vec<u8>, u32> = HashMap::new();
        for path in self.entries.iter().filter(|(p, n)| !p.is_empty() && n.kind.is_dir()).map(|(p, _)| p) {
            let parent = path.iter().rposition(|b| *b == b'/').map_or(&path[..0], |i| &path[..i]);
            *counts.entry(parent.to_vec()).or_default() += 1;
        }
        counts
    }
}

fn dir_node(owner: &str, layer: usize) -> Node {
    Node { kind: Kind::Dir, mode: 0o755, uid: 0, gid: 0, owner: owner.into(), layer, link: None }
}

/// Higher wins a clash between non-directories.
fn precedence(kind: LayerKind) -> u8 {
    match kind {
        LayerKind::Package { .. } | LayerKind::KernelModules => 0,
        LayerKind::Rootfs => 1,
        LayerKind::Overlay => 2,
    }
}

/// Modes as the layers' owners meant them, independent of umask and of who built them.
fn normalised_mode(kind: &Kind, raw: u32) -> u32 {
    match kind {
        Kind::Dir => crate::tree::normalised_mode(true, false, raw),
        Kind::File { .. } => crate::tree::normalised_mode(false, false, raw),
        Kind::Symlink { .. } => crate::tree::normalised_mode(false, true, raw),
        // Device nodes and fifos in a layer were made on purpose by whoever owns it (root): keep
        // their permission bits, but never setuid/setgid/sticky.
        Kind::CharDev { .. } | Kind::BlockDev { .. } | Kind::Fifo => raw & 0o777,
    }
}

/// `/`-prefixed, lossy path for messages and the manifest's readers.
pub fn display_path(rel: &[u8]) -> String {
    format!("/{}", String::from_utf8_lossy(rel))
}

#[derive(Clone, Copy)]
enum Database {
    Passwd,
    Group,
}

/// Resolves user and group names against the assembled image's own /etc/passwd and /etc/group.
#[derive(Default)]
struct IdResolver {
    passwd: Option<HashMap<String, u32>>,
    group: Option<HashMap<String, u32>>,
}

impl IdResolver {
    fn resolve(&mut self, tree: &Tree, id: &Id, db: Database, rule: &Rule) -> Result<u32, PackError> {
        let name = match id {
            Id::Num(n) => return Ok(*n),
            Id::Name(name) => name,
        };
        let (slot, file) = match db {
            Database::Passwd => (&mut self.passwd, "etc/passwd"),
            Database::Group => (&mut self.group, "etc/group"),
        };
        if slot.is_none() {
            *slot = Some(load_id_database(tree, file, rule)?);
        }
        slot.as_ref().and_then(|m| m.get(name)).copied().ok_or_else(|| PackError::TableRule {
            origin: rule.origin.clone(),
            message: format!("`{name}` is not in the image's /{file}"),
        })
    }
}

fn load_id_database(tree: &Tree, file: &str, rule: &Rule) -> Result<HashMap<String, u32>, PackError> {
    let err = |message: String| PackError::TableRule { origin: rule.origin.clone(), message };
    let source = match tree.entries.get(file.as_bytes()).map(|n| &n.kind) {
        Some(Kind::File { source, .. }) => source,
        _ => return Err(err(format!("names need the image's /{file}, which is missing or not a file"))),
    };
    let text = std::fs::read_to_string(source).map_err(|e| err(format!("reading {}: {e}", source.display())))?;
    let mut map = HashMap::new();
    for line in text.lines().filter(|l| !l.trim_start().starts_with('#')) {
        let fields: Vec<&str> = line.split(':').collect();
        // passwd: name:pw:uid:gid:…   group: name:pw:gid:…
        if let (Some(name), Some(id)) = (fields.first(), fields.get(2).and_then(|f| f.parse::<u32>().ok())) {
            map.entry(name.to_string()).or_insert(id);
        }
    }
    Ok(map)
}

/// Used by the manifest and tests: the name as the cpio archive stores it.
pub fn archive_name(rel: &[u8]) -> &[u8] {
    if rel.is_empty() {
        b"."
    } else {
        rel
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    fn layer(name: &str, dir: &Path, kind: LayerKind) -> Layer {
        Layer { name: name.into(), dir: dir.to_path_buf(), kind, replaces: Vec::new(), waive: Default::default() }
    }

    fn write(path: &Path, text: &str, mode: u32) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    fn node<'a>(t: &'a Tree, p: &str) -> &'a Node {
        t.entries.get(p.as_bytes()).unwrap_or_else(|| panic!("{p} missing"))
    }

    #[test]
    fn modes_are_normalised_and_symlinks_never_followed() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path().join("rootfs");
        write(&r.join("bin/tool"), "x", 0o4700);
        write(&r.join("etc/secret"), "x", 0o600);
        symlink("/nonexistent/far/away", r.join("dangling")).unwrap();
        symlink("loop", r.join("loop")).unwrap();
        symlink("..", r.join("bin/up")).unwrap();
        std::fs::set_permissions(r.join("etc"), std::fs::Permissions::from_mode(0o700)).unwrap();
        let t = Tree::assemble(&[layer("rootfs", &r, LayerKind::Rootfs)], &DeviceTable::default()).unwrap();
        assert_eq!(node(&t, "bin/tool").mode, 0o755);
        assert_eq!(node(&t, "etc/secret").mode, 0o644);
        assert_eq!(node(&t, "etc").mode, 0o755);
        assert_eq!(node(&t, "loop").kind, Kind::Symlink { target: b"loop".to_vec() });
        assert_eq!(node(&t, "dangling").kind, Kind::Symlink { target: b"/nonexistent/far/away".to_vec() });
        assert_eq!(node(&t, "bin/up").mode, 0o777);
        assert!(!t.entries.contains_key(b"bin/up/bin".as_slice()), "a symlink to a directory was followed");
    }

    #[test]
    fn two_packages_with_one_file_is_an_error_naming_both() {
        let d = tempfile::tempdir().unwrap();
        write(&d.path().join("a/usr/bin/x"), "a", 0o755);
        write(&d.path().join("b/usr/bin/x"), "b", 0o755);
        let layers = [
            layer("alpha", &d.path().join("a"), LayerKind::Package { allow_override: false }),
            layer("beta", &d.path().join("b"), LayerKind::Package { allow_override: false }),
        ];
        let msg = Tree::assemble(&layers, &DeviceTable::default()).unwrap_err().to_string();
        assert!(msg.contains("/usr/bin/x") && msg.contains("alpha") && msg.contains("beta"), "{msg}");
    }

    #[test]
    fn a_package_replaces_only_the_packages_it_names() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        write(&p.join("busybox/sbin/blkid"), "busybox", 0o755);
        write(&p.join("busybox/bin/mount"), "busybox", 0o755);
        write(&p.join("util-linux/sbin/blkid"), "util-linux", 0o755);
        write(&p.join("other/bin/mount"), "other", 0o755);
        let pkg = |name: &str| layer(name, &p.join(name), LayerKind::Package { allow_override: false });
        let layers = [pkg("busybox"), pkg("util-linux").replacing(vec!["busybox".into()])];
        let t = Tree::assemble(&layers, &DeviceTable::default()).unwrap();
        assert_eq!(node(&t, "sbin/blkid").owner, "util-linux");
        // `other` replaces util-linux, not busybox: their shared /bin/mount is still a conflict.
        let layers = [pkg("busybox"), pkg("other").replacing(vec!["util-linux".into()])];
        let err = Tree::assemble(&layers, &DeviceTable::default()).unwrap_err().to_string();
        assert!(
            err.contains("/bin/mount is installed by both busybox and other")
                && err.contains("add replaces = [\"busybox\"] to other's recipe"),
            "{err}"
        );
    }

    #[test]
    fn an_allowed_override_and_the_skeleton_and_overlay_win_over_packages() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        write(&p.join("root/etc/motd"), "skeleton", 0o644);
        write(&p.join("a/etc/motd"), "pkg a", 0o644);
        write(&p.join("a/bin/x"), "a", 0o755);
        write(&p.join("b/bin/x"), "b", 0o755);
        write(&p.join("a/etc/issue"), "a", 0o644);
        write(&p.join("over/etc/issue"), "overlay", 0o644);
        let layers = [
            layer("rootfs", &p.join("root"), LayerKind::Rootfs),
            layer("a", &p.join("a"), LayerKind::Package { allow_override: false }),
            layer("b", &p.join("b"), LayerKind::Package { allow_override: true }),
            layer("overlay", &p.join("over"), LayerKind::Overlay),
        ];
        let t = Tree::assemble(&layers, &DeviceTable::default()).unwrap();
        assert_eq!(node(&t, "etc/motd").owner, "rootfs");
        assert_eq!(node(&t, "bin/x").owner, "b");
        assert_eq!(node(&t, "etc/issue").owner, "overlay");
        assert_eq!(node(&t, "etc").owner, "rootfs");
    }

    #[test]
    fn a_directory_against_a_symlink_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        std::fs::create_dir_all(p.join("root")).unwrap();
        symlink("usr/lib", p.join("root/lib")).unwrap();
        write(&p.join("a/lib/libc.so"), "elf", 0o755);
        let layers = [
            layer("rootfs", &p.join("root"), LayerKind::Rootfs),
            layer("musl", &p.join("a"), LayerKind::Package { allow_override: false }),
        ];
        let msg = Tree::assemble(&layers, &DeviceTable::default()).unwrap_err().to_string();
        assert!(
            msg.contains("/lib") && msg.contains("rootfs") && msg.contains("musl") && msg.contains("symlink"),
            "{msg}"
        );
    }

    #[test]
    fn table_creates_devices_with_parents_and_grants_special_bits() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path().join("rootfs");
        write(&r.join("bin/busybox"), "elf", 0o755);
        write(&r.join("etc/passwd"), "root:x:0:0::/root:/bin/sh\nwww:x:33:44::/:/bin/false\n", 0o644);
        write(&r.join("etc/group"), "root:x:0:\nwww:x:55:\n", 0o644);
        write(&r.join("srv/a/b"), "x", 0o644);
        let table = DeviceTable::parse(
            "/dev/console c 600 0 0 5 1\n/bin/busybox f 4755 0 0\n/tmp d 1777 0 0\n/srv r 750 www www\n",
            Path::new("t"),
        )
        .unwrap();
        let t = Tree::assemble(&[layer("rootfs", &r, LayerKind::Rootfs)], &table).unwrap();
        let console = node(&t, "dev/console");
        assert_eq!(
            (console.kind.clone(), console.mode, console.owner.as_str()),
            (Kind::CharDev { major: 5, minor: 1 }, 0o600, TABLE_OWNER)
        );
        assert_eq!(node(&t, "dev").mode, 0o755);
        assert_eq!(node(&t, "bin/busybox").mode, 0o4755);
        assert_eq!(node(&t, "tmp").mode, 0o1777);
        let b = node(&t, "srv/a/b");
        assert_eq!((b.mode, b.uid, b.gid), (0o750, 33, 55));
    }

    #[test]
    fn table_errors_name_the_line() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path().join("rootfs");
        write(&r.join("etc/x"), "x", 0o644);
        for (text, needle) in [
            ("/bin/missing f 755 0 0\n", "/bin/missing is not in the image"),
            ("/etc f 755 0 0\n", "not a file"),
            ("/etc/x/dev c 600 0 0 1 1\n", "parent /etc/x"),
            ("/etc/x f 644 nobody 0\n", "/etc/passwd"),
        ] {
            let table = DeviceTable::parse(text, Path::new("dt.txt")).unwrap();
            let msg = Tree::assemble(&[layer("rootfs", &r, LayerKind::Rootfs)], &table).unwrap_err().to_string();
            assert!(msg.contains("dt.txt:1") && msg.contains(needle), "{text:?} → {msg}");
        }
    }

    #[test]
    fn hard_links_form_groups_in_path_order_and_lose_overridden_names() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        write(&p.join("a/bin/c"), "x", 0o755);
        std::fs::hard_link(p.join("a/bin/c"), p.join("a/bin/a")).unwrap();
        std::fs::hard_link(p.join("a/bin/c"), p.join("a/bin/b")).unwrap();
        std::fs::hard_link(p.join("a/bin/c"), p.join("a/bin/z")).unwrap();
        write(&p.join("root/bin/z"), "mine", 0o755);
        let layers = [
            layer("rootfs", &p.join("root"), LayerKind::Rootfs),
            layer("a", &p.join("a"), LayerKind::Package { allow_override: false }),
        ];
        let t = Tree::assemble(&layers, &DeviceTable::default()).unwrap();
        let roles = t.link_roles();
        assert_eq!(roles[b"bin/a".as_slice()], LinkRole::First { count: 3 });
        assert_eq!(roles[b"bin/b".as_slice()], LinkRole::Later { first: b"bin/a".to_vec(), count: 3, last: false });
        assert_eq!(roles[b"bin/c".as_slice()], LinkRole::Later { first: b"bin/a".to_vec(), count: 3, last: true });
        assert!(!roles.contains_key(b"bin/z".as_slice()));
        assert_eq!(t.subdir_counts()[b"".as_slice()], 1);
    }
}
