//! The environment every sandboxed step sees. It is fixed, complete and written down here, because
//! anything a build can read is an input: the sandbox clears the caller's environment entirely,
//! and this list (plus the recipe's own `env`) is all there is. Values name only in-sandbox paths.

use crate::arch::Arch;

/// Where things are inside every sandbox (docs/engine.md "The four phases" says what is bound where).
pub const TOOLCHAIN_DIR: &str = "/ovm/toolchain";
pub const TOOLS_DIR: &str = "/ovm/tools";
pub const NATIVE_DIR: &str = "/ovm/native";
pub const SRC_DIR: &str = "/ovm/src";
pub const BUILD_DIR: &str = "/ovm/build";
pub const DEST_DIR: &str = "/ovm/dest";
pub const SYSROOT_DIR: &str = "/ovm/sysroot";
pub const FILES_DIR: &str = "/ovm/files";
pub const CACHE_DIR: &str = "/ovm/cache";

pub use crate::layout::Profile;

pub struct EnvSpec<'a> {
    pub target: Arch,
    pub host: Arch,
    pub profile: Profile,
    pub jobs: usize,
    /// The recipe names native tools: `/ovm/native/bin` comes first on PATH. Only then, so that a
    /// package without them keeps the environment (and signature) it had.
    pub native: bool,
    pub source_date_epoch: u64,
    /// Where a target package's sources are said to be in what it builds (`__FILE__`, debug
    /// info): `/usr/src/debug/NAME-VERSION`, as OpenEmbedded maps them, instead of the sandbox's
    /// `/ovm/src` and `/ovm/build`, which the package step's QA refuses in an output.
    pub source_map: Option<String>,
    /// The recipe's `env`, applied last so a recipe can override a default (not PATH).
    pub recipe_env: &'a [(String, String)],
}

/// The complete environment, sorted by name (a stable order keeps specs diffable).
pub fn build_env(spec: &EnvSpec<'_>) -> Vec<(String, String)> {
    let t = spec.target.musl_triple();
    let h = spec.host.musl_triple();
    let path = match spec.profile {
        // Declared native tools before the build tools: a recipe asking for a tool gets it, not
        // busybox's applet of the same name.
        Profile::Package if spec.native => format!("{NATIVE_DIR}/bin:{TOOLS_DIR}/bin:{TOOLCHAIN_DIR}/bin"),
        Profile::Package => format!("{TOOLS_DIR}/bin:{TOOLCHAIN_DIR}/bin"),
        Profile::Toolchain => format!("{TOOLCHAIN_DIR}/bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"),
    };
    let env: Vec<(String, String)> = vec![
        ("PATH".into(), path),
        ("HOME".into(), "/tmp".into()),
        ("LC_ALL".into(), "C".into()),
        ("LANG".into(), "C".into()),
        ("TZ".into(), "UTC".into()),
        ("SHELL".into(), "/bin/sh".into()),
        ("TERM".into(), "dumb".into()),
        ("SOURCE_DATE_EPOCH".into(), spec.source_date_epoch.to_string()),
        // kconfig trees embed the build time and user unless told otherwise.
        ("KCONFIG_NOTIMESTAMP".into(), "1".into()),
        ("KBUILD_BUILD_TIMESTAMP".into(), "@".to_string() + &spec.source_date_epoch.to_string()),
        ("KBUILD_BUILD_USER".into(), "ovm".into()),
        ("KBUILD_BUILD_HOST".into(), "ovm".into()),
        ("ARCH".into(), spec.target.kernel_arch().into()),
        ("TARGET".into(), t.into()),
        ("BUILD_TRIPLE".into(), h.into()),
        ("CROSS_COMPILE".into(), format!("{t}-")),
        ("CC".into(), format!("{t}-cc")),
        ("CXX".into(), format!("{t}-c++")),
        ("AR".into(), format!("{t}-ar")),
        ("RANLIB".into(), format!("{t}-ranlib")),
        ("NM".into(), format!("{t}-nm")),
        ("STRIP".into(), format!("{t}-strip")),
        ("OBJCOPY".into(), format!("{t}-objcopy")),
        ("LD".into(), format!("{t}-ld")),
        ("HOSTCC".into(), format!("{h}-cc")),
        ("HOSTCXX".into(), format!("{h}-c++")),
        ("CFLAGS".into(), cflags(spec.profile).into()),
        ("CPPFLAGS".into(), cppflags(spec.source_map.as_deref())),
        ("LDFLAGS".into(), ldflags(spec.profile)),
        ("PKG_CONFIG_SYSROOT_DIR".into(), SYSROOT_DIR.into()),
        // Only the sysroot's `.pc` files (architecture-independent ones live in share/).
        ("PKG_CONFIG_LIBDIR".into(), format!("{SYSROOT_DIR}/usr/lib/pkgconfig:{SYSROOT_DIR}/usr/share/pkgconfig")),
        ("SYSROOT".into(), SYSROOT_DIR.into()),
        ("SRC".into(), SRC_DIR.into()),
        ("BUILD".into(), BUILD_DIR.into()),
        ("DESTDIR".into(), DEST_DIR.into()),
        ("FILES".into(), FILES_DIR.into()),
        ("JOBS".into(), spec.jobs.to_string()),
        ("ZIG_GLOBAL_CACHE_DIR".into(), format!("{CACHE_DIR}/zig")),
        ("ZIG_LOCAL_CACHE_DIR".into(), format!("{CACHE_DIR}/zig")),
    ];
    with_recipe_env(env, spec.recipe_env, &["PATH"])
}

