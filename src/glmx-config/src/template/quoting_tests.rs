//! Where a `{{ ... }}` value lands decides how it is written; injected structure never parses.

use crate::template::Renderer;

fn render(text: &str, v: &str) -> String {
    Renderer::new(vec![])
        .render_str("t.yaml", text, minijinja::context!(v => v))
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Parses `text` as YAML into JSON (tags dropped), panicking on a syntax error.
fn parse(text: &str) -> serde_json::Value {
    let v: serde_yaml::Value = serde_yaml::from_str(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    serde_json::to_value(strip_tags(v)).unwrap_or_default()
}

fn strip_tags(v: serde_yaml::Value) -> serde_yaml::Value {
    use serde_yaml::Value as Y;
    match v {
        Y::Tagged(t) => Y::String(format!("TAG {}", t.tag)),
        Y::Mapping(m) => Y::Mapping(m.into_iter().map(|(k, v)| (k, strip_tags(v))).collect()),
        Y::Sequence(s) => Y::Sequence(s.into_iter().map(strip_tags).collect()),
        other => other,
    }
}

#[test]
fn value_inside_double_quotes_is_escaped_not_requoted() {
    assert_eq!(render("d: \"{{ v }}\"\n", "A, B"), "d: \"A, B\"\n");
    assert_eq!(
        render("d: \"x {{ v }} y\"\n", "say \"hi\"\n"),
        "d: \"x say \\\"hi\\\"\\n y\"\n"
    );
    let out = render(
        "d: \"{{ v }}\"\nk: 1\n",
        "\"\nk: !!python/object/apply:os.system [x]\n#",
    );
    assert_eq!(parse(&out)["k"], 1);
    assert!(parse(&out)["d"].as_str().unwrap_or("").contains("!!python"));
}

#[test]
fn value_inside_single_quotes_doubles_quotes() {
    assert_eq!(render("d: '{{ v }}'\n", "it's, ok"), "d: 'it''s, ok'\n");
    let out = render("d: '{{ v }}'\nk: 1\n", "'\nk: !!python/name:os.system ''");
    assert_eq!(parse(&out)["k"], 1);
}

#[test]
fn value_in_comment_is_verbatim_and_stays_a_comment() {
    assert_eq!(
        render("# Description: {{ v }}\n", "A: b, c"),
        "# Description: A: b, c\n"
    );
    assert_eq!(render("k: 1 # {{ v }}\n", "x: y"), "k: 1 # x: y\n");
    let out = render("# {{ v }}\nk: 1\n", "a\nk: !!python/name:os.system\n");
    assert_eq!(out, "# a\n# k: !!python/name:os.system\n# \nk: 1\n");
    assert_eq!(parse(&out)["k"], 1);
}

#[test]
fn heading_from_a_macro_is_a_comment() {
    let text = "-- macro h3(n)\n{{ '# **' + n + '**' }}\n-- endmacro\n{{ h3('Model') }}\nk: 1\n";
    assert_eq!(render(text, ""), "# **Model**\n\nk: 1\n");
    let text = "-- macro h(n)\n    {{ '#' + '-' * 3 }}\n-- endmacro\na:\n{{ h('') }}\n    b: 1\n";
    assert_eq!(render(text, ""), "a:\n    #---\n\n    b: 1\n");
}

#[test]
fn value_in_block_scalar_is_indented_as_content() {
    let out = render(
        "s: |\n  {{ v }}\nk: 1\n",
        "x: y\nk: !!python/name:os.system",
    );
    assert_eq!(out, "s: |\n  x: y\n  k: !!python/name:os.system\nk: 1\n");
    assert_eq!(parse(&out)["k"], 1);
    let out = render(
        "- a: >-\n    pre {{ v }}\n- 2\n",
        "q\n- !!python/name:os.system",
    );
    assert_eq!(parse(&out).as_array().map(Vec::len), Some(2));
    // The block ended: a sibling key's value is quoted again.
    let out = render("- a: |\n    t\n  b: {{ v }}\n", "!!python/name:os.system");
    assert_eq!(out, "- a: |\n    t\n  b: \"!!python/name:os.system\"\n");
    // A value that starts the line after a block ends it: what follows is read as YAML again.
    let out = render("s: |\n  t\n{{ v }}: \"{{ v }}\"\n", "a: \"b\"");
    assert_eq!(out, "s: |\n  t\n\"a: \\\"b\\\"\": \"a: \\\"b\\\"\"\n");
}

#[test]
fn plain_values_with_commas_stay_plain_outside_flow() {
    assert_eq!(render("d: {{ v }}\n", "A, B"), "d: A, B\n");
    // inside `[...]` comma-separated scalars are items, as `[{{ xs|join(', ') }}]` means in
    // Jinja2; anything that could nest, tag or comment is still one quoted item
    assert_eq!(render("d: [{{ v }}]\n", "A, B"), "d: [A, B]\n");
    assert_eq!(render("d: [{{ v }}]\n", "64, 'x y'"), "d: [64, 'x y']\n");
    for v in [
        "a, [b]",
        "a, b: c",
        "a, !!str b",
        "a, &x b",
        "a # c",
        "a,\nb",
        "'a, b",
    ] {
        assert_eq!(
            parse(&render("d: [{{ v }}]\n", v))["d"],
            serde_json::json!([v])
        );
    }
    assert_eq!(render("d: {a: {{ v }}}\n", "x}"), "d: {a: \"x}\"}\n");
    assert_eq!(
        render("f: {a: [1,\n  2], b: {{ v }}}\n", "x"),
        "f: {a: [1,\n  2], b: x}\n"
    );
    assert_eq!(
        render("f: {a: 1,\n  b: {{ v }}}\n", "A, B"),
        "f: {a: 1,\n  b: \"A, B\"}\n"
    );
    // brackets inside plain text open nothing
    assert_eq!(render("r: a[\nd: {{ v }}\n", "A, B"), "r: a[\nd: A, B\n");
}

#[test]
fn structural_values_are_quoted_in_plain_positions() {
    for v in [
        "!!python/object/apply:os.system [\"echo x\"]",
        "2\n  x: !singleton:os:system [a]",
        "[1, 2]",
        "a: b",
        "# not a comment here",
        "&a x",
        "- item",
    ] {
        let out = render("n: {{ v }}\nk: 1\n", v);
        assert_eq!(parse(&out)["n"], v, "{out}");
        let out = render("- {{ v }}\n- 2\n", v);
        assert_eq!(parse(&out)[0], v, "{out}");
    }
    assert_eq!(render("{{ v }}: 1\n", "a: b"), "\"a: b\": 1\n");
}

#[test]
fn marker_characters_in_values_and_templates_survive() {
    let v = "\u{FDD0}x\u{FDD1}\u{FDD2}";
    assert_eq!(parse(&render("n: \"{{ v }}\"\n", v))["n"], v);
    assert_eq!(render("a: \u{FDD0}b\n", ""), "a: \u{FDD0}b\n");
}

mod prop {
    use super::*;
    use proptest::prelude::*;

    /// Strings heavy in YAML indicators, quotes, line breaks and the marker characters.
    fn tricky() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop_oneof![
                Just("\"".to_string()),
                Just("'".to_string()),
                Just("\\".to_string()),
                Just("\n".to_string()),
                Just("\t".to_string()),
                Just(": ".to_string()),
                Just(" #".to_string()),
                Just("- ".to_string()),
                Just("!!python/name:os.system".to_string()),
                Just("k: 2".to_string()),
                Just("---".to_string()),
                Just("\u{FDD0}".to_string()),
                "[a-z{}\\[\\],&*|>?%@` ]{0,3}",
            ],
            0..8,
        )
        .prop_map(|parts| parts.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// Wherever `{{ v }}` lands, the document keeps its keys, `k` stays 1, and a value
        /// meant as a scalar reads back as one string.
        #[test]
        fn values_never_change_structure(v in tricky()) {
            let cases: [(&str, &[&str]); 9] = [
                // written by a macro: judged where the macro's output lands
                ("-- macro m(x)\n  {{ x }}\n-- endmacro\nn:\n{{ m(v) }}k: 1\n", &["n", "k"]),
                ("s: |\n  t\nn: {{ v }}\nk: 1\n", &["s", "n", "k"]),
                ("n: {{ v }}\nk: 1\n", &["n", "k"]),
                ("n: \"{{ v }}\"\nk: 1\n", &["n", "k"]),
                ("n: 'x{{ v }}'\nk: 1\n", &["n", "k"]),
                ("# {{ v }}\nk: 1\n", &["k"]),
                ("k: 1 # {{ v }}\n", &["k"]),
                ("s: |\n  {{ v }}\nk: 1\n", &["s", "k"]),
                ("n: [{{ v }}]\nk: 1\n", &["n", "k"]),
            ];
            for (text, keys) in cases {
                if text.starts_with("s: |") && v.starts_with(['\t', ' ', '\n']) {
                    // The first content line decides the block's indentation: a leading tab or
                    // blank line there is a YAML error at load (never a structure change).
                    continue;
                }
                let out = render(text, &v);
                let doc = parse(&out);
                let mut got: Vec<&str> = doc
                    .as_object()
                    .map(|m| m.keys().map(String::as_str).collect())
                    .unwrap_or_default();
                got.sort_unstable();
                let mut want = keys.to_vec();
                want.sort_unstable();
                prop_assert_eq!(&got, &want, "{:?} -> {:?}", text, out);
                prop_assert_eq!(&doc["k"], &serde_json::json!(1), "{:?}", out);
                if text.starts_with("n: [") {
                    // scalar items only: one, or several split at the value's commas (none
                    // for an empty or blank value, as in the reference engine)
                    let items = doc["n"].as_array().cloned().unwrap_or_default();
                    prop_assert!(items.iter().all(|i| !i.is_array() && !i.is_object()), "{:?}", out);
                    let len = items.len();
                    prop_assert!(len == 1 || v.contains(',') || (v.trim().is_empty() && len == 0), "{:?}", out);
                }
            }
        }
    }
}
