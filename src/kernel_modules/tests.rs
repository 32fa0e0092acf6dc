//! Resolution on synthetic trees of tiny ELF objects (`modinfo::tests::elf_with_modinfo`); the
//! comparison with kmod's own modprobe on Debian's kernels is the pack test group's.

use super::modinfo::tests::elf_with_modinfo;
use super::*;

const V: &str = "6.1.0-test";

/// Writes a module of `fields` (vermagic added) at `kernel/REL`, compressed as `REL`'s suffix says.
fn module(root: &Path, rel: &str, fields: &[&str]) -> Vec<u8> {
    let vermagic = format!("vermagic={V} SMP mod_unload ");
    let mut all: Vec<&str> = fields.to_vec();
    all.push(&vermagic);
    let plain = elf_with_modinfo(&all, true, false);
    let path = root.join("lib/modules").join(V).join("kernel").join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let bytes = match Stored::of_file_name(rel.rsplit('/').next().unwrap()).unwrap().0 {
        Stored::Plain => plain.clone(),
        Stored::Xz => {
            let mut enc = xz2::write::XzEncoder::new(Vec::new(), 6);
            io::Write::write_all(&mut enc, &plain).unwrap();
            enc.finish().unwrap()
        }
        Stored::Zstd => zstd::encode_all(plain.as_slice(), 3).unwrap(),
    };
    std::fs::write(path, bytes).unwrap();
    plain
}

/// A small kernel shaped like Debian's: ext4 and its crc32c soft dependency (two modules answer
/// the alias), dm-crypt stored as zstd, a virtio driver whose core is built in.
fn tree() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    module(r, "fs/ext4/ext4.ko", &["alias=fs-ext4", "softdep=pre: crc32c", "depends=jbd2,mbcache,crc16", "name=ext4"]);
    module(r, "fs/jbd2/jbd2.ko", &["softdep=pre: crypto-crc32c", "depends=", "name=jbd2"]);
    module(r, "fs/mbcache.ko", &["depends=", "name=mbcache"]);
    module(r, "lib/crc16.ko", &["depends=", "name=crc16"]);
    module(r, "crypto/crc32c_generic.ko", &["alias=crypto-crc32c", "alias=crc32c", "depends="]);
    module(
        r,
        "arch/x86/crypto/crc32c-intel.ko.xz",
        &["alias=crypto-crc32c", "alias=crc32c", "alias=cpu:type:x86,ven*fam*mod*:feature:*0094*"],
    );
    module(r, "drivers/md/dm-mod.ko", &["depends=", "name=dm_mod"]);
    module(r, "drivers/md/dm-crypt.ko.zst", &["depends=dm-mod", "name=dm_crypt"]);
    module(
        r,
        "drivers/virtio/virtio_pci.ko",
        &["depends=virtio,virtio_ring,virtio_pci_modern_dev", "alias=pci:v00001AF4d*sv*sd*bc*sc*i*"],
    );
    module(r, "drivers/virtio/virtio_pci_modern_dev.ko", &["depends="]);
    module(r, "drivers/block/virtio_blk.ko", &["depends=virtio,virtio_ring", "alias=virtio:d00000002v*"]);
    let dir = r.join("lib/modules").join(V);
    std::fs::write(
        dir.join("modules.builtin"),
        "kernel/drivers/virtio/virtio.ko\nkernel/drivers/virtio/virtio_ring.ko\nkernel/drivers/foo/thing.ko\n",
    )
    .unwrap();
    std::fs::write(dir.join("modules.builtin.modinfo"), "thing.alias=thing-alias\0thing.license=GPL\0").unwrap();
    std::fs::write(dir.join("modules.order"), "kernel/lib/crc16.ko\nkernel/fs/ext4/ext4.ko\n").unwrap();
    d
}

fn resolve_names(root: &Path, modules: &[&str], groups: &[Group]) -> Result<Plan, KmodError> {
    let modules: Vec<String> = modules.iter().map(|s| s.to_string()).collect();
    resolve(&Request { modules_from: root, version: None, modules: &modules, groups })
}

