use gradmatch_core::candle_core::{DType, Tensor};
use gradmatch_core::rand::{seq::index, RngCore};
use gradmatch_core::{host, Result};

/// Lloyd's k-means on the rows of a `(n, d)` tensor, in candle's operations on its device. It starts
/// from `clusters` distinct rows drawn from the caller's stream (as `fast_pytorch_kmeans`, DREAM's
/// k-means, does) and stops when no row changes cluster, or after `max_iterations` updates.
#[derive(Debug, Clone, Copy)]
pub struct KMeans {
    pub clusters: usize,
    pub max_iterations: usize,
}

/// The outcome of [`KMeans::fit`].
#[derive(Debug)]
pub struct Clustering {
    /// `(k, d)`, k = min(clusters, n); a cluster that lost every row keeps its last centre.
    pub centres: Tensor,
    /// The cluster of each row under `centres`.
    pub assignment: Vec<u32>,
    /// Centre updates made.
    pub iterations: usize,
    /// Whether the last assignment left every row where it was (else `max_iterations` ended it).
    pub converged: bool,
}

impl KMeans {
    pub fn fit(&self, x: &Tensor, rng: &mut dyn RngCore) -> Result<Clustering> {
        let (n, _) = x.dims2()?;
        if n == 0 || self.clusters == 0 {
            gradmatch_core::candle_core::bail!("k-means of {} clusters on {n} rows", self.clusters)
        }
        let start: Vec<u32> = index::sample(rng, n, self.clusters.min(n)).into_iter().map(|i| i as u32).collect();
        let mut centres = x.index_select(&Tensor::from_vec(start, self.clusters.min(n), x.device())?, 0)?;
        let norms = x.sqr()?.sum_keepdim(1)?;
        let mut assignment = nearest_centre(x, &norms, &centres)?;
        let mut rows = host::vec1::<u32>(&assignment)?;
        for iteration in 1..=self.max_iterations {
            centres = means(x, &assignment, &centres)?;
            assignment = nearest_centre(x, &norms, &centres)?;
            let moved = host::vec1::<u32>(&assignment)?;
            if moved == rows {
                return Ok(Clustering { centres, assignment: rows, iterations: iteration, converged: true });
            }
            rows = moved;
        }
        Ok(Clustering { centres, assignment: rows, iterations: self.max_iterations, converged: false })
    }
}

impl Clustering {
    /// For each centre, the row of `x` nearest it (two centres may share one): DREAM's representatives.
    pub fn nearest_rows(&self, x: &Tensor) -> Result<Vec<u32>> {
        host::vec1(&squared_distances(x, &x.sqr()?.sum_keepdim(1)?, &self.centres)?.argmin(0)?)
    }
}

/// `(n, k)` squared euclidean distances of the rows of `x` (whose squared norms are `norms`, `(n, 1)`)
/// to the centres `(k, d)`.
fn squared_distances(x: &Tensor, norms: &Tensor, centres: &Tensor) -> Result<Tensor> {
    let centre_norms = centres.sqr()?.sum_keepdim(1)?.t()?;
    let ((n, d), k) = (x.dims2()?, centres.dim(0)?);
    gradmatch_core::flops::count_product(n, d, k);
    let cross = x.matmul(&centres.t()?.contiguous()?)?;
    norms.broadcast_add(&centre_norms)?.sub(&cross.affine(2.0, 0.0)?)
}

/// `(n,)` the nearest centre of each row.
fn nearest_centre(x: &Tensor, norms: &Tensor, centres: &Tensor) -> Result<Tensor> {
    squared_distances(x, norms, centres)?.argmin(1)
}

