//! Decoding and the per-image kernel: crop box (random resized crop or resize + center crop),
//! antialiased bilinear resampling (PIL's filter: a triangle widened by the downscale factor),
//! horizontal flip, and mean/std normalization into one CHW row of a batch.
//!
//! All randomness of an image comes from `sample_rng(seed, epoch, index)`, so the output never
//! depends on thread count, batch composition or where a run resumed.

use std::path::Path;

use crate::data::transform::Rng;
use crate::error::CoreError;

/// What to make of each image.
#[derive(Debug, Clone, Copy)]
pub struct ImageSpec {
    /// Output height.
    pub height: u32,
    /// Output width.
    pub width: u32,
    /// Training augmentation (random resized crop, flip) instead of resize + center crop.
    pub train: bool,
    /// Evaluation: shorter side after resizing, before the center crop (>= height and width).
    pub resize: u32,
    /// Random resized crop: range of the crop's area as a fraction of the image.
    pub scale: (f64, f64),
    /// Random resized crop: range of the crop's aspect ratio (width / height).
    pub ratio: (f64, f64),
    /// Probability of a horizontal flip (training only).
    pub hflip_prob: f64,
    /// Per-channel mean (of values scaled to [0, 1]).
    pub mean: [f32; 3],
    /// Per-channel standard deviation.
    pub std: [f32; 3],
}

impl ImageSpec {
    /// Checks sizes and ranges.
    pub fn check(&self) -> Result<(), CoreError> {
        let bad = |m: String| Err(CoreError::Data(m));
        if self.height == 0 || self.width == 0 || self.height > 8192 || self.width > 8192 {
            return bad(format!(
                "image_size must be between 1 and 8192, got {}x{}",
                self.height, self.width
            ));
        }
        if !self.train && self.resize < self.height.max(self.width) {
            return bad(format!(
                "resize_size ({}) must be >= image_size ({}x{})",
                self.resize, self.height, self.width
            ));
        }
        let (s0, s1) = self.scale;
        let (r0, r1) = self.ratio;
        if !(s0 > 0.0 && s0 <= s1 && s1 <= 1.0 && r0 > 0.0 && r0 <= r1) {
            return bad(format!(
                "random resized crop needs 0 < scale_min <= scale_max <= 1 and 0 < ratio_min <= ratio_max, got scale={:?} ratio={:?}",
                self.scale, self.ratio
            ));
        }
        if !(0.0..=1.0).contains(&self.hflip_prob) {
            return bad(format!(
                "hflip_prob must lie in [0, 1], got {}",
                self.hflip_prob
            ));
        }
        if self.std.iter().any(|s| s.is_nan() || *s <= 0.0) {
            return bad(format!("std must be > 0, got {:?}", self.std));
        }
        Ok(())
    }
}

/// A decoded RGB image, 8 bits per channel, interleaved, row-major.
pub struct Rgb {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `width * height * 3` bytes.
    pub data: Vec<u8>,
}

/// Reads and decodes a JPEG or PNG file to RGB (grayscale replicated, alpha dropped: PIL's
/// `convert("RGB")`). Errors name the file.
pub fn decode_file(path: &Path) -> Result<Rgb, CoreError> {
    let bytes = std::fs::read(path).map_err(|source| CoreError::Io {
        path: path.display().to_string(),
        source,
    })?;
    decode_bytes(&bytes).map_err(|why| {
        CoreError::Data(format!(
            "cannot decode image {}: {why} (remove or replace the file, or pass on_bad_image=\"skip\")",
            path.display()
        ))
    })
}

/// Decodes JPEG or PNG bytes to RGB.
pub fn decode_bytes(bytes: &[u8]) -> Result<Rgb, String> {
    let format = ::image::guess_format(bytes).map_err(|_| "not a JPEG or PNG file".to_string())?;
    if !matches!(
        format,
        ::image::ImageFormat::Jpeg | ::image::ImageFormat::Png
    ) {
        return Err(format!("unsupported format {format:?} (only JPEG and PNG)"));
    }
    let img = ::image::load_from_memory_with_format(bytes, format).map_err(|e| e.to_string())?;
    let rgb = img.into_rgb8();
    let (w, h) = (rgb.width() as usize, rgb.height() as usize);
    if w == 0 || h == 0 {
        return Err("image has no pixels".into());
    }
    Ok(Rgb {
        width: w,
        height: h,
        data: rgb.into_raw(),
    })
}

#[inline]
fn uniform(rng: &mut Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / 9_007_199_254_740_992.0)
}

/// A crop box in source pixels (floats, as PIL's `box`) plus the scaled size it maps to and
/// the window of that scaled image that is kept.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plan {
    /// Source box `(x0, y0, x1, y1)`.
    pub bbox: (f64, f64, f64, f64),
    /// Size the box is resampled to (width, height).
    pub scaled: (usize, usize),
    /// Kept window of the scaled image: (left, top); its size is the output size.
    pub offset: (usize, usize),
    /// Mirror horizontally.
    pub flip: bool,
}