/// The C compiler's flags. A target package is built for size, as OpenWrt builds its packages:
/// `-Os`, a section per function and datum for `--gc-sections` (in [`ldflags`]) to drop what
/// nothing calls, and no unwind tables (C never unwinds; a backtrace comes from the -dbg
/// package's debug info). That took the image of busybox, lz4, util-linux and e2fsprogs from 2.4
/// to 1.9 MB. And `-g`, as OpenEmbedded builds: the package step strips every program and keeps
/// its debug info in PKG-dbg under its build-id; without it there is none to keep (zig's linker
/// even strips the symbol table when not asked for debug info), and -g never changes the code.
/// The toolchain profile (build and native tools, the gcc toolchain's parts) keeps a plain
/// `-Os`: those programs never reach an image, and the toolchain's signature stays put.
fn cflags(profile: Profile) -> &'static str {
    match profile {
        Profile::Package => {
            "-Os -g -ffunction-sections -fdata-sections -fno-asynchronous-unwind-tables -fno-unwind-tables"
        }
        Profile::Toolchain => "-Os",
    }
}

/// The linker's flags: the sysroot's libraries, and (target packages, see [`cflags`]) unused
/// sections dropped.
fn ldflags(profile: Profile) -> String {
    match profile {
        Profile::Package => format!("-L{SYSROOT_DIR}/usr/lib -Wl,--gc-sections"),
        Profile::Toolchain => format!("-L{SYSROOT_DIR}/usr/lib"),
    }
}

/// The preprocessor's flags: the sysroot's headers, and (`-ffile-prefix-map`, which gcc and clang
/// apply to `__FILE__` and debug info alike) the source and build dirs mapped to `source_map`.
/// CPPFLAGS rather than CFLAGS: a recipe sets its own optimisation in CFLAGS far more often.
fn cppflags(source_map: Option<&str>) -> String {
    let mut flags = format!("-isystem {SYSROOT_DIR}/usr/include");
    if let Some(to) = source_map {
        flags.push_str(&format!(" -ffile-prefix-map={SRC_DIR}={to} -ffile-prefix-map={BUILD_DIR}={to}/build"));
    }
    flags
}

/// `env` with the recipe's own variables set over it (a recipe's value wins), except the names in
/// `keep`, which stay the sandbox's; sorted, as the spec lists them.
fn with_recipe_env(
    mut env: Vec<(String, String)>,
    recipe_env: &[(String, String)],
    keep: &[&str],
) -> Vec<(String, String)> {
    for (k, v) in recipe_env {
        if keep.contains(&k.as_str()) {
            continue;
        }
        match env.iter_mut().find(|(ek, _)| ek == k) {
            Some(slot) => slot.1 = v.clone(),
            None => env.push((k.clone(), v.clone())),
        }
    }
    env.sort();
    env
}

