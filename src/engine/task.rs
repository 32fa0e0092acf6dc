//! The tasks of one package, in order, and what each one's signature is made of.
//!
//! Every package has `fetch`, `unpack`, `patch`, (`autoreconf` if its recipe asks for it), then its
//! *steps*, then `package`. The steps are
//! `configure`, `compile`, `install` (a build style's defaults or the recipe's snippets), or the
//! recipe's own `[[build.step]]`s (a cross toolchain: `all-gcc`, `libgcc`, `musl` …), each one a
//! task with its own stamp and log.
//!
//! | task        | BitBake / OpenWrt              | inputs besides the previous task's signature            |
//! |-------------|--------------------------------|---------------------------------------------------------|
//! | fetch       | do_fetch / download            | every source's declared sha256s (primary, alternatives) |
//! | unpack      | do_unpack / prepare            | the sha256 actually fetched (which variant), dest, strip, |
//! |             |                                | unpack, the domain, engine version                      |
//! | patch       | do_patch / prepare             | name and content of every patch, in order               |
//! | autoreconf  | autotools.bbclass's autoreconf | the build machine's autoconf, automake, libtool and     |
//! |             | / Buildroot's AUTORECONF       | autopoint versions                                      |
//! | first step  | do_configure / Build/Configure | style, script, environment, config files, toolchain,    |
//! |             |                                | build tools, dependencies' output hashes, isolation     |
//! | later steps | do_compile, do_install …       | script                                                  |
//! | package     | do_package / Package/install   | a target's `[package]` (its product, the staged tree's  |
//! |             |                                | hash, is the *output*)                                  |
//!
//! Fields that cannot change the bytes produced (description, homepage, URLs, -j) are deliberately
//! not inputs: editing them rebuilds no package (the feed's control files carry the description
//! and homepage, so the feed is written again).

use crate::arch::Arch;
use crate::layout::TaskName;
use crate::recipe::Recipe;

use super::steps::{self, Step};

/// A task of one package: its position in that package's [`TaskPlan`]. Positions order tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Task(usize);

impl Task {
    pub const FETCH: Task = Task(0);
    pub const UNPACK: Task = Task(1);
    pub const PATCH: Task = Task(2);

    pub fn index(self) -> usize {
        self.0
    }

    pub fn previous(self) -> Option<Task> {
        self.0.checked_sub(1).map(Task)
    }
}

/// What a build step does besides running its script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepTask {
    /// The shell snippet; `None`: nothing to run (a style without that step, a prebuilt recipe).
    pub script: Option<String>,
    /// The first step: starts from a fresh build dir, DESTDIR, sysroot and files, and carries the
    /// inputs that concern the whole build (environment, config files, toolchain, dependencies).
    pub first: bool,
    /// Runs on an empty DESTDIR (a style's `install`).
    pub cleans_dest: bool,
    /// A prebuilt toolchain's install: the patched source tree itself becomes the product.
    pub prebuilt_install: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskKind {
    Fetch,
    Unpack,
    Patch,
    /// Regenerates the build system in the patched source tree with the build machine's autotools.
    Autoreconf,
    Step(StepTask),
    Package,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskDef {
    pub name: TaskName,
    pub kind: TaskKind,
}

/// The ordered tasks of one recipe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskPlan {
    tasks: Vec<TaskDef>,
}

