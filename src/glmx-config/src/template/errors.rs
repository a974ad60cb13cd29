//! minijinja errors turned into [`ConfigError::Template`] with the user's file and line, the
//! undefined variable's name and the inheritance chain; static detection of `extends` cycles.

use std::error::Error as _;

use minijinja::ErrorKind;

use super::{locate, Store};
use crate::error::{ConfigError, Result};

/// The literal target of the first `{% extends "x" %}` in `text`, if any.
fn extends_target(text: &str) -> Option<String> {
    let mut rest = text;
    while let Some(pos) = rest.find("{%") {
        let after = rest[pos + 2..].trim_start_matches(['-', '+']).trim_start();
        if let Some(arg) = after.strip_prefix("extends") {
            let arg = arg.trim_start();
            let quote = arg.chars().next()?;
            if quote == '"' || quote == '\'' {
                let inner = &arg[1..];
                let end = inner.find(quote)?;
                return Some(inner[..end].to_string());
            }
            return None;
        }
        rest = &rest[pos + 2..];
    }
    None
}

/// Follows literal `extends` from `name`; errors when a template is reached twice (for instance a
/// template that extends its own name, meaning a shadowed one further down the search path).
pub(super) fn extends_chain(store: &Store, name: &str) -> Result<Vec<String>> {
    let mut chain = vec![name.to_string()];
    let mut current = name.to_string();
    loop {
        let Some(text) = store.load(&current)? else {
            return Ok(chain);
        };
        let Some(parent) = extends_target(&text) else {
            return Ok(chain);
        };
        if chain.contains(&parent) {
            chain.push(parent);
            let location = locate(store, &current, None);
            return Err(ConfigError::Template {
                location,
                message: format!(
                    "template inheritance cycle: {}; a template cannot extend itself or one of \
                     its children (a name shadowed on the search path resolves to the first hit)",
                    chain.join(" -> ")
                ),
            });
        }
        chain.push(parent.clone());
        current = parent;
    }
}

/// Converts a minijinja error raised while rendering the chain `chain` (root first). Errors in
/// included templates arrive wrapped; the innermost one names the real place, the outer ones
/// become "included from" notes.
pub(super) fn convert(store: &Store, chain: &[String], err: minijinja::Error) -> ConfigError {
    let mut layers: Vec<&minijinja::Error> = vec![&err];
    let mut current: &minijinja::Error = &err;
    while let Some(inner) = current
        .source()
        .and_then(|s| s.downcast_ref::<minijinja::Error>())
    {
        layers.push(inner);
        current = inner;
    }
    let (innermost, outer) = match layers.split_last() {
        Some((last, rest)) => (*last, rest),
        None => (&err, &[][..]),
    };
    let (location, mut message) = describe(store, chain, innermost);
    for e in outer.iter().rev() {
        let name = e.name().unwrap_or_default();
        message.push_str(&format!(
            "\n  included from {}",
            locate(store, name, e.line())
        ));
    }
    ConfigError::Template { location, message }
}

fn describe(
    store: &Store,
    chain: &[String],
    err: &minijinja::Error,
) -> (crate::error::Location, String) {
    let name = err
        .name()
        .map(str::to_string)
        .or_else(|| chain.first().cloned())
        .unwrap_or_default();
    let location = locate(store, &name, err.line());
    let source = store.source(&name);
    let snippet = |range: std::ops::Range<usize>| {
        source
            .as_ref()
            .and_then(|s| s.translated.get(range))
            .map(str::to_string)
    };
    let mut message = match err.kind() {
        ErrorKind::UndefinedError => {
            let expr = err.range().and_then(snippet);
            match expr {
                Some(expr) => format!(
                    "undefined variable '{expr}': pass it as a variable or define it with \
                     `-- set`"
                ),
                None => format!(
                    "undefined variable: {}",
                    err.detail().unwrap_or("undefined value")
                ),
            }
        }
        ErrorKind::TemplateNotFound => {
            let dirs: Vec<String> = store
                .search_path()
                .iter()
                .map(|p| p.display().to_string())
                .collect();
            format!(
                "{}; search path: [{}]",
                err.detail().unwrap_or("template not found"),
                dirs.join(", ")
            )
        }
        kind => match err.detail() {
            Some(detail) => format!("{kind}: {detail}"),
            None => kind.to_string(),
        },
    };
    let mut cause = err.source();
    while let Some(c) = cause {
        if c.downcast_ref::<minijinja::Error>().is_none() {
            message.push_str(&format!("; caused by: {c}"));
        }
        cause = c.source();
    }
    if chain.len() > 1 || chain.first() != Some(&name) {
        message.push_str(&format!(" (template chain: {})", chain.join(" -> ")));
        if !chain.contains(&name) {
            message.push_str(&format!(", in '{name}'"));
        }
    }
    if let (Some(src), Some(line)) = (&source, err.line()) {
        if let Some(text) = src.translated.lines().nth(line.saturating_sub(1)) {
            message.push_str(&format!("\n  | {}", text.trim_end()));
        }
    }
    (location, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_extends_literal() {
        assert_eq!(
            extends_target("x\n{% extends 'a.yaml' %}"),
            Some("a.yaml".into())
        );
        assert_eq!(extends_target("{%- extends \"b\" -%}"), Some("b".into()));
        assert_eq!(extends_target("{% block a %}{% endblock %}"), None);
        assert_eq!(extends_target("{% extends x %}"), None);
    }
}
