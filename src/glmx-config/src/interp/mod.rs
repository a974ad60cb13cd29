//! Interpolation, resolved lazily against the final tree: node references keep the target's
//! type when a value is exactly one interpolation, mixed text becomes a string, results are
//! memoized per key and cycles are reported with their path.

mod parse;

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

pub use parse::{has_interp, Arg, Piece};

use crate::error::{ConfigError, Result};
use crate::limits;
use crate::overrides::parse::infer;
use crate::tree::{Map, Node};

/// Resolvers supplied by the caller (user resolvers, `now`). `None` means "unknown name".
pub trait Resolvers {
    /// Calls resolver `name` with resolved `args`; `key` is the full key being resolved.
    fn call(&mut self, name: &str, args: Vec<Node>, key: &str) -> Option<Result<Node>>;
}

/// No extra resolvers.
pub struct NoResolvers;

impl Resolvers for NoResolvers {
    fn call(&mut self, _: &str, _: Vec<Node>, _: &str) -> Option<Result<Node>> {
        None
    }
}

/// Resolves interpolations of one tree.
pub struct Interpolator<'a> {
    root: &'a Node,
    memo: HashMap<String, Node>,
    stack: Vec<String>,
    /// The keys on `stack`, for O(1) cycle checks.
    active: HashSet<String>,
    custom: &'a mut dyn Resolvers,
    max_depth: usize,
    /// Nodes that copying resolved containers may still create.
    nodes_left: usize,
}

fn join(path: &[String]) -> String {
    let mut s = String::new();
    for (i, p) in path.iter().enumerate() {
        if p.parse::<usize>().is_ok() && i > 0 {
            s.push_str(&format!("[{p}]"));
        } else {
            if i > 0 {
                s.push('.');
            }
            s.push_str(p);
        }
    }
    s
}

fn child<'n>(n: &'n Node, seg: &str) -> Option<&'n Node> {
    match n {
        Node::Map(m) => m.get(seg),
        Node::List(l) => l.get(seg.parse::<usize>().ok()?),
        _ => None,
    }
}

