//! Recursive-descent parser for one override. Errors quote the override and point at the
//! character where parsing stopped.

use super::{Override, Prefix, Sweep, Value};
use crate::error::{ConfigError, Result};
use crate::tree::{Map, Node};

/// Parses one override such as `+trainer.max_epochs=3` or `model=[a,b]`.
pub fn parse_override(input: &str) -> Result<Override> {
    let mut p = Parser {
        s: input.chars().collect(),
        i: 0,
        input,
        depth: 0,
        max_depth: crate::limits::max_depth(),
    };
    p.parse()
}

struct Parser<'a> {
    s: Vec<char>,
    i: usize,
    input: &'a str,
    /// Open lists, dicts and function calls (the parser recurses once per level).
    depth: usize,
    max_depth: usize,
}

/// Characters that end an unquoted primitive (unless escaped).
const SPECIAL: &str = ",()[]{}='\"";

impl Parser<'_> {
    fn err<T>(&self, what: &str) -> Result<T> {
        // Long overrides are shown around the error position only.
        let (shown, col) = if self.s.len() > 120 {
            let start = self.i.saturating_sub(60);
            let end = (self.i + 60).min(self.s.len());
            let mut t: String = self.s[start..end].iter().collect();
            if start > 0 {
                t.insert_str(0, "...");
            }
            if end < self.s.len() {
                t.push_str("...");
            }
            (t, self.i - start + if start > 0 { 3 } else { 0 })
        } else {
            (self.input.to_string(), self.i)
        };
        let caret = " ".repeat(col);
        Err(ConfigError::Override(format!(
            "Error parsing override '{shown}'\n    {shown}\n    {caret}^ {what} (at position {})\nSee the override grammar: key=value, +key=value, ++key=value, ~key, group=option",
            self.i
        )))
    }

    /// Enters a list, dict or call; refuses nesting past the limit.
    fn enter(&mut self) -> Result<()> {
        if self.depth >= self.max_depth {
            return self.err(&crate::limits::exceeded(
                "nesting",
                self.max_depth,
                crate::limits::DEPTH_VAR,
            ));
        }
        self.depth += 1;
        Ok(())
    }

    fn peek(&self) -> Option<char> {
        self.s.get(self.i).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t')) {
            self.i += 1;
        }
    }

    fn parse(&mut self) -> Result<Override> {
        let prefix = if self.s.starts_with(&['+', '+']) {
            self.i = 2;
            Prefix::ForceAdd
        } else if self.s.first() == Some(&'+') {
            self.i = 1;
            Prefix::Add
        } else if self.s.first() == Some(&'~') {
            self.i = 1;
            Prefix::Delete
        } else {
            Prefix::Set
        };
        let start = self.i;
        while let Some(c) = self.peek() {
            if c.is_alphanumeric() || "_-./@$".contains(c) {
                self.i += 1;
            } else {
                break;
            }
        }
        let key_text: String = self.s[start..self.i].iter().collect();
        if key_text.is_empty() {
            return self.err("expected a key");
        }
        let (key, package) = match key_text.split_once('@') {
            Some((k, p)) => (k.to_string(), Some(p.to_string())),
            None => (key_text, None),
        };
        if key.is_empty() || key.ends_with('.') || key.starts_with('.') {
            return self.err("malformed key");
        }
        match self.peek() {
            None if prefix == Prefix::Delete => {
                return Ok(Override {
                    prefix,
                    key,
                    package,
                    value: None,
                    input: self.input.to_string(),
                })
            }
            None => return self.err("expected '=' after the key"),
            Some('=') => self.i += 1,
            Some(_) => return self.err("unexpected character in key; expected '='"),
        }
        let value = if self.i == self.s.len() {
            // `key=` sets the empty string, as in Hydra.
            Value::Node(Node::Str(String::new()))
        } else {
            self.parse_value()?
        };
        if self.i != self.s.len() {
            return self.err("unexpected character");
        }
        Ok(Override {
            prefix,
            key,
            package,
            value: Some(value),
            input: self.input.to_string(),
        })
    }

    /// value := element (',' element)*  -- several elements form a simple choice sweep.
    fn parse_value(&mut self) -> Result<Value> {
        let first = self.parse_element()?;
        if self.peek() != Some(',') {
            return Ok(first);
        }
        let mut values = vec![into_node(first, self)?];
        while self.peek() == Some(',') {
            self.i += 1;
            let next = self.parse_element()?;
            values.push(into_node(next, self)?);
        }
        Ok(Value::Sweep(Sweep::Choice {
            values,
            simple: true,
        }))
    }

    fn parse_element(&mut self) -> Result<Value> {
        self.skip_ws();
        let nests = matches!(self.peek(), Some('[' | '{')) || self.function_name().is_some();
        if nests {
            self.enter()?;
        }
        let v = match self.peek() {
            Some('[') => Value::Node(self.parse_list()?),
            Some('{') => Value::Node(self.parse_dict()?),
            Some('\'' | '"') => Value::Node(Node::Str(self.parse_quoted()?)),
            _ => {
                if let Some(name) = self.function_name() {
                    self.parse_function(name)?
                } else {
                    Value::Node(self.parse_primitive(false)?)
                }
            }
        };
        if nests {
            self.depth -= 1;
        }
        self.skip_ws();
        Ok(v)
    }

    fn function_name(&self) -> Option<String> {
        let mut j = self.i;
        while j < self.s.len() && (self.s[j].is_alphanumeric() || self.s[j] == '_') {
            j += 1;
        }
        if j > self.i && self.s.get(j) == Some(&'(') && !self.s[self.i].is_ascii_digit() {
            Some(self.s[self.i..j].iter().collect())
        } else {
            None
        }
    }

    fn parse_list(&mut self) -> Result<Node> {
        self.i += 1;
        let mut items = Vec::new();
        self.skip_ws();
        if self.peek() == Some(']') {
            self.i += 1;
            return Ok(Node::List(items));
        }
        loop {
            let v = self.parse_element()?;
            items.push(into_node(v, self)?);
            match self.peek() {
                Some(',') => self.i += 1,
                Some(']') => {
                    self.i += 1;
                    return Ok(Node::List(items));
                }
                _ => return self.err("expected ',' or ']'"),
            }
        }
    }

    fn parse_dict(&mut self) -> Result<Node> {
        self.i += 1;
        let mut map = Map::new();
        self.skip_ws();
        if self.peek() == Some('}') {
            self.i += 1;
            return Ok(Node::Map(map));
        }
        loop {
            self.skip_ws();
            let start = self.i;
            while let Some(c) = self.peek() {
                if c == ':' || SPECIAL.contains(c) {
                    break;
                }
                self.i += 1;
            }
            let key: String = self.s[start..self.i]
                .iter()
                .collect::<String>()
                .trim()
                .to_string();
            if key.is_empty() || self.peek() != Some(':') {
                return self.err("expected 'key:value' in dict");
            }
            self.i += 1;
            let v = self.parse_element()?;
            map.insert(key, into_node(v, self)?);
            match self.peek() {
                Some(',') => self.i += 1,
                Some('}') => {
                    self.i += 1;
                    return Ok(Node::Map(map));
                }
                _ => return self.err("expected ',' or '}'"),
            }
        }
    }

    fn parse_quoted(&mut self) -> Result<String> {
        let quote = self.s[self.i];
        self.i += 1;
        let mut out = String::new();
        while let Some(c) = self.peek() {
            self.i += 1;
            if c == '\\' {
                match self.peek() {
                    Some(n) if n == quote || n == '\\' => {
                        out.push(n);
                        self.i += 1;
                    }
                    _ => out.push('\\'),
                }
            } else if c == quote {
                return Ok(out);
            } else {
                out.push(c);
            }
        }
        self.err("unterminated quoted string")
    }

    /// An unquoted run of text; `${...}` is kept whole (its commas do not split a sweep).
    fn parse_primitive(&mut self, in_function: bool) -> Result<Node> {
        let start = self.i;
        let mut out = String::new();
        let mut plain = true;
        while let Some(c) = self.peek() {
            if c == '\\' {
                if let Some(n) = self.s.get(self.i + 1).copied() {
                    if "\\()[]{}:=, \t".contains(n) {
                        out.push(n);
                        self.i += 2;
                        plain = false;
                        continue;
                    }
                }
                out.push(c);
                self.i += 1;
            } else if c == '$' && self.s.get(self.i + 1) == Some(&'{') {
                let end = self.interp_end()?;
                out.extend(&self.s[self.i..end]);
                self.i = end;
                plain = false;
            } else if SPECIAL.contains(c) {
                if c == '=' && !in_function {
                    return self.err("'=' in a value must be escaped as '\\=' or quoted");
                }
                break;
            } else {
                out.push(c);
                self.i += 1;
            }
        }
        if self.i == start {
            return self.err("expected a value");
        }
        let trimmed = out.trim_matches(|c| c == ' ' || c == '\t');
        Ok(if plain {
            infer(trimmed)
        } else {
            Node::Str(trimmed.to_string())
        })
    }

    fn interp_end(&self) -> Result<usize> {
        let mut depth = 0usize;
        let mut j = self.i;
        while j < self.s.len() {
            match self.s[j] {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        return Ok(j + 1);
                    }
                }
                _ => {}
            }
            j += 1;
        }
        self.err("unterminated interpolation '${'")
    }

    fn parse_function(&mut self, name: String) -> Result<Value> {
        let fn_pos = self.i;
        self.i += name.chars().count() + 1;
        let mut args: Vec<Node> = Vec::new();
        let mut kwargs: Vec<(String, Node)> = Vec::new();
        self.skip_ws();
        if self.peek() == Some(')') {
            self.i += 1;
        } else {
            loop {
                self.skip_ws();
                let kw = self.keyword_arg();
                let v = self.parse_element()?;
                let node = match v {
                    Value::Sweep(Sweep::Choice { values, .. }) => Node::List(values),
                    other => into_node(other, self)?,
                };
                match kw {
                    Some(k) => kwargs.push((k, node)),
                    None => args.push(node),
                }
                match self.peek() {
                    Some(',') => self.i += 1,
                    Some(')') => {
                        self.i += 1;
                        break;
                    }
                    _ => return self.err("expected ',' or ')' in function call"),
                }
            }
        }
        let kw = |k: &str| kwargs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let strings = |n: &Node| -> Vec<String> {
            match n {
                Node::List(items) => items.iter().map(Node::to_py_str).collect(),
                other => vec![other.to_py_str()],
            }
        };
        Ok(match name.as_str() {
            "choice" => Value::Sweep(Sweep::Choice {
                values: args,
                simple: false,
            }),
            "range" => {
                let (start, stop, step) = match args.as_slice() {
                    [stop] => (Node::Int(0), stop.clone(), Node::Int(1)),
                    [a, b] => (a.clone(), b.clone(), kw("step").unwrap_or(Node::Int(1))),
                    [a, b, c] => (a.clone(), b.clone(), c.clone()),
                    _ => {
                        self.i = fn_pos;
                        return self.err("range() takes 1 to 3 arguments");
                    }
                };
                Value::Sweep(Sweep::Range { start, stop, step })
            }
            "glob" => {
                let include = args
                    .first()
                    .or(kw("include").as_ref())
                    .map(strings)
                    .unwrap_or_default();
                let exclude = args
                    .get(1)
                    .cloned()
                    .or(kw("exclude"))
                    .map(|n| strings(&n))
                    .unwrap_or_default();
                Value::Sweep(Sweep::Glob { include, exclude })
            }
            "interval" => Value::Sweep(Sweep::Interval),
            "extend_list" => Value::Extend(args),
            "tag" => match args.pop() {
                Some(n) => Value::Node(n),
                None => Value::Node(Node::Null),
            },
            "sort" => {
                let reverse = matches!(kw("reverse"), Some(Node::Bool(true)));
                let mut items = match args.as_slice() {
                    [Node::List(l)] => l.clone(),
                    _ => args.clone(),
                };
                items.sort_by(cmp_nodes);
                if reverse {
                    items.reverse();
                }
                if matches!(args.as_slice(), [Node::List(_)]) {
                    Value::Node(Node::List(items))
                } else {
                    Value::Sweep(Sweep::Choice {
                        values: items,
                        simple: false,
                    })
                }
            }
            "int" | "float" | "str" | "bool" => {
                let cast = |n: &Node| cast_node(&name, n);
                match args.as_slice() {
                    [one] => match one {
                        Node::List(l) => Value::Node(Node::List(
                            l.iter()
                                .map(cast)
                                .collect::<Option<_>>()
                                .ok_or_else(|| self.cast_err(&name))?,
                        )),
                        n => Value::Node(cast(n).ok_or_else(|| self.cast_err(&name))?),
                    },
                    many => Value::Sweep(Sweep::Choice {
                        values: many
                            .iter()
                            .map(cast)
                            .collect::<Option<_>>()
                            .ok_or_else(|| self.cast_err(&name))?,
                        simple: false,
                    }),
                }
            }
            other => {
                self.i = fn_pos;
                return self.err(&format!(
                    "unknown function '{other}'; known: choice, range, glob, interval, sort, extend_list, int, float, str, bool, tag"
                ));
            }
        })
    }

    fn cast_err(&self, name: &str) -> ConfigError {
        ConfigError::Override(format!(
            "Error parsing override '{}': cannot cast to {name}",
            self.input
        ))
    }

    fn keyword_arg(&mut self) -> Option<String> {
        let mut j = self.i;
        while j < self.s.len() && (self.s[j].is_alphanumeric() || self.s[j] == '_') {
            j += 1;
        }
        if j > self.i && self.s.get(j) == Some(&'=') {
            let k = self.s[self.i..j].iter().collect();
            self.i = j + 1;
            Some(k)
        } else {
            None
        }
    }
}