impl TaskPlan {
    /// The tasks of `recipe` built for `arch` (whose `[build.arch.ARCH]` arguments the scripts get).
    pub fn for_recipe(recipe: &Recipe, arch: Arch) -> TaskPlan {
        let mut tasks = vec![
            TaskDef { name: TaskName::fetch(), kind: TaskKind::Fetch },
            TaskDef { name: TaskName::unpack(), kind: TaskKind::Unpack },
            TaskDef { name: TaskName::patch(), kind: TaskKind::Patch },
        ];
        if recipe.build.as_ref().is_some_and(|b| b.autoreconf) {
            tasks.push(TaskDef { name: TaskName::autoreconf(), kind: TaskKind::Autoreconf });
        }
        match recipe.build.as_ref().filter(|b| !b.steps.is_empty()) {
            Some(build) => {
                for (i, s) in build.steps.iter().enumerate() {
                    tasks.push(TaskDef {
                        name: s.name.clone(),
                        kind: TaskKind::Step(StepTask {
                            script: Some(s.script.clone()),
                            first: i == 0,
                            cleans_dest: false,
                            prebuilt_install: false,
                        }),
                    });
                }
            }
            None => {
                let prebuilt = recipe.is_prebuilt();
                for step in Step::ALL {
                    tasks.push(TaskDef {
                        name: TaskName::builtin(step.name()),
                        kind: TaskKind::Step(StepTask {
                            script: if prebuilt { None } else { default_or_snippet(recipe, step, arch) },
                            first: step == Step::Configure,
                            cleans_dest: step == Step::Install,
                            prebuilt_install: prebuilt && step == Step::Install,
                        }),
                    });
                }
            }
        }
        tasks.push(TaskDef { name: TaskName::package(), kind: TaskKind::Package });
        TaskPlan { tasks }
    }

    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Every task, in order.
    pub fn all(&self) -> impl Iterator<Item = Task> {
        (0..self.tasks.len()).map(Task)
    }

    /// The last task that works on the source tree alone (`patch`, or `autoreconf` after it): where
    /// `ovm shell` and source preparation stop.
    pub fn source_ready(&self) -> Task {
        match self.tasks.get(Task::PATCH.0 + 1) {
            Some(d) if d.kind == TaskKind::Autoreconf => Task(Task::PATCH.0 + 1),
            _ => Task::PATCH,
        }
    }

    pub fn package(&self) -> Task {
        Task(self.tasks.len() - 1)
    }

    /// The last build step (the one that reruns in place; see `package.rs`).
    pub fn last_step(&self) -> Task {
        Task(self.tasks.len() - 2)
    }

    pub fn def(&self, t: Task) -> &TaskDef {
        &self.tasks[t.0]
    }

    pub fn name(&self, t: Task) -> &TaskName {
        &self.tasks[t.0].name
    }

    pub fn by_name(&self, name: &str) -> Option<Task> {
        self.tasks.iter().position(|d| d.name == name).map(Task)
    }

    /// The script of the step called `name`, if the recipe has one.
    pub fn script(&self, name: &str) -> Option<&str> {
        match &self.by_name(name).map(|t| &self.def(t).kind) {
            Some(TaskKind::Step(s)) => s.script.as_deref(),
            _ => None,
        }
    }

    /// The steps' task names, in order.
    pub fn step_names(&self) -> impl Iterator<Item = &str> {
        self.tasks.iter().filter(|d| matches!(d.kind, TaskKind::Step(_))).map(|d| d.name.as_str())
    }
}

