//! `ovm completions SHELL`: a script clap_complete writes from the same definitions the parser
//! uses, so a new command or option completes without anyone editing a script. The bash one is
//! sourced in bash and its completion function called as bash would on `ovm bu<TAB>`.

use crate::build_support;

use std::process::Command;

use build_support::{ovm_bin, text};

fn script(shell: &str) -> String {
    let out = Command::new(ovm_bin()).args(["completions", shell]).output().expect("running ovm");
    assert!(out.status.success(), "ovm completions {shell}:\n{}", text(&out));
    String::from_utf8(out.stdout).expect("a script is text")
}

/// What bash's completion of `words` (the last one being completed) offers.
fn bash_completes(words: &[&str]) -> Vec<String> {
    build_support::require_tool("bash");
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("ovm.bash");
    std::fs::write(&file, script("bash")).expect("writing the script");
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let cword = words.len() - 1;
    let line = words.join(" ");
    // As bash calls a `complete -F` function: $1 the command, $2 the word, $3 the one before.
    let probe = format!(
        "source '{}' && COMP_WORDS=({}) && COMP_CWORD={cword} && COMP_LINE='{line}' && COMP_POINT={} && \
         _ovm ovm '{}' '{}' && printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        file.display(),
        quoted.join(" "),
        line.len(),
        words[cword],
        words[cword - 1],
    );
    let out = Command::new("bash").args(["--norc", "--noprofile", "-c", &probe]).output().expect("running bash");
    assert!(out.status.success(), "bash:\n{}", text(&out));
    String::from_utf8_lossy(&out.stdout).lines().filter(|l| !l.is_empty()).map(str::to_string).collect()
}

#[test]
fn bash_completes_commands_and_options() {
    assert_eq!(bash_completes(&["ovm", "bu"]), ["build"]);
    assert_eq!(bash_completes(&["ovm", "comp"]), ["completions"]);
    assert_eq!(bash_completes(&["ovm", "build", "--dry"]), ["--dry-run"]);
    // The hidden internal command is never offered.
    assert!(bash_completes(&["ovm", "__"]).is_empty());
}

#[test]
fn every_shell_gets_a_script_naming_the_commands() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let s = script(shell);
        for cmd in ["build", "list", "info", "status", "completions"] {
            assert!(s.contains(cmd), "the {shell} script does not mention `{cmd}`");
        }
        assert!(!s.contains("__sandbox-exec"), "the {shell} script offers the internal command");
    }
    let out = Command::new("bash").args(["-n", "-c", &script("bash")]).output().expect("running bash -n");
    assert!(out.status.success(), "the bash script does not parse:\n{}", text(&out));
}

#[test]
fn an_unknown_shell_is_a_usage_error() {
    let out = Command::new(ovm_bin()).args(["completions", "tcsh"]).output().expect("running ovm");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("bash"), "the error lists the shells:\n{}", text(&out));
}
