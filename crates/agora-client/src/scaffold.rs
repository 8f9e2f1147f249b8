//! `agora new`: a working plugin to start from: manifest, Rust source speaking the
//! contract, README, LICENSE, and the contract's helper crate vendored beside it (so it
//! builds anywhere, with no path into an Agora checkout). It builds with `agora build`,
//! passes `agora conformance` and publishes as is once `publisher` is yours.
//!
//! The sources are the repository's own examples (`examples/plugins`), embedded at build
//! time, so what `agora new` writes is what the test suites build and run.

use std::path::{Path, PathBuf};

use agora_core::manifest::RuntimeKind;

const CONTRACT_LIB: &str = include_str!("../../agora-contract/src/lib.rs");
const CONTRACT_README: &str = include_str!("../../agora-contract/README.md");
const WASM_MAIN: &str = include_str!("../../../examples/plugins/hello-wasm/src/main.rs");
const NATIVE_KIT: &str = include_str!("../../../examples/plugins/native-kit/src/lib.rs");
const NATIVE_MAIN: &str = include_str!("../../../examples/plugins/echo-native/src/main.rs");

#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    #[error("{0:?} is not a plugin name: {rule}", rule = agora_core::name::SLUG_RULE)]
    Name(String),
    #[error("{0:?} is not a publisher name: {rule}", rule = agora_core::name::SLUG_RULE)]
    Publisher(String),
    #[error("{0} already exists; choose another name or directory")]
    Exists(PathBuf),
    #[error("runtime {0} has no template; choose wasm or exec")]
    Runtime(&'static str),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Writes a new plugin `publisher/name` into `dir` (which must not exist yet) and returns
/// the files written, relative to `dir`.
pub fn scaffold(
    dir: &Path,
    publisher: &str,
    name: &str,
    runtime: RuntimeKind,
) -> Result<Vec<String>, ScaffoldError> {
    if !agora_core::name::is_slug(name) {
        return Err(ScaffoldError::Name(name.to_owned()));
    }
    if !agora_core::name::is_slug(publisher) {
        return Err(ScaffoldError::Publisher(publisher.to_owned()));
    }
    if dir.exists() {
        return Err(ScaffoldError::Exists(dir.to_path_buf()));
    }
    let contract_toml = "[package]\nname = \"agora-contract\"\nversion = \"0.1.0\"\n\
        edition = \"2024\"\nlicense = \"Apache-2.0\"\npublish = false\n\n[dependencies]\n\
        hmac = \"0.12\"\nsha2 = \"0.10\"\nhex = \"0.4\"\n"
        .to_owned();
    let mut files: Vec<(String, String)> = vec![
        ("vendor/agora-contract/Cargo.toml".into(), contract_toml),
        (
            "vendor/agora-contract/src/lib.rs".into(),
            CONTRACT_LIB.into(),
        ),
        (
            "vendor/agora-contract/README.md".into(),
            CONTRACT_README.into(),
        ),
        (
            ".gitignore".into(),
            "/target\n/plugin.wasm\n/bin/\n*.agora\n".into(),
        ),
        ("LICENSE".into(), license()),
    ];
    let common = format!(
        "api_version: agora/v1\npublisher: {publisher}\nname: {name}\nversion: 0.1.0\n\
         description: What {name} does, in one line\nlicense: Apache-2.0\n"
    );
    match runtime {
        RuntimeKind::Wasm => {
            files.push((
                "plugin.yaml".into(),
                format!(
                    "{common}runtime: {{ type: wasm, module: plugin.wasm }}\n\
                     entrypoints:\n  greet: {{ path: /greet, timeout_ms: 1000 }}\n\
                     compatibility: {{ runner_api: v1 }}\n\
                     resources: {{ memory_mb: 16, timeout_ms: 2000 }}\n"
                ),
            ));
            files.push((
                "Cargo.toml".into(),
                format!(
                    "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\
                     publish = false\n\n# A plugin builds on its own: `agora build`.\n[workspace]\n\n\
                     [dependencies]\nwstd = \"0.6.8\"\n\
                     # The contract's helper crate, vendored; or agora-contract = \"0.1\" from crates.io.\n\
                     agora-contract = {{ path = \"vendor/agora-contract\" }}\n"
                ),
            ));
            files.push(("src/main.rs".into(), WASM_MAIN.into()));
            files.push((
                "README.md".into(),
                readme(
                    publisher,
                    name,
                    "a WebAssembly component (wasi:http/proxy)",
                    "greet",
                    r#"{"name":"Ada"}"#,
                ),
            ));
        }
        RuntimeKind::Exec => {
            let platform = agora_core::manifest::platform();
            files.push((
                "plugin.yaml".into(),
                format!(
                    "{common}runtime:\n  type: exec\n  binaries:\n    {platform}: bin/{name}\n\
                     entrypoints:\n  echo: {{ path: /echo, timeout_ms: 2000 }}\n\
                     compatibility: {{ runner_api: v1 }}\n\
                     capabilities: [filesystem_temp]\n\
                     resources: {{ memory_mb: 32, timeout_ms: 5000, max_fds: 16 }}\n"
                ),
            ));
            files.push((
                "Cargo.toml".into(),
                format!(
                    "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\
                     publish = false\n\n# A plugin builds on its own: `agora build`.\n[workspace]\n\n\
                     [dependencies]\nnative-kit = {{ path = \"vendor/native-kit\" }}\nserde_json = \"1\"\n"
                ),
            ));
            files.push((
                "vendor/native-kit/Cargo.toml".into(),
                "[package]\nname = \"native-kit\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\
                 publish = false\n\n[dependencies]\n\
                 agora-contract = { path = \"../agora-contract\" }\nserde_json = \"1\"\n"
                    .into(),
            ));
            files.push(("vendor/native-kit/src/lib.rs".into(), NATIVE_KIT.into()));
            files.push((
                "src/main.rs".into(),
                NATIVE_MAIN.replace("\"echo-native\"", &format!("\"{name}\"")),
            ));
            files.push((
                "README.md".into(),
                readme(
                    publisher,
                    name,
                    "a native Linux executable",
                    "echo",
                    r#"{"hello":"world"}"#,
                ),
            ));
        }
        RuntimeKind::Oci => return Err(ScaffoldError::Runtime("oci")),
    }
    let mut written = Vec::new();
    for (relative, content) in files {
        let path = dir.join(&relative);
        let write = || -> std::io::Result<()> {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&path, content)
        };
        write().map_err(|source| ScaffoldError::Write {
            path: path.clone(),
            source,
        })?;
        written.push(relative);
    }
    Ok(written)
}

