//! The device/permission table (`config/device_table.txt`), in Buildroot's makedevs format.
//!
//! Packages are built unprivileged, so they can neither `mknod` nor `chown`; the host applies both
//! at pack time from this table instead. One line per rule, whitespace-separated:
//!
//! ```text
//! <path> <type> <mode> <uid> <gid> <major> <minor> <start> <inc> <count>
//! ```
//!
//! `type` is `f` (existing file), `d` (directory, created if missing), `r` (directory and everything
//! below it), `c`/`b` (character/block device), `p` (fifo). `mode` is octal and may carry the
//! setuid/setgid/sticky bits, which are the only way such bits reach the image. `uid`/`gid` are
//! numbers, or names looked up in the assembled image's `/etc/passwd` and `/etc/group` (so
//! the names mean what they will mean on the target). `-` stands for an unused field; trailing
//! unused fields may be omitted. When `count` > 0 a device line makes a series:
//! `path{start}`…`path{start+count-1}` with minor `minor + i*inc`. This module only parses; the
//! rules are applied by the tree assembly in `tree.rs`.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("cannot read device table {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}:{line}: {message}")]
    Syntax { path: PathBuf, line: usize, message: String },
}

/// What a table line makes or changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleKind {
    /// `f`: an existing regular file (mode and owner only).
    File,
    /// `d`: a directory; created when no layer has it.
    Dir,
    /// `r`: a directory and everything below it (symlinks keep 0777).
    Recursive,
    /// `c`
    CharDev,
    /// `b`
    BlockDev,
    /// `p`
    Fifo,
}

/// A uid or gid as written in the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Id {
    Num(u32),
    /// Resolved against the image's /etc/passwd or /etc/group.
    Name(String),
}

/// One expanded table rule (a device series is expanded into one rule per node).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Relative to the image root, no leading slash, normalised (`dev/console`).
    pub path: Vec<u8>,
    pub kind: RuleKind,
    /// Permission bits, 0..=0o7777.
    pub mode: u32,
    pub uid: Id,
    pub gid: Id,
    pub major: u32,
    pub minor: u32,
    /// Where the rule came from, for error messages: `config/device_table.txt:12`.
    pub origin: String,
}

/// A parsed table: rules in file order (later rules win over earlier ones for the same path).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceTable {
    pub rules: Vec<Rule>,
}

impl DeviceTable {
    pub fn load(path: &Path) -> Result<DeviceTable, TableError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| TableError::Read { path: path.to_path_buf(), source })?;
        DeviceTable::parse(&text, path)
    }

    /// `origin` names the file in error messages.
    pub fn parse(text: &str, origin: &Path) -> Result<DeviceTable, TableError> {
        let mut rules = Vec::new();
        for (idx, raw) in text.lines().enumerate() {
            let line = idx + 1;
            let err = |message: String| TableError::Syntax { path: origin.to_path_buf(), line, message };
            let content = raw.split('#').next().unwrap_or("").trim();
            if content.is_empty() {
                continue;
            }
            let fields: Vec<&str> = content.split_whitespace().collect();
            if fields.len() < 5 {
                return Err(err(format!(
                    "expected at least 5 fields (path type mode uid gid [major minor start inc count]), found {}",
                    fields.len()
                )));
            }
            if fields.len() > 10 {
                return Err(err(format!("expected at most 10 fields, found {}", fields.len())));
            }
            let field = |i: usize| fields.get(i).copied().filter(|f| *f != "-");
            let path = normalise_path(fields[0]).map_err(err)?;
            let kind = match fields[1] {
                "f" => RuleKind::File,
                "d" => RuleKind::Dir,
                "r" => RuleKind::Recursive,
                "c" => RuleKind::CharDev,
                "b" => RuleKind::BlockDev,
                "p" => RuleKind::Fifo,
                other => return Err(err(format!("unknown type `{other}` (expected f, d, r, c, b or p)"))),
            };
            let mode_text = field(2).ok_or_else(|| err("mode is required".into()))?;
            let mode = u32::from_str_radix(mode_text, 8)
                .ok()
                .filter(|m| *m <= 0o7777)
                .ok_or_else(|| err(format!("mode `{mode_text}` is not an octal number up to 7777")))?;
            let uid = parse_id(field(3), "uid").map_err(err)?;
            let gid = parse_id(field(4), "gid").map_err(err)?;
            let num = |i: usize, name: &str| -> Result<Option<u32>, TableError> {
                field(i).map(|t| t.parse::<u32>().map_err(|_| err(format!("{name} `{t}` is not a number")))).transpose()
            };
            let major = num(5, "major")?;
            let minor = num(6, "minor")?;
            let start = num(7, "start")?.unwrap_or(0);
            let inc = num(8, "inc")?.unwrap_or(1);
            let count = num(9, "count")?.unwrap_or(0);
            let is_dev = matches!(kind, RuleKind::CharDev | RuleKind::BlockDev);
            let (major, minor) = match (is_dev, major, minor) {
                (true, Some(ma), Some(mi)) => (ma, mi),
                (true, _, _) => return Err(err("a device needs major and minor numbers".into())),
                (false, None, None) => (0, 0),
                (false, _, _) => return Err(err("major/minor are only meaningful for c and b lines".into())),
            };
            if count > 0 && !is_dev {
                return Err(err("count is only meaningful for c and b lines".into()));
            }
            let origin_text = format!("{}:{line}", origin.display());
            if count == 0 {
                rules.push(Rule { path, kind, mode, uid, gid, major, minor, origin: origin_text });
                continue;
            }
            for i in 0..count {
                let mut p = path.clone();
                let n = start.checked_add(i).ok_or_else(|| err("start + count overflows".into()))?;
                p.extend_from_slice(n.to_string().as_bytes());
                let minor = i
                    .checked_mul(inc)
                    .and_then(|d| d.checked_add(minor))
                    .ok_or_else(|| err("minor + count * inc overflows".into()))?;
                rules.push(Rule {
                    path: p,
                    kind,
                    mode,
                    uid: uid.clone(),
                    gid: gid.clone(),
                    major,
                    minor,
                    origin: origin_text.clone(),
                });
            }
        }
        Ok(DeviceTable { rules })
    }
}

