//! `ovm sandbox`, `ovm doctor` and the hidden `ovm __sandbox-exec`: arguments and the thin glue from
//! them to the library. Exit statuses follow docker/podman: the command's own status (128+N for
//! signal N), 125 when the sandbox could not be set up, 126 not executable, 127 not found.

use std::path::PathBuf;
use std::process::ExitCode;
use std::str::FromStr;

use clap::Args;
use oci_spec::runtime::Spec;

use super::error::SandboxError;
use super::{doctor, runtime, SandboxBuilder};

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

/// Run a command in the strict sandbox: no host /usr, /bin, /lib, /etc, /home, no network, unless
/// bound or asked for.
#[derive(Debug, Args)]
pub struct SandboxArgs {
    /// Bind a host file or directory read-only (SRC:DST, or SRC for the same path)
    #[arg(long = "ro", value_name = "SRC:DST")]
    pub ro: Vec<BindArg>,
    /// Bind a host file or directory read-write (nosuid, nodev)
    #[arg(long = "rw", value_name = "SRC:DST")]
    pub rw: Vec<BindArg>,
    /// Mount an empty tmpfs (/tmp always gets one)
    #[arg(long = "tmpfs", value_name = "DST")]
    pub tmpfs: Vec<PathBuf>,
    /// Working directory inside the sandbox
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub cwd: PathBuf,
    /// Set an environment variable (the environment is otherwise PATH, HOME, LC_ALL=C, TZ=UTC only)
    #[arg(long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<EnvArg>,
    /// Share the host's network instead of an empty network namespace
    #[arg(long)]
    pub net: bool,
    /// Pass the terminal through (interactive shell with job control); otherwise the command runs
    /// in a new session without a controlling terminal
    #[arg(long)]
    pub tty: bool,
    /// Hostname inside
    #[arg(long, default_value = super::spec::DEFAULT_HOSTNAME)]
    pub hostname: String,
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

impl SandboxArgs {
    pub fn spec(&self) -> Result<Spec, SandboxError> {
        let mut b = SandboxBuilder::new(self.command.iter().cloned())
            .cwd(&self.cwd)
            .share_net(self.net)
            .terminal(self.tty)
            .hostname(&self.hostname);
        for bind in &self.ro {
            b = b.ro_bind(&bind.source, &bind.dest);
        }
        for bind in &self.rw {
            b = b.rw_bind(&bind.source, &bind.dest);
        }
        for dst in &self.tmpfs {
            b = b.tmpfs(dst);
        }
        if self.tty {
            if let Ok(term) = std::env::var("TERM") {
                b = b.env("TERM", term);
            }
        }
        for e in &self.env {
            b = b.env(&e.key, &e.value);
        }
        b.build()
    }
}

/// Arguments of the hidden re-exec entry point used by [`runtime::command`].
#[derive(Debug, Args)]
pub struct ExecArgs {
    /// The OCI runtime spec, as JSON
    pub spec: String,
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
pub fn sandbox(args: &SandboxArgs) -> ExitCode {
    let spec = match args.spec() {
        Ok(spec) => spec,
        Err(err) => return fail(&err),
    };
    if args.print_spec {
        return match super::to_json(&spec) {
            Ok(json) => {
                println!("{json}");
                ExitCode::SUCCESS
            }
            Err(err) => fail(&err),
        };
    }
    if let Some(dir) = &args.bundle {
        return match super::write_bundle(&spec, dir) {
            Ok(config) => {
                println!("{}", config.display());
                ExitCode::SUCCESS
            }
            Err(err) => fail(&err),
        };
    }
    status(runtime::run(&spec))
}

/// `ovm __sandbox-exec SPEC_JSON`
pub fn exec(args: &ExecArgs) -> ExitCode {
    match serde_json::from_str::<Spec>(&args.spec) {
        Ok(spec) => status(runtime::run(&spec)),
        Err(e) => fail(&SandboxError::InvalidSpec(format!("spec JSON: {e}"))),
    }
}

/// `ovm doctor`
pub fn doctor() -> ExitCode {
    let report = doctor::diagnose();
    print!("{}", report.render());
    if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
