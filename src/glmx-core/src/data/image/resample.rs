//! Antialiased bilinear resampling (PIL's filter: a triangle widened by the downscale factor)
//! of a crop box, horizontal flip and mean/std normalization, written straight into one
//! `[3, H, W]` row of a batch.
//!
//! Two separable passes, horizontal first over only the source rows the kept output rows
//! read (PIL's order; the horizontal pass gathers, so it runs on the fewer rows: for a crop
//! that is upsampled the source has fewer rows than the output, for a downscale likewise).
//! The horizontal pass writes three planes and mirrors while it gathers (a flip costs
//! nothing); the vertical pass is contiguous (vectorized) and fuses clamping and
//! normalization into its store, so there is no intermediate output image and no second pass.
//! Every value is summed in the same order as PIL's float path (tap by tap from zero), and
//! the result does not depend on the buffers being reused.

use crate::data::image::decode::Rgb;
use crate::data::image::transform::Plan;

/// Resampling taps of one axis for output pixels `[off, off + n)` of a resize of the source
/// span `[in0, in1)` (of an axis `in_size` long) to `out_size` pixels: PIL's
/// `precompute_coeffs` with the bilinear (triangle) filter.
pub(super) struct Taps {
    start: Vec<usize>,
    len: Vec<usize>,
    width: usize,
    weights: Vec<f32>,
}

impl Taps {
    pub(super) fn new(
        in_size: usize,
        in0: f64,
        in1: f64,
        out_size: usize,
        off: usize,
        n: usize,
    ) -> Self {
        let scale = (in1 - in0) / out_size as f64;
        let filterscale = scale.max(1.0);
        let support = filterscale; // triangle support 1.0, widened when downscaling
        let width = (support.ceil() as usize) * 2 + 1;
        let (mut start, mut len) = (Vec::with_capacity(n), Vec::with_capacity(n));
        let mut weights = vec![0f32; n * width];
        let ss = 1.0 / filterscale;
        for (i, row) in weights.chunks_mut(width).enumerate() {
            let center = in0 + ((off + i) as f64 + 0.5) * scale;
            let mut lo = ((center - support + 0.5) as i64).clamp(0, in_size as i64 - 1) as usize;
            let hi = ((center + support + 0.5) as i64).clamp(0, in_size as i64) as usize;
            if hi <= lo {
                lo = hi.saturating_sub(1);
            }
            let count = (hi.max(lo + 1) - lo).min(width);
            let mut total = 0.0;
            for (k, slot) in row.iter_mut().enumerate().take(count) {
                let x = ((lo + k) as f64 - center + 0.5) * ss;
                let v = (1.0 - x.abs()).max(0.0);
                *slot = v as f32;
                total += v;
            }
            for slot in row.iter_mut().take(count) {
                *slot = if total > 0.0 {
                    (*slot as f64 / total) as f32
                } else {
                    1.0 / count as f32
                };
            }
            start.push(lo);
            len.push(count);
        }
        Taps {
            start,
            len,
            width,
            weights,
        }
    }

    #[inline]
    pub(super) fn get(&self, i: usize) -> (usize, &[f32]) {
        let n = self.len[i];
        (
            self.start[i],
            &self.weights[i * self.width..i * self.width + n],
        )
    }
}

/// A pixel type of the output tensor.
pub trait Pixel: Copy + Send + Sync {
    /// Value of padding rows.
    const ZERO: Self;
    /// The stored value of a resampled value `v` in [0, 255].
    fn from_value(v: f32, scale: f32, shift: f32) -> Self;
}

impl Pixel for f32 {
    const ZERO: Self = 0.0;
    #[inline(always)]
    fn from_value(v: f32, scale: f32, shift: f32) -> Self {
        v * scale - shift
    }
}

impl Pixel for u8 {
    const ZERO: Self = 0;
    #[inline(always)]
    fn from_value(v: f32, _: f32, _: f32) -> Self {
        (v + 0.5) as u8
    }
}

/// Per-channel affine map of clamped [0, 255] values: `v * scale - shift` (for float output,
/// `(v / 255 - mean) / std`).
#[derive(Debug, Clone, Copy)]
pub struct Norm {
    /// Multiplier per channel.
    pub scale: [f32; 3],
    /// Subtrahend per channel.
    pub shift: [f32; 3],
}

impl Norm {
    /// The identity: values stay in [0, 255].
    pub const RAW: Norm = Norm {
        scale: [1.0; 3],
        shift: [0.0; 3],
    };

