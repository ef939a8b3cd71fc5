use candle_core::{Result, Tensor};

/// What a synthetic image is: the tensor the image optimiser learns ("stored", the storage budget:
/// ipc images of the dataset's shape per class) and how it decodes into the images that networks
/// see. Plain pixels decode to themselves; IDC's multi-formation packs several smaller images into
/// each stored one.
pub trait Parameterisation: Send + Sync {
    /// How many images each stored image decodes into (1 for plain pixels).
    fn images_per_stored(&self) -> usize;

    /// Decodes stored images `(n, c, h, w)` into `(images_per_stored * n, c, h, w)` images, image
    /// `j` of stored image `i` at row `j * n + i` (so the labels of the decoded batch are the stored
    /// labels repeated `images_per_stored` times). Differentiable with respect to `stored` (tensor
    /// operations only, on its device).
    fn decode(&self, stored: &Tensor) -> Result<Tensor>;

    /// A stored set decoded with its labels: [`Parameterisation::decode`]'s images, and `labels`
    /// (one per stored image) repeated in the same order.
    fn decode_set(&self, stored: &Tensor, labels: &[u32]) -> Result<(Tensor, Vec<u32>)> {
        Ok((self.decode(stored)?, labels.repeat(self.images_per_stored())))
    }

    /// Stored images `(n, c, h, w)` that decode into (an approximation of) the real images `real`
    /// `(images_per_stored * n, c, h, w)`, ordered as [`Parameterisation::decode`] returns them: how
    /// the `mix` initialisation starts from real images.
    fn encode(&self, real: &Tensor) -> Result<Tensor>;
}
