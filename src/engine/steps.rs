//! What the configure/compile/install tasks run inside the sandbox: a recipe's own shell snippet
//! when it gives one, otherwise the default of its build style (OpenWrt's Build/Configure,
//! Build/Compile, Build/Install defaults; BitBake's autotools class). Every step's script is run as
//! `/bin/sh -e SCRIPT_FILE` with cwd `/ovm/build`, so a failing command fails the task.
//!
//! The defaults only use the fixed in-sandbox paths and the environment of `env.rs`, never a host
//! path: that is what keeps a recipe's signature meaningful on another machine.

pub use crate::recipe::Style;

/// The three steps that run inside the sandbox, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Step {
    Configure,
    Compile,
    Install,
}

impl Step {
    pub const ALL: [Step; 3] = [Step::Configure, Step::Compile, Step::Install];

    pub fn name(self) -> &'static str {
        match self {
            Step::Configure => "configure",
            Step::Compile => "compile",
            Step::Install => "install",
        }
    }
}

/// Quotes `s` for a POSIX shell command line.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// One build argument as a shell word: quoted as it is, except that each `${NAME}` in it (a
/// variable of the step's environment, checked when the recipe was loaded) is expanded by the
/// step's shell — `CC_FOR_BUILD=${HOSTCC}`. Nothing else in it is special.
fn shell_word(arg: &str) -> String {
    let refs = crate::recipe::expansions(arg);
    if refs.is_empty() || refs.iter().any(Result::is_err) {
        return shell_quote(arg);
    }
    let mut out = String::from("\"");
    let mut rest = arg;
    while let Some(at) = rest.find("${") {
        let end = rest[at..].find('}').map_or(rest.len(), |e| at + e + 1);
        out.push_str(&escape_in_double_quotes(&rest[..at]));
        out.push_str(&rest[at..end]);
        rest = &rest[end..];
    }
    out.push_str(&escape_in_double_quotes(rest));
    out.push('"');
    out
}

/// Inside double quotes a shell still gives `$`, `` ` ``, `"` and `\` their meaning.
fn escape_in_double_quotes(s: &str) -> String {
    s.chars()
        .flat_map(|c| match c {
            '$' | '`' | '"' | '\\' => vec!['\\', c],
            c => vec![c],
        })
        .collect()
}

fn join_args(args: &[String]) -> String {
    args.iter().map(|a| format!(" {}", shell_word(a))).collect()
}

/// What a style's default steps are made of, besides the style and the step.
#[derive(Debug, Clone, Copy, Default)]
pub struct Defaults<'a> {
    pub configure_args: &'a [String],
    pub make_args: &'a [String],
    /// The recipe file (in /ovm/files) a kbuild tree starts its .config from.
    pub kconfig: Option<&'a str>,
    /// `cmake` style: generate for ninja (the recipe names the ninja native tool) instead of make.
    pub ninja: bool,
}

/// Where the `cmake` style's configure step writes its toolchain file.
pub const CMAKE_TOOLCHAIN_FILE: &str = "/ovm/build/ovm-toolchain.cmake";

/// The `cmake` style's toolchain file, as a shell here-document that expands the step's
/// environment when the step runs: the compilers and binutils of the sandbox's toolchain, the
/// preprocessor flags (the sysroot's headers, the source-path mapping: CMake reads CFLAGS and
/// LDFLAGS from the environment but not CPPFLAGS), and every find_* confined to /ovm/sysroot
/// except programs, which are the build machine's (the native tools on PATH).
fn cmake_toolchain_file() -> String {
    format!(
        r#"cat > {CMAKE_TOOLCHAIN_FILE} <<OVM_TOOLCHAIN
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR ${{TARGET%%-*}})
set(CMAKE_C_COMPILER "$CC")
set(CMAKE_CXX_COMPILER "$CXX")
set(CMAKE_AR "$(command -v "$AR")" CACHE FILEPATH "")
set(CMAKE_RANLIB "$(command -v "$RANLIB")" CACHE FILEPATH "")
set(CMAKE_NM "$(command -v "$NM")" CACHE FILEPATH "")
set(CMAKE_STRIP "$(command -v "$STRIP")" CACHE FILEPATH "")
set(CMAKE_OBJCOPY "$(command -v "$OBJCOPY")" CACHE FILEPATH "")
set(CMAKE_C_FLAGS_INIT "$CPPFLAGS")
set(CMAKE_CXX_FLAGS_INIT "$CPPFLAGS")
set(CMAKE_FIND_ROOT_PATH "$SYSROOT")
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
OVM_TOOLCHAIN
"#
    )
}

