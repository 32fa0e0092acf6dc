//! Where everything is: the one module that makes the paths of a project and the keys of its
//! host-side state. No other module joins a directory name onto the project root.
//!
//! | path                                  | what                                                     |
//! |---------------------------------------|----------------------------------------------------------|
//! | `recipes/ config/ patches/ rootfs/`   | the project's inputs                                     |
//! | `sources/`                            | the download cache, shared by every domain               |
//! | `work/D/PKG/{src,build,dest,sysroot,files}` | one package's work dir (see [`WorkDirs`])          |
//! | `staging/D/PKG/`                      | a package's committed output (`toolchain/NAME` for zig)  |
//! | `states/D/PKG.TASK`                   | a task's stamp ([`Layout::stamp`]); the image's is `image.pack` |
//! | `states/D/running/PKG`                | the marker of a package with a task under way            |
//! | `states/D/await`                      | the failed task the next run resumes at                  |
//! | `states/D/composed`, `states/D/joined`| the signature of a composed toolchain                    |
//! | `states/.lock`                        | one ovm at a time per project                            |
//! | `states/cache-counts.json`            | the last build's cache hits (`ovm cache stats`)          |
//! | `states/toolchain.toml`               | the toolchain chosen with `ovm build --toolchain`        |
//! | `logs/D/context.log`, `logs/D/PKG/TASK.log` | the run's log and each task's                      |
//! | `toolchain/{zig,ARCH,T+H,tools,.none}`| the toolchains and build tools bound into sandboxes      |
//! | `output/ARCH/`                        | the image, its manifest, the SDK                         |
//! | `output/ARCH/graphs/`                 | `ovm graph`'s pictures: build.svg, size.svg, depends.{svg,dot} |
//! | `.cache/{build,sstate,output-stat,kernel-modules}/` | caches: deleting one costs time, never correctness |
//!
//! State keys live in distinct namespaces: a stamp's file name always holds a dot (`PKG.TASK`), a
//! running marker is a file of the `running/` directory, and the domain's own markers (`await`,
//! `composed`, `joined`) hold no dot. No recipe can name a task or a package so that its stamp
//! and a marker share a file.

mod domain;
mod part;
mod task_name;

use std::path::{Path, PathBuf};

use crate::arch::Arch;

pub use domain::{Domain, Profile};
pub use part::Part;
pub use task_name::{InvalidTaskName, TaskId, TaskName, MAX_NAME_LEN};

/// The project configuration file, relative to the project root.
pub const CONFIG_FILE: &str = "config/ovm.toml";

/// The name the image goes by in a target domain's state (`states/ARCH/image.pack`), its context
/// log and `ovm status`: no package may take it.
pub const IMAGE: &str = "image";
/// The image's SPDX document, next to it in `output/ARCH/`.
pub const SBOM_NAME: &str = "sbom.spdx.json";
/// The packages an image installs, one `NAME ARCH VERSION` line each, beside it.
pub const PACKAGE_MANIFEST_NAME: &str = "packages.manifest";
/// The image's bill of materials as CycloneDX 1.5, beside the SPDX one.
pub const CYCLONEDX_NAME: &str = "sbom.cdx.json";
/// The directory of a target package's staged output holding its license texts: no `Part` is
/// named so.
pub const LICENSES_DIR: &str = "licenses";

/// The paths of one project, from its root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    root: PathBuf,
}

/// The directories of one package's work dir and where its output and logs go.
#[derive(Debug, Clone)]
pub struct WorkDirs {
    pub work: PathBuf,
    pub src: PathBuf,
    pub build: PathBuf,
    pub dest: PathBuf,
    pub sysroot: PathBuf,
    /// The package's native tools, composed (bound at `/ovm/native`).
    pub native: PathBuf,
    pub files: PathBuf,
    /// The split packages the package task makes from `dest` (a target package's), committed
    /// whole to `staging`.
    pub package: PathBuf,
    pub staging: PathBuf,
    pub logs: PathBuf,
    /// The signatures of the tasks done in this work dir.
    pub work_state: PathBuf,
    /// The script the last step ran (kept: it is what the step ran).
    pub step_script: PathBuf,
    /// Where a shared-state entry is restored before it is committed to `staging`.
    pub sstate_restore: PathBuf,
    /// `ovm menuconfig`'s kconfig output dir (`O=`): its own, so the build dir is never touched,
    /// and kept, so the menu program is compiled once per unpacked tree.
    pub menuconfig: PathBuf,
}

