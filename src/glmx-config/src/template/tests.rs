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
