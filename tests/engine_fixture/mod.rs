//! The engine tests' own small, real recipe set and the helpers to read what a build did.
//!
//! * Sources are tarballs made here (fixed mtimes and owners, so the same content always has the
//!   same sha256) and served from `upstream/` in the scratch project through `file://` URLs; the
//!   recipes carry their real sha256, so fetch, verify and unpack run as for any package.
//! * `libgreet` is a C library (header + static lib) built by its own Makefile (`style = "make"`:
//!   GNU make from the build tools, under the jobserver); `hello` is a program that includes
//!   `<greet.h>` from `/ovm/sysroot` and links `-lgreet`. Together they use a patch
//!   (`patches/libgreet/`), a config file (`config/libgreet/mark.h`), `build.env` and
//!   `build.make_args`, i.e. every kind of input the incremental tests edit.
//! * A `salt` goes into the tarballs (an unused file) so a test can get signatures no other test
//!   shares: the run's shared-state cache then never stands in for a build the test must see run.
//! * [`project`] is a scratch project with the repository's real toolchain and build-tool recipes,
//!   whose build tools are already in the run's shared-state cache: the first test to get here
//!   builds them (under a lock), every later one restores them.
#![allow(dead_code)] // each test binary uses a different subset

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::build_support::{self, TestProject};

/// `OVM_TEST_SSTATE_DIR`: keep the build tools across `cargo test` runs while developing tests
/// (CI leaves it unset: one fresh cache per run, see build_support).
const DEV_SSTATE_ENV: &str = "OVM_TEST_SSTATE_DIR";
/// `OVM_TEST_KEEP`: leave the scratch projects behind, to look at their logs.
const KEEP_ENV: &str = "OVM_TEST_KEEP";

/// A scratch project with the real toolchain and build-tool recipes, tools already cached.
#[allow(clippy::disallowed_methods)] // The test's own knobs (above), not ovm's settings.
pub fn project() -> TestProject {
    let mut p = TestProject::with_real_tools();
    if let Some(dir) = std::env::var_os(DEV_SSTATE_ENV) {
        p.sstate = PathBuf::from(dir);
        fs::create_dir_all(&p.sstate).expect("dev sstate dir");
    }
    if std::env::var_os(KEEP_ENV).is_some() {
        p.dir.disable_cleanup(true);
        eprintln!("{KEEP_ENV}: keeping {}", p.path().display());
    }
    tools_in_sstate(&p.sstate);
    p
}

/// Builds the toolchain and build tools once into `sstate` (an empty project's `ovm build`),
/// serialised by a lock so that tests starting together do not compile them twice at once.
fn tools_in_sstate(sstate: &Path) {
    let lock_path = sstate.join(".engine-tests-tools.lock");
    let file = fs::OpenOptions::new().create(true).truncate(false).write(true).open(&lock_path).expect("lock file");
    let _lock = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive).expect("flock");
    let ready = sstate.join(".engine-tests-tools-ready");
    if ready.exists() {
        return;
    }
    let mut boot = TestProject::with_real_tools();
    boot.sstate = sstate.to_path_buf();
    boot.ok(&["build", "x86_64"]);
    fs::write(&ready, "").expect("ready marker");
}

/// One file of a source tarball.
pub struct Entry {
    pub path: String,
    pub content: Vec<u8>,
    pub mode: u32,
}

pub fn file(path: &str, content: &str) -> Entry {
    Entry { path: path.into(), content: content.as_bytes().to_vec(), mode: 0o644 }
}

