//! Bilinear resampling under an affine map, as PyTorch's `affine_grid` + `grid_sample` with their
//! defaults (align_corners = false, zeros outside), which DSA's `rand_scale` and `rand_rotate` use.
//! The sampling locations do not depend on the images: each output pixel is a weighted sum of four
//! source pixels, whose places and bilinear weights are computed on the host (4 per pixel, a few KB
//! to upload) and applied on the images' device as four gathers (differentiable: their backward is
//! a scatter-add), never as an `hw x hw` matrix.

use gradmatch_core::{Result, Tensor};

/// The map from an output location to its source, in normalised coordinates (x = column, y = row,
/// both in [-1, 1]): `source = self.0 · (x, y)`, PyTorch's `theta` without translation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Affine(pub [[f64; 2]; 2]);

impl Affine {
    /// DSA's scale: x stretched by `sx`, y by `sy` (a factor above 1 shrinks the image).
    pub fn scale(sx: f64, sy: f64) -> Affine {
        Affine([[sx, 0.0], [0.0, sy]])
    }

    /// DSA's rotation by `radians` (`theta = [[cos, -sin], [sin, cos]]`).
    pub fn rotation(radians: f64) -> Affine {
        let (sin, cos) = radians.sin_cos();
        Affine([[cos, -sin], [sin, cos]])
    }

    /// The source (row, column), in pixels, of output pixel (i, j) of an h x w image.
    fn source(&self, (i, j): (usize, usize), (h, w): (usize, usize)) -> (f64, f64) {
        let normalised = |k: usize, len: usize| (2 * k + 1) as f64 / len as f64 - 1.0;
        let pixels = |v: f64, len: usize| ((v + 1.0) * len as f64 - 1.0) / 2.0;
        let (x, y) = (normalised(j, w), normalised(i, h));
        let [[a, b], [c, d]] = self.0;
        (pixels(c * x + d * y, h), pixels(a * x + b * y, w))
    }

    /// The four source pixels of output pixel `p` with their bilinear weights; a corner outside
    /// the image is pixel 0 with weight 0 (padding_mode = "zeros").
    fn corners(&self, p: usize, (h, w): (usize, usize)) -> [(usize, f64); 4] {
        let (sy, sx) = self.source((p / w, p % w), (h, w));
        let (y0, x0) = (sy.floor(), sx.floor());
        let (fy, fx) = (sy - y0, sx - x0);
        let corner = |dy: isize, dx: isize, weight: f64| {
            let (y, x) = (y0 as isize + dy, x0 as isize + dx);
            match (0..h as isize).contains(&y) && (0..w as isize).contains(&x) {
                true => (y as usize * w + x as usize, weight),
                false => (0, 0.0),
            }
        };
        [corner(0, 0, (1.0 - fy) * (1.0 - fx)), corner(0, 1, (1.0 - fy) * fx), corner(1, 0, fy * (1.0 - fx)), corner(1, 1, fy * fx)]
    }
}

/// Resamples every channel of every image of `(n, c, h, w)` at the locations `map` gives.
pub fn resample(x: &Tensor, map: Affine) -> Result<Tensor> {
    gather_corners(x, &[map])
}

/// Resamples image `i` of `(n, c, h, w)` at the locations `maps[i]` gives.
pub fn resample_each(x: &Tensor, maps: &[Affine]) -> Result<Tensor> {
    let n = x.dim(0)?;
    if maps.len() != n {
        gradmatch_core::candle_core::bail!("resample_each: {} maps for a batch of {n} images", maps.len())
    }
    gather_corners(x, maps)
}

/// Resamples `(n, c, h, w)` by one map for every image (`maps.len() == 1`) or one per image: four
/// gathers of source pixels weighted bilinearly, memory linear in the batch.
fn gather_corners(x: &Tensor, maps: &[Affine]) -> Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    let (pixels, m) = (h * w, maps.len());
    let mut sources = vec![vec![0u32; m * pixels]; 4];
    let mut weights = vec![vec![0f64; m * pixels]; 4];
    for (i, map) in maps.iter().enumerate() {
        for p in 0..pixels {
            for (k, (q, weight)) in map.corners(p, (h, w)).into_iter().enumerate() {
                sources[k][i * pixels + p] = q as u32;
                weights[k][i * pixels + p] = weight;
            }
        }
    }
    let flat = x.reshape((n, c, pixels))?;
    let mut sum = Tensor::zeros((n, c, pixels), x.dtype(), x.device())?;
    for (source, weight) in sources.into_iter().zip(weights) {
        let weight = Tensor::from_vec(weight, (m, 1, pixels), x.device())?.to_dtype(x.dtype())?;
        // One map: the same pixels of every plane (an index_select); one per image: a gather.
        let picked = match m {
            1 => flat.index_select(&Tensor::from_vec(source, pixels, x.device())?, 2)?,
            _ => flat.gather(&Tensor::from_vec(source, (m, 1, pixels), x.device())?.broadcast_as((n, c, pixels))?.contiguous()?, 2)?,
        };
        sum = (sum + picked.broadcast_mul(&weight)?)?;
    }
    sum.reshape((n, c, h, w))
}