fn into_node(v: Value, p: &Parser<'_>) -> Result<Node> {
    match v {
        Value::Node(n) => Ok(n),
        _ => p.err("a sweep cannot be nested here"),
    }
}

fn cmp_nodes(a: &Node, b: &Node) -> std::cmp::Ordering {
    let num = |n: &Node| match n {
        Node::Int(i) => Some(*i as f64),
        Node::Float(f) => Some(*f),
        _ => None,
    };
    match (num(a), num(b)) {
        (Some(x), Some(y)) => x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal),
        _ => a.to_py_str().cmp(&b.to_py_str()),
    }
}

fn cast_node(name: &str, n: &Node) -> Option<Node> {
    Some(match (name, n) {
        ("str", n) => Node::Str(n.to_py_str()),
        ("int", Node::Int(i)) => Node::Int(*i),
        ("int", Node::Float(f)) => Node::Int(*f as i64),
        ("int", Node::Str(s)) => Node::Int(s.trim().parse().ok()?),
        ("int", Node::Bool(b)) => Node::Int(*b as i64),
        ("float", Node::Int(i)) => Node::Float(*i as f64),
        ("float", Node::Float(f)) => Node::Float(*f),
        ("float", Node::Str(s)) => Node::Float(s.trim().parse().ok()?),
        ("bool", Node::Bool(b)) => Node::Bool(*b),
        ("bool", Node::Int(i)) => Node::Bool(*i != 0),
        ("bool", Node::Str(s)) => match s.to_ascii_lowercase().as_str() {
            "true" => Node::Bool(true),
            "false" => Node::Bool(false),
            _ => return None,
        },
        _ => return None,
    })
}

