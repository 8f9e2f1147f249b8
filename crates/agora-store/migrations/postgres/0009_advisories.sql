-- Security advisories (OSV records as imported), the packages each names, and the
-- components each release's SBOM lists: an import looks up the releases that use a
-- package it names; a verification run looks up the advisories naming its components.
CREATE TABLE advisories (
    id TEXT PRIMARY KEY,
    modified TEXT NOT NULL,
    withdrawn TEXT,
    summary TEXT,
    document TEXT NOT NULL,
    imported_at BIGINT NOT NULL
);
CREATE TABLE advisory_packages (
    advisory_id TEXT NOT NULL REFERENCES advisories (id) ON DELETE CASCADE,
    ecosystem TEXT NOT NULL,
    name TEXT NOT NULL,
    PRIMARY KEY (ecosystem, name, advisory_id)
);
CREATE TABLE release_components (
    version_id BIGINT NOT NULL REFERENCES versions (id),
    ecosystem TEXT NOT NULL,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    purl TEXT NOT NULL
);
CREATE INDEX release_components_package ON release_components (ecosystem, name);
CREATE INDEX release_components_version ON release_components (version_id);
