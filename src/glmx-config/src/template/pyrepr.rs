//! Python's `repr` of a list or dict, as Jinja2 prints `{{ value }}` of one.
//!
//! Template projects were written against Jinja2, where `{{ ["en"] }}` renders `['en']`
//! (`str()` of a Python list); minijinja's own display is `["en"]`. YAML reads both as the same
//! list, but `pp` output, comments and strings built from such values must be the bytes the
//! reference renders. Scalars keep minijinja's display, which already follows Python (`True`,
//! `None`, `1.0`).

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
        _ => write!(out, "{value}"),
    }
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
