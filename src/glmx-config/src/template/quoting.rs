//! Context-aware insertion of `{{ ... }}` values into YAML text.
//!
//! A value that could change the document's structure is not written directly: the formatter
//! wraps it in marker characters, and once the whole document is rendered [`finish`] scans the
//! text as YAML and replaces each marked value according to where it landed:
//!
//! - inside a double-quoted scalar: escaped for that scalar (`"` -> `\"`, newline -> `\n`);
//! - inside a single-quoted scalar: `'` doubled, line breaks kept as folded blank lines;
//! - inside a comment: verbatim, a line break continuing the comment on a new `# ` line;
//! - inside a block scalar (`|`, `>`): verbatim, every line indented as the block's content;
//! - alone on a line and starting with `#` (a heading a macro writes): verbatim, a comment;
//! - elsewhere: verbatim when it reads back as one plain scalar there, else a double-quoted
//!   scalar.
//!
//! Deferring the decision to the final text lets a value written by a macro be judged where the
//! macro's output lands, not inside the macro.

use std::fmt::Write as _;

/// Starts a marked value (a Unicode noncharacter: never valid in interchanged text).
const OPEN: char = '\u{FDD0}';
/// Ends a marked value.
const CLOSE: char = '\u{FDD1}';
/// Escapes a marker character inside a marked value.
const ESC: char = '\u{FDD2}';

/// True when `s` can be pasted anywhere (plain, quoted, comment, block) unchanged.
pub fn safe_everywhere(s: &str) -> bool {
    !needs_quoting(s) && !s.contains(['"', '\'', '\\', '#', OPEN, CLOSE, ESC])
}

/// Writes `s` wrapped in markers for [`finish`] to place.
pub fn mark(out: &mut String, s: &str) {
    out.push(OPEN);
    for c in s.chars() {
        if matches!(c, OPEN | CLOSE | ESC) {
            out.push(ESC);
        }
        out.push(c);
    }
    out.push(CLOSE);
}

/// True when pasting `s` as a plain scalar in block context could read back as anything but
/// that one string.
pub fn needs_quoting(s: &str) -> bool {
    // Leading blanks are not part of a plain scalar: the indicator check looks past them.
    let t = s.trim_start_matches([' ', '\t']);
    s.chars().any(|c| c.is_control() || "[]{},".contains(c))
        || s.contains(": ")
        || s.contains(" #")
        || s.ends_with(':')
        || t.starts_with([
            '?', ':', '#', '&', '*', '!', '|', '>', '\'', '"', '%', '@', '`',
        ])
        || t == "-"
        || t.starts_with("- ")
}

/// True when `s` as a plain scalar outside flow collections reads back as that one string
/// (`,` and brackets inside the text are literal there).
fn plain_in_block(s: &str) -> bool {
    let t = s.trim_start_matches(' ');
    !s.chars().any(|c| c.is_control())
        && !s.contains(": ")
        && !s.contains(" #")
        && !s.ends_with(':')
        && !t.starts_with([
            '?', ':', '#', '&', '*', '!', '|', '>', '\'', '"', '%', '@', '`', '[', ']', '{', '}',
            ',',
        ])
        && t != "-"
        && !t.starts_with("- ")
}

/// True when `s` inside `[...]` reads back as comma-separated scalars: each item plain (no
/// indicator, no `: `) or one complete quoted scalar without escapes; no line breaks,
/// brackets, braces or comments anywhere.
fn flow_scalars(s: &str) -> bool {
    if s.trim().is_empty() || s.chars().any(|c| c.is_control() || "[]{}#".contains(c)) {
        return false;
    }
    s.split(',').all(|item| {
        let t = item.trim_matches(' ');
        let quoted = |q: char| {
            t.len() >= 2
                && t.starts_with(q)
                && t.ends_with(q)
                && !t[1..t.len() - 1].contains([q, '\\'])
        };
        !t.is_empty() && (quoted('\'') || quoted('"') || !needs_quoting(t))
    })
}

/// `s` as a YAML double-quoted scalar (every control character escaped).
pub fn yaml_quote(s: &str) -> String {
    format!("\"{}\"", escape_double(s))
}

/// The body of a double-quoted scalar holding `s`.
fn escape_double(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// Where the scanner stands in the YAML text.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Plain,
    Double,
    Single,
    Comment,
}

/// A block scalar being read: the column its content must exceed, and its content indent once
/// the first content line has set it.
#[derive(Clone, Copy)]
struct Block {
    parent_col: usize,
    indent: Option<usize>,
}

