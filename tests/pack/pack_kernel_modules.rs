//! Kernel modules in the image, on Debian's real kernels (both arches, fetched by
//! scripts/fetch-test-assets.sh): ovm's resolution against kmod's own `depmod` + `modprobe
//! --show-depends` on the same tree, and what `ovm pack` puts under /lib/modules.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::pack_support;

use ovm::kernel_modules::{resolve, Request};
use ovm::pack::manifest::{EntryType, Manifest};
use pack_support::*;

/// Modules the comparison covers: the default list, each group's main member and some with deep
/// or soft dependencies (btrfs, raid456, nfs).
const NAMES: &[&str] = &[
    "virtio_blk",
    "virtio_pci",
    "virtio_scsi",
    "virtio_net",
    "ext4",
    "dm_crypt",
    "dm-mod",
    "xfs",
    "vfat",
    "nvme",
    "ahci",
    "usb_storage",
    "uas",
    "xhci_pci",
    "btrfs",
    "raid456",
    "nfs",
    "crc32c",
    "sd_mod",
];

/// `.cache/test-assets/ARCH/kernel` and the one kernel version in it.
fn kernel(arch: &str) -> (PathBuf, String) {
    let dir = repo_root().join(".cache/test-assets").join(arch).join("kernel");
    let versions: Vec<String> = std::fs::read_dir(dir.join("lib/modules"))
        .unwrap_or_else(|e| panic!("{}: {e}: {SETUP_HINT} (it calls scripts/fetch-test-assets.sh)", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(versions.len(), 1, "{}: one kernel expected, found {versions:?}", dir.display());
    let version = versions.into_iter().next().unwrap();
    (dir, version)
}

/// `lib/modules/VERSION` of `from` as a tree of symlinks under a new root, where depmod may write
/// (the assets stay untouched).
fn symlink_farm(from: &Path, version: &str) -> tempfile::TempDir {
    fn link(src: &Path, dst: &Path) {
        std::fs::create_dir_all(dst).unwrap();
        for entry in std::fs::read_dir(src).unwrap() {
            let entry = entry.unwrap();
            let to = dst.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                link(&entry.path(), &to);
            } else {
                std::os::unix::fs::symlink(entry.path(), &to).unwrap();
            }
        }
    }
    let farm = tempfile::tempdir().unwrap();
    link(&from.join("lib/modules").join(version), &farm.path().join("lib/modules").join(version));
    farm
}

/// The module name of a path as modprobe prints it (`…/dm-crypt.ko` → `dm_crypt`).
fn name_of(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap();
    file.strip_suffix(".ko").unwrap_or(file).replace('-', "_")
}

/// What `modprobe --show-depends NAME` inserts, by module name.
fn modprobe_set(root: &Path, version: &str, name: &str) -> BTreeSet<String> {
    let out = run(Command::new("modprobe").arg("-d").arg(root).args(["-S", version, "--show-depends", name]));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("insmod "))
        .map(|l| name_of(l.split_whitespace().next().unwrap()))
        .collect()
}

/// The tree's file of module `name` of `plan` (from the plan's layer paths).
fn plan_path(dir: &Path, version: &str, plan: &ovm::kernel_modules::Plan, name: &str) -> PathBuf {
    let prefix = format!("lib/modules/{version}/");
    let rel = plan
        .paths()
        .filter_map(|p| p.strip_prefix(&prefix))
        .find(|p| p.ends_with(".ko") && name_of(p) == name)
        .unwrap_or_else(|| panic!("{name} is not in the plan"));
    dir.join(&prefix).join(rel)
}

/// The names of a module's second and later `softdep=` lines, as kmod's `modinfo` prints them.
fn later_softdeps(module: &Path) -> Vec<String> {
    let out = run(Command::new("modinfo").args(["-F", "softdep"]).arg(module));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .skip(1)
        .flat_map(|l| l.split_whitespace().filter(|w| !w.ends_with(':')).map(str::to_string).collect::<Vec<_>>())
        .collect()
}

/// What kmod resolves `name` to (`modprobe --resolve-alias`): module names, one per match.
fn resolve_alias(root: &Path, version: &str, name: &str) -> Vec<String> {
    let out = run(Command::new("modprobe").arg("-d").arg(root).args(["-S", version, "--resolve-alias", name]));
    String::from_utf8(out.stdout).unwrap().lines().map(|l| l.replace('-', "_")).collect()
}

