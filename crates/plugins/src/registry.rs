use gradmatch_core::{Hold, Holds, Kind, Plugin};
use std::collections::BTreeMap;
use std::fmt;

/// Options of one plug-in as written in a TOML config (`[distance] name = "combined"` plus keys).
pub type OptionTable = toml::Table;

/// Why a plug-in could not be built. The messages name the kind, the plug-in, the field and the fix.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("unknown {kind} `{name}`{suggestion}; known {kinds}: {known}")]
    Unknown { kind: &'static str, kinds: &'static str, name: String, suggestion: String, known: String },
    #[error("{kind} `{name}` has no option `{key}`{suggestion}; its options: {known}")]
    UnknownOption { kind: &'static str, name: String, key: String, suggestion: String, known: String },
    #[error("{kind} `{name}`, option `{key}`: {message}")]
    BadOption { kind: &'static str, name: String, key: String, message: String },
}

/// `(field, message)` of an option that did not deserialize or validate.
type Invalid = (String, String);

struct Entry<T: ?Sized> {
    summary: &'static str,
    options: &'static [&'static str],
    make: fn(&OptionTable) -> Result<Box<T>, Invalid>,
}

/// A method's registries: `Method<Registries>` holds the registry of each kind.
pub struct Registries;

impl Hold for Registries {
    type Of<K: ?Sized + Kind> = Registry<K>;
}

/// Plug-ins of one kind (distances, gradient levels, step strategies or augmentations) by name.
pub struct Registry<T: ?Sized> {
    kind: &'static str,
    kinds: &'static str,
    entries: BTreeMap<&'static str, Entry<T>>,
}

/// ` (did you mean `x`?)` for the closest candidate, or nothing when none is close.
pub fn did_you_mean<'a>(wanted: &str, candidates: impl Iterator<Item = &'a str>) -> String {
    candidates
        .map(|c| (strsim::jaro_winkler(wanted, c), c))
        .filter(|(score, _)| *score > 0.7)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| format!(" (did you mean `{c}`?)"))
        .unwrap_or_default()
}

/// Deserializes `P`'s options from `params` (the path names the failing field), then validates them.
fn make<T: ?Sized + Holds<P>, P: Plugin>(params: &OptionTable) -> Result<Box<T>, Invalid> {
    let options = serde_path_to_error::deserialize(toml::Value::Table(params.clone()))
        .map_err(|e| (e.path().to_string(), e.into_inner().to_string()))?;
    P::from_options(options).map(T::boxed).map_err(|e| (e.field.to_string(), e.message))
}

impl<T: ?Sized> Registry<T> {
    /// An empty registry; `kind` and `kinds` name one and several of its plug-ins in messages.
    pub fn new(kind: &'static str, kinds: &'static str) -> Self {
        Registry { kind, kinds, entries: BTreeMap::new() }
    }

    /// An empty registry of a method's kind, named as the kind names itself.
    pub fn of_kind() -> Self
    where
        T: Kind,
    {
        Registry::new(T::NOUN, T::NOUNS)
    }

    /// Adds the plug-in `P` under `P::NAME`; its option list comes from `P::Options`.
    pub fn register<P: Plugin>(&mut self)
    where
        T: Holds<P>,
    {
        let entry =
            Entry { summary: P::SUMMARY, options: serde_aux::serde_introspection::serde_introspect::<P::Options>(), make: make::<T, P> };
        let previous = self.entries.insert(P::NAME, entry);
        assert!(previous.is_none(), "{} `{}` registered twice", self.kind, P::NAME);
    }

    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// The plural, for listings: "step strategies".
    pub fn kinds(&self) -> &'static str {
        self.kinds
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every registered name, sorted.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.entries.keys().copied()
    }

    /// `(name, summary, option names)` of every registered plug-in, sorted by name.
    pub fn list(&self) -> impl Iterator<Item = (&'static str, &'static str, &'static [&'static str])> + '_ {
        self.entries.iter().map(|(n, e)| (*n, e.summary, e.options))
    }

    /// Every registered plug-in built with its default options, sorted by name: what checks iterate over.
    pub fn defaults(&self) -> impl Iterator<Item = (&'static str, Box<T>)> + '_ {
        self.names().map(|name| {
            let plugin =
                self.build(name, &OptionTable::new()).unwrap_or_else(|e| panic!("{e}: every plug-in must build with its defaults"));
            (name, plugin)
        })
    }

    /// The plug-in `name` with `params`; unknown names and keys are refused with the closest match.
    pub fn build(&self, name: &str, params: &OptionTable) -> Result<Box<T>, PluginError> {
        let entry = self.entries.get(name).ok_or_else(|| PluginError::Unknown {
            kind: self.kind,
            kinds: self.kinds,
            name: name.to_string(),
            suggestion: did_you_mean(name, self.names()),
            known: self.names().collect::<Vec<_>>().join(", "),
        })?;
        if let Some(key) = params.keys().find(|k| !entry.options.contains(&k.as_str())) {
            return Err(PluginError::UnknownOption {
                kind: self.kind,
                name: name.to_string(),
                key: key.clone(),
                suggestion: did_you_mean(key, entry.options.iter().copied()),
                known: if entry.options.is_empty() { "none".into() } else { entry.options.join(", ") },
            });
        }
        (entry.make)(params).map_err(|(key, message)| PluginError::BadOption { kind: self.kind, name: name.to_string(), key, message })
    }
}