/// Splits `a.b[0].c` / `a[b]` into segments.
fn split_key(key: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = key.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '.' => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            '[' => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                let mut inner = String::new();
                for d in chars.by_ref() {
                    if d == ']' {
                        break;
                    }
                    inner.push(d);
                }
                out.push(inner.trim().to_string());
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

impl<'a> Interpolator<'a> {
    /// An interpolator over `root` with extra `custom` resolvers.
    pub fn new(root: &'a Node, custom: &'a mut dyn Resolvers) -> Self {
        Self {
            root,
            memo: HashMap::new(),
            stack: Vec::new(),
            active: HashSet::new(),
            custom,
            max_depth: limits::max_interpolation_depth(),
            nodes_left: limits::max_nodes(),
        }
    }

    /// The fully resolved tree; top-level keys in `skip` are left out.
    pub fn resolve_all(&mut self, skip: &[&str]) -> Result<Node> {
        let Node::Map(m) = self.root else {
            return self.resolve_path(&[]);
        };
        let mut out = Map::with_capacity(m.len());
        for k in m.keys() {
            if skip.contains(&k.as_str()) {
                continue;
            }
            let v = self.resolve_path(std::slice::from_ref(k))?;
            out.insert(k.clone(), v);
        }
        Ok(Node::Map(out))
    }

    /// The resolved value at dotted `key`, or `None` when absent.
    pub fn select(&mut self, key: &str) -> Result<Option<Node>> {
        let path = split_key(key);
        if self.raw(&path)?.is_none() {
            return Ok(None);
        }
        self.resolve_path(&path).map(Some)
    }

    /// The raw node at `path`, resolving interpolated intermediate containers on the way.
    /// Borrows from the tree while no intermediate needed resolving (no copies: resolving a
    /// list of N items stays linear).
    fn raw(&mut self, path: &[String]) -> Result<Option<Cow<'a, Node>>> {
        let mut cur: Cow<'a, Node> = Cow::Borrowed(self.root);
        for (i, seg) in path.iter().enumerate() {
            let next = match cur {
                Cow::Borrowed(node) => match node {
                    Node::Str(s) if has_interp(s) => {
                        let resolved = self.resolve_path(&path[..i])?;
                        match child(&resolved, seg) {
                            Some(c) => Cow::Owned(c.clone()),
                            None => return Ok(None),
                        }
                    }
                    other => match child(other, seg) {
                        Some(c) => Cow::Borrowed(c),
                        None => return Ok(None),
                    },
                },
                Cow::Owned(node) => match child(&node, seg) {
                    Some(c) => Cow::Owned(c.clone()),
                    None => return Ok(None),
                },
            };
            cur = next;
        }
        Ok(Some(cur))
    }

    /// Counts `n` against the node budget (copies of resolved containers).
    fn charge(&mut self, n: &Node) -> Result<()> {
        if matches!(n, Node::List(_) | Node::Map(_)) {
            let size = limits::count_nodes(n);
            if size > self.nodes_left {
                return Err(ConfigError::Interpolation(limits::exceeded(
                    "the number of nodes of the resolved config",
                    limits::max_nodes(),
                    limits::NODES_VAR,
                )));
            }
            self.nodes_left -= size;
        }
        Ok(())
    }

    fn resolve_path(&mut self, path: &[String]) -> Result<Node> {
        let key = join(path);
        if let Some(v) = self.memo.get(&key) {
            let v = v.clone();
            self.charge(&v)?;
            return Ok(v);
        }
        if self.active.contains(&key) {
            let pos = self.stack.iter().position(|k| *k == key).unwrap_or(0);
            let mut cycle: Vec<String> = self.stack[pos..].to_vec();
            cycle.push(key.clone());
            return Err(ConfigError::Interpolation(format!(
                "Interpolation cycle detected: {}",
                cycle.join(" -> ")
            )));
        }
        if self.stack.len() >= self.max_depth {
            return Err(ConfigError::Interpolation(format!(
                "{} at '{key}' (a chain of interpolations that refer to one another)",
                limits::exceeded(
                    "interpolation depth",
                    self.max_depth,
                    limits::INTERPOLATION_DEPTH_VAR
                )
            )));
        }
        let Some(raw) = self.raw(path)? else {
            return Err(ConfigError::Interpolation(format!("Key '{key}' not found")));
        };
        let raw = match raw {
            // Plain scalars need no bookkeeping.
            Cow::Borrowed(n) if !matches!(n, Node::Str(_) | Node::List(_) | Node::Map(_)) => {
                return Ok(n.clone())
            }
            Cow::Borrowed(Node::Str(s)) if !has_interp(s) => return Ok(Node::Str(s.clone())),
            other => other,
        };
        self.active.insert(key.clone());
        self.stack.push(key.clone());
        let out = match raw.as_ref() {
            Node::Str(s) if has_interp(s) => self.eval_string(s, path),
            Node::Map(m) => {
                let mut out = Map::with_capacity(m.len());
                let mut p = path.to_vec();
                let mut res = Ok(());
                for k in m.keys() {
                    p.push(k.clone());
                    match self.resolve_path(&p) {
                        Ok(v) => {
                            out.insert(k.clone(), v);
                        }
                        Err(e) => {
                            res = Err(e);
                            break;
                        }
                    }
                    p.pop();
                }
                res.map(|()| Node::Map(out))
            }
            Node::List(l) => {
                let mut out = Vec::with_capacity(l.len());
                let mut p = path.to_vec();
                let mut res = Ok(());
                for i in 0..l.len() {
                    p.push(i.to_string());
                    match self.resolve_path(&p) {
                        Ok(v) => out.push(v),
                        Err(e) => {
                            res = Err(e);
                            break;
                        }
                    }
                    p.pop();
                }
                res.map(|()| Node::List(out))
            }
            other => Ok(other.clone()),
        };
        self.stack.pop();
        self.active.remove(&key);
        let out = out?;
        self.memo.insert(key, out.clone());
        Ok(out)
    }

    /// Evaluates a string value found at `path`.
    fn eval_string(&mut self, s: &str, path: &[String]) -> Result<Node> {
        let pieces = parse::parse(s).map_err(|e| self.at(path, e))?;
        self.eval_pieces(&pieces, path, s)
    }

    fn at(&self, path: &[String], e: ConfigError) -> ConfigError {
        match e {
            ConfigError::Interpolation(m) if !m.contains("full_key:") => {
                ConfigError::Interpolation(format!("{m}\n    full_key: {}", join(path)))
            }
            other => other,
        }
    }

    fn eval_pieces(&mut self, pieces: &[Piece], path: &[String], src: &str) -> Result<Node> {
        if let [one] = pieces {
            return self.eval_piece(one, path, src);
        }
        let mut out = String::new();
        for p in pieces {
            out.push_str(&self.eval_piece(p, path, src)?.to_py_str());
        }
        Ok(Node::Str(out))
    }

    fn eval_piece(&mut self, piece: &Piece, path: &[String], src: &str) -> Result<Node> {
        match piece {
            Piece::Text(t) => Ok(Node::Str(t.clone())),
            Piece::Node(key_pieces) => {
                let key = self.eval_pieces(key_pieces, path, src)?.to_py_str();
                let target = self.target_path(&key, path);
                let target_key = join(&target);
                if self.raw(&target)?.is_none() {
                    return Err(self.at(
                        path,
                        ConfigError::Interpolation(format!("Interpolation key '{key}' not found")),
                    ));
                }
                let v = self.resolve_path(&target)?;
                if v.is_missing() {
                    return Err(self.at(
                        path,
                        ConfigError::Interpolation(format!(
                            "Missing mandatory value: {target_key} (needed by '{src}')"
                        )),
                    ));
                }
                Ok(v)
            }
            Piece::Call(name, args) => {
                let mut values = Vec::with_capacity(args.len());
                for a in args {
                    values.push(self.eval_arg(a, path, src)?);
                }
                self.call(name, values, path).map_err(|e| self.at(path, e))
            }
        }
    }

    fn eval_arg(&mut self, a: &Arg, path: &[String], src: &str) -> Result<Node> {
        if a.quoted {
            let mut out = String::new();
            for p in &a.pieces {
                out.push_str(&self.eval_piece(p, path, src)?.to_py_str());
            }
            return Ok(Node::Str(out));
        }
        match a.pieces.as_slice() {
            [] => Ok(Node::Str(String::new())),
            [Piece::Text(t)] => Ok(infer(t)),
            other => self.eval_pieces(other, path, src),
        }
    }

    /// Absolute segments of `key` as seen from the value at `path`.
    fn target_path(&self, key: &str, path: &[String]) -> Vec<String> {
        let dots = key.chars().take_while(|c| *c == '.').count();
        if dots == 0 {
            return split_key(key);
        }
        // One dot: the container of the value; each further dot goes one level up.
        let keep = path.len().saturating_sub(dots);
        let mut out = path[..keep].to_vec();
        out.extend(split_key(&key[dots..]));
        out
    }

    fn call(&mut self, name: &str, args: Vec<Node>, path: &[String]) -> Result<Node> {
        match name {
            "oc.env" => {
                let var = args.first().map(Node::to_py_str).unwrap_or_default();
                match std::env::var(&var) {
                    Ok(v) => Ok(Node::Str(v)),
                    Err(_) => match args.get(1) {
                        Some(Node::Null) => Ok(Node::Null),
                        Some(d) => Ok(Node::Str(d.to_py_str())),
                        None => Err(ConfigError::Interpolation(format!(
                            "Environment variable '{var}' not found"
                        ))),
                    },
                }
            }
            "oc.select" => {
                let key = args.first().map(Node::to_py_str).unwrap_or_default();
                let target = self.target_path(&key, path);
                let found = match self.raw(&target)? {
                    Some(_) => Some(self.resolve_path(&target)?),
                    None => None,
                };
                match found {
                    Some(v) if !v.is_missing() => Ok(v),
                    _ => Ok(args.get(1).cloned().unwrap_or(Node::Null)),
                }
            }
            "oc.decode" | "oc.create" => decode(name, args.into_iter().next()),
            "oc.dict.keys" | "oc.dict.values" => {
                let key = args.first().map(Node::to_py_str).unwrap_or_default();
                let target = self.target_path(&key, path);
                match self.resolve_path(&target)? {
                    Node::Map(m) => Ok(Node::List(if name == "oc.dict.keys" {
                        m.keys().cloned().map(Node::Str).collect()
                    } else {
                        m.values().cloned().collect()
                    })),
                    _ => Err(ConfigError::Interpolation(format!(
                        "{name}: '{key}' is not a mapping"
                    ))),
                }
            }
            "hydra" => {
                let key = args.first().map(Node::to_py_str).unwrap_or_default();
                let mut target = vec!["hydra".to_string()];
                target.extend(split_key(&key));
                if self.raw(&target)?.is_none() {
                    return Err(ConfigError::Interpolation(format!(
                        "'${{hydra:{key}}}': no such key in the hydra config"
                    )));
                }
                self.resolve_path(&target)
            }
            other => {
                let key = join(path);
                match self.custom.call(other, args, &key) {
                    Some(r) => r,
                    None => Err(ConfigError::Interpolation(format!(
                        "Unsupported interpolation type {other}"
                    ))),
                }
            }
        }
    }
}

