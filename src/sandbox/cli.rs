//! `ovm sandbox`, `ovm doctor` and the hidden `ovm __sandbox-exec`: arguments and the thin glue from
//! them to the library. Exit statuses follow docker/podman: the command's own status (128+N for
//! signal N), 125 when the sandbox could not be set up, 126 not executable, 127 not found.

use std::os::fd::RawFd;
use std::path::PathBuf;
use std::process::ExitCode;
use std::str::FromStr;

use clap::Args;
use oci_spec::runtime::Spec;

use super::error::SandboxError;
use super::limits::{self, Mechanism};
use super::{runtime, ProcMode, SandboxBuilder};
use crate::settings::Settings;
use crate::size::ByteSize;

/// A bind argument: `SRC:DST`, or `SRC` alone for the same path inside.
#[derive(Debug, Clone)]
pub struct BindArg {
    pub source: PathBuf,
    pub dest: PathBuf,
}

impl FromStr for BindArg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (source, dest) = s.split_once(':').unwrap_or((s, s));
        if source.is_empty() || dest.is_empty() {
            return Err(format!("{s:?}: expected SRC:DST"));
        }
        let source = std::path::absolute(source).map_err(|e| format!("{source}: {e}"))?;
        Ok(BindArg { source, dest: PathBuf::from(dest) })
    }
}

/// `KEY=VALUE`.
#[derive(Debug, Clone)]
pub struct EnvArg {
    pub key: String,
    pub value: String,
}

impl FromStr for EnvArg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once('=') {
            Some((key, value)) if !key.is_empty() => Ok(EnvArg { key: key.into(), value: value.into() }),
            _ => Err(format!("{s:?}: expected KEY=VALUE")),
        }
    }
}

/// One `--ro`, `--rw` or `--tmpfs` option; they are mounted in command-line order, so a later
/// mount can sit inside an earlier one.
#[derive(Debug, Clone)]
pub enum MountArg {
    Ro(BindArg),
    Rw(BindArg),
    Tmpfs(PathBuf),
}

/// Run a command in the strict sandbox: no host /usr, /bin, /lib, /etc, /home, no network, unless
/// bound or asked for. (`clap::Args` is implemented by hand so the mount options keep their order.)
#[derive(Debug)]
pub struct SandboxArgs {
    pub mounts: Vec<MountArg>,
    pub options: SandboxOptions,
}

#[derive(Debug, Args)]
pub struct SandboxOptions {
    /// Working directory inside the sandbox
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub cwd: PathBuf,
    /// Set an environment variable (the environment is otherwise PATH, HOME, LC_ALL=C, TZ=UTC only)
    #[arg(long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<EnvArg>,
    /// Share the host's network instead of an empty network namespace
    #[arg(long)]
    pub net: bool,
    /// Give the command a terminal of its own, relayed to this one (interactive shell with job
    /// control); otherwise it runs in a new session without a controlling terminal
    #[arg(long)]
    pub tty: bool,
    /// Hostname inside
    #[arg(long, default_value = super::spec::DEFAULT_HOSTNAME)]
    pub hostname: String,
    /// Most processes the sandbox may run at once (default: no limit; build steps get 4096)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub pids_max: Option<u64>,
    /// Most memory the sandbox may use, e.g. 512M or 4G (default: no limit; build steps get 3/4 of the RAM)
    #[arg(long, value_name = "SIZE")]
    pub memory_max: Option<ByteSize>,
    /// Print the OCI runtime spec as JSON instead of running
    #[arg(long, conflicts_with = "bundle")]
    pub print_spec: bool,
    /// Write an OCI bundle (config.json + rootfs/) to DIR for `runc run` instead of running
    #[arg(long, value_name = "DIR")]
    pub bundle: Option<PathBuf>,
    /// The command and its arguments (after `--`)
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true, value_name = "CMD")]
    pub command: Vec<String>,
}

