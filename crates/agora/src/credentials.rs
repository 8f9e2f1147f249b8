//! The user's saved registry and tokens: `$XDG_CONFIG_HOME/agora/credentials.json`,
//! readable only by the user (mode 0600).

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use anyhow::Context;
use serde::{Deserialize, Serialize};

pub const DEFAULT_REGISTRY: &str = "http://127.0.0.1:8080";

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Credentials {
    /// The registry used when `--registry` is not given.
    #[serde(default)]
    pub default_registry: Option<String>,
    /// Token per registry URL.
    #[serde(default)]
    pub tokens: BTreeMap<String, String>,
}

fn path() -> anyhow::Result<PathBuf> {
    let dir = dirs::config_dir()
        .context("cannot find your configuration directory (set XDG_CONFIG_HOME or HOME)")?;
    Ok(dir.join("agora").join("credentials.json"))
}

fn normalize(url: &str) -> String {
    url.trim_end_matches('/').to_owned()
}

impl Credentials {
    pub fn load() -> anyhow::Result<Credentials> {
        let path = path()?;
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .with_context(|| format!("{} is not valid; fix or delete it", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Credentials::default()),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// Writes the file with mode 0600 (through a temporary file in the same directory).
    pub fn save(&self) -> anyhow::Result<PathBuf> {
        let path = path()?;
        let dir = path.parent().context("credentials path has no parent")?;
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let temp = dir.join(format!(".credentials.{}.tmp", std::process::id()));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temp)
            .with_context(|| format!("cannot write {}", temp.display()))?;
        file.write_all(&serde_json::to_vec_pretty(self)?)?;
        file.sync_all()?;
        std::fs::rename(&temp, &path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(path)
    }

    pub fn registry(&self, flag: Option<&str>) -> String {
        normalize(
            flag.or(self.default_registry.as_deref())
                .unwrap_or(DEFAULT_REGISTRY),
        )
    }

    pub fn token_for(&self, registry: &str) -> Option<String> {
        std::env::var("AGORA_TOKEN")
            .ok()
            .filter(|t| !t.is_empty())
            .or_else(|| self.tokens.get(&normalize(registry)).cloned())
    }

    pub fn set_token(&mut self, registry: &str, token: String) {
        self.tokens.insert(normalize(registry), token);
        self.default_registry = Some(normalize(registry));
    }
}