/// `oc.decode` / `oc.create` of a string: read it as a value in the override grammar
/// (`"[1, 2]"` is a list, `"123"` an int, `"{a: 1}"` a mapping, `"true"` a bool), as
/// OmegaConf does; `null` stays null, and `oc.create` passes a list or mapping through.
fn decode(name: &str, arg: Option<Node>) -> Result<Node> {
    match arg {
        None | Some(Node::Null) => Ok(Node::Null),
        Some(Node::Str(text)) => {
            let parsed = crate::overrides::parse_override(&format!("decoded={text}"));
            match parsed.map(|o| o.value) {
                Ok(Some(crate::overrides::Value::Node(node))) => Ok(node),
                _ => Err(ConfigError::Interpolation(format!(
                    "{name}: cannot decode {text:?} as a value (a number, bool, null, quoted \
                     string, [list] or {{mapping}})"
                ))),
            }
        }
        Some(node @ (Node::List(_) | Node::Map(_))) if name == "oc.create" => Ok(node),
        Some(other) => Err(ConfigError::Interpolation(format!(
            "{name} takes a string, got {}",
            crate::overrides::node_text(&other)
        ))),
    }
}

/// Resolves every interpolation of `root` (keys in `skip` left out).
pub fn resolve(root: &Node, custom: &mut dyn Resolvers, skip: &[&str]) -> Result<Node> {
    Interpolator::new(root, custom).resolve_all(skip)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(y: &str) -> Node {
        Node::from_yaml(serde_yaml::from_str(y).unwrap(), "t").unwrap()
    }

    #[test]
    fn resolves_absolute_relative_indexed_nested() {
        let t = tree("a: {b: 1, c: '${.b}', d: '${..x}'}\nx: [10, 20]\ns: 1\ny: '${x[${s}]}'\nz: 'v=${a.b}'\ne: '\\${a}'");
        let r = resolve(&t, &mut NoResolvers, &[]).unwrap();
        let want =
            tree("a: {b: 1, c: 1, d: [10, 20]}\nx: [10, 20]\ns: 1\ny: 20\nz: 'v=1'\ne: '${a}'");
        assert_eq!(r, want);
    }

    #[test]
    fn reports_cycles_and_missing() {
        let e = resolve(&tree("a: '${b}'\nb: '${a}'"), &mut NoResolvers, &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("cycle") && e.contains("a -> b -> a"), "{e}");
        let e = resolve(&tree("m: {n: '???'}\nx: '${m.n}'"), &mut NoResolvers, &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("Missing mandatory value: m.n"), "{e}");
    }

    #[test]
    fn decode_and_create_read_values_as_omegaconf_does() {
        let t = tree(concat!(
            "l: '${oc.decode:\"[1, 2]\"}'\n",
            "i: '${oc.decode:\"123\"}'\n",
            "b: '${oc.decode:${s}}'\n",
            "s: 'true'\n",
            "m: \"${oc.create:'{a: 1}'}\"\n",
            "c: '${oc.create:${x}}'\n",
            "x: {k: v}\n",
            "n: '${oc.decode:null}'\n",
        ));
        let r = resolve(&t, &mut NoResolvers, &[]).unwrap();
        let want = tree(
            "l: [1, 2]\ni: 123\nb: true\ns: 'true'\nm: {a: 1}\nc: {k: v}\nx: {k: v}\nn: null\n",
        );
        assert_eq!(r, want);
        let e = resolve(&tree("d: '${oc.decode:\"[1,\"}'"), &mut NoResolvers, &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("oc.decode: cannot decode"), "{e}");
    }
}
