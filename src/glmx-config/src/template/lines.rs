//! The line syntax and the `[block]` shorthand, translated to plain Jinja.
//!
//! Invariant: the output has exactly as many lines as the input, so a line number reported by
//! minijinja for the translated text is the line number in the user's file.

/// Translates the line syntax (`--`, `<<`, `>>`, `==`, `=>`, `##`) and then the block shorthand.
///
/// Text without any of these markers comes back unchanged.
pub fn preprocess(text: &str) -> String {
    let split = split_keep_ends(text);
    let quiet: Vec<bool> = split.iter().map(|(body, _)| is_quiet(body)).collect();
    let lines: Vec<String> = split
        .into_iter()
        .map(|(body, end)| format!("{}{}", translate_line(body), end))
        .collect();
    apply_block_shorthand(lines, &quiet)
}

/// A line that renders to nothing but its line break: blank, whitespace only, or a whole-line
/// `##` comment. A run of these right before a header (or the end of the text) separates the
/// block from what follows, so it is placed after the block's end.
fn is_quiet(line: &str) -> bool {
    line.trim().is_empty() || matches!(split_marker(line), Some(("##", _)))
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
            // Not after `##`: a line starting with `#` is a YAML comment anyway, and templates
            // comment statements out as `##-- set x = 1` (the reference engine's rule).
            if rest.starts_with([' ', '\t']) || marker == "##" {
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

/// The name of the filter that `[name!]` wraps its block in (registered by the renderer).
pub const TRIM_FILTER: &str = "trim_block";

/// The output of a `[name!]` block: the blank lines at its start and the whitespace at its end
/// removed, the indentation of its first line kept (YAML structure depends on it), and one
/// line break appended when anything is left, so the next line is not glued to the block.
pub fn trim_block(text: &str) -> String {
    let end = text.trim_end();
    let start = end.len() - end.trim_start().len();
    // Keep the indentation after the last line break of the leading whitespace.
    let from = end[..start].rfind('\n').map_or(0, |i| i + 1);
    let kept = &end[from..];
    if kept.is_empty() {
        return String::new();
    }
    let newline = if text.contains("\r\n") { "\r\n" } else { "\n" };
    format!("{kept}{newline}")
}

// A `[name!]` block is filtered twice: outside the block, so an override from a child template
// is trimmed too, and inside it, so a child's own `[name!]` trims its override (a child's text
// outside blocks is never rendered). The filter is idempotent.
fn open_tags(trim: bool, name: &str) -> String {
    if trim {
        format!("{{% filter {TRIM_FILTER} %}}{{% block {name} %}}{{% filter {TRIM_FILTER} %}}")
    } else {
        format!("{{% block {name} %}}")
    }
}

fn close_tags(trim: bool, name: &str) -> String {
    if trim {
        format!("{{% endfilter %}}{{% endblock {name} %}}{{% endfilter %}}")
    } else {
        format!("{{% endblock {name} %}}")
    }
}

/// Closing tags for the blocks popped off `open` whose indent is at least `indent`, innermost
/// first, in two parts: the tags that go in front of the quiet lines before the closing point,
/// and the tags that go at the closing point itself. The second part starts at the first
/// `[name!]` block: a trimmed block takes the quiet lines after it (and trims them away, as the
/// reference engine does), so the blocks around it close after them too.
fn close_down_to(open: &mut Vec<(usize, String, bool)>, indent: usize) -> (String, String) {
    let (mut before_quiet, mut at_point) = (String::new(), String::new());
    while let Some((open_indent, name, trim)) = open.last() {
        if *open_indent < indent {
            break;
        }
        let part = if *trim || !at_point.is_empty() {
            &mut at_point
        } else {
            &mut before_quiet
        };
        part.push_str(&close_tags(*trim, name));
        open.pop();
    }
    (before_quiet, at_point)
}

/// Start of the run of quiet lines that ends right before line `end`.
fn quiet_run_start(quiet: &[bool], end: usize) -> usize {
    let mut k = end;
    while k > 0 && quiet[k - 1] {
        k -= 1;
    }
    k
}

/// Puts closing `tags` in front of line `at`, a quiet line that stays outside the block: the
/// last tag keeps the line break after it (`+%}`), which `trim_blocks` would otherwise eat.
fn close_before_quiet_line(lines: &mut [String], at: usize, tags: &str) {
    if tags.is_empty() {
        return;
    }
    let tags = match tags.strip_suffix(" %}") {
        Some(head) => format!("{head} +%}}"),
        None => tags.to_string(),
    };
    lines[at].insert_str(0, &tags);
}

/// Replaces `[name]` header lines by `{% block name %}` (`[name!]`: the block inside and
/// around a [`TRIM_FILTER`] filter) and closes each block at the next header at the same or lower
/// indent, or at the end of the text. A block ends after its last line that renders anything:
/// blank lines and `##` comments between it and the next header (or the end) belong to the text
/// after the block, so they survive when a child template overrides the block. A block ends
/// with a line break even when the file does not (a child's last block would otherwise run
/// into the parent's next line).
fn apply_block_shorthand(mut lines: Vec<String>, quiet: &[bool]) -> String {
    let mut open: Vec<(usize, String, bool)> = Vec::new();
    let mut last_header = None;
    for i in 0..lines.len() {
        let Some((indent, name, trim)) = block_header(&lines[i]) else {
            continue;
        };
        let name = name.to_string();
        let (before_quiet, at_point) = close_down_to(&mut open, indent);
        let ending = line_ending(&lines[i]);
        let run = quiet_run_start(quiet, i);
        let tags = if run < i {
            close_before_quiet_line(&mut lines, run, &before_quiet);
            at_point
        } else {
            before_quiet + &at_point
        };
        lines[i] = format!("{tags}{}{ending}", open_tags(trim, &name));
        open.push((indent, name, trim));
        last_header = Some(i);
    }
    let (before_quiet, at_point) = close_down_to(&mut open, 0);
    let run = quiet_run_start(quiet, lines.len());
    let tags = if run < lines.len() {
        close_before_quiet_line(&mut lines, run, &before_quiet);
        at_point
    } else {
        before_quiet + &at_point
    };
    let newline = if lines.iter().any(|l| l.ends_with("\r\n")) {
        "\\r\\n"
    } else {
        "\\n"
    };
    // (An empty block on the last line has no line to end.)
    let unterminated = lines.last().is_some_and(|l| line_ending(l).is_empty())
        && last_header != Some(lines.len() - 1);
    let mut out = lines.concat();
    if !tags.is_empty() && run == lines.len() && unterminated {
        // The line break the file lacks, as a value: the line count stays the file's.
        out.push_str(&format!("{{{{ \"{newline}\" | safe }}}}"));
    }
    out.push_str(&tags);
    out
}

fn line_ending(line: &str) -> &'static str {
    if line.ends_with("\r\n") {
        "\r\n"
    } else if line.ends_with('\n') {
        "\n"
    } else {
        ""
    }
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
        assert_eq!(preprocess("  ##-- set x = 1\n"), "{# -- set x = 1 #}\n");
        assert_eq!(preprocess("##key: 1\n"), "{# key: 1 #}\n");
    }

    #[test]
    fn block_shorthand_closes_at_same_indent_and_eof() {
        let text = "[a]\nx: 1\n  [b]\n  y: 2\n[c!]\nz: 3\n";
        let out = preprocess(text);
        assert_eq!(out.matches('\n').count(), text.matches('\n').count());
        assert_eq!(
            out,
            "{% block a %}\nx: 1\n{% block b %}\n  y: 2\n{% endblock b %}{% endblock a %}\
             {% filter trim_block %}{% block c %}{% filter trim_block %}\nz: 3\n\
             {% endfilter %}{% endblock c %}{% endfilter %}"
        );
    }

    #[test]
    fn blank_lines_before_a_header_follow_the_block() {
        // The blank line is outside `a`; `+%}` keeps its line break under `trim_blocks`.
        assert_eq!(
            preprocess("[a]\nx: 1\n\n[b]\ny: 2\n"),
            "{% block a %}\nx: 1\n{% endblock a +%}\n{% block b %}\ny: 2\n{% endblock b %}"
        );
        // Every quiet line of the run (blank, whitespace, `##` comment) is outside the block.
        assert_eq!(
            preprocess("[a]\nx: 1\n\n  \n## b next\n[b]\n"),
            "{% block a %}\nx: 1\n{% endblock a +%}\n  \n{# b next #}\n{% block b %}\n\
             {% endblock b %}"
        );
        // A blank line followed by a key is inside the block: only a header closes it.
        assert_eq!(
            preprocess("[a]\nx: 1\n\ny: 2\n"),
            "{% block a %}\nx: 1\n\ny: 2\n{% endblock a %}"
        );
    }

    #[test]
    fn blank_lines_at_end_of_text_follow_the_block() {
        assert_eq!(
            preprocess("[a]\nx: 1\n\n"),
            "{% block a %}\nx: 1\n{% endblock a +%}\n"
        );
        // A last line without a line break gets one inside the block, as a value.
        assert_eq!(
            preprocess("[a]\nx: 1"),
            "{% block a %}\nx: 1{{ \"\\n\" | safe }}{% endblock a %}"
        );
        assert_eq!(
            preprocess("[a]\r\nx: 1"),
            "{% block a %}\r\nx: 1{{ \"\\r\\n\" | safe }}{% endblock a %}"
        );
        assert_eq!(preprocess("x: 1"), "x: 1");
        assert_eq!(preprocess("[a]"), "{% block a %}{% endblock a %}");
    }

    #[test]
    fn nested_blocks_close_together_before_the_blank_line() {
        let text = "[o]\nm:\n  [i1]\n  x: 1\n\n  [i2]\n  y: 2\n\n[p]\nz: 3\n";
        let out = preprocess(text);
        assert_eq!(out.matches('\n').count(), text.matches('\n').count());
        assert_eq!(
            out,
            "{% block o %}\nm:\n{% block i1 %}\n  x: 1\n{% endblock i1 +%}\n\
             {% block i2 %}\n  y: 2\n{% endblock i2 %}{% endblock o +%}\n\
             {% block p %}\nz: 3\n{% endblock p %}"
        );
    }

    #[test]
    fn trimmed_block_takes_the_blank_lines_after_it() {
        assert_eq!(
            preprocess("[a!]\nx: 1\n\n[b]\n"),
            "{% filter trim_block %}{% block a %}{% filter trim_block %}\nx: 1\n\n\
             {% endfilter %}{% endblock a %}{% endfilter %}{% block b %}\n{% endblock b %}"
        );
        // A plain block inside closes before the blank line, the trimmed one after it.
        assert_eq!(
            preprocess("[o!]\n  [i]\n  x: 1\n\n[p]\n"),
            "{% filter trim_block %}{% block o %}{% filter trim_block %}\n{% block i %}\n  x: 1\n\
             {% endblock i +%}\n{% endfilter %}{% endblock o %}{% endfilter %}{% block p %}\n\
             {% endblock p %}"
        );
    }

    #[test]
    fn header_and_quiet_lines_with_comments_and_crlf() {
        assert_eq!(
            preprocess("[a]  ## first\r\nx: 1  ## c\r\n\r\n## b\r\n[b]\r\n"),
            "{% block a %}\r\nx: 1\r\n{% endblock a +%}\r\n{# b #}\r\n{% block b %}\r\n\
             {% endblock b %}"
        );
    }

    #[test]
    fn trim_block_drops_blank_edges_and_keeps_indent() {
        assert_eq!(trim_block("\n\n  x: 1\n  y: 2\n\n"), "  x: 1\n  y: 2\n");
        assert_eq!(trim_block("x: 1"), "x: 1\n");
        assert_eq!(trim_block(" \n\t\n"), "");
        assert_eq!(trim_block("\r\nx: 1\r\n\r\n"), "x: 1\r\n");
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
