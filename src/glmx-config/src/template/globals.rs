//! Globals and filters available to every template: path helpers, `getenv`, `now`/`isotime`,
//! `hostname`, `project_dir`, the reference engine's `utcisotime`/`filetime`/`getcwd`/
//! `user_home_dir`/`forgather_config_dir`/`modname_from_path`, Python's str methods and the
//! `toyaml` filter.

use std::path::{Component, Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use minijinja::value::{Rest, Value};
use minijinja::{Environment, Error, ErrorKind};

/// Registers the globals and filters on `env`. `project_dir` is exposed as a string global.
pub fn register(env: &mut Environment<'static>, project_dir: &Path) {
    // Python's str/dict/list methods (`"{:-^39}".format(t)`, `s.split()`, `d.items()`), which
    // the reference engine's templates call as Jinja2 allows.
    env.set_unknown_method_callback(|state, value, method, args| {
        let result =
            minijinja_contrib::pycompat::unknown_method_callback(state, value, method, args);
        if method != "format" || value.as_str().is_none() {
            return result;
        }
        result.map_err(|e| {
            let detail = e.detail().unwrap_or("invalid format string").to_string();
            Error::new(
                ErrorKind::InvalidOperation,
                format!(
                    "str.format: {detail} (supported: fill, align, sign, width, grouping, \
                     precision and the types s d b o x X c e E f F g G)"
                ),
            )
        })
    });
    env.add_global("project_dir", project_dir.to_string_lossy().into_owned());
    env.add_global("hostname", hostname());
    env.add_function("joinpath", |parts: Rest<String>| -> String {
        let mut path = PathBuf::new();
        for part in parts.iter() {
            path.push(part);
        }
        path.to_string_lossy().into_owned()
    });
    env.add_function("normpath", |p: String| normpath(Path::new(&p)));
    env.add_function("abspath", |p: String| -> Result<String, Error> {
        let cwd = std::env::current_dir()
            .map_err(|e| Error::new(ErrorKind::InvalidOperation, format!("abspath: {e}")))?;
        Ok(normpath(&cwd.join(p)))
    });
    env.add_function("dirname", |p: String| -> String {
        Path::new(&p)
            .parent()
            .map(|d| d.to_string_lossy().into_owned())
            .unwrap_or_default()
    });
    env.add_function("basename", |p: String| -> String {
        Path::new(&p)
            .file_name()
            .map(|d| d.to_string_lossy().into_owned())
            .unwrap_or_default()
    });
    env.add_function("getenv", |name: String, default: Option<Value>| -> Value {
        match std::env::var(&name) {
            Ok(v) => Value::from(v),
            Err(_) => default.unwrap_or(Value::from(())),
        }
    });
    env.add_function("now", |fmt: Option<String>| -> String {
        strftime(fmt.as_deref().unwrap_or("%Y-%m-%d %H:%M:%S"))
    });
    env.add_function("isotime", || strftime("%Y-%m-%dT%H:%M:%S"));
    // The reference engine's names: `utc*` are UTC there, the others local time; glmx's clock
    // is UTC for all (a config renders the same on every host).
    env.add_function("utcisotime", || strftime("%Y-%m-%dT%H:%M:%S"));
    env.add_function("filetime", || strftime("%Y-%m-%dT%H-%M-%S"));
    env.add_function("utcfiletime", || strftime("%Y-%m-%dT%H-%M-%S"));
    env.add_function("getcwd", || -> Result<String, Error> {
        std::env::current_dir()
            .map(|d| d.to_string_lossy().into_owned())
            .map_err(|e| Error::new(ErrorKind::InvalidOperation, format!("getcwd: {e}")))
    });
    env.add_function("user_home_dir", user_home_dir);
    env.add_function("forgather_config_dir", forgather_config_dir);
    env.add_function("modname_from_path", |p: String| modname_from_path(&p));
    // YAML text by construction: marked safe so the output formatter inserts it as is.
    env.add_filter("toyaml", |v: Value| -> Result<Value, Error> {
        let json = serde_json::to_value(&v)
            .map_err(|e| Error::new(ErrorKind::InvalidOperation, format!("toyaml: {e}")))?;
        Ok(Value::from_safe_string(to_flow_yaml(&json)))
    });
}

/// Python's `os.path.expanduser("~")`: `$HOME`, else `~` unchanged.
fn user_home_dir() -> String {
    std::env::var("HOME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "~".to_string())
}

/// platformdirs' `user_config_dir("forgather")`, the reference engine's per-user config folder:
/// `$XDG_CONFIG_HOME/forgather` or `~/.config/forgather` (macOS: `~/Library/Application
/// Support/forgather`).
fn forgather_config_dir() -> String {
    if cfg!(target_os = "macos") {
        return format!("{}/Library/Application Support/forgather", user_home_dir());
    }
    let base = std::env::var("XDG_CONFIG_HOME")
        .ok()
        .filter(|d| !d.trim().is_empty())
        .unwrap_or_else(|| format!("{}/.config", user_home_dir()));
    format!("{}/forgather", base.trim_end_matches('/'))
}

/// Python's `os.path.splitext(os.path.basename(path))[0]`: the module name of a file path
/// (`a/b/model.py` -> `model`; a leading dot is not an extension: `.env` -> `.env`).
pub fn modname_from_path(path: &str) -> String {
    let base = path.rsplit('/').next().unwrap_or(path);
    let lead = base.len() - base.trim_start_matches('.').len();
    match base[lead..].rfind('.') {
        Some(i) => base[..lead + i].to_string(),
        None => base.to_string(),
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "localhost".to_string())
}

/// Lexical normalisation like Python's `os.path.normpath`.
pub fn normpath(path: &Path) -> String {
    let mut out: Vec<Component<'_>> = Vec::new();
    for comp in path.components() {
        match comp {
            Component::CurDir => {}
            Component::ParentDir => match out.last() {
                Some(Component::Normal(_)) => {
                    out.pop();
                }
                Some(Component::RootDir) => {}
                _ => out.push(comp),
            },
            other => out.push(other),
        }
    }
    if out.is_empty() {
        return ".".to_string();
    }
    out.iter()
        .collect::<PathBuf>()
        .to_string_lossy()
        .into_owned()
}

/// Formats the current UTC time; supports `%Y %m %d %H %M %S %j %s %%`.
fn strftime(fmt: &str) -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let mut out = String::new();
    let mut chars = fmt.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('Y') => out.push_str(&format!("{y:04}")),
            Some('m') => out.push_str(&format!("{m:02}")),
            Some('d') => out.push_str(&format!("{d:02}")),
            Some('H') => out.push_str(&format!("{:02}", rem / 3600)),
            Some('M') => out.push_str(&format!("{:02}", rem % 3600 / 60)),
            Some('S') => out.push_str(&format!("{:02}", rem % 60)),
            Some('s') => out.push_str(&secs.to_string()),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

/// Days since 1970-01-01 to (year, month, day), Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// YAML flow text for a value, usable inline after `key: `.
pub fn to_flow_yaml(v: &serde_json::Value) -> String {
    use serde_json::Value as J;
    match v {
        J::Null => "null".into(),
        J::Bool(b) => b.to_string(),
        J::Number(n) => n.to_string(),
        J::String(s) => yaml_str(s),
        J::Array(items) => {
            let inner: Vec<String> = items.iter().map(to_flow_yaml).collect();
            format!("[{}]", inner.join(", "))
        }
        J::Object(map) => {
            let inner: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{}: {}", yaml_str(k), to_flow_yaml(v)))
                .collect();
            format!("{{{}}}", inner.join(", "))
        }
    }
}

/// A string as a plain scalar when that reads back as the same string, else double-quoted.
pub fn yaml_str(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars().all(|c| c.is_alphanumeric() || "_./-".contains(c))
        && !s.starts_with(['-', '.'])
        && crate::yaml::resolve_plain(s).is_str();
    if plain {
        s.to_string()
    } else {
        serde_json::Value::String(s.to_string()).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normpath_like_python() {
        assert_eq!(normpath(Path::new("a/./b/../c")), "a/c");
        assert_eq!(normpath(Path::new("/../x")), "/x");
        assert_eq!(normpath(Path::new("")), ".");
    }

    #[test]
    fn modname_like_python() {
        // os.path.splitext(os.path.basename(p))[0] in CPython 3.12
        let cases = [
            ("src/models/causal_lm.py", "causal_lm"),
            ("a.tar.gz", "a.tar"),
            (".env", ".env"),
            ("..a.b", "..a"),
            ("dir/", ""),
            ("plain", "plain"),
        ];
        for (p, want) in cases {
            assert_eq!(modname_from_path(p), want, "{p}");
        }
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
    }

    #[test]
    fn flow_yaml_round_trips_types() {
        let v = serde_json::json!({"a": [1, "true", "x y", null], "b": "plain"});
        assert_eq!(
            to_flow_yaml(&v),
            "{a: [1, \"true\", \"x y\", null], b: plain}"
        );
    }
}
