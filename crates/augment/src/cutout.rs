use gradmatch_core::{Result, Tensor};

/// A rectangle of `size` rows and columns centred at `centre` (DSA: top-left = centre - size / 2);
/// the part inside the image is cut out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Square {
    pub centre: (usize, usize),
    pub size: (usize, usize),
}

impl Square {
    /// Whether pixel (i, j) lies in the square.
    fn covers(&self, i: usize, j: usize) -> bool {
        let inside = |k: usize, centre: usize, size: usize| {
            let start = centre as isize - (size / 2) as isize;
            (start..start + size as isize).contains(&(k as isize))
        };
        inside(i, self.centre.0, self.size.0) && inside(j, self.centre.1, self.size.1)
    }
}

/// Zeroes `square` in every channel of every image of `(n, c, h, w)` (DSA's `rand_cutout`).
pub fn cutout(x: &Tensor, square: Square) -> Result<Tensor> {
    let (h, w) = (x.dim(2)?, x.dim(3)?);
    let mask: Vec<f64> = (0..h * w).map(|p| if square.covers(p / w, p % w) { 0.0 } else { 1.0 }).collect();
    let mask = Tensor::from_vec(mask, (1, 1, h, w), x.device())?.to_dtype(x.dtype())?;
    x.broadcast_mul(&mask)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gradmatch_core::candle_core::Device;

    fn cut(square: Square) -> Vec<Vec<f64>> {
        let x = Tensor::ones((1, 1, 4, 4), gradmatch_core::candle_core::DType::F64, &Device::Cpu).unwrap();
        cutout(&x, square).unwrap().squeeze(0).unwrap().squeeze(0).unwrap().to_vec2().unwrap()
    }

    #[test]
    fn the_square_around_the_centre_is_zeroed() {
        let cut_2x2 = cut(Square { centre: (2, 1), size: (2, 2) });
        assert_eq!(cut_2x2, [[1.0; 4], [0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0], [1.0; 4]]);
        let clipped = cut(Square { centre: (0, 3), size: (3, 3) });
        assert_eq!(clipped, [[1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0], [1.0; 4], [1.0; 4]], "clipped at the border");
    }
}
