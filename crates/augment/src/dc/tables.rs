//! DC's transforms as tensor operations on the batch's own device. Each transform of an image is a
//! fixed linear map of its planes plus a fill: output pixel p is `Σ_t weight[p, t] source[index[p, t]]`
//! over at most 16 taps, where a plane's source is its pixels, its cubic B-spline coefficients (a
//! rotation's 4 x 4 taps read those), its channel's batch mean (crop's padding), the batch's fill
//! (rotation's outside) and a zero (scale's border). The taps of every transform instance of a plane
//! size form one table, made and uploaded once per device and dtype: a batch uploads only which
//! instance each image takes (and noise, for strategies that have it), and reads nothing back.

use super::{crop_source, rotate, scale_source, Draw, CROP, ROTATE, SCALE};
use gradmatch_core::candle_core::{DType, Device, Result, Tensor};
use std::sync::{Arc, Mutex};

/// Taps per output pixel: a rotation's 4 x 4; the other transforms use one.
const TAPS: usize = 16;

/// The transform instances of an `h x w` plane, numbered in this order: the identity (noise's),
/// the crops, the scales, the rotations.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Instances {
    h: usize,
    w: usize,
    /// Scale's smallest side and how many sides it draws.
    scale_low: usize,
    scale_sides: usize,
}

impl Instances {
    const CROPS: usize = 4 * CROP * CROP;
    const ROTATIONS: usize = 2 * ROTATE as usize;

    fn new(h: usize, w: usize) -> Instances {
        // Both sides are floor(u h), u in [1 - SCALE, 1 + SCALE), in f32 as the draw computes them.
        let side = |u: f32| (u * h as f32) as usize;
        let scale_low = side(1.0 - SCALE);
        Instances { h, w, scale_low, scale_sides: side(1.0 + SCALE) - scale_low + 1 }
    }

    fn count(&self) -> usize {
        1 + Self::CROPS + self.scale_sides * self.scale_sides + Self::ROTATIONS
    }

    /// The instance a draw takes; `None` for a scale outside the drawn sides.
    fn id(&self, draw: &Draw) -> Option<usize> {
        let scale = |side: usize| side.checked_sub(self.scale_low).filter(|&s| s < self.scale_sides);
        match *draw {
            Draw::Noise(_) => Some(0),
            Draw::Crop((r, c)) => Some(1 + r * 2 * CROP + c),
            Draw::Scale((nh, nw)) => Some(1 + Self::CROPS + scale(nh)? * self.scale_sides + scale(nw)?),
            Draw::Rotate(degrees) => Some(1 + Self::CROPS + self.scale_sides * self.scale_sides + (degrees + ROTATE) as usize),
        }
    }

    /// Every instance, in the order of their numbers.
    fn all(&self) -> Vec<Draw> {
        let sides = self.scale_low..self.scale_low + self.scale_sides;
        let crops = (0..2 * CROP).flat_map(|r| (0..2 * CROP).map(move |c| Draw::Crop((r, c))));
        let scales = sides.clone().flat_map(|nh| sides.clone().map(move |nw| Draw::Scale((nh, nw))));
        let rotations = (-ROTATE..ROTATE).map(Draw::Rotate);
        std::iter::once(Draw::Noise(Vec::new())).chain(crops).chain(scales).chain(rotations).collect()
    }

