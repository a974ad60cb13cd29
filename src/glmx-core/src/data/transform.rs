//! The per-sample kernel: tokenize, reverse-complement, MLM-mask and weigh one window.
//!
//! Tokenizer (GPN): `[PAD]=0 [MASK]=1 [UNK]=2 a=3 c=4 g=5 t=6`, case-insensitive; every other
//! byte is `[UNK]`. Lowercase (soft-masked) bases weigh `soft_masked_weight`, others 1.
//! All randomness of a sample comes from [`sample_rng`] of (seed, epoch, global window index),
//! so output never depends on thread count or batch composition.

/// `[PAD]` token id.
pub const PAD: u8 = 0;
/// `[MASK]` token id.
pub const MASK: u8 = 1;
/// `[UNK]` token id.
pub const UNK: u8 = 2;
/// Vocabulary size.
pub const VOCAB: u64 = 7;
/// Label of positions that do not count in the loss.
pub const IGNORE: i8 = -100;

const fn id_table(rc: bool) -> [u8; 256] {
    let mut t = [UNK; 256];
    let (a, c, g, tt) = if rc { (6, 5, 4, 3) } else { (3, 4, 5, 6) };
    t[b'a' as usize] = a;
    t[b'A' as usize] = a;
    t[b'c' as usize] = c;
    t[b'C' as usize] = c;
    t[b'g' as usize] = g;
    t[b'G' as usize] = g;
    t[b't' as usize] = tt;
    t[b'T' as usize] = tt;
    t
}

/// Byte -> token id.
pub static IDS: [u8; 256] = id_table(false);
/// Byte -> token id of its complement (case is irrelevant to ids).
pub static RC_IDS: [u8; 256] = id_table(true);

/// Masking and augmentation settings.
#[derive(Debug, Clone, Copy)]
pub struct MaskSpec {
    /// Probability that a position is selected for prediction.
    pub mlm_probability: f64,
    /// Of the selected: fraction replaced by `[MASK]`.
    pub mask_fraction: f64,
    /// Of the selected: fraction replaced by a uniformly random token (any of the 7).
    pub random_fraction: f64,
    /// Probability of reverse-complementing a window.
    pub rc_prob: f64,
    /// Loss weight of lowercase (soft-masked) positions.
    pub soft_masked_weight: f32,
}

/// Integer thresholds derived from a [`MaskSpec`], so the hot loop compares integers only.
#[derive(Debug, Clone, Copy)]
pub struct Kernel {
    select: u32,
    to_mask: u32,
    to_random: u32,
    rc: u64,
    soft: f32,
}

impl Kernel {
    /// Precomputes thresholds.
    pub fn new(spec: &MaskSpec) -> Self {
        let scale32 = |p: f64| (p.clamp(0.0, 1.0) * 4_294_967_296.0).min(u32::MAX as f64) as u32;
        let scale16 = |p: f64| (p.clamp(0.0, 1.0) * 65_536.0).round() as u32;
        Kernel {
            select: if spec.mlm_probability >= 1.0 {
                u32::MAX
            } else {
                scale32(spec.mlm_probability)
            },
            to_mask: scale16(spec.mask_fraction),
            to_random: scale16(spec.mask_fraction + spec.random_fraction),
            rc: (spec.rc_prob.clamp(0.0, 1.0) * 9_007_199_254_740_992.0) as u64,
            soft: spec.soft_masked_weight,
        }
    }
}

/// wyrand: a tiny, fast generator, good enough for masking decisions.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Next 64 random bits.
    #[inline(always)]
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0xa076_1d64_78bd_642f);
        let t = u128::from(self.0) * u128::from(self.0 ^ 0xe703_7ed1_a0b4_28db);
        ((t >> 64) as u64) ^ (t as u64)
    }
}

/// SplitMix64 finalizer: a bijective 64-bit mix.
#[inline(always)]
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The generator of one sample, a pure function of (seed, epoch, global window index).
#[inline]
pub fn sample_rng(seed: u64, epoch: u64, index: u64) -> Rng {
    Rng(mix64(
        mix64(mix64(seed ^ 0x5851_f42d_4c95_7f2d) ^ epoch) ^ index,
    ))
}

