use gradmatch_core::candle_core::{DType, Device, IndexOp};
use gradmatch_core::{OptionError, Parameterisation, Plugin, Result, Tensor};

/// IDC's multi-formation (Kim et al., ICML 2022, `decode_zoom`): each stored image of side h is cut
/// into `factor x factor` crops of side ceil(h / factor) (the image padded with 0.5 where h is not a
/// multiple of `factor`), each crop upsampled bilinearly to h x w: `factor^2` images per stored one.
#[derive(Debug, Clone, Copy, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MultiFormation {
    pub factor: usize,
}

impl Default for MultiFormation {
    fn default() -> Self {
        MultiFormation { factor: 2 }
    }
}

/// The value IDC pads a stored image with before cutting it.
const PAD: f64 = 0.5;

impl MultiFormation {
    /// The crops' side for a side of `size`, refused when the crops would be empty.
    fn crop(&self, size: usize) -> Result<usize> {
        if self.factor > size {
            gradmatch_core::candle_core::bail!("multi-formation: factor {} is more than the images' side {size}", self.factor)
        }
        Ok(size.div_ceil(self.factor))
    }
}

impl Parameterisation for MultiFormation {
    fn images_per_stored(&self) -> usize {
        self.factor * self.factor
    }

    fn decode(&self, stored: &Tensor) -> Result<Tensor> {
        let (n, c, h, w) = stored.dims4()?;
        let (crop_h, crop_w) = (self.crop(h)?, self.crop(w)?);
        let padded = pad(&pad(stored, 2, crop_h * self.factor - h)?, 3, crop_w * self.factor - w)?;
        let mut crops = Vec::with_capacity(self.images_per_stored());
        for i in 0..self.factor {
            for j in 0..self.factor {
                crops.push(padded.narrow(2, i * crop_h, crop_h)?.narrow(3, j * crop_w, crop_w)?);
            }
        }
        let crops = Tensor::cat(&crops, 0)?.reshape((self.images_per_stored() * n * c, crop_h, crop_w))?;
        let rows = bilinear(crop_h, h, stored.dtype(), stored.device())?;
        let columns = bilinear(crop_w, w, stored.dtype(), stored.device())?.t()?;
        rows.broadcast_matmul(&crops.broadcast_matmul(&columns)?)?.reshape((self.images_per_stored() * n, c, h, w))
    }

    /// IDC's `mix` initialisation: crop `k` of stored image `i` is real image `k * n + i` resized
    /// (nearest) to the crop, the crops' sides h / factor, one more for the first h % factor of them.
    fn encode(&self, real: &Tensor) -> Result<Tensor> {
        let (total, _, h, w) = real.dims4()?;
        let n = total / self.images_per_stored();
        let (heights, widths) = (sides(h, self.factor), sides(w, self.factor));
        let mut rows = Vec::with_capacity(self.factor);
        for (i, &crop_h) in heights.iter().enumerate() {
            let mut row = Vec::with_capacity(self.factor);
            for (j, &crop_w) in widths.iter().enumerate() {
                let k = i * self.factor + j;
                row.push(nearest(&real.i(k * n..(k + 1) * n)?, crop_h, crop_w)?);
            }
            rows.push(Tensor::cat(&row, 3)?);
        }
        Tensor::cat(&rows, 2)
    }
}

/// `x` with `amount` rows (dim 2) or columns (dim 3) of [`PAD`] appended.
fn pad(x: &Tensor, dim: usize, amount: usize) -> Result<Tensor> {
    if amount == 0 {
        return Ok(x.clone());
    }
    let mut shape = x.dims().to_vec();
    shape[dim] = amount;
    Tensor::cat(&[x.clone(), (Tensor::ones(shape, x.dtype(), x.device())? * PAD)?], dim)
}

/// The `(to, from)` matrix of PyTorch's bilinear resizing of a side (`align_corners = False`): each
/// output position reads the two inputs around `(out + 0.5) * from / to - 0.5`, clamped at 0.
fn bilinear(from: usize, to: usize, dtype: DType, device: &Device) -> Result<Tensor> {
    let scale = from as f64 / to as f64;
    let mut weights = vec![0f64; to * from];
    for out in 0..to {
        let source = ((out as f64 + 0.5) * scale - 0.5).max(0.0);
        let low = (source.floor() as usize).min(from - 1);
        let high = (low + 1).min(from - 1);
        let frac = source - low as f64;
        weights[out * from + low] += 1.0 - frac;
        weights[out * from + high] += frac;
    }
    Tensor::from_vec(weights, (to, from), device)?.to_dtype(dtype)
}