/// The lines /etc/ovm/softdeps must hold for `modules` (file paths), by kmod's own tools: per
/// `softdep=` name of each (every line, as ovm carries them all), each module kmod resolves it to,
/// as `pre|post NAME` followed by that module's `cpu:` aliases as `modinfo` prints them.
fn kmod_softdeps(root: &Path, version: &str, modules: &[PathBuf]) -> BTreeSet<String> {
    let mut want = BTreeSet::new();
    for module in modules {
        let out = run(Command::new("modinfo").args(["-F", "softdep"]).arg(module));
        let mut when = "";
        for word in String::from_utf8(out.stdout).unwrap().split_whitespace() {
            match word {
                "pre:" => when = "pre",
                "post:" => when = "post",
                name => {
                    for target in resolve_alias(root, version, name) {
                        let path = String::from_utf8(
                            run(Command::new("modinfo").arg("-b").arg(root).args(["-k", version, "-n", &target]))
                                .stdout,
                        )
                        .unwrap();
                        let aliases = run(Command::new("modinfo").args(["-F", "alias"]).arg(path.trim())).stdout;
                        let mut line = format!("{when} {target}");
                        for alias in String::from_utf8(aliases).unwrap().lines().filter(|a| a.starts_with("cpu:")) {
                            line.push(' ');
                            line.push_str(alias);
                        }
                        want.insert(line);
                    }
                }
            }
        }
    }
    want
}

/// modules.dep as `path → deps in order`.
fn parse_dep(text: &str) -> BTreeMap<String, Vec<String>> {
    text.lines()
        .map(|l| {
            let (m, deps) = l.split_once(':').unwrap_or_else(|| panic!("no `:` in `{l}`"));
            (m.to_string(), deps.split_whitespace().map(str::to_string).collect())
        })
        .collect()
}

fn compare_with_kmod(arch: &str) {
    require_tool("depmod");
    require_tool("modprobe");
    require_tool("modinfo");
    let (dir, version) = kernel(arch);
    let farm = symlink_farm(&dir, &version);
    run(Command::new("depmod").arg("-b").arg(farm.path()).arg(&version));
    let kmod_dep = parse_dep(
        &std::fs::read_to_string(farm.path().join("lib/modules").join(&version).join("modules.dep")).unwrap(),
    );
    let line = regex_free_line_check;
    for name in NAMES {
        let modules = vec![name.to_string()];
        let plan = resolve(&Request { modules_from: &dir, version: None, modules: &modules, groups: &[] })
            .unwrap_or_else(|e| panic!("{arch} {name}: {e}"));
        let ours: BTreeSet<String> = plan.modules.iter().map(|m| m.to_string()).collect();
        let theirs = modprobe_set(farm.path(), &version, name);
        // kmod honours only the first `softdep=` of a module (btrfs has four: blake2b-256,
        // sha256, xxhash64, crypto-crc32c); ovm takes them all, so it may carry more, and only
        // what the later ones bring.
        let mut ignored_by_kmod = BTreeSet::new();
        for m in &ours {
            for soft in later_softdeps(&plan_path(&dir, &version, &plan, m)) {
                ignored_by_kmod.extend(modprobe_set(farm.path(), &version, &soft));
            }
        }
        assert!(
            ours.is_superset(&theirs),
            "{arch} {name}: ovm's closure {ours:?} lacks some of `modprobe --show-depends {name}`: {theirs:?}"
        );
        let extra: BTreeSet<_> = ours.difference(&theirs).cloned().collect();
        assert!(
            extra.is_subset(&ignored_by_kmod),
            "{arch} {name}: ovm carries {extra:?} beyond `modprobe --show-depends {name}`, not all from softdeps kmod skips ({ignored_by_kmod:?})"
        );
        if ignored_by_kmod.is_empty() {
            assert_eq!(ours, theirs, "{arch} {name}");
        }

        let out = tempfile::tempdir().unwrap();
        plan.materialize(&out.path().join("layer")).unwrap();
        let dep_text =
            std::fs::read_to_string(out.path().join("layer/lib/modules").join(&version).join("modules.dep")).unwrap();
        let dep = parse_dep(&dep_text);
        assert_eq!(dep.len(), ours.len(), "{arch} {name}: one modules.dep line per module\n{dep_text}");
        for l in dep_text.lines() {
            line(l);
        }
        for (module, deps) in &dep {
            let want = kmod_dep.get(module).unwrap_or_else(|| panic!("{arch}: depmod has no line for {module}"));
            assert_eq!(
                deps.iter().collect::<BTreeSet<_>>(),
                want.iter().collect::<BTreeSet<_>>(),
                "{arch} {module}: ovm's dependencies against depmod's"
            );
            // Load order: modprobe loads a line from its end, so a dependency's own dependencies
            // (depmod's line for it) must come after it.
            for (k, d) in deps.iter().enumerate() {
                for dd in &kmod_dep[d] {
                    let at = deps.iter().position(|x| x == dd).unwrap();
                    assert!(at > k, "{arch} {module}: {dd} must follow {d}, which needs it: {deps:?}");
                }
            }
        }
    }
}

