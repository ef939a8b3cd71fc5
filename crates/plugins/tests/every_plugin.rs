//! Every registered plug-in through the plug-in kit: a new one is checked here as soon as its
//! registration line exists. The laws checked are those every plug-in of its kind obeys; each crate's
//! own tests add the laws it claims beyond them.

use gradmatch_plugins::Plugins;
use gradmatch_testkit::{
    check_augmentation, check_distance, check_level, check_parameterisation, check_sampler, check_selection, check_step_strategy,
    DistanceLaws,
};

#[test]
fn every_distance_obeys_the_universal_laws_with_an_exact_gradient() {
    for (name, distance) in Plugins::builtin().method.distance.defaults() {
        eprintln!("distance {name}");
        check_distance(distance.as_ref(), &DistanceLaws::UNIVERSAL);
    }
}

#[test]
fn every_level_has_an_exact_matching_gradient() {
    for (name, level) in Plugins::builtin().method.level.defaults() {
        eprintln!("gradient level {name}");
        check_level(level.as_ref());
    }
}

#[test]
fn every_step_strategy_counts_what_it_trains() {
    for (name, steps) in Plugins::builtin().method.steps.defaults() {
        eprintln!("step strategy {name}");
        check_step_strategy(steps.as_ref());
    }
}

#[test]
fn every_augmentation_is_siamese_with_an_exact_gradient() {
    for (name, augmentation) in Plugins::builtin().method.augment.defaults() {
        eprintln!("augmentation {name}");
        check_augmentation(augmentation.as_ref());
    }
}

#[test]
fn every_parameterisation_decodes_in_order_with_an_exact_gradient() {
    for (name, parameterisation) in Plugins::builtin().method.parameterisation.defaults() {
        eprintln!("parameterisation {name}");
        check_parameterisation(parameterisation.as_ref());
    }
}

#[test]
fn every_sampler_gives_batches_of_its_class_alike_for_a_seed() {
    for (name, sampler) in Plugins::builtin().method.sampler.defaults() {
        eprintln!("sampler {name}");
        check_sampler(sampler.as_ref());
    }
}

#[test]
fn every_selection_picks_distinct_images_of_its_class_alike_for_a_seed() {
    for (name, selection) in Plugins::builtin().selections.defaults() {
        eprintln!("selection {name}");
        check_selection(selection.as_ref());
    }
}
