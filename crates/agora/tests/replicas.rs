//! Scale-out through the real binaries: two `agora serve` replicas on one PostgreSQL
//! database and one S3 bucket (the moto server at `AGORA_TEST_S3_ENDPOINT`), each with
//! its own in-process verification worker. Publishes go to both at once; the same
//! version sent to both has exactly one winner; each replica serves every acknowledged
//! release; the log has one history whichever replica a client asks; every release is
//! verified exactly once; a replica killed mid-publish leaves nothing half-visible, and
//! `agora fsck` finds nothing missing or corrupt and reports the stranded upload.
//! Needs PostgreSQL and an S3 server, and fails, never skips, without them.

mod support;

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use agora_trust::{Checkpoint, TreeHead, verify_consistency};
use serde_json::Value;
use support::*;

/// How long verifications may take to be recorded before the test gives up and shows the
/// logs (a hang guard, not a performance bound).
const GUARD: Duration = Duration::from_secs(120);

/// A server on a fresh PostgreSQL schema with its blobs in a fresh place of the bucket.
fn first_replica(extra: &[(&str, &str)]) -> Server {
    let mut env = s3_storage_env();
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Server::start_with(Backend::Postgres, &env)
}

fn checkpoint(server: &Server, vkey: &str) -> TreeHead {
    let (status, _, note) = http(
        "GET",
        &format!("{}/api/v1/log/checkpoint", server.url),
        None,
        None,
    );
    assert_eq!(status, 200);
    Checkpoint::open(std::str::from_utf8(&note).unwrap(), vkey)
        .unwrap()
        .head
}

/// `alice` on `server` with the signing key `signer` registered for acme.
fn publisher_on(server: &Server, signer: &Cli) -> Cli {
    let mut cli = server.admin();
    cli.key = signer.key.clone();
    cli
}

/// Two replicas started at the same moment on an empty database (they race to migrate
/// it and to create the administrator), with their blobs in one fresh place of the
/// bucket.
fn two_fresh_replicas() -> (Server, Server) {
    let env = s3_storage_env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut servers = Server::start_replicas(2, &env);
    let b = servers.pop().unwrap();
    let a = servers.pop().unwrap();
    (a, b)
}

