//! Which toolchain a project builds with. `ovm build --toolchain KIND` is a project setting, not a
//! per-command flag: the choice is recorded in `states/toolchain.toml` ([`Layout::toolchain_choice`])
//! and every later command (`build` without the flag, `status`, `shell`, `spec`) builds with — or
//! judges freshness against — the same toolchain. Without a record, `[toolchain]` in
//! `config/ovm.toml` decides (the default for a fresh tree).
//!
//! The record also notes what the config said when the flag was given. If `[toolchain]` in the
//! config is edited afterwards, that edit is the newer decision and wins (with a warning), and the
//! next `ovm build` drops the record. So whichever the user changed last — the flag or the config —
//! is what ovm uses; neither silently overrides a later choice. `ovm clean` keeps the record: it is
//! a setting, not a build product.
//!
//! [`Layout::toolchain_choice`]: crate::layout::Layout::toolchain_choice

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::project::{Project, ToolchainSetting};
use crate::toolchain::{ToolchainError, ToolchainKind};

use super::EngineError;

/// Where the toolchain in use comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `--toolchain` on this command.
    Flag,
    /// Recorded by an earlier `ovm build --toolchain`.
    Recorded,
    /// `[toolchain]` in the config; nothing recorded.
    Config,
    /// `[toolchain]` in the config, edited since `recorded` was chosen with `--toolchain`.
    ConfigChanged { recorded: ToolchainKind },
}

/// The toolchain a command uses and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub kind: ToolchainKind,
    pub source: Source,
    /// What `[toolchain]` in the config says.
    pub config: ToolchainKind,
}

impl fmt::Display for Choice {
    /// `zig (set by ovm build --toolchain zig; config/ovm.toml says gcc)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = &self.kind;
        match &self.source {
            Source::Flag | Source::Recorded if self.kind == self.config => {
                write!(f, "{kind} (set by ovm build --toolchain {kind})")
            }
            Source::Flag | Source::Recorded => {
                write!(f, "{kind} (set by ovm build --toolchain {kind}; config/ovm.toml says {})", self.config)
            }
            Source::Config => write!(f, "{kind} (config/ovm.toml [toolchain])"),
            Source::ConfigChanged { recorded } => write!(
                f,
                "{kind} (config/ovm.toml [toolchain], edited after ovm build --toolchain {recorded} was recorded)"
            ),
        }
    }
}

/// The file's content: what was chosen and what the config said then.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Record {
    kind: String,
    config: String,
}

/// `[toolchain]` of the config as a toolchain kind.
pub fn configured(project: &Project) -> Result<ToolchainKind, EngineError> {
    let cfg = &project.config.toolchain;
    Ok(match cfg.kind {
        ToolchainSetting::Gcc => ToolchainKind::Gcc,
        ToolchainSetting::Zig => ToolchainKind::Zig,
        ToolchainSetting::External => match &cfg.path {
            Some(p) => ToolchainKind::External(p.clone()),
            None => {
                return Err(ToolchainError::External {
                    dir: PathBuf::new(),
                    reason: "[toolchain] kind = \"external\" needs path = \"DIR\"".into(),
                }
                .into())
            }
        },
    })
}

/// The recorded choice and the config's kind at the time, if any.
fn read_record(project: &Project) -> Result<Option<(ToolchainKind, String)>, EngineError> {
    let path = project.layout().toolchain_choice();
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(EngineError::Read { path, source }),
    };
    let bad = |why: String| EngineError::ToolchainRecord { path: path.clone(), why };
    let record: Record = toml::from_str(&text).map_err(|e| bad(e.message().trim_end().to_string()))?;
    let kind = record.kind.parse::<ToolchainKind>().map_err(bad)?;
    Ok(Some((kind, record.config)))
}

/// The toolchain of a command: `flag` (`--toolchain`), else the recorded choice unless the config
/// was edited since, else the config. Reads only.
pub fn resolve(project: &Project, flag: Option<&ToolchainKind>) -> Result<Choice, EngineError> {
    let config = configured(project)?;
    if let Some(kind) = flag {
        return Ok(Choice { kind: kind.clone(), source: Source::Flag, config });
    }
    Ok(match read_record(project)? {
        None => Choice { kind: config.clone(), source: Source::Config, config },
        Some((kind, then)) if then == config.to_string() => Choice { kind, source: Source::Recorded, config },
        Some((recorded, _)) => Choice { kind: config.clone(), source: Source::ConfigChanged { recorded }, config },
    })
}