impl Layout {
    pub fn new(root: PathBuf) -> Layout {
        Layout { root }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn recipes(&self) -> PathBuf {
        self.root.join("recipes")
    }
    pub fn config(&self) -> PathBuf {
        self.root.join("config")
    }
    /// `config/ovm.toml`, the project's settings.
    pub fn config_file(&self) -> PathBuf {
        self.root.join(CONFIG_FILE)
    }
    pub fn patches(&self) -> PathBuf {
        self.root.join("patches")
    }
    pub fn rootfs(&self) -> PathBuf {
        self.root.join("rootfs")
    }
    /// The named images' definitions, `images/NAME.toml`.
    pub fn images_dir(&self) -> PathBuf {
        self.root.join("images")
    }
    /// The download cache, shared by all architectures.
    pub fn sources(&self) -> PathBuf {
        self.root.join("sources")
    }
    /// ovm's private cache (derived apt state, test assets, the build cache, sstate …).
    pub fn cache(&self) -> PathBuf {
        self.root.join(".cache")
    }
    /// Bound at /ovm/cache in build sandboxes (the zig cache lives there).
    pub fn build_cache(&self) -> PathBuf {
        self.cache().join("build")
    }
    /// The shared-state cache when neither the config nor the environment names one.
    pub fn default_sstate(&self) -> PathBuf {
        self.cache().join("sstate")
    }
    /// Where the engine notes the metadata fingerprint of a staged output that last checked out.
    pub fn output_stat_note(&self, domain: Domain, pkg: &str) -> PathBuf {
        self.output_stat_root().join(domain.dir_name()).join(pkg)
    }
    pub fn output_stat_root(&self) -> PathBuf {
        self.cache().join("output-stat")
    }
    pub fn output_root(&self) -> PathBuf {
        self.root.join("output")
    }
    pub fn output(&self, arch: Arch) -> PathBuf {
        self.output_root().join(arch.name())
    }
    /// The SPDX 2.3 SBOM of ARCH's image.
    pub fn sbom(&self, arch: Arch) -> PathBuf {
        self.output(arch).join(SBOM_NAME)
    }
    /// `ovm legal-info ARCH`'s output: license texts, sources, patches, a manifest.
    pub fn legal_info(&self, arch: Arch) -> PathBuf {
        self.output(arch).join("legal-info")
    }
    /// Where `ovm build ARCH --image NAME` packs: `output/ARCH/images/NAME/`.
    pub fn image_output(&self, arch: Arch, name: &str) -> PathBuf {
        self.output(arch).join("images").join(name)
    }
    /// The package feed of ARCH's image: `.ipk` files and their `Packages` index.
    pub fn feed(&self, arch: Arch) -> PathBuf {
        self.output(arch).join("feed")
    }
    /// `ovm graph`'s pictures of ARCH's build, image and dependencies.
    pub fn graphs(&self, arch: Arch) -> PathBuf {
        self.output(arch).join("graphs")
    }

    /// `work/`, `staging/`, `states/`, `logs/`: the roots the domains have a directory in.
    pub fn work_root(&self) -> PathBuf {
        self.root.join("work")
    }
    pub fn staging_root(&self) -> PathBuf {
        self.root.join("staging")
    }
    pub fn states_root(&self) -> PathBuf {
        self.root.join("states")
    }
    pub fn logs_root(&self) -> PathBuf {
        self.root.join("logs")
    }
    pub fn toolchain_root(&self) -> PathBuf {
        self.root.join("toolchain")
    }

    /// Every staged output of a domain (not the zig toolchain's, which is staged under `toolchain/`).
    pub fn staging_of(&self, domain: Domain) -> PathBuf {
        self.staging_root().join(domain.dir_name())
    }
    pub fn work_of(&self, domain: Domain) -> PathBuf {
        self.work_root().join(domain.dir_name())
    }
    /// The console log of `ovm boot ARCH`.
    pub fn boot_log(&self, arch: Arch) -> PathBuf {
        self.logs(Domain::Target(arch)).join("boot.log")
    }
    /// The kernel `scripts/fetch-test-assets.sh` fetches for `arch`.
    pub fn test_kernel(&self, arch: Arch) -> PathBuf {
        self.test_assets(arch).join("vmlinuz")
    }

    pub fn work(&self, domain: Domain, pkg: &str) -> PathBuf {
        self.work_of(domain).join(pkg)
    }
    /// Where a package's output is committed. Toolchain parts are committed straight into
    /// `toolchain/NAME` (the zig toolchain is `toolchain/zig`), which is what gets bound.
    pub fn staging(&self, domain: Domain, pkg: &str) -> PathBuf {
        match domain {
            Domain::Toolchain => self.toolchain_root().join(pkg),
            _ => self.staging_of(domain).join(pkg),
        }
    }
    /// The license texts of a target recipe's staged output (`license_files`), beside its parts.
    pub fn staged_licenses(&self, domain: Domain, pkg: &str) -> PathBuf {
        self.staging(domain, pkg).join(LICENSES_DIR)
    }
    /// One split package of a target recipe's staged output (`staging/ARCH/PKG/PART/`); the other
    /// domains' outputs are not split (`Domain::splits`).
    pub fn staged_part(&self, domain: Domain, pkg: &str, part: Part) -> PathBuf {
        self.staging(domain, pkg).join(part.name())
    }
    pub fn states(&self, domain: Domain) -> PathBuf {
        self.states_root().join(domain.dir_name())
    }
    pub fn logs(&self, domain: Domain) -> PathBuf {
        self.logs_root().join(domain.dir_name())
    }
    pub fn context_log(&self, domain: Domain) -> PathBuf {
        self.logs(domain).join("context.log")
    }
    pub fn task_log(&self, domain: Domain, pkg: &str, task: &TaskName) -> PathBuf {
        self.logs(domain).join(pkg).join(format!("{task}.log"))
    }

    /// A task's stamp: `states/D/PKG.TASK`.
    pub fn stamp(&self, id: &TaskId) -> PathBuf {
        self.states(id.domain).join(format!("{}.{}", id.package, id.task))
    }
    /// The prefix every stamp of `pkg` has in `states/D/` (see [`Layout::stamp`]).
    pub fn stamp_prefix(pkg: &str) -> String {
        format!("{pkg}.")
    }
    pub fn running_markers(&self, domain: Domain) -> PathBuf {
        self.states(domain).join("running")
    }
    /// The marker of a package with a task under way: `states/D/running/PKG`.
    pub fn running_marker(&self, domain: Domain, pkg: &str) -> PathBuf {
        self.running_markers(domain).join(pkg)
    }
    pub fn await_marker(&self, domain: Domain) -> PathBuf {
        self.states(domain).join("await")
    }
    /// The signature of the toolchain (or the build tools) composed from a domain's outputs.
    pub fn composed_marker(&self, domain: Domain) -> PathBuf {
        self.states(domain).join("composed")
    }
    /// The signature of a target's toolchain joined with the host's.
    pub fn joined_marker(&self, target: Arch) -> PathBuf {
        self.states(Domain::Cross(target)).join("joined")
    }
    pub fn lock(&self) -> PathBuf {
        self.states_root().join(".lock")
    }
    /// The last build's shared-state hits, misses and uploads (`ovm cache stats`). Its dot keeps
    /// it apart from the domains' directories beside it.
    pub fn cache_counts(&self) -> PathBuf {
        self.states_root().join("cache-counts.json")
    }

    /// The toolchain recorded by `ovm build --toolchain` (`crate::engine::choice`). Its dot keeps
    /// it apart from the domains' directories beside it.
    pub fn toolchain_choice(&self) -> PathBuf {
        self.states_root().join("toolchain.toml")
    }

    /// The build tools composed: bound at /ovm/tools.
    pub fn tools(&self) -> PathBuf {
        self.toolchain_root().join("tools")
    }
    /// The gcc toolchain built for `arch`.
    pub fn gcc_toolchain(&self, arch: Arch) -> PathBuf {
        self.toolchain_root().join(arch.name())
    }
    /// The gcc toolchain of `target` joined with the host's (for `$HOSTCC`).
    pub fn joined_toolchain(&self, target: Arch, host: Arch) -> PathBuf {
        self.toolchain_root().join(format!("{target}+{host}"))
    }
    /// An empty directory bound at /ovm/toolchain while a toolchain itself is built.
    pub fn no_toolchain(&self) -> PathBuf {
        self.toolchain_root().join(".none")
    }
    /// Where `dir` is composed before it is swapped in: a hidden sibling.
    pub fn composing(dir: &Path) -> PathBuf {
        let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        dir.with_file_name(format!(".{name}.new"))
    }

    /// The kernel-modules layers of ARCH's image (`[kernel]`), one directory per content
    /// signature (`crate::kernel_modules::Plan::signature`): written by the pack, derived data.
    pub fn kernel_modules(&self, arch: Arch) -> PathBuf {
        self.cache().join("kernel-modules").join(arch.name())
    }

    /// Test assets (kernels, Debian's static busybox) fetched by `scripts/fetch-test-assets.sh`.
    pub fn test_assets(&self, arch: Arch) -> PathBuf {
        self.cache().join("test-assets").join(arch.name())
    }

    pub fn work_dirs(&self, domain: Domain, pkg: &str) -> WorkDirs {
        let work = self.work(domain, pkg);
        WorkDirs {
            src: work.join("src"),
            build: work.join("build"),
            dest: work.join("dest"),
            sysroot: work.join("sysroot"),
            native: work.join("native"),
            files: work.join("files"),
            package: work.join("package"),
            work_state: work.join(".ovm-work"),
            step_script: work.join(".ovm-step.sh"),
            sstate_restore: self.work_of(domain).join(format!(".{pkg}.sstate")),
            menuconfig: work.join("menuconfig"),
            staging: self.staging(domain, pkg),
            logs: self.logs(domain).join(pkg),
            work,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(pkg: &str, task: &'static str) -> TaskId {
        TaskId { domain: Domain::Target(Arch::X86_64), package: pkg.into(), task: TaskName::builtin(task) }
    }

    #[test]
    fn stamps_and_markers_never_share_a_file() {
        let l = Layout::new("/p".into());
        let d = Domain::Target(Arch::X86_64);
        // A package `running` with any task, and a step named like a marker: none is a marker.
        let markers = [l.running_marker(d, "running"), l.await_marker(d), l.composed_marker(d), l.running_markers(d)];
        for (pkg, task) in [("running", "compile"), ("foo", "running"), ("await", "install"), ("composed", "x")] {
            let stamp = l.stamp(&id(pkg, task));
            assert!(!markers.contains(&stamp), "{} is a marker's file", stamp.display());
            assert!(stamp.file_name().is_some_and(|n| n.to_string_lossy().contains('.')));
        }
        assert_eq!(l.stamp(&id("foo", "running")), PathBuf::from("/p/states/x86_64/foo.running"));
        assert_eq!(l.running_marker(d, "foo"), PathBuf::from("/p/states/x86_64/running/foo"));
    }

    #[test]
    fn the_zig_toolchain_is_staged_where_it_is_bound() {
        let l = Layout::new("/p".into());
        assert_eq!(l.staging(Domain::Toolchain, "zig"), PathBuf::from("/p/toolchain/zig"));
        assert_eq!(l.staging(Domain::Tools(Arch::X86_64), "make"), PathBuf::from("/p/staging/tools/make"));
        assert_eq!(
            l.work_dirs(Domain::Cross(Arch::Aarch64), "gcc").sstate_restore,
            PathBuf::from("/p/work/cross-aarch64/.gcc.sstate")
        );
        assert_eq!(Layout::composing(&l.tools()), PathBuf::from("/p/toolchain/.tools.new"));
    }
}
