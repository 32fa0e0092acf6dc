//! Stand-in toolchain parts for the progress and failure tests: `binutils`, `gcc` and
//! `linux-headers` recipes with a few shell steps each, built by `ovm toolchain ARCH` in seconds
//! (the toolchain profile sees the host's /bin), as tests/engine/toolchain_engine.rs builds them.
//! Their steps write a line to their log and wait a little, so a running task's line has
//! something to show.

use std::process::Command;

use crate::build_support::{ovm_bin, TestProject};
use crate::engine_fixture::{steps, toolchain_part};

/// The line every stand-in step prints before it waits: what a running task's line shows.
pub const STEP_SAYS: &str = "stand-in step at work";

/// The three parts; each step says [`STEP_SAYS`] and takes `pause` seconds; gcc's `all-gcc` runs
/// `all_gcc` after that.
pub fn write_parts(p: &TestProject, salt: &str, pause: &str, all_gcc: &str) {
    let wait = format!("echo '{STEP_SAYS}'; sleep {pause}");
    toolchain_part(
        "binutils",
        steps(&[
            ("configure", &wait),
            ("compile", &wait),
            ("install", "mkdir -p /ovm/dest/bin && printf '#!/bin/sh\\n' > \"/ovm/dest/bin/$TARGET-as\""),
        ]),
    )
    .write(p, salt);
    toolchain_part(
        "gcc",
        steps(&[
            ("configure", &wait),
            ("all-gcc", &format!("{wait}\n{all_gcc}")),
            ("install", "mkdir -p /ovm/dest/bin && echo cc1 > \"/ovm/dest/bin/$TARGET-gcc\""),
        ]),
    )
    .depends(&["binutils"])
    .write(p, salt);
    toolchain_part("linux-headers", steps(&[("install", "mkdir -p \"/ovm/dest/$TARGET/sys-root/usr/include\"")]))
        .write(p, salt);
}

/// `ovm -C P ARGS` without the shared mirror or shared-state cache: these tests want every task
/// of the stand-ins to run, and no source from anywhere but the recipe.
pub fn ovm(p: &TestProject, args: &[&str]) -> Command {
    let mut c = Command::new(ovm_bin());
    c.arg("-C").arg(p.path()).args(args);
    c.env("OVM_SSTATE_DIR", "").env_remove("OVM_MIRRORS").env_remove("NO_COLOR").env_remove("OVM_LOG");
    c
}
