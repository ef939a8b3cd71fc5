//! DSA's colour transforms (VICO-UoE/DatasetCondensation, utils.py: `rand_brightness`,
//! `rand_saturation`, `rand_contrast`), each with its random factor already drawn.

use gradmatch_core::{Result, Tensor};

/// `x + shift` (DSA: shift = (r - 0.5) * brightness).
pub fn brightness(x: &Tensor, shift: f64) -> Result<Tensor> {
    x.affine(1.0, shift)
}

/// `(x - m) * factor + m`, m the mean over the channels of each pixel (DSA: factor = r * saturation).
pub fn saturation(x: &Tensor, factor: f64) -> Result<Tensor> {
    around_mean(x, &x.mean_keepdim(1)?, factor)
}

/// `(x - m) * factor + m`, m the mean of each image over channels and pixels (DSA: factor = r + contrast).
pub fn contrast(x: &Tensor, factor: f64) -> Result<Tensor> {
    around_mean(x, &x.mean_keepdim((1, 2, 3))?, factor)
}

fn around_mean(x: &Tensor, mean: &Tensor, factor: f64) -> Result<Tensor> {
    x.broadcast_sub(mean)?.affine(factor, 0.0)?.broadcast_add(mean)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gradmatch_core::candle_core::Device;

    /// One image, two channels of two pixels: channel 0 = [1, 3], channel 1 = [3, 5].
    fn image() -> Tensor {
        Tensor::new(&[[[[1f64, 3.0]], [[3.0, 5.0]]]], &Device::Cpu).unwrap()
    }

    fn values(t: Tensor) -> Vec<f64> {
        t.flatten_all().unwrap().to_vec1().unwrap()
    }

    #[test]
    fn brightness_shifts_every_value() {
        assert_eq!(values(brightness(&image(), 0.5).unwrap()), [1.5, 3.5, 3.5, 5.5]);
    }

    #[test]
    fn saturation_scales_around_the_channel_mean_of_each_pixel() {
        // Pixel means over channels: [2, 4].
        assert_eq!(values(saturation(&image(), 2.0).unwrap()), [0.0, 2.0, 4.0, 6.0]);
        assert_eq!(values(saturation(&image(), 0.0).unwrap()), [2.0, 4.0, 2.0, 4.0]);
    }

    #[test]
    fn contrast_scales_around_the_image_mean() {
        // Image mean: 3.
        assert_eq!(values(contrast(&image(), 0.5).unwrap()), [2.0, 3.0, 3.0, 4.0]);
    }
}