fn text(plan: &Plan, rel: &str) -> String {
    match plan.files.get(rel) {
        Some(Content::Text(t)) => String::from_utf8(t.clone()).unwrap(),
        other => panic!("{rel}: {other:?}"),
    }
}

fn names(plan: &Plan) -> BTreeSet<&str> {
    plan.modules.iter().map(ModuleName::as_str).collect()
}

#[test]
fn ext4_brings_its_dependencies_and_every_module_answering_its_soft_dependencies() {
    let d = tree();
    let plan = resolve_names(d.path(), &["ext4"], &[]).unwrap();
    assert_eq!(names(&plan), BTreeSet::from(["ext4", "jbd2", "mbcache", "crc16", "crc32c_generic", "crc32c_intel"]));
    assert_eq!(plan.load, ["ext4"]);
    let dep = text(&plan, &format!("lib/modules/{V}/modules.dep"));
    // modules.order's lines first, the rest by path; each dependency before its own.
    assert_eq!(
        dep,
        "kernel/lib/crc16.ko:\n\
         kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/mbcache.ko kernel/fs/jbd2/jbd2.ko\n\
         kernel/arch/x86/crypto/crc32c-intel.ko:\n\
         kernel/crypto/crc32c_generic.ko:\n\
         kernel/fs/jbd2/jbd2.ko:\n\
         kernel/fs/mbcache.ko:\n"
    );
    let alias = text(&plan, &format!("lib/modules/{V}/modules.alias"));
    assert!(alias.starts_with("# Aliases extracted from modules themselves.\n"), "{alias}");
    assert!(alias.contains("\nalias fs-ext4 ext4\n") && alias.contains("\nalias crypto-crc32c crc32c_intel\n"));
    let soft = text(&plan, &format!("lib/modules/{V}/modules.softdep"));
    assert!(soft.contains("\nsoftdep ext4 pre: crc32c\n") && soft.contains("\nsoftdep jbd2 pre: crypto-crc32c\n"));
    assert_eq!(text(&plan, LOAD_LIST), "ext4\n");
    assert!(plan.files.contains_key(&format!("lib/modules/{V}/modules.builtin")));
    // Both modules answering crc32c, once (ext4 and jbd2 both ask), the CPU-specific one with
    // the cpu: alias the init matches against the CPU's modalias.
    assert_eq!(
        text(&plan, SOFTDEP_LIST),
        "pre crc32c_intel cpu:type:x86,ven*fam*mod*:feature:*0094*\npre crc32c_generic\n"
    );
}

#[test]
fn a_group_member_that_suits_some_cpus_carries_its_cpu_aliases_a_named_module_does_not() {
    let d = tree();
    let aes = "cpu:type:x86,ven*fam*mod*:feature:*0099*";
    module(d.path(), "arch/x86/crypto/aesni-intel.ko", &[&format!("alias={aes}"), "alias=crypto-aes", "depends="]);
    let plan = resolve_names(d.path(), &[], &[Group::DmCrypt]).unwrap();
    assert_eq!(plan.load, ["dm_crypt", "aesni_intel"]);
    assert_eq!(text(&plan, LOAD_LIST), format!("dm_crypt\naesni_intel {aes}\n"));
    // Named in the config: tried on every CPU, whatever a group says.
    let plan = resolve_names(d.path(), &["aesni-intel"], &[Group::DmCrypt]).unwrap();
    assert_eq!(text(&plan, LOAD_LIST), "aesni-intel\ndm_crypt\n");
}