#[test]
fn two_replicas_serve_one_registry() {
    let (a, b) = two_fresh_replicas();
    let mut alice_a = a.admin();
    alice_a.run(&["publisher", "create", "acme"]).ok();
    alice_a.sign_for("acme");
    let alice_b = publisher_on(&b, &alice_a);
    let work = tempfile::tempdir().unwrap();

    // Publishes to both at once: every one acknowledged.
    let releases: Vec<(String, std::path::PathBuf)> = (0..8)
        .map(|i| {
            let name = format!("p{i}");
            let module = format!("module {i}");
            let dir = plugin_dir(work.path(), "acme", &name, "1.0.0", "", module.as_bytes());
            (name, dir)
        })
        .collect();
    // Each acknowledgement carries the checkpoint the replica signed for it, and which
    // replica that was (0: a, 1: b).
    let start = Arc::new(Barrier::new(releases.len()));
    let mut seen: Vec<(usize, String)> = std::thread::scope(|scope| {
        let publishes: Vec<_> = releases
            .iter()
            .enumerate()
            .map(|(i, (_, dir))| {
                let cli = if i % 2 == 0 { &alice_a } else { &alice_b };
                let start = start.clone();
                scope.spawn(move || {
                    start.wait();
                    let published = cli
                        .run(&["--json", "publish", dir.to_str().unwrap()])
                        .json();
                    (
                        i % 2,
                        published["log"]["checkpoint"].as_str().unwrap().to_owned(),
                    )
                })
            })
            .collect();
        publishes.into_iter().map(|p| p.join().unwrap()).collect()
    });

    // The same version from two clients, one per replica: exactly one wins.
    let one = plugin_dir(
        &work.path().join("one"),
        "acme",
        "contested",
        "1.0.0",
        "",
        b"the first client's module",
    );
    let two = plugin_dir(
        &work.path().join("two"),
        "acme",
        "contested",
        "1.0.0",
        "",
        b"the second client's module",
    );
    let start = Barrier::new(2);
    let (first, second) = std::thread::scope(|scope| {
        let first = scope.spawn(|| {
            start.wait();
            alice_a.run(&["--json", "publish", one.to_str().unwrap()])
        });
        let second = scope.spawn(|| {
            start.wait();
            alice_b.run(&["--json", "publish", two.to_str().unwrap()])
        });
        (first.join().unwrap(), second.join().unwrap())
    });
    let outcomes = [
        first.output.status.success(),
        second.output.status.success(),
    ];
    assert_eq!(
        outcomes.iter().filter(|ok| **ok).count(),
        1,
        "exactly one of two publishes of one version wins:\nfirst: {}{}\nsecond: {}{}",
        first.stdout(),
        first.stderr(),
        second.stdout(),
        second.stderr()
    );
    let (winner, loser) = if outcomes[0] {
        (&first, &second)
    } else {
        (&second, &first)
    };
    assert!(
        loser.stderr().contains("already"),
        "the loser is told the version exists: {}",
        loser.stderr()
    );
    let winning_digest = winner.json()["manifest_digest"]
        .as_str()
        .unwrap()
        .to_owned();
    seen.push((
        usize::from(!outcomes[0]),
        winner.json()["log"]["checkpoint"]
            .as_str()
            .unwrap()
            .to_owned(),
    ));

    // Reads on either replica see every acknowledged release, the same.
    let anyone_a = a.cli(None);
    let anyone_b = b.cli(None);
    let mut names: Vec<String> = releases.iter().map(|(n, _)| n.clone()).collect();
    names.push("contested".into());
    for name in &names {
        let on_a = anyone_a
            .run(&["--json", "info", &format!("acme/{name}@1.0.0")])
            .json();
        let on_b = anyone_b
            .run(&["--json", "info", &format!("acme/{name}@1.0.0")])
            .json();
        assert_eq!(on_a["manifest_digest"], on_b["manifest_digest"], "{name}");
    }
    let contested = anyone_b
        .run(&["--json", "info", "acme/contested@1.0.0"])
        .json();
    assert_eq!(contested["manifest_digest"], winning_digest.as_str());
    // Installing from the replica that did not take the publish checks the signature,
    // the log and every byte fetched from the bucket.
    let installed = anyone_b
        .run_in(
            work.path(),
            &["--json", "install", "acme/p0", "--dir", "from-b"],
        )
        .json();
    assert_eq!(installed["version"], "1.0.0");
    assert_eq!(
        std::fs::read(work.path().join("from-b/acme/p0/plugin.wasm")).unwrap(),
        b"module 0"
    );

    // A replica's response cache serves another replica's change within its documented
    // staleness (`[cache] metadata_ttl_ms`, 1 s by default), never later.
    let detail = |server: &Server| get_json(server, "/api/v1/plugins/acme/p1/versions/1.0.0");
    assert_eq!(detail(&b)["state"], "active");
    assert_eq!(detail(&b)["state"], "active", "now cached on b");
    alice_a.run(&["yank", "acme/p1@1.0.0"]).ok();
    assert_eq!(
        detail(&a)["state"],
        "yanked",
        "at once on the replica that changed it"
    );
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(
        detail(&b)["state"],
        "yanked",
        "within the cache's lifetime on the other"
    );

    // Every release verified exactly once, by whichever replica's worker claimed it.
    let deadline = Instant::now() + GUARD;
    loop {
        let pending = a.query(
            "SELECT count(*) FROM versions v WHERE NOT EXISTS \
             (SELECT 1 FROM verifications r WHERE r.version_id = v.id)",
        );
        if pending.trim() == "0" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} releases unverified after {GUARD:?}\n--- a:\n{}\n--- b:\n{}",
            pending.trim(),
            a.log(),
            b.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let twice = a.query(
        "SELECT version_id, count(*) FROM verifications GROUP BY version_id HAVING count(*) > 1",
    );
    assert_eq!(twice.trim(), "", "a release verified more than once");
    let reclaimed = a.query("SELECT count(*) FROM jobs WHERE attempts > 1");
    assert_eq!(reclaimed.trim(), "0", "a job was claimed twice");
    let workers = a.query("SELECT DISTINCT worker FROM jobs WHERE worker IS NOT NULL");
    assert!(!workers.trim().is_empty());

    // One log, whichever replica answers (now that the verifications have logged
    // their outcomes too): the same entries, and each replica's
    // checkpoints prove consistent with the other's.
    let key = get_json(&a, "/api/v1/log/key");
    assert_eq!(key, get_json(&b, "/api/v1/log/key"), "one log key");
    let vkey = key["verifier_key"].as_str().unwrap();
    let head_a = checkpoint(&a, vkey);
    let head_b = checkpoint(&b, vkey);
    assert_eq!(head_a, head_b, "both replicas see the same tree");
    let entries_a = get_json(&a, "/api/v1/log/entries?from=0&limit=100");
    let entries_b = get_json(&b, "/api/v1/log/entries?from=0&limit=100");
    assert_eq!(entries_a, entries_b);
    let entries = entries_a.as_array().unwrap();
    assert_eq!(entries.len() as u64, head_a.size);
    // One release entry per acknowledged publish, whichever replica took it; the
    // loser of the contested version left none.
    let released = entries
        .iter()
        .filter(|e| {
            serde_json::from_str::<Value>(e["body"].as_str().unwrap()).unwrap()["kind"] == "release"
        })
        .count();
    assert_eq!(released, releases.len() + 1);
    for (i, entry) in entries.iter().enumerate() {
        assert_eq!(entry["index"], i, "indexes are dense: no gap, no duplicate");
    }
    // Every checkpoint a client was given by one replica is proven consistent with the
    // other replica's head: no fork, whichever replica signed it.
    let replicas = [&a, &b];
    for (signer, note) in &seen {
        let old = Checkpoint::open(note, vkey).unwrap().head;
        let other = replicas[1 - signer];
        let proof = get_json(
            other,
            &format!("/api/v1/log/proof/consistency?from={}", old.size),
        );
        let head = Checkpoint::open(proof["checkpoint"].as_str().unwrap(), vkey)
            .unwrap()
            .head;
        verify_consistency(&old, &head, &proof_hashes(&proof)).unwrap_or_else(|e| {
            panic!(
                "a checkpoint of size {} does not extend to the other replica's head: {e}",
                old.size
            )
        });
    }
    assert!(
        seen.iter()
            .any(|(_, note)| Checkpoint::open(note, vkey).unwrap().head.size < head_a.size),
        "some checkpoint predates the head, so some proof above was not trivial"
    );
}

