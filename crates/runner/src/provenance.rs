//! What a result is made of: one versioned description from which every identity derives (an
//! ablation cell's id, the condensation its sets share, the key a checkpoint must carry to be
//! resumed, the description written into every set). Files made before it are read through
//! [`crate::migrate`].

use crate::experiment::{Baseline, CoresetSpec, Experiment, PluginSpec};
use gradmatch_core::Method;
use gradmatch_data::DatasetName;
use gradmatch_engine::{CondenseConfig, EvalConfig, Recipe, RunIdentity};
use gradmatch_models::ModelSpec;
use gradmatch_plugins::Specs;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provenance {
    /// [`Provenance::SCHEMA`] when made by this version. Whatever changes the key of an unchanged
    /// experiment (a new field, a new default) is a new schema with its step in `migrate`.
    pub schema: u32,
    pub dataset: DatasetName,
    pub model: ModelSpec,
    /// The plug-ins that depart from their kind's default (schema 3; earlier schemas wrote every
    /// kind): adding a kind with a default changes no key.
    #[serde(serialize_with = "MethodSpec::serialize_departures")]
    pub method: MethodSpec,
    pub condense: CondenseConfig,
    /// `None` for a condensation alone: its sets are the same whichever protocol evaluates them.
    pub evaluation: Option<Evaluation>,
    /// A baseline evaluated instead of a condensed set (absent, as before baselines, for one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<Baseline>,
    /// A coreset evaluated instead of a condensed set (absent, as before coresets, for one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coreset: Option<CoresetSpec>,
}

/// How a set is evaluated: the config, and the revision of gradmatch's recipes that resolves it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Evaluation {
    /// [`Recipe::REVISION`] for today's recipes: figures made under an earlier revision are never
    /// taken for today's, even where the config reads the same.
    pub recipes: u32,
    pub config: EvalConfig,
}

/// The plug-ins of a method, by name and options (a kind left out reads as its default: schema 1 had
/// no sampler, whose default is the uniform draws its runs made; schema 3 leaves out every kind at its
/// default).
pub type MethodSpec = Method<Specs>;

impl Provenance {
    pub const SCHEMA: u32 = 3;

    /// The provenance of an experiment's results (its condensations and their evaluations).
    pub fn of(experiment: &Experiment) -> Provenance {
        let e = experiment.clone();
        Provenance {
            schema: Provenance::SCHEMA,
            dataset: e.dataset,
            model: e.model,
            method: e.method,
            condense: e.condense,
            evaluation: Some(Evaluation { recipes: Recipe::REVISION, config: e.evaluation }),
            baseline: e.baseline,
            coreset: e.coreset,
        }
    }

    /// The provenance the experiment's results had under gradmatch's first recipes (revision 1,
    /// whose configs gave epochs and augment): old stores' records are found under it.
    pub fn under_first_recipes(experiment: &Experiment) -> Provenance {
        let config = experiment.evaluation.as_first_revision();
        Provenance { evaluation: Some(Evaluation { recipes: 1, config }), ..Provenance::of(experiment) }
    }

    /// The same without its evaluation: what a synthetic set (and its checkpoint) is.
    pub fn condensation(&self) -> Provenance {
        Provenance { evaluation: None, ..self.clone() }
    }

    /// The key of the sets its condensation makes: the condensation's, with what cannot act at this
    /// config left out. With one matching step per outer iteration (ipc 1) the network is never
    /// trained between matches, so the step strategy and the inner epochs change nothing: MDA's set
    /// is MD's. Cells with the same set key share their sets.
    pub fn set_key(&self) -> String {
        let mut sets = self.condensation();
        if sets.condense.loops().outer == 1 {
            sets.method.steps = PluginSpec::named("fixed");
            sets.condense.inner_epochs = None;
        }
        sets.key()
    }

    /// A short stable name: the first 16 hex digits of the MD5 of its JSON (every field written in
    /// declaration order, the method's kinds only where they depart from their defaults, options
    /// sorted by name).
    pub fn key(&self) -> String {
        short_key(&serde_json::to_string(self).expect("a provenance serialises"))
    }

    /// The provenance a set's metadata carries; `None` for sets written without one (by earlier
    /// versions, by other tools, or decoded).
    pub fn of_set(metadata: &std::collections::HashMap<String, String>) -> anyhow::Result<Option<Provenance>> {
        match metadata.get(RunIdentity::PROVENANCE).filter(|p| !p.is_empty()) {
            None => Ok(None),
            Some(text) => Ok(Some(serde_json::from_str(text).map_err(|e| anyhow::anyhow!("metadata `provenance`: {e}"))?)),
        }
    }

    /// The engine's identity of the run it describes.
    pub fn identity(&self) -> RunIdentity {
        RunIdentity { key: self.key(), provenance: serde_json::to_string(self).expect("a provenance serialises") }
    }
}

