//! The `oci` stage of a verification: a `runtime.type: oci` release's image, pulled by
//! digest and audited.
//!
//! 1. The image's registry must be one the verifier may pull from
//!    ([`ImageAuditSettings::allowed_registries`], `[verification] oci_registries`; none by
//!    default, so the stage reports that it could not look) and, unless
//!    [`ImageAuditSettings::allow_private`], resolve only to public addresses (as webhooks
//!    do: a loopback, private or link-local address is refused). The names are resolved
//!    here before the pull; `oci-client` resolves them again when it connects.
//! 2. The image is pulled with `agora_oci` (every digest and size checked, bounded) into a
//!    temporary cache removed after the run.
//! 3. Its config: it must be an image config for linux/amd64 naming a `User` that is not
//!    root; `LD_PRELOAD`/`LD_LIBRARY_PATH` in `Env` and declared `Volumes` are reported.
//! 4. Each layer goes through the archive audit ([`crate::archive_audit`]: paths leaving
//!    the root, links, setuid and special entries, compression bombs), and every ELF file
//!    in it (up to [`crate::verification::MAX_AUDITED_FILE`]) through the native audit
//!    ([`crate::elf_audit`]), as findings located at `layer <digest>: <path>`.
//!
//! No runner code: the registry keeps no runner dependency.

use std::io::Read;
use std::net::IpAddr;

use agora_core::Manifest;
use agora_core::policy::{ImageRef, is_internal, registry_allowed};
use agora_core::verification::{Finding, Severity};

use crate::Registry;
use crate::verification::finding;

/// Largest layer the archive audit reads (whole, in memory).
pub const MAX_AUDITED_LAYER: u64 = 512 * 1024 * 1024;

/// Where the verifier may pull images from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageAuditSettings {
    /// `host`, `host:port` or `*.domain`, as in the host policy's `[oci]
    /// allowed_registries`. Empty: images are not pulled, and the stage says so.
    pub allowed_registries: Vec<String>,
    /// Pull from registries resolving to loopback, private or link-local addresses.
    pub allow_private: bool,
    /// Registries reached over plain HTTP (`host:port`); every other over HTTPS.
    pub plain_http: Vec<String>,
}

/// The stage's findings for `manifest` (an `oci` release).
pub async fn stage(registry: &Registry, manifest: &Manifest) -> Vec<Finding> {
    audit(&registry.image_audit, manifest).await
}

/// Pulls and audits `manifest`'s image under `settings`.
pub async fn audit(settings: &ImageAuditSettings, manifest: &Manifest) -> Vec<Finding> {
    let Some(image) = manifest.runtime.image.as_deref() else {
        return vec![finding(
            Severity::Critical,
            "oci.no-image",
            "an oci plugin names no runtime.image".into(),
            Some("runtime.image"),
        )];
    };
    let reference = match ImageRef::parse(image) {
        Ok(r) => r,
        Err(e) => {
            return vec![finding(
                Severity::Critical,
                "oci.reference",
                e,
                Some("runtime.image"),
            )];
        }
    };
    if !registry_allowed(&settings.allowed_registries, &reference.registry) {
        return vec![finding(
            Severity::High,
            "oci.registry-not-allowed",
            format!(
                "the verifier does not pull from `{}` ([verification] oci_registries allows {}); the image was not checked",
                reference.registry,
                if settings.allowed_registries.is_empty() {
                    "none".to_owned()
                } else {
                    settings.allowed_registries.join(", ")
                }
            ),
            Some("runtime.image"),
        )];
    }
    if !settings.allow_private
        && let Some(why) = internal_address(&reference).await
    {
        return vec![finding(
            Severity::High,
            "oci.registry-internal",
            format!(
                "{why}; the verifier pulls from internal addresses only with [verification] oci_allow_private = true"
            ),
            Some("runtime.image"),
        )];
    }
    let cache_dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => {
            tracing::error!("cannot create a directory for an image audit: {e}");
            return vec![not_pulled(format!("no temporary directory: {e}"))];
        }
    };
    let pulled = async {
        let cache = agora_oci::Cache::open(cache_dir.path())?;
        let puller = agora_oci::Puller::new(agora_oci::PullOptions {
            allowed_registries: settings.allowed_registries.clone(),
            plain_http: settings.plain_http.clone(),
            whose: Some("the verifier".into()),
            ..agora_oci::PullOptions::default()
        })?;
        puller.pull(image, &cache).await
    }
    .await;
    let local = match pulled {
        Ok(local) => local,
        Err(
            e @ (agora_oci::OciError::DigestMismatch { .. }
            | agora_oci::OciError::SizeMismatch { .. }),
        ) => {
            return vec![finding(
                Severity::Critical,
                "oci.digest-mismatch",
                format!("the registry served content that is not the pinned image: {e}"),
                Some("runtime.image"),
            )];
        }
        Err(e) => return vec![not_pulled(e.to_string())],
    };
    let mut findings = config_findings(local.config.as_ref());
    let layers = local.layers.clone();
    let layer_findings = tokio::task::spawn_blocking(move || {
        layers.iter().flat_map(layer_findings).collect::<Vec<_>>()
    })
    .await
    .unwrap_or_else(|e| vec![not_pulled(format!("the layer audit stopped: {e}"))]);
    findings.extend(layer_findings);
    findings
}