/// torchvision's `RandomResizedCrop.get_params` (10 tries, then a central crop), then the
/// flip coin; or `Resize(resize)` + `CenterCrop` in evaluation.
pub fn plan(spec: &ImageSpec, w: usize, h: usize, rng: &mut Rng) -> Plan {
    let (ow, oh) = (spec.width as usize, spec.height as usize);
    if !spec.train {
        let s = spec.resize as f64;
        let (sw, sh) = if w <= h {
            (s as usize, ((s * h as f64 / w as f64) as usize).max(1))
        } else {
            (((s * w as f64 / h as f64) as usize).max(1), s as usize)
        };
        let (sw, sh) = (sw.max(ow), sh.max(oh));
        // Python's round (ties to even), as torchvision's CenterCrop.
        let left = ((sw - ow) as f64 / 2.0).round_ties_even() as usize;
        let top = ((sh - oh) as f64 / 2.0).round_ties_even() as usize;
        return Plan {
            bbox: (0.0, 0.0, w as f64, h as f64),
            scaled: (sw, sh),
            offset: (left, top),
            flip: false,
        };
    }
    let area = (w * h) as f64;
    let (lr0, lr1) = (spec.ratio.0.ln(), spec.ratio.1.ln());
    let mut chosen = None;
    for _ in 0..10 {
        let target = area * (spec.scale.0 + (spec.scale.1 - spec.scale.0) * uniform(rng));
        let aspect = (lr0 + (lr1 - lr0) * uniform(rng)).exp();
        let cw = (target * aspect).sqrt().round() as usize;
        let ch = (target / aspect).sqrt().round() as usize;
        if cw > 0 && ch > 0 && cw <= w && ch <= h {
            let y = (rng.next_u64() % (h - ch + 1) as u64) as usize;
            let x = (rng.next_u64() % (w - cw + 1) as u64) as usize;
            chosen = Some((x, y, cw, ch));
            break;
        }
    }
    let (x, y, cw, ch) = chosen.unwrap_or_else(|| {
        let in_ratio = w as f64 / h as f64;
        let (cw, ch) = if in_ratio < spec.ratio.0 {
            (w, ((w as f64 / spec.ratio.0).round() as usize).clamp(1, h))
        } else if in_ratio > spec.ratio.1 {
            (((h as f64 * spec.ratio.1).round() as usize).clamp(1, w), h)
        } else {
            (w, h)
        };
        ((w - cw) / 2, (h - ch) / 2, cw, ch)
    });
    let flip = uniform(rng) < spec.hflip_prob;
    Plan {
        bbox: (x as f64, y as f64, (x + cw) as f64, (y + ch) as f64),
        scaled: (ow, oh),
        offset: (0, 0),
        flip,
    }
}

/// Resampling taps of one axis for output pixels `[off, off + n)` of a resize of the source
/// span `[in0, in1)` (of an axis `in_size` long) to `out_size` pixels: PIL's
/// `precompute_coeffs` with the bilinear (triangle) filter.
struct Taps {
    start: Vec<usize>,
    len: Vec<usize>,
    width: usize,
    weights: Vec<f32>,
}

fn taps(in_size: usize, in0: f64, in1: f64, out_size: usize, off: usize, n: usize) -> Taps {
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

/// Resamples one image by plan `p` into `out`, planar `[3][oh][ow]` values in [0, 255]
/// (mirrored when flipping).
pub fn render(img: &Rgb, p: &Plan, ow: usize, oh: usize, out: &mut [f32]) {
    let (x0, y0, x1, y1) = p.bbox;
    let (sw, sh) = p.scaled;
    let tx = taps(img.width, x0, x1, sw, p.offset.0, ow);
    let ty = taps(img.height, y0, y1, sh, p.offset.1, oh);
    // Source rows that any output row reads.
    let rlo = ty.start.iter().copied().min().unwrap_or(0);
    let rhi = ty
        .start
        .iter()
        .zip(&ty.len)
        .map(|(s, l)| s + l)
        .max()
        .unwrap_or(0);
    // Horizontal pass over those rows: tmp[(r - rlo) * ow * 3 + x * 3 + c].
    let mut tmp = vec![0f32; (rhi - rlo) * ow * 3];
    for (r, out) in (rlo..rhi).zip(tmp.chunks_mut(ow * 3)) {
        let src = &img.data[r * img.width * 3..(r + 1) * img.width * 3];
        for x in 0..ow {
            let (s, n) = (tx.start[x], tx.len[x]);
            let w = &tx.weights[x * tx.width..x * tx.width + n];
            let (mut a, mut b, mut c) = (0f32, 0f32, 0f32);
            for (k, &wk) in w.iter().enumerate() {
                let px = &src[(s + k) * 3..(s + k) * 3 + 3];
                a += wk * px[0] as f32;
                b += wk * px[1] as f32;
                c += wk * px[2] as f32;
            }
            out[x * 3] = a;
            out[x * 3 + 1] = b;
            out[x * 3 + 2] = c;
        }
    }
    // Vertical pass, emitting planar values (mirrored when flipping).
    let mut acc = vec![0f32; ow * 3];
    for y in 0..oh {
        acc.iter_mut().for_each(|v| *v = 0.0);
        let (s, n) = (ty.start[y], ty.len[y]);
        for k in 0..n {
            let wk = ty.weights[y * ty.width + k];
            let row = &tmp[(s + k - rlo) * ow * 3..(s + k - rlo + 1) * ow * 3];
            for (a, v) in acc.iter_mut().zip(row) {
                *a += wk * v;
            }
        }
        let plane = oh * ow;
        for c in 0..3 {
            let dst = &mut out[c * plane + y * ow..c * plane + (y + 1) * ow];
            if p.flip {
                for (d, a) in dst.iter_mut().rev().zip(acc.chunks_exact(3)) {
                    *d = a[c].clamp(0.0, 255.0);
                }
            } else {
                for (d, a) in dst.iter_mut().zip(acc.chunks_exact(3)) {
                    *d = a[c].clamp(0.0, 255.0);
                }
            }
        }
    }
}
