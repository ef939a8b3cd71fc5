//! One split (train or test): normalised images, labels and a per-class index.

use crate::DatasetName;
use rand::seq::index;

#[derive(Clone, Debug)]
pub struct Split {
    /// N*C*H*W, CHW per image, normalised as `(x / 255 - mean_c) / std_c`.
    pub images: Vec<f32>,
    pub labels: Vec<u32>,
    /// Indices of the images of each class, ascending.
    by_class: Vec<Vec<usize>>,
    /// Kept separately so an empty split still knows its image size.
    image_len: usize,
}

impl Split {
    /// Builds a split from already normalised images.
    ///
    /// # Panics
    /// If `images.len() != labels.len() * image_len` or a label is `>= num_classes`
    /// (file loaders validate both before getting here).
    pub fn new(images: Vec<f32>, labels: Vec<u32>, image_len: usize, num_classes: usize) -> Split {
        assert_eq!(
            images.len(),
            labels.len() * image_len,
            "images hold {} values, expected {} labels x {} values per image",
            images.len(),
            labels.len(),
            image_len
        );
        let mut by_class = vec![Vec::new(); num_classes];
        for (i, &l) in labels.iter().enumerate() {
            assert!((l as usize) < num_classes, "label {l} of image {i} is not below {num_classes}");
            by_class[l as usize].push(i);
        }
        Split { images, labels, by_class, image_len }
    }

    /// Builds a split from raw CHW `u8` pixels, normalising with `name`'s mean and std.
    pub fn from_pixels(name: DatasetName, pixels: &[u8], labels: Vec<u32>) -> Split {
        let (c, h, w) = name.shape();
        let plane = h * w;
        // One lookup table per channel: 256 entries beat a division per pixel.
        let luts: Vec<[f32; 256]> = (0..c)
            .map(|ch| {
                let (m, s) = (name.mean()[ch], name.std()[ch]);
                std::array::from_fn(|v| (v as f32 / 255.0 - m) / s)
            })
            .collect();
        let images = pixels.iter().enumerate().map(|(i, &p)| luts[(i / plane) % c][p as usize]).collect();
        Split::new(images, labels, c * plane, name.num_classes())
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// C*H*W, the number of values of one image.
    pub fn image_len(&self) -> usize {
        self.image_len
    }

    pub fn num_classes(&self) -> usize {
        self.by_class.len()
    }

    /// Indices of all images of `class`, ascending. Panics if `class >= num_classes()`.
    pub fn class_indices(&self, class: usize) -> &[usize] {
        &self.by_class[class]
    }

    /// The class with the fewest images and their count (`(0, 0)` for a split without classes).
    pub fn smallest_class(&self) -> (usize, usize) {
        self.by_class.iter().enumerate().map(|(c, v)| (c, v.len())).min_by_key(|&(_, n)| n).unwrap_or((0, 0))
    }

    /// `n` distinct random indices of images of `class` (without replacement).
    ///
    /// If the class has fewer than `n` images, all of them are returned in random order,
    /// so the result may be shorter than `n`.
    pub fn sample_class<R: rand::Rng + ?Sized>(&self, class: usize, n: usize, rng: &mut R) -> Vec<usize> {
        let pool = self.class_indices(class);
        index::sample(rng, pool.len(), n.min(pool.len())).into_iter().map(|i| pool[i]).collect()
    }

    /// `n` distinct random indices from the whole split (all of them, shuffled, if `n > len()`).
    pub fn sample_any<R: rand::Rng + ?Sized>(&self, n: usize, rng: &mut R) -> Vec<usize> {
        index::sample(rng, self.len(), n.min(self.len())).into_vec()
    }

    /// The images at `indices`, concatenated. Panics on an index out of range.
    pub fn gather(&self, indices: &[usize]) -> Vec<f32> {
        let mut out = Vec::with_capacity(indices.len() * self.image_len);
        for &i in indices {
            out.extend_from_slice(self.image(i));
        }
        out
    }

    /// The labels at `indices`. Panics on an index out of range.
    pub fn gather_labels(&self, indices: &[usize]) -> Vec<u32> {
        indices.iter().map(|&i| self.labels[i]).collect()
    }

    /// One image's values. Panics on an index out of range.
    pub fn image(&self, i: usize) -> &[f32] {
        &self.images[i * self.image_len..(i + 1) * self.image_len]
    }

    /// A new split holding the images at `indices`, in that order (e.g. a small test subset).
    pub fn subset(&self, indices: &[usize]) -> Split {
        Split::new(self.gather(indices), self.gather_labels(indices), self.image_len, self.num_classes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn toy() -> Split {
        // 10 images of 2 values; label = i % 3, value = image index.
        let labels: Vec<u32> = (0..10).map(|i| i % 3).collect();
        let images = (0..10).flat_map(|i| [i as f32, i as f32]).collect();
        Split::new(images, labels, 2, 3)
    }

    #[test]
    fn class_index_and_gather() {
        let s = toy();
        assert_eq!(s.len(), 10);
        assert_eq!(s.class_indices(0), &[0, 3, 6, 9]);
        assert_eq!(s.class_indices(2), &[2, 5, 8]);
        assert_eq!(s.gather(&[5, 1]), vec![5.0, 5.0, 1.0, 1.0]);
        assert_eq!(s.gather_labels(&[5, 1]), vec![2, 1]);
        let sub = s.subset(&[8, 3, 2]);
        assert_eq!(sub.labels, vec![2, 0, 2]);
        assert_eq!(sub.class_indices(2), &[0, 2]);
        assert_eq!(sub.class_indices(1), &[] as &[usize]);
        assert_eq!(sub.image(1), &[3.0, 3.0]);
    }

    #[test]
    fn sampling_is_seeded_and_without_replacement() {
        let s = toy();
        let mut a = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let mut b = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let x = s.sample_class(0, 3, &mut a);
        assert_eq!(x, s.sample_class(0, 3, &mut b));
        assert_eq!(x.len(), 3);
        assert!(x.iter().all(|&i| s.labels[i] == 0));
        let mut d = x.clone();
        d.sort();
        d.dedup();
        assert_eq!(d.len(), 3);

        // More than available: every index of the class, once.
        let mut all = s.sample_class(1, 100, &mut a);
        all.sort();
        assert_eq!(all, vec![1, 4, 7]);

        let mut any = s.sample_any(25, &mut a);
        any.sort();
        assert_eq!(any, (0..10).collect::<Vec<_>>());
        assert_eq!(s.sample_any(4, &mut a).len(), 4);
    }

    #[test]
    fn from_pixels_normalises_per_channel() {
        let name = DatasetName::Cifar10;
        let mut px = vec![0u8; 3072];
        px[..1024].fill(255);
        px[1024..2048].fill(51);
        let s = Split::from_pixels(name, &px, vec![4]);
        let (m, sd) = (name.mean(), name.std());
        assert!((s.images[0] - (1.0 - m[0]) / sd[0]).abs() < 1e-6);
        assert!((s.images[1500] - (0.2 - m[1]) / sd[1]).abs() < 1e-6);
        assert!((s.images[3071] - (0.0 - m[2]) / sd[2]).abs() < 1e-6);
        assert_eq!(s.class_indices(4), &[0]);
    }

    #[test]
    #[should_panic(expected = "not below")]
    fn new_rejects_bad_label() {
        Split::new(vec![0.0; 2], vec![5], 2, 3);
    }
}
