//! What to make of each image ([`ImageSpec`]) and its crop [`Plan`]: torchvision's random
//! resized crop and flip coin, or resize + center crop; [`super::resample`] carries it out.
//!
//! All randomness of an image comes from `sample_rng(seed, epoch, index)`, so the output never
//! depends on thread count, batch composition or where a run resumed.

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
