//! Property tests: malformed input to the translator, tag parser and graph builder returns an
//! error, never a panic. `PROPTEST_CASES` scales the number of inputs (default 500 per test).

#![allow(clippy::unwrap_used)]

use glmx_config::graph::load_str;
use glmx_config::tags::parse_tag;
use glmx_config::template::{preprocess, render_str};
use proptest::prelude::*;

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500)
}

/// Text made of config-ish fragments, so inputs reach deep code paths.
fn config_text() -> impl Strategy<Value = String> {
    let frag = prop_oneof![
        Just("-- ".to_string()),
        Just("<< ".into()),
        Just(">> ".into()),
        Just("== ".into()),
        Just("=> ".into()),
        Just("## ".into()),
        Just("[a]".into()),
        Just("[b!]".into()),
        Just("\n".into()),
        Just("  ".into()),
        Just("{%".into()),
        Just("%}".into()),
        Just("{{".into()),
        Just("}}".into()),
        Just("#--- x ---".into()),
        Just("extends 'x'".into()),
        Just("block a".into()),
        Just("endblock".into()),
        Just("a: ".into()),
        Just("- ".into()),
        Just("&x ".into()),
        Just("*x".into()),
        Just("<<: ".into()),
        Just("!singleton:dict".into()),
        Just("!factory:a.b:C@n ".into()),
        Just("!partial:pow".into()),
        Just("!var ".into()),
        Just("!dlist".into()),
        Just("!tuple".into()),
        Just("!meta".into()),
        Just("!dict".into()),
        Just("arg0: ".into()),
        Just(".d: ".into()),
        Just("[".into()),
        Just("]".into()),
        Just("{".into()),
        Just("}".into()),
        Just("'".into()),
        Just("\"".into()),
        Just(", ".into()),
        Just("1".into()),
        Just("null".into()),
        Just("~".into()),
        "[a-z0-9:@!.&*\\[\\]{}, -]{0,6}",
    ];
    proptest::collection::vec(frag, 0..40).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn translator_never_panics_and_keeps_lines(text in config_text()) {
        let out = preprocess(&text);
        prop_assert_eq!(out.matches('\n').count(), text.matches('\n').count());
        let _ = render_str(&text, &[], ());
    }

    #[test]
    fn tag_parser_never_panics(tag in "!?[a-z]{0,9}(:[a-zA-Z0-9_./:@ ]{0,12})?") {
        let _ = parse_tag(&tag);
    }

    #[test]
    fn graph_builder_never_panics(text in config_text()) {
        if let Ok(g) = load_str(&text, Some("fuzz.yaml")) {
            let _ = g.to_yaml();
            for name in g.target_names() {
                let _ = glmx_config::codegen::generate(&g, name);
            }
        }
    }

    #[test]
    fn arbitrary_unicode_never_panics(text in "\\PC{0,200}") {
        let _ = preprocess(&text);
        let _ = load_str(&text, None);
        let _ = render_str(&text, &[], ());
    }
}
