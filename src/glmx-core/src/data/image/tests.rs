//! The optimized per-image kernel against a plain reference (PIL's two-pass float order, flip
//! and normalization applied last), bit for bit, over upscaling, downscaling, flips and both
//! output types.

use super::decode::Rgb;
use super::resample::{render_into, Buffers, Norm, Pixel, Taps};
use super::transform::{plan, ImageSpec, Plan};
use crate::data::transform::sample_rng;

/// The straightforward kernel: variable-length taps over the interleaved image, each sum from
/// zero, rows first, then columns, then clamp, mirror and normalize.
fn reference<P: Pixel>(img: &Rgb, p: &Plan, ow: usize, oh: usize, norm: &Norm) -> Vec<P> {
    let (x0, y0, x1, y1) = p.bbox;
    let tx = Taps::new(img.width, x0, x1, p.scaled.0, p.offset.0, ow);
    let ty = Taps::new(img.height, y0, y1, p.scaled.1, p.offset.1, oh);
    let mut rows = vec![[0f32; 3]; img.height * ow];
    for r in 0..img.height {
        for x in 0..ow {
            let (s, w) = tx.get(x);
            let mut acc = [0f32; 3];
            for (k, &wk) in w.iter().enumerate() {
                for (c, a) in acc.iter_mut().enumerate() {
                    *a += wk * img.data[(r * img.width + s + k) * 3 + c] as f32;
                }
            }
            rows[r * ow + x] = acc;
        }
    }
    let mut out = vec![P::ZERO; 3 * ow * oh];
    for y in 0..oh {
        let (s, w) = ty.get(y);
        for x in 0..ow {
            let mut acc = [0f32; 3];
            for (k, &wk) in w.iter().enumerate() {
                for (c, a) in acc.iter_mut().enumerate() {
                    *a += wk * rows[(s + k) * ow + x][c];
                }
            }
            let xo = if p.flip { ow - 1 - x } else { x };
            for (c, a) in acc.iter().enumerate() {
                out[c * ow * oh + y * ow + xo] =
                    P::from_value(a.clamp(0.0, 255.0), norm.scale[c], norm.shift[c]);
            }
        }
    }
    out
}

fn image(w: usize, h: usize, seed: u64) -> Rgb {
    let mut rng = sample_rng(seed, 0, 0);
    // Smooth gradients plus noise: both flat and busy regions, like a photo.
    let data = (0..w * h * 3)
        .map(|i| {
            let (x, y) = ((i / 3) % w, (i / 3) / w);
            ((x * 255 / w + y * 97 / h) as u64 + (rng.next_u64() % 40)) as u8
        })
        .collect();
    Rgb {
        width: w,
        height: h,
        data,
    }
}

fn spec(train: bool, size: u32, resize: u32) -> ImageSpec {
    ImageSpec {
        height: size,
        width: size + 3,
        train,
        resize,
        scale: (0.08, 1.0),
        ratio: (0.75, 4.0 / 3.0),
        hflip_prob: 0.5,
        mean: [0.485, 0.456, 0.406],
        std: [0.229, 0.224, 0.225],
    }
}

fn same<P: Pixel + PartialEq + std::fmt::Debug>(got: &[P], want: &[P], what: &str) {
    let bad = got.iter().zip(want).position(|(a, b)| a != b);
    assert!(bad.is_none(), "{what}: first difference at {bad:?}");
}

#[test]
fn fast_kernel_is_bit_identical_to_the_reference() {
    let mut bufs = Buffers::default();
    let mut flips = 0;
    // Upscaled and downscaled crops (train), resize up and down + center crop (eval).
    let cases = [
        (48, 40, spec(true, 32, 0)),
        (20, 17, spec(true, 32, 0)),
        (200, 90, spec(true, 24, 0)),
        (48, 40, spec(false, 32, 36)),
        (120, 77, spec(false, 32, 40)),
        (9, 13, spec(false, 16, 19)),
    ];
    for (case, (w, h, sp)) in cases.into_iter().enumerate() {
        let img = image(w, h, case as u64);
        let (ow, oh) = (sp.width as usize, sp.height as usize);
        let norm = Norm::mean_std(sp.mean, sp.std);
        for i in 0..12u64 {
            let p = plan(&sp, w, h, &mut sample_rng(7, case as u64, i));
            flips += p.flip as usize;
            let mut out = vec![0f32; 3 * ow * oh];
            render_into(&img, &p, ow, oh, &norm, &mut out, &mut bufs);
            same(&out, &reference::<f32>(&img, &p, ow, oh, &norm), "float");
            let mut out = vec![0u8; 3 * ow * oh];
            render_into(&img, &p, ow, oh, &Norm::RAW, &mut out, &mut bufs);
            same(
                &out,
                &reference::<u8>(&img, &p, ow, oh, &Norm::RAW),
                "uint8",
            );
        }
    }
    assert!(flips > 5, "flipped crops are covered");
}
