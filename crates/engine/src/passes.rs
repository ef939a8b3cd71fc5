//! How the matching step's passes through the network are sized: every tensor under 2^31 elements
//! (candle's CUDA kernels index with 32-bit integers), and what the device's memory holds, checked
//! before any work starts.

use crate::config::{CondenseConfig, RunContext};
use crate::device::available_bytes;
use candle_core::{DType, Result};
use gradmatch_models::{Footprint, ModelSpec, MAX_TENSOR_ELEMENTS};

const GIB: f64 = (1u64 << 30) as f64;

/// The share of free GPU memory a default-sized real pass may take: the prediction leaves out
/// cuBLAS's workspace and the allocator's fragmentation. The plan assumes one job per GPU.
const HEADROOM: f64 = 0.8;

/// Images a synthetic pass holds on the CPU: enough that its GEMMs stay efficient (ipc 1 keeps
/// every class in one pass), few enough that the second-order graph stays small (ConvNet-3 holds
/// about 4.3 M elements per image, and its backward as much again).
const CPU_SYNTHETIC_IMAGES: usize = 10;

/// The sizes of one matching step's passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PassSizes {
    /// Images one pass may hold (both sides; the synthetic side is split by classes to stay under it).
    pub max_images: usize,
    /// Classes whose real batches share one pass.
    pub classes_per_pass: usize,
    /// Classes whose synthetic images share one pass with its second-order graph (the image step
    /// back-propagates pass by pass, so only one pass's graph exists at a time).
    pub syn_classes_per_pass: usize,
    /// Classes whose synthetic images share one graph-free pass (the gradients the level receives).
    pub syn_classes_per_graph_free_pass: usize,
}

/// The network, images and device a condensation's passes run on.
pub struct PassTarget<'a> {
    pub model: &'a ModelSpec,
    /// (C, H, W) of an image.
    pub shape: (usize, usize, usize),
    pub classes: usize,
    /// Synthetic images per class that networks see (ipc times the parameterisation's images per
    /// stored image).
    pub syn_per_class: usize,
    pub dtype: DType,
    pub device: &'a candle_core::Device,
}

/// What the target's device offers.
#[derive(Debug, Clone, Copy)]
struct Memory {
    gpu: bool,
    /// Free bytes of the device.
    available: usize,
}

/// What a step needs of the device's memory, in bytes.
#[derive(Debug, Clone, Copy)]
struct Needs {
    /// The largest real pass.
    real_pass: usize,
    /// One synthetic pass's graph and the image step's backward through it, with the received
    /// gradients and their upstream gradients.
    synthetic: usize,
    /// One graph-free synthetic pass, with the real gradients it is matched against.
    synthetic_graph_free: usize,
}

impl PassSizes {
    /// The passes of `cfg` on the run's model, dataset and device, or an error naming the field to
    /// change when they cannot be made to fit.
    pub fn plan(run: &RunContext, cfg: &CondenseConfig, classes: usize, syn_per_class: usize) -> Result<PassSizes> {
        let target =
            PassTarget { model: run.model, shape: run.dataset.shape(), classes, syn_per_class, dtype: run.dtype, device: run.device };
        Self::predict(&target, cfg)
    }

    /// [`PassSizes::plan`] without the data: what a run of `cfg` on `target` would need, checked
    /// against the device's free memory now (a grid checks every cell so before its first one runs).
    pub fn predict(target: &PassTarget, cfg: &CondenseConfig) -> Result<PassSizes> {
        let footprint = Footprint::measure(target.model, target.shape, target.classes, target.device)?;
        let memory = Memory { gpu: !target.device.is_cpu(), available: available_bytes(target.device)? };
        Self::fit(&footprint, target, memory, cfg)
    }

