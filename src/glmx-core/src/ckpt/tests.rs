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
