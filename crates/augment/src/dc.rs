//! DC's evaluation augmentation (`augment` in DC's and Jiang et al.'s `utils.py`, parameters from
//! `get_daparam`): each image of a training batch gets ONE transform, drawn uniformly from the
//! strategy's list, such as `crop_scale_rotate` (MNIST) or `crop_noise` (ConvNetBN networks).
//! Not differentiable: it augments evaluation training only. On the CPU it runs on the images'
//! values (f64 rotations, as scipy); elsewhere as tensor operations on the images' device
//! ([`tables`]), every network of an ensemble at once, with no read back to the host.

mod rotate;
mod tables;

use gradmatch_core::candle_core::DType;
use gradmatch_core::{Augmentation, Result, Tensor};
use rand::Rng;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

/// `get_daparam`'s constants: crop by up to 4 px, scale by x(1 +- 0.2), rotate by up to 45 degrees,
/// noise of std 0.001.
const CROP: usize = 4;
const SCALE: f32 = 0.2;
const ROTATE: i32 = 45;
const NOISE: f32 = 0.001;

/// One transform of DC's strategies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transform {
    Crop,
    Scale,
    Rotate,
    Noise,
}

impl Transform {
    const ALL: [Transform; 4] = [Transform::Crop, Transform::Scale, Transform::Rotate, Transform::Noise];

    fn name(self) -> &'static str {
        match self {
            Transform::Crop => "crop",
            Transform::Scale => "scale",
            Transform::Rotate => "rotate",
            Transform::Noise => "noise",
        }
    }
}

/// A DC augmentation strategy: its transforms, named as DC names them (`crop_scale_rotate`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DcAugmentation {
    transforms: Vec<Transform>,
}

impl DcAugmentation {
    /// The strategy of MNIST in `get_daparam`.
    pub const MNIST: &'static str = "crop_scale_rotate";
    /// The strategy of ConvNetBN evaluation networks in `get_daparam`.
    pub const BATCH_NORM: &'static str = "crop_noise";
    /// The name `augment = "mnist"` (and `true`) had before the strategies had theirs.
    pub const MNIST_ALIAS: &'static str = "mnist";

    /// The strategy `name` (`crop_scale_rotate`, `crop_noise`, any `_`-joined subset of crop, scale,
    /// rotate and noise), or `None` if `name` is not one.
    pub fn parse(name: &str) -> Option<DcAugmentation> {
        let name = if name == Self::MNIST_ALIAS { Self::MNIST } else { name };
        let transforms: Option<Vec<Transform>> =
            name.split('_').map(|part| Transform::ALL.into_iter().find(|t| t.name() == part)).collect();
        transforms.filter(|t| !t.is_empty()).map(|transforms| DcAugmentation { transforms })
    }

    /// A strategy's own name (`mnist` is `crop_scale_rotate`); any other name as given.
    pub fn canonical(name: &str) -> String {
        DcAugmentation::parse(name).map_or_else(|| name.to_string(), |a| a.name())
    }

    pub fn name(&self) -> String {
        self.transforms.iter().map(|t| t.name()).collect::<Vec<_>>().join("_")
    }

    /// Augments `(n, c, h, w)` row-major `images` in place, as the reference does; the channel means
    /// (crop's padding, rotate's fill) are taken over the whole batch.
    pub fn augment_batch<R: Rng + ?Sized>(&self, images: &mut [f32], (c, h, w): (usize, usize, usize), rng: &mut R) {
        let plane = h * w;
        let n = images.len() / (c * plane);
        let means: Vec<f32> = (0..c)
            .map(|ch| {
                let sum: f64 = (0..n).flat_map(|i| &images[(i * c + ch) * plane..][..plane]).map(|&v| v as f64).sum();
                (sum / (n * plane) as f64) as f32
            })
            .collect();
        let fill = (means.iter().map(|&m| m as f64).sum::<f64>() / c as f64) as f32;
        for image in images.chunks_exact_mut(c * plane) {
            match self.draw((c, h, w), rng) {
                Draw::Crop(offsets) => crop(image, (c, h, w), offsets, &means),
                Draw::Scale(size) => scale(image, (c, h, w), size),
                Draw::Rotate(degrees) => rotate::rotate(image, (c, h, w), degrees, fill),
                Draw::Noise(noise) => image.iter_mut().zip(noise).for_each(|(v, e)| *v += e),
            }
        }
    }

    /// One image's transform and its parameters, drawn as DC's `augment` draws them.
    fn draw<R: Rng + ?Sized>(&self, (c, h, w): (usize, usize, usize), rng: &mut R) -> Draw {
        match self.transforms[rng.random_range(0..self.transforms.len())] {
            Transform::Crop => Draw::Crop((rng.random_range(0..2 * CROP), rng.random_range(0..2 * CROP))),
            Transform::Scale => {
                let mut side = || ((rng.random_range(1.0 - SCALE..1.0 + SCALE)) * h as f32) as usize;
                Draw::Scale((side(), side()))
            }
            Transform::Rotate => Draw::Rotate(rng.random_range(-ROTATE..ROTATE)),
            Transform::Noise => Draw::Noise((0..c * h * w).map(|_| NOISE * Distribution::<f32>::sample(&StandardNormal, rng)).collect()),
        }
    }

