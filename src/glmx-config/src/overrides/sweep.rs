//! Sweeps: legality outside multirun, and expansion into the basic sweeper's job list
//! (cartesian product, first override varying slowest).

use super::{Override, Sweep, Value};
use crate::error::{ConfigError, Result};
use crate::limits;
use crate::tree::Node;

/// Errors when a sweep appears without `-m`, explaining the readings the user may have meant.
pub fn sweep_legal(overrides: &[Override], multirun: bool) -> Result<()> {
    for o in overrides {
        let Some(Value::Sweep(sweep)) = &o.value else {
            continue;
        };
        if multirun {
            if o.key.starts_with("hydra.") || o.key.starts_with("hydra/") {
                return Err(ConfigError::Override(format!(
                    "Sweeping over Hydra's configuration is not supported : '{}'",
                    o.input
                )));
            }
            continue;
        }
        return Err(ConfigError::Override(match sweep {
            Sweep::Choice { simple: true, .. } => format!(
                "Ambiguous value for argument '{}'\n1. To use it as a list, use key=[value1,value2]\n2. To use it as string, quote the value: key='value1,value2'\n3. To sweep over it, add --multirun to your command line",
                o.input
            ),
            _ => format!("Sweep parameters '{}' requires --multirun", o.input),
        }));
    }
    Ok(())
}

/// Expands sweeps into one override list per job. `options(group)` lists a group's options
/// for `glob`. More jobs than [`limits::max_sweep_jobs`] are refused.
pub fn expand_sweeps(
    overrides: &[Override],
    options: &dyn Fn(&str) -> Vec<String>,
) -> Result<Vec<Vec<String>>> {
    expand_sweeps_limited(overrides, options, limits::max_sweep_jobs())
}

fn too_many(jobs: &str, max_jobs: usize) -> ConfigError {
    ConfigError::Override(format!(
        "the sweep has {jobs} jobs, more than the limit of {max_jobs}; to run it anyway set the \
         environment variable {}={jobs}",
        limits::SWEEP_JOBS_VAR
    ))
}

/// [`expand_sweeps`] with an explicit job limit; the count is checked before any job is built.
pub fn expand_sweeps_limited(
    overrides: &[Override],
    options: &dyn Fn(&str) -> Vec<String>,
    max_jobs: usize,
) -> Result<Vec<Vec<String>>> {
    // The whole product is counted first (ranges arithmetically), so the error states the
    // real job count and nothing is allocated for a refused sweep.
    let mut product: u128 = 1;
    for o in overrides {
        if let Some(Value::Sweep(s)) = &o.value {
            product = product.saturating_mul(sweep_len(o, s, options));
        }
    }
    if product > max_jobs as u128 {
        let shown = if product == u128::MAX {
            "more than 2^128".to_string()
        } else {
            product.to_string()
        };
        return Err(too_many(&shown, max_jobs));
    }
    let mut axes: Vec<Vec<String>> = Vec::with_capacity(overrides.len());
    let mut total: usize = 1;
    for o in overrides {
        let values = match &o.value {
            Some(Value::Sweep(s)) => sweep_values(o, s, options, max_jobs)?,
            _ => {
                axes.push(vec![o.input.clone()]);
                continue;
            }
        };
        total = match total.checked_mul(values.len()) {
            Some(t) if t <= max_jobs => t,
            Some(t) => return Err(too_many(&t.to_string(), max_jobs)),
            None => return Err(too_many("more than 2^64", max_jobs)),
        };
        axes.push(values.iter().map(|v| o.with_value(v)).collect());
    }
    let mut jobs: Vec<Vec<String>> = vec![Vec::new()];
    for axis in axes {
        let mut next = Vec::with_capacity(jobs.len() * axis.len());
        for job in &jobs {
            for v in &axis {
                let mut j = job.clone();
                j.push(v.clone());
                next.push(j);
            }
        }
        jobs = next;
    }
    Ok(jobs)
}

/// Number of values of one sweep, without building them (0 for malformed ranges: the
/// expansion reports those).
fn sweep_len(o: &Override, s: &Sweep, options: &dyn Fn(&str) -> Vec<String>) -> u128 {
    let num = |n: &Node| match n {
        Node::Int(i) => Some(*i as f64),
        Node::Float(f) => Some(*f),
        _ => None,
    };
    match s {
        Sweep::Choice { values, .. } => values.len() as u128,
        Sweep::Range { start, stop, step } => match (start, stop, step) {
            (Node::Int(a), Node::Int(b), Node::Int(c)) if *c != 0 => {
                let (a, b, c) = (*a as i128, *b as i128, *c as i128);
                let span = if c > 0 { b - a } else { a - b };
                if span <= 0 {
                    0
                } else {
                    ((span + c.abs() - 1) / c.abs()) as u128
                }
            }
            _ => match (num(start), num(stop), num(step)) {
                (Some(a), Some(b), Some(c)) if c != 0.0 => {
                    let n = ((b - a) / c).ceil().max(0.0);
                    if n.is_finite() {
                        n as u128
                    } else {
                        u128::MAX
                    }
                }
                _ => 0,
            },
        },
        Sweep::Glob { .. } => sweep_values(o, s, options, usize::MAX)
            .map(|v| v.len() as u128)
            .unwrap_or(0),
        Sweep::Interval => 0,
    }
}