    /// The taps of every output pixel under `draw`, in pixel order, as (source index, weight) pairs.
    fn plane_taps(&self, draw: &Draw) -> Vec<Vec<(u32, f64)>> {
        let (h, w) = (self.h, self.w);
        let source = Source { hw: h * w };
        let one = |i: usize| vec![(i as u32, 1.0)];
        // A rotation's geometry is the draw's, not the pixel's: made once.
        let geometry = match *draw {
            Draw::Rotate(degrees) => Some(rotate::Geometry::new((h, w), degrees)),
            _ => None,
        };
        let pixel_taps = |(y, x): (usize, usize)| match (draw, &geometry) {
            (Draw::Noise(_), _) => one(y * w + x),
            (&Draw::Crop(offsets), _) => one(crop_source((h, w), offsets, (y, x)).unwrap_or(source.mean())),
            (&Draw::Scale(size), _) => one(scale_source((h, w), size, (y, x)).unwrap_or(source.zero())),
            (Draw::Rotate(_), geometry) => {
                let (sy, sx) = geometry.as_ref().expect("made for rotations").source(y, x);
                match (rotate::taps(sy, h), rotate::taps(sx, w)) {
                    (Some((wy, iy)), Some((wx, ix))) => {
                        (0..TAPS).map(|t| (source.coefficient(iy[t / 4] * w + ix[t % 4]) as u32, wy[t / 4] * wx[t % 4])).collect()
                    }
                    _ => one(source.fill()),
                }
            }
        };
        (0..h * w).map(|p| pixel_taps((p / w, p % w))).collect()
    }
}

/// Where a tap reads in a plane's source: `[pixels | spline coefficients | mean | fill | zero]`.
struct Source {
    hw: usize,
}

impl Source {
    fn coefficient(&self, i: usize) -> usize {
        self.hw + i
    }
    fn mean(&self) -> usize {
        2 * self.hw
    }
    fn fill(&self) -> usize {
        2 * self.hw + 1
    }
    fn zero(&self) -> usize {
        2 * self.hw + 2
    }
}

/// An `h x w` plane's tables on one device, in one dtype.
struct Tables {
    instances: Instances,
    device: Device,
    dtype: DType,
    /// `(instances, hw * TAPS)`: source indices (u32) and weights.
    index: Tensor,
    weight: Tensor,
    /// The B-spline prefilter along columns `(h, h)` and, transposed, along rows `(w, w)`.
    column_filter: Tensor,
    row_filter_t: Tensor,
}

/// The matrix of the B-spline prefilter of a line of `len`, row j holding the prefilter of the j-th
/// unit vector: the transposed filter.
fn prefilter_t(len: usize) -> Vec<f64> {
    (0..len)
        .flat_map(|j| {
            let mut unit: Vec<f64> = (0..len).map(|i| if i == j { 1.0 } else { 0.0 }).collect();
            rotate::prefilter(&mut unit);
            unit
        })
        .collect()
}

impl Tables {
    fn new(instances: Instances, device: &Device, dtype: DType) -> Result<Tables> {
        let (h, w) = (instances.h, instances.w);
        let (draws, pixels) = (instances.all(), h * w);
        let len = instances.count() * pixels * TAPS;
        let (mut index, mut weight) = (Vec::with_capacity(len), Vec::with_capacity(len));
        for draw in &draws {
            for taps in instances.plane_taps(draw) {
                let zero = (Source { hw: pixels }.zero() as u32, 0.0);
                for (i, wt) in taps.into_iter().chain(std::iter::repeat(zero)).take(TAPS) {
                    index.push(i);
                    weight.push(wt);
                }
            }
        }
        let upload = |v: Vec<f64>, shape: (usize, usize)| Tensor::from_vec(v, shape, device)?.to_dtype(dtype);
        let column_filter = upload(prefilter_t(h), (h, h))?.t()?.contiguous()?;
        Ok(Tables {
            instances,
            device: device.clone(),
            dtype,
            index: Tensor::from_vec(index, (draws.len(), pixels * TAPS), device)?,
            weight: upload(weight, (draws.len(), pixels * TAPS))?,
            column_filter,
            row_filter_t: upload(prefilter_t(w), (w, w))?,
        })
    }

