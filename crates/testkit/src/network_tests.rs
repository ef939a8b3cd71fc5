//! The kit's checks through a network on MNIST, against toy plug-ins: sound ones pass, each broken
//! one fails with the check it breaks.

use super::*;
use candle_core::{Result, Tensor};
use gradmatch_core::{Distance, GradientLevel, MatchContext};

/// Squared differences computed on a detached copy of the synthetic side: no matching gradient.
struct Detached;

impl Distance for Detached {
    fn distance(&self, real: &[Tensor], syn: &[Tensor]) -> Result<Tensor> {
        SquaredDiff.distance(real, &syn.iter().map(|t| t.detach()).collect::<Vec<_>>())
    }
}

#[test]
#[should_panic(expected = "disagrees with central finite differences")]
fn a_detached_distance_fails_the_gradient_check() {
    check_distance(&Detached, &DistanceLaws { symmetric: true, ..DistanceLaws::UNIVERSAL });
}

/// Matches the mixed batches; `broken` detaches the synthetic side on odd iterations, which only a
/// check at both parities sees.
struct Mixed {
    broken: bool,
}

impl GradientLevel for Mixed {
    fn matching_loss(&self, ctx: &mut dyn MatchContext, distance: &dyn Distance) -> Result<Tensor> {
        let (real, syn) = (ctx.real_mixed_grads(1024)?, ctx.syn_mixed_grads(256)?);
        let syn = if self.broken && ctx.iteration() % 2 == 1 { syn.iter().map(|t| t.detach()).collect() } else { syn };
        distance.distance(&real, &syn)
    }
}

#[test]
fn a_sound_level_passes() {
    check_level(&Mixed { broken: false });
}

#[test]
#[should_panic(expected = "check_level (iteration 1): d(matching loss)/d(synthetic images) disagrees")]
fn a_level_broken_on_odd_iterations_fails() {
    check_level(&Mixed { broken: true });
}

/// Decodes as multi-formation would, but through the host: no gradient reaches the stored images.
struct HostRoundTrip;

impl gradmatch_core::Parameterisation for HostRoundTrip {
    fn images_per_stored(&self) -> usize {
        1
    }
    fn decode(&self, stored: &Tensor) -> Result<Tensor> {
        Tensor::from_vec(stored.flatten_all()?.to_vec1::<f64>()?, stored.dims(), stored.device())
    }
    fn encode(&self, real: &Tensor) -> Result<Tensor> {
        Ok(real.clone())
    }
}

#[test]
#[should_panic(expected = "d(matching loss)/d(stored images) disagrees")]
fn a_parameterisation_that_detaches_fails_the_gradient_check() {
    check_parameterisation(&HostRoundTrip);
}

/// Gives every class the images of class 0.
struct AlwaysClassZero;

impl gradmatch_core::Sampler for AlwaysClassZero {
    fn for_network(&self) -> Box<dyn gradmatch_core::ClassBatches + '_> {
        Box::new(AlwaysClassZero)
    }

    fn initial(&self, ctx: &mut dyn gradmatch_core::SampleContext, _class: usize, n: usize) -> Result<Vec<usize>> {
        Ok(ctx.uniform(0, n))
    }
}

impl gradmatch_core::ClassBatches for AlwaysClassZero {
    fn batch(&mut self, ctx: &mut dyn gradmatch_core::SampleContext, _class: usize) -> Result<Vec<usize>> {
        let n = ctx.batch_size();
        Ok(ctx.uniform(0, n))
    }
}

#[test]
#[should_panic(expected = "class 1's batch at step 0: image")]
fn a_sampler_of_the_wrong_class_fails() {
    crate::check_sampler(&AlwaysClassZero);
}

/// Draws from its own generator, not the run's stream.
struct OwnStream;

impl gradmatch_core::Sampler for OwnStream {
    fn for_network(&self) -> Box<dyn gradmatch_core::ClassBatches + '_> {
        Box::new(OwnStream)
    }

    fn initial(&self, ctx: &mut dyn gradmatch_core::SampleContext, class: usize, n: usize) -> Result<Vec<usize>> {
        Ok(ctx.class_indices(class)[..n].to_vec())
    }
}

impl gradmatch_core::ClassBatches for OwnStream {
    fn batch(&mut self, ctx: &mut dyn gradmatch_core::SampleContext, class: usize) -> Result<Vec<usize>> {
        let pool = ctx.class_indices(class);
        let clock = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("after 1970").as_nanos() as usize;
        Ok((0..ctx.batch_size().min(pool.len())).map(|k| pool[(clock / 7 + k * 13) % pool.len()]).collect())
    }
}

#[test]
#[should_panic(expected = "the same seed gave other batches")]
fn a_sampler_that_ignores_the_seed_fails() {
    crate::check_sampler(&OwnStream);
}
