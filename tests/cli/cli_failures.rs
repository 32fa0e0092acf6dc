//! A failed build on one screen: after the failed tasks' own blocks, a table of every failed task
//! (package, task, the first error line of its log, the log), and sources that failed only because
//! no place answered collapse into one cause line naming `OVM_MIRRORS` and
//! `scripts/fill-mirror.sh`; apt's own messages (offline: "You must put some 'deb-src' URIs in your
//! sources.list") stay in the log.

use crate::build_support::{text, TestProject};
use crate::engine_fixture::sha256;
use crate::standin::{self, ovm};

/// A target recipe with one source at `url` (and the Debian fallback `debian`, if any).
fn recipe(p: &TestProject, name: &str, url: &str, sha: &str, debian: Option<&str>) {
    let debian = debian.map(|pkg| format!("debian = {{ package = \"{pkg}\", file = \"{name}_1.0.orig.tar.gz\" }}\n"));
    p.write(
        &format!("recipes/{name}.toml"),
        &format!(
            "name = \"{name}\"\nversion = \"1.0\"\nlicense = \"MIT\"\ndescription = \"{name}, a failure test package\"\n\n\
             [[source]]\nurl = \"{url}\"\nsha256 = \"{sha}\"\n{}\n\
             [build]\nstyle = \"custom\"\ninstall = \"true\"\n",
            debian.unwrap_or_default()
        ),
    );
}

/// The rows of the failure table (after its `ovm: N failed task(s):` line and the header).
fn table_rows(out: &str) -> Vec<&str> {
    out.lines()
        .skip_while(|l| !(l.starts_with("ovm: ") && l.ends_with(" failed task(s):")))
        .skip(2)
        .take_while(|l| l.starts_with("  "))
        .collect()
}

#[test]
fn an_offline_source_is_one_cause_line_and_a_broken_one_keeps_its_block_and_both_are_in_the_table() {
    let p = TestProject::empty();
    standin::write_parts(&p, "failures", "0", "true");
    // Unreachable: nothing listens on port 1, and every HTTP request (apt's too) goes through a
    // proxy that is not there either, as on a machine without network.
    recipe(&p, "offline", "http://127.0.0.1:1/offline-1.0.tar.gz", &"ab".repeat(32), Some("ovm-offline-test"));
    // Broken: the file is there, its bytes are not the recipe's.
    p.write("upstream/broken-1.0.tar.gz", "not the tarball\n");
    let url = format!("file://{}", p.path().join("upstream/broken-1.0.tar.gz").display());
    recipe(&p, "broken", &url, &sha256(b"the tarball\n"), None);

    let out = ovm(&p, &["build", "x86_64", "offline", "broken", "--toolchain", "gcc"])
        .env("http_proxy", "http://127.0.0.1:1")
        .env("https_proxy", "http://127.0.0.1:1")
        .env_remove("no_proxy")
        .env_remove("NO_PROXY")
        .output()
        .expect("running ovm");
    let all = text(&out);
    assert!(!out.status.success(), "{all}");
    // Each failed fetch is a progress line too, counted among the run's planned tasks.
    let progress: Vec<&str> = all.lines().filter(|l| l.contains(" fetch FAILED after ")).collect();
    assert_eq!(progress.len(), 2, "{all}");
    assert!(progress.iter().all(|l| l.starts_with('[') && !l.contains("/0]")), "{all}");

    // The table: both sources, each with its log.
    let rows = table_rows(&all);
    assert_eq!(rows.len(), 2, "{all}");
    let row = |pkg: &str| {
        *rows
            .iter()
            .find(|r| r.split_whitespace().next() == Some(pkg))
            .unwrap_or_else(|| panic!("no {pkg} row:\n{all}"))
    };
    let offline_log = p.path().join("logs/x86_64/offline/fetch.log");
    assert!(row("offline").contains("no place answered (network)"), "{all}");
    assert!(row("offline").ends_with(&offline_log.display().to_string()), "{all}");
    assert!(row("broken").contains("sha256 mismatch"), "{all}");

    // One cause line for the network, with the offline hint; no per-place network errors.
    let causes: Vec<&str> = all.lines().filter(|l| l.starts_with("ovm: cause:")).collect();
    assert_eq!(causes.len(), 1, "{all}");
    assert!(causes[0].contains("OVM_MIRRORS=DIR") && causes[0].contains("scripts/fill-mirror.sh"), "{all}");
    assert!(!all.contains("tcp connect error") && !all.contains("os error 111"), "{all}");
    // The broken source keeps its block with the places tried.
    assert!(all.contains("broken: cannot fetch broken-1.0.tar.gz; tried:"), "{all}");

    // apt ran (its words are in the log) but none of it reached the console.
    let log = std::fs::read_to_string(&offline_log).expect("the offline source's fetch log");
    assert!(log.contains("apt-get"), "the Debian fallback was not tried:\n{log}");
    for apt in ["E: ", "W: ", "deb-src", "apt-get -q"] {
        assert!(!all.contains(apt), "apt's {apt:?} on the console:\n{all}");
    }
}

#[test]
fn a_failed_step_is_a_row_with_the_first_error_line_of_its_log() {
    let p = TestProject::empty();
    standin::write_parts(
        &p,
        "failed-step",
        "0",
        "echo 'checking the stand-in'; echo 'gcc/cc1.c:12:3: error: stand-in compiler broke' >&2; echo 'make: *** [all] Error 1' >&2; exit 2",
    );
    let out = ovm(&p, &["toolchain", "x86_64"]).output().expect("running ovm");
    let all = text(&out);
    assert!(!out.status.success(), "{all}");
    let rows = table_rows(&all);
    assert_eq!(rows.len(), 1, "{all}");
    let log = p.path().join("logs/cross-x86_64/gcc/all-gcc.log");
    let cells: Vec<&str> = rows[0].split_whitespace().take(2).collect();
    assert_eq!(cells, ["gcc", "all-gcc"], "{all}");
    assert!(rows[0].contains("gcc/cc1.c:12:3: error: stand-in compiler broke"), "{all}");
    assert!(rows[0].ends_with(&log.display().to_string()), "{all}");
    // After the step's own block (its log tail), and no network cause.
    assert!(all.find("---- end of log ----") < all.find(" failed task(s):"), "{all}");
    assert!(!all.contains("ovm: cause:"), "{all}");
}
