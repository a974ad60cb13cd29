use super::*;

#[test]
fn strict_undefined_names_variable() {
    let err = render_str("a: 1\nb: {{ foo.bar }}\n", &[], ())
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("<string>:2:"), "{err}");
    assert!(err.contains("'foo.bar'"), "{err}");
}

#[test]
fn trim_blocks_and_identity() {
    assert_eq!(
        render_str("-- if true\nx: 1\n-- endif\n", &[], ()).unwrap(),
        "x: 1\n"
    );
    assert_eq!(render_str("a: b\n\n", &[], ()).unwrap(), "a: b\n\n");
}

#[test]
fn inline_template_error_line_is_offset() {
    let text = "-- include 'sub'\n#--- sub ---\nok: 1\nbad: {{ nope }}\n";
    let err = render_str(text, &[], ()).unwrap_err().to_string();
    assert!(err.starts_with("<string>:4:"), "{err}");
}

/// Renders `child` with `parent.yaml` (holding `parent`) on the search path.
fn render_child(parent: &str, child: &str) -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "glmx-blocks-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("parent.yaml"), parent).unwrap();
    let out = render_str(child, std::slice::from_ref(&dir), ()).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    out
}

const EXTENDS: &str = "-- extends 'parent.yaml'\n";

#[test]
fn blank_line_after_block_survives_rendering_as_is() {
    let r = |t: &str| render_str(t, &[], ()).unwrap();
    assert_eq!(r("[a]\nx: 1\n\n[b]\ny: 2\n"), "x: 1\n\ny: 2\n");
    assert_eq!(r("[a]\nx: 1\n\n\n[b]\ny: 2\n"), "x: 1\n\n\ny: 2\n");
    assert_eq!(r("[a]\nx: 1\n\ny: 2\n"), "x: 1\n\ny: 2\n");
    assert_eq!(r("[a]\nx: 1\n\n"), "x: 1\n\n");
    assert_eq!(r("[a]\nx: 1\n[b]\ny: 2\n"), "x: 1\ny: 2\n");
    assert_eq!(
        r("[o]\nm:\n  [i]\n  x: 1\n\n  [j]\n  y: 2\n\n[p]\nz: 3\n"),
        "m:\n  x: 1\n\n  y: 2\n\nz: 3\n"
    );
    assert_eq!(
        r("[a]  ## c\nx: 1  ## c\n\n## about b\n[b]\ny: 2\n"),
        "x: 1\n\ny: 2\n"
    );
    assert_eq!(
        r("[a]\r\nx: 1\r\n\r\n[b]\r\ny: 2\r\n"),
        "x: 1\r\n\r\ny: 2\r\n"
    );
}

#[test]
fn blank_line_after_block_survives_a_child_override() {
    let parent = "[a]\nx: 1\n\n[b]\ny: 2\n\n[c]\nz: 3\n";
    let child = |body: &str| render_child(parent, &format!("{EXTENDS}{body}"));
    assert_eq!(child("[a]\nx: 2\n"), "x: 2\n\ny: 2\n\nz: 3\n");
    assert_eq!(child("[b]\ny: 3\n"), "x: 1\n\ny: 3\n\nz: 3\n");
    // The child's own blank lines after its last block are outside every block: dropped.
    assert_eq!(child("[c]\nz: 4\n\n"), "x: 1\n\ny: 2\n\nz: 4\n");
    assert_eq!(
        child("[a]\n== super()\nw: 2\n"),
        "x: 1\n\nw: 2\n\ny: 2\n\nz: 3\n"
    );
    assert_eq!(
        render_child("[a]\nx: 1\n\n", &format!("{EXTENDS}[a]\nx: 2\n")),
        "x: 2\n\n"
    );
}

#[test]
fn child_overrides_nested_commented_and_crlf_blocks() {
    let nested = "[o]\nm:\n  [i]\n  x: 1\n\n[p]\ny: 2\n";
    assert_eq!(
        render_child(nested, &format!("{EXTENDS}  [i]\n  x: 5\n")),
        "m:\n  x: 5\n\ny: 2\n"
    );
    let commented = "[a]  ## first\nx: 1  ## c\n\n## about b\n[b]\ny: 2\n";
    assert_eq!(
        render_child(commented, &format!("{EXTENDS}[a]\nx: 2\n")),
        "x: 2\n\ny: 2\n"
    );
    let crlf = "[a]\r\nx: 1\r\n\r\n[b]\r\ny: 2\r\n";
    assert_eq!(
        render_child(crlf, "-- extends 'parent.yaml'\r\n[a]\r\nx: 2\r\n"),
        "x: 2\r\n\r\ny: 2\r\n"
    );
}

#[test]
fn trimmed_block_ends_its_line_and_takes_the_blank_lines() {
    let r = |t: &str| render_str(t, &[], ()).unwrap();
    assert_eq!(r("[a!]\n\nx: 1\n\n[b]\ny: 2\n"), "x: 1\ny: 2\n");
    assert_eq!(r("[a!]\nx: 1\n[b]\ny: 2\n"), "x: 1\ny: 2\n");
    assert_eq!(r("m:\n  [a!]\n\n  x: 1\n"), "m:\n  x: 1\n");
    // Statements only (Forgather's `[head!]`): nothing at all, not even the blank line after
    // it, and what the statements set is visible after the block.
    assert_eq!(
        r("-- set ns = namespace(x=0)\n[head!]\n  [in]\n  -- set ns.x = 3\n\n[body]\nx: {{ ns.x }}\n"),
        "x: 3\n"
    );
    // A child's own `[a!]` trims its override of a plain `[a]`; the parent's blank line stays.
    assert_eq!(
        render_child(
            "[a]\nx: 1\n\n[b]\ny: 2\n",
            &format!("{EXTENDS}[a!]\n\nx: 2\n\n[b]\ny: 3\n")
        ),
        "x: 2\n\ny: 3\n"
    );
    // Nested blocks inside a trimmed one still close and override.
    assert_eq!(
        render_child(
            "[o!]\nm:\n  [i]\n  x: 1\n\n[p]\ny: 2\n",
            &format!("{EXTENDS}  [i]\n  x: 5\n")
        ),
        "m:\n  x: 5\ny: 2\n"
    );
    // The parent's `!` also trims a child's override.
    assert_eq!(
        render_child(
            "[a!]\nx: 1\n\n[b]\ny: 2\n",
            &format!("{EXTENDS}[a]\n\n\nx: 2\n\n")
        ),
        "x: 2\ny: 2\n"
    );
}

#[test]
fn child_block_at_end_of_file_without_line_break_ends_its_line() {
    // Forgather's torchtitan configs end without a final line break.
    let parent = "[a]\nx: 1\n\n[b]\ny: 2\n";
    assert_eq!(
        render_child(parent, &format!("{EXTENDS}[a]\nx: 2")),
        "x: 2\n\ny: 2\n"
    );
    assert_eq!(
        render_child(
            "[a]\r\nx: 1\r\n\r\n[b]\r\ny: 2\r\n",
            "-- extends 'parent.yaml'\r\n[a]\r\nx: 2"
        ),
        "x: 2\r\n\r\ny: 2\r\n"
    );
}

#[test]
fn required_block_may_hold_a_comment_without_space() {
    // Forgather's base templates: `##name: &anchor` inside a `required` block.
    let parent = "-- block body required\n##body: &body\n<< endblock body\n";
    let out = render_child(parent, &format!("{EXTENDS}[body]\nbody: 1\n"));
    assert_eq!(out, "body: 1\n");
}
