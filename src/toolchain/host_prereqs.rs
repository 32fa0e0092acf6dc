//! What building the gcc toolchain takes from the host: its recipes run in the `toolchain` profile,
//! where host `/usr` is bound read-only and the host's compiler builds the cross compiler. A missing
//! one would otherwise surface as a configure failure deep in a log ("C++ compiler cannot create
//! executables", "m4: not found"), so ovm names it: after a failed toolchain task, and in `ovm doctor`.
//! It is not checked before a build: an up-to-date toolchain needs none of it.

use std::path::Path;

use crate::arch::Arch;

/// A host file the toolchain build needs, and the Debian package that provides it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prereq {
    pub path: String,
    pub package: &'static str,
}

/// The host files the toolchain build needs (absolute paths), each with its Debian package.
pub fn needed(host: Arch) -> Vec<Prereq> {
    let multiarch = format!("{}-linux-gnu", host.name());
    let wanted = [
        ("/usr/bin/gcc".to_string(), "gcc"),
        ("/usr/bin/g++".to_string(), "g++"),
        ("/usr/bin/make".to_string(), "make"),
        ("/usr/bin/m4".to_string(), "m4"),
        ("/usr/bin/ar".to_string(), "binutils"),
        ("/usr/bin/xz".to_string(), "xz-utils"),
        // LDFLAGS=-static: the toolchain's host programs link glibc statically.
        (format!("/usr/lib/{multiarch}/libc.a"), "libc6-dev"),
    ];
    wanted.into_iter().map(|(path, package)| Prereq { path, package }).collect()
}

/// Everything of [`needed`] that `root` (the host's `/`, a parameter for tests) lacks.
pub fn missing(root: &Path, host: Arch) -> Vec<Prereq> {
    needed(host).into_iter().filter(|p| !root.join(p.path.trim_start_matches('/')).exists()).collect()
}

/// The error naming `missing`, or `None` when nothing is.
pub fn error(missing: &[Prereq]) -> Option<super::ToolchainError> {
    if missing.is_empty() {
        return None;
    }
    let names: Vec<&str> = missing.iter().map(|p| p.path.as_str()).collect();
    let packages: Vec<&str> = missing.iter().map(|p| p.package).collect();
    Some(super::ToolchainError::HostPrereqs { missing: names.join(", "), packages: packages.join(" ") })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_each_missing_file_and_its_package() {
        let d = tempfile::tempdir().unwrap();
        for f in ["usr/bin/gcc", "usr/bin/make", "usr/bin/ar", "usr/bin/xz", "usr/lib/x86_64-linux-gnu/libc.a"] {
            std::fs::create_dir_all(d.path().join(f).parent().unwrap()).unwrap();
            std::fs::write(d.path().join(f), b"").unwrap();
        }
        let m = missing(d.path(), Arch::X86_64);
        let paths: Vec<&str> = m.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, ["/usr/bin/g++", "/usr/bin/m4"]);
        let e = error(&m).unwrap().to_string();
        assert!(e.contains("/usr/bin/g++, /usr/bin/m4") && e.contains("apt-get install g++ m4"), "{e}");
        // aarch64 hosts look in their own multiarch dir.
        let m = missing(d.path(), Arch::Aarch64);
        assert!(m.iter().any(|p| p.path == "/usr/lib/aarch64-linux-gnu/libc.a" && p.package == "libc6-dev"));
        assert!(error(&[]).is_none());
    }
}
