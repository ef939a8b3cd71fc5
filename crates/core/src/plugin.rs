use serde::de::DeserializeOwned;

/// What every plug-in (distance, gradient level, step strategy, augmentation) declares about itself: the name a
/// TOML config uses, a one-line summary for `gradmatch plugins`, and its options.
///
/// The registry (crate `gradmatch-plugins`) derives everything else from this: the option list, the
/// rejection of unknown keys with a "did you mean" hint, and the error naming the offending field.
pub trait Plugin: Sized {
    /// `[distance] name = "angle"`.
    const NAME: &'static str;
    const SUMMARY: &'static str;
    /// The options read from the plug-in's TOML table: a serde struct with
    /// `#[serde(default, deny_unknown_fields)]` (often the plug-in itself), or [`NoOptions`].
    type Options: DeserializeOwned;
    /// Builds the plug-in, checking what the option types cannot (ranges, for instance).
    fn from_options(options: Self::Options) -> Result<Self, OptionError>;
}

/// Declares a plug-in that takes no options (a unit struct) by its name and summary:
/// `plugin_without_options!(Angle, "angle", "sum over rows of (1 - cos(real, syn)) (DC)");`
#[macro_export]
macro_rules! plugin_without_options {
    ($plugin:ident, $name:expr, $summary:expr) => {
        impl $crate::Plugin for $plugin {
            const NAME: &'static str = $name;
            const SUMMARY: &'static str = $summary;
            type Options = $crate::NoOptions;
            fn from_options(_: $crate::NoOptions) -> ::std::result::Result<Self, $crate::OptionError> {
                Ok($plugin)
            }
        }
    };
}

/// The options of a plug-in that takes none: any key is refused.
#[derive(Debug, Default, Clone, Copy, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoOptions {}

/// An option value out of range: names the field and says what was expected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct OptionError {
    pub field: &'static str,
    pub message: String,
}

impl OptionError {
    /// Checks a count that must be at least one.
    pub fn at_least_one(field: &'static str, value: usize) -> Result<usize, OptionError> {
        if value == 0 {
            return Err(OptionError { field, message: "expected a whole number >= 1, found 0".into() });
        }
        Ok(value)
    }

    /// Checks a weight that must be finite and non-negative.
    pub fn non_negative(field: &'static str, value: f64) -> Result<f64, OptionError> {
        if !(value.is_finite() && value >= 0.0) {
            return Err(OptionError { field, message: format!("expected a non-negative number, found {value}") });
        }
        Ok(value)
    }
}
