//! `ovm doctor`: whether this host can run the build sandbox and build the gcc toolchain.

use std::process::ExitCode;

use crate::settings::Settings;

/// `ovm doctor`: the sandbox's checks and trial (they decide the exit status), plus whether the
/// host has what building the default gcc toolchain takes (information: a built toolchain, zig or
/// an external one need none of it).
pub(super) fn doctor(settings: &Settings) -> ExitCode {
    use crate::sandbox::{Check, Status};
    use crate::toolchain::host_prereqs;
    let mut report = crate::sandbox::diagnose(settings);
    let (status, detail) = match crate::arch::Arch::host() {
        None => (Status::Info, "unsupported host architecture: only x86_64 and aarch64 hosts build toolchains".into()),
        Some(host) => match host_prereqs::error(&host_prereqs::missing(std::path::Path::new("/"), host)) {
            None => {
                let needed = host_prereqs::needed(host);
                let files: Vec<&str> = needed.iter().map(|p| p.path.rsplit('/').next().unwrap_or(&p.path)).collect();
                (Status::Ok, format!("{} present (the toolchain profile builds gcc with them)", files.join(", ")))
            }
            Some(e) => (Status::Info, format!("{e}; --toolchain zig needs none of them")),
        },
    };
    report.checks.push(Check { name: "gcc toolchain host tools", status, detail, fix: None });
    print!("{}", report.render());
    if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