/// busybox's modprobe reads `PATH.ko:` then space-separated `PATH.ko`, relative to the directory.
fn regex_free_line_check(l: &str) {
    let (m, deps) = l.split_once(": ").map_or((l.trim_end_matches(':'), ""), |(m, d)| (m, d));
    assert!(l.ends_with(':') || l.contains(": "), "`{l}`");
    for p in std::iter::once(m).chain(deps.split(' ').filter(|d| !d.is_empty())) {
        assert!(p.ends_with(".ko") && !p.starts_with('/') && !p.contains(char::is_whitespace), "`{p}` in `{l}`");
    }
}

#[test]
fn resolution_matches_kmods_modprobe_on_debians_x86_64_kernel() {
    compare_with_kmod("x86_64");
}

#[test]
fn resolution_matches_kmods_modprobe_on_debians_aarch64_kernel() {
    compare_with_kmod("aarch64");
}

fn kernel_config(dir: &Path, modules: &[&str]) -> String {
    let list: Vec<String> = modules.iter().map(|m| format!("{m:?}")).collect();
    format!("[kernel]\nmodules_from = {:?}\nmodules = [{}]\n", dir.display().to_string(), list.join(", "))
}

fn manifest(proj: &Path, arch: &str) -> Manifest {
    Manifest::parse(&std::fs::read_to_string(proj.join("output").join(arch).join("manifest.txt")).unwrap()).unwrap()
}

