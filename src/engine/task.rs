//! The tasks of one package, in order, and what each one's signature is made of.
//!
//! | task      | BitBake / OpenWrt            | inputs besides the previous task's signature              |
//! |-----------|------------------------------|-----------------------------------------------------------|
//! | fetch     | do_fetch / download          | every source's declared sha256s (primary, alternatives)   |
//! | unpack    | do_unpack / prepare          | the sha256 actually fetched (which variant), dest, strip  |
//! | patch     | do_patch / prepare           | name and content of every patch, in order                 |
//! | configure | do_configure / Build/Configure | style, script, environment, config files, toolchain,    |
//! |           |                              | build tools, dependencies' output hashes, engine version  |
//! | compile   | do_compile / Build/Compile   | script                                                    |
//! | install   | do_install / Build/Install   | script                                                    |
//! | package   | do_package / Package/install | — (its product, the staged tree's hash, is the *output*)  |
//!
//! Fields that cannot change the bytes produced (description, homepage, URLs, -j) are deliberately
//! not inputs: editing them rebuilds nothing.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Task {
    Fetch,
    Unpack,
    Patch,
    Configure,
    Compile,
    Install,
    Package,
}

impl Task {
    pub const ALL: [Task; 7] =
        [Task::Fetch, Task::Unpack, Task::Patch, Task::Configure, Task::Compile, Task::Install, Task::Package];

    pub fn name(self) -> &'static str {
        match self {
            Task::Fetch => "fetch",
            Task::Unpack => "unpack",
            Task::Patch => "patch",
            Task::Configure => "configure",
            Task::Compile => "compile",
            Task::Install => "install",
            Task::Package => "package",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn parse(s: &str) -> Option<Task> {
        Task::ALL.into_iter().find(|t| t.name() == s)
    }

    pub fn previous(self) -> Option<Task> {
        self.index().checked_sub(1).map(|i| Task::ALL[i])
    }
}

impl fmt::Display for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_and_names_round_trip() {
        for (i, t) in Task::ALL.iter().enumerate() {
            assert_eq!(t.index(), i);
            assert_eq!(Task::parse(t.name()), Some(*t));
        }
        assert_eq!(Task::Fetch.previous(), None);
        assert_eq!(Task::Compile.previous(), Some(Task::Configure));
    }
}