    /// `(v / 255 - mean) / std`, computed as `v * (1 / (255 std)) - mean / std`.
    pub fn mean_std(mean: [f32; 3], std: [f32; 3]) -> Norm {
        Norm {
            scale: std::array::from_fn(|c| 1.0 / (255.0 * std[c])),
            shift: std::array::from_fn(|c| mean[c] / std[c]),
        }
    }
}

/// Scratch memory of [`render_into`], reused from image to image.
#[derive(Debug, Default)]
pub struct Buffers {
    /// The horizontal pass's output: three planes of the rows the vertical pass reads.
    planes: Vec<f32>,
    /// One source row as three zero-padded float planes.
    row: Vec<f32>,
}

/// Resamples one image by plan `p` into `out`, planar `[3][oh][ow]`, mirrored when flipping,
/// clamped to [0, 255] and mapped by `norm`.
pub fn render_into<P: Pixel>(
    img: &Rgb,
    p: &Plan,
    ow: usize,
    oh: usize,
    norm: &Norm,
    out: &mut [P],
    bufs: &mut Buffers,
) {
    let Buffers { planes: tmp, row } = bufs;
    let (x0, y0, x1, y1) = p.bbox;
    let (sw, sh) = p.scaled;
    let tx = Taps::new(img.width, x0, x1, sw, p.offset.0, ow);
    let ty = Taps::new(img.height, y0, y1, sh, p.offset.1, oh);
    // Source rows that any output row reads.
    let rlo = ty.start.iter().copied().min().unwrap_or(0);
    let rhi = (0..oh).map(|y| ty.start[y] + ty.len[y]).max().unwrap_or(0);
    let tplane = (rhi - rlo) * ow;
    if tmp.len() < 3 * tplane {
        tmp.resize(3 * tplane, 0.0);
    }
    let (t0, rest) = tmp.split_at_mut(tplane);
    let (t1, t2) = rest.split_at_mut(tplane);
    let t2 = &mut t2[..tplane];
    horizontal(img, &tx, rlo..rhi, ow, p.flip, [t0, t1, t2], row);
    // Vertical pass, fused with clamping and normalization, into the output planes.
    let plane = ow * oh;
    for (c, t) in [&*t0, &*t1, &*t2].into_iter().enumerate() {
        let (scale, shift) = (norm.scale[c], norm.shift[c]);
        let dst_plane = &mut out[c * plane..(c + 1) * plane];
        for (y, dst) in dst_plane.chunks_exact_mut(ow).enumerate() {
            let (s, w) = ty.get(y);
            let row = |k: usize| &t[(s + k - rlo) * ow..(s + k - rlo + 1) * ow];
            let store = |d: &mut P, v: f32| *d = P::from_value(v.clamp(0.0, 255.0), scale, shift);
            // Tap by tap, as the accumulation from zero (every term is >= +0, so starting
            // at the first term rounds the same).
            match w.len() {
                1 => {
                    for (d, &a) in dst.iter_mut().zip(row(0)) {
                        store(d, w[0] * a);
                    }
                }
                2 => {
                    for ((d, &a), &b) in dst.iter_mut().zip(row(0)).zip(row(1)) {
                        store(d, w[0] * a + w[1] * b);
                    }
                }
                3 => {
                    for (((d, &a), &b), &e) in dst.iter_mut().zip(row(0)).zip(row(1)).zip(row(2)) {
                        store(d, w[0] * a + w[1] * b + w[2] * e);
                    }
                }
                _ => vertical_general(dst, w, &row, store),
            }
        }
    }
}

