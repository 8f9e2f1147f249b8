//! The OCI distribution endpoints (`/v2/`) of the real binary: a conformance test
//! modelled on the distribution spec's conformance suite (its four categories: pull,
//! push, content discovery, content management) on SQLite and PostgreSQL, releases as OCI
//! artifacts with their signature and verification referrers, private plugins kept
//! private, and the token flow OCI clients follow.

mod support;

use std::time::{Duration, Instant};

use support::*;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

fn digest_of(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

fn header(headers: &reqwest::header::HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

fn json(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(body)))
}

/// The first error code of an OCI error body.
fn code(body: &[u8]) -> String {
    json(body)["errors"][0]["code"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Pushes `bytes` as a blob with a monolithic POST; returns its digest.
fn push_blob(server: &Server, repo: &str, token: &str, bytes: &[u8]) -> String {
    let digest = digest_of(bytes);
    let (status, headers, body) = http(
        "POST",
        &format!("{}/v2/{repo}/blobs/uploads/?digest={digest}", server.url),
        Some(token),
        Some(bytes.to_vec()),
    );
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    assert_eq!(
        header(&headers, "location"),
        format!("/v2/{repo}/blobs/{digest}")
    );
    digest
}

/// An image manifest with `config` and `layers` (digest, size), optionally a subject.
fn manifest(
    artifact_type: Option<&str>,
    config: (&str, usize),
    layers: &[(&str, usize)],
    subject: Option<(&str, usize)>,
) -> Vec<u8> {
    let mut m = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.0, "size": config.1},
        "layers": layers.iter().map(|(d, s)| serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": s
        })).collect::<Vec<_>>(),
    });
    if let Some(t) = artifact_type {
        m["artifactType"] = t.into();
    }
    if let Some((d, s)) = subject {
        m["subject"] = serde_json::json!({"mediaType": OCI_MANIFEST, "digest": d, "size": s});
    }
    serde_json::to_vec(&m).unwrap()
}

fn put_manifest(
    server: &Server,
    repo: &str,
    reference: &str,
    token: Option<&str>,
    bytes: &[u8],
) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    http_with(
        "PUT",
        &format!("{}/v2/{repo}/manifests/{reference}", server.url),
        token,
        &[("content-type", OCI_MANIFEST)],
        Some(bytes.to_vec()),
    )
}

/// An owner of publisher `acme` (the administrator) and an outsider with a read token.
fn setup(server: &Server) -> (String, String) {
    let admin = server.admin();
    admin.run(&["publisher", "create", "acme"]).ok();
    admin.run(&["user", "create", "mallory"]).ok();
    let outsider = admin.token_for("mallory", &["read:private"]);
    (server.admin_token.clone(), outsider)
}