fn not_pulled(why: String) -> Finding {
    finding(
        Severity::High,
        "oci.not-pulled",
        format!("the image could not be pulled and was not checked: {why}"),
        Some("runtime.image"),
    )
}

/// Why the registry's host is an internal address, if it is.
async fn internal_address(reference: &ImageRef) -> Option<String> {
    let (host, port) = reference.host_and_port();
    if host.eq_ignore_ascii_case("localhost") {
        return Some(format!("`{host}` is a loopback name"));
    }
    if let Ok(ip) = host.trim_matches(['[', ']']).parse::<IpAddr>() {
        return is_internal(ip)
            .then(|| format!("`{host}` is a loopback, private or link-local address"));
    }
    match tokio::net::lookup_host((host, port)).await {
        Ok(addresses) => {
            let addresses: Vec<_> = addresses.collect();
            addresses
                .iter()
                .find(|a| is_internal(a.ip()))
                .map(|a| format!("`{host}` resolves to {}, an internal address", a.ip()))
        }
        // Unresolvable: the pull fails and says so.
        Err(_) => None,
    }
}

/// The image config: an image for linux/amd64, not running as root, nothing privileged.
pub fn config_findings(config: Option<&agora_oci::ImageConfig>) -> Vec<Finding> {
    let at = Some("image config");
    let Some(config) = config else {
        return vec![finding(
            Severity::High,
            "oci.not-an-image",
            "the pinned manifest's config is not an OCI or Docker image config".into(),
            at,
        )];
    };
    let mut findings = Vec::new();
    if (config.os.as_str(), config.architecture.as_str()) != ("linux", "amd64") {
        findings.push(finding(
            Severity::High,
            "oci.platform",
            format!(
                "the image is for {}/{}; the runner runs linux/amd64 images",
                config.os, config.architecture
            ),
            at,
        ));
    }
    let run = config.config.clone().unwrap_or_default();
    let user = run.user.as_deref().map(str::trim).unwrap_or("");
    let name = user.split(':').next().unwrap_or("");
    if user.is_empty() || name == "0" || name == "root" {
        findings.push(finding(
            Severity::High,
            "oci.root-user",
            if user.is_empty() {
                "the image names no User, so it would run as root; set User (e.g. 65534:65534)"
                    .to_owned()
            } else {
                format!("the image runs as `{user}`, which is root")
            },
            at,
        ));
    }
    for entry in run.env.iter().flatten() {
        let key = entry.split('=').next().unwrap_or("");
        if key == "LD_PRELOAD" || key == "LD_LIBRARY_PATH" || key == "LD_AUDIT" {
            findings.push(finding(
                Severity::Medium,
                "oci.loader-env",
                format!("the image sets {key}, which changes what the loader runs"),
                at,
            ));
        }
    }
    if let Some(volumes) = run.volumes.as_ref().filter(|v| !v.is_empty()) {
        findings.push(finding(
            Severity::Low,
            "oci.volumes",
            format!(
                "the image declares volumes ({}); the runner mounts none",
                volumes.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
            at,
        ));
    }
    findings
}

/// One layer through the archive audit, and its ELF files through the native audit.
fn layer_findings(layer: &agora_oci::Layer) -> Vec<Finding> {
    let location = format!("layer {}", layer.digest);
    if layer.size > MAX_AUDITED_LAYER {
        return vec![finding(
            Severity::High,
            "oci.layer-too-large-to-audit",
            format!(
                "{} bytes; layers are audited up to {MAX_AUDITED_LAYER} bytes",
                layer.size
            ),
            Some(&location),
        )];
    }
    let bytes = match std::fs::read(&layer.path) {
        Ok(b) => b,
        Err(e) => return vec![not_pulled(format!("cannot read {location}: {e}"))],
    };
    let mut findings = crate::archive_audit::audit(&bytes, &location);
    findings.extend(elf_findings(&bytes, &location));
    findings
}

/// Every ELF file of a tar (or tar+gzip) layer through [`crate::elf_audit`]. Reading stops
/// at the archive audit's concerns (a broken or oversized stream is its finding).
fn elf_findings(bytes: &[u8], location: &str) -> Vec<Finding> {
    let reader: Box<dyn Read> = if bytes.starts_with(&[0x1f, 0x8b]) {
        Box::new(
            flate2::read::MultiGzDecoder::new(bytes).take(agora_oci::unpack::MAX_UNPACKED_BYTES),
        )
    } else {
        Box::new(bytes)
    };
    let mut archive = tar::Archive::new(reader);
    let Ok(entries) = archive.entries() else {
        return Vec::new();
    };
    let mut findings = Vec::new();
    for entry in entries {
        let Ok(mut entry) = entry else { break };
        if entry.header().entry_type() != tar::EntryType::Regular
            || entry.size() > crate::verification::MAX_AUDITED_FILE
        {
            continue;
        }
        let path = entry
            .path()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let mut head = [0u8; 4];
        if entry.read_exact(&mut head).is_err() || head != *b"\x7fELF" {
            continue;
        }
        let mut file = head.to_vec();
        if entry.read_to_end(&mut file).is_err() {
            break;
        }
        findings.extend(crate::elf_audit::audit(
            &file,
            "linux-x86_64",
            &format!("{location}: {path}"),
        ));
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;
    use agora_oci::{ContainerConfig, ImageConfig};

    fn config(user: Option<&str>, env: &[&str]) -> ImageConfig {
        ImageConfig {
            architecture: "amd64".into(),
            os: "linux".into(),
            config: Some(ContainerConfig {
                user: user.map(str::to_owned),
                env: Some(env.iter().map(|e| e.to_string()).collect()),
                ..ContainerConfig::default()
            }),
            rootfs: None,
        }
    }

    fn rules(findings: &[Finding]) -> Vec<&str> {
        findings.iter().map(|f| f.rule.as_str()).collect()
    }

    #[test]
    fn an_image_running_as_root_or_with_loader_variables_is_reported() {
        assert!(config_findings(Some(&config(Some("65534:65534"), &["PATH=/bin"]))).is_empty());
        for user in [
            None,
            Some(""),
            Some("0"),
            Some("root"),
            Some("0:0"),
            Some("root:staff"),
        ] {
            assert_eq!(
                rules(&config_findings(Some(&config(user, &[])))),
                ["oci.root-user"],
                "{user:?}"
            );
        }
        let env = config_findings(Some(&config(Some("1000"), &["LD_PRELOAD=/x.so"])));
        assert_eq!(rules(&env), ["oci.loader-env"]);
        assert_eq!(rules(&config_findings(None)), ["oci.not-an-image"]);
        let arm = ImageConfig {
            architecture: "arm64".into(),
            ..config(Some("1"), &[])
        };
        assert_eq!(rules(&config_findings(Some(&arm))), ["oci.platform"]);
    }
}