/// Scanner state over the rendered text.
struct Scan {
    mode: Mode,
    /// Open flow collections, innermost last (`[` or `{`).
    flow: Vec<char>,
    block: Option<Block>,
    /// The current line so far (output text).
    line: String,
    /// The next character is escaped (after `\\` in `"..."`, or the second `'` of `''`).
    escaped: bool,
}

impl Scan {
    fn leading_ws(&self) -> usize {
        self.line.len() - self.line.trim_start_matches(' ').len()
    }

    fn only_ws_so_far(&self) -> bool {
        self.line.trim_start_matches([' ', '\t']).is_empty()
    }

    /// Inside a block scalar's content at this point of the line.
    fn in_block(&self) -> bool {
        match self.block {
            Some(b) if self.only_ws_so_far() => self.leading_ws() > b.parent_col,
            Some(_) => true,
            None => false,
        }
    }

    /// The first non-space text of a line, indented `extra` past the spaces so far, arrives:
    /// a block scalar ends when it is indented less than the block's content.
    fn text_starts(&mut self, extra: usize) {
        let ws = self.leading_ws() + extra;
        if let Some(b) = self.block.as_mut() {
            if ws <= b.parent_col || b.indent.is_some_and(|i| ws < i) {
                self.block = None;
            } else if b.indent.is_none() {
                b.indent = Some(ws);
            }
        }
    }

    /// A quote here starts a quoted scalar (not a literal quote inside a plain scalar).
    fn quote_starts_scalar(&self) -> bool {
        let before = self.line.trim_end();
        if before.is_empty() || before.ends_with(['[', '{', ',']) {
            return true;
        }
        if !self.line.ends_with([' ', '\t']) {
            return false;
        }
        let last = before.rsplit([' ', '\t']).next().unwrap_or("");
        matches!(last, ":" | "-" | "?") || before.ends_with(':') || last.starts_with(['!', '&'])
    }

    /// Called at the end of a line: a line ending in `|`/`>` opens a block scalar.
    fn end_line(&mut self) {
        if self.mode == Mode::Comment {
            self.mode = Mode::Plain;
        }
        if self.block.is_none() && self.mode == Mode::Plain && self.flow.is_empty() {
            self.block = block_opener(&self.line);
        }
        self.line.clear();
    }
}

/// The block scalar a line like `key: |`, `- >-` or `- key: |2 # c` opens.
fn block_opener(line: &str) -> Option<Block> {
    let code = match line.find(" #") {
        Some(i) => &line[..i],
        None => line,
    }
    .trim_end();
    let head = code.trim_end_matches(|c: char| c == '-' || c == '+' || c.is_ascii_digit());
    let head = head.strip_suffix(['|', '>'])?;
    if !(head.is_empty() || head.ends_with([' ', '\t'])) {
        return None;
    }
    // The parent is the key (after any `- ` sequence entries) or the innermost `-`.
    let mut col = line.len() - line.trim_start_matches(' ').len();
    let mut rest = &line[col..];
    let mut dash_col = None;
    while let Some(r) = rest.strip_prefix("- ") {
        dash_col = Some(col);
        let skip = r.len() - r.trim_start_matches(' ').len();
        col += 2 + skip;
        rest = &r[skip..];
    }
    let parent_col = if rest.starts_with(['|', '>']) {
        dash_col.unwrap_or(col)
    } else {
        col
    };
    Some(Block {
        parent_col,
        indent: None,
    })
}

/// Replaces every marked value in `text` by its text for the place it landed.
pub fn finish(text: String) -> String {
    if !text.contains(OPEN) {
        return text;
    }
    let mut out = String::with_capacity(text.len());
    let mut scan = Scan {
        mode: Mode::Plain,
        flow: Vec::new(),
        block: None,
        line: String::new(),
        escaped: false,
    };
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == OPEN {
            let mut value = String::new();
            let mut closed = false;
            while let Some(v) = chars.next() {
                match v {
                    ESC => value.extend(chars.next()),
                    CLOSE => {
                        closed = true;
                        break;
                    }
                    v => value.push(v),
                }
            }
            if !closed {
                // Not a marker of ours (the character was in the template): keep it.
                out.push(OPEN);
                out.push_str(&value);
                break;
            }
            let placed = place(&mut scan, &value);
            out.push_str(&placed);
            // The last line of the placed text is part of the current line.
            match placed.rfind('\n') {
                Some(i) => {
                    scan.line.clear();
                    scan.line.push_str(&placed[i + 1..]);
                }
                None => scan.line.push_str(&placed),
            }
            continue;
        }
        out.push(c);
        step(&mut scan, c, chars.peek().copied());
    }
    out
}

