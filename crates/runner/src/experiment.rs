//! A TOML experiment file: dataset, model, the plug-ins, the condensation hyper-parameters and the
//! evaluation protocol. Anything left out takes the paper's default (DC: intra, angle, fixed, no
//! augmentation).

use crate::located::{AtPath, Key, Section, TomlFile};
use anyhow::{Context, Result};
use gradmatch_augment::DcAugmentation;
use gradmatch_core::{Augmentation, Method, Selection, Shared};
use gradmatch_data::DatasetName;
use gradmatch_engine::{CondenseConfig, EvalConfig, MethodRef, Recipe};
use gradmatch_models::ModelSpec;
use gradmatch_plugins::{Plugins, Specs};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

pub use gradmatch_plugins::PluginSpec;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Experiment {
    pub dataset: DatasetName,
    #[serde(default = "default_model")]
    pub model: ModelSpec,
    /// The plug-ins, one table per kind (`[level]`, `[distance]`, ...), each the paper's DC where left out.
    #[serde(flatten)]
    pub method: Method<Specs>,
    #[serde(default)]
    pub condense: CondenseConfig,
    #[serde(default)]
    pub evaluation: EvalConfig,
    /// In a grid, evaluate a baseline instead of condensing (`"random"`: DC's Random row).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<Baseline>,
    /// In a grid, evaluate a coreset instead of condensing: `ipc` real images per class that a
    /// selection chooses (`[coreset] name = "herding"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coreset: Option<CoresetSpec>,
}

/// A coreset's selection and the network whose features and forgetting counts it reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CoresetSpec {
    /// Epochs of the feature network on the whole training split (lr 0.01, no augmentation).
    #[serde(default = "default_feature_epochs")]
    pub feature_epochs: usize,
    /// Train that network on, and choose among, the first N training images only (quick checks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_images: Option<usize>,
    #[serde(flatten)]
    pub selection: PluginSpec,
}

fn default_feature_epochs() -> usize {
    5
}

/// What a grid cell evaluates instead of a condensed set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Baseline {
    /// DC's "Random": each evaluation network trains on its own random real subset of `ipc` images
    /// per class (as `gradmatch random-baseline`, whose figures it reproduces).
    Random,
}

fn default_model() -> ModelSpec {
    ModelSpec::CONVNET
}
impl Experiment {
    /// DC on `dataset` with every default.
    pub fn dc(dataset: DatasetName) -> Experiment {
        Experiment {
            dataset,
            model: default_model(),
            method: Method::default(),
            condense: CondenseConfig::default(),
            evaluation: EvalConfig::default(),
            baseline: None,
            coreset: None,
        }
    }

    /// Reads an experiment file and resolves it; errors name the file, the line and the field.
    pub fn from_file(path: &Path, plugins: &Plugins) -> Result<Resolved> {
        let (exp, text) = Experiment::read(path)?;
        exp.resolve(plugins).map_err(|e| in_file(path, &text, e))
    }

