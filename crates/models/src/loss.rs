use candle_core::{DType, Device, Result, Tensor, D};
// Stable (max-shifted) compositions of candle's own operations: differentiable again, on every device.
use candle_nn::ops::{log_softmax, softmax};

/// One-hot targets `(n, classes)`: the cross-entropy below needs them instead of `gather`, whose
/// backward is not differentiable again.
pub fn one_hot(labels: &[u32], classes: usize, dtype: DType, device: &Device) -> Result<Tensor> {
    let mut v = vec![0f32; labels.len() * classes];
    for (i, &l) in labels.iter().enumerate() {
        v[i * classes + l as usize] = 1.0;
    }
    Tensor::from_vec(v, (labels.len(), classes), device)?.to_dtype(dtype)
}

/// Mean cross-entropy of `logits (n, classes)` against one-hot `targets`, from differentiable ops.
pub fn cross_entropy(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let n = logits.dim(0)? as f64;
    (log_softmax(logits, D::Minus1)? * targets)?.sum_all()?.affine(-1.0 / n, 0.0)
}

/// The mean cross-entropy of each of `groups` equal, contiguous groups of rows: `(groups)`.
pub fn group_cross_entropy(logits: &Tensor, targets: &Tensor, groups: usize) -> Result<Tensor> {
    let (n, classes) = logits.dims2()?;
    let per_row = (log_softmax(logits, D::Minus1)? * targets)?.reshape((groups, (), classes))?;
    per_row.sum(2)?.sum(1)?.affine(-(groups as f64) / n as f64, 0.0)
}

/// Gradient of the mean cross-entropy over each group of `group_size` rows with respect to the
/// logits: `(softmax(logits) - targets) / group_size`, differentiable again.
pub fn cross_entropy_grad(logits: &Tensor, targets: &Tensor, group_size: usize) -> Result<Tensor> {
    (softmax(logits, D::Minus1)? - targets)? / group_size as f64
}

/// For `groups` equal, contiguous blocks of the rows of `logits` (an ensemble's networks on the
/// same `labels`), how many rows' arg-max equals the label: `(groups)` u32, left on the device.
pub fn correct_counts(logits: &Tensor, labels: &Tensor, groups: usize) -> Result<Tensor> {
    let predicted = logits.argmax(D::Minus1)?;
    let labels = labels.to_dtype(predicted.dtype())?.repeat(groups)?;
    predicted.eq(&labels)?.to_dtype(DType::U32)?.reshape((groups, ()))?.sum(1)
}
