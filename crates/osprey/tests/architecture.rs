//! The dependency direction ARCHITECTURE.md promises, checked against `cargo metadata` so that
//! a change that moves a boundary fails here until the document moves with it.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

/// For each crate, the internal crates it may depend on (normal dependencies).
const ALLOWED: &[(&str, &[&str])] = &[
    ("osprey-model", &[]),
    ("osprey-codec", &["osprey-model"]),
    ("osprey-tsdb", &["osprey-model", "osprey-codec"]),
    ("osprey-wire", &["osprey-model"]),
    ("osprey-relabel", &["osprey-model"]),
    ("osprey-promql", &["osprey-model"]),
    ("osprey-ingest", &["osprey-model", "osprey-wire"]),
    ("osprey-scrape", &["osprey-model", "osprey-wire", "osprey-relabel"]),
    // The API reaches storage only through the model's traits, never an engine's types.
    ("osprey-api", &["osprey-model", "osprey-wire", "osprey-ingest", "osprey-promql"]),
];

fn internal_dependencies() -> BTreeMap<String, BTreeSet<String>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo metadata");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut deps = BTreeMap::new();
    for package in meta["packages"].as_array().unwrap() {
        let name = package["name"].as_str().unwrap().to_string();
        let internal: BTreeSet<String> = package["dependencies"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["kind"].is_null()) // normal dependencies; dev and build ones may test across
            .map(|d| d["name"].as_str().unwrap().to_string())
            .filter(|d| d.starts_with("osprey-"))
            .collect();
        deps.insert(name, internal);
    }
    deps
}

#[test]
fn crates_depend_only_in_the_documented_direction() {
    let deps = internal_dependencies();
    let mut violations = Vec::new();
    for (krate, allowed) in ALLOWED {
        let Some(actual) = deps.get(*krate) else {
            violations.push(format!("{krate} is documented but not in the workspace"));
            continue;
        };
        for dep in actual {
            if !allowed.contains(&dep.as_str()) {
                violations.push(format!("{krate} depends on {dep}"));
            }
        }
    }
    // Only the composition root and the binary see the storage engine's own types.
    for (krate, actual) in &deps {
        if actual.contains("osprey-tsdb") && !matches!(krate.as_str(), "osprey-server" | "osprey") {
            violations.push(format!("{krate} depends on osprey-tsdb"));
        }
    }
    assert!(violations.is_empty(), "dependency rules of ARCHITECTURE.md broken: {violations:?}");
}
