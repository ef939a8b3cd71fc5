//! A TOML experiment file: dataset, model, the plug-ins, the condensation hyper-parameters and the
//! evaluation protocol. Anything left out takes the paper's default (DC: intra, angle, fixed, no
//! augmentation).

use anyhow::{Context, Result};
use gradmatch_data::DatasetName;
use gradmatch_engine::{CondenseConfig, EvalConfig, Recipe};
use gradmatch_models::ModelSpec;
use gradmatch_plugins::Params;
use serde::{Deserialize, Serialize};
use std::path::Path;

use gradmatch_plugins::Plugins;

/// A plug-in by name with its options: `[distance]\nname = "combined"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PluginSpec {
    pub name: String,
    #[serde(flatten)]
    pub options: Params,
}

impl PluginSpec {
    pub fn named(name: &str) -> PluginSpec {
        PluginSpec { name: name.to_string(), options: Params::new() }
    }

    /// `[augment]` as DC has it: no augmentation, no options.
    pub fn is_no_augmentation(&self) -> bool {
        self.name == "none" && self.options.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Experiment {
    pub dataset: DatasetName,
    #[serde(default = "default_model")]
    pub model: ModelSpec,
    #[serde(default = "default_level")]
    pub level: PluginSpec,
    #[serde(default = "default_distance")]
    pub distance: PluginSpec,
    #[serde(default = "default_steps")]
    pub steps: PluginSpec,
    /// Left out of the serialised experiment when `none`: the configs (and so the ablation cells'
    /// ids and the checkpoints' fingerprints) of runs without augmentation stay as they were.
    #[serde(default = "default_augment", skip_serializing_if = "PluginSpec::is_no_augmentation")]
    pub augment: PluginSpec,
    #[serde(default)]
    pub condense: CondenseConfig,
    #[serde(default)]
    pub evaluation: EvalConfig,
}

fn default_model() -> ModelSpec {
    ModelSpec::CONVNET
}
fn default_level() -> PluginSpec {
    PluginSpec::named("intra")
}
fn default_distance() -> PluginSpec {
    PluginSpec::named("angle")
}
fn default_steps() -> PluginSpec {
    PluginSpec::named("fixed")
}
fn default_augment() -> PluginSpec {
    PluginSpec::named("none")
}

impl Experiment {
    /// DC on `dataset` with every default.
    pub fn dc(dataset: DatasetName) -> Experiment {
        Experiment {
            dataset,
            model: default_model(),
            level: default_level(),
            distance: default_distance(),
            steps: default_steps(),
            augment: default_augment(),
            condense: CondenseConfig::default(),
            evaluation: EvalConfig::default(),
        }
    }

    /// Reads and validates an experiment file; errors name the file, the line and the field.
    pub fn from_file(path: &Path, plugins: &Plugins) -> Result<Experiment> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading experiment file {}", path.display()))?;
        let exp: Experiment = toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        exp.validate(plugins)
            .map_err(|e| anyhow::anyhow!("in experiment file {}: {}", path.display(), locate(&text, &format!("{e:#}"))))?;
        Ok(exp)
    }

    /// Builds every plug-in once and checks the numbers, before any work starts.
    pub fn validate(&self, plugins: &Plugins) -> Result<()> {
        plugins.levels.build(&self.level.name, &self.level.options).context("[level]")?;
        plugins.distances.build(&self.distance.name, &self.distance.options).context("[distance]")?;
        plugins.steps.build(&self.steps.name, &self.steps.options).context("[steps]")?;
        plugins.augmentations.build(&self.augment.name, &self.augment.options).context("[augment]")?;
        self.condense.check(self.dataset)?;
        self.evaluation.check()?;
        for recipe in self.recipes() {
            crate::pipeline::training_augmentation(&recipe.augment, plugins)?;
        }
        Ok(())
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
        let slug = format!("{}-ipc{}-{}-{}-{}", self.dataset, self.condense.ipc, self.level.name, self.distance.name, self.steps.name);
        match self.augment.name.as_str() {
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

/// Adds the line of the last backquoted name of an error (a label, a plug-in or a field) found in the
/// file's text, so that every error points at a line.
pub fn locate(text: &str, message: &str) -> String {
    let names: Vec<&str> = message.split('`').skip(1).step_by(2).collect();
    for name in names.iter().rev() {
        if let Some(line) = text.lines().position(|l| l.contains(name)) {
            return format!("line {}: {message}", line + 1);
        }
    }
    message.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_experiment_files_parse_and_validate() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../experiments");
        let mut count = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                Experiment::from_file(&path, &Plugins::builtin()).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
                count += 1;
            }
        }
        assert!(count >= 4, "the four methods at least");
    }

    #[test]
    fn augmentation_is_named_only_when_there_is_one() {
        let mut exp = Experiment::dc(DatasetName::Mnist);
        let json = serde_json::to_string(&exp).unwrap();
        assert!(!json.contains("\"augment\":{"), "DC's config (ablation ids, checkpoint fingerprints) stays as it was: {json}");
        assert_eq!(exp.slug(), "mnist-ipc1-intra-angle-fixed");
        exp.augment = PluginSpec::named("dsa");
        assert!(serde_json::to_string(&exp).unwrap().contains("\"augment\":{\"name\":\"dsa\"}"));
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
