use candle_core::{DType, Device, Result, Tensor};
use gradmatch_data::Split;

/// `auto` (the first GPU when built with `cuda` and one is present, else the CPU), `cpu`, `cuda` or
/// `cuda:N`.
pub fn select_device(spec: &str) -> Result<Device> {
    match spec {
        "cpu" => Ok(Device::Cpu),
        "auto" => {
            if candle_core::utils::cuda_is_available() {
                Device::new_cuda(0).or(Ok(Device::Cpu))
            } else {
                Ok(Device::Cpu)
            }
        }
        "cuda" => Device::new_cuda(0),
        other => match other.strip_prefix("cuda:").and_then(|n| n.parse::<usize>().ok()) {
            Some(n) => Device::new_cuda(n),
            None => candle_core::bail!("unknown device `{other}`: expected auto, cpu, cuda or cuda:N"),
        },
    }
}

/// A split uploaded once to the device, with its per-class index on the host for sampling.
pub struct DeviceData<'a> {
    pub split: &'a Split,
    pub images: Tensor,
    pub labels: Tensor,
    pub shape: (usize, usize, usize),
}

impl<'a> DeviceData<'a> {
    pub fn new(split: &'a Split, shape: (usize, usize, usize), dtype: DType, device: &Device) -> Result<Self> {
        let (c, h, w) = shape;
        let images = Tensor::from_slice(&split.images, (split.len(), c, h, w), device)?.to_dtype(dtype)?;
        let labels = Tensor::from_slice(&split.labels, split.len(), device)?;
        Ok(DeviceData { split, images, labels, shape })
    }

    /// Images at `indices`, `(n, C, H, W)`.
    pub fn select(&self, indices: &[usize]) -> Result<Tensor> {
        let idx: Vec<u32> = indices.iter().map(|&i| i as u32).collect();
        self.images.index_select(&Tensor::from_vec(idx, indices.len(), self.images.device())?, 0)
    }
}
