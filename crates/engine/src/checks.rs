//! Every numeric field of the configs, checked before any work starts: a value that would run but
//! mean nothing (no networks, a momentum of -5, more real images per class than the class has, an
//! ipc without a row in the loops table) is refused with its section, its field and the fix. The
//! experiment files and the command-line flags go through the same checks.

use crate::config::{CondenseConfig, Init};
use crate::recipe::EvalConfig;
use gradmatch_core::Loops;
use gradmatch_data::DatasetName;

/// A value outside what its field means.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("[{section}] `{field}` = {value}{flag}: {problem}", flag = flag_of(field))]
pub struct InvalidValue {
    pub section: &'static str,
    pub field: &'static str,
    pub value: String,
    pub problem: String,
}

/// The fields that a command-line flag of every command having the field also sets, named in the
/// error so that both paths read it.
fn flag_of(field: &str) -> String {
    const FLAGS: [&str; 5] = ["ipc", "iterations", "num_eval", "epochs", "networks_at_once"];
    match FLAGS.contains(&field) {
        true => format!(" (or --{})", field.replace('_', "-")),
        false => String::new(),
    }
}

pub type Checked = std::result::Result<(), InvalidValue>;

/// The checks of one section's fields.
struct Section(&'static str);

impl Section {
    fn fail(&self, field: &'static str, value: impl ToString, problem: impl Into<String>) -> Checked {
        Err(InvalidValue { section: self.0, field, value: value.to_string(), problem: problem.into() })
    }

    fn at_least(&self, field: &'static str, value: usize, min: usize, meaning: &str) -> Checked {
        match value >= min {
            true => Ok(()),
            false => self.fail(field, value, format!("must be at least {min} ({meaning})")),
        }
    }

    /// A field left out takes its default; given, it must be at least `min`.
    fn given_at_least(&self, field: &'static str, value: Option<usize>, min: usize, meaning: &str) -> Checked {
        value.map_or(Ok(()), |v| self.at_least(field, v, min, &format!("{meaning}; or leave it out for the default")))
    }

    fn at_most(&self, field: &'static str, value: usize, max: usize, why: &str) -> Checked {
        match value <= max {
            true => Ok(()),
            false => self.fail(field, value, format!("must be at most {max}: {why}")),
        }
    }

    /// A learning rate: finite and positive.
    fn positive(&self, field: &'static str, value: f64) -> Checked {
        match value.is_finite() && value > 0.0 {
            true => Ok(()),
            false => self.fail(field, value, "must be a positive number (a learning rate)"),
        }
    }

    /// SGD's momentum: in [0, 1), where 0 is plain SGD and 1 never forgets.
    fn momentum(&self, field: &'static str, value: f64) -> Checked {
        match (0.0..1.0).contains(&value) {
            true => Ok(()),
            false => self.fail(field, value, "must be in [0, 1) (0: plain SGD; the paper's 0.5 or 0.9)"),
        }
    }

    fn non_negative(&self, field: &'static str, value: f64) -> Checked {
        match value.is_finite() && value >= 0.0 {
            true => Ok(()),
            false => self.fail(field, value, "must be a finite number >= 0 (0: none)"),
        }
    }
}

impl CondenseConfig {
    /// Every field against its meaning and against `dataset`'s published training split. Zero
    /// iterations is valid: the set is then the initialisation itself (a grid's baseline cell).
    pub fn check(&self, dataset: DatasetName) -> Checked {
        let s = Section("condense");
        s.at_least("ipc", self.ipc, 1, "images per class")?;
        s.positive("lr_img", self.lr_img)?;
        s.positive("lr_net", self.lr_net)?;
        s.momentum("momentum_img", self.momentum_img)?;
        s.momentum("momentum_net", self.momentum_net)?;
        s.at_least("batch_real", self.batch_real, 1, "real images per class per match")?;
        s.at_least("batch_train", self.batch_train, 1, "the batch of the network's training")?;
        s.at_least("bn_images_per_class", self.bn_images_per_class, 1, "real images per class that set batch-norm statistics")?;
        s.at_least("checkpoint_every", self.checkpoint_every, 1, "iterations between checkpoints")?;
        s.given_at_least("classes_per_pass", self.classes_per_pass, 1, "classes whose real batches share a pass")?;
        s.given_at_least("max_images_per_pass", self.max_images_per_pass, 1, "images one pass may hold")?;
        s.given_at_least("outer_loop", self.outer_loop, 1, "matching steps per outer iteration")?;
        let classes = dataset.num_classes();
        if let Some(n) = self.classes_per_pass {
            s.at_most("classes_per_pass", n, classes, &format!("{dataset} has {classes} classes"))?;
        }
        let (class, size) = dataset.smallest_class();
        let class_holds = format!("{dataset}'s class {class} has {size} training images");
        s.at_most("batch_real", self.batch_real, size, &format!("{class_holds}; the paper's is 256"))?;
        s.at_most("bn_images_per_class", self.bn_images_per_class, size, &class_holds)?;
        if matches!(self.init, Init::Real | Init::Mix) {
            s.at_most("ipc", self.ipc, size, &format!("init = \"real\" draws ipc real images per class and {class_holds}"))?;
        }
        self.check_loops(&s)
    }

    /// An ipc outside the paper's loops table needs its own loops: no row silently stands in.
    fn check_loops(&self, s: &Section) -> Checked {
        if Loops::published(self.ipc).is_some() || (self.outer_loop.is_some() && self.inner_epochs.is_some()) {
            return Ok(());
        }
        let below = Loops::for_ipc(self.ipc);
        s.fail(
            "ipc",
            self.ipc,
            format!(
                "the paper's loops table has rows for ipc {} only: give `outer_loop` and `inner_epochs` for ipc {} \
                 (the row below it has outer_loop = {}, inner_epochs = {})",
                Loops::PUBLISHED_IPC.map(|i| i.to_string()).join(", "),
                self.ipc,
                below.outer,
                below.inner
            ),
        )
    }
}

impl EvalConfig {
    /// Every field against its meaning: at least one network, trained at least one epoch, tested on
    /// at least one image.
    pub fn check(&self) -> Checked {
        let s = Section("evaluation");
        s.at_least("num_eval", self.num_eval, 1, "networks trained per set")?;
        s.given_at_least("epochs", self.epochs, 1, "an untrained network's score says nothing of the set")?;
        s.given_at_least("test_limit", self.test_limit, 1, "test images")?;
        s.given_at_least("networks_at_once", self.networks_at_once, 1, "networks in one ensemble")?;
        s.at_least("batch_size", self.batch_size, 1, "the training batch")?;
        s.positive("lr", self.lr)?;
        s.momentum("momentum", self.momentum)?;
        s.non_negative("weight_decay", self.weight_decay)?;
        match self.cutmix {
            Some(cutmix) if !(0.0..=1.0).contains(&cutmix.p) => {
                s.fail("cutmix.p", cutmix.p, "must be in [0, 1] (the probability of mixing a batch; IDC's 0.5)")
            }
            Some(cutmix) if !(cutmix.beta.is_finite() && cutmix.beta > 0.0) => {
                s.fail("cutmix.beta", cutmix.beta, "must be a positive number (Beta's parameter; IDC's 1.0)")
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn condense_error(cfg: CondenseConfig) -> String {
        cfg.check(DatasetName::Mnist).unwrap_err().to_string()
    }

    #[test]
    fn the_defaults_pass() {
        for dataset in DatasetName::all() {
            CondenseConfig::default().check(dataset).unwrap();
        }
        EvalConfig::default().check().unwrap();
        for ipc in Loops::PUBLISHED_IPC {
            CondenseConfig { ipc, init: Init::Real, ..Default::default() }.check(DatasetName::Cifar100).unwrap();
        }
    }

    #[test]
    fn meaningless_condense_values_name_field_and_fix() {
        let d = CondenseConfig::default;
        let err = condense_error(CondenseConfig { ipc: 0, ..d() });
        assert!(err.contains("[condense] `ipc` = 0 (or --ipc): must be at least 1"), "{err}");
        let err = condense_error(CondenseConfig { momentum_net: -5.0, ..d() });
        assert!(err.contains("`momentum_net` = -5") && err.contains("[0, 1)"), "{err}");
        let err = condense_error(CondenseConfig { lr_img: f64::NAN, ..d() });
        assert!(err.contains("`lr_img` = NaN"), "{err}");
        let err = condense_error(CondenseConfig { batch_real: 100_000, ..d() });
        assert!(err.contains("`batch_real` = 100000") && err.contains("class 5 has 5421"), "{err}");
        let err = condense_error(CondenseConfig { ipc: 6000, init: Init::Real, outer_loop: Some(1), inner_epochs: Some(1), ..d() });
        assert!(err.contains("`ipc` = 6000") && err.contains("init = \"real\""), "{err}");
        let err = condense_error(CondenseConfig { bn_images_per_class: 0, ..d() });
        assert!(err.contains("`bn_images_per_class` = 0"), "{err}");
        let err = condense_error(CondenseConfig { classes_per_pass: Some(0), ..d() });
        assert!(err.contains("`classes_per_pass` = 0") && err.contains("leave it out"), "{err}");
        let err = condense_error(CondenseConfig { classes_per_pass: Some(11), ..d() });
        assert!(err.contains("mnist has 10 classes"), "{err}");
        let err = condense_error(CondenseConfig { outer_loop: Some(0), ..d() });
        assert!(err.contains("`outer_loop` = 0"), "{err}");
    }

    #[test]
    fn an_ipc_outside_the_loops_table_needs_its_loops() {
        let err = condense_error(CondenseConfig { ipc: 7, ..Default::default() });
        assert!(err.contains("`ipc` = 7") && err.contains("outer_loop = 1, inner_epochs = 1"), "{err}");
        let given = CondenseConfig { ipc: 7, outer_loop: Some(5), inner_epochs: Some(10), ..Default::default() };
        given.check(DatasetName::Mnist).unwrap();
        assert_eq!(given.loops(), Loops { outer: 5, inner: 10 });
    }

    #[test]
    fn meaningless_evaluation_values_name_field_and_flag() {
        let d = EvalConfig::default;
        let cases = [
            (EvalConfig { num_eval: 0, ..d() }, "`num_eval` = 0 (or --num-eval)"),
            (EvalConfig { epochs: Some(0), ..d() }, "`epochs` = 0 (or --epochs)"),
            (EvalConfig { test_limit: Some(0), ..d() }, "`test_limit` = 0"),
            (EvalConfig { networks_at_once: Some(0), ..d() }, "`networks_at_once` = 0 (or --networks-at-once)"),
            (EvalConfig { cutmix: Some(gradmatch_augment::CutMix { p: 1.5, beta: 1.0 }), ..d() }, "`cutmix.p` = 1.5"),
            (EvalConfig { cutmix: Some(gradmatch_augment::CutMix { p: 0.5, beta: 0.0 }), ..d() }, "`cutmix.beta` = 0"),
            (EvalConfig { lr: 0.0, ..d() }, "`lr` = 0"),
            (EvalConfig { weight_decay: -1.0, ..d() }, "`weight_decay` = -1"),
            (EvalConfig { momentum: 1.0, ..d() }, "`momentum` = 1"),
            (EvalConfig { batch_size: 0, ..d() }, "`batch_size` = 0"),
        ];
        for (cfg, expected) in cases {
            let err = cfg.check().unwrap_err().to_string();
            assert!(err.starts_with("[evaluation] ") && err.contains(expected), "{err}");
        }
    }
}