#[test]
fn a_replica_killed_mid_publish_leaves_nothing_half_visible() {
    let a = first_replica(&[]);
    let mut b = a.replica();
    let mut alice_a = a.admin();
    alice_a.run(&["publisher", "create", "acme"]).ok();
    alice_a.sign_for("acme");
    let alice_b = publisher_on(&b, &alice_a);
    let work = tempfile::tempdir().unwrap();

    // A 24 MiB module: its upload to the bucket is a multipart upload, cut off when the
    // replica taking it dies.
    let module: Vec<u8> = (0..24u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let digest = sha256_hex(&module);
    let big = plugin_dir(work.path(), "acme", "big", "1.0.0", "", &module);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (sent_half, half_sent) = std::sync::mpsc::channel();
    let upload = {
        let url = format!("{}/api/v1/blobs/sha256:{digest}", b.url);
        let token = b.admin_token.clone();
        let first_half = module[..12 << 20].to_vec();
        std::thread::spawn(move || {
            runtime.block_on(async move {
                // Half the bytes, then nothing: the upload is in flight when the replica
                // dies.
                let chunks: Vec<std::io::Result<Vec<u8>>> =
                    first_half.chunks(1 << 20).map(|c| Ok(c.to_vec())).collect();
                let body = futures_util::StreamExt::chain(
                    futures_util::stream::iter(chunks),
                    futures_util::StreamExt::then(
                        futures_util::stream::once(async {}),
                        move |()| {
                            let _ = sent_half.send(());
                            futures_util::future::pending::<std::io::Result<Vec<u8>>>()
                        },
                    ),
                );
                reqwest::Client::new()
                    .put(url)
                    .bearer_auth(token)
                    .header("content-length", (24u64 << 20).to_string())
                    .body(reqwest::Body::wrap_stream(body))
                    .send()
                    .await
                    .map(|r| r.status())
            })
        })
    };
    // Before that, a publish that got as far as uploading its module, not as far as the
    // release (the client died): bytes nothing refers to yet.
    let stranded = b"uploaded, never released";
    let (status, _, _) = http(
        "PUT",
        &format!("{}/api/v1/blobs/sha256:{}", b.url, sha256_hex(stranded)),
        Some(&b.admin_token),
        Some(stranded.to_vec()),
    );
    assert_eq!(status, 201);
    half_sent
        .recv_timeout(Duration::from_secs(60))
        .expect("the first half of the upload went out");
    // Let the replica push the first part to the bucket before it dies.
    std::thread::sleep(Duration::from_secs(2));
    b.kill();
    assert!(
        upload.join().unwrap().is_err(),
        "the connection died with the replica"
    );

    // Nothing of the cut-off upload is visible through the other replica.
    let (status, _, _) = http(
        "HEAD",
        &format!("{}/api/v1/blobs/sha256:{digest}", a.url),
        Some(&a.admin_token),
        None,
    );
    assert_eq!(status, 404);
    let (status, _, _) = http(
        "GET",
        &format!("{}/api/v1/plugins/acme/big/versions/1.0.0", a.url),
        None,
        None,
    );
    assert_eq!(status, 404);
    // fsck on the survivor's database and bucket: nothing missing or corrupt, and the
    // stranded upload reported as an orphan (which gc removes after its grace period);
    // the cut-off upload left no object to report.
    let out = a.operator(&["--json", "fsck"]);
    let fsck: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "fsck printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(out.status.success(), "{fsck}");
    assert_eq!(fsck["missing"]["count"], 0, "{fsck}");
    assert_eq!(fsck["corrupt"]["count"], 0, "{fsck}");
    let orphans: Vec<&str> = fsck["orphans"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["digest"].as_str().unwrap())
        .collect();
    assert_eq!(
        orphans,
        [format!("sha256:{}", sha256_hex(stranded))],
        "{fsck}"
    );
    // The publish goes through the surviving replica, from the start.
    alice_a.run(&["publish", big.to_str().unwrap()]).ok();
    drop(alice_b);
    let installed = a
        .cli(None)
        .run_in(
            work.path(),
            &["--json", "install", "acme/big", "--dir", "out"],
        )
        .json();
    assert_eq!(installed["version"], "1.0.0");
    assert_eq!(
        sha256_file(&work.path().join("out/acme/big/plugin.wasm")),
        format!("sha256:{digest}")
    );
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// A GET that does not follow redirects: status, headers.
fn get_no_follow(url: &str, token: Option<&str>) -> (u16, reqwest::header::HeaderMap) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let mut request = client.get(url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        (response.status().as_u16(), response.headers().clone())
    })
}

