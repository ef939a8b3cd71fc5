use candle_core::{Result, Tensor};

/// How far the synthetic-set gradients are from the real-set gradients.
///
/// `real` and `syn` hold one gradient tensor per network parameter, in the network's parameter order
/// (shapes output-first). `real` is a constant; `syn` carries the autodiff graph back to the synthetic
/// images, so an implementation must use differentiable tensor operations only and return a scalar.
pub trait Distance: Send + Sync {
    fn distance(&self, real: &[Tensor], syn: &[Tensor]) -> Result<Tensor>;
}

/// The per-row view of a gradient tensor used by the paper's distances: one row per output unit.
/// 4-D (out, in, h, w) -> (out, in*h*w); 3-D (c, h, w) -> (c, h*w); 2-D as is; 1-D -> `None`
/// (biases and norm parameters contribute nothing).
pub fn as_rows(t: &Tensor) -> Result<Option<Tensor>> {
    match t.rank() {
        0 | 1 => Ok(None),
        2 => Ok(Some(t.clone())),
        _ => Ok(Some(t.flatten_from(1)?)),
    }
}

/// `max(x, floor)` element-wise, differentiable as `clamp`. The floor is filled on `x`'s device:
/// `clamp(floor, ..)` would upload a host scalar to a GPU at every call.
pub fn at_least(x: &Tensor, floor: f64) -> Result<Tensor> {
    x.maximum(&x.zeros_like()?.affine(1.0, floor)?)
}

/// Every gradient tensor flattened and concatenated, in order (1-D ones included): one vector, for
/// distances over the whole gradient.
pub fn flatten_into_one(tensors: &[Tensor]) -> Result<Tensor> {
    Tensor::cat(&tensors.iter().map(|t| t.flatten_all()).collect::<Result<Vec<_>>>()?, 0)
}

/// Sums `per_tensor(real_rows, syn_rows)` over every parameter tensor that has a row view.
/// The building block of every per-row distance.
pub fn sum_over_tensors(real: &[Tensor], syn: &[Tensor], per_tensor: impl Fn(&Tensor, &Tensor) -> Result<Tensor>) -> Result<Tensor> {
    if real.len() != syn.len() {
        candle_core::bail!("distance: {} real gradient tensors but {} synthetic ones", real.len(), syn.len())
    }
    let first = syn.first().ok_or_else(|| candle_core::Error::Msg("distance: no gradient tensors".into()))?;
    let mut total = Tensor::zeros((), first.dtype(), first.device())?;
    for (r, s) in real.iter().zip(syn) {
        if r.dims() != s.dims() {
            candle_core::bail!("distance: shape mismatch {:?} vs {:?}", r.dims(), s.dims())
        }
        if let (Some(r), Some(s)) = (as_rows(r)?, as_rows(s)?) {
            total = (total + per_tensor(&r, &s)?)?;
        }
    }
    Ok(total)
}
