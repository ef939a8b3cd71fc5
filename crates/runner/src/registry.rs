//! Every plug-in the runner knows, by the name a TOML config uses. A new crate adds ONE line here.

use gradmatch_core::{number_option, Distance, GradientLevel, Params, Registry, StepStrategy};

pub struct Plugins {
    pub distances: Registry<dyn Distance>,
    pub levels: Registry<dyn GradientLevel>,
    pub steps: Registry<dyn StepStrategy>,
}

fn count_option(params: &Params, key: &str, default: usize) -> Result<usize, String> {
    let v = number_option(params, key, default as f64)?;
    if v.fract() != 0.0 || v < 1.0 {
        return Err(format!("{key}: expected a whole number >= 1, found {v}"));
    }
    Ok(v as usize)
}

impl Plugins {
    pub fn builtin() -> Plugins {
        use gradmatch_distance_angle as angle;
        use gradmatch_distance_combined as combined;
        use gradmatch_distance_flat_cosine as flat_cosine;
        use gradmatch_distance_magnitude as magnitude;
        use gradmatch_distance_manhattan as manhattan;
        use gradmatch_distance_mse as mse;
        use gradmatch_levels as lv;
        use gradmatch_steps as st;

        let mut distances: Registry<dyn Distance> = Registry::new("distance");
        distances.register_plain(angle::NAME, angle::SUMMARY, || Box::new(angle::Angle));
        distances.register_plain(magnitude::NAME, magnitude::SUMMARY, || Box::new(magnitude::Magnitude));
        distances.register_plain(combined::NAME, combined::SUMMARY, || Box::new(combined::Combined));
        distances.register_plain(mse::NAME, mse::SUMMARY, || Box::new(mse::Mse));
        distances.register_plain(flat_cosine::NAME, flat_cosine::SUMMARY, || Box::new(flat_cosine::FlatCosine));
        distances.register_plain(manhattan::NAME, manhattan::SUMMARY, || Box::new(manhattan::Manhattan));

        let mut levels: Registry<dyn GradientLevel> = Registry::new("gradient level");
        levels.register("intra", "per class: sum_c D(g_syn_c, g_real_c) (DC)", &[], |_| Ok(Box::new(lv::IntraClass)));
        levels.register("inter", "one mixed batch of all classes, weighted by the class count", &["real_batch", "syn_batch"], |p| {
            let d = lv::InterClass::default();
            Ok(Box::new(lv::InterClass {
                real_batch: count_option(p, "real_batch", d.real_batch)?,
                syn_batch: count_option(p, "syn_batch", d.syn_batch)?,
            }))
        });
        levels.register("interleaved", "intra on even iterations, inter on odd ones", &[], |_| Ok(Box::new(lv::Interleaved::default())));
        levels.register(
            "multi-level",
            "intra + inter_weight * D(mean_c g_syn_c, mean_c g_real_c) (the paper's M)",
            &["inter_weight"],
            |p| {
                let inter_weight = p.contains_key("inter_weight").then(|| number_option(p, "inter_weight", 0.0)).transpose()?;
                Ok(Box::new(lv::MultiLevel { inter_weight }))
            },
        );

        let mut steps: Registry<dyn StepStrategy> = Registry::new("step strategy");
        steps.register("fixed", "inner epochs from the loops table (DC)", &[], |_| Ok(Box::new(st::Fixed)));
        steps.register("adaptive", "50, 40, 30, 20 epochs, then 10 until step 10, then 5 (the paper's A)", &[], |_| {
            Ok(Box::new(st::Adaptive))
        });
        steps.register("overfitting-aware", "train until the loss on a real batch rises, at most max_epochs", &["max_epochs"], |p| {
            Ok(Box::new(st::OverfittingAware { max_epochs: count_option(p, "max_epochs", st::OverfittingAware::default().max_epochs)? }))
        });
        Plugins { distances, levels, steps }
    }
}
