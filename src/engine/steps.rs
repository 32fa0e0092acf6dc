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

/// The default script of `step` for `style`; `None` when the style has nothing to do for it.
/// `kconfig` is the recipe file (in /ovm/files) a kbuild tree starts its .config from.
pub fn default_script(
    style: Style,
    step: Step,
    configure_args: &[String],
    make_args: &[String],
    kconfig: Option<&str>,
) -> Option<String> {
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
            let kmake = format!("{make} -C /ovm/src O=/ovm/build ARCH=\"$ARCH\" CROSS_COMPILE=\"$CROSS_COMPILE\"");
            Some(match kconfig {
                Some(file) => format!("cp /ovm/files/{} /ovm/build/.config\nyes '' | {kmake} oldconfig", shell_quote(file)),
                None => format!("{kmake} defconfig"),
            })
        }
        (Style::Kbuild, Step::Compile) => {
            Some(format!("{make} -C /ovm/src O=/ovm/build ARCH=\"$ARCH\" CROSS_COMPILE=\"$CROSS_COMPILE\""))
        }
        (Style::Kbuild, Step::Install) => Some(format!(
            "{make} -C /ovm/src O=/ovm/build ARCH=\"$ARCH\" CROSS_COMPILE=\"$CROSS_COMPILE\" CONFIG_PREFIX=/ovm/dest install"
        )),
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
        let c = default_script(Style::Autotools, Step::Configure, &["--disable-nls".into()], &[], None).unwrap();
        assert!(c.starts_with("/ovm/src/configure --host=\"$TARGET\""), "{c}");
        assert!(c.ends_with("--prefix=/usr --sysconfdir=/etc --localstatedir=/var --disable-nls"), "{c}");
        let i = default_script(Style::Autotools, Step::Install, &[], &["V=1".into()], None).unwrap();
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

    #[test]
    fn kbuild_starts_from_the_recipe_config_file() {
        let c = default_script(Style::Kbuild, Step::Configure, &[], &[], Some("busybox.config")).unwrap();
        assert!(c.starts_with("cp /ovm/files/busybox.config /ovm/build/.config\n"), "{c}");
        assert!(c.contains("O=/ovm/build") && c.contains("oldconfig"));
    }

    #[test]
    fn custom_style_has_no_defaults() {
        for step in Step::ALL {
            assert_eq!(default_script(Style::Custom, step, &[], &[], None), None);
        }
    }
}