    fn fit(footprint: &Footprint, target: &PassTarget, memory: Memory, cfg: &CondenseConfig) -> Result<PassSizes> {
        let (dtype, classes, available) = (target.dtype, target.classes, memory.available);
        let max_images = max_images(footprint, target.model, cfg)?;
        let one_pass = |field: &str, value: usize| -> Result<()> {
            if value > max_images {
                candle_core::bail!(
                    "{field} = {value}: one class's images must fit in one pass of at most {max_images} images \
                     ({}); lower {field}",
                    limit_reason(cfg)
                )
            }
            Ok(())
        };
        one_pass("batch_real", cfg.batch_real)?;
        let syn = target.syn_per_class;
        one_pass("ipc", syn)?;
        let by_index = (max_images / cfg.batch_real).clamp(1, classes);
        let syn_by_index = (max_images / syn).clamp(1, classes);
        let real_pass = |n: usize| footprint.untracked_bytes(n * cfg.batch_real, n, dtype);
        // Both synthetic passes hold a gradient per class beside them: the real ones while the
        // level's gradients are computed, the received ones and their upstream during the image step.
        let per_class_grads = footprint.untracked_bytes(0, classes, dtype);
        let syn_pass = |n: usize| footprint.tracked_bytes(n * syn, n, dtype) + per_class_grads;
        let syn_graph_free_pass = |n: usize| footprint.untracked_bytes(n * syn, n, dtype) + per_class_grads;
        let fits = |bytes: usize| bytes as f64 <= HEADROOM * available as f64;
        // The most classes, up to `most`, whose pass fits; one when none does (then refused below).
        let largest_fitting = |most: usize, bytes: &dyn Fn(usize) -> usize| (1..=most).rev().find(|&n| fits(bytes(n))).unwrap_or(1);
        let classes_per_pass = match cfg.classes_per_pass {
            Some(n) => n.clamp(1, classes).min(by_index),
            // On a GPU, as many classes as its free memory holds; one at a time on the CPU.
            None if !memory.gpu => 1,
            None => largest_fitting(by_index, &real_pass),
        };
        // On the CPU, passes of about ten images keep the GEMMs efficient and the graph small.
        let syn_most = if memory.gpu { syn_by_index } else { (CPU_SYNTHETIC_IMAGES / syn).clamp(1, syn_by_index) };
        let sizes = PassSizes {
            max_images,
            classes_per_pass,
            syn_classes_per_pass: largest_fitting(syn_most, &syn_pass),
            syn_classes_per_graph_free_pass: largest_fitting(syn_by_index, &syn_graph_free_pass),
        };
        let needs = Needs {
            real_pass: real_pass(classes_per_pass),
            synthetic: syn_pass(sizes.syn_classes_per_pass),
            synthetic_graph_free: syn_graph_free_pass(sizes.syn_classes_per_graph_free_pass),
        };
        check_memory(needs, available, &sizes, cfg, syn)?;
        Ok(sizes)
    }
}

/// `max_images_per_pass`, or the most the index range allows.
fn max_images(footprint: &Footprint, model: &ModelSpec, cfg: &CondenseConfig) -> Result<usize> {
    let by_index = footprint.max_images();
    match cfg.max_images_per_pass {
        None => Ok(by_index),
        Some(0) => candle_core::bail!("max_images_per_pass = 0: a pass needs at least one image"),
        Some(n) if n > by_index => candle_core::bail!(
            "max_images_per_pass = {n}: a pass of {} holds at most {by_index} images with every tensor under {MAX_TENSOR_ELEMENTS} \
             elements (its largest is {} elements per image); lower it or leave it out",
            model,
            footprint.largest_per_image
        ),
        Some(n) => Ok(n),
    }
}

fn limit_reason(cfg: &CondenseConfig) -> &'static str {
    if cfg.max_images_per_pass.is_some() {
        "max_images_per_pass"
    } else {
        "every tensor under 2^31 elements"
    }
}