/// PyTorch's nearest resizing (`F.interpolate`'s default mode) of `x` to `h x w`.
fn nearest(x: &Tensor, h: usize, w: usize) -> Result<Tensor> {
    let (_, _, from_h, from_w) = x.dims4()?;
    let index = |from: usize, to: usize| -> Result<Tensor> {
        let picked: Vec<u32> = (0..to).map(|o| ((o * from) / to).min(from - 1) as u32).collect();
        Tensor::from_vec(picked, to, x.device())
    };
    x.index_select(&index(from_h, h)?, 2)?.index_select(&index(from_w, w)?, 3)
}

/// The sides of `factor` crops of a side `size` in IDC's initialisation.
fn sides(size: usize, factor: usize) -> Vec<usize> {
    (0..factor).map(|i| size / factor + usize::from(i < size % factor)).collect()
}

impl Plugin for MultiFormation {
    const NAME: &'static str = "multi-formation";
    const SUMMARY: &'static str = "factor x factor smaller images in each stored one, upsampled bilinearly (IDC)";
    type Options = Self;
    fn from_options(o: Self) -> std::result::Result<Self, OptionError> {
        OptionError::at_least_one("factor", o.factor)?;
        Ok(o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(shape: (usize, usize, usize, usize)) -> Tensor {
        let n = shape.0 * shape.1 * shape.2 * shape.3;
        Tensor::arange(0u32, n as u32, &Device::Cpu).unwrap().to_dtype(DType::F64).unwrap().reshape(shape).unwrap()
    }

    #[test]
    fn the_upsampling_is_candles_bilinear_resize() {
        for (side, factor) in [(28usize, 2usize), (32, 2), (28, 3), (32, 4), (7, 7)] {
            let crop = side.div_ceil(factor);
            let x = (ramp((2, 3, crop, crop)) / 17.0).unwrap().sin().unwrap();
            let ours = bilinear(crop, side, DType::F64, &Device::Cpu).unwrap();
            let ours = ours.broadcast_matmul(&x.broadcast_matmul(&ours.t().unwrap()).unwrap()).unwrap();
            let candle = x.upsample_bilinear2d(side, side, false).unwrap();
            let error = (ours - candle).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f64>().unwrap();
            assert!(error < 1e-12, "side {side}, factor {factor}: {error}");
        }
    }

    #[test]
    fn decoding_cuts_pads_and_orders_crops_as_idc() {
        let mf = MultiFormation { factor: 3 };
        let stored = ramp((2, 1, 7, 7));
        let decoded = mf.decode(&stored).unwrap();
        assert_eq!(decoded.dims(), [18, 1, 7, 7]);
        // Crop k of image i is row k * n + i; the last crops hold the padding (side 3, 9 > 7).
        let crop = |k: usize, i: usize| {
            let (r, c) = (k / 3 * 3, k % 3 * 3);
            let padded = pad(&pad(&stored, 2, 2).unwrap(), 3, 2).unwrap();
            padded.i(i).unwrap().narrow(1, r, 3).unwrap().narrow(2, c, 3).unwrap().unsqueeze(0).unwrap()
        };
        for (k, i) in [(0, 0), (4, 1), (8, 1)] {
            let expected = crop(k, i).upsample_bilinear2d(7, 7, false).unwrap();
            let error = (decoded.i(k * 2 + i).unwrap().unsqueeze(0).unwrap() - expected).unwrap().abs().unwrap();
            assert!(error.max_all().unwrap().to_scalar::<f64>().unwrap() < 1e-12, "crop {k} of image {i}");
        }
        let corner = decoded.i((17, 0, 6, 6)).unwrap().to_scalar::<f64>().unwrap();
        assert!((corner - PAD).abs() < 1e-12, "the bottom-right crop ends in padding: {corner}");
    }

    #[test]
    fn encoding_tiles_real_images_into_the_crops() {
        let mf = MultiFormation::default();
        let real = ramp((8, 1, 28, 28));
        let stored = mf.encode(&real).unwrap();
        assert_eq!(stored.dims(), [2, 1, 28, 28]);
        // Stored image 1's top-right crop is real image 1 * 2 + 1 = 3, every second pixel.
        let crop = stored.i((1, 0, 0..14, 14..28)).unwrap();
        let expected = real.i((3, 0)).unwrap();
        let every_second = |t: Tensor| {
            let idx = Tensor::from_vec((0..14).map(|i| 2 * i as u32).collect::<Vec<_>>(), 14, &Device::Cpu).unwrap();
            t.index_select(&idx, 0).unwrap().index_select(&idx, 1).unwrap()
        };
        assert_eq!(crop.to_vec2::<f64>().unwrap(), every_second(expected).to_vec2::<f64>().unwrap());
        assert_eq!(sides(28, 3), [10, 9, 9]);
    }

    #[test]
    fn options_are_checked() {
        assert!(MultiFormation::from_options(MultiFormation { factor: 0 }).is_err());
        assert!(MultiFormation { factor: 9 }.decode(&ramp((1, 1, 8, 8))).is_err());
    }
}
