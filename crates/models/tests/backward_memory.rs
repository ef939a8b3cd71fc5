//! What the synthetic side's image step holds at its peak, measured by counting the heap: the tracked
//! pass's graph, then its backward. The memory plan (engine/src/passes.rs) sizes a synthetic pass by
//! [`Footprint::tracked_bytes`], which must hold both.

use candle_core::{DType, Device, Tensor, Var};
use gradmatch_models::{one_hot, Footprint, Mode, ModelSpec, Network};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// The system allocator, counting the bytes it holds and their peak.
struct Counting;

static HELD: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let held = HELD.fetch_add(layout.size(), Relaxed) + layout.size();
        PEAK.fetch_max(held, Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        HELD.fetch_sub(layout.size(), Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Bytes above `base` at the peak of `f`.
fn peak_above<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = HELD.load(Relaxed);
    PEAK.store(base, Relaxed);
    let out = f();
    (out, PEAK.load(Relaxed) - base)
}

#[test]
fn a_synthetic_pass_and_its_backward_fit_the_plan() {
    let (spec, input, classes, images) = (ModelSpec::CONVNET, (1, 28, 28), 10, 10);
    let footprint = Footprint::measure(&spec, input, classes, &Device::Cpu).unwrap();
    let net = Network::new(&spec, input, classes, 0, DType::F32, &Device::Cpu).unwrap();
    let x = Var::randn(0f32, 1.0, (images, 1, 28, 28), &Device::Cpu).unwrap();
    let targets = one_hot(&(0..images).map(|i| (i % classes) as u32).collect::<Vec<_>>(), classes, DType::F32, &Device::Cpu).unwrap();
    let base = HELD.load(Relaxed);
    let (distance, forward_peak) = peak_above(|| {
        let (_, grads) = net.loss_and_grads(x.as_tensor(), &targets, Mode::Train, 1).unwrap();
        // A distance's worth: the sum of every gradient's square.
        let sums: Vec<Tensor> = grads.iter().map(|g| g.sqr().unwrap().sum_all().unwrap()).collect();
        Tensor::stack(&sums, 0).unwrap().sum_all().unwrap()
    });
    let graph = HELD.load(Relaxed) - base;
    let (_, backward_peak) = peak_above(|| distance.backward().unwrap());
    let step_peak = forward_peak.max(graph + backward_peak);
    let (planned, graph_only) = (footprint.tracked_bytes(images, 1, DType::F32), footprint.graph_bytes(images, 1, DType::F32));
    eprintln!(
        "graph {graph} bytes (counted {graph_only}), backward's peak {backward_peak} above it, step peak {step_peak}, planned {planned}"
    );
    assert!(step_peak <= planned, "the plan holds the pass and its backward: {step_peak} > {planned}");
    assert!(step_peak > 3 * graph_only / 2, "the backward adds about the graph again: {step_peak} vs {graph_only}");
}
