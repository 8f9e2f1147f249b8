-- Garbage collection of blobs (`agora gc`): a blob that nothing refers to is first
-- `marked` (when a run found it unreferenced), and deleted only by a later run, at least
-- the grace period after its mark, if it is still unreferenced and was not uploaded or
-- asked about since (an upload, a publish, a HEAD or an OCI link removes the mark). A
-- blob being deleted is `deleting` from the transaction that removes its rows until its
-- bytes are gone: a publish, upload or link of that digest meanwhile is refused. At most
-- one row per blob the store holds.
CREATE TABLE gc_marks (
    digest TEXT PRIMARY KEY,
    state TEXT NOT NULL CHECK (state IN ('marked', 'deleting')),
    marked_at BIGINT NOT NULL,
    changed_at BIGINT NOT NULL
);
CREATE INDEX gc_marks_state ON gc_marks (state, changed_at);

-- Reference lookups by digest for gc and fsck (artifacts have theirs already).
CREATE INDEX oci_manifests_digest ON oci_manifests (digest);
CREATE INDEX oci_blob_links_digest ON oci_blob_links (digest);