/// Refuses a step whose passes are predicted not to fit, naming what to lower.
fn check_memory(needs: Needs, available: usize, sizes: &PassSizes, cfg: &CondenseConfig, syn_per_class: usize) -> Result<()> {
    let gib = |b: usize| b as f64 / GIB;
    let classes_per_pass = sizes.classes_per_pass;
    if needs.synthetic.max(needs.synthetic_graph_free) > available {
        candle_core::bail!(
            "the synthetic side's graph of {} class(es) x {} images needs about {:.1} GiB and the device has {:.1} GiB free: \
             lower ipc or use a smaller model",
            sizes.syn_classes_per_pass,
            syn_per_class,
            gib(needs.synthetic.max(needs.synthetic_graph_free)),
            gib(available)
        )
    }
    if needs.real_pass > available {
        let fix = if classes_per_pass > 1 { "lower classes_per_pass or batch_real" } else { "lower batch_real" };
        candle_core::bail!(
            "a real pass of {classes_per_pass} classes x {} images needs about {:.1} GiB and the device has {:.1} GiB free: {fix}",
            cfg.batch_real,
            gib(needs.real_pass),
            gib(available)
        )
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    const CONVNET_MNIST: Footprint = Footprint {
        largest_per_image: 16 * 16 * 9 * 128,
        saved_per_image: 500_000,
        graph_per_image: 5_000_000,
        graph_per_group: 1_000_000,
        params: 300_000,
    };

    fn fit(cfg: &CondenseConfig, gpu: bool, available: usize) -> Result<PassSizes> {
        let target = PassTarget {
            model: &ModelSpec::CONVNET,
            shape: (1, 28, 28),
            classes: 10,
            syn_per_class: cfg.ipc,
            dtype: DType::F32,
            device: &Device::Cpu,
        };
        PassSizes::fit(&CONVNET_MNIST, &target, Memory { gpu, available }, cfg)
    }

    #[test]
    fn index_range_caps_the_real_passes() {
        let cfg = CondenseConfig { classes_per_pass: Some(10), batch_real: 4000, ..Default::default() };
        let sizes = fit(&cfg, false, usize::MAX).unwrap();
        assert_eq!(sizes.max_images, CONVNET_MNIST.max_images());
        assert_eq!(sizes.classes_per_pass, CONVNET_MNIST.max_images() / 4000);
        let cfg = CondenseConfig { max_images_per_pass: Some(9), batch_real: 3, classes_per_pass: Some(10), ..Default::default() };
        assert_eq!(
            fit(&cfg, false, usize::MAX).unwrap(),
            PassSizes { max_images: 9, classes_per_pass: 3, syn_classes_per_pass: 9, syn_classes_per_graph_free_pass: 9 }
        );
    }

    #[test]
    fn refusals_name_the_field() {
        let err = |cfg: CondenseConfig, available| fit(&cfg, false, available).unwrap_err().to_string();
        assert!(err(CondenseConfig { batch_real: 100_000, ..Default::default() }, usize::MAX).contains("lower batch_real"));
        assert!(err(CondenseConfig { max_images_per_pass: Some(5), ipc: 10, batch_real: 4, ..Default::default() }, usize::MAX)
            .contains("lower ipc"));
        assert!(err(CondenseConfig { max_images_per_pass: Some(0), ..Default::default() }, usize::MAX).contains("at least one"));
        assert!(err(CondenseConfig { max_images_per_pass: Some(1 << 20), ..Default::default() }, usize::MAX).contains("at most"));
        let ipc_50 = CondenseConfig { ipc: 50, ..Default::default() };
        let one_class = CONVNET_MNIST.tracked_bytes(50, 1, DType::F32);
        assert!(err(ipc_50.clone(), one_class / 2).contains("synthetic side's graph of 1 class(es) x 50 images"));
        let real = CONVNET_MNIST.untracked_bytes(5 * 256, 5, DType::F32);
        let five = CondenseConfig { classes_per_pass: Some(5), ..Default::default() };
        assert!(err(five, real - 1).contains("lower classes_per_pass"));
    }

    /// On a GPU, left to itself, a real pass takes as many classes as fit both limits.
    #[test]
    fn gpu_default_fits_the_free_memory() {
        let cfg = CondenseConfig::default();
        assert_eq!(fit(&cfg, true, usize::MAX).unwrap().classes_per_pass, 10);
        let three = CONVNET_MNIST.untracked_bytes(3 * 256, 3, DType::F32);
        assert_eq!(fit(&cfg, true, (three as f64 / HEADROOM) as usize + 1).unwrap().classes_per_pass, 3);
        assert_eq!(fit(&cfg, true, three).unwrap().classes_per_pass, 2, "headroom for what the prediction leaves out");
        assert_eq!(fit(&cfg, false, usize::MAX).unwrap().classes_per_pass, 1);
    }

    /// The synthetic side's graph exists one pass at a time: on the CPU a pass of about ten images
    /// (every class at ipc 1, one at ipc 10) or fewer when memory is short, on a GPU as many classes
    /// as its free memory holds.
    #[test]
    fn synthetic_passes_bound_the_graph() {
        let at =
            |ipc: usize, gpu: bool, available: usize| fit(&CondenseConfig { ipc, batch_real: 16, ..Default::default() }, gpu, available);
        assert_eq!(at(1, false, usize::MAX).unwrap().syn_classes_per_pass, 10);
        assert_eq!(at(2, false, usize::MAX).unwrap().syn_classes_per_pass, 5);
        assert_eq!(at(10, false, usize::MAX).unwrap().syn_classes_per_pass, 1);
        assert_eq!(at(50, false, usize::MAX).unwrap().syn_classes_per_pass, 1);
        assert_eq!(at(10, true, usize::MAX).unwrap().syn_classes_per_pass, 10);
        let per_class_grads = CONVNET_MNIST.untracked_bytes(0, 10, DType::F32);
        let room_for = |bytes: usize| ((bytes + per_class_grads) as f64 / HEADROOM) as usize + 1;
        let four = CONVNET_MNIST.tracked_bytes(40, 4, DType::F32);
        assert_eq!(at(10, true, room_for(four)).unwrap().syn_classes_per_pass, 4);
        // The CPU's ten images give way to fewer when memory is short.
        assert_eq!(at(1, false, room_for(CONVNET_MNIST.tracked_bytes(4, 4, DType::F32))).unwrap().syn_classes_per_pass, 4);
        // The graph-free pass takes every class when it can, and as many as fit when not.
        assert_eq!(at(10, false, usize::MAX).unwrap().syn_classes_per_graph_free_pass, 10);
        // (Eight classes: with less, one class's graph and its backward would not fit at all.)
        let free_eight = CONVNET_MNIST.untracked_bytes(80, 8, DType::F32);
        assert!(CONVNET_MNIST.tracked_bytes(10, 1, DType::F32) <= free_eight);
        assert_eq!(at(10, false, room_for(free_eight)).unwrap().syn_classes_per_graph_free_pass, 8);
    }
}