#[cfg(test)]
mod tests {
    use super::*;
    use gradmatch_core::candle_core::Device;

    fn image() -> Tensor {
        Tensor::arange(1f64, 17.0, &Device::Cpu).unwrap().reshape((1, 1, 4, 4)).unwrap()
    }

    fn rows(t: Tensor) -> Vec<Vec<f64>> {
        t.squeeze(0).unwrap().squeeze(0).unwrap().to_vec2().unwrap()
    }

    fn assert_close(a: &[Vec<f64>], b: &[Vec<f64>]) {
        let worst = a.iter().flatten().zip(b.iter().flatten()).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
        assert!(worst < 1e-12, "{a:?} != {b:?}");
    }

    /// The resampling as the obviously right dense map: entry (p, q) the weight of source pixel q
    /// in output pixel p, applied to each image by a matrix product.
    fn by_matrix(x: &Tensor, map: Affine) -> Tensor {
        let (n, c, h, w) = x.dims4().unwrap();
        let len = h * w;
        let mut m = vec![0.0; len * len];
        for p in 0..len {
            for (q, weight) in map.corners(p, (h, w)) {
                m[q * len + p] += weight;
            }
        }
        let m = Tensor::from_vec(m, (len, len), x.device()).unwrap();
        x.reshape((n * c, len)).unwrap().matmul(&m).unwrap().reshape((n, c, h, w)).unwrap()
    }

    #[test]
    fn the_gathers_equal_the_matrix_of_each_image() {
        let (a, b) = (Affine::rotation(0.3), Affine::scale(1.1, 0.85));
        let two = Tensor::cat(&[image(), image().affine(-2.0, 1.0).unwrap()], 0).unwrap();
        let each = resample_each(&two, &[a, b]).unwrap();
        let one_by_one =
            Tensor::cat(&[by_matrix(&two.narrow(0, 0, 1).unwrap(), a), by_matrix(&two.narrow(0, 1, 1).unwrap(), b)], 0).unwrap();
        let worst =
            |x: Tensor, y: Tensor| (x - y).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f64>().unwrap();
        assert!(worst(each, one_by_one) < 1e-12, "gather and matrix differ");
        assert!(worst(resample(&two, a).unwrap(), by_matrix(&two, a)) < 1e-12, "one map for the batch");
        assert!(resample_each(&two, &[a]).is_err(), "one map per image");
    }

    #[test]
    fn the_identity_map_keeps_the_image() {
        assert_eq!(rows(resample(&image(), Affine::scale(1.0, 1.0)).unwrap()), rows(image()));
    }

    #[test]
    fn a_quarter_turn_moves_pixels_exactly() {
        // x_src = -y, y_src = x: out[i][j] = in[j][w - 1 - i].
        let turned = rows(resample(&image(), Affine::rotation(std::f64::consts::FRAC_PI_2)).unwrap());
        let input = rows(image());
        let expected: Vec<Vec<f64>> = (0..4).map(|i| (0..4).map(|j| input[j][3 - i]).collect()).collect();
        assert_close(&turned, &expected);
    }

    #[test]
    fn scales_interpolate_and_pad_with_zeros() {
        // Scale 0.5 on a 4-wide row: outputs sample columns 0.75, 1.25, 1.75, 2.25 of [1, 2, 3, 4].
        let zoomed = rows(resample(&image(), Affine::scale(0.5, 1.0)).unwrap());
        assert_close(&zoomed[..1], &[vec![1.75, 2.25, 2.75, 3.25]]);
        // Scale 1.5: columns -0.75, 0.75, 2.25, 3.75: corners outside the image weigh in zero.
        let shrunk = rows(resample(&image(), Affine::scale(1.5, 1.0)).unwrap());
        assert_close(&shrunk[..1], &[vec![0.25, 1.75, 3.25, 1.0]]);
    }
}
