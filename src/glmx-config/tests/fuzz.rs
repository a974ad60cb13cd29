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

/// Override text: grammar fragments, nesting openers and sweeps.
fn override_text() -> impl Strategy<Value = String> {
    let frag = prop_oneof![
        Just("[".to_string()),
        Just("]".into()),
        Just("{".into()),
        Just("}".into()),
        Just("${".into()),
        Just("a:".into()),
        Just(",".into()),
        Just("=".into()),
        Just("'".into()),
        Just("\"".into()),
        Just("\\".into()),
        Just("(".into()),
        Just(")".into()),
        Just("range(".into()),
        Just("choice(".into()),
        Just("glob(".into()),
        Just("extend_list(".into()),
        Just("int(".into()),
        Just("sort(".into()),
        Just("${a.b}".into()),
        Just("oc.env:".into()),
        Just(" ".into()),
        "[a-z0-9_.@~+-]{0,5}",
    ];
    proptest::collection::vec(frag, 0..50).prop_map(|v| v.concat())
}

/// YAML documents with anchors, aliases, merge keys and interpolations.
fn hydra_yaml() -> impl Strategy<Value = String> {
    let frag = prop_oneof![
        Just("a: ".to_string()),
        Just("b: ".into()),
        Just("- ".into()),
        Just("&x ".into()),
        Just("*x".into()),
        Just("&y [*x, *x, *x]".into()),
        Just("<<: ".into()),
        Just("\n".into()),
        Just("  ".into()),
        Just("[".into()),
        Just("]".into()),
        Just("{".into()),
        Just("}".into()),
        Just("${a}".into()),
        Just("${b.c}".into()),
        Just("${.a}".into()),
        Just("${oc.select:a,1}".into()),
        Just("'".into()),
        Just(", ".into()),
        Just("1".into()),
        "[a-z0-9:${}.-]{0,5}",
    ];
    proptest::collection::vec(frag, 0..60).prop_map(|v| v.concat())
}

fn laughs(levels: usize) -> String {
    let mut out = String::from("l0: &l0 [lol]\n");
    for i in 1..=levels {
        let refs = vec![format!("*l{}", i - 1); 10].join(", ");
        out.push_str(&format!("l{i}: &l{i} [{refs}]\n"));
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn override_parser_and_sweeps_never_panic(text in override_text(), deep in 0usize..3) {
        use glmx_config::overrides::{expand_sweeps_limited, parse_override};
        let nested = match deep {
            0 => text.clone(),
            1 => format!("{}{text}", "[".repeat(5000)),
            _ => format!("{}{text}", "${".repeat(5000)),
        };
        for input in [format!("+k={nested}"), format!("k={nested}"), nested.clone()] {
            if let Ok(o) = parse_override(&input) {
                let _ = o.value_text();
                let _ = expand_sweeps_limited(&[o], &|_| vec!["x".into()], 1000);
            }
        }
    }

    #[test]
    fn yaml_and_interpolation_never_panic(text in hydra_yaml()) {
        use glmx_config::compose::yaml11;
        use glmx_config::interp::{resolve, NoResolvers};
        if let Ok(tree) = yaml11::load(&text, "fuzz.yaml") {
            let _ = resolve(&tree, &mut NoResolvers, &[]);
        }
    }
}

/// Runs `f` on a thread with the stack a process's main thread has (8 MiB, where Python calls
/// the engine), or 8x that in unoptimized builds, whose frames are several times larger: the
/// 2 MiB of a test thread is not what the limits are sized for.
fn on_main_sized_stack(f: fn()) {
    let mib = if cfg!(debug_assertions) { 64 } else { 8 };
    let worker = std::thread::Builder::new().stack_size(mib << 20).spawn(f);
    let joined = worker.expect("spawn a test thread").join();
    if let Err(panic) = joined {
        std::panic::resume_unwind(panic);
    }
}

#[test]
fn deep_inputs_are_limits_not_crashes() {
    on_main_sized_stack(deep_inputs_body);
}

fn deep_inputs_body() {
    use glmx_config::compose::yaml11;
    use glmx_config::interp::{resolve, NoResolvers};
    use glmx_config::overrides::parse_override;
    // 200,000 nested flow collections, 20,000-step interpolation chain, 9 levels of 10 aliases.
    let deep = format!("a: {}{}\n", "[".repeat(200_000), "]".repeat(200_000));
    assert!(yaml11::load(&deep, "deep.yaml").is_err());
    assert!(load_str(&deep, None).is_err());
    let mut chain: String = (0..20_000)
        .map(|i| format!("v{i}: ${{v{}}}\n", i + 1))
        .collect();
    chain.push_str("v20000: 1\n");
    let tree = yaml11::load(&chain, "chain.yaml").unwrap();
    let e = resolve(&tree, &mut NoResolvers, &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("GLMX_CONFIG_MAX_INTERPOLATION_DEPTH"), "{e}");
    let e = yaml11::load(&laughs(9), "l.yaml").unwrap_err().to_string();
    assert!(e.contains("GLMX_CONFIG_MAX_ALIAS_NODES"), "{e}");
    let e = load_str(&laughs(9), None).unwrap_err().to_string();
    assert!(e.contains("GLMX_CONFIG_MAX_ALIAS_NODES"), "{e}");
    assert!(load_str(&laughs(3), None).is_ok());
    for open in ["[", "{", "${", "{a:", "choice("] {
        let e = parse_override(&format!("+x={}", open.repeat(10_000)));
        assert!(e.is_err(), "{open}");
    }
    let e = render_str(&"{{ (".repeat(5000), &[], ());
    assert!(e.is_err());
}

#[test]
fn resolve_of_a_long_list_is_linear() {
    use glmx_config::compose::yaml11;
    use glmx_config::interp::{resolve, NoResolvers};
    let mut text = String::from("x: ${l[3]}\nl:\n");
    for i in 0..200_000 {
        text.push_str(&format!("  - s{i}\n"));
    }
    let tree = yaml11::load(&text, "l.yaml").unwrap();
    let t = std::time::Instant::now();
    let out = resolve(&tree, &mut NoResolvers, &[]).unwrap();
    assert!(t.elapsed().as_secs_f64() < 5.0, "{:?}", t.elapsed());
    assert_eq!(
        out.as_map().unwrap().get("x"),
        Some(&glmx_config::tree::Node::Str("s3".into()))
    );
}
