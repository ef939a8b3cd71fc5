//! What one pass of a network holds, per image: measured once on the CPU on one and on two images,
//! so that a pass can be sized (split, or refused with a clear error) before it is built on a device.

use crate::layers::{fused, Forward, Mode};
use crate::{one_hot, ModelSpec, Network};
use candle_core::{CpuStorage, DType, Device, Result, Storage, Tensor, Var};
use std::collections::HashMap;

/// Candle's CUDA kernels index elements with 32-bit integers (and cuBLAS takes `int` sizes): every
/// tensor of a pass must hold fewer elements than this.
pub const MAX_TENSOR_ELEMENTS: usize = 1 << 31;

/// Elements a pass of the network holds, per image (and per group of the per-group gradients).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Footprint {
    /// The largest single tensor of a pass (im2col's patches, for a convolutional network).
    pub largest_per_image: usize,
    /// What the explicit backward keeps from the forward (its tape).
    pub saved_per_image: usize,
    /// The autodiff graph of a tracked pass (the synthetic side): per image, and per group.
    pub graph_per_image: usize,
    pub graph_per_group: usize,
    /// Parameters of the network: each group's gradient is this large.
    pub params: usize,
}

/// The peak of a tracked pass with its backward, over its graph's counted elements. Counted on the
/// heap for ConvNet-3 on MNIST, 10 images (tests/backward_memory.rs): the graph 1.06x the count (the
/// loss's own tensors), the backward's transients 1.05x the graph on top; 2.5 leaves a margin for
/// other models and the GPU allocator's rounding.
const TRACKED_PEAK_OVER_GRAPH: f64 = 2.5;

/// What one probe pass of `n` images measured.
struct Probe {
    largest: usize,
    saved: usize,
    graph: usize,
}

impl Footprint {
    /// Measures `spec` on inputs of `input` = (C, H, W) with `classes` outputs as `device` runs it:
    /// the probe runs in f32 on the CPU, with the layers' CUDA paths (candle compositions) for a GPU.
    pub fn measure(spec: &ModelSpec, input: (usize, usize, usize), classes: usize, device: &Device) -> Result<Footprint> {
        if device.is_cpu() {
            Self::measure_here(spec, input, classes)
        } else {
            fused::compositions_only(|| Self::measure_here(spec, input, classes))
        }
    }

    fn measure_here(spec: &ModelSpec, input: (usize, usize, usize), classes: usize) -> Result<Footprint> {
        let net = Network::new(spec, input, classes, 0, DType::F32, &Device::Cpu)?;
        let (one, two) = (probe(&net, input, classes, 1)?, probe(&net, input, classes, 2)?);
        let graph_per_image = two.graph.saturating_sub(one.graph);
        Ok(Footprint {
            largest_per_image: two.largest.saturating_sub(one.largest).max(1),
            saved_per_image: two.saved.saturating_sub(one.saved),
            graph_per_image,
            graph_per_group: one.graph.saturating_sub(graph_per_image),
            params: net.num_params(),
        })
    }

    /// The most images one pass may hold with every tensor under [`MAX_TENSOR_ELEMENTS`].
    pub fn max_images(&self) -> usize {
        (MAX_TENSOR_ELEMENTS - 1) / self.largest_per_image
    }

    /// Bytes at the peak of a graph-free pass of `images` in `groups` groups (the real side): the
    /// tape, four patch-sized transients (on a GPU im2col stacks its shifted copies, then the
    /// backward rebuilds the patches beside their gradient and col2im's sums) and the per-group
    /// gradients.
    pub fn untracked_bytes(&self, images: usize, groups: usize, dtype: DType) -> usize {
        let per_image = self.saved_per_image + 4 * self.largest_per_image;
        (images * per_image + 2 * groups * self.params) * dtype.size_in_bytes()
    }

    /// Bytes of the graph of a tracked pass of `images` in `groups` groups (the synthetic side),
    /// which lives until the image step's backward.
    pub fn graph_bytes(&self, images: usize, groups: usize, dtype: DType) -> usize {
        (images * self.graph_per_image + groups * self.graph_per_group) * dtype.size_in_bytes()
    }

