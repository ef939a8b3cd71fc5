use gradmatch_core::{Result, Tensor};

/// Feature vectors as rows of f64 (distances are summed in f64: ties and near-ties decide picks).
pub struct Rows {
    values: Vec<f64>,
    width: usize,
}

impl Rows {
    /// The rows of a `(n, d)` tensor.
    pub fn of(features: &Tensor) -> Result<Rows> {
        let (_, width) = features.dims2()?;
        let values = gradmatch_core::host::vec1::<f64>(&features.to_dtype(gradmatch_core::candle_core::DType::F64)?.flatten_all()?)?;
        Ok(Rows { values, width })
    }

    pub fn from_vec(values: Vec<f64>, width: usize) -> Rows {
        assert!(width > 0 && values.len().is_multiple_of(width), "{} values do not make rows of {width}", values.len());
        Rows { values, width }
    }

    pub fn len(&self) -> usize {
        self.values.len() / self.width
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    pub fn row(&self, i: usize) -> &[f64] {
        &self.values[i * self.width..(i + 1) * self.width]
    }

    /// The mean row.
    pub fn mean(&self) -> Vec<f64> {
        let mut mean = vec![0.0; self.width];
        for i in 0..self.len() {
            mean.iter_mut().zip(self.row(i)).for_each(|(m, x)| *m += x);
        }
        mean.iter_mut().for_each(|m| *m /= self.len().max(1) as f64);
        mean
    }

    /// The row nearest `point` (the first of equals).
    pub fn nearest(&self, point: &[f64]) -> usize {
        (0..self.len()).min_by(|&a, &b| squared_distance(self.row(a), point).total_cmp(&squared_distance(self.row(b), point))).unwrap_or(0)
    }
}

pub fn squared_distance(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}