/// `ovm pack` puts exactly the closure under /lib/modules/VERSION (plus the four index files) and
/// /etc/ovm/modules lists the names the config gave; another list gives another image.
#[test]
fn ovm_pack_carries_exactly_the_closure_and_the_load_list() {
    let (dir, version) = kernel("x86_64");
    let proj = new_project();
    let p = proj.path();
    write(&p.join("rootfs/init"), b"#!/bin/sh\n", 0o755);
    let names = ["virtio_blk", "virtio_pci", "ext4", "dm-crypt"];
    std::fs::write(p.join("config/ovm.toml"), kernel_config(&dir, &names)).unwrap();
    let out = ovm_in(p, &["pack", "x86_64"]);
    assert!(out.status.success(), "{}", text(&out));
    let m = manifest(p, "x86_64");

    let farm = symlink_farm(&dir, &version);
    run(Command::new("depmod").arg("-b").arg(farm.path()).arg(&version));
    let mut want: BTreeSet<String> = BTreeSet::new();
    for n in names {
        want.extend(modprobe_set(farm.path(), &version, n));
    }
    let prefix = format!("/lib/modules/{version}/");
    let files: Vec<_> = m
        .entries
        .iter()
        .filter(|e| e.kind == EntryType::File && e.path.starts_with(prefix.as_bytes()))
        .map(|e| (String::from_utf8(e.path[prefix.len()..].to_vec()).unwrap(), e))
        .collect();
    let kos: BTreeSet<String> = files.iter().filter(|(p, _)| p.ends_with(".ko")).map(|(p, _)| name_of(p)).collect();
    assert_eq!(kos, want, "the image's modules against modprobe --show-depends {names:?}");
    let index: BTreeSet<&str> = files.iter().filter(|(p, _)| !p.ends_with(".ko")).map(|(p, _)| p.as_str()).collect();
    assert_eq!(index, BTreeSet::from(["modules.alias", "modules.builtin", "modules.dep", "modules.softdep"]));
    // Every module is byte for byte the tree's (Debian's are plain .ko).
    for (rel, e) in files.iter().filter(|(p, _)| p.ends_with(".ko")) {
        let src = dir.join("lib/modules").join(&version).join(rel);
        assert_eq!(e.sha256.as_deref(), Some(sha256_file(&src).as_str()), "{rel}");
        assert_eq!(e.owner, "[kernel]");
    }
    let load = m.entries.iter().find(|e| e.path == b"/etc/ovm/modules").expect("/etc/ovm/modules");
    let listed = "virtio_blk\nvirtio_pci\next4\ndm-crypt\n";
    assert_eq!(load.sha256.as_deref(), Some(ovm::digest::sha256_hex(listed.as_bytes()).as_str()));
    // /etc/ovm/softdeps (busybox's modprobe ignores modules.softdep): what kmod resolves the
    // closure's soft dependencies to — here crc32c_intel with its SSE4.2 cpu: alias and
    // crc32c_generic — each once, `pre` lines before `post` ones.
    let layers: Vec<_> = std::fs::read_dir(p.join(".cache/kernel-modules/x86_64")).unwrap().collect();
    let layer = layers[0].as_ref().unwrap().path();
    let soft = std::fs::read_to_string(layer.join("etc/ovm/softdeps")).unwrap();
    let lines: Vec<&str> = soft.lines().collect();
    let paths: Vec<PathBuf> =
        files.iter().filter(|(p, _)| p.ends_with(".ko")).map(|(p, _)| farm.path().join(&prefix[1..]).join(p)).collect();
    assert_eq!(
        lines.iter().map(|l| l.to_string()).collect::<BTreeSet<_>>(),
        kmod_softdeps(farm.path(), &version, &paths)
    );
    assert_eq!(lines.len(), lines.iter().collect::<BTreeSet<_>>().len(), "each once: {soft}");
    assert!(lines.windows(2).all(|w| !(w[0].starts_with("post") && w[1].starts_with("pre"))), "{soft}");
    assert!(lines.iter().any(|l| l.starts_with("pre crc32c_intel cpu:type:x86,")), "{soft}");
    assert!(lines.contains(&"pre crc32c_generic"), "{soft}");
    let first = sha256_file(&p.join("output/x86_64/initrd.cpio.gz"));

    // Same config: same image. Another list: another image, without the dropped modules.
    assert!(ovm_in(p, &["pack", "x86_64"]).status.success());
    assert_eq!(sha256_file(&p.join("output/x86_64/initrd.cpio.gz")), first);
    std::fs::write(p.join("config/ovm.toml"), kernel_config(&dir, &["virtio_blk", "ext4"])).unwrap();
    let out = ovm_in(p, &["pack", "x86_64"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_ne!(sha256_file(&p.join("output/x86_64/initrd.cpio.gz")), first);
    let m = manifest(p, "x86_64");
    assert!(!m.entries.iter().any(|e| e.path.ends_with(b"/dm-crypt.ko")), "dm-crypt left the list");
    assert_eq!(
        std::fs::read_dir(p.join(".cache/kernel-modules/x86_64")).unwrap().count(),
        1,
        "the layer of the old list is removed"
    );
}

#[test]
fn an_unknown_module_or_a_missing_tree_fails_the_pack_with_a_hint() {
    let (dir, _) = kernel("x86_64");
    let proj = new_project();
    let p = proj.path();
    write(&p.join("rootfs/init"), b"#!/bin/sh\n", 0o755);
    std::fs::write(p.join("config/ovm.toml"), kernel_config(&dir, &["ext4", "virtio_bkl"])).unwrap();
    let out = ovm_in(p, &["pack", "x86_64"]);
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(1), "{msg}");
    assert!(msg.contains("`virtio_bkl`") && msg.contains("did you mean `virtio_blk`?"), "{msg}");
    assert!(msg.contains("config/ovm.toml"), "{msg}");

    std::fs::write(p.join("config/ovm.toml"), "[kernel]\nmodules_from = \"kernels/ARCH\"\nmodules = [\"ext4\"]\n")
        .unwrap();
    let msg = text(&ovm_in(p, &["pack", "aarch64"]));
    assert!(
        msg.contains("kernels/aarch64") && msg.contains("scripts/setup.sh") && msg.contains("modules_from"),
        "{msg}"
    );
}

/// Every group loads something on both of Debian's kernels, and the members it skips are ones the
/// kernel really lacks (neither a module file nor built in).
#[test]
fn every_group_resolves_on_both_kernels() {
    for arch in ["x86_64", "aarch64"] {
        let (dir, version) = kernel(arch);
        let tree = dir.join("lib/modules").join(&version);
        let builtin = std::fs::read_to_string(tree.join("modules.builtin")).unwrap();
        for group in ovm::kernel_modules::Group::ALL {
            let plan = resolve(&Request { modules_from: &dir, version: None, modules: &[], groups: &[group] })
                .unwrap_or_else(|e| panic!("{arch} {group}: {e}"));
            assert!(!plan.load.is_empty(), "{arch} {group}: loads nothing");
            for member in group.members() {
                if plan.load.iter().any(|l| l == member) {
                    continue;
                }
                let out = run(Command::new("find").arg(&tree).arg("-name").arg(format!("{member}.ko*")));
                let dashed =
                    run(Command::new("find").arg(&tree).arg("-name").arg(format!("{}.ko*", member.replace('_', "-"))));
                assert!(
                    out.stdout.is_empty() && dashed.stdout.is_empty(),
                    "{arch} {group}: {member} exists but was skipped"
                );
                let in_builtin = builtin.lines().any(|l| name_of(l) == *member);
                assert!(!in_builtin, "{arch} {group}: {member} is built in and need not be listed");
            }
        }
    }
}
