//! A block of the paper's ConvNet after the first in one kernel per block of samples: Winograd's
//! 3 x 3 convolution, then, per sample, instance norm, its affine, ReLU and average pooling, with the
//! convolution's map in the core's scratch (at most 0.5 MB) instead of a map of the whole batch
//! written once and read twice (33.5 MB for 256 images on 16 x 16 x 128). The same per-sample
//! arithmetic as the separate kernels, so the same values bit for bit.

use super::block::{Block as Maps, BlockBuffers};
use super::first_block::BlockOutput;
use super::winograd::{convolve_block, Operands, Tiling};
use super::{apply, Float, Kernel};
use candle_core::{Result, Shape, Tensor};
use rayon::prelude::*;

/// Inputs: `x (n, h, w, c)`, the transformed weight `(members, 16, c, out)`, the bias
/// `(members, out)` and the norm's affine `[weight; bias]` `(members, 2 out)`. Outputs: the pooled
/// map, the statistics `(n, 2, out)` and, when `record`, `xhat` and `y` `(n, ho, wo, out)`.
struct WinogradBlock {
    tiling: Tiling,
    pool: usize,
    record: bool,
}

impl WinogradBlock {
    fn maps(&self, out: usize) -> Maps {
        let (ho, wo) = self.tiling.out();
        Maps::new(&[self.tiling.n, ho, wo, out], self.pool)
    }
}

fn winograd_block_values<T: Float>([x, u, bias, affine]: [&[T]; 4], t: Tiling, b: Maps, record: bool) -> Vec<Vec<T>> {
    let (out, m) = (b.c, b.sizes().0);
    let blocks = t.forward_blocks();
    let mut buffers = BlockBuffers::new(b, record);
    let runs = buffers.runs(b, blocks.iter().map(|block| block.samples));
    blocks.into_par_iter().zip(runs).for_each(|(block, mut run)| {
        let convolution = t.block_scratch(block.samples, out);
        // The convolution's maps, fully written before they are read.
        T::with_scratch(convolution + block.samples * m, |scratch| {
            let (scratch, z) = scratch.split_at_mut(convolution);
            convolve_block(x, (u, bias), t, block, scratch, z);
            let affine = &affine[block.member * 2 * out..][..2 * out];
            for (i, z) in z.chunks_exact(m).enumerate() {
                run.tail(i, z, affine, b);
            }
        });
    });
    buffers.into_outputs()
}

impl Kernel<4> for WinogradBlock {
    const NAME: &'static str = "winograd-block";

    fn shapes(&self, [_, _, bias, _]: [&[usize]; 4]) -> Vec<Shape> {
        self.maps(bias[1]).fused_shapes(self.record)
    }

    fn run<T: Float>(&self, inputs: [&[T]; 4], _dims: &[usize]) -> Vec<Vec<T>> {
        let out = inputs[2].len() / self.tiling.members;
        winograd_block_values(inputs, self.tiling, self.maps(out), self.record)
    }
}

/// The 3 x 3 stride-1 convolution of graph-free `x (n, h, w, c)` by Winograd (`weight` `(out, in, 3,
/// 3)` or an ensemble's `(members, out, in, 3, 3)`, bias `(members, out)`, zero padding `padding`),
/// then instance norm with the affine `(weight, bias)`, ReLU and `pool x pool` average pooling: the
/// values of [`super::winograd_conv`], [`super::instance_stats`] and [`super::norm_relu_pool`] in
/// turn, without the convolution's map.
pub fn winograd_norm_relu_pool(
    x: &Tensor,
    (weight, bias): (&Tensor, &Tensor),
    padding: usize,
    affine: (&Tensor, &Tensor),
    pool: usize,
    record: bool,
) -> Result<BlockOutput> {
    let operands = Operands::new(x, weight, Some(bias), padding, false)?;
    let affine = Tensor::cat(&[affine.0, affine.1], affine.0.rank() - 1)?;
    let kernel = WinogradBlock { tiling: operands.tiling, pool, record };
    let mut outputs = apply(&kernel, [x, &operands.u, &operands.bias, &affine])?.into_iter();
    let (pooled, stats) = (outputs.next().expect("the pooled map"), outputs.next().expect("the statistics"));
    Ok(BlockOutput { pooled, stats, saved: outputs.next().zip(outputs.next()) })
}

#[cfg(test)]
mod tests {
    use super::super::testing::random;
    use super::super::{instance_stats, norm_relu_pool, winograd_conv};
    use super::*;
    use candle_core::DType;

    fn bits(t: &Tensor) -> Vec<u64> {
        t.flatten_all().unwrap().to_dtype(DType::F64).unwrap().to_vec1::<f64>().unwrap().into_iter().map(f64::to_bits).collect()
    }

    #[test]
    fn the_fused_block_equals_the_separate_kernels_bit_for_bit() {
        // Odd sides (a dropped pooling row, tiles half outside), paddings 0 and 1, ensembles of 1
        // and 2, recorded or not, f32 and f64; 70 samples make several blocks per member.
        for (side, padding, members, per_member, dtype) in
            [(8, 1, 1, 3, DType::F32), (7, 1, 2, 2, DType::F64), (9, 0, 1, 2, DType::F32), (8, 1, 2, 35, DType::F32)]
        {
            let (c, out) = (16, 6);
            let n = members * per_member;
            let x = random(&[n, side, side, c], 1).to_dtype(dtype).unwrap();
            let weight = random(&[members, out, c, 3, 3], 2).to_dtype(dtype).unwrap();
            let bias = random(&[members, out], 3).to_dtype(dtype).unwrap();
            let affine = (random(&[members, out], 4).to_dtype(dtype).unwrap(), random(&[members, out], 5).to_dtype(dtype).unwrap());
            let z = winograd_conv(&x, &weight, Some(&bias), padding, false).unwrap();
            let (_, ho, wo, _) = z.dims4().unwrap();
            let stats = instance_stats(&z.reshape((n, ho * wo, out)).unwrap()).unwrap();
            for record in [false, true] {
                let expected = norm_relu_pool(&z, &stats, (&affine.0, &affine.1), 2, record).unwrap();
                let fused = winograd_norm_relu_pool(&x, (&weight, &bias), padding, (&affine.0, &affine.1), 2, record).unwrap();
                let case = format!("side {side} padding {padding} members {members} record {record} {dtype:?}");
                assert!(bits(&fused.pooled) == bits(&expected.pooled), "pooled, {case}");
                assert!(bits(&fused.stats) == bits(&stats), "statistics, {case}");
                match (fused.saved, expected.saved) {
                    (Some((xhat, y)), Some((xhat_e, y_e))) => {
                        assert!(bits(&xhat) == bits(&xhat_e) && bits(&y) == bits(&y_e), "xhat and y, {case}")
                    }
                    (None, None) => assert!(!record),
                    _ => panic!("recorded on one side only, {case}"),
                }
            }
        }
    }
}
