use gradmatch_core::{Result, Tensor};

/// Translates every image of `(n, c, h, w)`: pixel (i, j) shows pixel (i + rows, j + cols), zero
/// where that falls outside (DSA's `rand_crop`: pad, then index with the shifted grid).
pub fn translate(x: &Tensor, rows: isize, cols: isize) -> Result<Tensor> {
    shift_dim(&shift_dim(x, 2, rows)?, 3, cols)
}

/// Along `dim`: out[k] = x[k + by], zero outside.
fn shift_dim(x: &Tensor, dim: usize, by: isize) -> Result<Tensor> {
    let (len, pad) = (x.dim(dim)?, by.unsigned_abs());
    if pad == 0 {
        return Ok(x.clone());
    }
    // padded[k] = x[k - pad], so out[k] = padded[k + pad + by].
    x.pad_with_zeros(dim, pad, pad)?.narrow(dim, (pad as isize + by) as usize, len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gradmatch_core::candle_core::Device;

    fn shifted(rows: isize, cols: isize) -> Vec<Vec<f64>> {
        let x = Tensor::arange(1f64, 17.0, &Device::Cpu).unwrap().reshape((1, 1, 4, 4)).unwrap();
        translate(&x, rows, cols).unwrap().squeeze(0).unwrap().squeeze(0).unwrap().to_vec2().unwrap()
    }

    #[test]
    fn shifts_fill_with_zeros() {
        assert_eq!(shifted(1, -2), [[0.0, 0.0, 5.0, 6.0], [0.0, 0.0, 9.0, 10.0], [0.0, 0.0, 13.0, 14.0], [0.0; 4]]);
        assert_eq!(shifted(0, 0), [[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0], [9.0, 10.0, 11.0, 12.0], [13.0, 14.0, 15.0, 16.0]]);
        assert_eq!(shifted(4, 0), [[0.0; 4]; 4], "a shift by the whole side leaves nothing");
    }
}
