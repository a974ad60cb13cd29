//! End-to-end tests of the coordinator in Rust: save (sync and async), commit, load, retention.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Map, Value};
use tch::{Device, Kind, Tensor};

use super::*;
use crate::cancel::Never;

fn opts(dir: &std::path::Path) -> Options {
    Options {
        run_dir: dir.to_path_buf(),
        world_size: 1,
        rank: 0,
        local_world_size: 1,
        group_size: 1,
        save_total_limit: Some(2),
        keep_best: 0,
        monitor: None,
        mode: Mode::Min,
        max_shard_size: 1 << 30,
        barrier_timeout: Duration::from_secs(5),
        torch_version: "test".into(),
        validate_replicated: false,
        session: String::new(),
    }
}

fn request(step: u64) -> SaveRequest {
    let w = Tensor::full([4, 4], step as f64, (Kind::Float, Device::Cpu));
    let rng = ComponentInput {
        name: "rng".into(),
        sharing: Sharing::PerRank,
        tensors: vec![("seed".into(), Tensor::from_slice(&[step as i64]))],
        file_metadata: BTreeMap::from([("glmx.structure".into(), "{}".into())]),
        info: Value::Null,
    };
    SaveRequest {
        step,
        model: vec![("w".into(), w)],
        components: vec![rng],
        metrics: Map::new(),
    }
}

#[test]
fn save_commit_load_and_retention() {
    let dir = std::env::temp_dir().join(format!("glmx-coord-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut coord = Coordinator::new(opts(&dir)).unwrap();
    coord.save(request(1), false, &Never).unwrap();
    for step in 2..=4 {
        coord.save(request(step), true, &Never).unwrap();
    }
    assert_eq!(
        coord.wait().unwrap(),
        Some(dir.join("checkpoints/checkpoint-4"))
    );
    let steps: Vec<u64> = coord.list().unwrap().iter().map(|(_, m)| m.step).collect();
    assert_eq!(steps, vec![3, 4]);
    let loaded = coord.load("last", None, true).unwrap();
    assert_eq!(loaded.manifest.step, 4);
    assert_eq!(loaded.model[0].1.double_value(&[0, 0]), 4.0);
    assert_eq!(loaded.components[0].name, "rng");
    assert_eq!(loaded.components[0].tensors[0].1.int64_value(&[0]), 4);
    assert!(coord.buffer_bytes() >= 64);
    std::fs::remove_dir_all(&dir).unwrap();
}

fn rank_opts(dir: &std::path::Path, rank: usize, session: &str) -> Options {
    Options {
        world_size: 2,
        rank,
        local_world_size: 2,
        group_size: 2,
        session: session.into(),
        ..opts(dir)
    }
}

#[test]
fn ranks_start_in_any_order() {
    for rank1_first in [true, false] {
        let dir = std::env::temp_dir().join(format!(
            "glmx-coord-order-{}-{rank1_first}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        // A leftover of an interrupted launch at the same step, with a marker of rank 1.
        let tmp = dir.join("checkpoints/.checkpoint-7.tmp");
        std::fs::create_dir_all(&tmp).unwrap();
        std::fs::write(
            tmp.join(".rank-1.json"),
            r#"{"rank":1,"session":"old","components":{},"replicated":{}}"#,
        )
        .unwrap();
        let save = |rank: usize| {
            let mut c = Coordinator::new(rank_opts(&dir, rank, "now")).unwrap();
            c.save(request(7), false, &Never).unwrap()
        };
        let committed = std::thread::scope(|s| {
            let first = if rank1_first { 1 } else { 0 };
            let h_first = s.spawn(move || save(first));
            if rank1_first {
                // rank 1 finishes its part before rank 0 even starts
                h_first.join().unwrap();
                save(0)
            } else {
                std::thread::sleep(Duration::from_millis(200));
                save(1);
                h_first.join().unwrap()
            }
        });
        assert_eq!(committed, dir.join("checkpoints/checkpoint-7"));
        let m = Manifest::read(&committed).unwrap();
        assert_eq!(m.components["rng"].ranks, vec![0, 1], "{rank1_first}");
        assert!(committed.join("rng_rank1.safetensors").is_file());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn stale_markers_of_another_session_are_ignored() {
    let dir = std::env::temp_dir().join(format!("glmx-coord-stale-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let tmp = dir.join("checkpoints/.checkpoint-3.tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    std::fs::write(
        tmp.join(".rank-1.json"),
        r#"{"rank":1,"session":"old","components":{},"replicated":{}}"#,
    )
    .unwrap();
    let mut o = rank_opts(&dir, 0, "now");
    o.barrier_timeout = Duration::from_millis(300);
    let mut c = Coordinator::new(o).unwrap();
    let err = c.save(request(3), false, &Never).unwrap_err().to_string();
    assert!(
        err.contains("rank 1 did not finish") && err.contains("session 'old'"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