/// Integer types the kernel can write ids and labels as.
pub trait Token: Copy + Send + Sync {
    /// Converts a token id or label (-100..=6).
    fn from_i8(v: i8) -> Self;
}
impl Token for i64 {
    #[inline(always)]
    fn from_i8(v: i8) -> Self {
        v as i64
    }
}
impl Token for i8 {
    #[inline(always)]
    fn from_i8(v: i8) -> Self {
        v
    }
}
impl Token for u8 {
    #[inline(always)]
    fn from_i8(v: i8) -> Self {
        v as u8
    }
}

/// Builds one sample from `window` into the output rows (all of `window.len()`).
///
/// `loss_weight` is the case weight at positions selected for prediction and 0 elsewhere, so
/// `sum(w * ce) / sum(w)` is the GPN loss directly. `[UNK]` positions are never selected
/// (as in the Hugging Face collator GPN uses, where `[UNK]` is a special token).
#[inline]
pub fn build_sample<I: Token, L: Token>(
    window: &[u8],
    k: &Kernel,
    mut rng: Rng,
    ids: &mut [I],
    labels: &mut [L],
    weights: &mut [f32],
) {
    let n = window.len();
    let rc = (rng.next_u64() >> 11) < k.rc;
    for j in 0..n {
        let (b, id) = if rc {
            let b = window[n - 1 - j];
            (b, RC_IDS[b as usize])
        } else {
            let b = window[j];
            (b, IDS[b as usize])
        };
        let r = rng.next_u64();
        if (r as u32) < k.select && id != UNK {
            let d = ((r >> 32) & 0xffff) as u32;
            let shown = if d < k.to_mask {
                MASK
            } else if d < k.to_random {
                (((r >> 48) * VOCAB) >> 16) as u8
            } else {
                id
            };
            ids[j] = I::from_i8(shown as i8);
            labels[j] = L::from_i8(id as i8);
            // ASCII lowercase letters have bit 0x20 set; uppercase do not.
            weights[j] = if b & 0x20 != 0 { k.soft } else { 1.0 };
        } else {
            ids[j] = I::from_i8(id as i8);
            labels[j] = L::from_i8(IGNORE);
            weights[j] = 0.0;
        }
    }
}

/// Fills one padding row: `[PAD]` ids, ignored labels, zero weights.
pub fn build_padding<I: Token, L: Token>(ids: &mut [I], labels: &mut [L], weights: &mut [f32]) {
    ids.fill(I::from_i8(PAD as i8));
    labels.fill(L::from_i8(IGNORE));
    weights.fill(0.0);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(p: f64, rc: f64) -> MaskSpec {
        MaskSpec {
            mlm_probability: p,
            mask_fraction: 0.8,
            random_fraction: 0.1,
            rc_prob: rc,
            soft_masked_weight: 0.01,
        }
    }

    #[test]
    fn tokenizer_table() {
        let got: Vec<u8> = b"aAcCgGtTnN-x".iter().map(|&b| IDS[b as usize]).collect();
        assert_eq!(got, vec![3, 3, 4, 4, 5, 5, 6, 6, 2, 2, 2, 2]);
    }

    #[test]
    fn no_masking_rc_reverses_and_complements() {
        let k = Kernel::new(&spec(0.0, 1.0));
        let w = b"AACgtN";
        let (mut ids, mut lab, mut wt) = (vec![0i64; 6], vec![0i64; 6], vec![0f32; 6]);
        build_sample(w, &k, sample_rng(1, 0, 0), &mut ids, &mut lab, &mut wt);
        // reverse complement of AACgtN is NacGTT
        assert_eq!(ids, vec![2, 3, 4, 5, 6, 6]);
        assert!(lab.iter().all(|&l| l == -100));
    }

    #[test]
    fn full_masking_weights_follow_case() {
        let k = Kernel::new(&spec(1.0, 0.0));
        let w = b"ACgt";
        let (mut ids, mut lab, mut wt) = (vec![0u8; 4], vec![0i8; 4], vec![0f32; 4]);
        build_sample(w, &k, sample_rng(1, 0, 0), &mut ids, &mut lab, &mut wt);
        assert_eq!(lab, vec![3, 4, 5, 6]);
        assert_eq!(wt, vec![1.0, 1.0, 0.01, 0.01]);
    }
}
