//! A researcher's own program: the built-in plug-ins plus a distance of its own, handed once to
//! `gradmatch_runner::run_with`, and every command builds from that registry (issue 35).

use gradmatch_core::{sum_over_tensors, Distance, NoOptions, OptionError, Plugin, Result, Tensor};
use gradmatch_plugins::Plugins;
use gradmatch_tests::command_line;

/// Sum over rows of the squared difference, halved: a distance no built-in registry holds.
struct HalfSquares;

impl Distance for HalfSquares {
    fn distance(&self, real: &[Tensor], syn: &[Tensor]) -> Result<Tensor> {
        sum_over_tensors(real, syn, |a, b| (a - b)?.sqr()?.sum_all()? * 0.5)
    }
}

impl Plugin for HalfSquares {
    const NAME: &'static str = "half-squares";
    const SUMMARY: &'static str = "sum over rows of |real - syn|^2 / 2 (a test's own)";
    type Options = NoOptions;
    fn from_options(_: NoOptions) -> std::result::Result<Self, OptionError> {
        Ok(HalfSquares)
    }
}

#[test]
fn every_command_sees_the_registry_a_program_hands_down() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("own.toml");
    std::fs::write(
        &config,
        "dataset = \"mnist\"\nmodel = \"ConvNetW4\"\n[evaluation]\ntest_limit = 200\n[distance]\nname = \"half-squares\"\n",
    )
    .unwrap();
    let out = dir.path().join("run");
    let words = ["condense", "--config", config.to_str().unwrap(), "--iterations", "1", "--epochs", "1", "--num-eval", "1"];
    let words = [&words[..], &["--out", out.to_str().unwrap()]].concat();

    let builtin = gradmatch_runner::run(command_line(&words).unwrap()).unwrap_err();
    assert!(format!("{builtin:#}").contains("unknown distance `half-squares`"), "{builtin:#}");
    assert!(!out.exists(), "refused before any work");

    let mut plugins = Plugins::builtin();
    plugins.method.distance.register::<HalfSquares>();
    gradmatch_runner::run_with(command_line(&words).unwrap(), plugins).unwrap();
    let summary = std::fs::read_to_string(out.join("summary.json")).unwrap();
    assert!(summary.contains("\"half-squares\""), "the run records the distance it matched with: {summary}");
}