impl clap::Args for SandboxArgs {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        use clap::{value_parser, Arg, ArgAction};
        let cmd = cmd
            .arg(
                Arg::new("ro")
                    .long("ro")
                    .value_name("SRC:DST")
                    .action(ArgAction::Append)
                    .value_parser(value_parser!(BindArg))
                    .help("Bind a host file or directory read-only (SRC:DST, or SRC for the same path)"),
            )
            .arg(
                Arg::new("rw")
                    .long("rw")
                    .value_name("SRC:DST")
                    .action(ArgAction::Append)
                    .value_parser(value_parser!(BindArg))
                    .help("Bind a host file or directory read-write (always nosuid, nodev)"),
            )
            .arg(
                Arg::new("tmpfs")
                    .long("tmpfs")
                    .value_name("DST")
                    .action(ArgAction::Append)
                    .value_parser(value_parser!(PathBuf))
                    .help("Mount an empty tmpfs (/tmp always gets one)"),
            );
        SandboxOptions::augment_args(cmd)
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

impl clap::FromArgMatches for SandboxArgs {
    fn from_arg_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let options = SandboxOptions::from_arg_matches(matches)?;
        let mut mounts: Vec<(usize, MountArg)> = Vec::new();
        let mut collect = |id: &str, make: &dyn Fn(&clap::ArgMatches, usize) -> Option<MountArg>| {
            if let Some(indices) = matches.indices_of(id) {
                for (n, index) in indices.enumerate() {
                    if let Some(m) = make(matches, n) {
                        mounts.push((index, m));
                    }
                }
            }
        };
        collect("ro", &|m, n| m.get_many::<BindArg>("ro")?.nth(n).cloned().map(MountArg::Ro));
        collect("rw", &|m, n| m.get_many::<BindArg>("rw")?.nth(n).cloned().map(MountArg::Rw));
        collect("tmpfs", &|m, n| m.get_many::<PathBuf>("tmpfs")?.nth(n).cloned().map(MountArg::Tmpfs));
        mounts.sort_by_key(|(index, _)| *index);
        Ok(SandboxArgs { mounts: mounts.into_iter().map(|(_, m)| m).collect(), options })
    }

    fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

impl SandboxArgs {
    /// The spec these arguments describe; `settings` give the `/proc` mode and, with `--tty`, the
    /// caller's `TERM`.
    pub fn spec(&self, settings: &Settings) -> Result<Spec, SandboxError> {
        let o = &self.options;
        let mut b = SandboxBuilder::new(o.command.iter().cloned())
            .proc_mode(ProcMode::chosen(settings)?)
            .cwd(&o.cwd)
            .share_net(o.net)
            .terminal(o.tty)
            .hostname(&o.hostname);
        if let Some(n) = o.pids_max {
            b = b.pids_limit(Some(n));
        }
        if let Some(size) = o.memory_max {
            b = b.memory_limit(Some(size.0));
        }
        for m in &self.mounts {
            b = match m {
                MountArg::Ro(bind) => b.ro_bind(&bind.source, &bind.dest),
                MountArg::Rw(bind) => b.rw_bind(&bind.source, &bind.dest),
                MountArg::Tmpfs(dst) => b.tmpfs(dst),
            };
        }
        if o.tty {
            if let Some(term) = &settings.term {
                b = b.env("TERM", term);
            }
        }
        for e in &o.env {
            b = b.env(&e.key, &e.value);
        }
        b.build()
    }
}

/// Arguments of the hidden re-exec entry point used by [`runtime::command`].
#[derive(Debug, Args)]
pub struct ExecArgs {
    /// An inherited descriptor holding the OCI runtime spec as JSON (read, then closed)
    #[arg(long, value_name = "FD")]
    pub spec_fd: RawFd,
}

fn exit(code: i32) -> ExitCode {
    ExitCode::from((code & 0xff) as u8)
}

fn fail(err: &SandboxError) -> ExitCode {
    eprintln!("ovm: sandbox: {err}");
    exit(err.exit_code())
}

fn status(result: Result<i32, SandboxError>) -> ExitCode {
    match result {
        Ok(code) => exit(code),
        Err(err) => fail(&err),
    }
}

/// `ovm sandbox …`
pub fn sandbox(args: &SandboxArgs, settings: &Settings) -> ExitCode {
    let spec = match args.spec(settings) {
        Ok(spec) => spec,
        Err(err) => return fail(&err),
    };
    if args.options.print_spec {
        return match super::to_json(&spec) {
            Ok(json) => {
                println!("{json}");
                ExitCode::SUCCESS
            }
            Err(err) => fail(&err),
        };
    }
    if let Some(dir) = &args.options.bundle {
        return match super::write_bundle(&spec, dir) {
            Ok(config) => {
                println!("{}", config.display());
                ExitCode::SUCCESS
            }
            Err(err) => fail(&err),
        };
    }
    // Rlimits leave no trace when they are hit: a failure under limits the user asked for says
    // which were in force, since nothing else will.
    let asked = args.options.pids_max.is_some() || args.options.memory_max.is_some();
    let mechanism = asked.then(limits::detect);
    let result = runtime::run(&spec, settings);
    if let (Some(mechanism @ Mechanism::Rlimits { why }), Ok(code @ 1..)) = (&mechanism, &result) {
        let limits = super::plan::Plan::from_spec(&spec).map(|p| p.limits).unwrap_or_default();
        let settings: Vec<String> = mechanism.settings(&limits).into_iter().map(|(_, s)| s).collect();
        eprintln!(
            "ovm: sandbox: the command failed (exit status {code}) under the rlimits {} (no cgroup: {why}); if it \
             could not fork (EAGAIN) or allocate (ENOMEM), that was the limit: raise --pids-max / --memory-max",
            settings.join(", ")
        );
    }
    status(result)
}

/// `ovm __sandbox-exec --spec-fd FD`
pub fn exec(args: &ExecArgs, settings: &Settings) -> ExitCode {
    exec_fd(args.spec_fd, settings)
}

fn exec_fd(fd: RawFd, settings: &Settings) -> ExitCode {
    match super::spec_fd::read(fd) {
        Ok(spec) => status(runtime::run(&spec, settings)),
        Err(err) => fail(&err),
    }
}

/// `ovm sandbox …` and `ovm __sandbox-exec SPEC`, parsed without the rest of the CLI.
///
/// Each sandbox is a process start, and even a clap model of the sandbox's options alone costs
/// ~0.1-0.2 ms of one (dozens of small allocations and the code pages they touch); so the plain
/// forms are read by [`parse_sandbox`] below. `None` for anything else, including global options
/// (`-v`, `-C`), `--help` and every usage error: the full CLI then handles and words those
/// exactly as before. A test (in `crate::cli`) checks that whatever this takes, the full CLI parses
/// the same way.
pub fn fast_path(settings: &Settings) -> Option<ExitCode> {
    // A degraded /proc mode must be announced, and that warning goes through the log subscriber the
    // fast path does not set up: whoever asks for the mode takes the full path.
    if settings.sandbox_proc.is_some() {
        return None;
    }
    match parse_fast(std::env::args_os().skip(1))? {
        Fast::Sandbox(args) => Some(sandbox(&args, settings)),
        Fast::Exec(fd) => Some(exec_fd(fd, settings)),
    }
}

/// What [`fast_path`] recognised. `pub(crate)`, like [`parse_fast`], for the test in `crate::cli`
/// that checks the fast path against the full command line, which sits above the sandbox.
pub(crate) enum Fast {
    Sandbox(SandboxArgs),
    Exec(RawFd),
}

pub(crate) fn parse_fast(args: impl IntoIterator<Item = std::ffi::OsString>) -> Option<Fast> {
    let mut args = args.into_iter();
    let first = args.next()?;
    if first == "sandbox" {
        let args: Vec<String> = args.map(|a| a.into_string().ok()).collect::<Option<_>>()?;
        return parse_sandbox(args).map(Fast::Sandbox);
    }
    if first == runtime::EXEC_SUBCOMMAND {
        if args.next()? != super::spec_fd::SPEC_FD_OPTION {
            return None;
        }
        let fd = args.next()?.into_string().ok()?.parse().ok()?;
        return args.next().is_none().then_some(Fast::Exec(fd));
    }
    None
}

/// The options of [`SandboxArgs`] in their plain forms (`--opt VALUE`, `--opt=VALUE`, flags given
/// once), then the command, after `--` or from the first non-option on (everything after it is
/// the command's). Anything else — short options, unknown or repeated options, missing or
/// hyphen-led values, values the option rejects, both `--print-spec` and `--bundle` — is `None`.
/// (Hand-written rather than a second argument parser crate: the grammar is these ten lines of
/// cases, and falling back to clap for everything else is what keeps the messages identical.)
fn parse_sandbox(args: Vec<String>) -> Option<SandboxArgs> {
    let mut mounts = Vec::new();
    let mut cwd = None;
    let mut env = Vec::new();
    let (mut net, mut tty, mut print_spec) = (false, false, false);
    let mut hostname = None;
    let mut bundle = None;
    let (mut pids_max, mut memory_max) = (None, None);
    let mut args = args.into_iter();
    let mut command = Vec::new();
    while let Some(arg) = args.next() {
        if arg == "--" {
            command.extend(args.by_ref());
            break;
        }
        let Some(option) = arg.strip_prefix("--") else {
            if arg.starts_with('-') {
                return None;
            }
            command.push(arg);
            command.extend(args.by_ref());
            break;
        };
        let (name, inline) = match option.split_once('=') {
            Some((name, value)) => (name, Some(value.to_string())),
            None => (option, None),
        };
        let flag = |set: &mut bool| (!*set && inline.is_none()).then(|| *set = true);
        match name {
            "net" => flag(&mut net)?,
            "tty" => flag(&mut tty)?,
            "print-spec" => flag(&mut print_spec)?,
            _ => {
                let value = match inline {
                    Some(value) => value,
                    None => args.next()?,
                };
                if value.is_empty() || value.starts_with('-') {
                    return None;
                }
                match name {
                    "ro" => mounts.push(MountArg::Ro(value.parse().ok()?)),
                    "rw" => mounts.push(MountArg::Rw(value.parse().ok()?)),
                    "tmpfs" => mounts.push(MountArg::Tmpfs(PathBuf::from(value))),
                    "env" => env.push(value.parse().ok()?),
                    "cwd" if cwd.is_none() => cwd = Some(PathBuf::from(value)),
                    "hostname" if hostname.is_none() => hostname = Some(value),
                    "bundle" if bundle.is_none() => bundle = Some(PathBuf::from(value)),
                    "pids-max" if pids_max.is_none() => pids_max = Some(value.parse::<u64>().ok().filter(|&n| n > 0)?),
                    "memory-max" if memory_max.is_none() => memory_max = Some(value.parse::<ByteSize>().ok()?),
                    _ => return None,
                }
            }
        }
    }
    if command.is_empty() || (print_spec && bundle.is_some()) {
        return None;
    }
    let options = SandboxOptions {
        cwd: cwd.unwrap_or_else(|| PathBuf::from("/")),
        env,
        net,
        tty,
        hostname: hostname.unwrap_or_else(|| super::spec::DEFAULT_HOSTNAME.to_string()),
        pids_max,
        memory_max,
        print_spec,
        bundle,
        command,
    };
    Some(SandboxArgs { mounts, options })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: SandboxArgs,
    }

