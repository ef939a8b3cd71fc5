//! Errors of TOML files (experiments, grids) located at the value at fault by the `toml` crate's
//! spans, never by searching the text for a name: each error knows the path of the field it is
//! about (typed errors in its chain say it), and the file's parse tree says where that field sits.

use crate::experiment::Experiment;
use gradmatch_engine::InvalidValue;
use gradmatch_plugins::{did_you_mean, PluginError};
use std::fmt;
use std::ops::Range;
use std::path::Path;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// One step into a TOML document: a key of a table or an index of an array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    Name(String),
    Index(usize),
}

impl Key {
    pub fn names<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<Key> {
        names.into_iter().map(|name| Key::Name(name.to_string())).collect()
    }
}

/// The section of an experiment an error is about (`[distance]`, `[coreset]`): what a plug-in's
/// error is put in.
#[derive(Debug, Clone, Copy)]
pub struct Section(pub &'static str);

impl fmt::Display for Section {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}]", self.0)
    }
}

/// An error about the value at `path` (relative to the document the error's reader holds).
#[derive(Debug)]
pub struct AtPath {
    pub path: Vec<Key>,
    pub message: String,
}

impl AtPath {
    pub fn error(path: Vec<Key>, message: impl Into<String>) -> anyhow::Error {
        anyhow::Error::new(AtPath { path, message: message.into() })
    }
}

impl fmt::Display for AtPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for AtPath {}

/// The path of the value `error` is about, read off the typed errors of its chain: a section (the
/// plug-in's table), then the field (a config's, a plug-in option's, or a plug-in's `name`).
pub fn field_path(error: &anyhow::Error) -> Vec<Key> {
    // A context is found by anyhow's own downcast (its chain shows a context as its message only).
    let mut path: Vec<Key> = error.downcast_ref::<Section>().map(|Section(name)| Key::names([*name])).unwrap_or_default();
    for cause in error.chain() {
        if let Some(at) = cause.downcast_ref::<AtPath>() {
            path.extend(at.path.iter().cloned());
            break;
        } else if let Some(invalid) = cause.downcast_ref::<InvalidValue>() {
            return Key::names([invalid.section, invalid.field]);
        } else if let Some(plugin) = cause.downcast_ref::<PluginError>() {
            path.push(Key::Name(plugin_field(plugin).to_string()));
            break;
        }
    }
    path
}

/// The field of a plug-in's table that `error` is about.
fn plugin_field(error: &PluginError) -> &str {
    match error {
        PluginError::Unknown { .. } => "name",
        PluginError::UnknownOption { key, .. } | PluginError::BadOption { key, .. } => key,
    }
}

fn serde_path(path: &serde_path_to_error::Path) -> Vec<Key> {
    use serde_path_to_error::Segment;
    path.iter()
        .filter_map(|segment| match segment {
            Segment::Map { key } => Some(Key::Name(key.clone())),
            Segment::Seq { index } => Some(Key::Index(*index)),
            Segment::Enum { .. } | Segment::Unknown => None,
        })
        .collect()
}

/// `T` from a TOML value that has no spans (a grid cell's merged table), its error carrying the path
/// of the field at fault for [`field_path`] and serde's list of expected keys turned into a hint.
pub fn from_value<T: serde::de::DeserializeOwned>(value: toml::Value) -> anyhow::Result<T> {
    serde_path_to_error::deserialize(value).map_err(|e: serde_path_to_error::Error<toml::de::Error>| {
        let path = serde_path(e.path());
        AtPath::error(path, with_suggestion(e.inner().message()))
    })
}

/// serde lists the expected keys of an unknown field; add the closest one. An experiment's own
/// keys are not listed (its plug-in tables are flattened in): those are the candidates then.
pub fn with_suggestion(message: &str) -> String {
    let Some(rest) = message.split("unknown field `").nth(1) else { return message.to_string() };
    let Some((wanted, expected)) = rest.split_once('`') else { return message.to_string() };
    let listed: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    let own_keys = listed.is_empty();
    let candidates = if own_keys { Experiment::keys() } else { listed };
    match did_you_mean(wanted, candidates.iter().copied()) {
        hint if hint.is_empty() && own_keys => format!("{}; an experiment's keys: {}", message.trim_end(), candidates.join(", ")),
        hint if hint.is_empty() => message.to_string(),
        hint => format!("{}{hint}", message.trim_end()),
    }
}

