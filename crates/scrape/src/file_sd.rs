//! `file_sd_configs`: target groups read from JSON or YAML files matched by globs, re-read
//! when a file's modification time or size changes (checked every `refresh_interval`).
//!
//! As in Prometheus, a file that fails to parse keeps the targets it last had, each group gets
//! `__meta_filepath`, and a file that disappears takes its targets with it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::SystemTime;

use crate::config::FileSdConfig;
use crate::target::TargetGroup;

/// What was last read from one file.
struct FileState {
    modified: Option<SystemTime>,
    len: u64,
    groups: Vec<TargetGroup>,
}

/// The files of one `file_sd_configs` entry and the groups read from them.
pub(crate) struct FileDiscovery {
    patterns: Vec<String>,
    files: BTreeMap<PathBuf, FileState>,
}

impl FileDiscovery {
    pub(crate) fn new(config: &FileSdConfig) -> FileDiscovery {
        FileDiscovery { patterns: config.files.clone(), files: BTreeMap::new() }
    }

    /// Re-reads new and changed files and forgets vanished ones. Returns whether the set of
    /// groups may have changed. Blocking: run it off the async runtime.
    pub(crate) fn refresh(&mut self) -> bool {
        let mut seen = Vec::new();
        for pattern in &self.patterns {
            match glob::glob(pattern) {
                Ok(paths) => seen.extend(paths.filter_map(Result::ok)),
                Err(e) => tracing::warn!(pattern, error = %e, "invalid file_sd pattern"),
            }
        }
        let before = self.files.len();
        self.files.retain(|path, _| seen.contains(path));
        let mut changed = before != self.files.len();
        for path in seen {
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            let (modified, len) = (meta.modified().ok(), meta.len());
            let unchanged = self.files.get(&path).is_some_and(|f| f.modified == modified && f.len == len);
            if unchanged {
                continue;
            }
            match read_groups(&path) {
                Ok(groups) => {
                    self.files.insert(path, FileState { modified, len, groups });
                    changed = true;
                }
                // Keep what the file had; it may be half-written.
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "cannot read file_sd file")
                }
            }
        }
        changed
    }

    pub(crate) fn groups(&self) -> Vec<TargetGroup> {
        self.files.values().flat_map(|f| f.groups.iter().cloned()).collect()
    }
}

#[derive(Debug, thiserror::Error)]
enum ReadError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("invalid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("invalid YAML: {0}")]
    Yaml(#[from] serde_norway::Error),
    #[error("invalid label name {0:?} in a target group")]
    LabelName(String),
}

fn read_groups(path: &std::path::Path) -> Result<Vec<TargetGroup>, ReadError> {
    let text = std::fs::read_to_string(path)?;
    let is_json = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let mut groups: Vec<TargetGroup> = if is_json {
        serde_json::from_str(&text)?
    } else {
        serde_norway::from_str::<Option<_>>(&text)?.unwrap_or_default()
    };
    for group in &mut groups {
        if let Some(name) = group.labels.keys().find(|n| !osprey_model::is_valid_label_name(n)) {
            return Err(ReadError::LabelName(name.clone()));
        }
        group.labels.insert("__meta_filepath".to_string(), path.display().to_string());
    }
    Ok(groups)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &std::path::Path) -> FileSdConfig {
        FileSdConfig {
            files: vec![format!("{}/*.json", dir.display()), format!("{}/*.yml", dir.display())],
            refresh_interval: None,
        }
    }

    #[test]
    fn reads_json_and_yaml_and_follows_changes() {
        let dir = tempfile::tempdir().unwrap();
        let json = dir.path().join("a.json");
        std::fs::write(&json, r#"[{"targets": ["a:1"], "labels": {"env": "prod"}}]"#).unwrap();
        std::fs::write(dir.path().join("b.yml"), "- targets: ['b:2', 'c:3']\n").unwrap();
        let mut sd = FileDiscovery::new(&config(dir.path()));
        assert!(sd.refresh());
        let groups = sd.groups();
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].targets, ["a:1"]);
        assert_eq!(groups[0].labels["env"], "prod");
        assert_eq!(groups[0].labels["__meta_filepath"], json.display().to_string());
        assert_eq!(groups[1].targets, ["b:2", "c:3"]);
        assert!(!sd.refresh(), "nothing changed");

        // A broken rewrite keeps the old targets; a good one replaces them.
        std::fs::write(&json, "[{").unwrap();
        sd.refresh();
        assert_eq!(sd.groups()[0].targets, ["a:1"]);
        std::fs::write(&json, r#"[{"targets": ["a:1", "a:2"]}]"#).unwrap();
        assert!(sd.refresh());
        assert_eq!(sd.groups()[0].targets, ["a:1", "a:2"]);

        std::fs::remove_file(&json).unwrap();
        assert!(sd.refresh());
        assert_eq!(sd.groups().len(), 1);
    }

    #[test]
    fn rejects_invalid_label_names() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.json"), r#"[{"targets": ["a:1"], "labels": {"bad-name": "x"}}]"#).unwrap();
        let mut sd = FileDiscovery::new(&config(dir.path()));
        sd.refresh();
        assert!(sd.groups().is_empty());
    }
}
