//! The one list of gradmatch's plug-ins. Every config, command, test, bench and check that needs
//! "every distance" (or level, step strategy, augmentation, parameterisation, sampler) iterates over [`Plugins::builtin`], so a new plug-in
//! is its crate, its dependency in this crate's `Cargo.toml`, and ONE registration line below.
#![cfg_attr(test, allow(clippy::disallowed_methods))] // tests read values to check them

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

pub use gradmatch_core::Holds;
pub use registry::{did_you_mean, OptionTable, PluginError, Registries, Registry};

use gradmatch_augment::DcAugmentation;
use gradmatch_core::{Augmentation, EachKind, ForKind, Hold, HoldDefault, Kind, Method, Nothing, Selection, Shared, ZipKind};
use serde::{Deserialize, Serialize};
use std::convert::Infallible;
use std::sync::Arc;

/// A plug-in by name with its options, as an experiment file gives it: `[distance]\nname = "combined"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PluginSpec {
    pub name: String,
    #[serde(flatten)]
    pub options: OptionTable,
}

impl PluginSpec {
    /// The default parameterisation, whose sets are what they store (no decoded copy, no note).
    pub const PIXELS: &'static str = "pixels";

    pub fn named(name: &str) -> PluginSpec {
        PluginSpec { name: name.to_string(), options: OptionTable::new() }
    }

    /// Whether a parameterisation decodes a set into itself.
    pub fn is_pixels(&self) -> bool {
        self.name == Self::PIXELS
    }
}

/// A method as an experiment names it: `Method<Specs>` holds a [`PluginSpec`] of each kind, the
/// kind's default where the file leaves it out.
pub struct Specs;

impl Hold for Specs {
    type Of<K: ?Sized + Kind> = PluginSpec;
}

impl HoldDefault for Specs {
    fn default_of<K: ?Sized + Kind>() -> PluginSpec {
        PluginSpec::named(K::DEFAULT)
    }
}

impl Specs {
    /// `(field, plug-in)` of each kind of `method`, in declaration order: what lines naming a
    /// method print.
    pub fn each(method: &Method<Specs>) -> Vec<(&'static str, &PluginSpec)> {
        struct Each<'a>(Vec<(&'static str, &'a PluginSpec)>);
        impl<'a> EachKind<'a, Specs, Nothing> for Each<'a> {
            type Error = Infallible;
            fn each<K: ?Sized + Kind>(&mut self, spec: &'a PluginSpec) -> Result<(), Infallible> {
                self.0.push((K::FIELD, spec));
                Ok(())
            }
        }
        let mut each = Each(Vec::new());
        match method.try_map(&mut each) {
            Ok(_) => each.0,
            Err(never) => match never {},
        }
    }

    /// `method` with the plug-in of each kind whose field `named` names (`--distance combined`),
    /// with its default options.
    pub fn renamed(method: &Method<Specs>, named: &dyn Fn(&str) -> Option<String>) -> Method<Specs> {
        struct Rename<'n>(&'n dyn Fn(&str) -> Option<String>);
        impl<'a> EachKind<'a, Specs, Specs> for Rename<'_> {
            type Error = Infallible;
            fn each<K: ?Sized + Kind>(&mut self, spec: &'a PluginSpec) -> Result<PluginSpec, Infallible> {
                Ok((self.0)(K::FIELD).map_or_else(|| spec.clone(), |name| PluginSpec::named(&name)))
            }
        }
        match method.try_map(&mut Rename(named)) {
            Ok(method) => method,
            Err(never) => match never {},
        }
    }
}

/// A plug-in of a method's kind that could not be built: the kind's field (its table in an
/// experiment file) and why.
#[derive(Debug, thiserror::Error)]
#[error("[{field}]: {error}")]
pub struct KindError {
    pub field: &'static str,
    #[source]
    pub error: Box<PluginError>,
}

/// The registries of the plug-in kinds, one per question a method answers, and the selections of
/// coresets (DC's baselines; not a part of a condensation method).
pub struct Plugins {
    pub method: Method<Registries>,
    pub selections: Registry<dyn Selection>,
}

