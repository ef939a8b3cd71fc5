use std::collections::BTreeMap;
use std::fmt;

/// Options of one plug-in, as written in a TOML config (`[distance] name = "combined"` plus keys).
pub type Params = toml::Table;

/// Why a plug-in could not be built. The messages name the kind, the name and the fix.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("unknown {kind} `{name}`{suggestion}; known {kind}s: {known}")]
    Unknown { kind: &'static str, name: String, suggestion: String, known: String },
    #[error("{kind} `{name}` has no option `{key}`{suggestion}; its options: {known}")]
    UnknownOption { kind: &'static str, name: String, key: String, suggestion: String, known: String },
    #[error("{kind} `{name}`, option `{key}`: {message}")]
    BadOption { kind: &'static str, name: String, key: String, message: String },
}

type Factory<T> = Box<dyn Fn(&Params) -> Result<Box<T>, String> + Send + Sync>;

struct Entry<T: ?Sized> {
    summary: &'static str,
    options: &'static [&'static str],
    make: Factory<T>,
}

/// Plug-ins of one kind (distances, gradient levels or step strategies) by name.
pub struct Registry<T: ?Sized> {
    kind: &'static str,
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

impl<T: ?Sized> Registry<T> {
    pub fn new(kind: &'static str) -> Self {
        Registry { kind, entries: BTreeMap::new() }
    }

    /// Adds a plug-in. `options` lists the keys its factory reads from [`Params`]; any other key in a
    /// config is rejected before work starts. The factory's `Err(message)` names what is wrong.
    pub fn register(
        &mut self,
        name: &'static str,
        summary: &'static str,
        options: &'static [&'static str],
        make: impl Fn(&Params) -> Result<Box<T>, String> + Send + Sync + 'static,
    ) {
        let previous = self.entries.insert(name, Entry { summary, options, make: Box::new(make) });
        assert!(previous.is_none(), "{} `{name}` registered twice", self.kind);
    }

    /// Adds a plug-in that takes no options.
    pub fn register_plain(&mut self, name: &'static str, summary: &'static str, make: impl Fn() -> Box<T> + Send + Sync + 'static) {
        self.register(name, summary, &[], move |_| Ok(make()));
    }

    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// `(name, summary)` of every registered plug-in, sorted by name.
    pub fn list(&self) -> impl Iterator<Item = (&'static str, &'static str)> + '_ {
        self.entries.iter().map(|(n, e)| (*n, e.summary))
    }

    pub fn build(&self, name: &str, params: &Params) -> Result<Box<T>, PluginError> {
        let entry = self.entries.get(name).ok_or_else(|| PluginError::Unknown {
            kind: self.kind,
            name: name.to_string(),
            suggestion: did_you_mean(name, self.entries.keys().copied()),
            known: self.entries.keys().copied().collect::<Vec<_>>().join(", "),
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
        (entry.make)(params).map_err(|message| PluginError::BadOption {
            kind: self.kind,
            name: name.to_string(),
            key: message.split(':').next().unwrap_or_default().trim().to_string(),
            message,
        })
    }
}

impl<T: ?Sized> fmt::Debug for Registry<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry").field("kind", &self.kind).field("names", &self.entries.keys()).finish()
    }
}

/// Reads an optional non-negative number from plug-in options; errors are `"key: message"`.
pub fn number_option(params: &Params, key: &str, default: f64) -> Result<f64, String> {
    match params.get(key) {
        None => Ok(default),
        Some(toml::Value::Float(v)) if v.is_finite() && *v >= 0.0 => Ok(*v),
        Some(toml::Value::Integer(v)) if *v >= 0 => Ok(*v as f64),
        Some(other) => Err(format!("{key}: expected a non-negative number, found `{other}`")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    trait Thing {
        fn value(&self) -> f64;
    }
    struct Fixed(f64);
    impl Thing for Fixed {
        fn value(&self) -> f64 {
            self.0
        }
    }

    fn registry() -> Registry<dyn Thing> {
        let mut r: Registry<dyn Thing> = Registry::new("thing");
        r.register("angle", "a", &["weight"], |p| Ok(Box::new(Fixed(number_option(p, "weight", 1.0)?))));
        r.register("magnitude", "m", &[], |_| Ok(Box::new(Fixed(0.0))));
        r
    }

    #[test]
    fn builds_with_options_and_defaults() {
        let r = registry();
        assert_eq!(r.build("angle", &Params::new()).unwrap().value(), 1.0);
        let p: Params = toml::from_str("weight = 2.5").unwrap();
        assert_eq!(r.build("angle", &p).unwrap().value(), 2.5);
    }

    #[test]
    fn unknown_name_lists_known_and_suggests() {
        let err = registry().build("angel", &Params::new()).err().unwrap().to_string();
        assert!(err.contains("unknown thing `angel`"), "{err}");
        assert!(err.contains("did you mean `angle`"), "{err}");
        assert!(err.contains("angle, magnitude"), "{err}");
    }

    #[test]
    fn unknown_and_bad_options_are_named() {
        let r = registry();
        let p: Params = toml::from_str("wieght = 2").unwrap();
        let err = r.build("angle", &p).err().unwrap().to_string();
        assert!(err.contains("no option `wieght`") && err.contains("did you mean `weight`"), "{err}");
        let p: Params = toml::from_str("weight = -1").unwrap();
        let err = r.build("angle", &p).err().unwrap().to_string();
        assert!(err.contains("option `weight`") && err.contains("non-negative"), "{err}");
    }
}
