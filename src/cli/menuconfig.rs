//! `ovm menuconfig PKG [ARCH]`: the diff of the change on stdout (so it can be saved as a patch),
//! what happened to the file on stderr.

use std::process::ExitCode;

use crate::arch::Arch;
use crate::engine::menuconfig::{self, Edit};
use crate::project::Project;

pub(super) fn menuconfig(project: &Project, pkg: &str, arch: Option<Arch>, quiet: bool) -> anyhow::Result<ExitCode> {
    let edit = menuconfig::menuconfig(project, pkg, arch, quiet)?;
    if let Edit::Changed { diff, .. } = &edit {
        print!("{diff}");
    }
    if !quiet {
        eprintln!("{edit}");
    }
    Ok(ExitCode::SUCCESS)
}