/// Type inference for an unquoted primitive, following Hydra's lexer: `null`, booleans (any
/// case), ints (`1_000`, `+5`, no leading zeros), floats (`1e-3`, `.5`, `inf`, `nan`);
/// everything else is a string (`1.2.3`, `0x10`, `007`).
pub fn infer(s: &str) -> Node {
    let lower = s.to_ascii_lowercase();
    match lower.as_str() {
        "null" => return Node::Null,
        "true" => return Node::Bool(true),
        "false" => return Node::Bool(false),
        _ => {}
    }
    let (sign, body) = match lower.strip_prefix(['+', '-']) {
        Some(b) => (if lower.starts_with('-') { -1.0 } else { 1.0 }, b),
        None => (1.0, lower.as_str()),
    };
    if body == "inf" {
        return Node::Float(sign * f64::INFINITY);
    }
    if body == "nan" {
        return Node::Float(f64::NAN);
    }
    if is_int(body) {
        let digits: String = body.chars().filter(|c| *c != '_').collect();
        if let Ok(i) = digits.parse::<i64>() {
            return Node::Int(if sign < 0.0 { -i } else { i });
        }
    }
    if is_float(body) {
        let digits: String = body.chars().filter(|c| *c != '_').collect();
        if let Ok(f) = digits.parse::<f64>() {
            return Node::Float(sign * f);
        }
    }
    Node::Str(s.to_string())
}

