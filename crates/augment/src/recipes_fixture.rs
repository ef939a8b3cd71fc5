//! What `tests/fixtures/recipes/make.py` (at the top of the workspace) recorded from PyTorch and
//! scipy, for the tests of DC's transforms and of CutMix.

/// The fixture's sections a test asks for (serde ignores the others).
pub(crate) fn read<T: serde::de::DeserializeOwned>() -> T {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/recipes/recipes.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// `image(c, h, w)` of make.py.
pub(crate) fn image((c, h, w): (usize, usize, usize)) -> Vec<f32> {
    (0..c * h * w)
        .map(|i| {
            let i = i as f64;
            ((i * 0.37).sin() + 0.5 * (i * 0.011).cos() + (i % 7.0) * 0.1) as f32
        })
        .collect()
}
