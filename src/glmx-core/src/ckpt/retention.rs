//! Which committed checkpoints to delete: keep the newest `save_total_limit`, plus the best
//! `keep_best` by a monitored metric; never the newest one and never a kept-best one.

/// `min`: lower is better; `max`: higher is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Lower is better (losses).
    Min,
    /// Higher is better (accuracies).
    Max,
}

impl Mode {
    /// Parses `min` / `max`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "min" => Some(Self::Min),
            "max" => Some(Self::Max),
            _ => None,
        }
    }

    /// The name stored in manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Min => "min",
            Self::Max => "max",
        }
    }
}

/// Steps of the best `k` checkpoints, best first. NaN and missing metrics never count as best;
/// ties prefer the newer step.
pub fn best_steps(candidates: &[(u64, Option<f64>)], k: usize, mode: Mode) -> Vec<u64> {
    let mut scored: Vec<(u64, f64)> = candidates
        .iter()
        .filter_map(|&(s, m)| m.filter(|v| !v.is_nan()).map(|v| (s, v)))
        .collect();
    scored.sort_by(|a, b| {
        let ord = a.1.total_cmp(&b.1);
        let ord = if mode == Mode::Max {
            ord.reverse()
        } else {
            ord
        };
        ord.then(b.0.cmp(&a.0))
    });
    scored.into_iter().take(k).map(|(s, _)| s).collect()
}

/// Steps to delete, oldest first. `candidates` are all committed checkpoints as
/// `(step, monitored metric)`.
pub fn plan_deletions(
    candidates: &[(u64, Option<f64>)],
    save_total_limit: Option<usize>,
    keep_best: usize,
    mode: Mode,
) -> Vec<u64> {
    let Some(limit) = save_total_limit else {
        return Vec::new();
    };
    let Some(newest) = candidates.iter().map(|c| c.0).max() else {
        return Vec::new();
    };
    let protected = best_steps(candidates, keep_best, mode);
    let mut steps: Vec<u64> = candidates.iter().map(|c| c.0).collect();
    steps.sort_unstable();
    let mut remaining = steps.len();
    let mut delete = Vec::new();
    for step in steps {
        if remaining <= limit.max(1) {
            break;
        }
        if step == newest || protected.contains(&step) {
            continue;
        }
        delete.push(step);
        remaining -= 1;
    }
    delete
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_newest_and_best() {
        let c = [
            (1, Some(0.5)),
            (2, Some(0.1)),
            (3, Some(0.9)),
            (4, Some(0.7)),
            (5, Some(0.8)),
        ];
        assert_eq!(plan_deletions(&c, Some(2), 1, Mode::Min), vec![1, 3, 4]);
        assert_eq!(plan_deletions(&c, Some(2), 0, Mode::Min), vec![1, 2, 3]);
        assert_eq!(plan_deletions(&c, Some(3), 1, Mode::Max), vec![1, 2]);
        // Limit 0 still keeps the newest.
        assert_eq!(plan_deletions(&c, Some(0), 0, Mode::Min), vec![1, 2, 3, 4]);
        // Best-k larger than the limit: the kept-best survive anyway.
        assert_eq!(plan_deletions(&c, Some(1), 3, Mode::Min), vec![3]);
        assert!(plan_deletions(&c, None, 2, Mode::Min).is_empty());
    }

    #[test]
    fn nan_is_never_best() {
        let c = [(1, Some(f64::NAN)), (2, Some(3.0)), (3, None)];
        assert_eq!(best_steps(&c, 2, Mode::Min), vec![2]);
        assert_eq!(
            best_steps(&[(1, Some(1.0)), (2, Some(1.0))], 1, Mode::Max),
            vec![2]
        );
    }
}
