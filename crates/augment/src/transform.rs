use gradmatch_core::OptionError;

/// One entry of a DSA strategy such as `color_crop_cutout_flip_scale_rotate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transform {
    /// Brightness, then saturation, then contrast, each with its own random factor.
    Color,
    /// An integer translation, zero-padded.
    Crop,
    /// A zeroed square at a random centre.
    Cutout,
    /// A horizontal flip, with a probability.
    Flip,
    /// A random stretch of each axis (bilinear).
    Scale,
    /// A random rotation about the centre (bilinear).
    Rotate,
}

impl Transform {
    pub const ALL: [Transform; 6] =
        [Transform::Color, Transform::Crop, Transform::Cutout, Transform::Flip, Transform::Scale, Transform::Rotate];

    pub fn name(self) -> &'static str {
        match self {
            Transform::Color => "color",
            Transform::Crop => "crop",
            Transform::Cutout => "cutout",
            Transform::Flip => "flip",
            Transform::Scale => "scale",
            Transform::Rotate => "rotate",
        }
    }

    /// The transforms of an underscore-separated strategy, in its order; errors name `field`.
    pub fn parse_strategy(field: &'static str, strategy: &str) -> Result<Vec<Transform>, OptionError> {
        let known = || Transform::ALL.map(Transform::name).join(", ");
        if strategy.is_empty() {
            return Err(OptionError { field, message: format!("expected at least one of {} joined by `_`", known()) });
        }
        strategy
            .split('_')
            .map(|name| {
                Transform::ALL
                    .into_iter()
                    .find(|t| t.name() == name)
                    .ok_or_else(|| OptionError { field, message: format!("unknown transform `{name}`; known transforms: {}", known()) })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strategies_parse_in_order_and_unknown_names_are_listed() {
        assert_eq!(Transform::parse_strategy("strategy", "flip_color"), Ok(vec![Transform::Flip, Transform::Color]));
        let err = Transform::parse_strategy("strategy", "flip_colour").unwrap_err();
        assert_eq!(err.field, "strategy");
        assert!(err.message.contains("`colour`") && err.message.contains("color, crop, cutout, flip, scale, rotate"), "{err}");
        assert!(Transform::parse_strategy("strategy", "").is_err());
    }
}
