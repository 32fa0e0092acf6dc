//! Task names and task keys. A task name becomes part of a file name (its stamp, its log), so it is
//! a checked type: only [`TaskName::parse`] and ovm's own built-in tasks make one.

use std::fmt;

use super::Domain;

/// The longest package or step name. A name becomes part of file names (`states/D/PKG.TASK` plus a
/// temporary suffix, `logs/D/PKG/TASK.log`), and one longer than a file system's 255-byte component
/// limit would validate, then make every `ovm status`/`build` of the project fail. 64 leaves room
/// for every suffix ovm adds; real names are far shorter.
pub const MAX_NAME_LEN: usize = 64;

/// A task's name: `fetch`, `unpack`, `patch`, `package`, a style's `configure`/`compile`/`install`,
/// or a recipe's own step (`all-gcc`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct TaskName(String);

/// Why a recipe's step name is not a [`TaskName`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidTaskName {
    #[error("step name `{0}` must match [a-z][a-z0-9-]*")]
    Malformed(String),
    #[error("step name is {0} characters long: at most {MAX_NAME_LEN} (names become file names)")]
    TooLong(usize),
    #[error("step name `{0}` is reserved for ovm's own task or state file of that name")]
    Reserved(String),
}

impl TaskName {
    /// The tasks every package has besides its steps.
    pub const BUILTIN: [&'static str; 4] = ["fetch", "unpack", "patch", "package"];
    /// Names no step may take. `running` no longer shares a file with anything (running markers
    /// live in `states/D/running/`, see `layout`), but a step of that name would still read as
    /// the marker in logs and in `OVM_FAULT=PKG.running`-style points; it stays refused.
    const RESERVED: [&'static str; 6] = ["fetch", "unpack", "patch", "autoreconf", "package", "running"];

    /// A recipe's step name, checked.
    pub fn parse(name: &str) -> Result<TaskName, InvalidTaskName> {
        let well_formed = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
            && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !well_formed {
            return Err(InvalidTaskName::Malformed(name.into()));
        }
        if name.len() > MAX_NAME_LEN {
            return Err(InvalidTaskName::TooLong(name.len()));
        }
        if Self::RESERVED.contains(&name) {
            return Err(InvalidTaskName::Reserved(name.into()));
        }
        Ok(TaskName(name.into()))
    }

    /// One of ovm's own tasks ([`TaskName::BUILTIN`], or a style's step), which no recipe names.
    pub(crate) fn builtin(name: &'static str) -> TaskName {
        TaskName(name.into())
    }

    pub fn fetch() -> TaskName {
        TaskName::builtin("fetch")
    }
    pub fn unpack() -> TaskName {
        TaskName::builtin("unpack")
    }
    pub fn patch() -> TaskName {
        TaskName::builtin("patch")
    }
    /// A recipe's optional regeneration of its build system, between `patch` and its steps.
    pub fn autoreconf() -> TaskName {
        TaskName::builtin("autoreconf")
    }
    pub fn package() -> TaskName {
        TaskName::builtin("package")
    }
    /// The image's one task (its stamp is `states/ARCH/image.pack`).
    pub fn pack() -> TaskName {
        TaskName::builtin("pack")
    }
    /// A named image's pack (`states/ARCH/image.pack-NAME`): image names are checked by
    /// `crate::image` (no `/`, at most 64 bytes).
    pub fn pack_image(name: &str) -> TaskName {
        TaskName(format!("pack-{name}"))
    }
    /// The package feed's task (`states/ARCH/image.feed`).
    pub fn feed() -> TaskName {
        TaskName::builtin("feed")
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TaskName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<str> for TaskName {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for TaskName {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

/// One task of one package of one domain: what a stamp, a log and a failure are about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId {
    pub domain: Domain,
    pub package: String,
    pub task: TaskName,
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.domain, self.package, self.task)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_names_are_checked() {
        assert_eq!(TaskName::parse("all-gcc").unwrap().as_str(), "all-gcc");
        for bad in ["", "Gcc", "9lives", "a_b", "a.b", "a/b"] {
            assert!(matches!(TaskName::parse(bad), Err(InvalidTaskName::Malformed(_))), "{bad}");
        }
        assert_eq!(TaskName::parse(&"a".repeat(65)), Err(InvalidTaskName::TooLong(65)));
        for reserved in ["fetch", "unpack", "patch", "autoreconf", "package", "running"] {
            assert!(matches!(TaskName::parse(reserved), Err(InvalidTaskName::Reserved(_))), "{reserved}");
        }
    }
}
