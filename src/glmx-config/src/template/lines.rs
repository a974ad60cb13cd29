//! The line syntax and the `[block]` shorthand, translated to plain Jinja.
//!
//! Invariant: the output has exactly as many lines as the input, so a line number reported by
//! minijinja for the translated text is the line number in the user's file.

/// Translates the line syntax (`--`, `<<`, `>>`, `==`, `=>`, `##`) and then the block shorthand.
///
/// Text without any of these markers comes back unchanged.
pub fn preprocess(text: &str) -> String {
    let lines: Vec<String> = split_keep_ends(text)
        .into_iter()
        .map(|(body, end)| format!("{}{}", translate_line(body), end))
        .collect();
    apply_block_shorthand(lines)
}

/// Splits into (line body, line ending) pairs; the ending is `"\n"`, `"\r\n"` or `""`.
fn split_keep_ends(text: &str) -> Vec<(&str, &str)> {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        match rest.find('\n') {
            Some(i) => {
                let (line, tail) = rest.split_at(i + 1);
                let body = &line[..i];
                match body.strip_suffix('\r') {
                    Some(b) => out.push((b, "\r\n")),
                    None => out.push((body, "\n")),
                }
                rest = tail;
            }
            None => {
                out.push((rest, ""));
                rest = "";
            }
        }
    }
    out
}

/// Returns the marker and the statement after it when `line` is a line statement.
fn split_marker(line: &str) -> Option<(&str, &str)> {
    let trimmed = line.trim_start();
    for marker in ["--", "<<", ">>", "==", "=>", "##"] {
        if let Some(rest) = trimmed.strip_prefix(marker) {
            // At least one whitespace must follow the marker: `<<: *base` and `---` stay YAML.
            if rest.starts_with([' ', '\t']) || (marker == "##" && rest.is_empty()) {
                return Some((marker, rest));
            }
        }
    }
    None
}

/// Strips a trailing `  ## comment` (whitespace required before `##`).
fn strip_trailing_comment(line: &str) -> &str {
    let bytes = line.as_bytes();
    let mut search = 0;
    while let Some(pos) = line[search..].find("##") {
        let at = search + pos;
        if at > 0 && (bytes[at - 1] == b' ' || bytes[at - 1] == b'\t') {
            return line[..at].trim_end();
        }
        search = at + 2;
    }
    line
}

fn translate_line(line: &str) -> String {
    let Some((marker, rest)) = split_marker(line) else {
        let stripped = strip_trailing_comment(line);
        return stripped.to_string();
    };
    if marker == "##" {
        // A whole-line comment; `#}` inside would end the Jinja comment early.
        return format!("{{# {} #}}", rest.trim().replace("#}", "# }"));
    }
    let stmt = strip_trailing_comment(rest).trim();
    // Python-style `-- if x:` / `-- for i in range(3):`: the trailing colon is optional, as in
    // Jinja's own line statements.
    let stmt = match marker {
        "--" | "<<" | ">>" => stmt.strip_suffix(':').map_or(stmt, str::trim_end),
        _ => stmt,
    };
    match marker {
        "--" => format!("{{% {stmt} %}}"),
        "<<" => format!("{{%- {stmt} %}}"),
        ">>" => format!("{{% {stmt} -%}}"),
        "==" => format!("{{{{ {stmt} }}}}"),
        _ => format!("{{{{ {stmt} | trim('\\n') }}}}"),
    }
}

/// A `[name]` or `[name!]` header: (indent, name, trim).
fn block_header(line: &str) -> Option<(usize, &str, bool)> {
    let body = line.trim_end_matches(['\n', '\r']).trim_end();
    let trimmed = body.trim_start();
    let indent = body.len() - trimmed.len();
    let inner = trimmed.strip_prefix('[')?.strip_suffix(']')?;
    let (name, trim) = match inner.strip_suffix('!') {
        Some(n) => (n, true),
        None => (inner, false),
    };
    let valid = !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    valid.then_some((indent, name, trim))
}

fn end_tag(trim: bool, name: &str) -> String {
    if trim {
        format!("{{%- endblock {name} %}}")
    } else {
        format!("{{% endblock {name} %}}")
    }
}

/// Replaces `[name]` header lines by `{% block name %}` and closes each block in front of the
/// next header at the same or lower indent (or at the end of the text), on the same line.
fn apply_block_shorthand(mut lines: Vec<String>) -> String {
    let mut open: Vec<(usize, String, bool)> = Vec::new();
    for line in lines.iter_mut() {
        let Some((indent, name, trim)) = block_header(line) else {
            continue;
        };
        let mut prefix = String::new();
        while let Some((open_indent, open_name, open_trim)) = open.last() {
            if *open_indent < indent {
                break;
            }
            prefix.push_str(&end_tag(*open_trim, open_name));
            open.pop();
        }
        let ending = if line.ends_with("\r\n") {
            "\r\n"
        } else if line.ends_with('\n') {
            "\n"
        } else {
            ""
        };
        let open_tag = if trim {
            format!("{{% block {name} -%}}")
        } else {
            format!("{{% block {name} %}}")
        };
        let name = name.to_string();
        *line = format!("{prefix}{open_tag}{ending}");
        open.push((indent, name, trim));
    }
    let mut out: String = lines.concat();
    while let Some((_, name, trim)) = open.pop() {
        out.push_str(&end_tag(trim, &name));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_identity() {
        let text = "a: 1\nb: [1, 2]\n<<: *base\n---\n- - x\nc: 'x##y'\n";
        assert_eq!(preprocess(text), text);
    }

    #[test]
    fn line_statements_translate() {
        assert_eq!(preprocess("  -- if x\n"), "{% if x %}\n");
        assert_eq!(preprocess("<< endblock a\n"), "{%- endblock a %}\n");
        assert_eq!(preprocess(">> set y = 2\n"), "{% set y = 2 -%}\n");
        assert_eq!(preprocess("== super()\n"), "{{ super() }}\n");
        assert_eq!(preprocess("=> x\n"), "{{ x | trim('\\n') }}\n");
        assert_eq!(preprocess("## note\n"), "{# note #}\n");
        assert_eq!(preprocess("a: 1  ## why\n"), "a: 1\n");
        assert_eq!(preprocess("-- set x = 1  ## c\n"), "{% set x = 1 %}\n");
        assert_eq!(preprocess("--x\n"), "--x\n");
    }

    #[test]
    fn block_shorthand_closes_at_same_indent_and_eof() {
        let text = "[a]\nx: 1\n  [b]\n  y: 2\n[c!]\nz: 3\n";
        let out = preprocess(text);
        assert_eq!(out.matches('\n').count(), text.matches('\n').count());
        assert_eq!(
            out,
            "{% block a %}\nx: 1\n{% block b %}\n  y: 2\n{% endblock b %}{% endblock a %}\
             {% block c -%}\nz: 3\n{%- endblock c %}"
        );
    }

    #[test]
    fn line_count_preserved() {
        let text = "-- extends 'a'\n[x]\n## c\n== 1\nq\r\nend";
        assert_eq!(
            preprocess(text).matches('\n').count(),
            text.matches('\n').count()
        );
    }
}
