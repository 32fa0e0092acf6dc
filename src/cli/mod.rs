//! Command-line interface: clap definitions, and one call into the library per command.
//! Nothing here decides how a build works; it only turns arguments into calls.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::arch::Arch;
use crate::pack::Compression;
use crate::project::Project;
use crate::settings::Settings;

mod doctor;
mod inspect;
mod menuconfig;
pub mod progress;

#[derive(Debug, Parser)]
#[command(
    name = "ovm",
    version,
    about = "Build a bootable busybox + musl initrd from recipes, every package in an unprivileged sandbox",
    arg_required_else_help = true
)]
pub struct Cli {
    /// Project directory (default: the nearest directory at or above the current one with recipes/ and config/)
    #[arg(short = 'C', long = "project", global = true, value_name = "DIR")]
    pub project: Option<PathBuf>,
    /// More output (-v: debug, -vv: trace)
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Less output (warnings and errors only)
    #[arg(short, long, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum CacheAction {
    /// Where it is, entries, size, least recently used, the remotes, the last build's hits and misses
    Stats,
    /// Re-hash every entry against its recorded output; evict (and fail on) the bad ones
    Verify,
    /// Evict entries unused for longer than --older-than, then the least recently used beyond --max-size
    Prune {
        /// e.g. 30d, 12h
        #[arg(long, value_name = "AGE")]
        older_than: Option<humantime::Duration>,
        /// e.g. 20G, 500M
        #[arg(long, value_name = "SIZE")]
        max_size: Option<crate::size::ByteSize>,
    },
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the effective configuration (defaults filled in) as TOML, which parses back
    Config,
    /// Build everything for ARCH (toolchain, build tools, packages) and pack output/ARCH/initrd.cpio.gz
    Build {
        /// x86_64 (amd64) or aarch64 (arm64)
        arch: Arch,
        /// Only these packages (and their dependencies); no image is packed
        #[arg(value_name = "PKG")]
        packages: Vec<String>,
        /// Build and pack the image images/NAME.toml (its install list, from the package feed)
        /// into output/ARCH/images/NAME/ instead of the default image
        #[arg(long, value_name = "NAME", conflicts_with = "packages")]
        image: Option<String>,
        /// Build every package in the strict sandbox (the default)
        #[arg(long, overrides_with = "no_sandbox")]
        sandbox: bool,
        /// Build on the host instead: no isolation, host /usr and network visible (loudly warned)
        #[arg(long)]
        no_sandbox: bool,
        /// Jobs for all packages together (one GNU make jobserver); default [build] jobs, else cores
        #[arg(short, long, value_name = "N", default_value_t = 0)]
        jobs: usize,
        /// Toolchain: gcc (built from source; the default unless [toolchain] in config/ovm.toml says
        /// otherwise), zig (the fast path), or external:DIR. Recorded as the project's choice:
        /// later builds, status, shell and spec use it until another --toolchain or a config edit
        #[arg(long, value_name = "KIND")]
        toolchain: Option<crate::toolchain::ToolchainKind>,
        /// Fail at once if another ovm holds this project's lock, instead of waiting
        #[arg(long)]
        no_wait: bool,
        /// Print which tasks of which packages would run and why; build, fetch and write nothing
        #[arg(long, short = 'n')]
        dry_run: bool,
        /// With --dry-run: the plan as JSON (schema ovm.plan/1)
        #[arg(long, requires = "dry_run")]
        json: bool,
    },
    /// Fetch and verify sources into sources/ (parallel, resumable, mirror-aware, sha256-checked)
    Download {
        /// An architecture (every recipe) or package names (each with its dependencies); none: every recipe
        #[arg(value_name = "ARCH|PKG")]
        items: Vec<String>,
        /// Concurrent downloads (default: fetch.jobs in config/ovm.toml)
        #[arg(short, long)]
        jobs: Option<usize>,
    },
    /// Repack rootfs/ + staged packages (+ overlay) into output/ARCH/initrd.cpio.* without compiling
    Pack {
        /// x86_64 (amd64) or aarch64 (arm64)
        arch: Arch,
        /// gzip, xz, zstd or none (default: [pack] compress)
        #[arg(long, value_name = "FORMAT")]
        compress: Option<Compression>,
        /// A directory merged over everything else (default: [pack] overlay)
        #[arg(long, value_name = "DIR")]
        overlay: Option<PathBuf>,
        /// Compression threads, 0 = one per core (default: [pack] threads); never changes the output
        #[arg(short = 'j', long, value_name = "N")]
        threads: Option<usize>,
        /// Fail at once if another ovm holds this project's lock, instead of waiting
        #[arg(long)]
        no_wait: bool,
        /// Pack even when none of the project's packages is built for ARCH (rootfs/ alone cannot boot)
        #[arg(long)]
        allow_empty: bool,
    },
    /// Write output/ARCH/legal-info/: the license texts, exact source archives and patches of the
    /// image's packages, and a manifest (Buildroot's legal-info); the packages must be built
    LegalInfo {
        /// x86_64 (amd64) or aarch64 (arm64)
        arch: Arch,
        /// Fail at once if another ovm holds this project's lock, instead of waiting
        #[arg(long)]
        no_wait: bool,
    },
    /// Boot the initrd in qemu on the serial console; with --expect, pass/fail by exit code
    /// (0 pass, 10 timeout, 11 kernel panic, 12 marker missing, 13 qemu failed)
    Boot {
        /// x86_64 (amd64) or aarch64 (arm64)
        arch: Arch,
        /// Kernel image (default: [boot] kernel.ARCH, else the one scripts/fetch-test-assets.sh fetches)
        #[arg(long, value_name = "PATH")]
        kernel: Option<PathBuf>,
        /// Initrd (default: the image in output/ARCH/)
        #[arg(long, value_name = "PATH")]
        initrd: Option<PathBuf>,
        /// Extra kernel command line, after `console=… panic=-1` and [boot] append
        #[arg(long, value_name = "ARGS")]
        append: Option<String>,
        /// Raw disk image as a virtio block device; repeat for more, in order (/dev/vda, /dev/vdb …)
        #[arg(long = "disk", value_name = "FILE")]
        disks: Vec<PathBuf>,
        /// Give up after S seconds (default with --expect: [boot] timeout; without: none)
        #[arg(long, value_name = "S")]
        timeout: Option<u64>,
        /// Pass only if TEXT ends a console line and no kernel panic appears
        #[arg(long, value_name = "TEXT")]
        expect: Option<String>,
        /// Seconds the guest may run on after the marker before qemu is stopped (default: [boot] grace)
        #[arg(long, value_name = "S")]
        grace: Option<u64>,
        /// Guest memory in MiB (default: [boot] memory_mib)
        #[arg(long, value_name = "MIB")]
        memory: Option<u32>,
    },
    /// What is built, stale (and which input changed), failed (await) or never built
    Status {
        /// x86_64 or aarch64 (default: every architecture with state)
        arch: Option<Arch>,
        /// Say exactly which inputs changed since each stale task last ran
        #[arg(long)]
        why: bool,
        /// As JSON (schema ovm.status/1; every change is listed, as with --why)
        #[arg(long)]
        json: bool,
    },
    /// Every recipe: name, version, kind (target, tools, toolchain) and its state per domain
    List {
        /// x86_64 or aarch64 (default: every architecture with state)
        arch: Option<Arch>,
        /// As JSON (schema ovm.list/1)
        #[arg(long)]
        json: bool,
    },
    /// One package inside out: recipe, sources, dependencies both ways, features, each task's
    /// inputs and stamp, output and logs
    Info {
        pkg: String,
        /// The architecture of a target package (default: the host's)
        arch: Option<Arch>,
        /// As JSON (schema ovm.info/1)
        #[arg(long)]
        json: bool,
    },
    /// Print a shell completion script: `source <(ovm completions bash)`
    Completions {
        /// bash, zsh, fish, elvish or powershell
        shell: clap_complete::Shell,
    },
    /// Forget what was built: one package, one architecture, or everything generated (not sources/);
    /// asks before deleting toolchain/ or output/
    Clean {
        /// An architecture and/or package names; nothing: everything
        #[arg(value_name = "ARCH|PKG")]
        items: Vec<String>,
        /// Delete toolchain/ and output/ without asking (needed when stdin is not a terminal)
        #[arg(short, long)]
        yes: bool,
    },
    /// The local shared-state cache: its size and last build's hits (stats), a re-hash of every
    /// entry (verify), eviction by age or size (prune)
    Cache {
        #[command(subcommand)]
        action: CacheAction,
    },
    /// Print the OCI runtime spec (config.json) of PKG's compile sandbox
    Spec {
        pkg: String,
        #[command(flatten)]
        arch: ArchArg,
    },
    /// A shell (or CMD) inside exactly the sandbox PKG's compile step runs in, at its build dir
    Shell {
        pkg: String,
        #[command(flatten)]
        arch: ArchArg,
        /// The command to run instead of an interactive shell
        #[arg(last = true, value_name = "CMD")]
        cmd: Vec<String>,
    },
    /// Edit a kconfig package's configuration (busybox) in its menuconfig; saves back to its recipe's file
    ///
    /// Prepares PKG's source as a build does, runs `make menuconfig` on this terminal (host /usr
    /// read-only: the menu needs the host's cc and ncurses), then writes the saved configuration
    /// back to the recipe's `*.config` file as a full config, keeping its comments, and prints the
    /// diff. Quitting without saving leaves the file as it was.
    #[command(mut_arg("arch", |a| {
        a.help("x86_64 (amd64) or aarch64 (arm64): whose work dir prepares the source; default this machine's")
    }))]
    Menuconfig {
        pkg: String,
        #[command(flatten)]
        arch: ArchArg,
    },
    /// Build the gcc cross toolchain for ARCH from source into toolchain/ARCH/
    ///
    /// binutils, gcc, musl and the Linux headers; ~12 min on two idle cores. `ovm build` builds it
    /// first when it is missing or its inputs changed, and reuses it otherwise.
    Toolchain {
        arch: Arch,
        /// Print the task graph (package, task, what it waits for) and build nothing.
        #[arg(long)]
        dry_run: bool,
        /// Also write a relocatable SDK tarball (toolchain + target sysroot) to output/ARCH/.
        #[arg(long)]
        sdk: bool,
        #[arg(short, long, value_name = "N", default_value_t = 0)]
        jobs: usize,
        #[arg(long)]
        no_sandbox: bool,
        #[arg(long)]
        no_wait: bool,
    },
    /// Draw ARCH's last build, image size or package graph as SVG in output/ARCH/graphs/
    ///
    /// build: every task per package on a time line, the critical path and its length; size: the
    /// image by package and its largest files; depends: what each package needs (also depends.dot
    /// for Graphviz). Prints the files written.
    Graph {
        /// build, size or depends
        what: crate::graph::Graph,
        /// x86_64 (amd64) or aarch64 (arm64)
        arch: Arch,
    },
    /// Run a command in the strict build sandbox (exactly the given mounts, no network)
    Sandbox(crate::sandbox::cli::SandboxArgs),
    /// Check that this host can run the build sandbox; prints the fix for each problem
    Doctor,
    /// Internal: run an OCI spec given as JSON (how multi-threaded callers start a sandbox)
    #[command(name = "__sandbox-exec", hide = true)]
    SandboxExec(crate::sandbox::cli::ExecArgs),
}