/// Makes `choice` the project's setting (`ovm build` calls it under the project lock): a flag is
/// recorded (atomically), a config edited since the last record drops the record.
pub fn remember(project: &Project, choice: &Choice) -> Result<(), EngineError> {
    let path = project.layout().toolchain_choice();
    match &choice.source {
        Source::Flag => {
            let previous = read_record(project).ok().flatten().map(|(k, _)| k);
            let record = Record { kind: choice.kind.to_string(), config: choice.config.to_string() };
            let text = format!(
                "# The toolchain chosen with `ovm build --toolchain` (and what config/ovm.toml said then).\n{}",
                toml::to_string(&record).map_err(|e| EngineError::Internal(e.to_string()))?
            );
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|source| EngineError::Write { path: dir.into(), source })?;
            }
            crate::tree::write_atomic(&path, text.as_bytes())
                .map_err(|source| EngineError::Write { path: path.clone(), source })?;
            if previous.as_ref() != Some(&choice.kind) && choice.kind != choice.config {
                tracing::info!(
                    "toolchain {} is now this project's setting: status, shell, spec and later builds use it \
                     (config/ovm.toml says {})",
                    choice.kind,
                    choice.config
                );
            }
            Ok(())
        }
        Source::ConfigChanged { recorded } => match std::fs::remove_file(&path) {
            Ok(()) => {
                if *recorded != choice.kind {
                    tracing::warn!(
                        "config/ovm.toml [toolchain] was edited after `ovm build --toolchain {recorded}`: building \
                         with {}, the newer choice (pass --toolchain {recorded} to go back)",
                        choice.kind
                    );
                }
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(EngineError::Write { path, source }),
        },
        Source::Recorded | Source::Config => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(dir: &std::path::Path, kind: &str) -> Project {
        std::fs::create_dir_all(dir.join("recipes")).unwrap();
        std::fs::create_dir_all(dir.join("config")).unwrap();
        std::fs::write(dir.join("config/ovm.toml"), format!("[toolchain]\nkind = \"{kind}\"\n")).unwrap();
        Project::open(dir).unwrap()
    }

    #[test]
    fn the_flag_is_recorded_and_a_later_config_edit_wins() {
        let d = tempfile::tempdir().unwrap();
        let p = project(d.path(), "gcc");
        let fresh = resolve(&p, None).unwrap();
        assert_eq!((fresh.kind.clone(), fresh.source.clone()), (ToolchainKind::Gcc, Source::Config));
        remember(&p, &fresh).unwrap();
        assert!(!p.layout().toolchain_choice().exists(), "the config's choice is not recorded");

        let flagged = resolve(&p, Some(&ToolchainKind::Zig)).unwrap();
        remember(&p, &flagged).unwrap();
        let later = resolve(&p, None).unwrap();
        assert_eq!((later.kind.clone(), later.source.clone()), (ToolchainKind::Zig, Source::Recorded));
        assert_eq!(later.to_string(), "zig (set by ovm build --toolchain zig; config/ovm.toml says gcc)");

        // The config is edited afterwards: it is the newer choice.
        let p = project(d.path(), "external\"\npath = \"/opt/tc");
        let edited = resolve(&p, None).unwrap();
        assert_eq!(edited.kind, ToolchainKind::External("/opt/tc".into()));
        assert_eq!(edited.source, Source::ConfigChanged { recorded: ToolchainKind::Zig });
        remember(&p, &edited).unwrap();
        assert!(!p.layout().toolchain_choice().exists(), "a build drops the overridden record");
        assert_eq!(resolve(&p, None).unwrap().source, Source::Config);
    }

    #[test]
    fn a_damaged_record_is_an_error_naming_it() {
        let d = tempfile::tempdir().unwrap();
        let p = project(d.path(), "gcc");
        std::fs::create_dir_all(p.layout().states_root()).unwrap();
        std::fs::write(p.layout().toolchain_choice(), "kind = \"clang\"\nconfig = \"gcc\"\n").unwrap();
        let msg = resolve(&p, None).unwrap_err().to_string();
        assert!(msg.contains("toolchain.toml") && msg.contains("clang") && msg.contains("--toolchain"), "{msg}");
    }
}