/// Each cluster's mean row, or its previous centre when no row is in it.
fn means(x: &Tensor, assignment: &Tensor, previous: &Tensor) -> Result<Tensor> {
    let (n, _) = x.dims2()?;
    let sums = previous.zeros_like()?.index_add(assignment, x, 0)?;
    let ones = Tensor::ones((n, 1), x.dtype(), x.device())?;
    let counts = Tensor::zeros((previous.dim(0)?, 1), x.dtype(), x.device())?.index_add(assignment, &ones, 0)?;
    let mean = sums.broadcast_div(&counts.maximum(1.0)?)?;
    counts.gt(0.0)?.to_dtype(DType::U8)?.broadcast_as(previous.shape())?.where_cond(&mean, previous)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gradmatch_core::candle_core::Device;
    use gradmatch_core::rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// Three tight blobs far apart, interleaved row by row.
    fn blobs() -> Tensor {
        let centres = [[0.0f64, 0.0], [10.0, 0.0], [0.0, 10.0]];
        let rows: Vec<f64> = (0..30)
            .flat_map(|i| {
                let c = centres[i % 3];
                let jitter = (i / 3) as f64 * 0.01;
                [c[0] + jitter, c[1] - jitter]
            })
            .collect();
        Tensor::from_vec(rows, (30, 2), &Device::Cpu).unwrap()
    }

    #[test]
    fn separated_blobs_are_found_whatever_the_start() {
        let x = blobs();
        let mut separated = 0;
        for seed in 0..20 {
            let k = KMeans { clusters: 3, max_iterations: 100 }.fit(&x, &mut ChaCha8Rng::seed_from_u64(seed)).unwrap();
            assert!(k.converged, "seed {seed}");
            // A start with two centres in one blob may end in a local minimum (Lloyd's); every
            // other start finds the three blobs, and most starts are such.
            let of_blob: Vec<u32> = (0..3).map(|b| k.assignment[b]).collect();
            let consistent = (0..30).all(|i| k.assignment[i] == of_blob[i % 3]);
            let distinct = of_blob[0] != of_blob[1] && of_blob[1] != of_blob[2] && of_blob[0] != of_blob[2];
            if distinct {
                separated += 1;
                assert!(consistent, "seed {seed}: {:?}", k.assignment);
                let nearest = k.nearest_rows(&x).unwrap();
                let mut blobs_of_nearest: Vec<usize> = nearest.iter().map(|&r| r as usize % 3).collect();
                blobs_of_nearest.sort();
                assert_eq!(blobs_of_nearest, [0, 1, 2], "seed {seed}: one representative per blob");
            }
        }
        assert!(separated >= 10, "{separated} of 20 starts found the blobs");
    }

    #[test]
    fn a_centre_is_the_mean_of_its_rows_and_an_empty_cluster_keeps_its_centre() {
        let x = Tensor::new(&[[0.0f64, 0.0], [2.0, 0.0], [10.0, 10.0]], &Device::Cpu).unwrap();
        let assignment = Tensor::new(&[0u32, 0, 1], &Device::Cpu).unwrap();
        let previous = Tensor::new(&[[5.0f64, 5.0], [9.0, 9.0], [-1.0, -1.0]], &Device::Cpu).unwrap();
        let centres = means(&x, &assignment, &previous).unwrap().to_vec2::<f64>().unwrap();
        assert_eq!(centres, [[1.0, 0.0], [10.0, 10.0], [-1.0, -1.0]]);
    }

    #[test]
    fn the_same_stream_gives_the_same_clusters_and_more_clusters_than_rows_gives_every_row() {
        let x = Tensor::randn(0f32, 1.0, (200, 8), &Device::Cpu).unwrap();
        let fit = |seed| KMeans { clusters: 16, max_iterations: 50 }.fit(&x, &mut ChaCha8Rng::seed_from_u64(seed)).unwrap();
        assert_eq!(fit(3).assignment, fit(3).assignment);
        let all = KMeans { clusters: 40, max_iterations: 50 }.fit(&x.narrow(0, 0, 10).unwrap(), &mut ChaCha8Rng::seed_from_u64(0)).unwrap();
        let mut rows = all.nearest_rows(&x.narrow(0, 0, 10).unwrap()).unwrap();
        rows.sort();
        assert_eq!(rows, (0..10).collect::<Vec<u32>>());
    }
}