#[test]
fn downloads_can_redirect_to_presigned_urls_that_keep_digest_and_caching() {
    let server = first_replica(&[
        ("AGORA_BLOBS__DOWNLOADS", "redirect"),
        ("AGORA_BLOBS__REDIRECT_TTL_SECS", "120"),
    ]);
    let mut alice = server.admin();
    alice.run(&["publisher", "create", "acme"]).ok();
    alice.sign_for("acme");
    let work = tempfile::tempdir().unwrap();
    let public = plugin_dir(work.path(), "acme", "open", "1.0.0", "", b"public module");
    alice.run(&["publish", public.to_str().unwrap()]).ok();
    let hidden = plugin_dir(
        work.path(),
        "acme",
        "hidden",
        "1.0.0",
        "visibility: private\n",
        b"private module",
    );
    alice.run(&["publish", hidden.to_str().unwrap()]).ok();

    // A public blob: a redirect any cache may keep for half the URL's life, with the
    // digest; the bucket answers the bytes as immutable.
    let digest = sha256_file(&public.join("plugin.wasm"));
    let blob_url = format!("{}/api/v1/blobs/{digest}", server.url);
    let (status, headers) = get_no_follow(&blob_url, None);
    assert_eq!(status, 307);
    assert_eq!(headers["agora-digest"], digest.as_str());
    assert_eq!(headers["cache-control"], "public, max-age=60");
    let location = headers["location"].to_str().unwrap().to_owned();
    let endpoint = std::env::var("AGORA_TEST_S3_ENDPOINT").unwrap();
    assert!(location.starts_with(&endpoint), "{location}");
    let (status, stored, body) = http("GET", &location, None, None);
    assert_eq!(status, 200);
    assert_eq!(body, b"public module");
    assert_eq!(
        stored["cache-control"],
        "public, max-age=31536000, immutable"
    );
    // Ranges go to the bucket as they are.
    let (status, _, body) = http_with("GET", &location, None, &[("range", "bytes=7-12")], None);
    assert_eq!((status, body.as_slice()), (206, b"module".as_slice()));
    // HEAD still answers here, with the size.
    let (status, headers, _) = http("HEAD", &blob_url, None, None);
    assert_eq!(status, 200);
    assert_eq!(headers["content-length"], "13");

    // A private plugin's blob: the redirect and the bytes are for the reader's cache only.
    let digest = sha256_file(&hidden.join("plugin.wasm"));
    let blob_url = format!("{}/api/v1/blobs/{digest}", server.url);
    assert_eq!(get_no_follow(&blob_url, None).0, 404);
    let (status, headers) = get_no_follow(&blob_url, Some(&server.admin_token));
    assert_eq!(status, 307);
    assert_eq!(headers["cache-control"], "private, max-age=60");
    let (status, stored, body) = http("GET", headers["location"].to_str().unwrap(), None, None);
    assert_eq!(
        (status, body.as_slice()),
        (200, b"private module".as_slice())
    );
    assert_eq!(
        stored["cache-control"],
        "private, max-age=31536000, immutable"
    );

    // The client follows the redirect (dropping its token on the way to another host)
    // and checks every byte against the digest.
    let installed = server
        .cli(None)
        .run_in(
            work.path(),
            &["--json", "install", "acme/open", "--dir", "out"],
        )
        .json();
    assert_eq!(installed["version"], "1.0.0");
    assert_eq!(
        std::fs::read(work.path().join("out/acme/open/plugin.wasm")).unwrap(),
        b"public module"
    );
    alice
        .run_in(
            work.path(),
            &["install", "acme/hidden", "--dir", "private-out"],
        )
        .ok();
    assert_eq!(
        std::fs::read(work.path().join("private-out/acme/hidden/plugin.wasm")).unwrap(),
        b"private module"
    );
}