    /// The host path: [`DcAugmentation::augment_batch`] on the values of each of `seeds.len()`
    /// equal, contiguous groups of `x`, group g drawn from `seeds[g]`.
    fn augment_values(&self, x: &Tensor, seeds: &[u64]) -> Result<Tensor> {
        let (n, c, h, w) = x.dims4()?;
        let mut values = gradmatch_core::host::cpu_vec1::<f32>(&x.flatten_all()?.to_dtype(DType::F32)?)?;
        let per_group = values.len() / seeds.len().max(1);
        for (group, &seed) in values.chunks_mut(per_group.max(1)).zip(seeds) {
            self.augment_batch(group, (c, h, w), &mut ChaCha8Rng::seed_from_u64(seed));
        }
        Tensor::from_vec(values, (n, c, h, w), x.device())?.to_dtype(x.dtype())
    }

    /// The tensor path, on `x`'s device (what a GPU runs; on the CPU for the tests that hold it to
    /// the host path): as [`Augmentation::augment_groups`], no value read back to the host.
    pub fn augment_with_tensors(&self, x: &Tensor, seeds: &[u64]) -> Result<Tensor> {
        let (n, c, h, w) = x.dims4()?;
        let groups = seeds.len().max(1);
        let mut draws = Vec::with_capacity(n);
        for &seed in seeds {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            draws.extend((0..n / groups).map(|_| self.draw((c, h, w), &mut rng)));
        }
        tables::augment(x, &draws, groups)
    }
}

/// What one image gets.
#[derive(Debug, Clone, PartialEq)]
enum Draw {
    /// Row and column offsets of the window in the padded image.
    Crop((usize, usize)),
    /// The resized image's height and width.
    Scale((usize, usize)),
    /// Degrees.
    Rotate(i32),
    /// The noise of every value of the image, to add.
    Noise(Vec<f32>),
}

impl Augmentation for DcAugmentation {
    /// Per image already: evaluation training is its only use.
    fn augment(&self, x: &Tensor, seed: u64) -> Result<Tensor> {
        self.augment_each(x, seed)
    }

    fn augment_each(&self, x: &Tensor, seed: u64) -> Result<Tensor> {
        self.augment_groups(x, &[seed])
    }

    fn augment_groups(&self, x: &Tensor, seeds: &[u64]) -> Result<Tensor> {
        if x.device().is_cpu() {
            self.augment_values(x, seeds)
        } else {
            self.augment_with_tensors(x, seeds)
        }
    }
}

/// The source pixel of output pixel `(y, x)` of a crop at offsets `(r, c)`; `None`: the padding.
fn crop_source((h, w): (usize, usize), (r, c): (usize, usize), (y, x): (usize, usize)) -> Option<usize> {
    let (sy, sx) = ((y + r) as isize - CROP as isize, (x + c) as isize - CROP as isize);
    let inside = (0..h as isize).contains(&sy) && (0..w as isize).contains(&sx);
    inside.then(|| sy as usize * w + sx as usize)
}

/// The source pixel of output pixel `(y, x)` of a scale to `(nh, nw)`; `None`: the zero border.
fn scale_source((h, w): (usize, usize), (nh, nw): (usize, usize), (y, x): (usize, usize)) -> Option<usize> {
    let side = nh.max(nw).max(h).max(w);
    let (pasted_r, pasted_c) = ((side - nh) / 2, (side - nw) / 2);
    let (window_r, window_c) = ((side - h) / 2, (side - w) / 2);
    // PyTorch's nearest source index: floor(dst * (in / out)) in f32, at most in - 1.
    let nearest =
        |dst: usize, len_in: usize, len_out: usize| ((dst as f32 * (len_in as f32 / len_out as f32)).floor() as usize).min(len_in - 1);
    let (ty, tx) = ((y + window_r) as isize - pasted_r as isize, (x + window_c) as isize - pasted_c as isize);
    let inside = (0..nh as isize).contains(&ty) && (0..nw as isize).contains(&tx);
    inside.then(|| nearest(ty as usize, h, nh) * w + nearest(tx as usize, w, nw))
}

/// Pads the image by `CROP` px on every side with its channel's mean, then takes the `h x w` window
/// at row and column offsets `offsets` in `0 .. 2 * CROP`.
fn crop(image: &mut [f32], (ch, h, w): (usize, usize, usize), offsets: (usize, usize), means: &[f32]) {
    for (plane, &mean) in image.chunks_exact_mut(h * w).zip(means).take(ch) {
        let src = plane.to_vec();
        for (p, v) in plane.iter_mut().enumerate() {
            *v = crop_source((h, w), offsets, (p / w, p % w)).map_or(mean, |s| src[s]);
        }
    }
}

/// Resizes the image to `size` by nearest neighbour (`F.interpolate`'s default), pastes it centred
/// into a zero square of side `max(nh, nw, h, w)` and takes the centred `h x w` window.
fn scale(image: &mut [f32], (ch, h, w): (usize, usize, usize), size: (usize, usize)) {
    for plane in image.chunks_exact_mut(h * w).take(ch) {
        let src = plane.to_vec();
        for (p, v) in plane.iter_mut().enumerate() {
            *v = scale_source((h, w), size, (p / w, p % w)).map_or(0.0, |s| src[s]);
        }
    }
}

#[cfg(test)]
mod tests;