    #[test]
    fn mount_options_keep_command_line_order() {
        let w = Wrapper::try_parse_from([
            "x",
            "--rw",
            "/a:/w",
            "--ro",
            "/b:/w/sub",
            "--tmpfs",
            "/w/t",
            "--ro",
            "/c:/c",
            "--",
            "sh",
        ])
        .unwrap();
        let dests: Vec<String> = w
            .args
            .mounts
            .iter()
            .map(|m| match m {
                MountArg::Ro(b) => format!("ro {}", b.dest.display()),
                MountArg::Rw(b) => format!("rw {}", b.dest.display()),
                MountArg::Tmpfs(d) => format!("tmpfs {}", d.display()),
            })
            .collect();
        assert_eq!(dests, ["rw /w", "ro /w/sub", "tmpfs /w/t", "ro /c"]);
    }

    #[test]
    fn bind_args_parse() {
        let b: BindArg = "/bin/busybox:/bin/sh".parse().unwrap();
        assert_eq!((b.source.to_str().unwrap(), b.dest.to_str().unwrap()), ("/bin/busybox", "/bin/sh"));
        let same: BindArg = "/usr".parse().unwrap();
        assert_eq!(same.dest, PathBuf::from("/usr"));
        let rel: BindArg = "data:/data".parse().unwrap();
        assert!(rel.source.is_absolute());
        assert!("/a:".parse::<BindArg>().is_err());
    }

    #[test]
    fn env_args_parse() {
        let e: EnvArg = "A=b=c".parse().unwrap();
        assert_eq!((e.key.as_str(), e.value.as_str()), ("A", "b=c"));
        assert!("novalue".parse::<EnvArg>().is_err());
        assert!("=x".parse::<EnvArg>().is_err());
    }
}