/// The environment of `ovm menuconfig`'s sandbox (the `toolchain` profile, host /usr read-only):
/// kconfig's menu program is a host tool compiled by the host's `cc` against the host's ncurses,
/// and it draws on the user's terminal, so `term` (the caller's `TERM`) goes in. Nothing for the
/// target's compiler: no `CC`/`CROSS_COMPILE`, which the menu never uses (and which name a
/// toolchain this sandbox does not have). `ARCH` selects the Kconfig tree of a Linux kernel.
pub fn menuconfig_env(target: Arch, term: &str, recipe_env: &[(String, String)]) -> Vec<(String, String)> {
    let env: Vec<(String, String)> = vec![
        ("PATH".into(), "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin".into()),
        ("HOME".into(), "/tmp".into()),
        // UTF-8, so ncursesw draws the boxes with line characters (under plain C, terminals such
        // as tmux show the alternate-charset letters instead); glibc has C.UTF-8 built in.
        ("LC_ALL".into(), "C.UTF-8".into()),
        ("LANG".into(), "C.UTF-8".into()),
        ("TZ".into(), "UTC".into()),
        ("SHELL".into(), "/bin/sh".into()),
        ("TERM".into(), term.into()),
        ("KCONFIG_NOTIMESTAMP".into(), "1".into()),
        ("ARCH".into(), target.kernel_arch().into()),
        ("HOSTCC".into(), "cc".into()),
    ];
    // The recipe's environment is for its build; these are the menu's own.
    with_recipe_env(env, recipe_env, &["PATH", "TERM", "HOSTCC"])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(recipe_env: &[(String, String)]) -> EnvSpec<'_> {
        EnvSpec {
            target: Arch::Aarch64,
            host: Arch::X86_64,
            profile: Profile::Package,
            jobs: 2,
            native: false,
            source_date_epoch: 42,
            source_map: None,
            recipe_env,
        }
    }

    fn get<'a>(env: &'a [(String, String)], k: &str) -> Option<&'a str> {
        env.iter().find(|(ek, _)| ek == k).map(|(_, v)| v.as_str())
    }

    #[test]
    fn cross_and_host_compilers_are_distinct() {
        let env = build_env(&spec(&[]));
        assert_eq!(get(&env, "CC"), Some("aarch64-linux-musl-cc"));
        assert_eq!(get(&env, "HOSTCC"), Some("x86_64-linux-musl-cc"));
        assert_eq!(get(&env, "ARCH"), Some("arm64"));
        assert_eq!(get(&env, "PATH"), Some("/ovm/tools/bin:/ovm/toolchain/bin"));
        assert_eq!(get(&env, "SOURCE_DATE_EPOCH"), Some("42"));
    }

    #[test]
    fn recipe_env_overrides_defaults_but_not_path() {
        let extra = vec![("CFLAGS".to_string(), "-O2".to_string()), ("PATH".into(), "/usr/bin".into())];
        let env = build_env(&spec(&extra));
        assert_eq!(get(&env, "CFLAGS"), Some("-O2"));
        assert_eq!(get(&env, "PATH"), Some("/ovm/tools/bin:/ovm/toolchain/bin"));
    }

    #[test]
    fn native_tools_come_first_on_path_only_for_a_recipe_that_names_them() {
        let env = build_env(&EnvSpec { native: true, ..spec(&[]) });
        assert_eq!(get(&env, "PATH"), Some("/ovm/native/bin:/ovm/tools/bin:/ovm/toolchain/bin"));
        let env = build_env(&EnvSpec { native: true, profile: Profile::Toolchain, ..spec(&[]) });
        assert!(!get(&env, "PATH").unwrap_or_default().contains("/ovm/native"), "tools see no native dir");
    }

    /// `crate::recipe::STEP_ENV` is what recipe validation lets a `${NAME}` in an argument name:
    /// exactly the variables every step gets, in either profile.
    #[test]
    fn the_recipe_contract_names_exactly_the_step_environment() {
        for profile in [Profile::Package, Profile::Toolchain] {
            let env = build_env(&EnvSpec { profile, ..spec(&[]) });
            let names: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
            let mut contract = crate::recipe::STEP_ENV.to_vec();
            contract.sort();
            assert_eq!(names, contract);
        }
    }

    #[test]
    fn no_value_names_a_host_path() {
        for (k, v) in build_env(&spec(&[])) {
            assert!(!v.contains("/home") && !v.contains("/root") && !v.contains("/work"), "{k}={v}");
        }
    }

    #[test]
    fn menuconfig_gets_the_host_compiler_and_the_users_terminal() {
        let recipe_env = vec![("KCONFIG_NOTIMESTAMP".to_string(), String::new()), ("TERM".into(), "dumb".into())];
        let env = menuconfig_env(Arch::Aarch64, "screen-256color", &recipe_env);
        assert_eq!(get(&env, "HOSTCC"), Some("cc"));
        assert_eq!(get(&env, "TERM"), Some("screen-256color"), "the recipe cannot take the terminal away");
        assert_eq!(get(&env, "ARCH"), Some("arm64"));
        assert_eq!(get(&env, "KCONFIG_NOTIMESTAMP"), Some(""), "the recipe's own setting wins");
        assert_eq!(get(&env, "CC"), None);
        assert_eq!(get(&env, "CROSS_COMPILE"), None);
        assert!(get(&env, "PATH").is_some_and(|p| p.split(':').any(|d| d == "/usr/bin")), "the host's cc and make");
    }
}
