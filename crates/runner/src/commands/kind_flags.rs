//! One flag per plug-in kind (`--distance combined`), made from the kinds' one list: a new kind has
//! its flag without a line here.

use clap::{Arg, ArgMatches, Command, FromArgMatches};
use gradmatch_core::{Method, METHOD_KINDS};
use gradmatch_plugins::Specs;
use std::collections::BTreeMap;

/// The plug-ins the flags name, by their kind's field.
#[derive(Debug, Clone, Default)]
pub struct KindFlags(BTreeMap<&'static str, String>);

impl KindFlags {
    /// `method` with the flags' plug-ins, each with its default options, in place of its own.
    pub fn apply(&self, method: &Method<Specs>) -> Method<Specs> {
        Specs::renamed(method, &|field| self.0.get(field).cloned())
    }
}

impl FromArgMatches for KindFlags {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let named = METHOD_KINDS.iter().filter_map(|kind| matches.get_one::<String>(kind.field).map(|name| (kind.field, name.clone())));
        Ok(KindFlags(named.collect()))
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = KindFlags::from_arg_matches(matches)?;
        Ok(())
    }
}

impl clap::Args for KindFlags {
    fn augment_args(cmd: Command) -> Command {
        METHOD_KINDS.iter().fold(cmd, |cmd, kind| {
            let help = format!(
                "The {} by name, with its default options (else the file's, else `{}`; `gradmatch plugins` lists the {})",
                kind.noun, kind.default, kind.nouns
            );
            cmd.arg(Arg::new(kind.field).long(kind.field).value_name("NAME").help(help))
        })
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        kinds: KindFlags,
    }

    #[test]
    fn every_kind_has_its_flag_and_the_flags_rename_only_their_kinds() {
        for kind in METHOD_KINDS {
            let flag = format!("--{}", kind.field);
            let cli = Cli::try_parse_from(["condense", flag.as_str(), "mine"]).unwrap_or_else(|e| panic!("{flag}: {e}"));
            let method = cli.kinds.apply(&Method::<Specs>::default());
            for (field, spec) in Specs::each(&method) {
                let expected = if field == kind.field { "mine" } else { METHOD_KINDS.iter().find(|k| k.field == field).unwrap().default };
                assert_eq!(spec.name, expected, "{flag}: the {field}");
            }
        }
        let mut tuned = Method::<Specs>::default();
        tuned.distance.options.insert("alpha".into(), 0.5.into());
        let cli = Cli::try_parse_from(["condense"]).unwrap();
        assert_eq!(cli.kinds.apply(&tuned), tuned, "no flag changes nothing, options included");
    }
}
