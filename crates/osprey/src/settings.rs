//! Where settings come from, lowest to highest precedence: built-in defaults, the config file
//! (`--config`), `OSPREY_<SECTION>__<KEY>` environment variables and `--set section.key=value`
//! (which reach every option of the file), and the dedicated flags (each also read from its
//! `OSPREY_*` variable).

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Args;
use serde_norway::{Mapping, Value};

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// The configuration file (osprey.yml).
    #[arg(long, env = "OSPREY_CONFIG")]
    pub config: Option<PathBuf>,
    /// Directory for all data [default: ./data].
    #[arg(long, env = "OSPREY_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address of the HTTP port for the UI and every API [default: 0.0.0.0:7360].
    #[arg(long, env = "OSPREY_LISTEN")]
    pub listen: Option<String>,
    /// Log format: text or json [default: text].
    #[arg(long, env = "OSPREY_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// How long samples are kept, e.g. 15d [default: 15d].
    #[arg(long, env = "OSPREY_RETENTION")]
    pub retention: Option<String>,
    /// Any option of the config file by its dotted path, e.g. `--set query.timeout=30s`.
    #[arg(long = "set", value_name = "PATH=VALUE")]
    pub set: Vec<String>,
}

/// The effective configuration and the YAML it was built from.
pub fn resolve(args: &ServeArgs) -> anyhow::Result<(osprey_server::Config, String)> {
    let mut tree = match &args.config {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).with_context(|| format!("cannot read config file {}", path.display()))?;
            serde_norway::from_str::<Value>(&text).with_context(|| format!("invalid YAML in {}", path.display()))?
        }
        None => Value::Mapping(Mapping::new()),
    };
    if tree.is_null() {
        tree = Value::Mapping(Mapping::new());
    }
    let mut overrides: Vec<(String, String)> = std::env::vars()
        .filter_map(|(k, v)| {
            k.strip_prefix("OSPREY_")
                .filter(|rest| rest.contains("__"))
                .map(|rest| (rest.replace("__", ".").to_lowercase(), v))
        })
        .collect();
    for s in &args.set {
        let (path, value) =
            s.split_once('=').with_context(|| format!("--set {s:?}: use PATH=VALUE, e.g. query.timeout=30s"))?;
        overrides.push((path.to_string(), value.to_string()));
    }
    let flags = [
        ("storage.data_dir", args.data_dir.as_ref().map(|p| p.display().to_string())),
        ("server.listen", args.listen.clone()),
        ("server.log_format", args.log_format.clone()),
        ("storage.retention", args.retention.clone()),
    ];
    overrides.extend(flags.into_iter().filter_map(|(k, v)| v.map(|v| (k.to_string(), v))));
    for (path, value) in overrides {
        set_path(&mut tree, &path, &value)?;
    }
    let yaml = serde_norway::to_string(&tree).unwrap_or_default();
    let origin = args.config.clone().unwrap_or_else(|| PathBuf::from("<flags>"));
    let config = osprey_server::Config::from_yaml(&origin, &yaml)?;
    Ok((config, yaml))
}

fn set_path(tree: &mut Value, path: &str, value: &str) -> anyhow::Result<()> {
    let parsed: Value = serde_norway::from_str(value).unwrap_or_else(|_| Value::String(value.to_string()));
    let mut node = tree;
    let parts: Vec<&str> = path.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        let Value::Mapping(map) = node else {
            bail!("cannot set {path}: {} is not a section", parts[..i].join("."));
        };
        let key = Value::String(part.to_string());
        if i + 1 == parts.len() {
            map.insert(key, parsed);
            return Ok(());
        }
        node = map.entry(key).or_insert_with(|| Value::Mapping(Mapping::new()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_paths_create_sections_and_parse_scalars() {
        let mut tree = Value::Mapping(Mapping::new());
        set_path(&mut tree, "query.max_samples", "100").unwrap();
        set_path(&mut tree, "storage.retention", "30d").unwrap();
        assert_eq!(serde_norway::to_string(&tree).unwrap(), "query:\n  max_samples: 100\nstorage:\n  retention: 30d\n");
    }
}
