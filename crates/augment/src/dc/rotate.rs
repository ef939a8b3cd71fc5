//! `scipy.ndimage.rotate(image, angle, axes=(-2, -1), cval=fill)` followed by the centred `h x w`
//! window, as DC's `rotatefun` does: a cubic B-spline rotation (order 3, prefiltered with mirror
//! boundaries), `reshape=True` (the output grows to hold the rotated corners), and the fill outside
//! the input (mode `constant`: no interpolation beyond the edges). Computed in f64 as scipy does.

/// The pole of the cubic B-spline prefilter.
fn pole() -> f64 {
    3f64.sqrt() - 2.0
}

/// Rotates every `h x w` plane of `image` by `degrees` about its centre, in place.
pub fn rotate(image: &mut [f32], (ch, h, w): (usize, usize, usize), degrees: i32, fill: f32) {
    let geometry = Geometry::new((h, w), degrees);
    for plane in image.chunks_exact_mut(h * w).take(ch) {
        let coefficients = spline_coefficients(plane, (h, w));
        for y in 0..h {
            for x in 0..w {
                let (sy, sx) = geometry.source(y, x);
                plane[y * w + x] = interpolate(&coefficients, (h, w), (sy, sx)).unwrap_or(fill as f64) as f32;
            }
        }
    }
}

/// Where each pixel of the centred window of the rotated (grown) output comes from in the input.
pub(super) struct Geometry {
    cos: f64,
    sin: f64,
    offset: (f64, f64),
    window: (usize, usize),
}

impl Geometry {
    pub(super) fn new((h, w): (usize, usize), degrees: i32) -> Geometry {
        let (sin, cos) = (degrees as f64).to_radians().sin_cos();
        // scipy's matrix [[cos, sin], [-sin, cos]] maps output (row, col) to input coordinates; the
        // output is the bounding box of the input's corners (0 or h, 0 or w), rounded.
        let (hf, wf) = (h as f64, w as f64);
        let rows = [0.0, sin * wf, cos * hf, cos * hf + sin * wf];
        let cols = [0.0, cos * wf, -sin * hf, -sin * hf + cos * wf];
        let extent = |v: [f64; 4]| (v.iter().cloned().fold(f64::MIN, f64::max) - v.iter().cloned().fold(f64::MAX, f64::min) + 0.5) as usize;
        let (oh, ow) = (extent(rows), extent(cols));
        let (cy, cx) = ((oh as f64 - 1.0) / 2.0, (ow as f64 - 1.0) / 2.0);
        let offset = ((hf - 1.0) / 2.0 - (cos * cy + sin * cx), (wf - 1.0) / 2.0 - (-sin * cy + cos * cx));
        Geometry { cos, sin, offset, window: ((oh - h) / 2, (ow - w) / 2) }
    }

    pub(super) fn source(&self, y: usize, x: usize) -> (f64, f64) {
        let (oy, ox) = ((y + self.window.0) as f64, (x + self.window.1) as f64);
        (self.cos * oy + self.sin * ox + self.offset.0, -self.sin * oy + self.cos * ox + self.offset.1)
    }
}

/// The cubic B-spline coefficients of a plane: the 1-D prefilter along rows, then along columns.
fn spline_coefficients(plane: &[f32], (h, w): (usize, usize)) -> Vec<f64> {
    let mut c: Vec<f64> = plane.iter().map(|&v| v as f64).collect();
    let mut column = vec![0.0; h];
    for x in 0..w {
        (0..h).for_each(|y| column[y] = c[y * w + x]);
        prefilter(&mut column);
        (0..h).for_each(|y| c[y * w + x] = column[y]);
    }
    c.chunks_exact_mut(w).for_each(prefilter);
    c
}

/// In-place cubic B-spline prefilter of one line with mirror boundaries (scipy's `apply_filter`).
pub(super) fn prefilter(c: &mut [f64]) {
    let n = c.len();
    if n < 2 {
        return;
    }
    let z = pole();
    let gain = (1.0 - z) * (1.0 - 1.0 / z);
    c.iter_mut().for_each(|v| *v *= gain);
    // Causal initialisation for a mirror-symmetric extension.
    let z_last = z.powi(n as i32 - 1);
    let mut first = c[0] + z_last * c[n - 1];
    let mut z_i = z;
    for i in 1..n - 1 {
        first += z_i * (c[i] + z_last * c[n - 1 - i]);
        z_i *= z;
    }
    c[0] = first / (1.0 - z_last * z_last);
    for i in 1..n {
        c[i] += z * c[i - 1];
    }
    c[n - 1] = (z * c[n - 2] + c[n - 1]) * z / (z * z - 1.0);
    for i in (0..n - 1).rev() {
        c[i] = z * (c[i + 1] - c[i]);
    }
}

/// The spline at `(y, x)`, or `None` outside `[0, h - 1] x [0, w - 1]` (mode `constant`).
fn interpolate(c: &[f64], (h, w): (usize, usize), (y, x): (f64, f64)) -> Option<f64> {
    let (rows, ys) = taps(y, h)?;
    let (cols, xs) = taps(x, w)?;
    Some(rows.iter().zip(ys).map(|(wy, iy)| wy * cols.iter().zip(xs).map(|(wx, ix)| wx * c[iy * w + ix]).sum::<f64>()).sum())
}

/// The four cubic B-spline weights and (mirrored) indices of coordinate `t` on a line of `len`.
pub(super) fn taps(t: f64, len: usize) -> Option<([f64; 4], [usize; 4])> {
    if !(0.0..=(len - 1) as f64).contains(&t) {
        return None;
    }
    let base = t.floor();
    let f = t - base;
    let weights =
        [(1.0 - f).powi(3) / 6.0, 2.0 / 3.0 - f * f + f.powi(3) / 2.0, 1.0 / 6.0 + (f + f * f - f.powi(3)) / 2.0, f.powi(3) / 6.0];
    let mirror = |i: isize| -> usize {
        let last = len as isize - 1;
        let i = if i < 0 { -i } else { i };
        (if i > last { 2 * last - i } else { i }).clamp(0, last) as usize
    };
    let start = base as isize - 1;
    Some((weights, [mirror(start), mirror(start + 1), mirror(start + 2), mirror(start + 3)]))
}
