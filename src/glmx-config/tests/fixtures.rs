//! Fixture-directory tests: the template projects under `tests/fixtures/projects` render to their
//! `expected/*.rendered.yaml` and build the expected graphs.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use glmx_config::graph::Node;
use glmx_config::meta::{load_meta, load_project};

fn projects() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/projects")
}

#[test]
fn every_expected_rendering_matches() {
    let mut checked = 0;
    for project in std::fs::read_dir(projects()).unwrap() {
        let dir = project.unwrap().path();
        let Ok(expected) = std::fs::read_dir(dir.join("expected")) else {
            continue;
        };
        for file in expected {
            let path = file.unwrap().path();
            let name = path
                .file_name()
                .unwrap()
                .to_string_lossy()
                .replace(".rendered.yaml", ".yaml");
            let loaded = load_project(Some(&name), &dir, ()).unwrap();
            assert_eq!(
                loaded.rendered,
                std::fs::read_to_string(&path).unwrap(),
                "{}",
                path.display()
            );
            checked += 1;
        }
    }
    assert!(checked > 0);
}

#[test]
fn chain_graph_shares_the_activation() {
    let loaded = load_project(None, &projects().join("chain"), ()).unwrap();
    let g = &loaded.graph;
    let main = g.target("main").unwrap();
    let Node::Call { kwargs, .. } = g.node(main) else {
        panic!()
    };
    let act = kwargs.iter().find(|(k, _)| k == "act").unwrap().1;
    let Node::Call {
        kwargs: model_kwargs,
        ..
    } = g.node(g.target("model").unwrap())
    else {
        panic!()
    };
    assert_eq!(
        model_kwargs.iter().find(|(k, _)| k == "act").unwrap().1,
        act
    );
}

#[test]
fn meta_reads_search_path() {
    let meta = load_meta(&projects().join("chain")).unwrap();
    assert_eq!(meta.name, "chain");
    assert_eq!(meta.search_path.len(), 3);
}

#[test]
fn cycle_and_undefined_errors() {
    let dir = projects().join("chain");
    let err = load_project(Some("cycle.yaml"), &dir, ())
        .unwrap_err()
        .to_string();
    assert!(err.contains("inheritance cycle"), "{err}");
    let err = load_project(Some("broken_undefined.yaml"), &dir, ())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("broken_undefined.yaml:3") && err.contains("missing_width"),
        "{err}"
    );
}