/// A TOML file's text with its parse tree, to say where its values are.
pub struct TomlFile<'a> {
    pub path: &'a Path,
    pub text: &'a str,
    tree: Option<Spanned<DeTable<'a>>>,
}

impl<'a> TomlFile<'a> {
    pub fn new(path: &'a Path, text: &'a str) -> TomlFile<'a> {
        TomlFile { path, text, tree: DeTable::parse(text).ok() }
    }

    /// The span of the value at `path`, or of the deepest part of it the file holds (a field left
    /// out is located at its table); `None` when the file holds none of it.
    pub fn span(&self, path: &[Key]) -> Option<Range<usize>> {
        let tree = self.tree.as_ref()?;
        let mut table = tree.get_ref();
        let mut array: Option<&[Spanned<DeValue>]> = None;
        let mut found = None;
        for key in path {
            let value = match (key, array) {
                (Key::Index(i), Some(items)) => items.get(*i),
                (Key::Name(name), None) => table.get(name.as_str()),
                _ => None,
            };
            let Some(value) = value else { break };
            found = Some(value.span());
            match value.get_ref() {
                DeValue::Table(t) => (table, array) = (t, None),
                DeValue::Array(items) => array = Some(items.as_ref()),
                _ => break,
            }
        }
        found
    }

    /// Line and column (1-based) of a byte offset.
    pub fn line_column(&self, offset: usize) -> (usize, usize) {
        let before = &self.text[..offset.min(self.text.len())];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        (before.matches('\n').count() + 1, before[line_start..].chars().count() + 1)
    }

    /// `error` as this file's: `what file, line L, column C: message`, at the value [`field_path`]
    /// names (`at` prefixes it: a grid cell's path into the grid), or at `span` when given.
    pub fn error(&self, what: &str, span: Option<Range<usize>>, error: anyhow::Error) -> anyhow::Error {
        let message = format!("{error:#}");
        let span = span.or_else(|| self.span(&field_path(&error)));
        match span {
            Some(span) => {
                let (line, column) = self.line_column(span.start);
                anyhow::anyhow!("{what} {}, line {line}, column {column}: {message}", self.path.display())
            }
            None => anyhow::anyhow!("{what} {}: {message}", self.path.display()),
        }
    }

    /// A `toml` parse or deserialisation error of this file: at the span the parser gives.
    pub fn parse_error(&self, what: &str, error: toml::de::Error) -> anyhow::Error {
        let message = with_suggestion(error.message());
        // An unknown key of an experiment's top level is reported for the whole table (its plug-in
        // tables are flattened in): it is located at the key's own value.
        let unknown = error.message().strip_prefix("unknown field `").and_then(|rest| rest.split('`').next());
        let span = unknown.and_then(|key| self.span(&[Key::Name(key.to_string())])).or(error.span());
        self.error(what, span, anyhow::anyhow!(message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "dataset = \"mnist\"\n# a comment naming ipc\n[condense]\nipc = 7\n[[axis]]\nname = \"a\"\nvalues = [1,\n  7]\n";

    #[test]
    fn a_path_is_located_at_its_value_or_at_the_deepest_part_present() {
        let file = TomlFile::new(Path::new("f.toml"), TEXT);
        let at = |path: Vec<Key>| file.span(&path).map(|s| file.line_column(s.start));
        assert_eq!(at(Key::names(["condense", "ipc"])), Some((4, 7)));
        assert_eq!(at(Key::names(["condense", "iterations"])), Some((3, 1)), "a field left out: its table");
        let value = vec![Key::Name("axis".into()), Key::Index(0), Key::Name("values".into()), Key::Index(1)];
        assert_eq!(at(value), Some((8, 3)));
        assert_eq!(at(Key::names(["model"])), None);
    }

    #[test]
    fn the_path_comes_from_the_typed_errors_of_the_chain() {
        let invalid = InvalidValue { section: "condense", field: "ipc", value: "7".into(), problem: "no".into() };
        assert_eq!(field_path(&anyhow::Error::new(invalid)), Key::names(["condense", "ipc"]));
        let plugin = PluginError::UnknownOption {
            kind: "distance",
            name: "angle".into(),
            key: "alpha".into(),
            suggestion: "".into(),
            known: "".into(),
        };
        assert_eq!(field_path(&anyhow::Error::new(plugin).context(Section("distance"))), Key::names(["distance", "alpha"]));
        assert_eq!(field_path(&anyhow::anyhow!("no path")), vec![]);
    }
}