fn is_uint(s: &str) -> bool {
    // DIGIT ('_'? DIGIT)*
    !s.is_empty()
        && s.starts_with(|c: char| c.is_ascii_digit())
        && s.ends_with(|c: char| c.is_ascii_digit())
        && s.chars().all(|c| c.is_ascii_digit() || c == '_')
        && !s.contains("__")
}

fn is_int(s: &str) -> bool {
    s == "0" || (is_uint(s) && !s.starts_with('0'))
}

fn is_float(s: &str) -> bool {
    let (mant, exp) = match s.split_once('e') {
        Some((m, e)) => (m, Some(e)),
        None => (s, None),
    };
    if let Some(e) = exp {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        if !is_uint(e) {
            return false;
        }
    }
    match mant.split_once('.') {
        Some((a, b)) => {
            (a.is_empty() || is_uint(a))
                && (b.is_empty() || is_uint(b))
                && !(a.is_empty() && b.is_empty())
        }
        None => exp.is_some() && is_uint(mant),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn val(s: &str) -> Value {
        parse_override(s).unwrap().value.unwrap()
    }

    #[test]
    fn infers_types_like_hydra() {
        assert_eq!(val("a=1_000"), Value::Node(Node::Int(1000)));
        assert_eq!(val("a=+5"), Value::Node(Node::Int(5)));
        assert_eq!(val("a=.5"), Value::Node(Node::Float(0.5)));
        assert_eq!(val("a=1e-3"), Value::Node(Node::Float(1e-3)));
        assert_eq!(val("a=TRUE"), Value::Node(Node::Bool(true)));
        assert_eq!(val("a=1.2.3"), Value::Node(Node::Str("1.2.3".into())));
        assert_eq!(val("a=0x10"), Value::Node(Node::Str("0x10".into())));
        assert_eq!(val("a='1'"), Value::Node(Node::Str("1".into())));
        assert_eq!(
            val("a=${oc.env:X,y}"),
            Value::Node(Node::Str("${oc.env:X,y}".into()))
        );
        assert_eq!(val("a=x\\,y"), Value::Node(Node::Str("x,y".into())));
    }

    #[test]
    fn parses_sweeps_and_containers() {
        assert!(matches!(
            val("a=1,2"),
            Value::Sweep(Sweep::Choice { simple: true, .. })
        ));
        assert!(matches!(
            val("a=range(1,4)"),
            Value::Sweep(Sweep::Range { .. })
        ));
        let Value::Node(Node::Map(m)) = val("a={x:1,y:[1,2]}") else {
            panic!()
        };
        assert_eq!(
            m.get("y"),
            Some(&Node::List(vec![Node::Int(1), Node::Int(2)]))
        );
    }

    #[test]
    fn error_points_at_position() {
        let e = parse_override("a=[1,2").unwrap_err().to_string();
        assert!(e.contains("'a=[1,2'") && e.contains("position 6"), "{e}");
    }
}