fn parse_id(text: Option<&str>, what: &str) -> Result<Id, String> {
    match text {
        None => Err(format!("{what} is required (a number or a name)")),
        Some(t) if t.bytes().all(|b| b.is_ascii_digit()) => {
            t.parse().map(Id::Num).map_err(|_| format!("{what} `{t}` is out of range"))
        }
        Some(t) => Ok(Id::Name(t.to_string())),
    }
}

/// `/dev//console` → `dev/console`; rejects `..`, `.` and the root itself.
fn normalise_path(text: &str) -> Result<Vec<u8>, String> {
    if !text.starts_with('/') {
        return Err(format!("path `{text}` must be absolute (start with /)"));
    }
    let mut parts = Vec::new();
    for part in text.split('/').filter(|p| !p.is_empty()) {
        if part == "." || part == ".." {
            return Err(format!("path `{text}` must not contain `.` or `..`"));
        }
        parts.push(part);
    }
    if parts.is_empty() {
        return Err("the root directory cannot be a table entry; use /. children instead".into());
    }
    Ok(parts.join("/").into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<DeviceTable, TableError> {
        DeviceTable::parse(text, Path::new("t.txt"))
    }

    #[test]
    fn parses_the_default_table_shape() {
        let t = parse(
            "# comment\n\n/dev d 755 0 0 - - - - -\n/dev/console c 600 0 0 5 1\n/dev/null c 666 0 0 5 1 - - - # trailing\n/tmp d 1777 0 0\n",
        )
        .unwrap();
        assert_eq!(t.rules.len(), 4);
        assert_eq!(t.rules[1].path, b"dev/console");
        assert_eq!(t.rules[1].kind, RuleKind::CharDev);
        assert_eq!((t.rules[1].major, t.rules[1].minor, t.rules[1].mode), (5, 1, 0o600));
        assert_eq!(t.rules[3].mode, 0o1777);
        assert_eq!(t.rules[3].origin, "t.txt:6");
    }

    #[test]
    fn expands_a_device_series_like_makedevs() {
        let t = parse("/dev/ttyS c 660 0 dialout 4 64 0 1 3\n").unwrap();
        let names: Vec<_> = t.rules.iter().map(|r| (String::from_utf8(r.path.clone()).unwrap(), r.minor)).collect();
        assert_eq!(
            names,
            [("dev/ttyS0".to_string(), 64), ("dev/ttyS1".to_string(), 65), ("dev/ttyS2".to_string(), 66)]
        );
        assert_eq!(t.rules[0].gid, Id::Name("dialout".into()));
    }

    #[test]
    fn errors_name_file_line_and_cause() {
        for (text, needle) in [
            ("/dev/x q 600 0 0\n", "unknown type `q`"),
            ("/dev/x c 600 0 0\n", "major and minor"),
            ("/dev/x c 9999 0 0 1 1\n", "mode `9999`"),
            ("dev/x c 600 0 0 1 1\n", "must be absolute"),
            ("/a/../b f 644 0 0\n", "`..`"),
            ("/a f 644 0\n", "at least 5 fields"),
            ("/a f 644 0 0 1 2\n", "only meaningful for c and b"),
            ("/a c 600 0 0 x 1\n", "major `x`"),
        ] {
            let msg = parse(&format!("# first\n{text}")).unwrap_err().to_string();
            assert!(msg.starts_with("t.txt:2: ") && msg.contains(needle), "{text:?} → {msg}");
        }
    }
}