fn sweep_values(
    o: &Override,
    s: &Sweep,
    options: &dyn Fn(&str) -> Vec<String>,
    max_jobs: usize,
) -> Result<Vec<Node>> {
    Ok(match s {
        Sweep::Choice { values, .. } => values.clone(),
        Sweep::Range { start, stop, step } => range_values(o, start, stop, step, max_jobs)?,
        Sweep::Glob { include, exclude } => options(&o.key)
            .into_iter()
            .filter(|name| include.iter().any(|p| glob_match(p, name)))
            .filter(|name| !exclude.iter().any(|p| glob_match(p, name)))
            .map(Node::Str)
            .collect(),
        Sweep::Interval => {
            return Err(ConfigError::Override(format!(
                "'{}': interval() sweeps need an optimizing sweeper; the basic sweeper supports a,b / choice / range / glob",
                o.input
            )))
        }
    })
}

fn range_values(
    o: &Override,
    start: &Node,
    stop: &Node,
    step: &Node,
    max_jobs: usize,
) -> Result<Vec<Node>> {
    let bad = || ConfigError::Override(format!("'{}': range() arguments must be numbers", o.input));
    if let (Node::Int(a), Node::Int(b), Node::Int(c)) = (start, stop, step) {
        if *c == 0 {
            return Err(ConfigError::Override(format!(
                "'{}': range() step must not be zero",
                o.input
            )));
        }
        let (a, b, c) = (*a as i128, *b as i128, *c as i128);
        let span = if c > 0 { b - a } else { a - b };
        let n = if span <= 0 {
            0
        } else {
            (span + c.abs() - 1) / c.abs()
        };
        if n > max_jobs as i128 {
            return Err(too_many(&n.to_string(), max_jobs));
        }
        return Ok((0..n).map(|i| Node::Int((a + c * i) as i64)).collect());
    }
    let f = |n: &Node| match n {
        Node::Int(i) => Some(*i as f64),
        Node::Float(f) => Some(*f),
        _ => None,
    };
    let (a, b, c) = (
        f(start).ok_or_else(bad)?,
        f(stop).ok_or_else(bad)?,
        f(step).ok_or_else(bad)?,
    );
    if c == 0.0 {
        return Err(ConfigError::Override(format!(
            "'{}': range() step must not be zero",
            o.input
        )));
    }
    let n = ((b - a) / c).ceil().max(0.0);
    if !n.is_finite() || n > max_jobs as f64 {
        return Err(too_many(&format!("{n}"), max_jobs));
    }
    Ok((0..n as usize)
        .map(|i| Node::Float(a + c * i as f64))
        .collect())
}

/// fnmatch-style matching with `*` and `?`.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni, mut star, mut mark) = (0usize, 0usize, None::<usize>, 0usize);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::overrides::parse_override;

    #[test]
    fn cartesian_product_first_slowest() {
        let ovs: Vec<Override> = ["a=1,2", "b=range(0,2)", "c=x"]
            .iter()
            .map(|s| parse_override(s).unwrap())
            .collect();
        let jobs = expand_sweeps(&ovs, &|_| vec![]).unwrap();
        assert_eq!(jobs.len(), 4);
        assert_eq!(jobs[1], vec!["a=1", "b=1", "c=x"]);
    }

    #[test]
    fn huge_sweeps_are_refused_before_allocating() {
        let ovs: Vec<Override> = ["+a=range(0,100000)", "+b=range(0,100000)"]
            .iter()
            .map(|s| parse_override(s).unwrap())
            .collect();
        let e = expand_sweeps(&ovs, &|_| vec![]).unwrap_err().to_string();
        assert!(
            e.contains("10000000000 jobs") && e.contains("GLMX_MAX_SWEEP_JOBS"),
            "{e}"
        );
        let e = expand_sweeps_limited(&ovs, &|_| vec![], 1_000_000).unwrap_err();
        assert!(e.to_string().contains("10000000000 jobs"), "{e}");
        let big = vec![parse_override("a=range(0,9000000000000000000)").unwrap()];
        assert!(expand_sweeps(&big, &|_| vec![]).is_err());
        let neg = vec![parse_override("a=range(5,0,-2)").unwrap()];
        let jobs = expand_sweeps(&neg, &|_| vec![]).unwrap();
        assert_eq!(jobs, vec![vec!["a=5"], vec!["a=3"], vec!["a=1"]]);
        assert_eq!(
            expand_sweeps_limited(&ovs[..1], &|_| vec![], 100_000)
                .unwrap()
                .len(),
            100_000
        );
    }

    #[test]
    fn sweep_without_multirun_explains() {
        let ovs = vec![parse_override("a=1,2").unwrap()];
        let e = sweep_legal(&ovs, false).unwrap_err().to_string();
        assert!(e.contains("Ambiguous value") && e.contains("--multirun"));
        assert!(glob_match("a*", "abc") && !glob_match("a?", "abc"));
    }
}
