//! The defaults tree, following Hydra 1.3's algorithm: entries are expanded last-first so an
//! `override` in a later config (the experiment pattern) is known before the group it changes
//! is loaded; command-line choices win over `override` entries.

use std::collections::{BTreeSet, HashMap};

use super::repo::{Choice, Entry, Loaded, Repo};
use crate::error::{ConfigError, Result};

/// One node of the defaults tree.
#[derive(Debug, Clone)]
pub struct DNode {
    /// Group entry (`group: choice`) or config entry (`name`); `group` is `None` for configs.
    pub group: Option<String>,
    /// For groups: the choice; for configs: `Name(path)`.
    pub choice: Choice,
    /// `@pkg` as written.
    pub package: Option<String>,
    /// `optional`.
    pub optional: bool,
    /// `override`.
    pub is_override: bool,
    /// Added with `+group=x`.
    pub external_append: bool,
    /// The primary config.
    pub primary: bool,
    parent_base_dir: String,
    parent_package: String,
    package_header: Option<String>,
    /// Removed with `~group`, or optional and absent.
    pub deleted: bool,
}

fn pkg_opt(p: Option<String>) -> Option<String> {
    p.map(|p| if p == "_here_" { String::new() } else { p })
}

impl DNode {
    /// The primary config node.
    pub fn primary(path: &str) -> Self {
        let mut n = Self::config(path.to_string(), None);
        n.primary = true;
        n
    }

    /// A config entry.
    pub fn config(path: String, package: Option<String>) -> Self {
        Self {
            group: None,
            choice: Choice::Name(path),
            package: pkg_opt(package),
            optional: false,
            is_override: false,
            external_append: false,
            primary: false,
            parent_base_dir: String::new(),
            parent_package: String::new(),
            package_header: None,
            deleted: false,
        }
    }

    /// A group entry.
    pub fn group(
        group: String,
        choice: Choice,
        package: Option<String>,
        optional: bool,
        is_override: bool,
    ) -> Self {
        let mut n = Self::config(String::new(), package);
        n.group = Some(group);
        n.choice = choice;
        n.optional = optional;
        n.is_override = is_override;
        n
    }

    fn from_entry(e: &Entry) -> Option<Self> {
        match e {
            Entry::SelfRef => None,
            Entry::Config { path, package } => Some(Self::config(path.clone(), package.clone())),
            Entry::Group {
                group,
                package,
                choice,
                optional,
                is_override,
            } => Some(Self::group(
                group.clone(),
                choice.clone(),
                package.clone(),
                *optional,
                *is_override,
            )),
        }
    }

    fn update_parent(&mut self, base: &str, package: &str) {
        self.parent_base_dir = base.to_string();
        self.parent_package = package.to_string();
        if let Some(p) = &self.package {
            if p.contains("_group_") {
                let resolved = p.replace("_group_", &self.default_package());
                self.package = Some(format!("_global_.{resolved}"));
            }
        }
    }

    fn set_package_header(&mut self, header: Option<&str>) {
        let Some(h) = header else {
            return;
        };
        // Headers are absolute. As in hydra-core 1.3, `_group_` is a literal key here (its
        // pre-1.1 meaning, the group's package, is gone); say so, since it is rarely intended.
        if h.split('.').any(|part| part == "_group_") {
            tracing::warn!(
                "'# @package {h}': '_group_' in a package header is obsolete (Hydra 1.1+); it is \
                 a literal key here, as in hydra-core 1.3. Drop the header to use the group's \
                 package"
            );
        }
        let h = h.to_string();
        self.package_header = Some(if h == "_global_" || h.starts_with("_global_.") {
            h
        } else if h.is_empty() {
            "_global_".into()
        } else {
            format!("_global_.{h}")
        });
    }

    /// The option name (groups) or the config path's last part.
    pub fn name(&self) -> Option<&str> {
        match (&self.group, &self.choice) {
            (Some(_), Choice::Name(n)) => Some(n),
            (Some(_), _) => None,
            (None, Choice::Name(p)) => Some(p.rsplit('/').next().unwrap_or(p)),
            (None, _) => None,
        }
    }