#[test]
fn post_soft_dependencies_follow_the_pre_ones_and_a_list_without_any_is_empty() {
    let d = tree();
    module(d.path(), "sound/core/snd-pcm.ko", &["softdep=post: snd-pcm-oss pre: snd-timer", "depends="]);
    module(d.path(), "sound/core/snd-pcm-oss.ko", &["depends="]);
    module(d.path(), "sound/core/snd-timer.ko", &["depends="]);
    let plan = resolve_names(d.path(), &["snd_pcm", "ext4"], &[]).unwrap();
    let list = text(&plan, SOFTDEP_LIST);
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 4, "{list}");
    assert!(lines[..3].contains(&"pre snd_timer") && lines[..3].contains(&"pre crc32c_generic"), "{list}");
    assert_eq!(lines[3], "post snd_pcm_oss", "{list}");
    let plan = resolve_names(d.path(), &["virtio_blk", "dm_crypt"], &[]).unwrap();
    assert_eq!(text(&plan, SOFTDEP_LIST), "");
}

#[test]
fn dependencies_are_listed_before_their_own_dependencies() {
    let d = tree();
    // a → b → c and a → c: depmod writes `a: b c` (modprobe loads c, then b, then a).
    let r = d.path();
    module(r, "x/a.ko", &["depends=c,b"]);
    module(r, "x/b.ko", &["depends=c"]);
    module(r, "x/c.ko", &["depends="]);
    let plan = resolve_names(r, &["a"], &[]).unwrap();
    let dep = text(&plan, &format!("lib/modules/{V}/modules.dep"));
    assert!(dep.contains("kernel/x/a.ko: kernel/x/b.ko kernel/x/c.ko\n"), "{dep}");
}

#[test]
fn dashes_and_underscores_are_one_name_and_compressed_modules_are_written_plain() {
    let d = tree();
    let plan = resolve_names(d.path(), &["dm-crypt"], &[]).unwrap();
    assert_eq!(names(&plan), BTreeSet::from(["dm_crypt", "dm_mod"]));
    let dep = text(&plan, &format!("lib/modules/{V}/modules.dep"));
    assert!(dep.contains("kernel/drivers/md/dm-crypt.ko: kernel/drivers/md/dm-mod.ko\n"), "{dep}");
    assert_eq!(plan.load, ["dm-crypt"]);

    let out = tempfile::tempdir().unwrap();
    let layer = out.path().join("layer");
    plan.materialize(&layer).unwrap();
    let written = std::fs::read(layer.join(format!("lib/modules/{V}/kernel/drivers/md/dm-crypt.ko"))).unwrap();
    let plain =
        elf_with_modinfo(&["depends=dm-mod", "name=dm_crypt", &format!("vermagic={V} SMP mod_unload ")], true, false);
    assert_eq!(written, plain);
    assert!(!layer.join(format!("lib/modules/{V}/kernel/drivers/md/dm-crypt.ko.zst")).exists());
    assert_eq!(std::fs::read_to_string(layer.join(LOAD_LIST)).unwrap(), "dm-crypt\n");
}

#[test]
fn built_in_modules_are_skipped_not_errors() {
    let d = tree();
    let plan = resolve_names(d.path(), &["virtio", "virtio_pci", "thing-alias"], &[]).unwrap();
    assert_eq!(names(&plan), BTreeSet::from(["virtio_pci", "virtio_pci_modern_dev"]));
    assert_eq!(plan.load, ["virtio_pci"]);
    assert_eq!(plan.builtin, [ModuleName::new("virtio"), ModuleName::new("thing")]);
    let dep = text(&plan, &format!("lib/modules/{V}/modules.dep"));
    assert!(
        dep.contains("kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_modern_dev.ko\n"),
        "{dep}"
    );
}

#[test]
fn an_unknown_name_is_an_error_naming_it_with_the_closest_module() {
    let d = tree();
    let msg = resolve_names(d.path(), &["ext4", "dm_crypto"], &[]).unwrap_err().to_string();
    assert!(msg.contains("`dm_crypto`") && msg.contains(V) && msg.contains("did you mean `dm_crypt`?"), "{msg}");
    let msg = resolve_names(d.path(), &["zzzzzzzz"], &[]).unwrap_err().to_string();
    assert!(msg.contains("`zzzzzzzz`") && !msg.contains("did you mean"), "{msg}");
}

