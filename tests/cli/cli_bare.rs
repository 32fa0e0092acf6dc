//! The bare command: `ovm` alone prints its help (as a bare `make` lists a Makefile's targets) and
//! succeeds; a mistake still fails the way clap reports usage errors.

use crate::build_support;

use std::process::Command;

use build_support::{ovm_bin, text};

#[test]
fn bare_ovm_prints_help_and_succeeds() {
    let out = Command::new(ovm_bin()).output().expect("running ovm");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(stdout.contains("Usage: ovm"), "no usage line on stdout:\n{}", text(&out));
    for cmd in ["build", "boot", "shell", "download", "doctor"] {
        assert!(stdout.lines().any(|l| l.trim_start().starts_with(cmd)), "help does not list `{cmd}`:\n{stdout}");
    }
}

#[test]
fn a_usage_error_still_fails() {
    for args in [&["no-such-command"][..], &["-q"][..], &["build"][..]] {
        let out = Command::new(ovm_bin()).args(args).output().expect("running ovm");
        assert_eq!(out.status.code(), Some(2), "ovm {args:?}:\n{}", text(&out));
    }
}
