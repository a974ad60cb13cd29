//! Resource limits of the config engine: each one a documented setting (an environment
//! variable), checked where input could otherwise exhaust the stack, memory or time.
//!
//! | setting | default | bounds |
//! |---|---|---|
//! | `GLMX_CONFIG_MAX_DEPTH` | 200 | nesting of YAML, overrides, `${...}` keys, defaults lists |
//! | `GLMX_CONFIG_MAX_INTERPOLATION_DEPTH` | 500 | interpolations resolved inside one another |
//! | `GLMX_CONFIG_MAX_ALIAS_NODES` | 100000 | nodes created by expanding YAML aliases |
//! | `GLMX_CONFIG_MAX_NODES` | 10000000 | nodes of a resolved config |
//! | `GLMX_MAX_SWEEP_JOBS` | 10000 | jobs of one multirun sweep |
//!
//! A value that is not a positive integer falls back to the default. The depth limits are
//! capped (at 5,000 and 2,000) so a setting cannot reintroduce a stack overflow: the defaults
//! fit a 2 MiB thread stack, the caps an 8 MiB one (the main thread's usual size).

/// Nesting depth of YAML collections, override values, `${...}` keys and defaults lists.
pub const DEPTH_VAR: &str = "GLMX_CONFIG_MAX_DEPTH";
/// Interpolations resolved inside one another (a chain `a: ${b}`, `b: ${c}`...).
pub const INTERPOLATION_DEPTH_VAR: &str = "GLMX_CONFIG_MAX_INTERPOLATION_DEPTH";
/// Nodes created by expanding YAML aliases (a "billion laughs" document is refused).
pub const ALIAS_NODES_VAR: &str = "GLMX_CONFIG_MAX_ALIAS_NODES";
/// Nodes of one resolved config (interpolations that copy containers count every copy).
pub const NODES_VAR: &str = "GLMX_CONFIG_MAX_NODES";
/// Jobs of one multirun sweep (a cartesian product past it is refused unless raised).
pub const SWEEP_JOBS_VAR: &str = "GLMX_MAX_SWEEP_JOBS";

fn setting(var: &str, default: usize, cap: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|v| *v > 0)
        .unwrap_or(default)
        .min(cap)
}

/// Deepest nesting accepted (default 200; at most 5,000).
pub fn max_depth() -> usize {
    setting(DEPTH_VAR, 200, 5_000)
}

/// Longest chain of nested interpolations (default 500; at most 2,000). Each step takes about
/// 2.5 KiB of stack.
pub fn max_interpolation_depth() -> usize {
    setting(INTERPOLATION_DEPTH_VAR, 500, 2_000)
}

/// Most nodes alias expansion may create (default 100,000).
pub fn max_alias_nodes() -> usize {
    setting(ALIAS_NODES_VAR, 100_000, usize::MAX)
}

/// Most nodes of a resolved config (default 10,000,000).
pub fn max_nodes() -> usize {
    setting(NODES_VAR, 10_000_000, usize::MAX)
}

/// Most jobs of a sweep (default 10,000).
pub fn max_sweep_jobs() -> usize {
    setting(SWEEP_JOBS_VAR, 10_000, usize::MAX)
}

/// The message for an exceeded limit: what, the limit, and the setting that raises it.
pub fn exceeded(what: &str, limit: usize, var: &str) -> String {
    format!("{what} exceeds the limit of {limit} (raise it with the environment variable {var})")
}

/// Number of nodes in `n`, counting every container and scalar once.
pub fn count_nodes(n: &crate::tree::Node) -> usize {
    use crate::tree::Node;
    let mut stack = vec![n];
    let mut count = 0usize;
    while let Some(n) = stack.pop() {
        count += 1;
        match n {
            Node::List(items) => stack.extend(items.iter()),
            Node::Map(m) => stack.extend(m.values()),
            _ => {}
        }
    }
    count
}

/// Whether `name` (a config or template name such as `experiment/gpn` or `configs/a.yaml`)
/// stays inside the directory it is looked up in: relative, no `..` component, no NUL.
pub fn name_stays_inside(name: &str) -> bool {
    use std::path::{Component, Path};
    !name.contains('\0')
        && !name.starts_with('~')
        && Path::new(name)
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

/// The error text for a name that would leave its search path.
pub fn outside_message(kind: &str, name: &str) -> String {
    format!(
        "{kind} name '{name}' leaves the config search path; names are relative paths inside \
         it, without '..' or a leading '/'"
    )
}