fn conformance(backend: Backend) {
    let server = Server::start(backend);
    let (token, outsider) = setup(&server);
    let token = token.as_str();
    let url = &server.url;
    let repo = "acme/tools/image";

    // The base endpoint answers with the API version header.
    // The base endpoint challenges clients without credentials (they learn the realm),
    // and answers with the API version header.
    let (status, headers, _) = http("GET", &format!("{url}/v2/"), None, None);
    assert_eq!(status, 401);
    assert!(header(&headers, "www-authenticate").starts_with("Bearer realm="));
    let (status, headers, _) = http("GET", &format!("{url}/v2/"), Some("anonymous"), None);
    assert_eq!(status, 200);
    assert_eq!(
        header(&headers, "docker-distribution-api-version"),
        "registry/2.0"
    );

    // ---- push ----
    // Writes without a token meet the Bearer challenge, and the token endpoint hands the
    // token back for Basic credentials.
    let (status, headers, body) = http(
        "POST",
        &format!("{url}/v2/{repo}/blobs/uploads/"),
        None,
        None,
    );
    assert_eq!(status, 401, "{}", String::from_utf8_lossy(&body));
    assert_eq!(code(&body), "UNAUTHORIZED");
    let challenge = header(&headers, "www-authenticate");
    assert!(
        challenge.starts_with("Bearer realm=\"http://"),
        "{challenge}"
    );
    assert!(
        challenge.contains(&format!("scope=\"repository:{repo}:pull,push\"")),
        "{challenge}"
    );
    let basic = {
        use base64ct::Encoding;
        format!(
            "Basic {}",
            base64ct::Base64::encode_string(format!("me:{token}").as_bytes())
        )
    };
    let (status, _, body) = http_with(
        "GET",
        &format!("{url}/v2/token?service=x&scope=repository:{repo}:push"),
        None,
        &[("authorization", &basic)],
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(json(&body)["token"], token);
    let (status, _, body) = http("GET", &format!("{url}/v2/token"), None, None);
    assert_eq!(
        (status, json(&body)["token"].as_str()),
        (200, Some("anonymous"))
    );
    let (status, _, body) = http_with(
        "GET",
        &format!("{url}/v2/token"),
        None,
        &[("authorization", "Basic bWU6bm9wZQ==")],
        None,
    );
    assert_eq!((status, code(&body)), (401, "UNAUTHORIZED".into()));
    // Someone who is not a member of the publisher is denied.
    let (status, _, body) = http(
        "POST",
        &format!("{url}/v2/{repo}/blobs/uploads/"),
        Some(&outsider),
        None,
    );
    assert_eq!((status, code(&body)), (403, "DENIED".into()));
    // Basic credentials work on the endpoints too.
    let (status, _, _) = http_with(
        "GET",
        &format!("{url}/v2/"),
        None,
        &[("authorization", &basic)],
        None,
    );
    assert_eq!(status, 200);

    // POST then PUT.
    let config = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
    let (status, headers, _) = http(
        "POST",
        &format!("{url}/v2/{repo}/blobs/uploads/"),
        Some(token),
        None,
    );
    assert_eq!(status, 202);
    let location = header(&headers, "location");
    assert!(
        location.starts_with(&format!("/v2/{repo}/blobs/uploads/")),
        "{location}"
    );
    let config_digest = digest_of(&config);
    let (status, headers, body) = http(
        "PUT",
        &format!("{url}{location}?digest={config_digest}"),
        Some(token),
        Some(config.clone()),
    );
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    assert_eq!(header(&headers, "docker-content-digest"), config_digest);

    // Monolithic POST.
    let layer_a = b"layer a: the first layer".to_vec();
    let layer_a_digest = push_blob(&server, repo, token, &layer_a);

    // Chunked PATCH, with an out-of-order chunk refused with 416.
    let layer_b: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
    let layer_b_digest = digest_of(&layer_b);
    let (_, headers, _) = http(
        "POST",
        &format!("{url}/v2/{repo}/blobs/uploads/"),
        Some(token),
        None,
    );
    let location = header(&headers, "location");
    assert_eq!(header(&headers, "range"), "0-0");
    let chunk = |from: usize, to: usize, location: &str| {
        http_with(
            "PATCH",
            &format!("{url}{location}"),
            Some(token),
            &[
                ("content-range", &format!("{from}-{}", to - 1)),
                ("content-type", "application/octet-stream"),
            ],
            Some(layer_b[from..to].to_vec()),
        )
    };
    let (status, headers, _) = chunk(0, 30_000, &location);
    assert_eq!((status, header(&headers, "range")), (202, "0-29999".into()));
    let (status, headers, body) = chunk(40_000, 70_000, &location);
    assert_eq!(status, 416, "{}", String::from_utf8_lossy(&body));
    assert_eq!(
        header(&headers, "range"),
        "0-29999",
        "a 416 says where the upload ends"
    );
    let (status, headers, _) = http("GET", &format!("{url}{location}"), Some(token), None);
    assert_eq!((status, header(&headers, "range")), (204, "0-29999".into()));
    let (status, _, _) = chunk(30_000, 70_000, &location);
    assert_eq!(status, 202);
    // Somebody else cannot touch the upload.
    let (status, _, body) = http("GET", &format!("{url}{location}"), Some(&outsider), None);
    assert_eq!((status, code(&body)), (404, "BLOB_UPLOAD_UNKNOWN".into()));
    let (status, _, _) = http(
        "PUT",
        &format!("{url}{location}?digest={layer_b_digest}"),
        Some(token),
        None,
    );
    assert_eq!(status, 201);

    // A digest that does not match stores nothing and ends the upload.
    let (_, headers, _) = http(
        "POST",
        &format!("{url}/v2/{repo}/blobs/uploads/"),
        Some(token),
        None,
    );
    let location = header(&headers, "location");
    let wrong = digest_of(b"something else");
    let (status, _, body) = http(
        "PUT",
        &format!("{url}{location}?digest={wrong}"),
        Some(token),
        Some(b"these bytes".to_vec()),
    );
    assert_eq!((status, code(&body)), (400, "DIGEST_INVALID".into()));
    let (status, _, _) = http(
        "HEAD",
        &format!("{url}/v2/{repo}/blobs/{wrong}"),
        Some(token),
        None,
    );
    assert_eq!(status, 404);

    // Cancel.
    let (_, headers, _) = http(
        "POST",
        &format!("{url}/v2/{repo}/blobs/uploads/"),
        Some(token),
        None,
    );
    let location = header(&headers, "location");
    let (status, _, _) = http("DELETE", &format!("{url}{location}"), Some(token), None);
    assert_eq!(status, 204);
    let (status, _, body) = http("GET", &format!("{url}{location}"), Some(token), None);
    assert_eq!((status, code(&body)), (404, "BLOB_UPLOAD_UNKNOWN".into()));

    // Cross-repository mount; a mount from nowhere falls back to an upload session.
    let other = "acme/tools/other";
    let (status, headers, _) = http(
        "POST",
        &format!("{url}/v2/{other}/blobs/uploads/?mount={layer_a_digest}&from={repo}"),
        Some(token),
        None,
    );
    assert_eq!(
        (status, header(&headers, "location")),
        (201, format!("/v2/{other}/blobs/{layer_a_digest}"))
    );
    let (status, _, _) = http(
        "HEAD",
        &format!("{url}/v2/{other}/blobs/{layer_a_digest}"),
        None,
        None,
    );
    assert_eq!(status, 200);
    let (status, _, _) = http(
        "POST",
        &format!("{url}/v2/{other}/blobs/uploads/?mount={layer_b_digest}&from=acme/nowhere"),
        Some(token),
        None,
    );
    assert_eq!(status, 202);
    // A blob is served only from repositories that hold it: knowing a digest is not enough.
    let (status, _, body) = http(
        "GET",
        &format!("{url}/v2/{other}/blobs/{layer_b_digest}"),
        None,
        None,
    );
    assert_eq!((status, code(&body)), (404, "BLOB_UNKNOWN".into()));

    // Manifests: refused when invalid or when a blob is missing; stored by tag.
    let image = manifest(
        None,
        (&config_digest, config.len()),
        &[
            (&layer_a_digest, layer_a.len()),
            (&layer_b_digest, layer_b.len()),
        ],
        None,
    );
    let image_digest = digest_of(&image);
    let (status, _, body) =
        put_manifest(&server, repo, "v1", Some(token), b"{\"schemaVersion\": 2}");
    assert_eq!((status, code(&body)), (400, "MANIFEST_INVALID".into()));
    let missing = manifest(None, (&config_digest, config.len()), &[(&wrong, 11)], None);
    let (status, _, body) = put_manifest(&server, repo, "v1", Some(token), &missing);
    assert_eq!((status, code(&body)), (400, "MANIFEST_BLOB_UNKNOWN".into()));
    let (status, _, body) = put_manifest(&server, repo, &wrong, Some(token), &image);
    assert_eq!((status, code(&body)), (400, "DIGEST_INVALID".into()));
    let (status, headers, body) = put_manifest(&server, repo, "v1", Some(token), &image);
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    assert_eq!(header(&headers, "docker-content-digest"), image_digest);
    assert_eq!(
        header(&headers, "location"),
        format!("/v2/{repo}/manifests/{image_digest}")
    );
    let (status, _, body) = put_manifest(&server, repo, "v1", Some(&outsider), &image);
    assert_eq!((status, code(&body)), (403, "DENIED".into()));

    // ---- pull ----
    for reference in ["v1", image_digest.as_str()] {
        let (status, headers, body) = http(
            "GET",
            &format!("{url}/v2/{repo}/manifests/{reference}"),
            None,
            None,
        );
        assert_eq!(status, 200);
        assert_eq!(body, image, "a manifest comes back byte for byte");
        assert_eq!(header(&headers, "content-type"), OCI_MANIFEST);
        assert_eq!(header(&headers, "docker-content-digest"), image_digest);
        let (status, headers, body) = http(
            "HEAD",
            &format!("{url}/v2/{repo}/manifests/{reference}"),
            None,
            None,
        );
        assert_eq!((status, body.len()), (200, 0));
        assert_eq!(header(&headers, "content-length"), image.len().to_string());
    }
    let (status, headers, body) = http(
        "GET",
        &format!("{url}/v2/{repo}/blobs/{layer_b_digest}"),
        None,
        None,
    );
    assert_eq!((status, body == layer_b), (200, true));
    assert_eq!(
        header(&headers, "cache-control"),
        "public, max-age=31536000, immutable"
    );
    let (status, headers, body) = http_with(
        "GET",
        &format!("{url}/v2/{repo}/blobs/{layer_b_digest}"),
        None,
        &[("range", "bytes=10-19")],
        None,
    );
    assert_eq!((status, body.as_slice()), (206, &layer_b[10..20]));
    assert_eq!(
        header(&headers, "content-range"),
        format!("bytes 10-19/{}", layer_b.len())
    );
    let (status, _, _) = http_with(
        "GET",
        &format!("{url}/v2/{repo}/blobs/{layer_b_digest}"),
        None,
        &[("range", "bytes=900000-")],
        None,
    );
    assert_eq!(status, 416);
    let (status, headers, _) = http(
        "HEAD",
        &format!("{url}/v2/{repo}/blobs/{layer_a_digest}"),
        None,
        None,
    );
    assert_eq!(
        (status, header(&headers, "docker-content-digest")),
        (200, layer_a_digest.clone())
    );
    for (path, want, code_want) in [
        (
            format!("/v2/{repo}/manifests/nope"),
            404,
            "MANIFEST_UNKNOWN",
        ),
        (
            format!("/v2/{repo}/manifests/{wrong}"),
            404,
            "MANIFEST_UNKNOWN",
        ),
        (format!("/v2/{repo}/blobs/{wrong}"), 404, "BLOB_UNKNOWN"),
        (
            format!("/v2/{repo}/blobs/sha256:nothex"),
            400,
            "DIGEST_INVALID",
        ),
        ("/v2/Acme/Bad/manifests/v1".to_owned(), 400, "NAME_INVALID"),
        ("/v2/acme/unknown/tags/list".to_owned(), 404, "NAME_UNKNOWN"),
    ] {
        let (status, _, body) = http("GET", &format!("{url}{path}"), None, None);
        assert_eq!(
            (status, code(&body)),
            (want, code_want.to_owned()),
            "{path}"
        );
    }

    // ---- content discovery ----
    for tag in ["v2", "v3", "latest", "beta"] {
        let (status, _, _) = put_manifest(&server, repo, tag, Some(token), &image);
        assert_eq!(status, 201);
    }
    let (_, _, body) = http("GET", &format!("{url}/v2/{repo}/tags/list"), None, None);
    assert_eq!(
        json(&body),
        serde_json::json!({"name": repo, "tags": ["beta", "latest", "v1", "v2", "v3"]})
    );
    let (_, headers, body) = http("GET", &format!("{url}/v2/{repo}/tags/list?n=2"), None, None);
    assert_eq!(json(&body)["tags"], serde_json::json!(["beta", "latest"]));
    assert_eq!(
        header(&headers, "link"),
        format!("</v2/{repo}/tags/list?n=2&last=latest>; rel=\"next\"")
    );
    let (_, headers, body) = http(
        "GET",
        &format!("{url}/v2/{repo}/tags/list?n=2&last=latest"),
        None,
        None,
    );
    assert_eq!(json(&body)["tags"], serde_json::json!(["v1", "v2"]));
    assert!(!header(&headers, "link").is_empty());
    let (_, headers, body) = http(
        "GET",
        &format!("{url}/v2/{repo}/tags/list?n=2&last=v2"),
        None,
        None,
    );
    assert_eq!(
        (json(&body)["tags"].clone(), header(&headers, "link")),
        (serde_json::json!(["v3"]), String::new())
    );

    // Referrers, with the artifactType filter.
    let empty = push_blob(&server, repo, token, b"{}");
    let sbom = push_blob(&server, repo, token, b"{\"bomFormat\":\"CycloneDX\"}");
    let sig = push_blob(&server, repo, token, b"signature bytes");
    let sbom_manifest = manifest(
        Some("application/vnd.cyclonedx+json"),
        (&empty, 2),
        &[(&sbom, 26)],
        Some((&image_digest, image.len())),
    );
    let (status, headers, _) = put_manifest(
        &server,
        repo,
        &digest_of(&sbom_manifest),
        Some(token),
        &sbom_manifest,
    );
    assert_eq!(
        (status, header(&headers, "oci-subject")),
        (201, image_digest.clone())
    );
    let sig_manifest = manifest(
        Some("application/vnd.example.signature"),
        (&empty, 2),
        &[(&sig, 15)],
        Some((&image_digest, image.len())),
    );
    put_manifest(
        &server,
        repo,
        &digest_of(&sig_manifest),
        Some(token),
        &sig_manifest,
    );
    let (status, headers, body) = http(
        "GET",
        &format!("{url}/v2/{repo}/referrers/{image_digest}"),
        None,
        None,
    );
    assert_eq!(
        (status, header(&headers, "content-type")),
        (200, "application/vnd.oci.image.index.v1+json".into())
    );
    let listed = json(&body);
    let types: Vec<&str> = listed["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["artifactType"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "application/vnd.cyclonedx+json",
            "application/vnd.example.signature"
        ]
    );
    let (_, headers, body) = http(
        "GET",
        &format!(
            "{url}/v2/{repo}/referrers/{image_digest}?artifactType=application/vnd.example.signature"
        ),
        None,
        None,
    );
    assert_eq!(header(&headers, "oci-filters-applied"), "artifactType");
    assert_eq!(
        json(&body)["manifests"][0]["digest"],
        digest_of(&sig_manifest)
    );
    assert_eq!(json(&body)["manifests"].as_array().unwrap().len(), 1);
    let (status, _, body) = http(
        "GET",
        &format!("{url}/v2/{repo}/referrers/{wrong}"),
        None,
        None,
    );
    assert_eq!(
        (status, json(&body)["manifests"].as_array().unwrap().len()),
        (200, 0)
    );

    // ---- content management ----
    let (status, _, _) = http(
        "DELETE",
        &format!("{url}/v2/{repo}/manifests/beta"),
        Some(token),
        None,
    );
    assert_eq!(status, 202);
    let (status, _, _) = http(
        "GET",
        &format!("{url}/v2/{repo}/manifests/beta"),
        None,
        None,
    );
    assert_eq!(status, 404);
    let (status, _, body) = http(
        "DELETE",
        &format!("{url}/v2/{repo}/manifests/v1"),
        Some(&outsider),
        None,
    );
    assert_eq!((status, code(&body)), (403, "DENIED".into()));
    let (status, _, _) = http(
        "DELETE",
        &format!("{url}/v2/{repo}/manifests/{image_digest}"),
        Some(token),
        None,
    );
    assert_eq!(status, 202);
    for reference in ["v1", "latest", image_digest.as_str()] {
        let (status, _, body) = http(
            "GET",
            &format!("{url}/v2/{repo}/manifests/{reference}"),
            None,
            None,
        );
        assert_eq!(
            (status, code(&body)),
            (404, "MANIFEST_UNKNOWN".into()),
            "{reference}"
        );
    }
    let (status, _, body) = http(
        "DELETE",
        &format!("{url}/v2/{repo}/blobs/{layer_a_digest}"),
        Some(token),
        None,
    );
    assert_eq!((status, code(&body)), (405, "UNSUPPORTED".into()));
    // Deletes are audited.
    let (_, _, audit) = http("GET", &format!("{url}/api/v1/audit"), Some(token), None);
    let audit = String::from_utf8_lossy(&audit);
    assert!(
        audit.contains("oci.delete") && audit.contains("oci.tag"),
        "{audit}"
    );
    // /metrics counts /v2/ under route templates, never raw paths.
    let (_, _, metrics) = http("GET", &format!("{url}/metrics"), None, None);
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(
        metrics.contains(r#"route="/v2/{name}/manifests/{reference}""#),
        "{metrics}"
    );
    assert!(
        !metrics.contains("acme/tools/image"),
        "no raw path in a label"
    );
}

#[test]
fn conformance_on_sqlite() {
    conformance(Backend::Sqlite);
}

#[test]
fn conformance_on_postgres() {
    conformance(Backend::Postgres);
}

/// Waits until `check` holds, for at most 60 seconds.
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn every_release_is_an_oci_artifact_with_its_signature_and_verification_as_referrers() {
    let server = Server::start(Backend::Sqlite);
    let mut alice = server.admin();
    alice.run(&["publisher", "create", "acme"]).ok();
    alice.sign_for("acme");
    let work = tempfile::tempdir().unwrap();
    publish_acme(&alice, work.path(), "jira", "1.0.0", &[]);
    publish_acme(&alice, work.path(), "jira", "1.1.0+build.7", &[]);
    let url = &server.url;

    let (status, _, body) = http("GET", &format!("{url}/v2/acme/jira/tags/list"), None, None);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(
        json(&body)["tags"],
        serde_json::json!(["1.0.0", "1.1.0_build.7"])
    );
    let (status, headers, manifest) = http(
        "GET",
        &format!("{url}/v2/acme/jira/manifests/1.0.0"),
        None,
        None,
    );
    assert_eq!(status, 200);
    let digest = header(&headers, "docker-content-digest");
    assert_eq!(digest, digest_of(&manifest));
    let m = json(&manifest);
    assert_eq!(m["artifactType"], "application/vnd.agora.release.v1");
    assert_eq!(
        m["config"]["mediaType"],
        "application/vnd.agora.plugin.manifest.v1+yaml"
    );
    // The config is the release's plugin.yaml, the layer its module.
    let (_, _, config) = http(
        "GET",
        &format!(
            "{url}/v2/acme/jira/blobs/{}",
            m["config"]["digest"].as_str().unwrap()
        ),
        None,
        None,
    );
    assert!(String::from_utf8_lossy(&config).contains("name: jira"));
    assert_eq!(
        m["layers"][0]["annotations"]["org.opencontainers.image.title"],
        "plugin.wasm"
    );
    let (_, _, module) = http(
        "GET",
        &format!(
            "{url}/v2/acme/jira/blobs/{}",
            m["layers"][0]["digest"].as_str().unwrap()
        ),
        None,
        None,
    );
    assert_eq!(module, b"jira 1.0.0");

    // Its signature is a referrer whose layer is the DSSE envelope the API serves.
    let (_, _, body) = http(
        "GET",
        &format!(
            "{url}/v2/acme/jira/referrers/{digest}?artifactType=application/vnd.dsse.envelope.v1%2Bjson"
        ),
        None,
        None,
    );
    let referrers = json(&body)["manifests"].as_array().unwrap().clone();
    assert_eq!(referrers.len(), 1, "{referrers:?}");
    let (_, _, sig_manifest) = http(
        "GET",
        &format!(
            "{url}/v2/acme/jira/manifests/{}",
            referrers[0]["digest"].as_str().unwrap()
        ),
        None,
        None,
    );
    let sig_manifest = json(&sig_manifest);
    assert_eq!(sig_manifest["subject"]["digest"], digest.as_str());
    let (_, _, envelope) = http(
        "GET",
        &format!(
            "{url}/v2/acme/jira/blobs/{}",
            sig_manifest["layers"][0]["digest"].as_str().unwrap()
        ),
        None,
        None,
    );
    let (_, _, release) = http(
        "GET",
        &format!("{url}/api/v1/plugins/acme/jira/versions/1.0.0"),
        None,
        None,
    );
    let release = json(&release);
    let api_envelope = release["signature"].clone();
    assert_eq!(
        json(&envelope),
        if api_envelope.is_string() {
            json(api_envelope.as_str().unwrap().as_bytes())
        } else {
            api_envelope
        }
    );

    // The verification run follows as another referrer, with its outcome.
    eventually("the verification referrer", || {
        let (_, _, body) = http(
            "GET",
            &format!(
                "{url}/v2/acme/jira/referrers/{digest}?artifactType=application/vnd.agora.verification.v1%2Bjson"
            ),
            None,
            None,
        );
        json(&body)["manifests"]
            .as_array()
            .is_some_and(|m| m.len() == 1)
    });
    let (_, _, body) = http(
        "GET",
        &format!("{url}/v2/acme/jira/referrers/{digest}"),
        None,
        None,
    );
    let all = json(&body);
    let outcome = all["manifests"].as_array().unwrap().iter().find_map(|m| {
        m["annotations"]["dev.agora.verification.outcome"]
            .as_str()
            .map(str::to_owned)
    });
    assert!(outcome.is_some(), "{all}");

    // Release tags and artifacts belong to releases.
    let token = server.admin_token.as_str();
    let (status, _, body) = http(
        "DELETE",
        &format!("{url}/v2/acme/jira/manifests/{digest}"),
        Some(token),
        None,
    );
    assert_eq!((status, code(&body)), (403, "DENIED".into()));
    let (status, _, body) = put_manifest(&server, "acme/jira", "2.0.0", Some(token), &manifest);
    assert_eq!(
        (status, code(&body)),
        (403, "DENIED".into()),
        "a version tag is a release's"
    );

    // Releases published before /v2/ existed get their artifact at the next start.
    server.sql("DELETE FROM oci_tags; DELETE FROM oci_manifests");
    let mut server = server;
    server.restart();
    eventually("the artifacts written again", || {
        let (status, headers, _) = http(
            "GET",
            &format!("{}/v2/acme/jira/manifests/1.0.0", server.url),
            None,
            None,
        );
        status == 200 && header(&headers, "docker-content-digest") == digest
    });

    // A removed release's artifact is gone.
    server
        .admin()
        .run(&["takedown", "acme/jira@1.0.0", "--reason", "withdrawn"])
        .ok();
    let (status, _, _) = http(
        "GET",
        &format!("{}/v2/acme/jira/manifests/{digest}", server.url),
        None,
        None,
    );
    assert_eq!(status, 404);
}

#[test]
fn private_plugins_stay_invisible_through_v2_and_a_private_registry_challenges() {
    let server = Server::start(Backend::Sqlite);
    let mut alice = server.admin();
    alice.run(&["publisher", "create", "acme"]).ok();
    alice.sign_for("acme");
    let work = tempfile::tempdir().unwrap();
    let dir = plugin_dir(
        work.path(),
        "acme",
        "secret",
        "1.0.0",
        "visibility: private\n",
        b"secret module",
    );
    alice.run(&["publish", dir.to_str().unwrap()]).ok();
    alice.run(&["user", "create", "mallory"]).ok();
    let outsider = alice.token_for("mallory", &["read:private"]);
    let url = &server.url;
    let (status, headers, _) = http(
        "GET",
        &format!("{url}/v2/acme/secret/manifests/1.0.0"),
        Some(&server.admin_token),
        None,
    );
    assert_eq!(status, 200);
    let digest = header(&headers, "docker-content-digest");
    let module = digest_of(b"secret module");
    // A member reads its blob, marked for their own cache only (a shared cache in front
    // would hand it to anyone asking for the URL).
    let (status, headers, _) = http(
        "GET",
        &format!("{url}/v2/acme/secret/blobs/{module}"),
        Some(&server.admin_token),
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(
        header(&headers, "cache-control"),
        "private, max-age=31536000, immutable"
    );
    for token in [None, Some(outsider.as_str())] {
        for path in [
            "/v2/acme/secret/tags/list".to_owned(),
            "/v2/acme/secret/manifests/1.0.0".to_owned(),
            format!("/v2/acme/secret/manifests/{digest}"),
            format!("/v2/acme/secret/referrers/{digest}"),
            format!("/v2/acme/secret/blobs/{module}"),
            // A repository below the plugin's name follows the plugin.
            "/v2/acme/secret/extra/tags/list".to_owned(),
        ] {
            let (status, _, body) = http("GET", &format!("{url}{path}"), token, None);
            assert_eq!(
                (status, code(&body)),
                (404, "NAME_UNKNOWN".into()),
                "{path} as {token:?}"
            );
        }
    }
    // Mounting its blob elsewhere needs sight of it.
    alice.run(&["publisher", "create", "mallorys"]).ok();
    alice
        .run(&["publisher", "add-member", "mallorys", "mallory"])
        .ok();
    let pusher = alice.token_for("mallory", &["publish:mallorys"]);
    let (status, _, _) = http(
        "POST",
        &format!("{url}/v2/mallorys/loot/blobs/uploads/?mount={module}&from=acme/secret"),
        Some(&pusher),
        None,
    );
    assert_eq!(status, 202, "no mount: an upload session instead");
    let (status, _, _) = http(
        "GET",
        &format!("{url}/v2/mallorys/loot/blobs/{module}"),
        Some(&pusher),
        None,
    );
    assert_eq!(status, 404);

    // A private registry answers every /v2/ request without credentials with the challenge.
    let private = Server::start_with(Backend::Sqlite, &[("AGORA_WEB__REQUIRE_SIGN_IN", "true")]);
    for path in ["/v2/", "/v2/acme/jira/tags/list", "/v2/token"] {
        let (status, headers, _) = http("GET", &format!("{}{path}", private.url), None, None);
        assert_eq!(status, 401, "{path}");
        assert!(
            header(&headers, "www-authenticate").starts_with("Bearer realm="),
            "{path}"
        );
    }
    let (status, _, _) = http(
        "GET",
        &format!("{}/v2/", private.url),
        Some(&private.admin_token),
        None,
    );
    assert_eq!(status, 200);
}

#[test]
fn v2_can_be_switched_off() {
    let server = Server::start_with(Backend::Sqlite, &[("AGORA_OCI__ENABLED", "false")]);
    let (status, _, _) = http(
        "GET",
        &format!("{}/v2/", server.url),
        Some("anonymous"),
        None,
    );
    assert_eq!(status, 404);
}

/// Runs a real OCI client; the test fails (never skips) when the tool is missing.
fn tool(program: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("{program} is needed by this test (`.ci/run` installs it): {e}")
        });
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Writes an OCI image layout at `dir` holding one image tagged `tag`: a config and one
/// tar layer. Returns the manifest's digest.
fn write_layout(dir: &std::path::Path, tag: &str) -> String {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| {
        let digest = digest_of(bytes);
        std::fs::write(blobs.join(&digest[7..]), bytes).unwrap();
        (digest, bytes.len())
    };
    let mut layer = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    let content = b"hello from an OCI layer\n";
    h.set_size(content.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_cksum();
    layer
        .append_data(&mut h, "hello.txt", &content[..])
        .unwrap();
    let layer = layer.into_inner().unwrap();
    let (layer_digest, layer_size) = put(&layer);
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"User": "65534:65534"},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]}
    });
    let (config_digest, config_size) = put(&serde_json::to_vec(&config).unwrap());
    let m = manifest(
        None,
        (&config_digest, config_size),
        &[(&layer_digest, layer_size)],
        None,
    );
    let (manifest_digest, manifest_size) = put(&m);
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{
        "mediaType": OCI_MANIFEST, "digest": manifest_digest, "size": manifest_size,
        "annotations": {"org.opencontainers.image.ref.name": tag}
    }]});
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    manifest_digest
}