impl<T: ?Sized> fmt::Debug for Registry<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry").field("kind", &self.kind).field("names", &self.entries.keys()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gradmatch_core::candle_core::{Device, Result, Tensor};
    use gradmatch_core::{plugin_without_options, Distance, OptionError};

    /// A distance whose value is its `weight` option.
    #[derive(serde::Deserialize)]
    #[serde(default, deny_unknown_fields)]
    struct Weighted {
        weight: f64,
        repeats: usize,
    }
    impl Default for Weighted {
        fn default() -> Self {
            Weighted { weight: 1.0, repeats: 1 }
        }
    }
    impl Distance for Weighted {
        fn distance(&self, _: &[Tensor], _: &[Tensor]) -> Result<Tensor> {
            Tensor::new(self.weight * self.repeats as f64, &Device::Cpu)
        }
    }
    impl Plugin for Weighted {
        const NAME: &'static str = "weighted";
        const SUMMARY: &'static str = "w";
        type Options = Self;
        fn from_options(o: Self) -> std::result::Result<Self, OptionError> {
            OptionError::non_negative("weight", o.weight)?;
            OptionError::at_least_one("repeats", o.repeats)?;
            Ok(o)
        }
    }

    #[derive(Default)]
    struct Plain;
    impl Distance for Plain {
        fn distance(&self, _: &[Tensor], _: &[Tensor]) -> Result<Tensor> {
            Tensor::new(0f64, &Device::Cpu)
        }
    }
    plugin_without_options!(Plain, "plain", "p");

    fn registry() -> Registry<dyn Distance> {
        let mut r: Registry<dyn Distance> = Registry::new("distance", "distances");
        r.register::<Weighted>();
        r.register::<Plain>();
        r
    }

    fn value(r: &Registry<dyn Distance>, name: &str, toml_text: &str) -> std::result::Result<f64, String> {
        let built = r.build(name, &toml::from_str(toml_text).unwrap()).map_err(|e| e.to_string())?;
        Ok(built.distance(&[], &[]).unwrap().to_scalar::<f64>().unwrap())
    }

    #[test]
    fn options_come_from_the_struct_with_its_defaults() {
        let r = registry();
        assert_eq!(r.list().map(|(n, _, o)| (n, o)).collect::<Vec<_>>(), [("plain", &[][..]), ("weighted", &["weight", "repeats"][..])]);
        assert_eq!(value(&r, "weighted", ""), Ok(1.0));
        assert_eq!(value(&r, "weighted", "weight = 2.5\nrepeats = 2"), Ok(5.0));
        assert_eq!(value(&r, "weighted", "weight = 3"), Ok(3.0), "integers are numbers");
    }

    #[test]
    fn unknown_name_lists_known_and_suggests() {
        let err = value(&registry(), "weigthed", "").unwrap_err();
        assert!(err.contains("unknown distance `weigthed`") && err.contains("did you mean `weighted`"), "{err}");
        assert!(err.contains("known distances: plain, weighted"), "{err}");
    }

    #[test]
    fn unknown_options_are_named_with_a_hint() {
        let err = value(&registry(), "weighted", "wieght = 2").unwrap_err();
        assert!(err.contains("no option `wieght`") && err.contains("did you mean `weight`") && err.contains("weight, repeats"), "{err}");
        let err = value(&registry(), "plain", "weight = 2").unwrap_err();
        assert!(err.contains("`plain` has no option `weight`") && err.contains("its options: none"), "{err}");
    }

    #[test]
    fn bad_values_name_the_field() {
        let err = value(&registry(), "weighted", "weight = -1").unwrap_err();
        assert!(err.contains("option `weight`") && err.contains("non-negative"), "{err}");
        let err = value(&registry(), "weighted", "repeats = 0").unwrap_err();
        assert!(err.contains("option `repeats`") && err.contains(">= 1"), "{err}");
        let err = value(&registry(), "weighted", "repeats = \"two\"").unwrap_err();
        assert!(err.contains("option `repeats`") && err.contains("invalid type"), "{err}");
    }
}
