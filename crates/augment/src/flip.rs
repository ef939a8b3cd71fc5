use gradmatch_core::{Result, Tensor};

/// Reverses the columns of every image of `(n, c, h, w)` (DSA's `rand_flip`: `x.flip(3)`).
pub fn flip_horizontal(x: &Tensor) -> Result<Tensor> {
    let w = x.dim(3)?;
    let reversed: Vec<u32> = (0..w as u32).rev().collect();
    x.index_select(&Tensor::from_vec(reversed, w, x.device())?, 3)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gradmatch_core::candle_core::Device;

    #[test]
    fn columns_come_in_reverse_order() {
        let x = Tensor::arange(0f64, 16.0, &Device::Cpu).unwrap().reshape((1, 1, 4, 4)).unwrap();
        let flipped: Vec<Vec<f64>> = flip_horizontal(&x).unwrap().squeeze(0).unwrap().squeeze(0).unwrap().to_vec2().unwrap();
        assert_eq!(flipped, [[3.0, 2.0, 1.0, 0.0], [7.0, 6.0, 5.0, 4.0], [11.0, 10.0, 9.0, 8.0], [15.0, 14.0, 13.0, 12.0]]);
    }
}