    /// Parses an experiment file without resolving it (for callers that change fields first), with
    /// its text for [`in_file`].
    pub fn read(path: &Path) -> Result<(Experiment, String)> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading experiment file {}", path.display()))?;
        let exp = toml::from_str(&text).map_err(|e| TomlFile::new(path, &text).parse_error("in experiment file", e))?;
        Ok((exp, text))
    }

    /// Checks the numbers and builds every plug-in the experiment names, once, before any work starts:
    /// what is checked is what runs.
    pub fn resolve(&self, plugins: &Plugins) -> Result<Resolved> {
        let method = plugins.build_method(&self.method).map_err(|e| anyhow::Error::new(*e.error).context(Section(e.field)))?;
        let selection = match &self.coreset {
            Some(c) => Some(plugins.selections.build(&c.selection.name, &c.selection.options).context(Section("coreset"))?.into()),
            None => None,
        };
        if self.baseline.is_some() && self.coreset.is_some() {
            let message = "`baseline` and [coreset] both replace the condensation: a cell evaluates one of them";
            return Err(AtPath::error(Key::names(["baseline"]), message));
        }
        if self.coreset.as_ref().is_some_and(|c| c.feature_epochs == 0) {
            return Err(AtPath::error(Key::names(["coreset", "feature_epochs"]), "[coreset] `feature_epochs` must be at least 1"));
        }
        self.condense.check(self.dataset)?;
        self.evaluation.check()?;
        Ok(Resolved { experiment: self.clone(), method, selection, evaluation: EvalAugmentations::of(&self.recipes(), plugins)? })
    }

    /// The keys of an experiment file's top level: its fields and the plug-in kinds' tables.
    pub fn keys() -> Vec<&'static str> {
        let fields = ["dataset", "model", "condense", "evaluation", "baseline", "coreset"];
        fields.into_iter().chain(gradmatch_core::METHOD_FIELDS.iter().copied()).collect()
    }

    /// The distinct recipes its evaluation networks train under, in the order of the models.
    pub fn recipes(&self) -> Vec<Recipe> {
        let mut recipes: Vec<Recipe> = Vec::new();
        for model in self.eval_models() {
            let recipe = self.evaluation.resolve(self.dataset, &model);
            if !recipes.contains(&recipe) {
                recipes.push(recipe);
            }
        }
        recipes
    }

    /// [`Experiment::recipes`] for a line of text.
    pub fn recipes_text(&self) -> String {
        self.recipes().iter().map(Recipe::to_string).collect::<Vec<_>>().join("; ")
    }

    /// A short name for output folders: `mnist-ipc1-intra-angle-fixed`, `...-fixed-dsa` when augmented.
    pub fn slug(&self) -> String {
        let m = &self.method;
        let slug = format!("{}-ipc{}-{}-{}-{}", self.dataset, self.condense.ipc, m.level.name, m.distance.name, m.steps.name);
        match m.augment.name.as_str() {
            "none" => slug,
            augment => format!("{slug}-{augment}"),
        }
    }

    pub fn eval_models(&self) -> Vec<ModelSpec> {
        if self.evaluation.models.is_empty() {
            vec![self.model]
        } else {
            self.evaluation.models.clone()
        }
    }
}

/// An experiment with every plug-in it names built: made by [`Experiment::resolve`], cheap to clone.
#[derive(Clone)]
pub struct Resolved {
    pub experiment: Experiment,
    method: Method<Shared>,
    /// The selection of a coreset cell.
    selection: Option<Arc<dyn Selection>>,
    /// The augmentations its evaluation networks train with.
    pub evaluation: EvalAugmentations,
}

impl Resolved {
    /// The same experiment condensed with another seed (an ablation cell's experiment `k`), its
    /// plug-ins shared.
    pub fn with_seed(&self, seed: u64) -> Resolved {
        let mut seeded = self.clone();
        seeded.experiment.condense.seed = seed;
        seeded
    }

    /// The selection of a coreset cell (`[coreset]`), built.
    pub fn selection(&self) -> Option<&dyn Selection> {
        self.selection.as_deref()
    }

    /// The method's plug-ins, as the engine takes them.
    pub fn method(&self) -> MethodRef<'_> {
        self.method.borrowed()
    }
}

impl std::fmt::Debug for Resolved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.experiment.fmt(f)
    }
}

/// The training augmentations of evaluation recipes, each built once, by the name the recipe's
/// `augment` gives (see [`Plugins::evaluation_augmentation`]).
#[derive(Clone)]
pub struct EvalAugmentations(BTreeMap<String, Arc<dyn Augmentation>>);

impl EvalAugmentations {
    /// The augmentations of `recipes`; an unknown name is refused with the fix.
    pub fn of(recipes: &[Recipe], plugins: &Plugins) -> Result<EvalAugmentations> {
        let mut built = BTreeMap::new();
        for recipe in recipes {
            let name = &recipe.augment;
            if !built.contains_key(name) {
                let augment = plugins.evaluation_augmentation(name).map_err(|e| {
                    let message = format!(
                        "[evaluation] augment `{name}`: give a DC strategy (`_`-joined crop, scale, rotate, noise: `{}`, `{}`) or a registered augmentation: {e}",
                        DcAugmentation::MNIST,
                        DcAugmentation::BATCH_NORM
                    );
                    AtPath::error(Key::names(["evaluation", "augment"]), message)
                })?;
                built.insert(name.clone(), Arc::from(augment));
            }
        }
        Ok(EvalAugmentations(built))
    }