impl Plugins {
    /// No plug-ins: for programs that register their own.
    pub fn empty() -> Plugins {
        struct Empty;
        impl ForKind<Registries> for Empty {
            fn make<K: ?Sized + Kind>(&mut self) -> Registry<K> {
                Registry::of_kind()
            }
        }
        Plugins { method: Method::generate(&mut Empty), selections: Registry::new("selection", "selections") }
    }

    /// Every plug-in a method names, built with its options; the first that cannot be is refused
    /// with its kind's field.
    pub fn build_method(&self, spec: &Method<Specs>) -> Result<Method<Shared>, KindError> {
        struct Build;
        impl<'a, 'b> ZipKind<'a, 'b, Registries, Specs, Shared> for Build {
            type Error = KindError;
            fn each<K: ?Sized + Kind>(&mut self, registry: &'a Registry<K>, spec: &'b PluginSpec) -> Result<Arc<K>, KindError> {
                let built =
                    registry.build(&spec.name, &spec.options).map_err(|error| KindError { field: K::FIELD, error: Box::new(error) })?;
                Ok(Arc::from(built))
            }
        }
        self.method.try_zip(spec, &mut Build)
    }

    /// Every plug-in that ships with gradmatch.
    pub fn builtin() -> Plugins {
        let mut p = Plugins::empty();
        p.method.distance.register::<gradmatch_distance_angle::Angle>();
        p.method.distance.register::<gradmatch_distance_magnitude::Magnitude>();
        p.method.distance.register::<gradmatch_distance_combined::Combined>();
        p.method.distance.register::<gradmatch_distance_mse::Mse>();
        p.method.distance.register::<gradmatch_distance_flat_cosine::FlatCosine>();
        p.method.distance.register::<gradmatch_distance_manhattan::Manhattan>();

        p.method.level.register::<gradmatch_levels::IntraClass>();
        p.method.level.register::<gradmatch_levels::InterClass>();
        p.method.level.register::<gradmatch_levels::Interleaved>();
        p.method.level.register::<gradmatch_levels::MultiLevel>();

        p.method.steps.register::<gradmatch_steps::Fixed>();
        p.method.steps.register::<gradmatch_steps::Adaptive>();
        p.method.steps.register::<gradmatch_steps::OverfittingAware>();

        p.method.augment.register::<gradmatch_augment::NoAugmentation>();
        p.method.augment.register::<gradmatch_augment::Dsa>();
        p.method.augment.register::<gradmatch_augment::Idc>();

        p.method.parameterisation.register::<gradmatch_parameterisations::Pixels>();
        p.method.parameterisation.register::<gradmatch_parameterisations::MultiFormation>();

        p.method.sampler.register::<gradmatch_samplers::Random>();
        p.method.sampler.register::<gradmatch_samplers::Dream>();

        p.selections.register::<gradmatch_selections::Random>();
        p.selections.register::<gradmatch_selections::Herding>();
        p.selections.register::<gradmatch_selections::KCenter>();
        p.selections.register::<gradmatch_selections::Forgetting>();
        p
    }

    /// The augmentation of an evaluation recipe's `augment`: one of DC's strategies (`crop_scale_rotate`,
    /// ...: evaluation only, not differentiable, so not in [`Plugins::augmentations`]) or a registered
    /// augmentation with its default options (`none`, `dsa`, ...), or with its `strategy` after a
    /// colon (`idc:color_crop_scale_rotate`, as IDC's recipe resolves for MNIST).
    pub fn evaluation_augmentation(&self, name: &str) -> Result<Box<dyn Augmentation>, PluginError> {
        if let Some(strategy) = DcAugmentation::parse(name) {
            return Ok(Box::new(strategy));
        }
        match name.split_once(':') {
            Some((plugin, strategy)) => {
                let options = OptionTable::from_iter([("strategy".to_string(), toml::Value::String(strategy.into()))]);
                self.method.augment.build(plugin, &options)
            }
            None => self.method.augment.build(name, &OptionTable::new()),
        }
    }
}