/// ARCH of `spec`, `shell` and `menuconfig`: positional as everywhere, or the `--arch` flag they
/// (shell and spec) took before, still accepted but not shown in help; both at once is an error.
#[derive(Debug, clap::Args)]
pub struct ArchArg {
    /// x86_64 (amd64) or aarch64 (arm64); default x86_64
    #[arg(value_name = "ARCH")]
    arch: Option<Arch>,
    /// The same as the positional ARCH: the older spelling, still accepted, not shown in help
    #[arg(long = "arch", value_name = "ARCH", conflicts_with = "arch", hide = true)]
    arch_flag: Option<Arch>,
}

impl ArchArg {
    /// The architecture given either way, if any.
    fn get(&self) -> Option<Arch> {
        self.arch.or(self.arch_flag)
    }
}

impl Cli {
    /// The project of `-C DIR`, else the one found from the current directory, with the run's
    /// settings.
    pub fn project(&self, settings: &Settings) -> anyhow::Result<Project> {
        match &self.project {
            Some(dir) => {
                Project::open_with(dir, settings).with_context(|| format!("opening project {}", dir.display()))
            }
            None => {
                let cwd = std::env::current_dir().context("reading the current directory")?;
                Ok(Project::discover(&cwd, settings)?)
            }
        }
    }
}