#[test]
fn groups_add_their_members_and_skip_what_the_kernel_lacks() {
    let d = tree();
    let plan = resolve_names(d.path(), &["ext4"], &[Group::Virtio, Group::DmCrypt]).unwrap();
    // virtio: only virtio_pci and virtio_blk exist here; dm-crypt: only dm_crypt.
    assert_eq!(plan.load, ["ext4", "virtio_pci", "virtio_blk", "dm_crypt"]);
    assert!(names(&plan).contains("virtio_blk") && names(&plan).contains("dm_mod"));
}

#[test]
fn a_missing_tree_says_how_to_get_one() {
    let d = tempfile::tempdir().unwrap();
    let msg = resolve_names(&d.path().join("nope"), &["ext4"], &[]).unwrap_err().to_string();
    assert!(msg.contains("nope") && msg.contains("scripts/setup.sh") && msg.contains("[kernel] modules_from"), "{msg}");
    std::fs::create_dir_all(d.path().join("lib/modules")).unwrap();
    let msg = resolve_names(d.path(), &["ext4"], &[]).unwrap_err().to_string();
    assert!(msg.contains("no lib/modules/VERSION/"), "{msg}");
}

#[test]
fn several_kernels_need_a_version() {
    let d = tree();
    std::fs::create_dir_all(d.path().join("lib/modules/6.2.0-other")).unwrap();
    let msg = resolve_names(d.path(), &["ext4"], &[]).unwrap_err().to_string();
    assert!(
        msg.contains("several kernels") && msg.contains("6.2.0-other") && msg.contains("[kernel] version"),
        "{msg}"
    );
    let modules = vec!["ext4".to_string()];
    let req = Request { modules_from: d.path(), version: Some(V), modules: &modules, groups: &[] };
    assert_eq!(resolve(&req).unwrap().version, V);
    let req = Request { version: Some("5.10.0"), ..req };
    let msg = resolve(&req).unwrap_err().to_string();
    assert!(msg.contains("no kernel 5.10.0") && msg.contains(V), "{msg}");
}

#[test]
fn a_module_of_another_kernel_or_with_a_missing_dependency_is_an_error_naming_it() {
    let d = tree();
    let path = d.path().join("lib/modules").join(V).join("kernel/x/old.ko");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, elf_with_modinfo(&["vermagic=5.10.0-9-amd64 SMP"], true, false)).unwrap();
    let msg = resolve_names(d.path(), &["old"], &[]).unwrap_err().to_string();
    assert!(msg.contains("old.ko") && msg.contains("5.10.0-9-amd64") && msg.contains(V), "{msg}");

    module(d.path(), "x/needy.ko", &["depends=absent_one"]);
    let msg = resolve_names(d.path(), &["needy"], &[]).unwrap_err().to_string();
    assert!(msg.contains("needy") && msg.contains("`absent_one`"), "{msg}");
}

#[test]
fn the_signature_follows_the_list_and_the_bytes_and_nothing_else() {
    let d = tree();
    let a = resolve_names(d.path(), &["ext4", "dm_crypt"], &[]).unwrap();
    assert_eq!(a, resolve_names(d.path(), &["ext4", "dm_crypt"], &[]).unwrap());
    let reordered = resolve_names(d.path(), &["dm_crypt", "ext4"], &[]).unwrap();
    assert_ne!(a.signature(), reordered.signature(), "the load list's order is the init's");
    assert_ne!(a.signature(), resolve_names(d.path(), &["ext4"], &[]).unwrap().signature());
    // A module's bytes change (same modinfo): the layer changes.
    let path = d.path().join("lib/modules").join(V).join("kernel/lib/crc16.ko");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend_from_slice(b"more code");
    std::fs::write(&path, bytes).unwrap();
    assert_ne!(a.signature(), resolve_names(d.path(), &["ext4", "dm_crypt"], &[]).unwrap().signature());

    // Two writes of one plan are the same bytes.
    let out = tempfile::tempdir().unwrap();
    let plan = resolve_names(d.path(), &["ext4", "dm_crypt"], &[]).unwrap();
    plan.materialize(&out.path().join("one")).unwrap();
    plan.materialize(&out.path().join("two")).unwrap();
    for rel in plan.paths() {
        assert_eq!(
            std::fs::read(out.path().join("one").join(rel)).unwrap(),
            std::fs::read(out.path().join("two").join(rel)).unwrap()
        );
    }
}

