//! Inline templates: one file holding several templates separated by `#----- name -----` lines.

/// One chunk of a file: its template name (`None` for the file's own first chunk), its text and
/// the number of lines that precede it in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// Registered name; `None` for the first chunk (the file's own template).
    pub name: Option<String>,
    /// The chunk's text, without its separator line.
    pub text: String,
    /// Lines of the file before the chunk's first line (add to a chunk-relative line number).
    pub line_offset: usize,
}

/// Parses a separator line `#----- some.name -----`: `#`, three or more dashes, a name made of
/// `[\w./]+`, three or more dashes (spaces allowed around the name).
pub fn separator_name(line: &str) -> Option<&str> {
    let rest = line
        .trim_end_matches(['\r', '\n'])
        .trim()
        .strip_prefix('#')?;
    let lead = rest.len() - rest.trim_start_matches('-').len();
    if lead < 3 {
        return None;
    }
    let rest = rest[lead..].trim_end();
    let body = rest.trim_end_matches('-');
    if rest.len() - body.len() < 3 {
        return None;
    }
    let name = body.trim();
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '.' || c == '/');
    valid.then_some(name)
}

/// Splits `text` at separator lines. Always returns at least the first chunk.
pub fn split(text: &str) -> Vec<Chunk> {
    let mut chunks = vec![Chunk {
        name: None,
        text: String::new(),
        line_offset: 0,
    }];
    for (index, line) in text.split_inclusive('\n').enumerate() {
        if let Some(name) = separator_name(line) {
            chunks.push(Chunk {
                name: Some(name.to_string()),
                text: String::new(),
                line_offset: index + 1,
            });
        } else if let Some(last) = chunks.last_mut() {
            last.text.push_str(line);
        }
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separators_parse() {
        assert_eq!(
            separator_name("#----- model.yaml -----\n"),
            Some("model.yaml")
        );
        assert_eq!(separator_name("#---a/b.c---"), Some("a/b.c"));
        assert_eq!(separator_name("#-- a ---"), None);
        assert_eq!(separator_name("# ---- a ----"), None);
        assert_eq!(separator_name("#------ ------"), None);
    }

    #[test]
    fn split_keeps_offsets() {
        let chunks = split("a\n#--- x ---\nb\nc\n#--- y ---\nd");
        assert_eq!(chunks.len(), 3);
        assert_eq!(chunks[0].text, "a\n");
        assert_eq!(chunks[1].name.as_deref(), Some("x"));
        assert_eq!(chunks[1].text, "b\nc\n");
        assert_eq!(chunks[1].line_offset, 2);
        assert_eq!(chunks[2].line_offset, 5);
    }
}
