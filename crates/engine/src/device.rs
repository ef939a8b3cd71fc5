use candle_core::{DType, Device, Result, Tensor};
use gradmatch_data::Split;

/// `auto` (the first GPU when built with `cuda` and one is present, else the CPU), `cpu`, `cuda` or
/// `cuda:N`. GPUs are opened by [`open_cuda`].
pub fn select_device(spec: &str) -> Result<Device> {
    match spec {
        "cpu" => Ok(Device::Cpu),
        "auto" => {
            if candle_core::utils::cuda_is_available() {
                open_cuda(0).or(Ok(Device::Cpu))
            } else {
                Ok(Device::Cpu)
            }
        }
        "cuda" => open_cuda(0),
        other => match other.strip_prefix("cuda:").and_then(|n| n.parse::<usize>().ok()) {
            Some(n) => open_cuda(n),
            None => candle_core::bail!("unknown device `{other}`: expected auto, cpu, cuda or cuda:N"),
        },
    }
}

/// GPU `ordinal` with a stream of its own, and without cudarc's cross-stream event tracking.
///
/// Every operation on the returned device, from whichever thread, goes to that one stream, so the
/// ordering the events would enforce is already guaranteed; without them each kernel launch saves
/// creating and recording CUDA events (candle's `disable_event_tracking`: safe when tensors never
/// cross streams, which one stream per device makes true).
pub fn open_cuda(ordinal: usize) -> Result<Device> {
    if !cfg!(feature = "cuda") {
        candle_core::bail!(
            "this gradmatch was built without CUDA: rebuild it with `cargo build --release --features cuda` (needs the CUDA \
             toolkit; `just gpu-pack` builds a binary for a GPU machine), or run with --device cpu"
        )
    }
    let device = Device::new_cuda_with_stream(ordinal)?;
    #[cfg(feature = "cuda")]
    if let Device::Cuda(cuda) = &device {
        // SAFETY: one stream per device (above); nothing of this device has been created yet.
        unsafe { cuda.disable_event_tracking() };
    }
    Ok(device)
}

/// Lets cuBLAS run f32 GEMMs with TF32 tensor cores (as PyTorch's cuDNN convolutions do by
/// default). Process-wide, as candle's setting is; no effect on the CPU.
pub fn set_tf32(on: bool) {
    candle_core::cuda::set_gemm_reduced_precision_f32(on);
}

/// Bytes the device can still give: free GPU memory, or the host's available memory on the CPU.
pub fn available_bytes(device: &Device) -> Result<usize> {
    match device {
        #[cfg(feature = "cuda")]
        Device::Cuda(cuda) => {
            let (free, _total) =
                cuda.cuda_stream().context().mem_get_info().map_err(|e| candle_core::Error::Msg(format!("querying GPU memory: {e:?}")))?;
            Ok(free)
        }
        _ => host_available_bytes(),
    }
}

/// `MemAvailable` of `/proc/meminfo` (Linux); unbounded where it cannot be read.
fn host_available_bytes() -> Result<usize> {
    let Ok(meminfo) = std::fs::read_to_string("/proc/meminfo") else { return Ok(usize::MAX) };
    let kb = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<usize>().ok());
    Ok(kb.map_or(usize::MAX, |kb| kb.saturating_mul(1024)))
}

/// A split as a device reads it, with its per-class index on the host for sampling. A GPU gets the
/// whole split uploaded once; on the CPU the split's own values are read, so the host holds the
/// images once (MNIST's training set is 188 MB).
pub struct DeviceData<'a> {
    pub split: &'a Split,
    /// The uploaded images (on a GPU only).
    uploaded: Option<Tensor>,
    pub labels: Tensor,
    pub shape: (usize, usize, usize),
    dtype: DType,
}

impl<'a> DeviceData<'a> {
    pub fn new(split: &'a Split, shape: (usize, usize, usize), dtype: DType, device: &Device) -> Result<Self> {
        let (c, h, w) = shape;
        let uploaded = match device {
            Device::Cpu => None,
            _ => Some(Tensor::from_slice(&split.images, (split.len(), c, h, w), device)?.to_dtype(dtype)?),
        };
        let labels = Tensor::from_slice(&split.labels, split.len(), device)?;
        Ok(DeviceData { split, uploaded, labels, shape, dtype })
    }

    /// Images at `indices`, `(n, C, H, W)`.
    pub fn select(&self, indices: &[usize]) -> Result<Tensor> {
        match &self.uploaded {
            Some(images) => {
                let idx: Vec<u32> = indices.iter().map(|&i| i as u32).collect();
                images.index_select(&Tensor::from_vec(idx, indices.len(), images.device())?, 0)
            }
            None => self.host_tensor(self.split.gather(indices), indices.len()),
        }
    }

    /// Images `start..start + len`, `(len, C, H, W)`.
    pub fn rows(&self, start: usize, len: usize) -> Result<Tensor> {
        if start + len > self.split.len() {
            candle_core::bail!("rows {start}..{} of a split of {} images", start + len, self.split.len())
        }
        match &self.uploaded {
            Some(images) => images.narrow(0, start, len),
            None => {
                let image_len = self.shape.0 * self.shape.1 * self.shape.2;
                self.host_tensor(self.split.images[start * image_len..(start + len) * image_len].to_vec(), len)
            }
        }
    }

    fn host_tensor(&self, values: Vec<f32>, n: usize) -> Result<Tensor> {
        let (c, h, w) = self.shape;
        Tensor::from_vec(values, (n, c, h, w), &Device::Cpu)?.to_dtype(self.dtype)
    }
}
