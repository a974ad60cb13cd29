use super::*;

#[test]
fn aliases_share_nodes_and_definitions_hidden() {
    let g = load_str(".d: &x !dict {a: 1}\nmain: [*x, *x]\n", Some("f.yaml")).unwrap();
    assert_eq!(g.target_names(), vec!["main"]);
    let Node::List { items, .. } = g.node(g.target("main").unwrap()) else {
        panic!()
    };
    assert_eq!(items[0], items[1]);
    assert_eq!(g.definitions()[0].0, ".d");
}

#[test]
fn merge_keys_keep_shared_values() {
    let g = load_str(
        "base: &b {m: !singleton:dict []}\nchild:\n  <<: *b\n  n: 1\n",
        None,
    )
    .unwrap();
    let Node::Dict { entries: be, .. } = g.node(g.target("base").unwrap()) else {
        panic!()
    };
    let Node::Dict { entries: ce, .. } = g.node(g.target("child").unwrap()) else {
        panic!()
    };
    assert_eq!(be[0].1, ce[0].1);
    assert_eq!(ce.len(), 2);
}

#[test]
fn recursive_alias_is_an_error() {
    let err = load_str("a: &a [1, *a]\n", None).unwrap_err().to_string();
    assert!(err.contains("recursive alias"), "{err}");
}

#[test]
fn errors_carry_key_and_line() {
    let err = load_str("a:\n  b:\n    c: !tuple {x: 1}\n", Some("f.yaml"))
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("f.yaml:3"), "{err}");
    assert!(err.contains("'a.b.c'"), "{err}");
}

#[test]
fn yaml_round_trip_of_graph_reloads() {
    let text = "s: &s !singleton:dict@s {a: !var {name: v, default: [1]}}\nmain: !tuple [*s, *s, !partial:pow [2]]\n";
    let g = load_str(text, None).unwrap();
    let again = load_str(&g.to_yaml(), None).unwrap();
    assert_eq!(again.to_yaml(), g.to_yaml());
}
