//! Python's `repr` of a list or dict, as Jinja2 prints `{{ value }}` of one.
//!
//! Template projects were written against Jinja2, where `{{ ["en"] }}` renders `['en']`
//! (`str()` of a Python list); minijinja's own display is `["en"]`. YAML reads both as the same
//! list, but `pp` output, comments and strings built from such values must be the bytes the
//! reference renders. Floats print as Python's `repr` (`1e-05`, `1e+20`, `0.001`); other
//! scalars keep minijinja's display, which already follows Python (`True`, `None`).

use std::fmt::{self, Write};

use minijinja::value::{Value, ValueKind};

/// Writes `value` as Python's `repr` would: lists `[a, b]`, dicts `{k: v}`, strings quoted.
pub(crate) fn write_repr<W: Write>(out: &mut W, value: &Value) -> fmt::Result {
    match value.kind() {
        ValueKind::String => match value.as_str() {
            Some(s) => write_str_repr(out, s),
            None => write!(out, "{value}"),
        },
        ValueKind::Seq | ValueKind::Iterable => {
            out.write_char('[')?;
            if let Ok(items) = value.try_iter() {
                for (i, item) in items.enumerate() {
                    if i > 0 {
                        out.write_str(", ")?;
                    }
                    write_repr(out, &item)?;
                }
            }
            out.write_char(']')
        }
        ValueKind::Map => {
            out.write_char('{')?;
            if let Ok(keys) = value.try_iter() {
                for (i, key) in keys.enumerate() {
                    if i > 0 {
                        out.write_str(", ")?;
                    }
                    write_repr(out, &key)?;
                    out.write_str(": ")?;
                    write_repr(out, &value.get_item(&key).unwrap_or_default())?;
                }
            }
            out.write_char('}')
        }
        _ => write_scalar(out, value),
    }
}

/// A scalar as Jinja2 prints it: floats in Python's `repr`, anything else as minijinja does.
pub(crate) fn write_scalar<W: Write>(out: &mut W, value: &Value) -> fmt::Result {
    if value.kind() == ValueKind::Number {
        let shown = value.to_string();
        // minijinja shows every float with a `.`, an exponent, `inf` or `NaN`; integers bare
        if shown.contains(['.', 'e', 'E', 'i', 'N']) {
            if let Ok(f) = f64::try_from(value.clone()) {
                return write_float(out, f);
            }
        }
        return out.write_str(&shown);
    }
    write!(out, "{value}")
}

/// Python's `repr(float)`: the shortest digits that read back as `f`, positional for
/// exponents -4..=15 (always with a `.`), else scientific with a signed two-digit exponent.
fn write_float<W: Write>(out: &mut W, f: f64) -> fmt::Result {
    if f.is_nan() {
        return out.write_str("nan");
    }
    if f.is_infinite() {
        return out.write_str(if f > 0.0 { "inf" } else { "-inf" });
    }
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-4..16).contains(&exp) {
        let plain = format!("{f}");
        return if plain.contains('.') {
            out.write_str(&plain)
        } else {
            write!(out, "{plain}.0")
        };
    }
    let sign = if exp < 0 { '-' } else { '+' };
    write!(out, "{mantissa}e{sign}{:02}", exp.unsigned_abs())
}

/// Python's `repr(str)`: single quotes unless the text holds a `'` and no `"`, with `\\`, the
/// quote, `\t \n \r` and other control characters escaped.
fn write_str_repr<W: Write>(out: &mut W, s: &str) -> fmt::Result {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    out.write_char(quote)?;
    for c in s.chars() {
        match c {
            '\\' => out.write_str("\\\\")?,
            '\t' => out.write_str("\\t")?,
            '\n' => out.write_str("\\n")?,
            '\r' => out.write_str("\\r")?,
            c if c == quote => {
                out.write_char('\\')?;
                out.write_char(c)?;
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => write!(out, "\\x{:02x}", c as u32)?,
            c if c.is_control() => match c as u32 {
                n if n <= 0xff => write!(out, "\\x{n:02x}")?,
                n if n <= 0xffff => write!(out, "\\u{n:04x}")?,
                n => write!(out, "\\U{n:08x}")?,
            },
            c => out.write_char(c)?,
        }
    }
    out.write_char(quote)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repr(v: Value) -> String {
        let mut s = String::new();
        write_repr(&mut s, &v).unwrap();
        s
    }

    #[test]
    fn lists_and_dicts_print_as_python_does() {
        assert_eq!(repr(Value::from(vec!["en", "de"])), "['en', 'de']");
        assert_eq!(repr(Value::from(Vec::<i64>::new())), "[]");
        let nested =
            Value::from_serialize(serde_json::json!({"a": [1, 2.5, true, null], "b": "x"}));
        assert_eq!(repr(nested), "{'a': [1, 2.5, True, None], 'b': 'x'}");
    }

    #[test]
    fn floats_print_as_python_repr() {
        let cases = [
            (1e-5, "1e-05"),
            (1e20, "1e+20"),
            (1.5e-7, "1.5e-07"),
            (0.0001, "0.0001"),
            (0.001, "0.001"),
            (1e15, "1000000000000000.0"),
            (1e16, "1e+16"),
            (-2.5e-10, "-2.5e-10"),
            (3.0, "3.0"),
            (0.1, "0.1"),
            (123456.789, "123456.789"),
            (f64::INFINITY, "inf"),
            (f64::NAN, "nan"),
        ];
        for (f, want) in cases {
            let mut s = String::new();
            write_scalar(&mut s, &Value::from(f)).unwrap();
            assert_eq!(s, want, "{f}");
        }
        assert_eq!(repr(Value::from(vec![1e-5, 2.0])), "[1e-05, 2.0]");
        let mut s = String::new();
        write_scalar(&mut s, &Value::from(7)).unwrap();
        assert_eq!(s, "7");
    }

    #[test]
    fn strings_quote_and_escape_as_python_does() {
        assert_eq!(repr(Value::from(vec!["it's"])), "[\"it's\"]");
        assert_eq!(repr(Value::from(vec!["say \"hi\""])), "['say \"hi\"']");
        assert_eq!(
            repr(Value::from(vec!["both ' and \""])),
            "['both \\' and \"']"
        );
        assert_eq!(
            repr(Value::from(vec!["a\\b\tc\nd\u{1}"])),
            "['a\\\\b\\tc\\nd\\x01']"
        );
        assert_eq!(repr(Value::from(vec!["héllo"])), "['héllo']");
    }
}
