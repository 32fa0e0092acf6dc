/// One of the packages a target recipe's output is split into (`split`'s table says which files
/// each holds): a directory of `staging/ARCH/PKG/`, [`Layout::staged_part`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Part {
    Runtime,
    Dev,
    Dbg,
    Doc,
    Locale,
}

impl Part {
    pub const ALL: [Part; 5] = [Part::Runtime, Part::Dev, Part::Dbg, Part::Doc, Part::Locale];

    /// The directory of this part inside a package's staged output, and its name in recipes.
    pub fn name(self) -> &'static str {
        match self {
            Part::Runtime => "runtime",
            Part::Dev => "dev",
            Part::Dbg => "dbg",
            Part::Doc => "doc",
            Part::Locale => "locale",
        }
    }

    pub fn parse(s: &str) -> Option<Part> {
        Part::ALL.into_iter().find(|p| p.name() == s)
    }

    /// The package's name in a feed: `zlib`, `zlib-dev` …
    pub fn package_name(self, recipe: &str) -> String {
        match self {
            Part::Runtime => recipe.to_string(),
            p => format!("{recipe}-{}", p.name()),
        }
    }
}

impl std::fmt::Display for Part {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