    /// The augmentation of `recipe`, which must be one of those it was made of.
    pub fn of_recipe(&self, recipe: &Recipe) -> Result<&dyn Augmentation> {
        self.0
            .get(&recipe.augment)
            .map(|a| &**a)
            .with_context(|| format!("internal: the evaluation augmentation `{}` was not resolved with its experiment", recipe.augment))
    }
}

/// `error` of the experiment file `path` (its text `text`), at the line and column of the value at fault.
pub fn in_file(path: &Path, text: &str, error: anyhow::Error) -> anyhow::Error {
    TomlFile::new(path, text).error("in experiment file", None, error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_slug_names_the_augmentation_when_there_is_one() {
        let mut exp = Experiment::dc(DatasetName::Mnist);
        assert_eq!(exp.slug(), "mnist-ipc1-intra-angle-fixed");
        exp.method.augment = PluginSpec::named("dsa");
        assert_eq!(exp.slug(), "mnist-ipc1-intra-angle-fixed-dsa");
    }

    #[test]
    fn bad_files_name_file_field_and_fix() {
        let dir = tempfile::tempdir().unwrap();
        let write = |body: &str| {
            let p = dir.path().join("bad.toml");
            std::fs::write(&p, body).unwrap();
            format!("{:#}", Experiment::from_file(&p, &Plugins::builtin()).unwrap_err())
        };
        let err = write("dataset = \"mnist\"\n[condense]\nipcc = 3\n");
        assert!(err.contains("bad.toml") && err.contains("ipcc") && err.contains("line 3"), "{err}");
        let err = write("dataset = \"mnist\"\n[distance]\nname = \"combind\"\n");
        assert!(err.contains("bad.toml") && err.contains("did you mean `combined`") && err.contains("manhattan"), "{err}");
        // Located by the parser, not by searching the text: a comment naming the fix is not the line at fault.
        let err = write("dataset = \"mnist\"\n# M's distance is combined\n[distance]\nname = \"combind\"\n");
        assert!(err.contains("line 4, column 8") && err.contains("did you mean `combined`"), "{err}");
        // A top-level key: the plug-in tables are flattened in, so the suggestion comes from the experiment's own keys.
        let err = write("dataset = \"mnist\"\nmodell = \"ConvNet\"\n");
        assert!(err.contains("line 2") && err.contains("did you mean `model`"), "{err}");
        let err = write("dataset = \"imagenet\"\n");
        assert!(err.contains("bad.toml") && err.contains("imagenet"), "{err}");
        let err = write("dataset = \"mnist\"\nmodel = \"ConvNett\"\n");
        assert!(err.contains("ResNet18BN_AP"), "{err}");
        let err = write("dataset = \"mnist\"\n[steps]\nname = \"overfitting-aware\"\nmax_epoch = 3\n");
        assert!(err.contains("bad.toml") && err.contains("line 4") && err.contains("did you mean `max_epochs`"), "{err}");
        let err = write("dataset = \"mnist\"\n[level]\nname = \"inter\"\nreal_batch = 0\n");
        assert!(err.contains("line 4") && err.contains("gradient level `inter`, option `real_batch`") && err.contains(">= 1"), "{err}");
        let err = write("dataset = \"mnist\"\n[augment]\nname = \"dsa\"\nstrategy = \"flip_zoom\"\n");
        assert!(err.contains("line 4") && err.contains("augmentation `dsa`, option `strategy`") && err.contains("`zoom`"), "{err}");
        let err = write("dataset = \"mnist\"\n[evaluation]\naugment = \"dsb\"\n");
        assert!(err.contains("bad.toml") && err.contains("line 3") && err.contains("did you mean `dsa`"), "{err}");
        let err = write("dataset = \"mnist\"\n[condense]\nipc = 0\n");
        assert!(err.contains("line 3") && err.contains("[condense] `ipc` = 0"), "{err}");
        let err = write("dataset = \"mnist\"\n[evaluation]\nnum_eval = 0\n");
        assert!(err.contains("line 3") && err.contains("[evaluation] `num_eval` = 0"), "{err}");
    }
}