/// The script a classic step runs: the recipe's snippet, else its style's default for `arch`.
pub fn default_or_snippet(recipe: &Recipe, step: Step, arch: Arch) -> Option<String> {
    let build = recipe.build.as_ref()?;
    let snippet = match step {
        Step::Configure => &build.configure,
        Step::Compile => &build.compile,
        Step::Install => &build.install,
    };
    if let Some(s) = snippet {
        return Some(s.clone());
    }
    let kconfig = recipe.kconfig_file().map(|f| f.name.as_str());
    let (configure_args, make_args) = (build.configure_args_for(arch), build.make_args_for(arch));
    let defaults = steps::Defaults {
        configure_args: &configure_args,
        make_args: &make_args,
        kconfig,
        ninja: recipe.native.iter().any(|n| n == "ninja"),
    };
    steps::default_script(build.style, step, defaults)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recipe::{Build, Kind, NamedStep, Style};

    fn recipe(build: Option<Build>) -> Recipe {
        Recipe {
            package: Default::default(),
            license_files: Vec::new(),
            name: "p".into(),
            kind: if build.is_some() { Kind::Target } else { Kind::Toolchain },
            version: "1".into(),
            license: "MIT".into(),
            homepage: None,
            description: None,
            depends: vec![],
            native: vec![],
            replaces: vec![],
            files: vec![],
            patches: vec![],
            sources: vec![],
            build,
            limits: Default::default(),
            features: Default::default(),
            path: "recipes/p.toml".into(),
        }
    }

    fn build(style: Style, steps: Vec<NamedStep>) -> Build {
        Build {
            style,
            env: Default::default(),
            configure_args: vec![],
            make_args: vec![],
            autoreconf: false,
            configure: None,
            compile: None,
            install: None,
            steps,
            per_arch: Default::default(),
        }
    }

    fn names(plan: &TaskPlan) -> Vec<&str> {
        plan.all().map(|t| plan.name(t).as_str()).collect()
    }

    #[test]
    fn a_style_gives_configure_compile_install() {
        let plan = TaskPlan::for_recipe(&recipe(Some(build(Style::Autotools, vec![]))), Arch::X86_64);
        assert_eq!(names(&plan), ["fetch", "unpack", "patch", "configure", "compile", "install", "package"]);
        assert_eq!(plan.name(plan.last_step()), "install");
        assert!(plan.script("configure").is_some_and(|s| s.starts_with("/ovm/src/configure")));
        let TaskKind::Step(install) = &plan.def(plan.last_step()).kind else { panic!("install is a step") };
        assert!(install.cleans_dest && !install.first);
    }

    #[test]
    fn autoreconf_comes_between_patch_and_the_first_step_only_when_asked() {
        let plain = TaskPlan::for_recipe(&recipe(Some(build(Style::Autotools, vec![]))), Arch::X86_64);
        assert_eq!(plain.source_ready(), Task::PATCH);
        let mut b = build(Style::Autotools, vec![]);
        b.autoreconf = true;
        let plan = TaskPlan::for_recipe(&recipe(Some(b)), Arch::X86_64);
        assert_eq!(
            names(&plan),
            ["fetch", "unpack", "patch", "autoreconf", "configure", "compile", "install", "package"]
        );
        assert_eq!(plan.def(plan.source_ready()).kind, TaskKind::Autoreconf);
        let TaskKind::Step(configure) = &plan.def(Task(4)).kind else { panic!("configure is a step") };
        assert!(configure.first, "the first step still starts the build afresh");
    }

    #[test]
    fn named_steps_replace_the_classic_ones_in_order() {
        let steps = ["all-gcc", "libgcc", "musl"]
            .map(|n| NamedStep { name: TaskName::parse(n).unwrap(), script: format!("make {n}") })
            .to_vec();
        let plan = TaskPlan::for_recipe(&recipe(Some(build(Style::Custom, steps))), Arch::X86_64);
        assert_eq!(names(&plan), ["fetch", "unpack", "patch", "all-gcc", "libgcc", "musl", "package"]);
        assert_eq!(plan.by_name("libgcc").map(Task::index), Some(4));
        assert_eq!(plan.script("musl"), Some("make musl"));
        let TaskKind::Step(first) = &plan.def(Task(3)).kind else { panic!("a step") };
        assert!(first.first && !first.cleans_dest);
        assert!(Task::PATCH < plan.last_step() && plan.last_step() < plan.package());
    }

    #[test]
    fn an_architecture_adds_its_own_arguments_after_the_common_ones() {
        let mut b = build(Style::Autotools, vec![]);
        b.configure_args = vec!["--disable-nls".into()];
        let aarch64 = crate::recipe::ArchBuild { configure_args: vec!["--disable-asm".into()], ..Default::default() };
        b.per_arch.insert(Arch::Aarch64, aarch64);
        let r = recipe(Some(b));
        let on = |arch| TaskPlan::for_recipe(&r, arch).script("configure").map(str::to_string).unwrap();
        assert!(on(Arch::Aarch64).ends_with("--disable-nls --disable-asm"), "{}", on(Arch::Aarch64));
        assert!(on(Arch::X86_64).ends_with("--disable-nls"), "{}", on(Arch::X86_64));
    }

    #[test]
    fn a_prebuilt_recipe_only_installs() {
        let plan = TaskPlan::for_recipe(&recipe(None), Arch::X86_64);
        assert_eq!(plan.script("configure"), None);
        let TaskKind::Step(install) = &plan.def(plan.last_step()).kind else { panic!("a step") };
        assert!(install.prebuilt_install);
    }
}