/// Advances the scanner over one character of template text.
fn step(scan: &mut Scan, c: char, next: Option<char>) {
    if c == '\n' {
        scan.escaped = false;
        // A quoted scalar may span lines; the line buffer restarts either way.
        if matches!(scan.mode, Mode::Double | Mode::Single) {
            scan.line.clear();
        } else {
            scan.end_line();
        }
        return;
    }
    if c != ' ' && scan.only_ws_so_far() && scan.mode == Mode::Plain {
        scan.text_starts(0);
    }
    if scan.escaped {
        scan.escaped = false;
    } else {
        let in_block = scan.in_block();
        match scan.mode {
            Mode::Plain if !in_block => match c {
                '"' if scan.quote_starts_scalar() => scan.mode = Mode::Double,
                '\'' if scan.quote_starts_scalar() => scan.mode = Mode::Single,
                '#' if scan.line.is_empty() || scan.line.ends_with([' ', '\t']) => {
                    scan.mode = Mode::Comment
                }
                // A bracket inside a plain scalar (`name: a[0]`) is text, not a collection.
                '[' | '{' if !scan.flow.is_empty() || scan.quote_starts_scalar() => {
                    scan.flow.push(c)
                }
                ']' | '}' if !scan.flow.is_empty() => {
                    scan.flow.pop();
                }
                _ => {}
            },
            Mode::Double if c == '\\' => scan.escaped = true,
            Mode::Double if c == '"' => scan.mode = Mode::Plain,
            // `''` is a quote inside the scalar.
            Mode::Single if c == '\'' && next == Some('\'') => scan.escaped = true,
            Mode::Single if c == '\'' => scan.mode = Mode::Plain,
            _ => {}
        }
    }
    scan.line.push(c);
}

/// The text for `value` at the scanner's position.
fn place(scan: &mut Scan, value: &str) -> String {
    let block = scan.mode == Mode::Plain && scan.block.is_some() && block_content(scan, value);
    match scan.mode {
        Mode::Double => escape_double(value),
        Mode::Single => {
            let pad = " ".repeat(scan.leading_ws() + 2);
            value
                .replace('\'', "''")
                .replace("\r\n", "\n")
                .replace('\r', "\n")
                .replace('\n', &format!("\n\n{pad}"))
        }
        Mode::Comment => comment_lines(value, scan.leading_ws()),
        Mode::Plain if block => {
            let ws = scan.leading_ws();
            let pad = " ".repeat(scan.block.and_then(|b| b.indent).unwrap_or(ws));
            value
                .replace("\r\n", "\n")
                .replace('\r', "\n")
                .replace('\n', &format!("\n{pad}"))
        }
        Mode::Plain => {
            let line_start = scan.only_ws_so_far();
            if line_start && value.starts_with('#') && !value.contains(['\n', '\r']) {
                scan.mode = Mode::Comment;
                return value.to_string();
            }
            let at_scalar_start = line_start || scan.quote_starts_scalar();
            let plain = match scan.flow.last() {
                // `[{{ sizes|join(', ') }}]`: Jinja2's way to write a list; items of scalars
                // only, so a value still cannot add keys, nesting or tags.
                Some('[') => !needs_quoting(value) || flow_scalars(value),
                Some(_) => !needs_quoting(value),
                None => plain_in_block(value),
            };
            if plain || (!at_scalar_start && !needs_quoting(value)) {
                value.to_string()
            } else {
                yaml_quote(value)
            }
        }
    }
}

/// True when `value`, placed here, is a block scalar's content (a value that starts a line
/// first checks whether its indentation ends the block).
fn block_content(scan: &mut Scan, value: &str) -> bool {
    if scan.only_ws_so_far() {
        let trimmed = value.trim_start_matches(' ');
        if trimmed.starts_with(['\n', '\r']) || trimmed.is_empty() {
            // Blank at first: this line does not decide whether the block goes on.
            return scan.in_block();
        }
        // The value is the line's first text: its indentation may end the block.
        scan.text_starts(value.len() - trimmed.len());
    }
    scan.block.is_some()
}

/// `value` continuing a comment: each further line starts with `# ` at `indent`.
fn comment_lines(value: &str, indent: usize) -> String {
    let pad = format!("\n{}# ", " ".repeat(indent));
    value
        .replace("\r\n", "\n")
        .replace('\r', "\n")
        .replace('\n', &pad)
}

#[cfg(test)]
#[path = "quoting_tests.rs"]
mod tests;
