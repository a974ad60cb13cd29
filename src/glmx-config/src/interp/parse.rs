//! The `${...}` grammar: node references (`${a.b}`, `${.x}`, `${a[0]}`, nested `${k[${s}]}`),
//! resolver calls (`${oc.env:HOME,/tmp}`), escapes (`\${`) and quoted resolver arguments.

use crate::error::{ConfigError, Result};

/// A piece of a string value.
#[derive(Debug, Clone, PartialEq)]
pub enum Piece {
    /// Literal text.
    Text(String),
    /// A node reference; the key text may itself contain interpolations.
    Node(Vec<Piece>),
    /// A resolver call with its arguments.
    Call(String, Vec<Arg>),
}

/// One resolver argument.
#[derive(Debug, Clone, PartialEq)]
pub struct Arg {
    /// Its pieces.
    pub pieces: Vec<Piece>,
    /// Quoted: always a string.
    pub quoted: bool,
}

fn err<T>(s: &str, msg: &str) -> Result<T> {
    Err(ConfigError::Interpolation(format!(
        "cannot parse interpolation in '{s}': {msg}"
    )))
}

/// True when `s` needs interpolation (or escape) processing.
pub fn has_interp(s: &str) -> bool {
    s.contains("${")
}

/// Splits a string value into pieces. Braces nested deeper than
/// [`crate::limits::max_depth`] are refused (the parser recurses once per `${`).
pub fn parse(s: &str) -> Result<Vec<Piece>> {
    let chars: Vec<char> = s.chars().collect();
    let max_depth = crate::limits::max_depth();
    let (mut depth, mut deepest) = (0usize, 0usize);
    for ch in &chars {
        match ch {
            '{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    if deepest > max_depth {
        let shown: String = s.chars().take(60).collect();
        return Err(ConfigError::Interpolation(format!(
            "cannot parse interpolation in '{shown}...': {}",
            crate::limits::exceeded("brace nesting", max_depth, crate::limits::DEPTH_VAR)
        )));
    }
    let (pieces, _) = parse_seq(s, &chars, 0, false)?;
    Ok(pieces)
}

/// Parses text until the end (or, inside a key, until the closing `}`).
fn parse_seq(src: &str, c: &[char], mut i: usize, in_key: bool) -> Result<(Vec<Piece>, usize)> {
    let mut out = Vec::new();
    let mut text = String::new();
    while i < c.len() {
        if c[i] == '\\' && c.get(i + 1) == Some(&'$') && c.get(i + 2) == Some(&'{') {
            text.push_str("${");
            i += 3;
            continue;
        }
        if c[i] == '\\'
            && c.get(i + 1) == Some(&'\\')
            && c.get(i + 2) == Some(&'$')
            && c.get(i + 3) == Some(&'{')
        {
            text.push('\\');
            i += 2;
            continue;
        }
        if c[i] == '$' && c.get(i + 1) == Some(&'{') {
            if !text.is_empty() {
                out.push(Piece::Text(std::mem::take(&mut text)));
            }
            let (p, next) = parse_interp(src, c, i + 2)?;
            out.push(p);
            i = next;
            continue;
        }
        if in_key && (c[i] == '}' || c[i] == ']') {
            break;
        }
        text.push(c[i]);
        i += 1;
    }
    if !text.is_empty() {
        out.push(Piece::Text(text));
    }
    Ok((out, i))
}

fn parse_interp(src: &str, c: &[char], start: usize) -> Result<(Piece, usize)> {
    // Resolver: `name:` where name is a dotted identifier.
    let mut j = start;
    while j < c.len() && (c[j].is_alphanumeric() || c[j] == '_' || c[j] == '.' || c[j] == '-') {
        j += 1;
    }
    if j > start && c.get(j) == Some(&':') && !c[start].is_ascii_digit() && c[start] != '.' {
        let name: String = c[start..j].iter().collect();
        let (args, next) = parse_args(src, c, j + 1)?;
        return Ok((Piece::Call(name, args), next));
    }
    // Node reference: text with nested interpolations and [..] up to the closing brace.
    let mut pieces = Vec::new();
    let mut i = start;
    loop {
        let (mut p, next) = parse_seq(src, c, i, true)?;
        pieces.append(&mut p);
        i = next;
        match c.get(i) {
            Some('}') => return Ok((Piece::Node(merge_text(pieces)), i + 1)),
            Some(']') => {
                pieces.push(Piece::Text("]".into()));
                i += 1;
            }
            _ => return err(src, "missing '}'"),
        }
    }
}

fn merge_text(pieces: Vec<Piece>) -> Vec<Piece> {
    let mut out: Vec<Piece> = Vec::new();
    for p in pieces {
        match (out.last_mut(), p) {
            (Some(Piece::Text(a)), Piece::Text(b)) => a.push_str(&b),
            (_, p) => out.push(p),
        }
    }
    out
}

fn parse_args(src: &str, c: &[char], mut i: usize) -> Result<(Vec<Arg>, usize)> {
    let mut args = Vec::new();
    let mut cur: Vec<Piece> = Vec::new();
    let mut text = String::new();
    let mut quoted = false;
    let mut depth = 0usize;
    loop {
        let Some(&ch) = c.get(i) else {
            return err(src, "missing '}' after resolver arguments");
        };
        match ch {
            '\\' if matches!(
                c.get(i + 1),
                Some(',' | '\\' | '}' | '{' | '[' | ']' | '(' | ')' | ':' | '\'' | '"' | ' ')
            ) =>
            {
                text.push(c[i + 1]);
                i += 2;
            }
            '$' if c.get(i + 1) == Some(&'{') => {
                if !text.is_empty() {
                    cur.push(Piece::Text(std::mem::take(&mut text)));
                }
                let (p, next) = parse_interp(src, c, i + 2)?;
                cur.push(p);
                i = next;
            }
            '\'' | '"' if text.trim().is_empty() && cur.is_empty() => {
                let q = ch;
                i += 1;
                let mut s = String::new();
                loop {
                    match c.get(i) {
                        None => return err(src, "unterminated quoted argument"),
                        Some('\\') if c.get(i + 1) == Some(&q) => {
                            s.push(q);
                            i += 2;
                        }
                        Some(&x) if x == q => {
                            i += 1;
                            break;
                        }
                        Some('$') if c.get(i + 1) == Some(&'{') => {
                            if !s.is_empty() {
                                cur.push(Piece::Text(std::mem::take(&mut s)));
                            }
                            let (p, next) = parse_interp(src, c, i + 2)?;
                            cur.push(p);
                            i = next;
                        }
                        Some(&x) => {
                            s.push(x);
                            i += 1;
                        }
                    }
                }
                if !s.is_empty() {
                    cur.push(Piece::Text(s));
                }
                text.clear();
                quoted = true;
            }
            '[' | '{' => {
                depth += 1;
                text.push(ch);
                i += 1;
            }
            ']' if depth > 0 => {
                depth -= 1;
                text.push(ch);
                i += 1;
            }
            '}' if depth > 0 => {
                depth -= 1;
                text.push(ch);
                i += 1;
            }
            ',' | '}' if depth == 0 => {
                if !text.is_empty() {
                    cur.push(Piece::Text(std::mem::take(&mut text)));
                }
                let pieces = trim_pieces(std::mem::take(&mut cur));
                if !(pieces.is_empty() && ch == '}' && args.is_empty()) {
                    args.push(Arg { pieces, quoted });
                }
                quoted = false;
                i += 1;
                if ch == '}' {
                    return Ok((args, i));
                }
            }
            _ => {
                text.push(ch);
                i += 1;
            }
        }
    }
}

fn trim_pieces(mut p: Vec<Piece>) -> Vec<Piece> {
    if let Some(Piece::Text(t)) = p.first_mut() {
        *t = t.trim_start().to_string();
    }
    if let Some(Piece::Text(t)) = p.last_mut() {
        *t = t.trim_end().to_string();
    }
    p.retain(|x| !matches!(x, Piece::Text(t) if t.is_empty()));
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nested_and_resolvers() {
        let p = parse("a${x[${s}]}b").unwrap();
        assert_eq!(p.len(), 3);
        let p = parse("${oc.env:HOME, '/t,mp'}").unwrap();
        let Piece::Call(name, args) = &p[0] else {
            panic!()
        };
        assert_eq!(name, "oc.env");
        assert_eq!(args.len(), 2);
        assert!(args[1].quoted);
        assert_eq!(parse("\\${a}").unwrap(), vec![Piece::Text("${a}".into())]);
    }
}
