//! The one list of gradmatch's plug-ins. Every config, command, test, bench and check that needs
//! "every distance" (or level, step strategy, augmentation, parameterisation, sampler) iterates over [`Plugins::builtin`], so a new plug-in
//! is its crate, its dependency in this crate's `Cargo.toml`, and ONE registration line below.

mod registry;

// The guides' code blocks compile (and run) as doctests of this crate: a guide cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/write-a-distance.md")]
pub struct WriteADistance;
#[cfg(doctest)]
#[doc = include_str!("../../../docs/write-a-level-or-step.md")]
pub struct WriteALevelOrStep;
#[cfg(doctest)]
#[doc = include_str!("../../../docs/write-a-parameterisation.md")]
pub struct WriteAParameterisation;
#[cfg(doctest)]
#[doc = include_str!("../../../docs/write-a-sampler.md")]
pub struct WriteASampler;

pub use registry::{did_you_mean, Holds, OptionTable, PluginError, Registry};

use gradmatch_augment::DcAugmentation;
use gradmatch_core::{Augmentation, Distance, GradientLevel, Parameterisation, Sampler, Selection, StepStrategy};

/// The registries of the plug-in kinds, one per question a method answers.
pub struct Plugins {
    /// How to match.
    pub distances: Registry<dyn Distance>,
    /// What to match.
    pub levels: Registry<dyn GradientLevel>,
    /// How long to train between matches.
    pub steps: Registry<dyn StepStrategy>,
    /// What both sides of a match see.
    pub augmentations: Registry<dyn Augmentation>,
    /// What a synthetic image is.
    pub parameterisations: Registry<dyn Parameterisation>,
    /// Which real images to match against.
    pub samplers: Registry<dyn Sampler>,
    /// Which real images make a coreset (DC's baselines; not a part of a condensation method).
    pub selections: Registry<dyn Selection>,
}

impl Plugins {
    /// No plug-ins: for programs that register their own.
    pub fn empty() -> Plugins {
        Plugins {
            distances: Registry::new("distance", "distances"),
            levels: Registry::new("gradient level", "gradient levels"),
            steps: Registry::new("step strategy", "step strategies"),
            augmentations: Registry::new("augmentation", "augmentations"),
            parameterisations: Registry::new("parameterisation", "parameterisations"),
            samplers: Registry::new("sampler", "samplers"),
            selections: Registry::new("selection", "selections"),
        }
    }

    /// Every plug-in that ships with gradmatch.
    pub fn builtin() -> Plugins {
        let mut p = Plugins::empty();
        p.distances.register::<gradmatch_distance_angle::Angle>();
        p.distances.register::<gradmatch_distance_magnitude::Magnitude>();
        p.distances.register::<gradmatch_distance_combined::Combined>();
        p.distances.register::<gradmatch_distance_mse::Mse>();
        p.distances.register::<gradmatch_distance_flat_cosine::FlatCosine>();
        p.distances.register::<gradmatch_distance_manhattan::Manhattan>();

        p.levels.register::<gradmatch_levels::IntraClass>();
        p.levels.register::<gradmatch_levels::InterClass>();
        p.levels.register::<gradmatch_levels::Interleaved>();
        p.levels.register::<gradmatch_levels::MultiLevel>();

        p.steps.register::<gradmatch_steps::Fixed>();
        p.steps.register::<gradmatch_steps::Adaptive>();
        p.steps.register::<gradmatch_steps::OverfittingAware>();

        p.augmentations.register::<gradmatch_augment::NoAugmentation>();
        p.augmentations.register::<gradmatch_augment::Dsa>();

        p.parameterisations.register::<gradmatch_parameterisations::Pixels>();
        p.parameterisations.register::<gradmatch_parameterisations::MultiFormation>();

        p.samplers.register::<gradmatch_samplers::Random>();
        p.samplers.register::<gradmatch_samplers::Dream>();

        p.selections.register::<gradmatch_selections::Random>();
        p.selections.register::<gradmatch_selections::Herding>();
        p.selections.register::<gradmatch_selections::KCenter>();
        p.selections.register::<gradmatch_selections::Forgetting>();
        p
    }

    /// The augmentation of an evaluation recipe's `augment`: one of DC's strategies (`crop_scale_rotate`,
    /// ...: evaluation only, not differentiable, so not in [`Plugins::augmentations`]) or a registered
    /// augmentation with its default options (`none`, `dsa`, ...).
    pub fn evaluation_augmentation(&self, name: &str) -> Result<Box<dyn Augmentation>, PluginError> {
        match DcAugmentation::parse(name) {
            Some(strategy) => Ok(Box::new(strategy)),
            None => self.augmentations.build(name, &OptionTable::new()),
        }
    }
}