/// Every file under `dir/blobs`, by name, with its bytes.
fn blobs_of(dir: &std::path::Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir.join("blobs/sha256"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

#[test]
fn skopeo_copies_an_image_in_and_out_byte_identically_and_a_release_with_its_signature() {
    let server = Server::start(Backend::Sqlite);
    let mut alice = server.admin();
    alice.run(&["publisher", "create", "acme"]).ok();
    alice.sign_for("acme");
    let work = tempfile::tempdir().unwrap();
    let host = server.url.trim_start_matches("http://").to_owned();
    let creds = format!("me:{}", server.admin_token);

    // An image layout in, by tag; out again by digest: the same bytes.
    let input = work.path().join("in");
    let digest = write_layout(&input, "v1");
    tool(
        "skopeo",
        &[
            "copy",
            "--preserve-digests",
            "--dest-tls-verify=false",
            "--dest-creds",
            &creds,
            &format!("oci:{}:v1", input.display()),
            &format!("docker://{host}/acme/tools/hello:v1"),
        ],
    );
    let inspected: serde_json::Value = serde_json::from_str(&tool(
        "skopeo",
        &[
            "inspect",
            "--tls-verify=false",
            &format!("docker://{host}/acme/tools/hello:v1"),
        ],
    ))
    .unwrap();
    assert_eq!(inspected["Digest"], digest.as_str());
    assert_eq!(inspected["Architecture"], "amd64");
    let tags: serde_json::Value = serde_json::from_str(&tool(
        "skopeo",
        &[
            "list-tags",
            "--tls-verify=false",
            &format!("docker://{host}/acme/tools/hello"),
        ],
    ))
    .unwrap();
    assert_eq!(tags["Tags"], serde_json::json!(["v1"]));
    let output = work.path().join("out");
    tool(
        "skopeo",
        &[
            "copy",
            "--preserve-digests",
            "--src-tls-verify=false",
            &format!("docker://{host}/acme/tools/hello@{digest}"),
            &format!("oci:{}:v1", output.display()),
        ],
    );
    assert_eq!(blobs_of(&input), blobs_of(&output), "byte-identical");

    // A release copied out, then its referrers through the referrers tag: the signature
    // manifest keeps its digest, so it still names the release as its subject.
    publish_acme(&alice, work.path(), "jira", "1.0.0", &[]);
    let release_ref = format!("docker://{host}/acme/jira:1.0.0");
    let raw = tool(
        "skopeo",
        &["inspect", "--raw", "--tls-verify=false", &release_ref],
    );
    let release = digest_of(raw.as_bytes());
    let copied = work.path().join("release");
    tool(
        "skopeo",
        &[
            "copy",
            "--preserve-digests",
            "--src-tls-verify=false",
            &release_ref,
            &format!("oci:{}:1.0.0", copied.display()),
        ],
    );
    tool(
        "skopeo",
        &[
            "copy",
            "--all",
            "--src-tls-verify=false",
            &format!("docker://{host}/acme/jira:sha256-{}", &release[7..]),
            &format!("oci:{}:referrers", copied.display()),
        ],
    );
    let blobs = blobs_of(&copied);
    assert!(blobs.contains_key(&release[7..]), "the release's manifest");
    let signature = blobs
        .values()
        .filter_map(|b| serde_json::from_slice::<serde_json::Value>(b).ok())
        .find(|m| m["artifactType"] == "application/vnd.dsse.envelope.v1+json")
        .expect("the signature manifest was copied");
    assert_eq!(signature["subject"]["digest"], release.as_str());
    let envelope = &blobs[&signature["layers"][0]["digest"].as_str().unwrap()[7..]];
    let envelope: serde_json::Value = serde_json::from_slice(envelope).unwrap();
    assert!(
        envelope["signatures"]
            .as_array()
            .is_some_and(|s| !s.is_empty()),
        "{envelope}"
    );
}

#[test]
fn the_oras_python_sdk_pushes_pulls_and_lists_referrers() {
    let server = Server::start(Backend::Sqlite);
    server.admin().run(&["publisher", "create", "acme"]).ok();
    let work = tempfile::tempdir().unwrap();
    let host = server.url.trim_start_matches("http://").to_owned();
    let script = r#"
import json, os, sys
import oras.client, oras.oci
host, token, work = sys.argv[1], sys.argv[2], sys.argv[3]
client = oras.client.OrasClient(hostname=host, insecure=True)
client.login(username="me", password=token, hostname=host)
os.chdir(work)
with open("notes.txt", "w") as f:
    f.write("an artifact pushed by oras\n")
target = f"{host}/acme/notes/artifact:v1"
response = client.push(target=target, files=["notes.txt"], manifest_annotations={"purpose": "test"})
assert response.status_code in (200, 201), response.text
manifest = client.get_manifest(target)
digest = response.headers["Docker-Content-Digest"]
# A referrer of it: an SBOM-like artifact whose subject is the first.
with open("sbom.json", "w") as f:
    f.write('{"bomFormat": "CycloneDX"}')
subject = oras.oci.Subject(mediaType=manifest["mediaType"], digest=digest, size=len(json.dumps(manifest, separators=(",", ":"))))
pushed = client.push(target=f"{host}/acme/notes/artifact:sbom", files=["sbom.json"], subject=subject)
assert pushed.status_code in (200, 201), pushed.text
os.makedirs("out", exist_ok=True)
files = client.pull(target=target, outdir="out")
with open(os.path.join("out", "notes.txt")) as f:
    assert f.read() == "an artifact pushed by oras\n"
listing = client.do_request(f"http://{host}/v2/acme/notes/artifact/referrers/{digest}", "GET")
print(json.dumps({"digest": digest, "tags": client.get_tags(f"{host}/acme/notes/artifact"), "referrers": listing.json()}))
"#;
    let out = tool(
        "python3",
        &[
            "-c",
            script,
            &host,
            &server.admin_token,
            work.path().to_str().unwrap(),
        ],
    );
    let result: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(result["tags"], serde_json::json!(["sbom", "v1"]));
    let referrers = result["referrers"]["manifests"].as_array().unwrap();
    assert_eq!(referrers.len(), 1, "{result}");
}