fn readme(publisher: &str, name: &str, what: &str, entry: &str, input: &str) -> String {
    format!(
        "# {name}\n\nAn Agora plugin: {what}. It checks the runner's signature on every request \
         (the `agora-contract` crate in `vendor/`) and answers errors as \
         `application/problem+json`.\n\n```sh\nagora build                 # cargo builds it; the artifact lands where plugin.yaml names it\n\
         agora conformance .         # the plugin contract's checks, in the real sandbox\n\
         agora publish .             # as {publisher}: your publisher, with your key registered\n\
         agora install {publisher}/{name} --dir plugins\n\
         agora run {publisher}/{name} {entry} --input '{input}' --dir plugins\n```\n"
    )
}

fn license() -> String {
    "Licensed under the Apache License, Version 2.0 (the \"License\"); you may not use this\n\
     plugin except in compliance with the License. You may obtain a copy of the License at\n\n    \
     http://www.apache.org/licenses/LICENSE-2.0\n\nUnless required by applicable law or agreed to \
     in writing, software distributed under the\nLicense is distributed on an \"AS IS\" BASIS, \
     WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND,\neither express or implied. See the License for \
     the specific language governing permissions\nand limitations under the License. Change the \
     license field of plugin.yaml and this\nfile to publish under another license.\n"
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scaffold_is_a_valid_release_and_refuses_to_overwrite() {
        let root = tempfile::tempdir().unwrap();
        for runtime in [RuntimeKind::Wasm, RuntimeKind::Exec] {
            let dir = root.path().join(runtime.as_str());
            let files = scaffold(&dir, "acme", "demo", runtime).unwrap();
            assert!(files.contains(&"plugin.yaml".to_owned()));
            let text = std::fs::read_to_string(dir.join("plugin.yaml")).unwrap();
            let manifest = agora_core::Manifest::from_yaml(&text).unwrap();
            assert_eq!(manifest.plugin_ref().to_string(), "acme/demo");
            assert_eq!(manifest.runtime.kind, runtime);
            assert!(matches!(
                scaffold(&dir, "acme", "demo", runtime),
                Err(ScaffoldError::Exists(_))
            ));
        }
        assert!(matches!(
            scaffold(
                &root.path().join("x"),
                "acme",
                "Bad Name",
                RuntimeKind::Wasm
            ),
            Err(ScaffoldError::Name(_))
        ));
    }
}