    /// The absolute group path of this entry.
    pub fn group_path(&self) -> String {
        match &self.group {
            Some(g) => match g.strip_prefix('/') {
                Some(abs) => abs.to_string(),
                None if self.parent_base_dir.is_empty() => g.clone(),
                None => format!("{}/{g}", self.parent_base_dir),
            },
            None => {
                let Choice::Name(path) = &self.choice else {
                    return String::new();
                };
                let (abs, p) = match path.strip_prefix('/') {
                    Some(p) => (true, p),
                    None => (false, path.as_str()),
                };
                let group = p.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
                if abs || self.parent_base_dir.is_empty() {
                    group.to_string()
                } else if group.is_empty() {
                    self.parent_base_dir.clone()
                } else {
                    format!("{}/{group}", self.parent_base_dir)
                }
            }
        }
    }

    /// Path of the config file this entry loads (without extension).
    pub fn config_path(&self) -> String {
        let gp = self.group_path();
        let name = self.name().unwrap_or("");
        if gp.is_empty() {
            name.to_string()
        } else {
            format!("{gp}/{name}")
        }
    }

    fn relative_group_path(&self) -> String {
        match &self.group {
            Some(g) => g.trim_start_matches('/').to_string(),
            None => match &self.choice {
                Choice::Name(p) => p
                    .trim_start_matches('/')
                    .rsplit_once('/')
                    .map(|(g, _)| g.to_string())
                    .unwrap_or_default(),
                _ => String::new(),
            },
        }
    }

    fn default_package(&self) -> String {
        self.group_path().replace('/', ".")
    }

    fn package(&self, use_header: bool) -> Option<String> {
        if self.package.is_none() && use_header {
            self.package_header.clone()
        } else {
            self.package.clone()
        }
    }

    /// The package (dotted key) this entry's content lands at.
    pub fn final_package(&self, use_header: bool) -> String {
        let package = self
            .package(use_header)
            .unwrap_or_else(|| self.relative_group_path().replace('/', "."));
        let ret = if self.parent_package.is_empty() {
            package
        } else if package.is_empty() {
            self.parent_package.clone()
        } else {
            format!("{}.{package}", self.parent_package)
        };
        match ret.rfind("_global_") {
            None => ret,
            Some(i) => ret
                .get(i + "_global_".len() + 1..)
                .unwrap_or("")
                .to_string(),
        }
    }

    /// `group` or `group@pkg`: how overrides address this entry.
    pub fn override_key(&self) -> String {
        let default_pkg = self.default_package();
        let mut final_pkg = self.final_package(false);
        let key = self.group_path();
        if default_pkg != final_pkg {
            if final_pkg.is_empty() {
                final_pkg = "_global_".into();
            }
            return format!("{key}@{final_pkg}");
        }
        key
    }

    fn is_missing(&self) -> bool {
        matches!(&self.choice, Choice::Name(n) if n == "???")
    }
}

/// An expanded tree node; `children` is `None` for a leaf.
#[derive(Debug, Clone)]
pub struct Tree {
    /// The entry.
    pub node: DNode,
    /// Its expanded defaults (`None` for `_self_` markers and leaves).
    pub children: Option<Vec<Tree>>,
    /// True for a `_self_` marker.
    pub is_self: bool,
}

#[derive(Debug)]
struct OverrideMeta {
    external: bool,
    containing: Option<String>,
    used: bool,
}

/// Group choices and deletions collected from the command line and `override` entries.
#[derive(Debug, Default)]
pub struct Overrides {
    choices: HashMap<String, Choice>,
    meta: HashMap<String, OverrideMeta>,
    order: Vec<String>,
    /// `+group=x` entries appended to the primary config's defaults.
    pub appends: Vec<DNode>,
    deletions: HashMap<String, (Option<String>, bool)>,
    /// Final choice per override key (`hydra.runtime.choices`).
    pub known: indexmap::IndexMap<String, Option<String>>,
    known_per_group: HashMap<String, BTreeSet<String>>,
}

impl Overrides {
    /// Registers a command-line group choice (`group=x` or `group=[a,b]`).
    pub fn choose(&mut self, key: String, choice: Choice) {
        self.meta.insert(
            key.clone(),
            OverrideMeta {
                external: true,
                containing: None,
                used: false,
            },
        );
        self.order.push(key.clone());
        self.choices.insert(key, choice);
    }

    /// Registers `~group` / `~group=x`.
    pub fn delete(&mut self, key: String, name: Option<String>) {
        self.deletions.insert(key, (name, false));
    }

    fn add_override(&mut self, containing: &str, d: &DNode) {
        let key = d.override_key();
        if !self.choices.contains_key(&key) {
            self.meta.insert(
                key.clone(),
                OverrideMeta {
                    external: false,
                    containing: Some(containing.to_string()),
                    used: false,
                },
            );
            self.order.push(key.clone());
            self.choices.insert(key, d.choice.clone());
        }
    }