/// The first 16 hex digits of the MD5 of `text`: the short, stable names of gradmatch's results.
pub fn short_key(text: &str) -> String {
    let digest = <md5::Md5 as md5::Digest>::digest(text.as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_part_of_an_experiment_is_in_its_key() {
        let dc = Experiment::dc(DatasetName::Mnist);
        let key = |e: &Experiment| Provenance::of(e).key();
        let mut changed = vec![];
        let mut e = dc.clone();
        e.method.augment = PluginSpec::named("dsa");
        changed.push(e);
        let mut e = dc.clone();
        e.condense.tf32 = true;
        changed.push(e);
        let mut e = dc.clone();
        e.evaluation.protocol = gradmatch_engine::Protocol::Dsa;
        changed.push(e);
        let mut e = dc.clone();
        e.method.distance.options.insert("alpha".into(), 0.5.into());
        changed.push(e);
        let mut e = dc.clone();
        e.dataset = DatasetName::FashionMnist;
        changed.push(e);
        for other in &changed {
            assert_ne!(key(other), key(&dc), "{other:?}");
        }
        assert_eq!(key(&dc).len(), 16);
        // The condensation leaves the evaluation out, and only it.
        let mut evaluated_otherwise = dc.clone();
        evaluated_otherwise.evaluation.num_eval += 1;
        assert_eq!(Provenance::of(&evaluated_otherwise).condensation().key(), Provenance::of(&dc).condensation().key());
        assert_ne!(Provenance::of(&evaluated_otherwise).key(), key(&dc));
    }

    #[test]
    fn the_step_strategy_shares_sets_only_where_it_cannot_act() {
        let md = |ipc: usize| {
            let mut e = Experiment::dc(DatasetName::Mnist);
            (e.method.level, e.method.distance, e.condense.ipc) = (PluginSpec::named("multi-level"), PluginSpec::named("combined"), ipc);
            e
        };
        let mda = |ipc: usize| {
            let mut e = md(ipc);
            e.method.steps = PluginSpec::named("adaptive");
            e
        };
        let (sets, condensation) = (|e: &Experiment| Provenance::of(e).set_key(), |e: &Experiment| Provenance::of(e).condensation().key());
        assert_eq!(sets(&mda(1)), sets(&md(1)), "ipc 1: one matching step per iteration, no training between matches");
        assert_ne!(condensation(&mda(1)), condensation(&md(1)), "yet each run keeps its own identity (checkpoints, metadata)");
        assert_ne!(sets(&mda(10)), sets(&md(10)), "ipc 10: the adaptive schedule trains otherwise");
        let two_steps = |mut e: Experiment| {
            e.condense.outer_loop = Some(2);
            e
        };
        assert_ne!(sets(&two_steps(mda(1))), sets(&two_steps(md(1))), "an outer loop of 2 at ipc 1 trains between its matches");
    }

    #[test]
    fn only_the_kinds_that_depart_from_their_defaults_are_in_the_key() {
        let dc = Experiment::dc(DatasetName::Mnist);
        let written = |e: &Experiment| serde_json::to_value(Provenance::of(e)).unwrap()["method"].clone();
        assert_eq!(written(&dc), serde_json::json!({}), "DC is every kind's default");
        let mut dream = dc.clone();
        dream.method.sampler = PluginSpec::named("dream");
        assert_eq!(written(&dream), serde_json::json!({"sampler": {"name": "dream"}}));
        // A default named with an option is no longer the default.
        let mut tuned = dc.clone();
        tuned.method.distance.options.insert("alpha".into(), 0.5.into());
        assert_eq!(written(&tuned)["distance"], serde_json::json!({"name": "angle", "alpha": 0.5}));
        for e in [dc, dream, tuned] {
            let back: Provenance = serde_json::from_str(&Provenance::of(&e).identity().provenance).unwrap();
            assert_eq!(back, Provenance::of(&e), "the kinds left out read back as their defaults");
        }
    }

    #[test]
    fn what_runs_but_does_not_decide_results_is_not_in_the_key() {
        let dc = Experiment::dc(DatasetName::Mnist);
        let mut batched = dc.clone();
        batched.evaluation.networks_at_once = Some(3);
        assert_eq!(Provenance::of(&batched).key(), Provenance::of(&dc).key());
    }

    #[test]
    fn a_provenance_reads_back_as_written() {
        let mut e = Experiment::dc(DatasetName::Cifar10);
        e.evaluation = e.evaluation.with_protocol(gradmatch_engine::Protocol::Dsa);
        e.method.augment = PluginSpec::named("dsa");
        for p in [Provenance::of(&e), Provenance::of(&e).condensation(), Provenance::of(&Experiment::dc(DatasetName::Mnist))] {
            let back: Provenance = serde_json::from_str(&p.identity().provenance).unwrap();
            assert_eq!((back.key(), &back), (p.key(), &p));
        }
    }
}
