//! Dependency resolution: the newest set of plugin versions that satisfies every
//! requirement, by the PubGrub algorithm, with an explanation a person can act on when
//! there is none. Pure: the caller collects the candidate versions.

use std::collections::BTreeMap;

use pubgrub::{
    DefaultStringReporter, OfflineDependencyProvider, PubGrubError, Ranges, Reporter,
    resolve as pubgrub_resolve,
};
use semver::{Version, VersionReq};

/// The root of a resolution: what the user asked for.
const ROOT: &str = "(your request)";

/// One version that may be chosen, with what it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub version: Version,
    /// `publisher/name` and requirement of each dependency.
    pub dependencies: Vec<(String, VersionReq)>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("no set of versions satisfies every requirement:\n{0}")]
    NoSolution(String),
    #[error("dependency resolution failed: {0}")]
    Failed(String),
}

/// The candidates of one plugin's versions that match `req`.
fn matching(candidates: Option<&Vec<Candidate>>, req: &VersionReq) -> Ranges<Version> {
    candidates
        .into_iter()
        .flatten()
        .filter(|c| req.matches(&c.version))
        .fold(Ranges::empty(), |acc, c| {
            acc.union(&Ranges::singleton(c.version.clone()))
        })
}

/// Chooses, for `plugin` matching `req` and everything it depends on, the newest versions
/// among `catalog` (plugin → its installable versions) that fit together.
pub fn resolve(
    plugin: &str,
    req: &VersionReq,
    catalog: &BTreeMap<String, Vec<Candidate>>,
) -> Result<BTreeMap<String, Version>, ResolveError> {
    let mut provider = OfflineDependencyProvider::<String, Ranges<Version>>::new();
    let root_version = Version::new(0, 0, 0);
    provider.add_dependencies(
        ROOT.to_owned(),
        root_version.clone(),
        [(plugin.to_owned(), matching(catalog.get(plugin), req))],
    );
    for (name, candidates) in catalog {
        for c in candidates {
            let deps = c
                .dependencies
                .iter()
                .map(|(dep, dep_req)| (dep.clone(), matching(catalog.get(dep), dep_req)));
            provider.add_dependencies(name.clone(), c.version.clone(), deps.collect::<Vec<_>>());
        }
    }
    match pubgrub_resolve(&provider, ROOT.to_owned(), root_version) {
        Ok(selected) => Ok(selected
            .into_iter()
            .filter(|(name, _)| name != ROOT)
            .collect()),
        Err(PubGrubError::NoSolution(mut tree)) => {
            tree.collapse_no_versions();
            Err(ResolveError::NoSolution(DefaultStringReporter::report(
                &tree,
            )))
        }
        Err(other) => Err(ResolveError::Failed(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(version: &str, deps: &[(&str, &str)]) -> Candidate {
        Candidate {
            version: Version::parse(version).unwrap(),
            dependencies: deps
                .iter()
                .map(|(d, r)| ((*d).to_owned(), VersionReq::parse(r).unwrap()))
                .collect(),
        }
    }

    fn catalog(entries: &[(&str, Vec<Candidate>)]) -> BTreeMap<String, Vec<Candidate>> {
        entries
            .iter()
            .map(|(n, cs)| ((*n).to_owned(), cs.clone()))
            .collect()
    }

    fn req(r: &str) -> VersionReq {
        VersionReq::parse(r).unwrap()
    }

    #[test]
    fn the_newest_compatible_set_is_chosen() {
        let cat = catalog(&[
            (
                "acme/app",
                vec![
                    c("1.0.0", &[("acme/http", "^1.0")]),
                    c("2.0.0", &[("acme/http", "^2.0")]),
                ],
            ),
            (
                "acme/http",
                vec![
                    c("1.0.0", &[]),
                    c("1.4.0", &[]),
                    c("2.0.0", &[("acme/tls", "~0.3")]),
                ],
            ),
            ("acme/tls", vec![c("0.3.1", &[]), c("0.4.0", &[])]),
        ]);
        let got = resolve("acme/app", &req("*"), &cat).unwrap();
        let want: BTreeMap<String, Version> = [
            ("acme/app", "2.0.0"),
            ("acme/http", "2.0.0"),
            ("acme/tls", "0.3.1"),
        ]
        .into_iter()
        .map(|(n, v)| (n.to_owned(), Version::parse(v).unwrap()))
        .collect();
        assert_eq!(got, want);
        let got = resolve("acme/app", &req("^1"), &cat).unwrap();
        assert_eq!(got["acme/http"], Version::parse("1.4.0").unwrap());
        assert!(!got.contains_key("acme/tls"));
    }

    #[test]
    fn a_conflict_is_explained_naming_the_plugins() {
        let cat = catalog(&[
            (
                "acme/app",
                vec![c("1.0.0", &[("acme/a", "^1"), ("acme/b", "^1")])],
            ),
            ("acme/a", vec![c("1.0.0", &[("acme/c", "^1")])]),
            ("acme/b", vec![c("1.0.0", &[("acme/c", "^2")])]),
            ("acme/c", vec![c("1.0.0", &[]), c("2.0.0", &[])]),
        ]);
        let ResolveError::NoSolution(why) = resolve("acme/app", &req("*"), &cat).unwrap_err()
        else {
            panic!()
        };
        for name in ["acme/a", "acme/b", "acme/c"] {
            assert!(why.contains(name), "{name} missing from: {why}");
        }
    }

    #[test]
    fn a_missing_dependency_is_explained() {
        let cat = catalog(&[("acme/app", vec![c("1.0.0", &[("acme/gone", "^1")])])]);
        let err = resolve("acme/app", &req("*"), &cat).unwrap_err();
        assert!(err.to_string().contains("acme/gone"), "{err}");
    }
}

/// What the host that will run the plugins offers; versions that ask for more are left
/// out of resolution, with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostBounds {
    /// Runner API versions the host speaks, e.g. `["v1"]`.
    pub runner_apis: Vec<String>,
    pub runner_version: Version,
    /// The host application's version, when known; `min_core` is checked only then.
    pub core_version: Option<Version>,
}

impl HostBounds {
    /// Why `manifest` cannot run on this host, if it cannot.
    pub fn incompatibility(&self, manifest: &crate::Manifest) -> Option<String> {
        let c = &manifest.compatibility;
        if let Some(api) = &c.runner_api
            && !self.runner_apis.contains(api)
        {
            return Some(format!(
                "needs runner API {api} (this host speaks {})",
                self.runner_apis.join(", ")
            ));
        }
        let needs = |field: &Option<String>| field.as_deref().and_then(|v| Version::parse(v).ok());
        if let Some(min) = needs(&c.min_runner)
            && min > self.runner_version
        {
            return Some(format!(
                "needs runner {min} or newer (this is {})",
                self.runner_version
            ));
        }
        if let (Some(min), Some(core)) = (needs(&c.min_core), &self.core_version)
            && min > *core
        {
            return Some(format!("needs core {min} or newer (the host is {core})"));
        }
        None
    }
}

#[cfg(test)]
mod host_tests {
    use super::*;

    fn manifest(compat: &str) -> crate::Manifest {
        crate::Manifest::from_yaml(&format!(
            "api_version: agora/v1\npublisher: a\nname: b\nversion: 1.0.0\ndescription: d\nlicense: MIT\n\
             runtime: {{ type: wasm, module: m.wasm }}\ncompatibility: {compat}\n"
        ))
        .unwrap()
    }

    #[test]
    fn host_bounds_name_what_is_missing() {
        let host = HostBounds {
            runner_apis: vec!["v1".into()],
            runner_version: Version::new(0, 1, 0),
            core_version: Some(Version::new(2, 5, 0)),
        };
        assert_eq!(
            host.incompatibility(&manifest("{ runner_api: v1, min_core: 2.0.0 }")),
            None
        );
        assert!(
            host.incompatibility(&manifest("{ runner_api: v2 }"))
                .unwrap()
                .contains("runner API v2")
        );
        assert!(
            host.incompatibility(&manifest("{ min_runner: 0.2.0 }"))
                .unwrap()
                .contains("runner 0.2.0")
        );
        assert!(
            host.incompatibility(&manifest("{ min_core: 3.0.0 }"))
                .unwrap()
                .contains("core 3.0.0")
        );
        let unknown_core = HostBounds {
            core_version: None,
            ..host
        };
        assert_eq!(
            unknown_core.incompatibility(&manifest("{ min_core: 3.0.0 }")),
            None
        );
    }
}
