//! An external toolchain: a directory the user points at (`--toolchain external:DIR`, or
//! `[toolchain] kind = "external"` with `path = DIR`) holding `bin/ARCH-linux-musl-{cc,gcc,…}`.
//! Nothing is built; it serves both the target packages and the build tools.

use std::path::PathBuf;

use crate::arch::Arch;
use crate::layout::Domain;

use super::{PartBuilder, Parts, Prepared, Provided, Target, Toolchain, ToolchainError};

/// A toolchain directory, absolute (resolved against the project root).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct External {
    pub dir: PathBuf,
}

impl External {
    /// The directory and its signature: its `bin/` entries' names and contents. A toolchain is
    /// trusted to be what its driver binaries are; re-hashing gigabytes of libraries each run is not.
    pub fn provided(&self, arch: Arch) -> Result<Provided, ToolchainError> {
        let bin = self.dir.join("bin");
        let cc = bin.join(format!("{}-cc", arch.musl_triple()));
        let gcc = bin.join(format!("{}-gcc", arch.musl_triple()));
        if !cc.exists() && !gcc.exists() {
            return Err(ToolchainError::External {
                dir: self.dir.clone(),
                reason: format!("no bin/{}-cc or -gcc", arch.musl_triple()),
            });
        }
        let signature =
            crate::tree::hash_tree(&bin).map_err(|source| ToolchainError::Compose { path: bin.clone(), source })?;
        Ok(Provided { dir: self.dir.clone(), signature })
    }
}

impl Toolchain for External {
    fn parts<'r>(&self, _: &Target<'r>) -> Result<Vec<Parts<'r>>, ToolchainError> {
        Ok(Vec::new())
    }

    /// Unusable now (missing, no compiler): the directory with no signature; preparing says why.
    fn current(&self, t: &Target<'_>, _: &dyn Fn(Domain, &str) -> Option<String>) -> Prepared {
        let p = self.provided(t.arch).unwrap_or_else(|_| Provided { dir: self.dir.clone(), signature: String::new() });
        Prepared { target: p.clone(), host: p }
    }

    fn prepare<B: PartBuilder>(&self, _: &B, t: &Target<'_>) -> Result<Prepared, B::Error> {
        let p = self.provided(t.arch)?;
        Ok(Prepared { target: p.clone(), host: p })
    }
}