/// A deterministic `.tar.gz` of `entries` under `top/`.
pub fn tarball(top: &str, entries: &[Entry]) -> Vec<u8> {
    let gz = flate2::GzBuilder::new().mtime(0).write(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    let mut dir = tar::Header::new_ustar();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_mode(0o755);
    dir.set_mtime(1_700_000_000);
    dir.set_size(0);
    tar.append_data(&mut dir, format!("{top}/"), std::io::empty()).expect("tar dir");
    for e in entries {
        let mut h = tar::Header::new_ustar();
        h.set_mode(e.mode);
        h.set_mtime(1_700_000_000);
        h.set_size(e.content.len() as u64);
        tar.append_data(&mut h, format!("{top}/{}", e.path), e.content.as_slice()).expect("tar entry");
    }
    tar.into_inner().expect("tar").finish().expect("gzip")
}

pub fn sha256(bytes: &[u8]) -> String {
    ovm::signature::sha256_hex(bytes)
}

/// A target recipe with one tarball source: `name-version` made of `entries` (plus the salt).
pub struct Pkg {
    pub name: String,
    pub version: String,
    pub entries: Vec<Entry>,
    pub depends: Vec<String>,
    /// `native = [...]`, written only when not empty.
    pub native: Vec<String>,
    pub files: Vec<String>,
    pub description: String,
    /// The `[build]` table's body (TOML), `style` included.
    pub build: String,
    /// Recipe directory under `recipes/` ("" for target packages, "tools").
    pub kind_dir: String,
    /// More tarball sources: (dest inside /ovm/src, entries).
    pub extra: Vec<(String, Vec<Entry>)>,
    /// TOML appended after `[build]` (a `[package]` table).
    pub tail: String,
    /// `license_files = [...]`, written only when not empty.
    pub license_files: Vec<String>,
}

impl Pkg {
    pub fn new(name: &str, entries: Vec<Entry>, build: &str) -> Pkg {
        Pkg {
            name: name.into(),
            version: "1.0".into(),
            entries,
            depends: Vec::new(),
            native: Vec::new(),
            files: Vec::new(),
            description: format!("{name}, a test package of the engine tests"),
            build: build.into(),
            kind_dir: String::new(),
            extra: Vec::new(),
            tail: String::new(),
            license_files: Vec::new(),
        }
    }

    /// A second tarball, unpacked at `/ovm/src/DEST`.
    pub fn extra_source(mut self, dest: &str, entries: Vec<Entry>) -> Pkg {
        self.extra.push((dest.into(), entries));
        self
    }

    pub fn depends(mut self, deps: &[&str]) -> Pkg {
        self.depends = deps.iter().map(|d| d.to_string()).collect();
        self
    }

    pub fn native(mut self, tools: &[&str]) -> Pkg {
        self.native = tools.iter().map(|d| d.to_string()).collect();
        self
    }

    /// A recipe under `recipes/native/`: a build-time tool for the host.
    pub fn native_tool(mut self) -> Pkg {
        self.kind_dir = "native".into();
        self
    }

    pub fn license_files(mut self, files: &[&str]) -> Pkg {
        self.license_files = files.iter().map(|d| d.to_string()).collect();
        self
    }

    /// More TOML after the `[build]` table, such as `[package]`.
    pub fn toml(mut self, tail: &str) -> Pkg {
        self.tail = tail.into();
        self
    }

    pub fn files(mut self, files: &[&str]) -> Pkg {
        self.files = files.iter().map(|d| d.to_string()).collect();
        self
    }

    /// Writes the tarball to `upstream/` and the recipe to `recipes/`. The tarball carries `salt`
    /// and a nonce of this test process (so a shared-state cache kept across runs with
    /// `OVM_TEST_SSTATE_DIR` cannot answer for it either); neither reaches any output.
    pub fn write(&self, p: &TestProject, salt: &str) {
        static NONCE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let nonce = NONCE.get_or_init(|| {
            let t = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
            format!("{}.{t}", std::process::id())
        });
        let salt = format!("{salt}-{nonce}");
        let upstream = p.path().join("upstream");
        fs::create_dir_all(&upstream).expect("upstream dir");
        let top = format!("{}-{}", self.name, self.version);
        let mut sources = String::new();
        let all = std::iter::once((String::new(), &self.entries)).chain(self.extra.iter().map(|(d, e)| (d.clone(), e)));
        for (dest, entries) in all {
            let mut entries: Vec<Entry> = entries
                .iter()
                .map(|e| Entry { path: e.path.clone(), content: e.content.clone(), mode: e.mode })
                .collect();
            entries.push(file("SALT", &salt));
            let bytes = tarball(&top, &entries);
            let name =
                if dest.is_empty() { format!("{top}-{salt}.tar.gz") } else { format!("{top}-{dest}-{salt}.tar.gz") };
            fs::write(upstream.join(&name), &bytes).expect("tarball");
            sources.push_str(&format!(
                "[[source]]\nurl = \"file://{}\"\nsha256 = \"{}\"\ndest = {dest:?}\n\n",
                upstream.join(&name).display(),
                sha256(&bytes)
            ));
        }
        let list = |v: &[String]| v.iter().map(|d| format!("{d:?}")).collect::<Vec<_>>().join(", ");
        let recipe = format!(
            "name = {name_q:?}\nversion = {version:?}\nlicense = \"MIT\"\ndescription = {desc:?}\n\
             {licenses}depends = [{deps}]\n{native}files = [{files}]\n\n{sources}[build]\n{build}\n{tail}\n",
            name_q = self.name,
            version = self.version,
            desc = self.description,
            deps = list(&self.depends),
            native =
                if self.native.is_empty() { String::new() } else { format!("native = [{}]\n", list(&self.native)) },
            files = list(&self.files),
            build = self.build,
            tail = self.tail,
            licenses = if self.license_files.is_empty() {
                String::new()
            } else {
                format!("license_files = [{}]\n", list(&self.license_files))
            },
        );
        let dir = if self.kind_dir.is_empty() { "recipes".to_string() } else { format!("recipes/{}", self.kind_dir) };
        p.write(&format!("{dir}/{}.toml", self.name), &recipe);
    }
}

pub const GREET_H: &str =
    "const char *greet_word(void);\nconst char *greet_mark(void);\nconst char *greet_tag(void);\n";

/// greet.c as shipped: says "Hallo" until the patch makes it "Hello".
pub const GREET_C: &str = "#include \"greet.h\"\n#include \"mark.h\"\nstatic const char word[] = \"Hallo\";\n\
const char *greet_word(void) { return word; }\n\
const char *greet_mark(void) { return GREET_MARK; }\n\
const char *greet_tag(void) { return GREET_TAG; }\n";

/// libgreet's Makefile: `mark.h` comes from the recipe's config file (`$FILES` = /ovm/files),
/// `GREET_TAG` from make_args.
pub const GREET_MAKEFILE: &str = "GREET_TAG ?= none\n\
all: libgreet.a\n\
greet.o: greet.c greet.h\n\
\t$(CC) $(CFLAGS) -I$(FILES)/libgreet -DGREET_TAG='\"$(GREET_TAG)\"' -c greet.c -o greet.o\n\
libgreet.a: greet.o\n\
\t$(AR) rcs $@ greet.o\n\
install: libgreet.a\n\
\tmkdir -p $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib\n\
\tcp greet.h $(DESTDIR)$(PREFIX)/include/greet.h\n\
\tcp libgreet.a $(DESTDIR)$(PREFIX)/lib/libgreet.a\n";

/// The patch turning "Hallo" into `word`.
pub fn greet_patch(word: &str) -> String {
    format!(
        "--- a/greet.c\n+++ b/greet.c\n@@ -1,4 +1,4 @@\n #include \"greet.h\"\n #include \"mark.h\"\n\
         -static const char word[] = \"Hallo\";\n+static const char word[] = \"{word}\";\n\
         \x20const char *greet_word(void) {{ return word; }}\n"
    )
}

pub fn libgreet(tag: &str) -> Pkg {
    Pkg::new(
        "libgreet",
        vec![file("greet.h", GREET_H), file("greet.c", GREET_C), file("Makefile", GREET_MAKEFILE)],
        &format!("style = \"make\"\nmake_args = [\"GREET_TAG={tag}\"]"),
    )
    .files(&["libgreet/mark.h"])
}

pub const HELLO_C: &str = "#include <stdio.h>\n#include <greet.h>\n\
int main(void) {\n\
\tprintf(\"%s, %s%s (libgreet %s)\\n\", greet_word(), HELLO_NAME, greet_mark(), greet_tag());\n\
\treturn 0;\n}\n";

/// `hello`: links libgreet from the sysroot; fails if the host's /usr is visible.
pub fn hello(name: &str) -> Pkg {
    Pkg::new(
        "hello",
        vec![file("hello.c", HELLO_C)],
        &format!(
            r#"style = "custom"
env = {{ HELLO_NAME = "{name}" }}
compile = '''
if [ -e /usr ] || [ -e /lib ]; then echo "the host's /usr or /lib is visible" >&2; exit 1; fi
$CC $CFLAGS $CPPFLAGS -DHELLO_NAME="\"$HELLO_NAME\"" -static -o hello /ovm/src/hello.c $LDFLAGS -lgreet
'''
install = '''
mkdir -p "$DESTDIR/usr/bin"
cp hello "$DESTDIR/usr/bin/hello"
'''"#
        ),
    )
    .depends(&["libgreet"])
}

/// A package of its own (no dependencies, nobody depends on it): `bye`.
pub fn bye() -> Pkg {
    Pkg::new(
        "bye",
        vec![file("bye.c", "#include <stdio.h>\nint main(void) { puts(\"bye\"); return 0; }\n")],
        r#"style = "custom"
compile = '''
$CC $CFLAGS -static -o bye /ovm/src/bye.c
'''
install = '''
mkdir -p "$DESTDIR/usr/bin"
cp bye "$DESTDIR/usr/bin/bye"
'''"#,
    )
}

/// Writes libgreet (with its patch and config file) and hello.
pub fn write_greet_set(p: &TestProject, salt: &str) {
    libgreet("1.0").write(p, salt);
    p.write("patches/libgreet/0001-greeting.patch", &greet_patch("Hello"));
    p.write("config/libgreet/mark.h", "#define GREET_MARK \"!\"\n");
    hello("ovm").write(p, salt);
}

/// hello with a second source whose file it installs too, so `unpack.source` falls between two
/// tarballs and the output depends on both.
pub fn hello_with_motd() -> Pkg {
    let mut h = hello("ovm").extra_source("data", vec![file("motd", "have a nice day\n")]);
    h.build = h.build.replace(
        "cp hello \"$DESTDIR/usr/bin/hello\"",
        "cp hello \"$DESTDIR/usr/bin/hello\"\ncp /ovm/src/data/motd \"$DESTDIR/usr/bin/motd\"",
    );
    h
}

/// What a recovered build must reproduce bit for bit: each package's staged output and the image.
#[derive(Debug, PartialEq, Eq)]
pub struct Outputs {
    pub staged: Vec<(String, String)>,
    pub image: String,
}

impl Outputs {
    /// The x86_64 outputs of `packages` and the x86_64 image of `p`.
    pub fn of(p: &TestProject, packages: &[&str]) -> Outputs {
        Outputs {
            staged: packages.iter().map(|pkg| (pkg.to_string(), staged_hash(p, "x86_64", pkg))).collect(),
            image: image_sha(p, "x86_64"),
        }
    }

    /// The outputs of a fresh project holding the set `write` puts in (with `salt`), built once for
    /// x86_64: what a build that was interrupted or faulted must reproduce.
    pub fn of_clean_build(write: impl Fn(&TestProject, &str), salt: &str, packages: &[&str]) -> Outputs {
        let reference = project();
        write(&reference, salt);
        reference.ok(&["build", "x86_64"]);
        Outputs::of(&reference, packages)
    }

    /// The staged output hash of `pkg`.
    pub fn staged(&self, pkg: &str) -> &str {
        self.staged.iter().find(|(name, _)| name == pkg).map(|(_, hash)| hash.as_str()).expect("a package of this set")
    }
}

/// The output hash of `staging/DOMAIN/PKG`, as the engine computes it.
pub fn staged_hash(p: &TestProject, domain: &str, pkg: &str) -> String {
    ovm::tree::hash_tree(&p.path().join("staging").join(domain).join(pkg)).expect("hashing a staged tree")
}

/// sha256 of output/ARCH/initrd.cpio.gz.
pub fn image_sha(p: &TestProject, arch: &str) -> String {
    sha256(&fs::read(p.path().join("output").join(arch).join("initrd.cpio.gz")).expect("reading the image"))
}

/// `package task` strings of the last run in `domain`, sorted (parallel packages interleave).
pub fn tasks_sorted(p: &TestProject, domain: &str) -> Vec<String> {
    let mut v = p.tasks_run(domain);
    v.sort();
    v
}

/// The image's tasks after a package output changed: the pack and the package feed, sorted as
/// [`tasks_sorted`] has them.
pub fn image_tasks() -> Vec<String> {
    vec!["image feed".into(), "image pack".into()]
}

/// `pkg: task task …` for each package, tasks in the order of the chain.
pub fn chain(pkg: &str, tasks: &[&str]) -> Vec<String> {
    tasks.iter().map(|t| format!("{pkg} {t}")).collect()
}

/// What a package reruns when an input of its patch, configure or compile task changed: the engine
/// restarts those on a freshly unpacked tree.
pub const FROM_UNPACK: &[&str] = &["unpack", "patch", "configure", "compile", "install", "package"];
pub const ALL_TASKS: &[&str] = &["fetch", "unpack", "patch", "configure", "compile", "install", "package"];

/// The expected `tasks_sorted` of several chains.
pub fn expect(chains: &[Vec<String>]) -> Vec<String> {
    let mut v: Vec<String> = chains.concat();
    v.sort();
    v
}

/// One task of the last run, from context.log.
#[derive(Debug, Clone)]
pub struct Span {
    pub package: String,
    pub task: String,
    pub start: SystemTime,
    pub end: Option<SystemTime>,
}

/// Start and end of every task of the last run in `domain`.
pub fn spans(p: &TestProject, domain: &str) -> Vec<Span> {
    let text = fs::read_to_string(p.path().join("logs").join(domain).join("context.log")).expect("context.log");
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.iter().rposition(|l| l.split_whitespace().nth(1) == Some("run")).map_or(0, |i| i + 1);
    let mut open: BTreeMap<(String, String), SystemTime> = BTreeMap::new();
    let mut out = Vec::new();
    for l in &lines[from..] {
        let w: Vec<&str> = l.split_whitespace().collect();
        if w.len() < 5 {
            continue;
        }
        let ts = humantime::parse_rfc3339(w[0]).unwrap_or_else(|e| panic!("timestamp in {l:?}: {e}"));
        let key = (w[3].to_string(), w[4].to_string());
        match w[1] {
            "start" => {
                open.insert(key, ts);
            }
            "done" | "failed" => {
                let start = open.remove(&key).unwrap_or_else(|| panic!("{l:?} without a start line"));
                out.push(Span { package: key.0, task: key.1, start, end: Some(ts) });
            }
            _ => {}
        }
    }
    for ((package, task), start) in open {
        out.push(Span { package, task, start, end: None });
    }
    out
}

/// Runs ovm, asserts that it failed, returns its output.
pub fn fails(p: &TestProject, args: &[&str]) -> String {
    let out = p.run(args);
    let t = build_support::text(&out);
    assert!(!out.status.success(), "ovm {} should have failed:\n{t}", args.join(" "));
    t
}

/// Appends to a file of the project.
pub fn append(p: &TestProject, rel: &str, text: &str) {
    let mut f = fs::OpenOptions::new().append(true).open(p.path().join(rel)).expect("open for append");
    f.write_all(text.as_bytes()).expect("append");
}

/// Replaces `from` by `to` in a project file (which must contain it).
pub fn edit(p: &TestProject, rel: &str, from: &str, to: &str) {
    let text = p.read(rel);
    assert!(text.contains(from), "{rel} does not contain {from:?}:\n{text}");
    p.write(rel, &text.replacen(from, to, 1));
}

/// `[[build.step]]`s in the TOML of `[build]`.
pub fn steps(list: &[(&str, &str)]) -> String {
    let mut s = String::from("style = \"custom\"\n");
    for (name, script) in list {
        s.push_str(&format!("[[build.step]]\nname = \"{name}\"\nscript = '''\n{script}\n'''\n"));
    }
    s
}

/// A toolchain part (a recipe under `recipes/toolchain/`) named `name` with `build` as its `[build]`.
pub fn toolchain_part(name: &str, build: String) -> Pkg {
    let mut p = Pkg::new(name, vec![file("README", &format!("stand-in for {name}\n"))], &build);
    p.kind_dir = "toolchain".into();
    p
}

/// The line block of `pkg` in `ovm status --why` output (its line and the indented reasons).
pub fn status_of(status: &str, pkg: &str) -> String {
    let mut block = String::new();
    let mut inside = false;
    for l in status.lines() {
        if !l.starts_with(' ') {
            inside = l.split_whitespace().nth(1) == Some(pkg);
        }
        if inside {
            block.push_str(l);
            block.push('\n');
        }
    }
    assert!(!block.is_empty(), "no status line for {pkg}:\n{status}");
    block
}