/// Runs one command with `settings` (the environment's, read once by `main`); the returned code is
/// the process exit status.
pub fn run(cli: Cli, settings: &Settings) -> anyhow::Result<ExitCode> {
    crate::fault::arm(settings);
    match &cli.command {
        Command::Config => {
            let project = cli.project(settings)?;
            println!("# project: {}", project.root().display());
            println!("# the effective configuration: config/ovm.toml with every default filled in");
            print!("{}", project.config.to_toml().context("writing the configuration as TOML")?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Download { items, jobs } => {
            let project = cli.project(settings)?;
            let recipes = crate::recipe::RecipeSet::load(&project)?;
            let mut fetcher = crate::fetch::Fetcher::new(&project)?;
            if let Some(jobs) = jobs {
                fetcher.set_jobs(*jobs);
            }
            let sources: Vec<_> = recipes.select(items)?.into_iter().flat_map(|r| &r.sources).collect();
            let report = fetcher.fetch_all(&sources);
            println!("{report}");
            Ok(if report.is_success() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Command::Pack { arch, compress, overlay, threads, no_wait, allow_empty } => {
            let project = cli.project(settings)?;
            // The staged packages must not change under the pack: a build holding the lock may be
            // halfway through committing one.
            let _lock = crate::engine::build::lock_project(&project, *no_wait)?;
            let opts = crate::pack::PackOptions { compress: *compress, overlay: overlay.clone(), threads: *threads };
            let request = crate::pack::request_for_project(&project, *arch, &opts)?;
            if !*allow_empty {
                request.require_packages(&project)?;
            }
            let started = std::time::Instant::now();
            let out = crate::pack::pack(&request).with_context(|| format!("packing the {arch} initrd"))?;
            if !cli.quiet {
                eprintln!(
                    "packed {} entries from {} layer(s) in {:.2} s: {} ({} bytes), manifest {}",
                    out.entries,
                    request.layers.len(),
                    started.elapsed().as_secs_f64(),
                    out.image.display(),
                    out.size,
                    out.manifest.display()
                );
            }
            println!("{}  {}", out.sha256, out.image.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::LegalInfo { arch, no_wait } => {
            let project = cli.project(settings)?;
            // The staged packages must not change while they are read.
            let _lock = crate::engine::build::lock_project(&project, *no_wait)?;
            let info = crate::engine::legal::legal_info(&project, *arch)?;
            if !info.without_license_files.is_empty() && !cli.quiet {
                eprintln!("ovm: no license file named by: {}", info.without_license_files.join(", "));
            }
            println!("{} ({} packages)", info.dir.display(), info.packages);
            Ok(ExitCode::SUCCESS)
        }
        Command::Boot { arch, kernel, initrd, append, disks, timeout, expect, grace, memory } => {
            let project = cli.project(settings)?;
            let opts = crate::boot::BootOptions {
                kernel: kernel.clone(),
                initrd: initrd.clone(),
                append: append.clone(),
                disks: disks.clone(),
                timeout: *timeout,
                expect: expect.clone(),
                grace: *grace,
                memory_mib: *memory,
                quiet: cli.quiet,
            };
            let request = crate::boot::request_for_project(&project, *arch, &opts)?;
            let outcome = crate::boot::boot(&request)?;
            eprintln!("\novm boot: {}", outcome.summary(expect.as_deref()));
            Ok(ExitCode::from(outcome.verdict.exit_code()))
        }
        Command::Graph { what, arch } => {
            let project = cli.project(settings)?;
            for path in crate::graph::write(&project, *arch, *what)? {
                println!("{}", path.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Sandbox(args) => Ok(crate::sandbox::cli::sandbox(args, settings)),
        Command::Doctor => Ok(doctor::doctor(settings)),
        Command::SandboxExec(args) => Ok(crate::sandbox::cli::exec(args, settings)),
        Command::Status { arch, why, json } => {
            let project = cli.project(settings)?;
            let lines = crate::engine::status::collect(&project, *arch)?;
            let all = if *json {
                inspect::status_json(lines)?
            } else {
                println!("{}", crate::engine::status::toolchain_line(&project)?);
                crate::engine::status::print(&lines, *why, &mut std::io::stdout())
            };
            Ok(if all { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
        Command::List { arch, json } => inspect::list(&cli.project(settings)?, *arch, *json),
        Command::Info { pkg, arch, json } => inspect::info(&cli.project(settings)?, pkg, *arch, *json),
        Command::Completions { shell } => inspect::completions(*shell),
        Command::Cache { action } => {
            let project = cli.project(settings)?;
            let action = match action {
                CacheAction::Stats => crate::engine::cache::Action::Stats,
                CacheAction::Verify => crate::engine::cache::Action::Verify,
                CacheAction::Prune { older_than, max_size } => {
                    if older_than.is_none() && max_size.is_none() {
                        anyhow::bail!("ovm cache prune: say what to evict: --older-than AGE and/or --max-size SIZE");
                    }
                    crate::engine::cache::Action::Prune {
                        older_than: older_than.map(Into::into),
                        max_bytes: max_size.map(|s| s.0),
                    }
                }
            };
            print!("{}", crate::engine::cache::run(&project, &action)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Clean { items, yes } => {
            let project = cli.project(settings)?;
            let mut arch = None;
            let mut packages = Vec::new();
            for item in items {
                match item.parse::<Arch>() {
                    Ok(a) if arch.is_none() && packages.is_empty() => arch = Some(a),
                    _ => packages.push(item.clone()),
                }
            }
            let confirm = if *yes { crate::engine::clean::Confirm::Yes } else { crate::engine::clean::Confirm::Ask };
            for p in crate::engine::clean::clean(&project, arch, &packages, confirm)? {
                if !cli.quiet {
                    println!("removed {}", p.display());
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Spec { pkg, arch } => {
            let project = cli.project(settings)?;
            let arch = arch.get().unwrap_or_else(Arch::host_or_default);
            println!("{}", crate::engine::devshell::spec(&project, pkg, arch)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Shell { pkg, arch, cmd } => {
            let project = cli.project(settings)?;
            let arch = arch.get().unwrap_or_else(Arch::host_or_default);
            Ok(crate::engine::devshell::shell(&project, pkg, arch, cmd, cli.quiet)?)
        }
        Command::Menuconfig { pkg, arch } => {
            let project = cli.project(settings)?;
            menuconfig::menuconfig(&project, pkg, arch.get(), cli.quiet)
        }
        Command::Toolchain { arch, dry_run, sdk, jobs, no_sandbox, no_wait } => {
            let project = cli.project(settings)?;
            if *dry_run {
                let recipes = crate::recipe::RecipeSet::load(&project)?;
                for t in crate::engine::cross::plan(&recipes, *arch)? {
                    let after =
                        if t.after.is_empty() { String::new() } else { format!("  after {}", t.after.join(", ")) };
                    println!("cross-{arch} {} {}{after}", t.package, t.task);
                }
                return Ok(ExitCode::SUCCESS);
            }
            let opts =
                crate::engine::cross::Options { jobs: *jobs, no_sandbox: *no_sandbox, no_wait: *no_wait, sdk: *sdk };
            let display = progress::Display::new(progress::Mode::chosen(cli.quiet, settings), *jobs);
            Ok(crate::engine::cross::report(&project, *arch, &opts, cli.quiet, &display))
        }
        Command::Build { arch, packages, image, sandbox: _, no_sandbox, jobs, toolchain, no_wait, dry_run, json } => {
            let project = cli.project(settings)?;
            let opts = crate::engine::build::BuildOptions {
                arch: *arch,
                packages: packages.clone(),
                jobs: *jobs,
                no_sandbox: *no_sandbox,
                no_wait: *no_wait,
                toolchain: toolchain.clone(),
                image: image.clone(),
            };
            if *dry_run {
                return inspect::dry_run(&project, &opts, *json);
            }
            let display = progress::Display::new(progress::Mode::chosen(cli.quiet, settings), *jobs);
            Ok(crate::engine::report::build(&project, &opts, cli.quiet, &display))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::cli::{parse_fast, Fast, MountArg};

    fn fast(args: &[&str]) -> Option<Fast> {
        parse_fast(args.iter().map(std::ffi::OsString::from))
    }

    #[test]
    fn fast_path_parses_sandbox_invocations_as_the_full_cli_does() {
        let Some(Fast::Sandbox(args)) = fast(&["sandbox", "--ro", "/a:/b", "--net", "--", "sh", "-c", "x"]) else {
            panic!("a plain `ovm sandbox` is parsed by the fast path");
        };
        assert!(args.options.net);
        assert_eq!(args.options.command, ["sandbox", "sh", "-c", "x"][1..]);
        assert!(matches!(&args.mounts[..], [MountArg::Ro(b)] if b.dest == std::path::Path::new("/b")));
        assert!(matches!(fast(&["__sandbox-exec", "--spec-fd", "3"]), Some(Fast::Exec(3))));

        // Whatever the fast path takes, the full CLI parses the same way; the rest (help, usage
        // errors, global options before `sandbox`, other commands) is left to the full CLI.
        // The first TAKEN cases are plain forms the fast path must take; the rest it may leave.
        const TAKEN: usize = 9;
        let cases: &[&[&str]] = &[
            &["sandbox", "--tmpfs", "/t", "--rw", "/a:/w", "--cwd", "/w", "--env", "A=1", "--", "sh"],
            &["sandbox", "--tty", "--hostname", "h", "--print-spec", "sh", "-c", "x"],
            &["sandbox", "--", "sh", "-v"],
            &["sandbox", "--ro=/a:/b", "--net", "--bundle=/tmp/b", "sh", "--tty", "--", "x"],
            &["sandbox", "--ro", "/bin/busybox:/bin/busybox", "--", "/bin/busybox", "true"],
            &["sandbox", "--env", "A=", "--env=B=c=d", "--rw", "rel:/r", "--tmpfs=/x", "--ro", "/y", "a", "-"],
            &["sandbox", "sh", "--", "--net"],
            &["__sandbox-exec", "--spec-fd", "3"],
            &["sandbox", "--pids-max", "64", "--memory-max=64M", "--", "sh"],
            &["sandbox", "--pids-max", "0", "sh"],
            &["sandbox", "--pids-max", "x", "sh"],
            &["sandbox", "--memory-max", "4X", "sh"],
            &["sandbox", "--pids-max=1", "--pids-max=2", "sh"],
            &["sandbox", "-v", "--", "sh"],
            &["sandbox", "--net", "--net", "sh"],
            &["sandbox", "--net=yes", "sh"],
            &["sandbox", "--cwd", "/a", "--cwd", "/b", "sh"],
            &["sandbox", "--print-spec", "--bundle", "/b", "sh"],
            &["sandbox", "--env", "novalue", "sh"],
            &["sandbox", "--ro", "--rw", "/a", "sh"],
            &["sandbox", "--hostname", "", "sh"],
            &["sandbox", "--tmpfs"],
            &["sandbox", "--bogus", "sh"],
            &["sandbox", "--net"],
            &["sandbox", "--ro", "/a", "-q", "--", "sh"],
            &["sandbox", "-C", "/p", "sh"],
            &["sandbox", "--help"],
            &["sandbox", "--ro"],
            &["sandbox"],
            &["build", "x86_64"],
            &["-C", "/p", "sandbox", "--", "sh"],
            &["__sandbox-exec", "--spec-fd", "3", "extra"],
            &["__sandbox-exec", "--spec-fd=3"],
            &["__sandbox-exec", "{}"],
            &[],
        ];
        for args in cases {
            let full = Cli::try_parse_from(std::iter::once("ovm").chain(args.iter().copied()));
            match (fast(args), full.map(|cli| cli.command)) {
                (None, _) => {}
                (Some(Fast::Sandbox(a)), Ok(Command::Sandbox(b))) => {
                    assert_eq!(format!("{a:?}"), format!("{b:?}"), "{args:?}")
                }
                (Some(Fast::Exec(a)), Ok(Command::SandboxExec(b))) => assert_eq!(a, b.spec_fd, "{args:?}"),
                (Some(_), other) => panic!("{args:?}: the fast path took it, the full CLI gives {other:?}"),
            }
        }
        assert!(fast(&["sandbox", "--help"]).is_none() && fast(&["-C", "/p", "sandbox", "sh"]).is_none());
        // The plain forms are the fast path's (a parser that took nothing would pass the loop).
        for args in &cases[..TAKEN] {
            assert!(fast(args).is_some(), "{args:?} should take the fast path");
        }
        assert!(fast(&["sandbox", "-v", "--", "sh"]).is_none(), "-v is the full CLI's");
    }
}
