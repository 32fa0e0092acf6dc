//! Byte sizes as people write them in configuration (`"4G"`, `"512M"`, `65536`): one parser for
//! `config/ovm.toml`, recipes and the command line, so `4G` means the same everywhere.
//!
//! Suffixes are binary (K = 1024), as in cgroup files, `ulimit` and Docker's `--memory`; an
//! optional `B` or `iB` after the letter is accepted (`4GiB`, `4GB` are both 4·2³⁰).

use std::fmt;

use serde::{Deserialize, Deserializer};

/// A number of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// Parses `123`, `64K`, `512M`, `4G`, `1T` (optionally `…B`/`…iB`); zero is refused, since no
    /// limit of zero bytes can be meant.
    pub fn parse(text: &str) -> Result<ByteSize, String> {
        let t = text.trim();
        let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (number, suffix) = t.split_at(digits);
        let number: u64 = number.parse().map_err(|_| format!("{text:?} is not a size: expected e.g. 512M or 4G"))?;
        let suffix = suffix.trim_start();
        let suffix = suffix.strip_suffix("iB").or_else(|| suffix.strip_suffix('B')).unwrap_or(suffix);
        let shift = match suffix.to_ascii_uppercase().as_str() {
            "" => 0,
            "K" => 10,
            "M" => 20,
            "G" => 30,
            "T" => 40,
            _ => return Err(format!("{text:?} is not a size: the unit must be K, M, G or T (powers of 1024)")),
        };
        let bytes = number.checked_mul(1u64 << shift).ok_or_else(|| format!("{text:?} is too large"))?;
        if bytes == 0 {
            return Err(format!("{text:?}: a size limit must be more than 0"));
        }
        Ok(ByteSize(bytes))
    }
}

impl fmt::Display for ByteSize {
    /// The largest unit that writes the size exactly (`64M`, `1536K`, `4G`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (shift, unit) in [(40, "T"), (30, "G"), (20, "M"), (10, "K")] {
            if self.0 != 0 && self.0 % (1u64 << shift) == 0 {
                return write!(f, "{}{unit}", self.0 >> shift);
            }
        }
        write!(f, "{}", self.0)
    }
}

impl std::str::FromStr for ByteSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        ByteSize::parse(s)
    }
}

/// Written back as a plain number of bytes, which [`Deserialize`] takes too.
impl serde::Serialize for ByteSize {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(self.0)
    }
}

/// TOML accepts either a string with a unit (`"4G"`) or a plain number of bytes.
impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Text(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Number(0) => Err(serde::de::Error::custom("a size limit must be more than 0")),
            Raw::Number(n) => Ok(ByteSize(n)),
            Raw::Text(t) => ByteSize::parse(&t).map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_are_binary_and_optional() {
        assert_eq!(ByteSize::parse("65536").unwrap(), ByteSize(65536));
        assert_eq!(ByteSize::parse("64M").unwrap(), ByteSize(64 << 20));
        assert_eq!(ByteSize::parse("4g").unwrap(), ByteSize(4 << 30));
        assert_eq!(ByteSize::parse("4GiB").unwrap(), ByteSize(4 << 30));
        assert_eq!(ByteSize::parse("8 GB").unwrap(), ByteSize(8 << 30));
    }

    #[test]
    fn nonsense_is_refused_with_the_text() {
        for bad in ["", "G", "4X", "-1", "0", "0M", "99999999999T", "4.5G"] {
            let err = ByteSize::parse(bad).unwrap_err();
            assert!(err.contains(&format!("{bad:?}")), "{bad}: {err}");
        }
    }

    #[test]
    fn display_uses_the_largest_exact_unit() {
        assert_eq!(ByteSize(64 << 20).to_string(), "64M");
        assert_eq!(ByteSize(1536 << 10).to_string(), "1536K");
        assert_eq!(ByteSize(1000).to_string(), "1000");
    }
}
