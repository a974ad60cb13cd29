//! Per-stage CPU time of the image loader's per-image kernel on one thread (read, decode,
//! crop plan + resample + normalize), for profiling without `perf`:
//!
//!     cargo run --release -p glmx-core --example image_stages -- DIR [train|eval] [N]
//!
//! DIR is an ImageFolder split (`DIR/CLASS/*.jpg`); prints CPU microseconds per image per stage
//! (the render stage resamples the last decoded image with each image's crop plan).

use std::path::Path;

use glmx_core::cancel::Never;
use glmx_core::data::image::decode::{decode_into, Rgb};
use glmx_core::data::image::resample::{render_into, Buffers, Norm};
use glmx_core::data::image::transform::{plan, ImageSpec};
use glmx_core::data::image::{ImageFolder, ImageLoader, ImageLoaderConfig, OnBad};
use glmx_core::data::transform::sample_rng;
use glmx_core::data::Position;
use std::sync::Arc;

#[repr(C)]
struct Timespec {
    sec: i64,
    nsec: i64,
}

extern "C" {
    fn clock_gettime(clock: i32, ts: *mut Timespec) -> i32;
}

/// CPU seconds of this thread (CLOCK_THREAD_CPUTIME_ID): unlike wall time, other processes on
/// a shared machine barely move it.
fn cpu() -> f64 {
    clock(3)
}

/// CPU seconds of the whole process (all threads; CLOCK_PROCESS_CPUTIME_ID).
fn process_cpu() -> f64 {
    clock(2)
}

/// (user, system) CPU seconds of the process from /proc/self/stat (100 ticks per second).
fn user_sys() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<f64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .map(|v| v.parse::<f64>().unwrap_or(0.0) / 100.0)
        .collect();
    (
        f.first().copied().unwrap_or(0.0),
        f.get(1).copied().unwrap_or(0.0),
    )
}

fn clock(id: i32) -> f64 {
    let mut ts = Timespec { sec: 0, nsec: 0 };
    // SAFETY: a valid out pointer; 2 and 3 are Linux's process and thread CPU clocks.
    unsafe { clock_gettime(id, &mut ts) };
    ts.sec as f64 + ts.nsec as f64 * 1e-9
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let dir = Path::new(
        args.get(1)
            .ok_or("usage: image_stages DIR [train|eval] [N]")?,
    );
    let train = args.get(2).map(|s| s != "eval").unwrap_or(true);
    let n: usize = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(500);
    let root = dir
        .parent()
        .ok_or("DIR needs a parent")?
        .display()
        .to_string();
    let split = dir.file_name().ok_or("DIR needs a name")?.to_string_lossy();
    let folder = ImageFolder::scan(&root, &split, None)?;
    let spec = ImageSpec {
        height: 224,
        width: 224,
        train,
        resize: 256,
        scale: (0.08, 1.0),
        ratio: (0.75, 4.0 / 3.0),
        hflip_prob: 0.5,
        mean: [0.485, 0.456, 0.406],
        std: [0.229, 0.224, 0.225],
    };
    let files = &folder.files[..n.min(folder.files.len())];
    let bytes: Vec<Vec<u8>> = files.iter().map(std::fs::read).collect::<Result<_, _>>()?;
    let mut out = vec![0f32; 3 * 224 * 224];
    let norm = Norm::mean_std(spec.mean, spec.std);
    let (mut img, mut bufs) = (Rgb::default(), Buffers::default());
    // Minimum over rounds: on a shared machine the least disturbed round is the closest to
    // the kernel's own cost.
    let (mut t_dec, mut t_render) = (f64::MAX, f64::MAX);
    for round in 0..5 {
        let t0 = cpu();
        for b in &bytes {
            decode_into(b, &mut img)?;
        }
        t_dec = t_dec.min(cpu() - t0);
        let t0 = cpu();
        for i in 0..bytes.len() {
            let mut rng = sample_rng(0, round, i as u64);
            let p = plan(&spec, img.width, img.height, &mut rng);
            render_into(&img, &p, 224, 224, &norm, &mut out, &mut bufs);
        }
        t_render = t_render.min(cpu() - t0);
    }
    let k = 1e6 / files.len() as f64;
    // The whole loader on one decode thread: batches of 64 into fresh tensors.
    let cfg = ImageLoaderConfig {
        batch_size: 64,
        shuffle: true,
        seed: 0,
        rank: 0,
        world_size: 1,
        drop_last: false,
        num_threads: 1,
        prefetch: 2,
        pin_memory: false,
        uint8: false,
        spec,
        on_bad: OnBad::Error,
    };
    let mut loader = ImageLoader::new(Arc::new(folder.clone()), cfg)?;
    let (mut t_loader, mut us) = (f64::MAX, (0.0, 0.0));
    for _ in 0..3 {
        loader.seek(Position::default())?;
        loader.start()?;
        let (t0, mut rows, us0) = (process_cpu(), 0, user_sys());
        while let Some(b) = loader.next_batch(&Never)? {
            rows += b.labels.size()[0];
            if rows as usize >= files.len() {
                break;
            }
        }
        loader.stop();
        let t = (process_cpu() - t0) * 1e6 / rows as f64;
        let us1 = user_sys();
        if t > t_loader {
            continue;
        }
        t_loader = t;
        us = (
            (us1.0 - us0.0) * 1e6 / rows as f64,
            (us1.1 - us0.1) * 1e6 / rows as f64,
        );
    }
    println!(
        "{} images, {}: decode {:.0} us, plan+render {:.0} us, total {:.0} us per image; whole loader (1 thread) {:.0} us per image (user {:.0}, system {:.0})",
        files.len(),
        if train { "train" } else { "eval" },
        t_dec * k,
        t_render * k,
        (t_dec + t_render) * k,
        t_loader,
        us.0,
        us.1
    );
    Ok(())
}
