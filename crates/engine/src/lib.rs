//! The engine of gradmatch: the condensation loop of DC / Jiang et al. composed from the plug-in
//! traits of `gradmatch-core`, the evaluation protocol, SGD with PyTorch's semantics and the
//! synthetic-set files.
#![cfg_attr(test, allow(clippy::disallowed_methods))] // tests read values to check them

mod checks;
mod condense;
mod config;
mod device;
mod ensemble;
mod evaluate;
mod forgetting;
mod matcher;
mod optim;
mod passes;
mod recipe;
mod sampling;
mod seed;
mod synset;

pub use checks::{Checked, InvalidValue};
pub use condense::{condense, initial_set, matching_gradient};
pub use config::{CondenseConfig, CondenseOutcome, Init, IterationLog, MethodRef, Prefix, RunContext, RunIdentity};
pub use device::{available_bytes, open_cuda, select_device, set_tf32, DeviceData};
pub use ensemble::{evaluate_all, networks_at_once, MAX_NETWORKS_AT_ONCE};
pub use evaluate::{check_images, evaluate, test_accuracy, train, train_counting_forgetting, EvalOutcome, EvalTask, Trained};
pub use forgetting::ForgettingCounter;
pub use optim::Sgd;
pub use passes::{PassSizes, PassTarget};
pub use recipe::{EvalConfig, Phases, Protocol, Recipe, Schedule, NO_AUGMENTATION};
pub use sampling::RealDraws;
pub use seed::{derive_seed, stream};
pub use synset::{check_length as check_safetensors_length, SyntheticSet, VERSION};