#[test]
fn aliases_match_as_kmod_matches_them() {
    assert_eq!(normalise_alias("crypto-crc32c"), "crypto_crc32c");
    assert_eq!(normalise_alias("a-b[x-z]-c"), "a_b[x-z]_c");
    assert!(glob_match("pci:v00001AF4d*sv*sd*bc*sc*i*", "pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00"));
    assert!(!glob_match("pci:v00001AF4d*", "pci:v00008086d00001001"));
    assert!(glob_match("usb:v*p*d*dc*dsc*dp*ic08isc06ip50in*", "usb:v0781p5567d0100dc00dsc00dp00ic08isc06ip50in00"));
    assert!(glob_match("a[0-9]c", "a5c") && !glob_match("a[!0-9]c", "a5c") && glob_match("a?c", "abc"));
    assert!(glob_match("*", "") && !glob_match("a", "ab") && glob_match("a*b*c", "axxbyyc"));
    assert_eq!(edit_distance("dm_crypto", "dm_crypt"), 1);
}

#[test]
fn firmware_a_module_names_is_copied_when_the_tree_has_it_and_skipped_when_not() {
    let d = tree();
    let r = d.path();
    module(r, "drivers/net/nic.ko", &["depends=", "firmware=vendor/nic.bin", "firmware=vendor/absent.bin"]);
    module(r, "drivers/gpu/gpu.ko", &["depends=", "firmware=gpu/boot.fw"]);
    std::fs::create_dir_all(r.join("lib/firmware/vendor")).unwrap();
    std::fs::create_dir_all(r.join("lib/firmware/gpu")).unwrap();
    std::fs::write(r.join("lib/firmware/vendor/nic.bin"), b"nic firmware").unwrap();
    // Debian's firmware packages may ship compressed files; the kernel's loader asks for the suffix.
    std::fs::write(r.join("lib/firmware/gpu/boot.fw.zst"), b"zstd bytes").unwrap();
    std::fs::write(r.join("lib/firmware/unrelated.bin"), b"not named by any chosen module").unwrap();

    let plan = resolve_names(r, &["nic", "gpu"], &[]).unwrap();
    let firmware: Vec<&str> =
        plan.files.keys().map(String::as_str).filter(|p| p.starts_with("lib/firmware/")).collect();
    assert_eq!(firmware, ["lib/firmware/gpu/boot.fw.zst", "lib/firmware/vendor/nic.bin"]);
    let out = tempfile::tempdir().unwrap();
    plan.materialize(out.path()).unwrap();
    assert_eq!(std::fs::read(out.path().join("lib/firmware/vendor/nic.bin")).unwrap(), b"nic firmware");
    assert!(!out.path().join("lib/firmware/vendor/absent.bin").exists());
    assert!(!out.path().join("lib/firmware/unrelated.bin").exists());

    // Only modules that are chosen bring firmware, and the firmware's bytes are in the signature.
    let nic_only = resolve_names(r, &["nic"], &[]).unwrap();
    assert!(!nic_only.files.keys().any(|p| p.starts_with("lib/firmware/gpu")));
    std::fs::write(r.join("lib/firmware/vendor/nic.bin"), b"newer nic firmware").unwrap();
    assert_ne!(nic_only.signature(), resolve_names(r, &["nic"], &[]).unwrap().signature());
}