    /// Bytes at the peak of a tracked pass and the image step's backward through it: the graph, and
    /// about as much again while the backward runs (tests/backward_memory.rs counts the heap).
    pub fn tracked_bytes(&self, images: usize, groups: usize, dtype: DType) -> usize {
        (self.graph_bytes(images, groups, dtype) as f64 * TRACKED_PEAK_OVER_GRAPH) as usize
    }
}

/// One pass of `n` zero images (one group) as the synthetic side runs it: the largest tensor, the
/// tape, and the elements of the autodiff graph from the images to the parameter gradients (each
/// allocation once: views and broadcasts share their source's).
fn probe(net: &Network, (c, h, w): (usize, usize, usize), classes: usize, n: usize) -> Result<Probe> {
    let x = Var::zeros((n, c, h, w), DType::F32, &Device::Cpu)?;
    let mut forward = Forward::recording(Mode::Train);
    net.forward_with(x.as_tensor(), &mut forward)?;
    let saved = forward.tape.as_ref().map_or(0, |t| t.elements());
    let targets = one_hot(&vec![0; n], classes, DType::F32, &Device::Cpu)?;
    let (_, grads) = net.loss_and_grads(x.as_tensor(), &targets, Mode::Train, 1)?;
    let mut allocations = HashMap::new();
    for node in grads.iter().flat_map(|g| g.sorted_nodes()) {
        let (key, elements) = allocation(node);
        allocations.insert(key, elements);
    }
    Ok(Probe { largest: forward.largest, saved, graph: allocations.values().sum() })
}

/// The identity and element count of the allocation behind `t` (on the CPU).
fn allocation(t: &Tensor) -> (usize, usize) {
    let (storage, _) = t.storage_and_layout();
    let key = &*storage as *const Storage as usize;
    let elements = match &*storage {
        Storage::Cpu(CpuStorage::F32(v)) => v.len(),
        _ => t.elem_count(),
    };
    (key, elements)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ConvNet-3 on MNIST: the largest tensor is layer 2's patches, 16 x 16 positions of 3 x 3 x 128
    /// values per image; the graph grows with the images and is far larger than the tape.
    #[test]
    fn convnet_on_mnist() {
        let f = Footprint::measure(&ModelSpec::CONVNET, (1, 28, 28), 10, &Device::Cpu).unwrap();
        assert_eq!(f.largest_per_image, 16 * 16 * 9 * 128);
        assert_eq!(f.max_images(), (MAX_TENSOR_ELEMENTS - 1) / (16 * 16 * 9 * 128));
        assert!(f.saved_per_image > 32 * 32 * 128, "{f:?}");
        assert!(f.graph_per_image > 3 * f.largest_per_image, "{f:?}");
        assert_eq!(f.params, Network::new(&ModelSpec::CONVNET, (1, 28, 28), 10, 0, DType::F32, &Device::Cpu).unwrap().num_params());
        // CIFAR-100's 256 x 100 real images in one pass would overflow 32-bit indices.
        let cifar = Footprint::measure(&ModelSpec::CONVNET, (3, 32, 32), 100, &Device::Cpu).unwrap();
        assert!(cifar.max_images() < 25_600 && cifar.max_images() > 256, "{cifar:?}");
    }

    /// On the CPU im2col and col2im are graph operations: the synthetic side's graph keeps their
    /// inputs and outputs only, not every shifted copy of the compositions a GPU runs (ConvNet-3 on
    /// MNIST: 4.3 against 6.3 million elements per image).
    #[test]
    fn the_cpu_graph_is_smaller_than_the_compositions() {
        let cpu = Footprint::measure(&ModelSpec::CONVNET, (1, 28, 28), 10, &Device::Cpu).unwrap();
        let gpu = fused::compositions_only(|| Footprint::measure(&ModelSpec::CONVNET, (1, 28, 28), 10, &Device::Cpu)).unwrap();
        assert_eq!((cpu.largest_per_image, cpu.saved_per_image, cpu.params), (gpu.largest_per_image, gpu.saved_per_image, gpu.params));
        assert!(4 * cpu.graph_per_image < 3 * gpu.graph_per_image, "CPU {cpu:?}, compositions {gpu:?}");
    }
}