/// Horizontal pass over source rows `rows`: each row's columns that the taps read are
/// converted to floats (still interleaved RGB, zero-padded), then every output pixel sums a
/// fixed number of taps for all three channels (the most any pixel has; weights past a pixel's
/// own taps are zero, and adding `0 * v` leaves a sum unchanged), so the inner loop has no
/// data-dependent length. When flipping, output `x` takes the taps of `ow - 1 - x`.
fn horizontal(
    img: &Rgb,
    tx: &Taps,
    rows: std::ops::Range<usize>,
    ow: usize,
    flip: bool,
    planes: [&mut [f32]; 3],
    row: &mut Vec<f32>,
) {
    let clo = tx.start.iter().copied().min().unwrap_or(0);
    let chi = (0..ow).map(|x| tx.start[x] + tx.len[x]).max().unwrap_or(0);
    // Taps per pixel: the most any pixel has (2 for most upsampled axes, where PIL's window
    // holds 3 slots), weights repacked at that stride with zeros after a pixel's own taps.
    let width = tx.len.iter().copied().max().unwrap_or(1);
    let source = |x: usize| if flip { ow - 1 - x } else { x };
    let weights: Vec<f32> = (0..ow)
        .flat_map(|x| {
            let (_, w) = tx.get(source(x));
            (0..width).map(move |k| w.get(k).copied().unwrap_or(0.0))
        })
        .collect();
    let starts: Vec<usize> = (0..ow).map(|x| 3 * (tx.start[source(x)] - clo)).collect();
    // The read columns as floats, then `width` zero pixels so every tap window fits.
    row.clear();
    row.resize(3 * (chi - clo + width), 0.0);
    let row_bytes = img.width * 3;
    let [p0, p1, p2] = planes;
    for (i, r) in rows.enumerate() {
        let src = &img.data[r * row_bytes + clo * 3..r * row_bytes + chi * 3];
        for (f, &q) in row.iter_mut().zip(src) {
            *f = q as f32;
        }
        let dst = [
            &mut p0[i * ow..(i + 1) * ow],
            &mut p1[i * ow..(i + 1) * ow],
            &mut p2[i * ow..(i + 1) * ow],
        ];
        match width {
            1 => taps_fixed::<1>(row, &starts, &weights, dst),
            2 => taps_fixed::<2>(row, &starts, &weights, dst),
            3 => taps_fixed::<3>(row, &starts, &weights, dst),
            4 => taps_fixed::<4>(row, &starts, &weights, dst),
            5 => taps_fixed::<5>(row, &starts, &weights, dst),
            _ => taps_any(row, &starts, &weights, width, dst),
        }
    }
}

/// One row of the horizontal pass with `W` taps per pixel: `src` interleaved RGB floats,
/// `starts` offsets into it (3 per pixel), `weights` `W` per output pixel.
#[inline(always)]
fn taps_fixed<const W: usize>(
    src: &[f32],
    starts: &[usize],
    weights: &[f32],
    dst: [&mut [f32]; 3],
) {
    let [d0, d1, d2] = dst;
    let out = d0.iter_mut().zip(d1.iter_mut()).zip(d2.iter_mut());
    for ((&s, w), ((o0, o1), o2)) in starts.iter().zip(weights.chunks_exact(W)).zip(out) {
        let v = &src[s..s + 3 * W];
        let (mut a, mut b, mut c) = (0f32, 0f32, 0f32);
        for k in 0..W {
            a += w[k] * v[3 * k];
            b += w[k] * v[3 * k + 1];
            c += w[k] * v[3 * k + 2];
        }
        *o0 = a;
        *o1 = b;
        *o2 = c;
    }
}

/// [`taps_fixed`] for any number of taps (strong downscaling).
fn taps_any(src: &[f32], starts: &[usize], weights: &[f32], width: usize, dst: [&mut [f32]; 3]) {
    let [d0, d1, d2] = dst;
    let out = d0.iter_mut().zip(d1.iter_mut()).zip(d2.iter_mut());
    for ((&s, w), ((o0, o1), o2)) in starts.iter().zip(weights.chunks_exact(width)).zip(out) {
        let (mut a, mut b, mut c) = (0f32, 0f32, 0f32);
        for (&wk, v) in w.iter().zip(src[s..s + 3 * width].chunks_exact(3)) {
            a += wk * v[0];
            b += wk * v[1];
            c += wk * v[2];
        }
        *o0 = a;
        *o1 = b;
        *o2 = c;
    }
}

/// The vertical sum for many taps (downscaling): accumulate row by row, then store.
fn vertical_general<'a, P: Pixel>(
    dst: &mut [P],
    w: &[f32],
    row: &dyn Fn(usize) -> &'a [f32],
    store: impl Fn(&mut P, f32),
) {
    let mut acc = [0f32; 64];
    for (dc, chunk) in dst.chunks_mut(acc.len()).enumerate() {
        let base = dc * acc.len();
        let acc = &mut acc[..chunk.len()];
        acc.iter_mut().for_each(|a| *a = 0.0);
        for (k, &wk) in w.iter().enumerate() {
            let r = &row(k)[base..base + chunk.len()];
            for (a, &v) in acc.iter_mut().zip(r) {
                *a += wk * v;
            }
        }
        for (d, &a) in chunk.iter_mut().zip(acc.iter()) {
            store(d, a);
        }
    }
}

/// [`render_into`] with values kept in [0, 255] and fresh scratch memory.
pub fn render(img: &Rgb, p: &Plan, ow: usize, oh: usize, out: &mut [f32]) {
    render_into(img, p, ow, oh, &Norm::RAW, out, &mut Buffers::default());
}