    fn set_known_choice(&mut self, d: &DNode) -> Result<()> {
        if d.group.is_none() {
            return Ok(());
        }
        let key = d.override_key();
        let name = d.name().map(str::to_string);
        match self.known.get(&key) {
            None => {
                self.known.insert(key.clone(), name);
            }
            Some(prev) if *prev != name => {
                return Err(ConfigError::Composition(format!(
                    "Multiple values for {key}. To override a value use 'override {key}: {}'",
                    prev.as_deref().unwrap_or("null")
                )))
            }
            Some(_) => {}
        }
        self.known_per_group
            .entry(d.group_path())
            .or_default()
            .insert(key);
        Ok(())
    }

    fn is_deleted(&self, d: &DNode) -> bool {
        if d.group.is_none() {
            return false;
        }
        match self.deletions.get(&d.override_key()) {
            Some((None, _)) => true,
            Some((Some(n), _)) => Some(n.as_str()) == d.name(),
            None => false,
        }
    }

    /// Errors for command-line choices or deletions that matched nothing.
    pub fn ensure_used(&self) -> Result<()> {
        for key in &self.order {
            let Some(meta) = self.meta.get(key) else {
                continue;
            };
            if meta.used {
                continue;
            }
            let group = key.split('@').next().unwrap_or(key);
            let choices = self.known_per_group.get(group).cloned().unwrap_or_default();
            let mut msg = match choices.len() {
                0 => format!("Could not override '{key}'. No match in the defaults list."),
                1 => format!(
                    "Could not override '{key}'.\nDid you mean to override {}?",
                    choices.iter().next().map(String::as_str).unwrap_or("")
                ),
                _ => format!(
                    "Could not override '{key}'.\nDid you mean to override one of {}?",
                    choices.iter().cloned().collect::<Vec<_>>().join(", ")
                ),
            };
            if let Some(c) = &meta.containing {
                msg = format!("In '{c}': {msg}");
            }
            if meta.external {
                let v = match self.choices.get(key) {
                    Some(Choice::Name(n)) => n.clone(),
                    Some(Choice::Options(o)) => format!("[{}]", o.join(",")),
                    _ => "null".into(),
                };
                msg.push_str(&format!("\nTo append to your default list use +{key}={v}"));
            }
            return Err(ConfigError::Composition(msg));
        }
        for (key, (name, used)) in &self.deletions {
            if !used {
                let desc = match name {
                    Some(n) => format!("{key}={n}"),
                    None => key.clone(),
                };
                return Err(ConfigError::Composition(format!(
                    "Could not delete '{desc}'. No match in the defaults list"
                )));
            }
        }
        Ok(())
    }
}

/// Builds the defaults tree for `root_children` (e.g. `hydra/config` and the primary).
pub fn build(repo: &Repo, roots: Vec<DNode>, ov: &mut Overrides) -> Result<Vec<Tree>> {
    let mut out = Vec::with_capacity(roots.len());
    for mut d in roots.into_iter().rev() {
        d.update_parent("", "");
        let primary = d.primary;
        let mut chain = Vec::new();
        out.push(expand(repo, d, primary, ov, None, &mut chain)?);
    }
    out.reverse();
    ov.ensure_used()?;
    Ok(out)
}

fn not_found(repo: &Repo, node: &DNode, parent: Option<&str>) -> ConfigError {
    let mut msg = if node.primary {
        format!(
            "Cannot find primary config '{}'. Check that it's in your config search path.\n",
            node.config_path()
        )
    } else if node.group.is_some() {
        let group = node.group_path();
        let options = repo.group_options(&group);
        let mut m = format!("Could not find '{}'\n", node.config_path());
        if !options.is_empty() {
            let list: Vec<String> = options.iter().map(|o| format!("\t{o}")).collect();
            m.push_str(&format!(
                "\nAvailable options in '{group}':\n{}\n",
                list.join("\n")
            ));
        }
        m
    } else {
        format!("Could not load '{}'.\n", node.config_path())
    };
    if let Some(p) = parent {
        msg = format!("In '{p}': {msg}");
    }
    msg.push_str(&repo.describe());
    ConfigError::Composition(msg)
}

fn leaf(node: DNode) -> Tree {
    Tree {
        node,
        children: None,
        is_self: false,
    }
}

