//! How a plugin is listed in the catalog, derived from its versions: which version is the
//! latest (what resolution would choose), which one the listing fields come from, the
//! fields and labels a manifest gives the listing, the rating rank "top rated" orders by,
//! and the sortable key of a host-version bound.

use crate::lifecycle::Lifecycle;
use crate::manifest::Manifest;

/// Ratings with fewer reviews are pulled towards this many ratings of [`PRIOR_RATING`],
/// so one 5-star review does not outrank fifty 4-star ones.
pub const PRIOR_WEIGHT: i64 = 5;
pub const PRIOR_RATING: i64 = 3;

/// The Bayesian average rating x 1000 that "top rated" orders by.
pub fn rating_rank(count: i64, sum: i64) -> i64 {
    (sum + PRIOR_WEIGHT * PRIOR_RATING) * 1000 / (count + PRIOR_WEIGHT)
}

/// A version as a key that sorts like the version (release part only): what
/// `compatibility.min_core` is stored as, so "compatible with host X" is a comparison.
pub fn version_key(v: &semver::Version) -> String {
    format!("{:010}.{:010}.{:010}", v.major, v.minor, v.patch)
}

/// Of a plugin's versions (an id, the version, its state), the one resolution chooses by
/// default (the newest resolvable, stable releases before pre-releases), and the one the
/// listing fields come from (that one, else the newest that is not removed).
pub fn listed<T: Copy>(candidates: &[(T, semver::Version, Lifecycle)]) -> (Option<T>, Option<T>) {
    let resolvable = || candidates.iter().filter(|c| c.2.resolvable());
    let latest = resolvable()
        .filter(|c| c.1.pre.is_empty())
        .max_by(|a, b| a.1.cmp(&b.1))
        .or_else(|| resolvable().max_by(|a, b| a.1.cmp(&b.1)))
        .map(|c| c.0);
    let source = latest.or_else(|| {
        candidates
            .iter()
            .filter(|c| c.2 != Lifecycle::Removed)
            .max_by(|a, b| a.1.cmp(&b.1))
            .map(|c| c.0)
    });
    (latest, source)
}

/// What a version's manifest gives its plugin's listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    pub display_name: String,
    pub description: String,
    pub provider: Option<String>,
    pub runtime: &'static str,
    /// Tags, categories and provider, space-separated: what text search matches besides
    /// the name and description.
    pub keywords: String,
    /// [`version_key`] of `compatibility.min_core`.
    pub min_core_key: Option<String>,
    /// (kind, value): `tag`, `category` and `capability` labels, for filters and facets.
    pub labels: Vec<(&'static str, String)>,
}

impl Listing {
    pub fn of(m: &Manifest) -> Listing {
        let keywords = m
            .tags
            .iter()
            .chain(&m.categories)
            .chain(m.provider.iter())
            .cloned()
            .collect::<Vec<_>>()
            .join(" ");
        let labels = m
            .tags
            .iter()
            .map(|v| ("tag", v.clone()))
            .chain(m.categories.iter().map(|v| ("category", v.clone())))
            .chain(m.capabilities.iter().map(|v| ("capability", v.clone())))
            .collect();
        Listing {
            display_name: m.title().to_owned(),
            description: m.description.clone(),
            provider: m.provider.clone(),
            runtime: m.runtime.kind.as_str(),
            keywords,
            min_core_key: m
                .compatibility
                .min_core
                .as_deref()
                .and_then(|v| semver::Version::parse(v).ok())
                .map(|v| version_key(&v)),
            labels,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> semver::Version {
        semver::Version::parse(s).unwrap()
    }

    #[test]
    fn the_latest_is_the_newest_resolvable_stable_release() {
        let list = [
            (1, v("1.0.0"), Lifecycle::Active),
            (2, v("2.0.0-rc.1"), Lifecycle::Active),
            (3, v("1.5.0"), Lifecycle::Yanked),
            (4, v("1.2.0"), Lifecycle::Deprecated),
        ];
        assert_eq!(listed(&list), (Some(4), Some(4)));
        let only_pre = [(1, v("2.0.0-rc.1"), Lifecycle::Active)];
        assert_eq!(listed(&only_pre), (Some(1), Some(1)));
        let yanked = [
            (1, v("1.0.0"), Lifecycle::Yanked),
            (2, v("0.9.0"), Lifecycle::Removed),
        ];
        assert_eq!(
            listed(&yanked),
            (None, Some(1)),
            "listed from the yanked one"
        );
    }

    #[test]
    fn ratings_are_pulled_towards_the_prior() {
        assert_eq!(rating_rank(0, 0), 3000);
        assert!(
            rating_rank(50, 200) > rating_rank(1, 5),
            "fifty 4s beat one 5"
        );
        assert!(version_key(&v("10.0.0")) > version_key(&v("9.9.9")));
    }
}
