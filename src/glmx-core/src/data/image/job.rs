//! Building the batches of one epoch of an [`ImageLoader`](super::loader::ImageLoader): the
//! producer thread's loop (batches queued in the private pool, handed out in order) and the
//! per-batch work (allocation, per-image decode + resample in parallel, padding rows).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::Arc;

use rayon::prelude::*;
use tch::{Device, Kind, Tensor};

use crate::data::image::decode::{decode_file_into, Rgb};
use crate::data::image::folder::ImageFolder;
use crate::data::image::loader::{ImageBatch, ImageLoaderConfig, Item, OnBad, Pixels};
use crate::data::image::pool::BufferPool;
use crate::data::image::resample::{render_into, Buffers, Norm, Pixel};
use crate::data::image::transform::plan;
use crate::data::sampler::{Permutation, Plan, Step};
use crate::data::transform::sample_rng;
use crate::data::Position;
use crate::error::CoreError;

/// One epoch's work from a start position.
pub(super) struct Job {
    pub(super) data: Arc<ImageFolder>,
    pub(super) cfg: ImageLoaderConfig,
    pub(super) plan: Plan,
    pub(super) start: Position,
    pub(super) bad: Arc<AtomicU64>,
    pub(super) buffers: Arc<BufferPool>,
}

/// Batches built at once. One at a time, every batch ends in a barrier: the threads that
/// finish their share wait for the last image (for a whole time slice when the machine is
/// busy and that thread is descheduled). With the next batch already queued they work on it.
pub(super) const IN_FLIGHT: usize = 2;

impl Job {
    pub(super) fn run(
        self,
        pool: &rayon::ThreadPool,
        tx: &SyncSender<Item>,
        stop: &Arc<AtomicBool>,
    ) {
        let epoch = self.start.epoch;
        let perm = Arc::new(Permutation::new(
            self.plan.n,
            self.cfg.seed,
            epoch,
            self.cfg.shuffle,
        ));
        let job = Arc::new(self);
        let mut pos = job.start.consumed;
        let mut pending = std::collections::VecDeque::with_capacity(IN_FLIGHT);
        loop {
            while pending.len() < IN_FLIGHT {
                let Some(step) = job.plan.step_at(pos) else {
                    break;
                };
                let after = job.plan.position_after(step, epoch);
                let (btx, brx) = sync_channel(1);
                let (job, perm, stop) = (job.clone(), perm.clone(), stop.clone());
                pool.spawn(move || {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    // A panic here would abort the process (rayon's default for spawned
                    // work); it becomes this batch's error instead.
                    let built = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        job.build(&perm, step, after, epoch)
                    }))
                    .unwrap_or_else(|_| {
                        Err(CoreError::Data(
                            "internal error while building an image batch (a bug: please report it)"
                                .into(),
                        ))
                    });
                    let _ = btx.send(built);
                });
                pending.push_back(brx);
                pos = step.next;
            }
            let Some(next) = pending.pop_front() else {
                return;
            };
            let Ok(batch) = next.recv() else {
                return;
            };
            if stop.load(Ordering::Relaxed) || tx.send(batch).is_err() {
                return;
            }
        }
    }

    fn build(&self, perm: &Permutation, step: Step, after: Position, epoch: u64) -> Item {
        let rows = step.len as i64;
        let (h, w) = (self.cfg.spec.height as i64, self.cfg.spec.width as i64);
        let alloc = |kind: Kind, shape: &[i64]| -> Result<Tensor, CoreError> {
            let t = Tensor::f_empty(shape, (kind, Device::Cpu))?;
            Ok(if self.cfg.pin_memory {
                t.f_pin_memory(Device::Cuda(0))?
            } else {
                t
            })
        };
        let labels = alloc(Kind::Int64, &[rows])?;
        let sample_index = alloc(Kind::Int64, &[rows])?;
        let (r, per) = (rows as usize, (3 * h * w) as usize);
        // SAFETY: each tensor was just allocated, is contiguous with exactly r*per (or r)
        // elements of the matching dtype, and nothing else references it until we return.
        let pixel_values = unsafe {
            let lab = std::slice::from_raw_parts_mut(labels.data_ptr() as *mut i64, r);
            let idx = std::slice::from_raw_parts_mut(sample_index.data_ptr() as *mut i64, r);
            if self.cfg.uint8 {
                let t = alloc(Kind::Uint8, &[rows, 3, h, w])?;
                let px = std::slice::from_raw_parts_mut(t.data_ptr() as *mut u8, r * per);
                self.fill(perm, step, epoch, px, lab, idx)?;
                Pixels::Tensor(t)
            } else if self.cfg.pin_memory {
                let t = alloc(Kind::Float, &[rows, 3, h, w])?;
                let px = std::slice::from_raw_parts_mut(t.data_ptr() as *mut f32, r * per);
                self.fill(perm, step, epoch, px, lab, idx)?;
                Pixels::Tensor(t)
            } else {
                let mut buffer = self.buffers.take(r * per);
                self.fill(perm, step, epoch, buffer.as_mut_slice(), lab, idx)?;
                Pixels::Host {
                    buffer,
                    shape: [rows, 3, h, w],
                }
            }
        };
        Ok(ImageBatch {
            pixel_values,
            labels,
            sample_index,
            after,
        })
    }

    fn fill<P: Pixel>(
        &self,
        perm: &Permutation,
        step: Step,
        epoch: u64,
        px: &mut [P],
        labels: &mut [i64],
        index: &mut [i64],
    ) -> Result<(), CoreError> {
        let spec = &self.cfg.spec;
        let (ow, oh) = (spec.width as usize, spec.height as usize);
        let per = 3 * ow * oh;
        let norm = Norm::mean_std(spec.mean, spec.std);
        px.par_chunks_mut(per)
            .zip(labels.par_iter_mut())
            .zip(index.par_iter_mut())
            .enumerate()
            .try_for_each(|(row, ((px, label), index))| {
                let p = step.start + row as u64;
                let pad = |px: &mut [P], label: &mut i64, index: &mut i64| {
                    px.iter_mut().for_each(|v| *v = P::ZERO);
                    *label = -100;
                    *index = -1;
                };
                if p >= self.plan.n {
                    pad(px, label, index);
                    return Ok(());
                }
                let i = perm.apply(p);
                let path = &self.data.files[i as usize];
                SCRATCH.with_borrow_mut(|s| {
                    if let Err(e) = decode_file_into(path, &mut s.bytes, &mut s.img) {
                        if self.cfg.on_bad != OnBad::Skip {
                            return Err(match e {
                                CoreError::Data(m) => CoreError::Data(format!(
                                    "{m} (remove or replace the file, or pass on_bad_image=\"skip\")"
                                )),
                                other => other,
                            });
                        }
                        if self.bad.fetch_add(1, Ordering::Relaxed) < 10 {
                            tracing::warn!("skipping unreadable image: {e}");
                        }
                        pad(px, label, index);
                        return Ok(());
                    }
                    let mut rng = sample_rng(self.cfg.seed, epoch, i);
                    let plan = plan(spec, s.img.width, s.img.height, &mut rng);
                    render_into(&s.img, &plan, ow, oh, &norm, px, &mut s.resample);
                    *label = self.data.labels[i as usize] as i64;
                    *index = i as i64;
                    Ok(())
                })
            })
    }
}

/// Per-thread buffers reused from image to image (file bytes, decoded pixels, the resampler's
/// intermediate planes): allocating them per image costs page faults on every image.
#[derive(Default)]
struct Scratch {
    bytes: Vec<u8>,
    img: Rgb,
    resample: Buffers,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::default();
}
