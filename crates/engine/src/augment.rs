use gradmatch_core::{Augmentation, Result, Tensor};
use rand::Rng;
use rand::SeedableRng;

/// The reference's MNIST evaluation augmentation as a training-batch augmentation: one random
/// transform per image (see [`augment_batch`]), drawn from `seed`. It runs on the host and is not
/// differentiable, so it augments evaluation training only, never a gradient match.
#[derive(Debug, Default, Clone, Copy)]
pub struct MnistAugmentation;

impl MnistAugmentation {
    pub const NAME: &'static str = "mnist";
}

impl Augmentation for MnistAugmentation {
    /// Per image already: evaluation training is its only use.
    fn augment(&self, x: &Tensor, seed: u64) -> Result<Tensor> {
        self.augment_each(x, seed)
    }

    fn augment_each(&self, x: &Tensor, seed: u64) -> Result<Tensor> {
        let (_, c, h, w) = x.dims4()?;
        let mut host = x.flatten_all()?.to_dtype(candle_core::DType::F32)?.to_vec1::<f32>()?;
        augment_batch(&mut host, (c, h, w), &mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
        Tensor::from_vec(host, x.shape(), x.device())?.to_dtype(x.dtype())
    }
}

/// The reference's MNIST evaluation augmentation ("crop_scale_rotate"): each image gets ONE of
/// - crop: shift by up to 4 px, the uncovered border filled with the channel mean;
/// - scale: resize by a factor in [0.8, 1.2] (nearest neighbour), centred, zero-padded or cropped;
/// - rotate: rotate by an integer angle in [-45, 45) degrees about the centre (bilinear), filled with
///   the mean of the channel means.
///
/// `images` is `(n, c, h, w)` row-major; channel means are taken over the batch, as the reference.
pub fn augment_batch<R: Rng + ?Sized>(images: &mut [f32], (c, h, w): (usize, usize, usize), rng: &mut R) {
    let plane = h * w;
    let n = images.len() / (c * plane);
    let means: Vec<f32> = (0..c)
        .map(|ch| {
            let sum: f64 = (0..n).flat_map(|i| &images[(i * c + ch) * plane..(i * c + ch + 1) * plane]).map(|&v| v as f64).sum();
            (sum / (n * plane) as f64) as f32
        })
        .collect();
    let fill = means.iter().sum::<f32>() / c as f32;
    for i in 0..n {
        let choice = rng.random_range(0..3);
        let (dy, dx) = (rng.random_range(0..8) as isize - 4, rng.random_range(0..8) as isize - 4);
        let factor = rng.random_range(0.8f32..1.2);
        let angle = (rng.random_range(-45i32..45) as f32).to_radians();
        for (ch, &mean) in means.iter().enumerate() {
            let start = (i * c + ch) * plane;
            let src = images[start..start + plane].to_vec();
            let dst = &mut images[start..start + plane];
            match choice {
                0 => shift(&src, dst, (h, w), (dy, dx), mean),
                1 => scale(&src, dst, (h, w), factor),
                _ => rotate(&src, dst, (h, w), angle, fill),
            }
        }
    }
}

fn shift(src: &[f32], dst: &mut [f32], (h, w): (usize, usize), (dy, dx): (isize, isize), fill: f32) {
    for y in 0..h {
        for x in 0..w {
            let (sy, sx) = (y as isize + dy, x as isize + dx);
            dst[y * w + x] =
                if (0..h as isize).contains(&sy) && (0..w as isize).contains(&sx) { src[sy as usize * w + sx as usize] } else { fill };
        }
    }
}

fn scale(src: &[f32], dst: &mut [f32], (h, w): (usize, usize), factor: f32) {
    // New size, then centre it in (h, w): the reference pads with zeros or crops the centre.
    let (nh, nw) = (((h as f32) * factor) as usize, ((w as f32) * factor) as usize);
    let (oy, ox) = (nh as isize / 2 - h as isize / 2, nw as isize / 2 - w as isize / 2);
    for y in 0..h {
        for x in 0..w {
            let (ty, tx) = (y as isize + oy, x as isize + ox);
            dst[y * w + x] = if (0..nh as isize).contains(&ty) && (0..nw as isize).contains(&tx) {
                let sy = ((ty as f32 * h as f32 / nh as f32) as usize).min(h - 1);
                let sx = ((tx as f32 * w as f32 / nw as f32) as usize).min(w - 1);
                src[sy * w + sx]
            } else {
                0.0
            };
        }
    }
}

fn rotate(src: &[f32], dst: &mut [f32], (h, w): (usize, usize), angle: f32, fill: f32) {
    let (cy, cx) = ((h as f32 - 1.0) / 2.0, (w as f32 - 1.0) / 2.0);
    let (sin, cos) = angle.sin_cos();
    let at = |y: isize, x: isize| {
        if (0..h as isize).contains(&y) && (0..w as isize).contains(&x) {
            src[y as usize * w + x as usize]
        } else {
            fill
        }
    };
    for y in 0..h {
        for x in 0..w {
            // Inverse mapping: where does the output pixel come from in the source?
            let (ry, rx) = (y as f32 - cy, x as f32 - cx);
            let sy = cos * ry - sin * rx + cy;
            let sx = sin * ry + cos * rx + cx;
            let (y0, x0) = (sy.floor(), sx.floor());
            let (fy, fx) = (sy - y0, sx - x0);
            let (y0, x0) = (y0 as isize, x0 as isize);
            dst[y * w + x] = at(y0, x0) * (1.0 - fy) * (1.0 - fx)
                + at(y0, x0 + 1) * (1.0 - fy) * fx
                + at(y0 + 1, x0) * fy * (1.0 - fx)
                + at(y0 + 1, x0 + 1) * fy * fx;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_cases_and_geometry() {
        let (h, w) = (6, 6);
        let src: Vec<f32> = (0..36).map(|v| v as f32).collect();
        let mut dst = vec![0.0; 36];
        shift(&src, &mut dst, (h, w), (0, 0), -1.0);
        assert_eq!(dst, src);
        shift(&src, &mut dst, (h, w), (1, 0), -1.0);
        assert_eq!(dst[0], 6.0, "row 0 now shows source row 1");
        assert_eq!(dst[30], -1.0, "the uncovered last row is filled");
        rotate(&src, &mut dst, (h, w), 0.0, -1.0);
        assert!(dst.iter().zip(&src).all(|(a, b)| (a - b).abs() < 1e-5));
        rotate(&src, &mut dst, (h, w), std::f32::consts::PI, -1.0);
        assert!((dst[0] - 35.0).abs() < 1e-3, "a half turn maps the first pixel to the last: {}", dst[0]);
        scale(&src, &mut dst, (h, w), 1.0);
        assert_eq!(dst, src);
    }

    #[test]
    fn batch_changes_images_but_keeps_shape_and_finiteness() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        use rand::SeedableRng;
        let original: Vec<f32> = (0..4 * 28 * 28).map(|v| ((v % 97) as f32) / 97.0).collect();
        let mut images = original.clone();
        augment_batch(&mut images, (1, 28, 28), &mut rng);
        assert_eq!(images.len(), original.len());
        assert!(images.iter().all(|v| v.is_finite()));
        assert_ne!(images, original);
    }
}