fn expand(
    repo: &Repo,
    mut node: DNode,
    is_root: bool,
    ov: &mut Overrides,
    parent: Option<&str>,
    chain: &mut Vec<String>,
) -> Result<Tree> {
    if is_root && !repo.config_exists(&node.config_path()) {
        return Err(not_found(repo, &node, None));
    }
    if node.name().is_some() && !node.is_missing() {
        if let Some(l) = repo.load(&node.config_path())? {
            node.set_package_header(l.header.as_deref());
        }
    }
    if ov.is_deleted(&node) {
        node.deleted = true;
        if let Some(d) = ov.deletions.get_mut(&node.override_key()) {
            d.1 = true;
        }
        return Ok(leaf(node));
    }
    ov.set_known_choice(&node)?;
    if node.name().is_none() {
        return Ok(leaf(node));
    }
    if node.is_missing() {
        let group = node.group_path();
        let list: Vec<String> = repo
            .group_options(&group)
            .iter()
            .map(|o| format!("\t{o}"))
            .collect();
        return Err(ConfigError::Composition(format!(
            "You must specify '{group}', e.g, {group}=<OPTION>\nAvailable options:\n{}",
            list.join("\n")
        )));
    }
    let path = node.config_path();
    let Some(loaded) = repo.load(&path)? else {
        if node.optional {
            node.deleted = true;
            return Ok(leaf(node));
        }
        return Err(not_found(repo, &node, parent));
    };
    // A config that (through its defaults) includes itself would expand forever.
    if chain.contains(&path) {
        let mut cycle = chain.clone();
        cycle.push(path.clone());
        return Err(ConfigError::Composition(format!(
            "In '{}': defaults list cycle: {}; a config cannot include itself",
            loaded.file.display(),
            cycle.join(" -> ")
        )));
    }
    let max_depth = crate::limits::max_depth();
    if chain.len() >= max_depth {
        return Err(ConfigError::Composition(format!(
            "In '{}': {}",
            loaded.file.display(),
            crate::limits::exceeded("defaults list nesting", max_depth, crate::limits::DEPTH_VAR)
        )));
    }
    chain.push(path.clone());
    let out = expand_children(repo, node, is_root, ov, &path, &loaded, chain);
    chain.pop();
    out
}

fn expand_children(
    repo: &Repo,
    node: DNode,
    is_root: bool,
    ov: &mut Overrides,
    path: &str,
    loaded: &Loaded,
    chain: &mut Vec<String>,
) -> Result<Tree> {
    let path = path.to_string();
    let mut defaults: Vec<Entry> = loaded.defaults.clone().unwrap_or_default();
    let mut appended: Vec<DNode> = Vec::new();
    if !defaults.is_empty() || (is_root && !ov.appends.is_empty()) {
        validate_self(&path, &mut defaults)?;
    }
    let mut nodes: Vec<(Option<DNode>, bool)> = defaults
        .iter()
        .map(|e| (DNode::from_entry(e), matches!(e, Entry::SelfRef)))
        .collect();
    if is_root {
        let idx = nodes
            .iter()
            .position(|(d, _)| d.as_ref().is_some_and(|d| d.is_override))
            .unwrap_or(nodes.len());
        appended.append(&mut ov.appends);
        for (k, a) in appended.into_iter().enumerate() {
            nodes.insert(idx + k, (Some(a), false));
        }
    }
    let (base, pkg) = (node.group_path(), node.final_package(true));
    // Register `override` entries, which must come last.
    let mut last_override: Option<DNode> = None;
    for (d, _) in nodes.iter_mut() {
        let Some(d) = d else { continue };
        d.update_parent(&base, &pkg);
        if let Some(lo) = &last_override {
            if !(d.is_override || d.external_append) {
                return Err(ConfigError::Composition(format!(
                    "In {path}: Override '{} : {}' is defined before '{}: {}'.\nOverrides must be at the end of the defaults list",
                    lo.override_key(),
                    lo.name().unwrap_or("null"),
                    d.override_key(),
                    d.name().unwrap_or("null")
                )));
            }
        }
        if d.group.is_some() && d.is_override {
            last_override = Some(d.clone());
            ov.add_override(&path, d);
        }
    }
    let mut children: Vec<Tree> = Vec::new();
    // `- pair: ${db}` entries wait until every other entry's choice is known (as in Hydra).
    let mut deferred: Vec<(usize, DNode)> = Vec::new();
    for (d, is_self) in nodes.into_iter().rev() {
        if is_self {
            children.push(Tree {
                node: node.clone(),
                children: None,
                is_self: true,
            });
            continue;
        }
        let Some(mut d) = d else { continue };
        if d.is_override {
            continue;
        }
        if d.group.is_some() {
            let key = d.override_key();
            if let Some(choice) = ov.choices.get(&key).cloned() {
                d.choice = choice;
                if let Some(m) = ov.meta.get_mut(&key) {
                    m.used = true;
                }
            }
        }
        if let (Some(group), Choice::Options(items)) = (&d.group, &d.choice) {
            for item in items.iter().rev() {
                let mut c = DNode::config(format!("{group}/{item}"), d.package.clone());
                c.optional = d.optional;
                c.update_parent(&base, &pkg);
                children.push(expand(repo, c, false, ov, Some(&path), chain)?);
            }
            continue;
        }
        if matches!(&d.choice, Choice::Name(n) if n.contains("${")) && d.group.is_some() {
            deferred.push((children.len(), d));
            continue;
        }
        children.push(expand(repo, d, false, ov, Some(&path), chain)?);
    }
    for (k, (at, mut d)) in deferred.into_iter().enumerate() {
        if let Choice::Name(n) = &d.choice {
            d.choice = Choice::Name(interpolate_choice(n, &ov.known, &path)?);
        }
        children.insert(at + k, expand(repo, d, false, ov, Some(&path), chain)?);
    }
    children.reverse();
    // Hydra keeps a node without expanded defaults as a leaf (its content merges as itself).
    let children = if children.is_empty() {
        None
    } else {
        Some(children)
    };
    Ok(Tree {
        node,
        children,
        is_self: false,
    })
}