/// A kbuild tree configured from the recipe's kconfig file, which must be the whole
/// configuration: `oldconfig` may neither ask (stdin is empty, so an option the file does not
/// set fails the step) nor change anything (an unmet dependency would silently drop an option,
/// and the build would differ from the file a person reads and `ovm menuconfig` edits). A
/// difference fails the step with both sides shown.
fn kconfig_exactly(kmake: &str, file: &str) -> String {
    let f = shell_quote(file);
    let mismatch = shell_quote(&format!(
        "config/{file} does not match what kconfig makes of it (< as written, > as kconfig resolved it):"
    ));
    format!(
        r#"cp /ovm/files/{f} /ovm/build/.config
{kmake} oldconfig </dev/null
grep -E '^(CONFIG_|# CONFIG_)' /ovm/files/{f} | sort >/ovm/build/.config.want
grep -E '^(CONFIG_|# CONFIG_)' /ovm/build/.config | sort >/ovm/build/.config.have
if ! cmp -s /ovm/build/.config.want /ovm/build/.config.have; then
	echo {mismatch} >&2
	diff /ovm/build/.config.want /ovm/build/.config.have >&2 || true
	exit 1
fi"#
    )
}

/// The default script of `step` for `style`; `None` when the style has nothing to do for it.
pub fn default_script(style: Style, step: Step, d: Defaults<'_>) -> Option<String> {
    let Defaults { configure_args, make_args, kconfig, ninja } = d;
    let make = format!("make{}", join_args(make_args));
    match (style, step) {
        // /etc and /var, not /usr/etc and /usr/var: where an initrd's programs look for their
        // configuration and state (the recipe's own arguments come last and may override them).
        (Style::Autotools, Step::Configure) => Some(format!(
            "/ovm/src/configure --host=\"$TARGET\" --build=\"$BUILD_TRIPLE\" --prefix=/usr --sysconfdir=/etc \
             --localstatedir=/var{}",
            join_args(configure_args)
        )),
        (Style::Autotools, Step::Compile) => Some(make),
        (Style::Autotools, Step::Install) => Some(format!("{make} DESTDIR=/ovm/dest install")),
        // Plain Makefile trees usually cannot build out of tree: build in /ovm/src.
        (Style::Make, Step::Configure) => None,
        (Style::Make, Step::Compile) => Some(format!("{make} -C /ovm/src CC=\"$CC\" AR=\"$AR\"")),
        (Style::Make, Step::Install) => {
            Some(format!("{make} -C /ovm/src CC=\"$CC\" AR=\"$AR\" DESTDIR=/ovm/dest PREFIX=/usr install"))
        }
        (Style::Kbuild, Step::Configure) => {
            let kmake = format!(
                "{make} -C /ovm/src O=/ovm/build ARCH=\"$ARCH\" CROSS_COMPILE=\"$CROSS_COMPILE\" HOSTCC=\"$HOSTCC\""
            );
            Some(match kconfig {
                Some(file) => kconfig_exactly(&kmake, file),
                None => format!("{kmake} defconfig"),
            })
        }
        (Style::Kbuild, Step::Compile) => {
            Some(format!("{make} -C /ovm/src O=/ovm/build ARCH=\"$ARCH\" CROSS_COMPILE=\"$CROSS_COMPILE\""))
        }
        (Style::Kbuild, Step::Install) => Some(format!(
            "{make} -C /ovm/src O=/ovm/build ARCH=\"$ARCH\" CROSS_COMPILE=\"$CROSS_COMPILE\" CONFIG_PREFIX=/ovm/dest install"
        )),
        // /usr with lib (not lib64) and the same /etc and /var as autotools; the recipe's
        // arguments come last. make joins the engine's jobserver through MAKEFLAGS; ninja does
        // not know it and gets the job count instead.
        (Style::Cmake, Step::Configure) => Some(format!(
            "{}cmake -S /ovm/src -B /ovm/build -G {} -DCMAKE_TOOLCHAIN_FILE={CMAKE_TOOLCHAIN_FILE} \
             -DCMAKE_INSTALL_PREFIX=/usr -DCMAKE_INSTALL_LIBDIR=lib -DCMAKE_INSTALL_SYSCONFDIR=/etc \
             -DCMAKE_INSTALL_LOCALSTATEDIR=/var{}",
            cmake_toolchain_file(),
            if ninja { "Ninja" } else { "'Unix Makefiles'" },
            join_args(configure_args)
        )),
        (Style::Cmake, Step::Compile) if ninja => {
            Some(format!("cmake --build /ovm/build -- -j\"$JOBS\"{}", join_args(make_args)))
        }
        (Style::Cmake, Step::Compile) if make_args.is_empty() => Some("cmake --build /ovm/build".into()),
        (Style::Cmake, Step::Compile) => Some(format!("cmake --build /ovm/build --{}", join_args(make_args))),
        (Style::Cmake, Step::Install) => Some("DESTDIR=/ovm/dest cmake --install /ovm/build".into()),
        (Style::Custom, _) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_keeps_simple_words_and_protects_the_rest() {
        assert_eq!(shell_quote("--enable-static"), "--enable-static");
        assert_eq!(shell_quote("CFLAGS=-O2 -g"), "'CFLAGS=-O2 -g'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn autotools_defaults_cross_compile_into_destdir() {
        let c = default_script(
            Style::Autotools,
            Step::Configure,
            Defaults { configure_args: &["--disable-nls".into()], ..Defaults::default() },
        )
        .unwrap();
        assert!(c.starts_with("/ovm/src/configure --host=\"$TARGET\""), "{c}");
        assert!(c.ends_with("--prefix=/usr --sysconfdir=/etc --localstatedir=/var --disable-nls"), "{c}");
        let i = default_script(
            Style::Autotools,
            Step::Install,
            Defaults { make_args: &["V=1".into()], ..Defaults::default() },
        )
        .unwrap();
        assert_eq!(i, "make V=1 DESTDIR=/ovm/dest install");
    }

    /// A `${NAME}` in an argument is the step's variable; everything else stays literal.
    #[test]
    fn arguments_expand_step_variables_and_nothing_else() {
        assert_eq!(shell_word("CC_FOR_BUILD=${HOSTCC}"), "\"CC_FOR_BUILD=${HOSTCC}\"");
        assert_eq!(shell_word("--with-x=${SYSROOT}/usr $(rm -rf /)"), "\"--with-x=${SYSROOT}/usr \\$(rm -rf /)\"");
        assert_eq!(shell_word("a\"b`c`\\${CC}"), "\"a\\\"b\\`c\\`\\\\${CC}\"");
        assert_eq!(shell_word("$HOME"), "'$HOME'", "only the braced form expands");
        assert_eq!(shell_word("${not closed"), "'${not closed'");
        // What a shell makes of it, with the variables set as in a step.
        let script = format!("HOSTCC=x86_64-linux-musl-cc; printf '%s\\n' {}", shell_word("CC=${HOSTCC} $(id) `id`"));
        let out = std::process::Command::new("sh").arg("-c").arg(&script).output().unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "CC=x86_64-linux-musl-cc $(id) `id`\n");
    }

    /// The cmake style writes its toolchain file, then configures, builds and installs; what the
    /// shell makes of the toolchain file is checked with the step's variables set.
    #[test]
    fn cmake_defaults_write_a_toolchain_file_and_pick_the_generator() {
        let args = ["-DBUILD_SHARED_LIBS=OFF".to_string()];
        let c =
            default_script(Style::Cmake, Step::Configure, Defaults { configure_args: &args, ..Defaults::default() })
                .unwrap();
        assert!(c.contains("-G 'Unix Makefiles' -DCMAKE_TOOLCHAIN_FILE=/ovm/build/ovm-toolchain.cmake"), "{c}");
        assert!(c.ends_with("-DCMAKE_INSTALL_LOCALSTATEDIR=/var -DBUILD_SHARED_LIBS=OFF"), "{c}");
        let n = default_script(Style::Cmake, Step::Configure, Defaults { ninja: true, ..Defaults::default() }).unwrap();
        assert!(n.contains(" -G Ninja "), "{n}");
        let b = |ninja, make_args: &[String]| {
            default_script(Style::Cmake, Step::Compile, Defaults { ninja, make_args, ..Defaults::default() }).unwrap()
        };
        assert_eq!(b(false, &[]), "cmake --build /ovm/build");
        assert_eq!(b(false, &["V=1".into()]), "cmake --build /ovm/build -- V=1");
        assert_eq!(b(true, &[]), "cmake --build /ovm/build -- -j\"$JOBS\"");
        let i = default_script(Style::Cmake, Step::Install, Defaults::default()).unwrap();
        assert_eq!(i, "DESTDIR=/ovm/dest cmake --install /ovm/build");

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tc.cmake");
        let script = cmake_toolchain_file().replace(CMAKE_TOOLCHAIN_FILE, &file.to_string_lossy());
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "mkdir -p bin && for t in ar ranlib nm strip objcopy; do touch bin/x-$t; chmod +x bin/x-$t; done\n\
                          PATH=\"$PWD/bin:$PATH\"\n{script}"
            ))
            .current_dir(dir.path())
            .env("TARGET", "aarch64-linux-musl")
            .env("CC", "aarch64-linux-musl-cc")
            .env("CXX", "aarch64-linux-musl-c++")
            .env("CPPFLAGS", "-isystem /ovm/sysroot/usr/include")
            .env("SYSROOT", "/ovm/sysroot")
            .envs(["AR", "RANLIB", "NM", "STRIP", "OBJCOPY"].map(|v| (v, format!("x-{}", v.to_lowercase()))))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let tc = std::fs::read_to_string(&file).unwrap();
        let bin = dir.path().join("bin");
        for line in [
            "set(CMAKE_SYSTEM_PROCESSOR aarch64)".to_string(),
            "set(CMAKE_C_COMPILER \"aarch64-linux-musl-cc\")".into(),
            format!("set(CMAKE_AR \"{}/x-ar\" CACHE FILEPATH \"\")", bin.display()),
            "set(CMAKE_C_FLAGS_INIT \"-isystem /ovm/sysroot/usr/include\")".into(),
            "set(CMAKE_FIND_ROOT_PATH \"/ovm/sysroot\")".into(),
        ] {
            assert!(tc.lines().any(|l| l == line), "`{line}` not in:\n{tc}");
        }
    }

    #[test]
    fn kbuild_starts_from_the_recipe_config_file() {
        let c = default_script(
            Style::Kbuild,
            Step::Configure,
            Defaults { kconfig: Some("busybox.config"), ..Defaults::default() },
        )
        .unwrap();
        assert!(c.starts_with("cp /ovm/files/busybox.config /ovm/build/.config\n"), "{c}");
        assert!(c.contains("O=/ovm/build") && c.contains("HOSTCC=\"$HOSTCC\" oldconfig </dev/null"), "{c}");
        assert!(c.contains("config/busybox.config does not match what kconfig makes of it"), "{c}");
    }

    #[test]
    fn custom_style_has_no_defaults() {
        for step in Step::ALL {
            assert_eq!(default_script(Style::Custom, step, Defaults::default()), None);
        }
    }
}