    /// The tables of an `h x w` plane on `device` in `dtype`, made on first use.
    fn get(h: usize, w: usize, device: &Device, dtype: DType) -> Result<Arc<Tables>> {
        static MADE: Mutex<Vec<Arc<Tables>>> = Mutex::new(Vec::new());
        let instances = Instances::new(h, w);
        let mut made = MADE.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(t) = made.iter().find(|t| t.instances == instances && t.dtype == dtype && t.device.same_device(device)) {
            return Ok(t.clone());
        }
        let tables = Arc::new(Tables::new(instances, device, dtype)?);
        made.push(tables.clone());
        Ok(tables)
    }
}

/// `x (n, c, h, w)` with image i transformed by `draws[i]`; the means and the fill taken over each
/// of `groups` equal, contiguous groups of images (one network's batch each).
pub(super) fn augment(x: &Tensor, draws: &[Draw], groups: usize) -> Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    let (device, dtype, hw) = (x.device(), x.dtype(), h * w);
    let tables = Tables::get(h, w, device, dtype)?;
    let ids = draws
        .iter()
        .map(|d| tables.instances.id(d).map(|id| id as u32))
        .collect::<Option<Vec<u32>>>()
        .ok_or_else(|| gradmatch_core::candle_core::Error::Msg(format!("dc augmentation: a draw outside the {h} x {w} tables")))?;
    let ids = Tensor::new(ids.as_slice(), device)?;
    let planes = x.reshape((n * c, h, w))?;
    let coefficients = tables.column_filter.broadcast_matmul(&planes)?.broadcast_matmul(&tables.row_filter_t)?;
    // Channel means in f64 and rounded to f32, and their mean, as the host path takes them.
    let per_group = n / groups;
    let means = x.to_dtype(DType::F64)?.reshape((groups, per_group, c, hw))?.mean_keepdim(3)?.mean_keepdim(1)?;
    let means = means.to_dtype(DType::F32)?.to_dtype(DType::F64)?;
    let fill = means.mean_keepdim(2)?.to_dtype(DType::F32)?;
    let per_image = |t: &Tensor| t.broadcast_as((groups, per_group, c, 1))?.reshape((n, c, 1))?.to_dtype(dtype);
    let parts = [
        x.reshape((n, c, hw))?,
        coefficients.reshape((n, c, hw))?,
        per_image(&means)?,
        per_image(&fill)?,
        Tensor::zeros((n, c, 1), dtype, device)?,
    ];
    let source = Tensor::cat(&parts, 2)?;
    let index = tables.index.index_select(&ids, 0)?.unsqueeze(1)?.broadcast_as((n, c, hw * TAPS))?.contiguous()?;
    let weight = tables.weight.index_select(&ids, 0)?.reshape((n, 1, hw, TAPS))?;
    let out = source.gather(&index, 2)?.reshape((n, c, hw, TAPS))?.broadcast_mul(&weight)?.sum(3)?;
    let out = match noise(draws, c * hw) {
        Some(noise) => (out + Tensor::from_vec(noise, (n, c, hw), device)?.to_dtype(dtype)?)?,
        None => out,
    };
    out.reshape((n, c, h, w))
}

/// Every image's noise (zeros for images drawn another transform), or `None` when none drew noise.
fn noise(draws: &[Draw], len: usize) -> Option<Vec<f32>> {
    draws.iter().any(|d| matches!(d, Draw::Noise(_))).then(|| {
        draws
            .iter()
            .flat_map(|d| match d {
                Draw::Noise(values) => values.clone(),
                _ => vec![0.0; len],
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_instance_has_its_own_number() {
        for (h, w) in [(28, 28), (32, 32), (9, 7)] {
            let instances = Instances::new(h, w);
            let all = instances.all();
            assert_eq!(all.len(), instances.count());
            for (k, draw) in all.iter().enumerate() {
                assert_eq!(instances.id(draw), Some(k), "{draw:?} on {h} x {w}");
            }
            let below = Draw::Scale((instances.scale_low - 1, instances.scale_low));
            assert_eq!(instances.id(&below), None);
        }
    }
}