/// Resolves `${group}` references in a defaults-list choice from the known group choices
/// (Hydra's defaults-list interpolation: `- dataset_model: ${dataset}_${model}`).
fn interpolate_choice(
    value: &str,
    known: &indexmap::IndexMap<String, Option<String>>,
    path: &str,
) -> Result<String> {
    let fail = || {
        let keys: Vec<&str> = known.keys().map(String::as_str).collect();
        ConfigError::Composition(format!(
            "In '{path}': Error resolving interpolation '{value}', possible interpolation keys: {}",
            keys.join(", ")
        ))
    };
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or_else(fail)?;
        let key = after[..end].trim();
        match known.get(key) {
            Some(Some(choice)) => out.push_str(choice),
            _ => return Err(fail()),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn validate_self(path: &str, defaults: &mut Vec<Entry>) -> Result<()> {
    let mut has_self = false;
    let mut has_non_override = false;
    for d in defaults.iter() {
        if !matches!(
            d,
            Entry::Group {
                is_override: true,
                ..
            }
        ) {
            has_non_override = true;
        }
        if matches!(d, Entry::SelfRef) {
            if has_self {
                return Err(ConfigError::Composition(format!(
                    "Duplicate _self_ defined in {path}"
                )));
            }
            has_self = true;
        }
    }
    if !has_non_override && !defaults.is_empty() {
        defaults.insert(0, Entry::SelfRef);
    } else if !has_self {
        defaults.push(Entry::SelfRef);
    }
    Ok(())
}

/// One config to merge, in order.
#[derive(Debug, Clone)]
pub struct Flat {
    /// Config path (group/option).
    pub config_path: String,
    /// Dotted package it lands at.
    pub package: String,
    /// The entry that produced it (for `--info defaults`).
    pub parent: Option<String>,
}

/// The merge order: a depth-first walk where `_self_` stands for the node's own content.
pub fn flatten(trees: &[Tree]) -> Vec<Flat> {
    let mut out = Vec::new();
    for t in trees {
        walk(t, None, &mut out);
    }
    out
}

fn walk(t: &Tree, parent: Option<&str>, out: &mut Vec<Flat>) {
    if t.node.deleted || t.node.name().is_none() {
        return;
    }
    match &t.children {
        None => out.push(Flat {
            config_path: t.node.config_path(),
            package: t.node.final_package(true),
            parent: parent.map(str::to_string),
        }),
        Some(children) => {
            let me = t.node.config_path();
            for c in children {
                if c.is_self {
                    out.push(Flat {
                        config_path: me.clone(),
                        package: t.node.final_package(true),
                        parent: parent.map(str::to_string),
                    });
                } else {
                    walk(c, Some(&me), out);
                }
            }
        }
    }
}
