//! Sample order and DDP sharding, both O(1) in memory and start-up time.
//!
//! Order: a keyed Feistel network on the smallest even power of two >= N, with cycle-walking
//! back into [0, N): a bijection of [0, N) per (seed, epoch), evaluated per position.
//!
//! Sharding: the global order is cut into global steps of `world * batch` positions; within a
//! step, rank r takes the r-th contiguous block. The order depends only on (seed, epoch), and a
//! position is just a count of samples consumed, so a run can resume on another world size or
//! batch size. The tail (< one global step) is split evenly: every rank gets `ceil(rest/world)`
//! positions and positions past N are padding (zero loss weight, `sample_index` -1).

use crate::data::transform::mix64;
use crate::data::Position;

/// A seeded bijection of `[0, n)`.
#[derive(Debug, Clone)]
pub struct Permutation {
    n: u64,
    half_bits: u32,
    half_mask: u64,
    keys: [u64; 4],
    identity: bool,
}

impl Permutation {
    /// The permutation of epoch `epoch`; `shuffle == false` gives the identity.
    pub fn new(n: u64, seed: u64, epoch: u64, shuffle: bool) -> Self {
        let bits = 64 - n.saturating_sub(1).leading_zeros();
        let half_bits = bits.div_ceil(2).max(1);
        let base =
            mix64(mix64(seed ^ 0x243f_6a88_85a3_08d3) ^ epoch.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let keys = [
            mix64(base ^ 1),
            mix64(base ^ 2),
            mix64(base ^ 3),
            mix64(base ^ 4),
        ];
        Permutation {
            n,
            half_bits,
            half_mask: (1u64 << half_bits) - 1,
            keys,
            identity: !shuffle,
        }
    }

    #[inline]
    fn feistel(&self, x: u64) -> u64 {
        let (mut l, mut r) = (x >> self.half_bits, x & self.half_mask);
        for k in self.keys {
            let f = mix64(r ^ k) & self.half_mask;
            (l, r) = (r, l ^ f);
        }
        (l << self.half_bits) | r
    }

    /// The element at position `i` (`i < n`).
    #[inline]
    pub fn apply(&self, i: u64) -> u64 {
        if self.identity {
            return i;
        }
        // Cycle-walking: the domain is < 4n, so this loops fewer than 4 times on average.
        let mut x = self.feistel(i);
        while x >= self.n {
            x = self.feistel(x);
        }
        x
    }
}

/// Which positions of the global order a rank reads.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Number of samples (windows) in the dataset.
    pub n: u64,
    /// Per-rank batch size.
    pub batch: u64,
    /// Number of ranks.
    pub world: u64,
    /// This rank.
    pub rank: u64,
    /// Drop the incomplete final global step instead of padding it.
    pub drop_last: bool,
}

/// One batch of one rank: global positions `[start, start + len)`, of which those `>= n` pad.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// First global position read by this rank.
    pub start: u64,
    /// Rows in this batch.
    pub len: u64,
    /// Global position after the whole step (all ranks): the resume point.
    pub next: u64,
}

impl Plan {
    fn global(&self) -> u64 {
        self.batch * self.world
    }

    /// Batches left in the epoch when `pos` samples have been consumed (same on every rank).
    pub fn batches_from(&self, pos: u64) -> u64 {
        let rest = self.n.saturating_sub(pos);
        let full = rest / self.global();
        full + u64::from(!self.drop_last && !rest.is_multiple_of(self.global()))
    }

    /// The step that starts at global position `pos`, or None at the end of the epoch.
    pub fn step_at(&self, pos: u64) -> Option<Step> {
        let rest = self.n.saturating_sub(pos);
        if rest == 0 {
            return None;
        }
        let g = self.global();
        if rest >= g {
            return Some(Step {
                start: pos + self.rank * self.batch,
                len: self.batch,
                next: pos + g,
            });
        }
        if self.drop_last {
            return None;
        }
        let per_rank = rest.div_ceil(self.world);
        Some(Step {
            start: pos + self.rank * per_rank,
            len: per_rank,
            next: self.n,
        })
    }

    /// Where the stream stands once `step` of `epoch` is consumed: what a checkpoint taken
    /// after that batch saves (the next epoch's start after the epoch's last step).
    pub fn position_after(&self, step: Step, epoch: u64) -> Position {
        if step.next >= self.n || self.step_at(step.next).is_none() {
            Position {
                epoch: epoch + 1,
                consumed: 0,
            }
        } else {
            Position {
                epoch,
                consumed: step.next,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn position_after_rolls_into_the_next_epoch_after_the_last_step() {
        let plan = |drop_last| Plan {
            n: 10,
            batch: 4,
            world: 1,
            rank: 0,
            drop_last,
        };
        let at = |epoch, consumed| Position { epoch, consumed };
        let keep = plan(false);
        let first = keep.step_at(0).unwrap();
        assert_eq!(keep.position_after(first, 3), at(3, 4));
        let last = keep.step_at(8).unwrap();
        assert_eq!(keep.position_after(last, 3), at(4, 0));
        let drop = plan(true);
        let second = drop.step_at(4).unwrap();
        assert_eq!(
            drop.position_after(second, 0),
            at(1, 0),
            "the partial step is dropped"
        );
    }

    #[test]
    fn permutation_is_a_bijection() {
        for n in [1u64, 2, 3, 7, 100, 1000, 4097] {
            let p = Permutation::new(n, 42, 3, true);
            let mut seen = vec![false; n as usize];
            for i in 0..n {
                let x = p.apply(i) as usize;
                assert!(!seen[x]);
                seen[x] = true;
            }
        }
        let a: Vec<u64> = (0..50)
            .map(|i| Permutation::new(50, 1, 0, true).apply(i))
            .collect();
        let b: Vec<u64> = (0..50)
            .map(|i| Permutation::new(50, 1, 1, true).apply(i))
            .collect();
        assert_ne!(a, b);
    }

    #[test]
    fn every_position_once_equal_steps() {
        for n in [1u64, 5, 63, 64, 65, 1001] {
            for world in 1..=8u64 {
                let mut counts = vec![0u32; n as usize];
                let mut steps = Vec::new();
                for rank in 0..world {
                    let plan = Plan {
                        n,
                        batch: 4,
                        world,
                        rank,
                        drop_last: false,
                    };
                    let (mut pos, mut k) = (0, 0);
                    while let Some(s) = plan.step_at(pos) {
                        for p in s.start..s.start + s.len {
                            if p < n {
                                counts[p as usize] += 1;
                            }
                        }
                        pos = s.next;
                        k += 1;
                    }
                    assert_eq!(k, plan.batches_from(0));
                    steps.push(k);
                }
                assert!(counts.iter().all(|&c| c == 1), "n={n} world={world}");
                assert!(steps.iter().all(|&k| k == steps[0]));
            }
        }
    }
}
