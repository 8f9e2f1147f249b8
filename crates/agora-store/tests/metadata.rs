//! The metadata store's specification, run against every backend: SQLite (embedded
//! default) and PostgreSQL. PostgreSQL tests need a server at `AGORA_TEST_POSTGRES_URL`
//! (default `postgres://postgres@127.0.0.1:5432/test`); they fail, never skip, without one.

use std::sync::atomic::{AtomicU32, Ordering};

use agora_core::manifest::ArtifactRole;
use agora_core::{Digest, Lifecycle, Manifest, Visibility};
use agora_store::*;

static NEXT: AtomicU32 = AtomicU32::new(0);

struct Backend {
    store: SqlStore,
    cleanup: Option<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

async fn sqlite() -> Backend {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("agora.db").display());
    Backend {
        store: SqlStore::connect(&url).await.unwrap(),
        cleanup: None,
        _dir: Some(dir),
    }
}

fn postgres_url() -> String {
    std::env::var("AGORA_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

async fn postgres() -> Backend {
    sqlx::any::install_default_drivers();
    let base = postgres_url();
    let schema = format!(
        "agora_test_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    );
    let admin = sqlx::AnyPool::connect(&base).await.unwrap_or_else(|e| {
        panic!("PostgreSQL is required for these tests and is unreachable at {base}: {e} (set AGORA_TEST_POSTGRES_URL)")
    });
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
    Backend {
        store: SqlStore::connect(&url).await.unwrap(),
        cleanup: Some((base, schema)),
        _dir: None,
    }
}

impl Backend {
    /// The store's database URL, for a second connection that writes behind its back.
    fn url(&self) -> String {
        match (&self.cleanup, &self._dir) {
            (Some((base, schema)), _) => {
                let sep = if base.contains('?') { '&' } else { '?' };
                format!("{base}{sep}options=-c%20search_path%3D{schema}")
            }
            (None, Some(dir)) => format!("sqlite://{}", dir.path().join("agora.db").display()),
            (None, None) => unreachable!("a backend has a schema or a directory"),
        }
    }

    /// A second connection to the store's database, with `statements` run on it.
    async fn raw(&self, statements: &[&str]) -> sqlx::AnyPool {
        let raw = sqlx::AnyPool::connect(&self.url()).await.unwrap();
        for statement in statements {
            sqlx::query(sqlx::AssertSqlSafe(*statement))
                .execute(&raw)
                .await
                .unwrap();
        }
        raw
    }

    async fn finish(self) {
        self.store.close().await;
        if let Some((base, schema)) = self.cleanup {
            let admin = sqlx::AnyPool::connect(&base).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
                .execute(&admin)
                .await
                .unwrap();
            admin.close().await;
        }
    }
}

fn manifest(publisher: &str, name: &str, version: &str, extra: &str) -> Manifest {
    let text = format!(
        "api_version: agora/v1\npublisher: {publisher}\nname: {name}\nversion: {version}\n\
         description: The {name} plugin does useful things\nlicense: MIT\n\
         runtime: {{ type: wasm, module: plugin.wasm }}\n{extra}"
    );
    Manifest::from_yaml(&text).unwrap()
}

struct World {
    alice: UserRecord,
    acme: PublisherRecord,
}

async fn world(store: &SqlStore) -> World {
    let alice = store.create_user("alice", Role::Publisher).await.unwrap();
    let acme = store
        .create_publisher("acme", Some("ACME Corp"), &alice)
        .await
        .unwrap();
    World { alice, acme }
}

async fn release(
    store: &SqlStore,
    w: &World,
    m: Manifest,
    module: &[u8],
) -> Result<VersionRecord, StoreError> {
    store.publish(new_release(w, m, module)).await
}

/// An unsigned, unlogged release of `m` by alice for acme, with a module of `module`.
fn new_release(w: &World, m: Manifest, module: &[u8]) -> NewRelease {
    let manifest_digest = Digest::of(serde_json::to_string(&m).unwrap().as_bytes());
    let artifacts = vec![
        ArtifactRecord {
            path: "plugin.yaml".into(),
            role: ArtifactRole::Manifest,
            digest: manifest_digest,
            size: 10,
        },
        ArtifactRecord {
            path: "plugin.wasm".into(),
            role: ArtifactRole::Module,
            digest: Digest::of(module),
            size: module.len() as i64,
        },
    ];
    NewRelease {
        publisher_id: w.acme.id,
        manifest: m,
        manifest_digest,
        signature: None,
        signer_key: None,
        log_entry: None,
        artifacts,
        published_by: w.alice.id,
        actor: "alice".into(),
        jobs: Vec::new(),
    }
}

/// A log writer that records what the store told it, so tests can see the context: the
/// index, the publisher's key head and whether the plugin is private (private entries
/// come with an opening).
fn noting(label: &str) -> LogWriter {
    let label = label.to_owned();
    LogWriter::new(move |c: &LogContext| {
        let head = match &c.key_head {
            Some((i, leaf)) => format!("{i}:{leaf}"),
            None => "-".into(),
        };
        let visibility = if c.private { "private" } else { "public" };
        let body = format!("{label} @{} head={head} {visibility}", c.index);
        LogRecord {
            leaf: format!("leaf({body})"),
            opening: c.private.then(|| format!("opening of {label}")),
            body,
        }
    })
}

fn query(text: Option<&str>) -> SearchQuery {
    SearchQuery {
        text: text.map(str::to_owned),
        ..SearchQuery::default()
    }
}

fn names(result: &SearchResult) -> Vec<String> {
    result.plugins.iter().map(|p| p.name.clone()).collect()
}

async fn publishing_creates_the_plugin_its_version_and_artifacts(store: &SqlStore) {
    let w = world(store).await;
    let m = manifest(
        "acme",
        "jira",
        "1.2.0",
        "tags: [jira, issues]\ncategories: [ticketing]\nprovider: atlassian\n",
    );
    let v = release(store, &w, m, b"module").await.unwrap();
    assert_eq!(v.version, "1.2.0");
    assert_eq!(v.state, Lifecycle::Active);
    assert_eq!(v.published_by, "alice");
    let p = store.plugin("acme", "jira").await.unwrap().unwrap();
    assert_eq!(p.latest_version.as_deref(), Some("1.2.0"));
    assert_eq!(p.tags, ["issues", "jira"]);
    assert_eq!(p.categories, ["ticketing"]);
    assert_eq!(p.provider.as_deref(), Some("atlassian"));
    let artifacts = store.artifacts(v.id).await.unwrap();
    assert_eq!(artifacts.len(), 2);
    let module = artifacts
        .iter()
        .find(|a| a.role == ArtifactRole::Module)
        .unwrap();
    assert_eq!(module.digest, Digest::of(b"module"));
    let audit = store.audit_events(Some("acme/jira"), 10).await.unwrap();
    assert_eq!(audit[0].action, "version.publish");
}

async fn publishing_an_existing_version_is_a_conflict_and_changes_nothing(store: &SqlStore) {
    let w = world(store).await;
    release(store, &w, manifest("acme", "jira", "1.0.0", ""), b"first")
        .await
        .unwrap();
    let err = release(
        store,
        &w,
        manifest("acme", "jira", "1.0.0", "tags: [changed]\n"),
        b"second",
    )
    .await
    .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    let p = store.plugin("acme", "jira").await.unwrap().unwrap();
    let versions = store.versions(p.id).await.unwrap();
    assert_eq!(versions.len(), 1);
    assert!(p.tags.is_empty());
    let artifacts = store.artifacts(versions[0].id).await.unwrap();
    let module = artifacts
        .iter()
        .find(|a| a.role == ArtifactRole::Module)
        .unwrap();
    assert_eq!(module.digest, Digest::of(b"first"));
}

async fn versions_are_ordered_by_semver_and_latest_skips_prereleases_and_yanks(store: &SqlStore) {
    let w = world(store).await;
    for v in ["1.9.0", "1.10.0", "2.0.0-rc.1", "1.2.3"] {
        release(store, &w, manifest("acme", "jira", v, ""), v.as_bytes())
            .await
            .unwrap();
    }
    let p = store.plugin("acme", "jira").await.unwrap().unwrap();
    assert_eq!(p.latest_version.as_deref(), Some("1.10.0"));
    let order: Vec<_> = store
        .versions(p.id)
        .await
        .unwrap()
        .into_iter()
        .map(|v| v.version)
        .collect();
    assert_eq!(order, ["2.0.0-rc.1", "1.10.0", "1.9.0", "1.2.3"]);

    let v110 = store.version(p.id, "1.10.0").await.unwrap().unwrap();
    let change = |state, reason: Option<&str>| LifecycleChange {
        version_id: v110.id,
        state,
        reason: reason.map(str::to_owned),
        replacement: None,
        actor: "alice".into(),
        log_entry: None,
    };
    store
        .set_lifecycle(change(Lifecycle::Yanked, Some("broken build")))
        .await
        .unwrap();
    let p = store.plugin("acme", "jira").await.unwrap().unwrap();
    assert_eq!(p.latest_version.as_deref(), Some("1.9.0"));
    store
        .set_lifecycle(change(Lifecycle::Active, None))
        .await
        .unwrap();
    let p = store.plugin("acme", "jira").await.unwrap().unwrap();
    assert_eq!(p.latest_version.as_deref(), Some("1.10.0"));
    let audit = store
        .audit_events(Some("acme/jira@1.10.0"), 10)
        .await
        .unwrap();
    assert_eq!(
        audit
            .iter()
            .filter(|a| a.action == "version.lifecycle")
            .count(),
        2
    );
}

async fn search_matches_text_and_every_filter(store: &SqlStore) {
    let w = world(store).await;
    let jira = "display_name: Jira Tickets\ntags: [jira, issues]\ncategories: [ticketing]\nprovider: atlassian\n\
                capabilities: [outbound_http]\nnetwork: { outbound_hosts: [jira.example.com] }\n";
    release(
        store,
        &w,
        manifest("acme", "jira-ticket", "1.0.0", jira),
        b"a",
    )
    .await
    .unwrap();
    release(
        store,
        &w,
        manifest(
            "acme",
            "slack-notify",
            "1.0.0",
            "tags: [chat]\ncategories: [messaging]\nprovider: slack\n",
        ),
        b"b",
    )
    .await
    .unwrap();
    release(
        store,
        &w,
        manifest(
            "acme",
            "s3-scan",
            "1.0.0",
            "tags: [storage]\ncategories: [ticketing]\nprovider: aws\n",
        ),
        b"c",
    )
    .await
    .unwrap();

    assert_eq!(
        names(&store.search(&query(Some("jira"))).await.unwrap()),
        ["jira-ticket"]
    );
    assert_eq!(
        names(&store.search(&query(Some("atlass"))).await.unwrap()),
        ["jira-ticket"],
        "prefix match"
    );
    // Short words match whole words only: a one- or two-letter prefix would match much
    // of a large catalog (and cost the engine thousands of terms).
    assert!(
        store
            .search(&query(Some("ji")))
            .await
            .unwrap()
            .plugins
            .is_empty(),
        "no two-letter prefix"
    );
    assert_eq!(
        names(&store.search(&query(Some("jir"))).await.unwrap()),
        ["jira-ticket"]
    );
    assert_eq!(
        names(&store.search(&query(Some("s3"))).await.unwrap()),
        ["s3-scan"],
        "a short word still matches itself"
    );
    assert_eq!(store.search(&query(None)).await.unwrap().plugins.len(), 3);
    let mut q = query(None);
    q.category = Some("ticketing".into());
    q.sort = SearchSort::Name;
    assert_eq!(
        names(&store.search(&q).await.unwrap()),
        ["jira-ticket", "s3-scan"]
    );
    q.provider = Some("aws".into());
    assert_eq!(names(&store.search(&q).await.unwrap()), ["s3-scan"]);
    let mut q = query(Some("plugin"));
    q.tag = Some("chat".into());
    q.runtime = Some("wasm".into());
    assert_eq!(names(&store.search(&q).await.unwrap()), ["slack-notify"]);
    let mut q = query(None);
    q.capability = Some("outbound_http".into());
    assert_eq!(names(&store.search(&q).await.unwrap()), ["jira-ticket"]);
    q.runtime = Some("exec".into());
    assert!(store.search(&q).await.unwrap().plugins.is_empty());
}

async fn search_text_with_query_syntax_and_sql_is_harmless(store: &SqlStore) {
    let w = world(store).await;
    release(store, &w, manifest("acme", "jira", "1.0.0", ""), b"a")
        .await
        .unwrap();
    for text in [
        "'; DROP TABLE plugins; --",
        "\"unterminated",
        "jira OR 1=1",
        "NEAR(a b)",
        "*",
        "a:b & !c | (d",
        &"x".repeat(5000),
    ] {
        store
            .search(&query(Some(text)))
            .await
            .unwrap_or_else(|e| panic!("{text:?}: {e}"));
    }
    assert_eq!(
        names(&store.search(&query(Some("jira' --"))).await.unwrap()),
        ["jira"]
    );
    assert!(store.plugin("acme", "jira").await.unwrap().is_some());
}

async fn cursors_page_through_every_result_once(store: &SqlStore) {
    let w = world(store).await;
    for i in 0..7 {
        let m = manifest("acme", &format!("scanner-{i}"), "1.0.0", "tags: [scan]\n");
        release(store, &w, m, format!("m{i}").as_bytes())
            .await
            .unwrap();
    }
    for sort in [
        SearchSort::Relevance,
        SearchSort::Downloads,
        SearchSort::Recent,
        SearchSort::Name,
    ] {
        for text in [Some("scanner"), None] {
            let mut q = query(text);
            q.sort = sort;
            q.limit = 3;
            let mut seen = Vec::new();
            loop {
                let page = store.search(&q).await.unwrap();
                seen.extend(names(&page));
                match page.next {
                    Some(next) => q.after = Some(next),
                    None => break,
                }
            }
            let mut unique = seen.clone();
            unique.sort();
            unique.dedup();
            assert_eq!(
                (seen.len(), unique.len()),
                (7, 7),
                "{sort:?} {text:?}: {seen:?}"
            );
        }
    }
}

async fn private_plugins_are_invisible_to_outsiders(store: &SqlStore) {
    let w = world(store).await;
    let v = release(
        store,
        &w,
        manifest("acme", "secret-sauce", "1.0.0", "visibility: private\n"),
        b"secret",
    )
    .await
    .unwrap();
    let outsider = Viewer::anonymous();
    let member = Viewer {
        admin: false,
        private_publishers: vec![w.acme.id],
        ..Viewer::default()
    };
    assert!(
        store
            .search(&query(Some("secret")))
            .await
            .unwrap()
            .plugins
            .is_empty()
    );
    let mut q = query(Some("secret"));
    q.viewer = member.clone();
    assert_eq!(names(&store.search(&q).await.unwrap()), ["secret-sauce"]);
    let module = Digest::of(b"secret");
    assert!(!store.blob_readable(&module, &outsider).await.unwrap());
    assert!(store.blob_readable(&module, &member).await.unwrap());
    assert!(
        store
            .blob_readable(
                &module,
                &Viewer {
                    admin: true,
                    private_publishers: vec![],
                    ..Viewer::default()
                }
            )
            .await
            .unwrap()
    );
    // A later public-by-default release does not make it public again.
    release(
        store,
        &w,
        manifest("acme", "secret-sauce", "1.1.0", ""),
        b"secret2",
    )
    .await
    .unwrap();
    let p = store.plugin("acme", "secret-sauce").await.unwrap().unwrap();
    assert_eq!(p.visibility, Visibility::Private);
    assert!(!outsider.can_see(&p) && member.can_see(&p));
    store
        .set_visibility(p.id, Visibility::Public, "alice", None)
        .await
        .unwrap();
    assert_eq!(
        names(&store.search(&query(Some("secret"))).await.unwrap()),
        ["secret-sauce"]
    );
    let _ = v;
}

async fn removal_orphans_only_unshared_blobs(store: &SqlStore) {
    let w = world(store).await;
    let a = release(store, &w, manifest("acme", "one", "1.0.0", ""), b"shared")
        .await
        .unwrap();
    release(store, &w, manifest("acme", "two", "1.0.0", ""), b"shared")
        .await
        .unwrap();
    let (removed, orphaned) = store
        .set_lifecycle(LifecycleChange {
            version_id: a.id,
            state: Lifecycle::Removed,
            reason: Some("malware".into()),
            replacement: None,
            actor: "admin".into(),
            log_entry: None,
        })
        .await
        .unwrap();
    assert_eq!(removed.state, Lifecycle::Removed);
    assert_eq!(orphaned, [a.manifest_digest], "the shared module stays");
    // A file somebody mounted into an OCI repository stays too.
    let c = release(
        store,
        &w,
        manifest("acme", "three", "1.0.0", ""),
        b"mounted",
    )
    .await
    .unwrap();
    store
        .link_oci_blob("acme/elsewhere", &Digest::of(b"mounted"))
        .await
        .unwrap();
    let (_, orphaned) = store
        .set_lifecycle(LifecycleChange {
            version_id: c.id,
            state: Lifecycle::Removed,
            reason: Some("malware".into()),
            replacement: None,
            actor: "admin".into(),
            log_entry: None,
        })
        .await
        .unwrap();
    assert_eq!(orphaned, [c.manifest_digest], "the mounted module stays");
    assert!(
        !store
            .blob_readable(
                &a.manifest_digest,
                &Viewer {
                    admin: true,
                    private_publishers: vec![],
                    ..Viewer::default()
                }
            )
            .await
            .unwrap()
    );
    assert!(
        store
            .blob_readable(&Digest::of(b"shared"), &Viewer::anonymous())
            .await
            .unwrap()
    );
    let p = store.plugin("acme", "one").await.unwrap().unwrap();
    assert_eq!(p.latest_version, None, "tombstone kept, nothing resolvable");
    assert!(
        store
            .search(&query(Some("one")))
            .await
            .unwrap()
            .plugins
            .is_empty()
    );
}

async fn downloads_are_counted_per_version_and_plugin(store: &SqlStore) {
    let w = world(store).await;
    let v = release(store, &w, manifest("acme", "jira", "1.0.0", ""), b"a")
        .await
        .unwrap();
    let download = |digest: Digest| AnalyticsEvent::Download {
        at: now_ms(),
        manifest_digest: digest.to_string(),
    };
    store
        .record_events(
            now_ms(),
            &[
                download(v.manifest_digest),
                download(v.manifest_digest),
                download(Digest::of(b"a")),
            ],
        )
        .await
        .unwrap();
    let p = store.plugin("acme", "jira").await.unwrap().unwrap();
    assert_eq!(p.downloads, 2);
    assert_eq!(
        store
            .version(p.id, "1.0.0")
            .await
            .unwrap()
            .unwrap()
            .downloads,
        2
    );
}

const T0: i64 = 1_764_547_200_000; // 2025-12-01 00:00 UTC
const H: i64 = agora_core::analytics::HOUR_MS;
const D: i64 = agora_core::analytics::DAY_MS;

fn count(bucket: i64, kind: &str, plugin: &str, version: &str, n: u64) -> CountRecord {
    CountRecord {
        bucket,
        kind: kind.into(),
        plugin: plugin.into(),
        version: version.into(),
        count: n,
        failures: 0,
        total_ms: 0,
    }
}

/// Downloads and searches: a known stream (with events arriving late, and two batches
/// written at the same moment, as two servers would) gives exactly these hourly and daily
/// rollups, download counters and search counts; other blobs and unknown digests count
/// nothing; distinct queries per day are bounded.
async fn event_rollups_add_up_exactly_late_and_concurrent(store: &SqlStore) {
    let w = world(store).await;
    let v1 = release(store, &w, manifest("acme", "jira", "1.0.0", ""), b"m1")
        .await
        .unwrap();
    let v2 = release(store, &w, manifest("acme", "jira", "1.1.0", ""), b"m2")
        .await
        .unwrap();
    let dl = |digest: Digest, at: i64| AnalyticsEvent::Download {
        at,
        manifest_digest: digest.to_string(),
    };
    let search = |q: &str, results: u64, at: i64| AnalyticsEvent::Search {
        at,
        query: agora_core::analytics::query_key(q),
        results,
    };
    let first = vec![
        dl(v1.manifest_digest, T0 + H + 5),
        dl(v1.manifest_digest, T0 + H + 6),
        dl(v1.manifest_digest, T0 + H + 7),
        dl(v1.manifest_digest, T0 + 2 * H),
        dl(v2.manifest_digest, T0 + 25 * H),
        dl(v2.manifest_digest, T0 + 26 * H - 1),
        dl(Digest::of(b"m1"), T0 + H),
        dl(Digest::of(b"unknown"), T0 + H),
        search("Network  HTTP", 3, T0 + H),
        search("network http", 0, T0 + 2 * H),
        search("", 12, T0),
        search("nothing-here", 0, T0 + 25 * H),
    ];
    store.record_events(T0 + 30 * H, &first).await.unwrap();
    // Late: received a day later, counted in the hour it happened.
    store
        .record_events(T0 + 54 * H, &[dl(v1.manifest_digest, T0 + H + 30 * 60_000)])
        .await
        .unwrap();
    // Two servers' batches at once.
    let burst: Vec<_> = (0..50)
        .map(|_| dl(v1.manifest_digest, T0 + 3 * H))
        .collect();
    let (a, b) = tokio::join!(
        store.record_events(T0 + 31 * H, &burst),
        store.record_events(T0 + 31 * H, &burst)
    );
    a.unwrap();
    b.unwrap();

    let hourly = store
        .analytics_counts(
            AnalyticsFilter::Registry,
            "hour",
            T0,
            T0 + 2 * D,
            AnalyticsGrouping::Version,
        )
        .await
        .unwrap();
    assert_eq!(
        hourly,
        [
            count(T0 + H, "download", "acme/jira", "1.0.0", 4),
            count(T0 + 2 * H, "download", "acme/jira", "1.0.0", 1),
            count(T0 + 3 * H, "download", "acme/jira", "1.0.0", 100),
            count(T0 + 25 * H, "download", "acme/jira", "1.1.0", 2),
        ]
    );
    let daily = store
        .analytics_counts(
            AnalyticsFilter::Registry,
            "day",
            T0,
            T0 + 2 * D,
            AnalyticsGrouping::Version,
        )
        .await
        .unwrap();
    assert_eq!(
        daily,
        [
            count(T0, "download", "acme/jira", "1.0.0", 105),
            count(T0 + D, "download", "acme/jira", "1.1.0", 2),
        ]
    );
    let totals = store
        .analytics_counts(
            AnalyticsFilter::Publisher(w.acme.id),
            "day",
            T0,
            T0 + 2 * D,
            AnalyticsGrouping::Total,
        )
        .await
        .unwrap();
    assert_eq!(
        totals,
        [
            count(T0, "download", "", "", 105),
            count(T0 + D, "download", "", "", 2)
        ]
    );
    let only_day_two = store
        .analytics_counts(
            AnalyticsFilter::Registry,
            "day",
            T0 + D,
            T0 + 2 * D,
            AnalyticsGrouping::Plugin,
        )
        .await
        .unwrap();
    assert_eq!(
        only_day_two,
        [count(T0 + D, "download", "acme/jira", "", 2)]
    );
    let p = store.plugin("acme", "jira").await.unwrap().unwrap();
    assert_eq!(p.downloads, 107);
    assert_eq!(
        store
            .version(p.id, "1.0.0")
            .await
            .unwrap()
            .unwrap()
            .downloads,
        105
    );
    assert_eq!(
        store
            .version(p.id, "1.1.0")
            .await
            .unwrap()
            .unwrap()
            .downloads,
        2
    );
    // 107 downloads and 4 searches are the raw events.
    assert_eq!(store.analytics_event_count().await.unwrap(), 111);

    let top = store
        .analytics_searches(T0, T0 + 2 * D, false, 10)
        .await
        .unwrap();
    let row = |q: &str, n: u64, z: u64| SearchCountRecord {
        query: q.into(),
        count: n,
        zero_results: z,
    };
    assert_eq!(top, [row("network http", 2, 1), row("nothing-here", 1, 1)]);
    let zero = store
        .analytics_searches(T0, T0 + D, true, 10)
        .await
        .unwrap();
    assert_eq!(zero, [row("network http", 2, 1)]);
    assert_eq!(
        store.analytics_search_days(T0, T0 + 2 * D).await.unwrap(),
        [(T0, 3), (T0 + D, 1)]
    );

    // At most MAX_QUERIES_PER_DAY distinct queries a day; the rest count as "(other)".
    let day = T0 + 10 * D;
    let many: Vec<_> = (0..agora_core::analytics::MAX_QUERIES_PER_DAY + 3)
        .map(|i| search(&format!("q{i}"), 1, day))
        .collect();
    store.record_events(day, &many).await.unwrap();
    store
        .record_events(day, &[search("q0", 0, day), search("late-new", 0, day)])
        .await
        .unwrap();
    let top = store
        .analytics_searches(day, day + D, false, 2)
        .await
        .unwrap();
    assert_eq!(top, [row("(other)", 4, 1), row("q0", 2, 1)]);

    // Retention: raw events and hourly rollups go, daily ones stay.
    let pruned = store
        .prune_analytics(T0 + 100 * D, u64::MAX / 2, T0 + 2 * H + 1, None)
        .await
        .unwrap();
    assert_eq!(
        pruned.events,
        111 + agora_core::analytics::MAX_QUERIES_PER_DAY as u64 + 5
    );
    assert_eq!(pruned.hourly, 2);
    assert_eq!(store.analytics_event_count().await.unwrap(), 0);
    let daily_after = store
        .analytics_counts(
            AnalyticsFilter::Registry,
            "day",
            T0,
            T0 + 2 * D,
            AnalyticsGrouping::Version,
        )
        .await
        .unwrap();
    assert_eq!(daily_after, daily);
}

/// Instances' reports: installs and removals are the differences between an instance's
/// reports; runs count once per batch number (a report sent twice counts once), with
/// their duration histogram and errors by class (first and last seen, the last sample,
/// bounded classes); instances running plugins together are paired; a tenant sees its own.
async fn instance_reports_count_installs_removals_and_runs_once(store: &SqlStore) {
    let w = world(store).await;
    for (name, version) in [("jira", "1.0.0"), ("jira", "1.1.0"), ("wiki", "2.0.0")] {
        release(
            store,
            &w,
            manifest("acme", name, version, ""),
            name.as_bytes(),
        )
        .await
        .unwrap();
    }
    let ops = store
        .create_tenant(&new_tenant("ops", &w.alice))
        .await
        .unwrap();
    let dev = store
        .create_tenant(&new_tenant("dev", &w.alice))
        .await
        .unwrap();
    let i1 = store
        .create_instance(ops.id, "i1", "h1", "alice")
        .await
        .unwrap();
    let i2 = store
        .create_instance(ops.id, "i2", "h2", "alice")
        .await
        .unwrap();
    let i3 = store
        .create_instance(dev.id, "i3", "h3", "alice")
        .await
        .unwrap();
    let installed = |list: &[(&str, &str)]| -> Vec<InstalledRecord> {
        list.iter()
            .map(|(name, version)| InstalledRecord {
                publisher: "acme".into(),
                name: (*name).into(),
                version: (*version).into(),
            })
            .collect()
    };
    let runs = |version: &str,
                at: i64,
                calls: u64,
                failures: u64,
                errors: Vec<(String, u64, Option<String>)>| {
        let mut durations = vec![0u64; agora_core::analytics::DURATION_SLOTS];
        durations[0] = calls - failures;
        durations[6] = failures;
        RunsRecord {
            publisher: "acme".into(),
            name: "jira".into(),
            version: version.into(),
            digest: None,
            at,
            calls,
            failures,
            total_ms: calls * 10,
            durations,
            errors,
        }
    };
    let report = |instance: &InstanceRecord,
                  tenant: i64,
                  at: i64,
                  set: &[(&str, &str)],
                  batch: Option<i64>,
                  r: Vec<RunsRecord>| InstanceAnalytics {
        instance_id: instance.id,
        tenant_id: tenant,
        at,
        installed: installed(set),
        batch,
        runs: r,
    };
    let trap = |n: u64, m: &str| vec![("trap".to_owned(), n, Some(m.to_owned()))];
    let first = report(
        &i1,
        ops.id,
        T0 + H,
        &[("jira", "1.0.0")],
        Some(1),
        vec![runs("1.0.0", T0 + H, 10, 2, trap(2, "first trap"))],
    );
    let got = store.record_instance_analytics(&first).await.unwrap();
    assert_eq!(
        got,
        InstanceAnalyticsOutcome {
            installs: 1,
            removals: 0,
            runs: 1,
            unknown: 0
        }
    );
    // The same report again (a retry): nothing new.
    let again = store.record_instance_analytics(&first).await.unwrap();
    assert_eq!(again, InstanceAnalyticsOutcome::default());
    // An update to 1.1.0, with late runs of 1.0.0 (from before) and new runs of 1.1.0.
    let second = report(
        &i1,
        ops.id,
        T0 + 3 * H,
        &[("jira", "1.1.0"), ("gone", "9.9.9")],
        Some(2),
        vec![
            runs("1.0.0", T0 + H / 2, 4, 1, trap(1, "second trap")),
            runs("1.1.0", T0 + 3 * H, 6, 0, vec![]),
        ],
    );
    let got = store.record_instance_analytics(&second).await.unwrap();
    assert_eq!(
        got,
        InstanceAnalyticsOutcome {
            installs: 1,
            removals: 1,
            runs: 2,
            unknown: 1
        }
    );
    let other = report(
        &i2,
        ops.id,
        T0 + 4 * H,
        &[("jira", "1.1.0"), ("wiki", "2.0.0")],
        None,
        vec![],
    );
    store.record_instance_analytics(&other).await.unwrap();
    let elsewhere = report(
        &i3,
        dev.id,
        T0 + 4 * H,
        &[("jira", "1.1.0"), ("wiki", "2.0.0")],
        Some(7),
        vec![runs("1.1.0", T0 + 4 * H, 100, 50, vec![])],
    );
    store.record_instance_analytics(&elsewhere).await.unwrap();

    let ops_daily = store
        .analytics_counts(
            AnalyticsFilter::Tenant(ops.id),
            "day",
            T0,
            T0 + D,
            AnalyticsGrouping::Version,
        )
        .await
        .unwrap();
    let mut run_10 = count(T0, "run", "acme/jira", "1.0.0", 14);
    run_10.failures = 3;
    run_10.total_ms = 140;
    let mut run_11 = count(T0, "run", "acme/jira", "1.1.0", 6);
    run_11.total_ms = 60;
    assert_eq!(
        ops_daily,
        [
            count(T0, "install", "acme/jira", "1.0.0", 1),
            count(T0, "install", "acme/jira", "1.1.0", 2),
            count(T0, "install", "acme/wiki", "2.0.0", 1),
            count(T0, "removal", "acme/jira", "1.0.0", 1),
            run_10,
            run_11,
        ]
    );
    let hourly_runs: Vec<_> = store
        .analytics_counts(
            AnalyticsFilter::Tenant(ops.id),
            "hour",
            T0,
            T0 + D,
            AnalyticsGrouping::Total,
        )
        .await
        .unwrap()
        .into_iter()
        .filter(|c| c.kind == "run")
        .map(|c| (c.bucket, c.count, c.failures))
        .collect();
    assert_eq!(
        hourly_runs,
        [(T0, 4, 1), (T0 + H, 10, 2), (T0 + 3 * H, 6, 0)]
    );

    let versions = store
        .analytics_versions(AnalyticsFilter::Tenant(ops.id), T0, T0 + D, 10)
        .await
        .unwrap();
    let summary: Vec<_> = versions
        .iter()
        .map(|v| {
            (
                v.plugin.as_str(),
                v.version.as_str(),
                v.installs,
                v.removals,
                v.calls,
                v.failures,
                v.active_instances,
                v.durations[0],
                v.durations[6],
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("acme/jira", "1.0.0", 1, 1, 14, 3, 0, 11, 3),
            ("acme/jira", "1.1.0", 2, 0, 6, 0, 2, 6, 0),
            ("acme/wiki", "2.0.0", 1, 0, 0, 0, 1, 0, 0),
        ]
    );
    let jira = store.plugin("acme", "jira").await.unwrap().unwrap();
    let everyone = store
        .analytics_versions(AnalyticsFilter::Plugin(jira.id), T0, T0 + D, 10)
        .await
        .unwrap();
    let jira_11 = everyone.iter().find(|v| v.version == "1.1.0").unwrap();
    assert_eq!(
        (jira_11.calls, jira_11.failures, jira_11.active_instances),
        (106, 50, 3)
    );

    let errors = store
        .analytics_errors(AnalyticsFilter::Tenant(ops.id), T0, 10)
        .await
        .unwrap();
    assert_eq!(
        errors,
        [ErrorRecord {
            plugin: "acme/jira".into(),
            version: "1.0.0".into(),
            class: "trap".into(),
            count: 3,
            first_seen: T0 + H / 2,
            last_seen: T0 + H,
            sample: Some("first trap".into()),
        }]
    );
    assert!(
        store
            .analytics_errors(AnalyticsFilter::Tenant(dev.id), T0, 10)
            .await
            .unwrap()
            .is_empty()
    );

    let pairs = store
        .analytics_pairs(AnalyticsFilter::Registry, 10)
        .await
        .unwrap();
    assert_eq!(pairs, [("acme/jira".to_owned(), "acme/wiki".to_owned(), 2)]);
    let ops_pairs = store
        .analytics_pairs(AnalyticsFilter::Tenant(ops.id), 10)
        .await
        .unwrap();
    assert_eq!(
        ops_pairs,
        [("acme/jira".to_owned(), "acme/wiki".to_owned(), 1)]
    );
    assert_eq!(store.analytics_active_instances(jira.id).await.unwrap(), 3);
    store.revoke_instance(dev.id, "i3", "alice").await.unwrap();
    assert_eq!(store.analytics_active_instances(jira.id).await.unwrap(), 2);

    // Error classes are bounded per version and tenant; the rest count as one "other".
    let classes: Vec<_> = (0..agora_core::analytics::MAX_ERROR_CLASSES + 2)
        .map(|i| (format!("c{i}"), 1, None))
        .collect();
    let flood = report(
        &i1,
        ops.id,
        T0 + 5 * H,
        &[("jira", "1.1.0")],
        Some(3),
        vec![runs("1.1.0", T0 + 5 * H, 60, 60, classes)],
    );
    store.record_instance_analytics(&flood).await.unwrap();
    let errors = store
        .analytics_errors(AnalyticsFilter::Tenant(ops.id), T0, 200)
        .await
        .unwrap();
    let of_11: Vec<_> = errors.iter().filter(|e| e.version == "1.1.0").collect();
    assert_eq!(of_11.len(), agora_core::analytics::MAX_ERROR_CLASSES + 1);
    assert!(
        of_11.iter().any(|e| e.class == "other" && e.count == 2),
        "{of_11:?}"
    );
}

async fn tokens_users_and_publishers(store: &SqlStore) {
    let w = world(store).await;
    assert!(matches!(
        store.create_user("alice", Role::User).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store.create_publisher("acme", None, &w.alice).await,
        Err(StoreError::Conflict(_))
    ));
    let bob = store.create_user("bob", Role::User).await.unwrap();
    store
        .add_member(w.acme.id, &bob, "member", "alice")
        .await
        .unwrap();
    let members: Vec<_> = store
        .members(w.acme.id)
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.username, m.role))
        .collect();
    assert_eq!(
        members,
        [
            ("alice".into(), "owner".into()),
            ("bob".into(), "member".into())
        ]
    );
    assert_eq!(
        store.memberships(bob.id).await.unwrap(),
        [(w.acme.id, "acme".to_owned())]
    );

    let t = store
        .create_token(NewToken {
            user_id: bob.id,
            name: "ci".into(),
            hash: "h1".into(),
            prefix: "agora_12".into(),
            scopes: "publish:acme".into(),
            expires_at: None,
            parent_id: None,
        })
        .await
        .unwrap();
    let (found, user) = store.token_by_hash("h1").await.unwrap().unwrap();
    assert_eq!(
        (found.id, user.username.as_str(), user.role),
        (t.id, "bob", Role::User)
    );
    assert!(store.token_by_hash("nope").await.unwrap().is_none());
    assert!(
        !store.revoke_token(t.id, Some(w.alice.id), 1).await.unwrap(),
        "not alice's token"
    );
    assert!(store.revoke_token(t.id, Some(bob.id), 1).await.unwrap());
    assert_eq!(
        store
            .token_by_hash("h1")
            .await
            .unwrap()
            .unwrap()
            .0
            .revoked_at,
        Some(1)
    );
    assert_eq!(store.list_tokens(Some(bob.id)).await.unwrap().len(), 1);
}

async fn keys_are_added_listed_and_revoked_once(store: &SqlStore) {
    let w = world(store).await;
    let key = |id: &str| KeyRecord {
        id: id.into(),
        algorithm: "ed25519".into(),
        public_key: format!("ssh-ed25519 AAAA{id}"),
        comment: Some("laptop".into()),
        created_at: 1,
        created_by: "alice".into(),
        revoked_at: None,
        revoked_by: None,
        revocation_reason: None,
        log_index: None,
        revoked_log_index: None,
    };
    store
        .add_key(w.acme.id, &key("SHA256:one"), None)
        .await
        .unwrap();
    store
        .add_key(w.acme.id, &key("SHA256:two"), None)
        .await
        .unwrap();
    assert!(matches!(
        store.add_key(w.acme.id, &key("SHA256:one"), None).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(
        store
            .revoke_key(
                w.acme.id,
                "SHA256:one",
                "alice",
                Some("laptop stolen"),
                5,
                None
            )
            .await
            .unwrap()
    );
    assert!(
        !store
            .revoke_key(w.acme.id, "SHA256:one", "alice", None, 6, None)
            .await
            .unwrap(),
        "already revoked"
    );
    assert!(
        !store
            .revoke_key(w.acme.id, "SHA256:nope", "alice", None, 6, None)
            .await
            .unwrap()
    );
    let keys = store.keys(w.acme.id).await.unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(
        (keys[0].revoked_at, keys[0].revocation_reason.as_deref()),
        (Some(5), Some("laptop stolen"))
    );
    assert_eq!(keys[1].revoked_at, None);
    let audit = store.audit_events(Some("acme"), 10).await.unwrap();
    assert!(audit.iter().any(|a| a.action == "key.revoke"));
}

async fn reviews_are_one_per_user_editable_and_hidden_ones_leave_the_rating(store: &SqlStore) {
    let w = world(store).await;
    let v = release(store, &w, manifest("acme", "jira", "1.0.0", ""), b"a")
        .await
        .unwrap();
    let bob = store.create_user("bob", Role::User).await.unwrap();
    let review = |user: &UserRecord, rating: i64, body: &str| NewReview {
        plugin_id: v.plugin_id,
        user_id: user.id,
        version: "1.0.0".into(),
        rating,
        body: body.into(),
        actor: user.username.clone(),
    };
    let first = store.upsert_review(review(&bob, 2, "meh")).await.unwrap();
    let edited = store
        .upsert_review(review(&bob, 5, "great after all"))
        .await
        .unwrap();
    assert_eq!(
        first.id, edited.id,
        "a second review by one user replaces the first"
    );
    assert_eq!(
        (edited.rating, edited.body.as_str()),
        (5, "great after all")
    );
    store
        .upsert_review(review(&w.alice, 3, "fine"))
        .await
        .unwrap();

    let plugin = store.plugin("acme", "jira").await.unwrap().unwrap();
    assert_eq!((plugin.rating_count, plugin.rating_sum), (2, 8));
    assert_eq!(plugin.rating(), Some(4.0));
    assert_eq!(plugin.rating_rank, rating_rank(2, 8));
    assert_eq!(
        store.reviews(v.plugin_id, false, 10).await.unwrap().len(),
        2
    );

    // Hiding takes the review out of the list and the rating, with the reason kept.
    assert!(
        store
            .hide_review(edited.id, Some("spam"), "admin")
            .await
            .unwrap()
    );
    let plugin = store.plugin("acme", "jira").await.unwrap().unwrap();
    assert_eq!((plugin.rating_count, plugin.rating_sum), (1, 3));
    let visible = store.reviews(v.plugin_id, false, 10).await.unwrap();
    assert_eq!(visible.len(), 1);
    assert_eq!(visible[0].username, "alice");
    let all = store.reviews(v.plugin_id, true, 10).await.unwrap();
    let hidden = all.iter().find(|r| r.username == "bob").unwrap();
    assert_eq!(hidden.hidden_reason.as_deref(), Some("spam"));
    assert_eq!(hidden.hidden_by.as_deref(), Some("admin"));
    assert!(store.hide_review(edited.id, None, "admin").await.unwrap());
    let plugin = store.plugin("acme", "jira").await.unwrap().unwrap();
    assert_eq!(plugin.rating_count, 2);
    assert!(!store.hide_review(9999, Some("x"), "admin").await.unwrap());
    assert_eq!(
        store
            .review_of(v.plugin_id, bob.id)
            .await
            .unwrap()
            .unwrap()
            .id,
        edited.id
    );
    let events = store.audit_events(Some("acme/jira"), 20).await.unwrap();
    assert!(events.iter().any(|e| e.action == "review.hide"));

    // An out-of-range rating is refused by the database too, and changes nothing.
    assert!(store.upsert_review(review(&bob, 6, "x")).await.is_err());
    let plugin = store.plugin("acme", "jira").await.unwrap().unwrap();
    assert_eq!((plugin.rating_count, plugin.rating_sum), (2, 8));
}

async fn facets_count_hits_and_new_filters_narrow_them(store: &SqlStore) {
    let w = world(store).await;
    for (name, extra, module) in [
        (
            "jira",
            "tags: [tickets]\ncategories: [ticketing]\nprovider: atlassian\ncompatibility: { min_core: 2.0.0 }\n",
            b"a",
        ),
        (
            "slack",
            "tags: [chat]\ncategories: [messaging]\nprovider: slack\n",
            b"b",
        ),
        (
            "teams",
            "tags: [chat]\ncategories: [messaging]\nprovider: microsoft\ncompatibility: { min_core: 3.1.0 }\n",
            b"c",
        ),
    ] {
        release(store, &w, manifest("acme", name, "1.0.0", extra), module)
            .await
            .unwrap();
    }
    let other = store.create_user("olga", Role::Publisher).await.unwrap();
    let globex = store
        .create_publisher("globex", None, &other)
        .await
        .unwrap();
    let facets = store.facets(&query(None)).await.unwrap();
    assert_eq!(facets.total, 3);
    assert_eq!(
        facets.categories,
        [("messaging".to_owned(), 2), ("ticketing".to_owned(), 1)]
    );
    assert_eq!(facets.tags[0], ("chat".to_owned(), 2));
    assert_eq!(facets.runtimes, [("wasm".to_owned(), 3)]);
    assert_eq!(facets.providers.len(), 3);
    assert_eq!(facets.verified, 0);
    assert!(facets.ratings.is_empty());

    // Counts follow the filters and the text.
    let mut q = query(Some("plugin"));
    q.tag = Some("chat".into());
    let facets = store.facets(&q).await.unwrap();
    assert_eq!(facets.total, 2);
    assert_eq!(facets.categories, [("messaging".to_owned(), 2)]);

    // Compatibility: a plugin without min_core runs anywhere.
    let mut q = query(None);
    q.sort = SearchSort::Name;
    q.compatible_with = Some(semver::Version::new(2, 5, 0));
    assert_eq!(names(&store.search(&q).await.unwrap()), ["jira", "slack"]);
    q.compatible_with = Some(semver::Version::new(1, 0, 0));
    assert_eq!(names(&store.search(&q).await.unwrap()), ["slack"]);
    assert_eq!(store.facets(&q).await.unwrap().total, 1);

    // Verification marks the publisher's plugins, present and future.
    store
        .set_publisher_verified(w.acme.id, true, "admin")
        .await
        .unwrap();
    let mut q = query(None);
    q.verified = true;
    assert_eq!(store.search(&q).await.unwrap().plugins.len(), 3);
    assert_eq!(store.facets(&query(None)).await.unwrap().verified, 3);
    let acme = store.publisher_by_name("acme").await.unwrap().unwrap();
    assert!(acme.verified_at.is_some());
    let mut q = query(None);
    q.publisher = Some("globex".into());
    assert!(store.search(&q).await.unwrap().plugins.is_empty());
    store
        .set_publisher_verified(w.acme.id, false, "admin")
        .await
        .unwrap();
    let mut q = query(None);
    q.verified = true;
    assert!(store.search(&q).await.unwrap().plugins.is_empty());
    store
        .set_publisher_contacts(
            globex.id,
            Some("ops@globex.test"),
            Some("https://globex.test"),
            "olga",
        )
        .await
        .unwrap();
    let globex = store.publisher_by_name("globex").await.unwrap().unwrap();
    assert_eq!(globex.email.as_deref(), Some("ops@globex.test"));

    // Ratings: filter by minimum average, sort by the Bayesian rank, boost relevance.
    let bob = store.create_user("bob", Role::User).await.unwrap();
    for (name, rating) in [("teams", 5), ("slack", 2)] {
        let p = store.plugin("acme", name).await.unwrap().unwrap();
        store
            .upsert_review(NewReview {
                plugin_id: p.id,
                user_id: bob.id,
                version: "1.0.0".into(),
                rating,
                body: String::new(),
                actor: "bob".into(),
            })
            .await
            .unwrap();
    }
    let mut q = query(None);
    q.min_rating = Some(4);
    assert_eq!(names(&store.search(&q).await.unwrap()), ["teams"]);
    let facets = store.facets(&query(None)).await.unwrap();
    assert_eq!(facets.ratings, [(4, 1), (3, 1), (2, 2), (1, 2)]);
    let mut q = query(None);
    q.sort = SearchSort::Rating;
    q.limit = 1;
    let first = store.search(&q).await.unwrap();
    assert_eq!(names(&first), ["teams"]);
    q.after = first.next;
    assert_eq!(
        names(&store.search(&q).await.unwrap()),
        ["jira"],
        "unrated (3.0) before 2 stars"
    );
    assert_eq!(
        names(&store.search(&query(Some("chat"))).await.unwrap()),
        ["teams", "slack"],
        "equal text matches: the better rated first"
    );
}

async fn sessions_and_passwords(store: &SqlStore) {
    let w = world(store).await;
    let (user, hash) = store.user_credentials("alice").await.unwrap().unwrap();
    assert_eq!(user.id, w.alice.id);
    assert_eq!(hash, None);
    store
        .set_password(w.alice.id, Some("$argon2id$fake"), "alice")
        .await
        .unwrap();
    let (_, hash) = store.user_credentials("alice").await.unwrap().unwrap();
    assert_eq!(hash.as_deref(), Some("$argon2id$fake"));
    assert!(store.user_credentials("nobody").await.unwrap().is_none());

    let far = now_ms() + 60_000;
    store
        .create_session("h1", w.alice.id, "csrf1", far)
        .await
        .unwrap();
    let (session, user) = store.session("h1").await.unwrap().unwrap();
    assert_eq!(
        (session.csrf.as_str(), user.username.as_str()),
        ("csrf1", "alice")
    );
    store
        .create_session("h2", w.alice.id, "csrf2", now_ms() - 1)
        .await
        .unwrap();
    assert!(store.session("h2").await.unwrap().is_none(), "expired");
    store.delete_session("h1").await.unwrap();
    assert!(store.session("h1").await.unwrap().is_none());
    // A password change ends every session of the user.
    store
        .create_session("h3", w.alice.id, "csrf3", far)
        .await
        .unwrap();
    store
        .set_password(w.alice.id, Some("$argon2id$other"), "alice")
        .await
        .unwrap();
    assert!(store.session("h3").await.unwrap().is_none());
}

/// Rate-limit counts from concurrent replicas add up exactly per window, are read back
/// with the previous window's, and old windows are pruned; sign-in failures count, start
/// over once forgotten, and stay bounded with the busiest kept.
async fn limit_counts_add_up_across_writers_and_stay_bounded(store: &SqlStore) {
    let key = |i: usize| format!("reads:a:192.0.2.{i}");
    assert!(
        store
            .add_request_counts(600, 540, &[])
            .await
            .unwrap()
            .is_empty()
    );
    store
        .add_request_counts(540, 480, &[(key(1), 4)])
        .await
        .unwrap();
    let batch: Vec<(String, u64)> = (0..50).map(|i| (key(i), 1)).collect();
    let (a, b) = tokio::join!(
        store.add_request_counts(600, 540, &batch),
        store.add_request_counts(600, 540, &batch)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.len(), 50);
    // Whichever committed second saw both.
    let last = if a[1].current == 2 { &a } else { &b };
    assert!(last.iter().all(|t| t.current == 2), "{last:?}");
    assert_eq!(last[1].previous, 4);
    assert_eq!(last[2].previous, 0);
    // A zero count only reads.
    let read = store
        .add_request_counts(600, 540, &[(key(1), 0), ("searches:t:ab".into(), 0)])
        .await
        .unwrap();
    assert_eq!(
        read,
        vec![
            WindowTotals {
                previous: 4,
                current: 2
            },
            WindowTotals::default()
        ]
    );
    assert_eq!(store.prune_request_counts(600).await.unwrap(), 1);
    let too_many: Vec<(String, u64)> = (0..MAX_COUNT_KEYS + 1)
        .map(|i| (i.to_string(), 1))
        .collect();
    assert!(matches!(
        store.add_request_counts(600, 540, &too_many).await,
        Err(StoreError::Conflict(_))
    ));

    let keys = |k: &str| vec![k.to_owned()];
    for t in [1_000, 2_000, 3_000] {
        store
            .record_sign_in_failure(&["p:a".into(), "c:a".into()], t, 10_000, 100)
            .await
            .unwrap();
    }
    let found = store
        .sign_in_failures(&["p:a".into(), "c:a".into(), "c:none".into()])
        .await
        .unwrap();
    assert_eq!(
        found[0],
        Some(SignInFailures {
            count: 3,
            last_at: 3_000
        })
    );
    assert_eq!(found[2], None);
    // Forgotten after 10 s without a failure: the next one starts again from one.
    store
        .record_sign_in_failure(&keys("p:a"), 13_000, 10_000, 100)
        .await
        .unwrap();
    assert_eq!(
        store.sign_in_failures(&keys("p:a")).await.unwrap()[0],
        Some(SignInFailures {
            count: 1,
            last_at: 13_000
        })
    );
    // c:a (last failure at 3 s) was forgotten by that record.
    assert_eq!(store.sign_in_failures(&keys("c:a")).await.unwrap()[0], None);
    store.clear_sign_in_failure("p:a", "c:none").await.unwrap();
    assert_eq!(store.sign_in_failures(&keys("p:a")).await.unwrap()[0], None);
    // Bounded, the busiest kept.
    for _ in 0..5 {
        store
            .record_sign_in_failure(&keys("c:busy"), 20_000, 10_000, 10)
            .await
            .unwrap();
    }
    for i in 0..30 {
        store
            .record_sign_in_failure(&keys(&format!("c:junk{i}")), 20_000, 10_000, 10)
            .await
            .unwrap();
    }
    assert_eq!(
        store.sign_in_failures(&keys("c:busy")).await.unwrap()[0].map(|f| f.count),
        Some(5)
    );
    let junk: Vec<String> = (0..30).map(|i| format!("c:junk{i}")).collect();
    assert_eq!(
        store
            .sign_in_failures(&junk)
            .await
            .unwrap()
            .iter()
            .flatten()
            .count(),
        9
    );
}

macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite { $( #[tokio::test] async fn $name() { let b = super::sqlite().await; super::$name(&b.store).await; b.finish().await; } )* }
        mod on_postgres { $( #[tokio::test] async fn $name() { let b = super::postgres().await; super::$name(&b.store).await; b.finish().await; } )* }
    };
}

on_every_backend!(
    publishing_creates_the_plugin_its_version_and_artifacts,
    publishing_an_existing_version_is_a_conflict_and_changes_nothing,
    versions_are_ordered_by_semver_and_latest_skips_prereleases_and_yanks,
    search_matches_text_and_every_filter,
    search_text_with_query_syntax_and_sql_is_harmless,
    cursors_page_through_every_result_once,
    private_plugins_are_invisible_to_outsiders,
    removal_orphans_only_unshared_blobs,
    downloads_are_counted_per_version_and_plugin,
    event_rollups_add_up_exactly_late_and_concurrent,
    limit_counts_add_up_across_writers_and_stay_bounded,
    instance_reports_count_installs_removals_and_runs_once,
    tokens_users_and_publishers,
    keys_are_added_listed_and_revoked_once,
    log_entries_are_appended_with_their_changes_and_dense,
    reviews_are_one_per_user_editable_and_hidden_ones_leave_the_rating,
    facets_count_hits_and_new_filters_narrow_them,
    sessions_and_passwords,
    revoking_a_token_revokes_what_it_minted,
    publishers_keep_an_owner_and_invitations_are_bounded,
    blob_uploaders_are_recorded_per_user,
    private_plugins_are_found_only_by_who_may_see_them,
    private_entries_are_sealed_and_name_their_plugin,
    a_release_signed_by_a_key_revoked_meanwhile_is_refused,
    concurrent_publishes_with_mixed_visibility_all_succeed,
    text_the_database_cannot_store_is_an_invalid_text_error,
    label_filters_read_the_labels_in_one_pass,
    label_filters_follow_the_listed_version,
    a_broad_text_search_considers_only_the_newest_matches,
    listings_carry_the_listed_state_and_insiders_see_unlisted_plugins,
    jobs_are_claimed_once_retried_with_backoff_and_reclaimed_after_their_lease,
    a_burst_of_jobs_claimed_by_racing_workers_runs_each_exactly_once,
    the_verdict_follows_the_latest_version_and_the_queue_holds_newest_runs,
    advisories_are_kept_by_modified_and_find_the_releases_using_their_packages,
    tenants_keep_an_administrator_and_their_instances_credentials,
    pin_changes_are_one_sealed_log_entry_each_and_bounded,
    entitled_tenants_see_a_private_plugin_and_grants_are_audited,
    gc_marks_yield_to_every_use_and_deletions_to_nothing,
    blob_references_page_through_each_kind,
);

/// `plugins.latest_verification` is the newest run's outcome of the latest version, kept
/// in step by runs, reviews and changes of the latest version; search filters and counts
/// on it; the review queue lists each version once, by its newest run, newest first.
async fn the_verdict_follows_the_latest_version_and_the_queue_holds_newest_runs(store: &SqlStore) {
    let w = world(store).await;
    let v1 = release(store, &w, manifest("acme", "jira", "1.0.0", ""), b"1")
        .await
        .unwrap();
    release(store, &w, manifest("acme", "slack", "1.0.0", ""), b"s")
        .await
        .unwrap();
    let verdict = |name: &'static str| async move {
        store
            .plugin("acme", name)
            .await
            .unwrap()
            .unwrap()
            .latest_verification
    };
    assert_eq!(verdict("jira").await, None, "not checked yet");
    let stamp = store.catalog_stamp().await.unwrap();
    store
        .record_verification(v1.id, "needs-review", "{}", 1, Some(&noting("verdict")))
        .await
        .unwrap();
    let last_entry = || async {
        let entries = store.log_entries(0, 1000).await.unwrap();
        entries.last().unwrap().body.clone()
    };
    assert!(
        last_entry().await.starts_with("verdict @"),
        "the verdict is logged with the run"
    );
    assert!(
        store.catalog_stamp().await.unwrap() > stamp,
        "a run changes the catalog's stamp"
    );
    use agora_core::verification::Outcome;
    assert_eq!(verdict("jira").await, Some(Outcome::NeedsReview));
    store
        .record_review(
            v1.id,
            "verified",
            "{}",
            2,
            "admin",
            "acme/jira@1.0.0",
            "fine",
            Some(&noting("review")),
        )
        .await
        .unwrap();
    assert!(last_entry().await.starts_with("review @"));
    assert_eq!(verdict("jira").await, Some(Outcome::Verified));
    let only_verified = SearchQuery {
        verified_release: true,
        ..query(None)
    };
    assert_eq!(
        names(&store.search(&only_verified).await.unwrap()),
        ["jira"]
    );
    assert_eq!(
        store.facets(&query(None)).await.unwrap().verified_releases,
        1
    );

    // A newer version has no run yet: the verdict goes; yanked, the old one comes back.
    let v2 = release(store, &w, manifest("acme", "jira", "2.0.0", ""), b"2")
        .await
        .unwrap();
    assert_eq!(verdict("jira").await, None);
    assert!(
        store
            .search(&only_verified)
            .await
            .unwrap()
            .plugins
            .is_empty()
    );
    store
        .record_verification(v2.id, "rejected", "{}", 3, None)
        .await
        .unwrap();
    assert_eq!(verdict("jira").await, Some(Outcome::Rejected));
    store
        .set_lifecycle(LifecycleChange {
            version_id: v2.id,
            state: Lifecycle::Yanked,
            reason: Some("bad".into()),
            replacement: None,
            actor: "alice".into(),
            log_entry: None,
        })
        .await
        .unwrap();
    assert_eq!(verdict("jira").await, Some(Outcome::Verified));

    // The queue: newest run per version with the outcome, newest first, paged by run id.
    let slack = store.plugin("acme", "slack").await.unwrap().unwrap();
    let s1 = store.version(slack.id, "1.0.0").await.unwrap().unwrap();
    store
        .record_verification(s1.id, "needs-review", "{\"r\":1}", 4, None)
        .await
        .unwrap();
    let queue = store
        .verification_queue("needs-review", None, 10)
        .await
        .unwrap();
    let releases: Vec<_> = queue
        .iter()
        .map(|q| format!("{}/{}@{}", q.publisher, q.name, q.version))
        .collect();
    assert_eq!(
        releases,
        ["acme/slack@1.0.0"],
        "jira 1.0.0 was decided since"
    );
    assert_eq!(queue[0].run.report, "{\"r\":1}");
    store
        .record_verification(v2.id, "needs-review", "{}", 5, None)
        .await
        .unwrap();
    let first = store
        .verification_queue("needs-review", None, 1)
        .await
        .unwrap();
    assert_eq!(first[0].version, "2.0.0", "newest first");
    let rest = store
        .verification_queue("needs-review", Some(first[0].run.id), 10)
        .await
        .unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].name, "slack");
    let verified = store
        .verification_queue("verified", None, 10)
        .await
        .unwrap();
    assert_eq!(verified.len(), 1);
    assert_eq!(verified[0].version, "1.0.0");
}

/// The job queue's life cycle: one open job per subject, one holder at a time, retries
/// after a growing wait, a lost lease changes nothing, spent attempts fail for good.
async fn jobs_are_claimed_once_retried_with_backoff_and_reclaimed_after_their_lease(
    store: &SqlStore,
) {
    let id = store
        .enqueue_job("verify", "acme/jira@1.0.0", 3)
        .await
        .unwrap();
    assert_eq!(
        store
            .enqueue_job("verify", "acme/jira@1.0.0", 3)
            .await
            .unwrap(),
        id,
        "an open job is not queued twice"
    );
    let a = store
        .claim_job("a", &["verify"], 60_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (a.id, a.attempt, a.subject.as_str()),
        (id, 1, "acme/jira@1.0.0")
    );
    assert!(
        store.claim_job("b", &[], 60_000).await.unwrap().is_none(),
        "held"
    );
    assert!(
        store
            .claim_job("b", &["other"], 60_000)
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.extend_job_lease(&a, 60_000).await.unwrap());

    // A failure queues it again after the backoff; not due yet, so nobody gets it.
    let before = agora_store::now_ms();
    let Retry::At(at) = store.fail_job(&a, "storage timed out").await.unwrap() else {
        panic!("a first failure is retried");
    };
    assert!(at >= before + backoff_ms(1), "{at} vs {before}");
    assert!(
        store.claim_job("b", &[], 60_000).await.unwrap().is_none(),
        "not due"
    );
    let record = store.job(id).await.unwrap().unwrap();
    assert_eq!(record.state, "queued");
    assert_eq!(record.last_error.as_deref(), Some("storage timed out"));
    assert!(
        !store.complete_job(&a).await.unwrap(),
        "the old claim ended with the failure"
    );

    // A worker that stops answering loses its lease; another takes the job over, and the
    // first can no longer end it.
    let stuck = store
        .enqueue_job("verify", "acme/wiki@2.0.0", 3)
        .await
        .unwrap();
    let first = store.claim_job("a", &[], 1).await.unwrap().unwrap();
    assert_eq!(first.id, stuck);
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let second = store.claim_job("b", &[], 60_000).await.unwrap().unwrap();
    assert_eq!((second.id, second.attempt), (stuck, 2));
    assert!(!store.complete_job(&first).await.unwrap());
    assert_eq!(
        store.fail_job(&first, "late").await.unwrap(),
        Retry::LeaseLost
    );
    assert!(!store.extend_job_lease(&first, 60_000).await.unwrap());
    assert!(store.complete_job(&second).await.unwrap());
    let done = store.job(stuck).await.unwrap().unwrap();
    assert_eq!((done.state.as_str(), done.attempts), ("done", 2));
    assert!(done.finished_at.is_some());

    // Once done, the same subject can be queued again (a re-check).
    assert_ne!(
        store
            .enqueue_job("verify", "acme/wiki@2.0.0", 3)
            .await
            .unwrap(),
        stuck
    );

    // Spent attempts: failed for good, with the last error.
    let once = store.enqueue_job("notify", "hook-1", 1).await.unwrap();
    let job = store
        .claim_job("a", &["notify"], 60_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.id, once);
    assert_eq!(
        store.fail_job(&job, "refused").await.unwrap(),
        Retry::GaveUp
    );
    let failed = store.job(once).await.unwrap().unwrap();
    assert_eq!(failed.state, "failed");
    assert!(
        store
            .claim_job("a", &["notify"], 60_000)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(store.jobs("notify", 10).await.unwrap().len(), 1);
    assert_eq!(backoff_ms(1), 2_000);
    assert_eq!(backoff_ms(2), 4_000);
    assert_eq!(backoff_ms(40), 3_600_000);
}

/// 200 jobs, four workers claiming at once (on PostgreSQL over separate connections):
/// every job is run by exactly one of them, exactly once.
async fn a_burst_of_jobs_claimed_by_racing_workers_runs_each_exactly_once(store: &SqlStore) {
    for i in 0..200 {
        store
            .enqueue_job("verify", &format!("acme/p{i}@1.0.0"), 3)
            .await
            .unwrap();
    }
    let mut workers = Vec::new();
    for w in 0..4 {
        let store = store.clone();
        workers.push(tokio::spawn(async move {
            let name = format!("worker-{w}");
            let mut ran = Vec::new();
            while let Some(job) = store.claim_job(&name, &["verify"], 60_000).await.unwrap() {
                assert!(store.complete_job(&job).await.unwrap());
                ran.push(job.id);
            }
            ran
        }));
    }
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await.unwrap());
    }
    let total = all.len();
    all.sort();
    all.dedup();
    assert_eq!((total, all.len()), (200, 200), "each job once, none missed");
    let jobs = store.jobs("verify", 1000).await.unwrap();
    assert!(jobs.iter().all(|j| j.state == "done" && j.attempts == 1));
}

/// A listing names the version it comes from and its state; a plugin with no version a
/// range can choose (every one yanked or insecure) is left out of search, but its
/// publisher's insiders still get it, and nobody gets one whose versions were removed.
async fn listings_carry_the_listed_state_and_insiders_see_unlisted_plugins(store: &SqlStore) {
    let w = world(store).await;
    let set = |id, state, reason: &str| LifecycleChange {
        version_id: id,
        state,
        reason: Some(reason.to_owned()),
        replacement: None,
        actor: "alice".into(),
        log_entry: None,
    };
    release(store, &w, manifest("acme", "jira", "1.0.0", ""), b"j1")
        .await
        .unwrap();
    let j2 = release(store, &w, manifest("acme", "jira", "1.1.0", ""), b"j2")
        .await
        .unwrap();
    store
        .set_lifecycle(set(j2.id, Lifecycle::Deprecated, "use jira-cloud"))
        .await
        .unwrap();
    let old = release(store, &w, manifest("acme", "old", "0.1.0", ""), b"o1")
        .await
        .unwrap();
    store
        .set_lifecycle(set(old.id, Lifecycle::Yanked, "broken"))
        .await
        .unwrap();
    let gone = release(store, &w, manifest("acme", "gone", "0.1.0", ""), b"g1")
        .await
        .unwrap();
    store
        .set_lifecycle(set(gone.id, Lifecycle::Removed, "malware"))
        .await
        .unwrap();

    let hits = store.search(&query(None)).await.unwrap();
    assert_eq!(
        names(&hits),
        ["jira"],
        "yanked-only and removed plugins are not listed"
    );
    assert_eq!(hits.plugins[0].listed_version.as_deref(), Some("1.1.0"));
    assert_eq!(hits.plugins[0].listed_state, Some(Lifecycle::Deprecated));
    let p = store.plugin("acme", "old").await.unwrap().unwrap();
    assert_eq!(p.latest_version, None);
    assert_eq!(
        (p.listed_version.as_deref(), p.listed_state),
        (Some("0.1.0"), Some(Lifecycle::Yanked))
    );

    let anonymous = Viewer::anonymous();
    let member = Viewer {
        admin: false,
        private_publishers: vec![w.acme.id],
        ..Viewer::default()
    };
    let admin = Viewer {
        admin: true,
        private_publishers: vec![],
        ..Viewer::default()
    };
    let outsider = Viewer {
        admin: false,
        private_publishers: vec![w.acme.id + 1000],
        ..Viewer::default()
    };
    for viewer in [&anonymous, &outsider] {
        let none = store
            .unlisted_plugins(w.acme.id, viewer, 100)
            .await
            .unwrap();
        assert!(none.is_empty(), "{viewer:?} sees {none:?}");
    }
    for viewer in [&member, &admin] {
        let unlisted = store
            .unlisted_plugins(w.acme.id, viewer, 100)
            .await
            .unwrap();
        let found: Vec<_> = unlisted
            .iter()
            .map(|p| (p.name.as_str(), p.listed_state))
            .collect();
        assert_eq!(found, [("old", Some(Lifecycle::Yanked))], "{viewer:?}");
    }
}

/// acme/scanner at `version` with `labels` (manifest lines), published.
async fn scanner(
    store: &SqlStore,
    w: &World,
    version: &str,
    labels: &str,
    module: &[u8],
) -> VersionRecord {
    release(
        store,
        w,
        manifest("acme", "scanner", version, labels),
        module,
    )
    .await
    .unwrap()
}

/// Two label filters as two subqueries let a planner with stale statistics join the label
/// sets to each other (9 s at 100,000 plugins on PostgreSQL); they are read in one pass,
/// whatever the statistics say.
async fn label_filters_read_the_labels_in_one_pass(store: &SqlStore) {
    let w = world(store).await;
    scanner(
        store,
        &w,
        "1.0.0",
        "tags: [http]\ncategories: [security]\n",
        b"s",
    )
    .await;
    // The test database is new: no statistics at all, the planner's worst guess.
    let mut q = query(Some("scanner"));
    q.tag = Some("http".into());
    q.category = Some("security".into());
    assert_eq!(names(&store.search(&q).await.unwrap()), ["scanner"]);
    q.category = Some("ticketing".into());
    assert!(
        store.search(&q).await.unwrap().plugins.is_empty(),
        "both must hold"
    );
    q.category = Some("security".into());
    let plan = store.explain_search(&q).await.unwrap();
    match store.dialect() {
        // The plugin row's label array answers: no second table, no join.
        Dialect::Postgres => assert!(
            plan.iter()
                .all(|line| !line.contains("plugin_labels") && !line.contains("Nested Loop")),
            "{plan:#?}"
        ),
        Dialect::Sqlite => {
            let label_reads = plan.iter().filter(|l| l.contains("SUBQUERY")).count();
            assert_eq!(label_reads, 1, "{plan:#?}");
        }
    }
}

/// A plugin's labels are those of its listed version: a new version's labels replace the
/// old ones in filters and facet counts, and yanking it brings the old ones back.
async fn label_filters_follow_the_listed_version(store: &SqlStore) {
    let w = world(store).await;
    let v1 = scanner(
        store,
        &w,
        "1.0.0",
        "tags: [http]\ncategories: [security]\n",
        b"s1",
    )
    .await;
    let v2 = scanner(
        store,
        &w,
        "2.0.0",
        "tags: [grpc, http-2]\ncategories: [security]\n",
        b"s2",
    )
    .await;
    let found = |tag: &str| {
        let mut q = query(None);
        q.tag = Some(tag.into());
        q.category = Some("security".into());
        async move { names(&store.search(&q).await.unwrap()) }
    };
    assert!(found("http").await.is_empty(), "the old version's tag");
    assert_eq!(found("grpc").await, ["scanner"]);
    assert_eq!(
        found("http-2").await,
        ["scanner"],
        "every tag of the listed version"
    );
    let facets = store.facets(&query(None)).await.unwrap();
    assert_eq!(
        facets.tags,
        [("grpc".to_owned(), 1), ("http-2".to_owned(), 1)]
    );
    assert_eq!(facets.categories, [("security".to_owned(), 1)]);

    let yank = |version_id| LifecycleChange {
        version_id,
        state: Lifecycle::Yanked,
        reason: Some("broken".into()),
        replacement: None,
        actor: "alice".into(),
        log_entry: None,
    };
    store.set_lifecycle(yank(v2.id)).await.unwrap();
    assert_eq!(found("http").await, ["scanner"], "back to 1.0.0's labels");
    assert!(found("grpc").await.is_empty());
    store.set_lifecycle(yank(v1.id)).await.unwrap();
    assert!(found("http").await.is_empty(), "nothing listed");
    assert_eq!(store.facets(&query(None)).await.unwrap().total, 0);
}

async fn a_broad_text_search_considers_only_the_newest_matches(store: &SqlStore) {
    let w = world(store).await;
    for i in 0..5 {
        release(
            store,
            &w,
            manifest("acme", &format!("common-{i}"), "1.0.0", ""),
            format!("{i}").as_bytes(),
        )
        .await
        .unwrap();
    }
    let mut q = query(Some("common"));
    q.sort = SearchSort::Name;
    q.max_matches = 3;
    // The three most recently added matches, ranked and counted; the page says so.
    assert_eq!(
        names(&store.search(&q).await.unwrap()),
        ["common-2", "common-3", "common-4"]
    );
    let facets = store.facets(&q).await.unwrap();
    assert_eq!((facets.total, facets.capped), (3, true));
    q.max_matches = 10;
    let facets = store.facets(&q).await.unwrap();
    assert_eq!((facets.total, facets.capped), (5, false));
    // Without text nothing is capped: filters alone are exact.
    let mut all = query(None);
    all.max_matches = 3;
    assert_eq!(store.facets(&all).await.unwrap().total, 5);
}

async fn revoking_a_token_revokes_what_it_minted(store: &SqlStore) {
    let w = world(store).await;
    let token = |hash: &str, parent: Option<i64>| NewToken {
        user_id: w.alice.id,
        name: hash.into(),
        hash: hash.into(),
        prefix: "agora_x".into(),
        scopes: "publish:acme".into(),
        expires_at: None,
        parent_id: parent,
    };
    let root = store.create_token(token("root", None)).await.unwrap();
    let child = store
        .create_token(token("child", Some(root.id)))
        .await
        .unwrap();
    let grandchild = store
        .create_token(token("grandchild", Some(child.id)))
        .await
        .unwrap();
    let other = store.create_token(token("other", None)).await.unwrap();
    assert_eq!(grandchild.parent_id, Some(child.id));
    assert!(
        store
            .revoke_token(child.id, Some(w.alice.id), 7)
            .await
            .unwrap()
    );
    let revoked = |hash: &'static str| async move {
        store
            .token_by_hash(hash)
            .await
            .unwrap()
            .unwrap()
            .0
            .revoked_at
    };
    assert_eq!(revoked("child").await, Some(7));
    assert_eq!(
        revoked("grandchild").await,
        Some(7),
        "revoked with its parent"
    );
    assert_eq!(revoked("root").await, None, "the parent lives on");
    assert_eq!(revoked("other").await, None);
    // Tokens revoked long ago (at 7 ms after the epoch here) go when the user makes a new
    // one: creating and revoking in a loop cannot grow the table.
    store.create_token(token("next", None)).await.unwrap();
    assert!(store.token_by_hash("child").await.unwrap().is_none());
    assert!(store.token_by_hash("grandchild").await.unwrap().is_none());
    assert!(store.token_by_hash("root").await.unwrap().is_some());
    let _ = (root, other);
}

async fn publishers_keep_an_owner_and_invitations_are_bounded(store: &SqlStore) {
    let w = world(store).await;
    let bob = store.create_user("bob", Role::User).await.unwrap();
    let last_owner = store
        .change_member(w.acme.id, "alice", MemberChange::Remove, "alice")
        .await;
    assert!(
        matches!(last_owner, Err(StoreError::Conflict(_))),
        "{last_owner:?}"
    );
    assert!(matches!(
        store
            .change_member(w.acme.id, "alice", MemberChange::Role("member"), "alice")
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store
            .add_member(w.acme.id, &w.alice, "member", "admin")
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert!(
        !store
            .change_member(w.acme.id, "nobody", MemberChange::Remove, "alice")
            .await
            .unwrap()
    );
    // An invitation to any name, bounded per publisher, used up by accepting.
    let now = now_ms();
    let invite = |name: &str, role: &str, expires_at: i64| InvitationRecord {
        publisher: "acme".into(),
        username: name.into(),
        role: role.into(),
        invited_by: "alice".into(),
        created_at: now,
        expires_at,
    };
    store
        .invite_member(&invite("bob", "owner", now + 60_000), w.acme.id, 3)
        .await
        .unwrap();
    store
        .invite_member(&invite("ghost", "member", now + 60_000), w.acme.id, 3)
        .await
        .unwrap();
    store
        .invite_member(&invite("old", "member", now - 1), w.acme.id, 3)
        .await
        .unwrap();
    store
        .invite_member(&invite("carol", "member", now + 60_000), w.acme.id, 3)
        .await
        .expect("the expired invitation does not count");
    assert!(matches!(
        store
            .invite_member(&invite("dave", "member", now + 60_000), w.acme.id, 3)
            .await,
        Err(StoreError::Conflict(_))
    ));
    store
        .invite_member(&invite("bob", "owner", now + 90_000), w.acme.id, 3)
        .await
        .expect("inviting the same name again replaces its invitation");
    let mine = store.invitations(None, Some("bob")).await.unwrap();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].expires_at, now + 90_000);
    assert_eq!(
        store
            .invitations(Some(w.acme.id), None)
            .await
            .unwrap()
            .len(),
        3
    );
    assert_eq!(
        store.accept_invitation(w.acme.id, &bob).await.unwrap(),
        Some("owner".to_owned())
    );
    assert_eq!(
        store.accept_invitation(w.acme.id, &bob).await.unwrap(),
        None,
        "used up"
    );
    // With a second owner, the first may go.
    assert!(
        store
            .change_member(w.acme.id, "alice", MemberChange::Remove, "alice")
            .await
            .unwrap()
    );
    assert!(
        store
            .cancel_invitation(w.acme.id, "ghost", "bob")
            .await
            .unwrap()
    );
    assert!(
        !store
            .cancel_invitation(w.acme.id, "ghost", "bob")
            .await
            .unwrap()
    );
}

async fn blob_uploaders_are_recorded_per_user(store: &SqlStore) {
    let w = world(store).await;
    let bob = store.create_user("bob", Role::Publisher).await.unwrap();
    let d = Digest::of(b"bytes");
    store.record_blob(&d, 5, w.alice.id).await.unwrap();
    assert_eq!(
        store.blob_uploaded_by(&d, w.alice.id).await.unwrap(),
        Some(5)
    );
    assert_eq!(store.blob_uploaded_by(&d, bob.id).await.unwrap(), None);
    assert_eq!(
        store.blob_size(&d).await.unwrap(),
        Some(5),
        "it exists all the same"
    );
    store.record_blob(&d, 5, bob.id).await.unwrap();
    assert_eq!(store.blob_uploaded_by(&d, bob.id).await.unwrap(), Some(5));
    assert_eq!(
        store.blob_uploaded_by(&d, w.alice.id).await.unwrap(),
        Some(5)
    );
}

async fn private_plugins_are_found_only_by_who_may_see_them(store: &SqlStore) {
    let w = world(store).await;
    release(
        store,
        &w,
        manifest(
            "acme",
            "secret",
            "1.0.0",
            "visibility: private
",
        ),
        b"s",
    )
    .await
    .unwrap();
    let member = Viewer {
        admin: false,
        private_publishers: vec![w.acme.id],
        ..Viewer::default()
    };
    let admin = Viewer {
        admin: true,
        private_publishers: vec![],
        ..Viewer::default()
    };
    let anonymous = Viewer::anonymous();
    let found = store
        .visible_plugin("acme", "secret", &member)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.name, "secret");
    let sees = |name: &'static str, viewer: &Viewer| {
        let viewer = viewer.clone();
        async move {
            store
                .visible_plugin("acme", name, &viewer)
                .await
                .unwrap()
                .is_some()
        }
    };
    assert!(sees("secret", &admin).await);
    assert!(!sees("secret", &anonymous).await, "as if it did not exist");
    assert!(!sees("nothing", &member).await);
    assert!(store.plugin_visible_to(found.id, &member).await.unwrap());
    assert!(!store.plugin_visible_to(found.id, &anonymous).await.unwrap());
    assert!(
        !store
            .plugin_visible_to(found.id + 1000, &admin)
            .await
            .unwrap()
    );
}

async fn private_entries_are_sealed_and_name_their_plugin(store: &SqlStore) {
    let w = world(store).await;
    let publish = |name: &str, extra: &str, version: &str| NewRelease {
        publisher_id: w.acme.id,
        manifest: manifest("acme", name, version, extra),
        manifest_digest: Digest::of(version.as_bytes()),
        signature: None,
        signer_key: None,
        log_entry: Some(noting(name)),
        artifacts: vec![],
        published_by: w.alice.id,
        actor: "alice".into(),
        jobs: Vec::new(),
    };
    store.publish(publish("open", "", "1.0.0")).await.unwrap();
    store
        .publish(publish("secret", "visibility: private\n", "1.0.0"))
        .await
        .unwrap();
    // A later release without the field keeps the plugin private, and sealed.
    store.publish(publish("secret", "", "1.1.0")).await.unwrap();
    let secret = store.plugin("acme", "secret").await.unwrap().unwrap();
    let entries = store.log_entries(0, 10).await.unwrap();
    assert!(entries[0].body.ends_with("public") && entries[0].opening.is_none());
    for e in &entries[1..3] {
        assert!(e.body.ends_with("private"), "{e:?}");
        assert_eq!(e.opening.as_deref(), Some("opening of secret"));
        assert_eq!(e.plugin_id, Some(secret.id));
    }
    // Lifecycle and visibility changes are logged too, sealed while private.
    let v = store.version(secret.id, "1.0.0").await.unwrap().unwrap();
    store
        .set_lifecycle(LifecycleChange {
            version_id: v.id,
            state: Lifecycle::Yanked,
            reason: Some("broken".into()),
            replacement: None,
            actor: "alice".into(),
            log_entry: Some(noting("yank")),
        })
        .await
        .unwrap();
    store
        .set_visibility(
            secret.id,
            Visibility::Public,
            "alice",
            Some(noting("public")),
        )
        .await
        .unwrap();
    let entries = store.log_entries(3, 10).await.unwrap();
    assert!(entries[0].body.starts_with("yank") && entries[0].body.ends_with("private"));
    assert!(entries[1].body.starts_with("public") && entries[1].body.ends_with("public"));
    assert_eq!(entries[1].plugin_id, Some(secret.id));
}

async fn a_release_signed_by_a_key_revoked_meanwhile_is_refused(store: &SqlStore) {
    let w = world(store).await;
    let key = KeyRecord {
        id: "SHA256:k".into(),
        algorithm: "ed25519".into(),
        public_key: "ssh-ed25519 AAAA".into(),
        comment: None,
        created_at: 1,
        created_by: "alice".into(),
        revoked_at: None,
        revoked_by: None,
        revocation_reason: None,
        log_index: None,
        revoked_log_index: None,
    };
    store.add_key(w.acme.id, &key, None).await.unwrap();
    let signed = |version: &str, signer: &str| NewRelease {
        publisher_id: w.acme.id,
        manifest: manifest("acme", "widget", version, ""),
        manifest_digest: Digest::of(version.as_bytes()),
        signature: None,
        signer_key: Some(signer.into()),
        log_entry: Some(noting(version)),
        artifacts: vec![],
        published_by: w.alice.id,
        actor: "alice".into(),
        jobs: Vec::new(),
    };
    store.publish(signed("1.0.0", "SHA256:k")).await.unwrap();
    store
        .revoke_key(w.acme.id, "SHA256:k", "alice", None, 2, None)
        .await
        .unwrap();
    let refused = store.publish(signed("1.1.0", "SHA256:k")).await;
    assert!(
        matches!(refused, Err(StoreError::Conflict(_))),
        "{refused:?}"
    );
    let unknown = store.publish(signed("1.2.0", "SHA256:never")).await;
    assert!(
        matches!(unknown, Err(StoreError::Conflict(_))),
        "{unknown:?}"
    );
    assert_eq!(
        store.log_entries(0, 10).await.unwrap().len(),
        1,
        "nothing logged"
    );
}

/// Public and private releases of one plugin at once: each transaction takes the log's
/// lock before any row (one lock order), and a lost race is retried, never an error.
async fn concurrent_publishes_with_mixed_visibility_all_succeed(store: &SqlStore) {
    let w = world(store).await;
    let mut tasks = Vec::new();
    for i in 0..24 {
        let store = store.clone();
        let extra = if i % 2 == 0 {
            "visibility: private\n"
        } else {
            ""
        };
        let release = NewRelease {
            publisher_id: w.acme.id,
            manifest: manifest("acme", "racer", &format!("1.0.{i}"), extra),
            manifest_digest: Digest::of(format!("{i}").as_bytes()),
            signature: None,
            signer_key: None,
            log_entry: Some(noting("race")),
            artifacts: vec![],
            published_by: w.alice.id,
            actor: "alice".into(),
            jobs: Vec::new(),
        };
        tasks.push(tokio::spawn(async move { store.publish(release).await }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let plugin = store.plugin("acme", "racer").await.unwrap().unwrap();
    assert_eq!(store.versions(plugin.id).await.unwrap().len(), 24);
    let entries = store.log_entries(0, 100).await.unwrap();
    assert_eq!(entries.len(), 24);
    assert!(entries.iter().enumerate().all(|(i, e)| e.index == i as i64));
}

async fn text_the_database_cannot_store_is_an_invalid_text_error(store: &SqlStore) {
    let w = world(store).await;
    // The edges refuse control characters first; should one get through, PostgreSQL's
    // refusal of NUL is a typed error (a 422), not a database failure (a 500). SQLite
    // stores it, which is why the edges check.
    match store.create_publisher("a\u{0}b", None, &w.alice).await {
        Err(StoreError::InvalidText) => assert_eq!(store.dialect(), Dialect::Postgres),
        Ok(_) => assert_eq!(store.dialect(), Dialect::Sqlite),
        Err(other) => panic!("{other}"),
    }
}

/// Entries written before digests were stored (migration 0018) give their bodies, until
/// their digests are filled in; on both engines.
#[tokio::test]
async fn entries_stored_before_digests_give_their_bodies_until_filled() {
    for b in [sqlite().await, postgres().await] {
        let w = world(&b.store).await;
        for label in ["one", "two", "three"] {
            b.store
                .publish(NewRelease {
                    publisher_id: w.acme.id,
                    manifest: manifest("acme", label, "1.0.0", ""),
                    manifest_digest: Digest::of(label.as_bytes()),
                    signature: None,
                    signer_key: None,
                    log_entry: Some(noting(label)),
                    artifacts: vec![],
                    published_by: w.alice.id,
                    actor: "alice".into(),
                    jobs: Vec::new(),
                })
                .await
                .unwrap();
        }
        let raw = b.raw(&[]).await;
        let stored = b.store.log_leaves(0, 10).await.unwrap();
        sqlx::query("UPDATE log_entries SET leaf = NULL")
            .execute(&raw)
            .await
            .unwrap();
        let entries = b.store.log_entries(0, 10).await.unwrap();
        let bodies: Vec<(i64, LogLeaf)> = entries
            .iter()
            .map(|e| (e.index, LogLeaf::Body(e.body.clone())))
            .collect();
        assert_eq!(b.store.log_leaves(0, 10).await.unwrap(), bodies);
        // Digests as the registry stores them: 64 hex digits each.
        let digest = |c: char| c.to_string().repeat(64);
        let filled = b
            .store
            .fill_log_leaves(&[(0, digest('a')), (2, digest('c'))])
            .await
            .unwrap();
        assert_eq!(filled, 2);
        // Some stored, one not: read row by row.
        assert_eq!(
            b.store.log_leaves(0, 10).await.unwrap(),
            [
                (0, LogLeaf::Digest(digest('a'))),
                bodies[1].clone(),
                (2, LogLeaf::Digest(digest('c')))
            ]
        );
        assert_eq!(
            b.store
                .fill_log_leaves(&[(1, digest('b')), (2, digest('f'))])
                .await
                .unwrap(),
            1,
            "entry 2 keeps its digest"
        );
        // All stored: the batch read packed, the same answer, from any index.
        let all: Vec<(i64, LogLeaf)> = [(0, 'a'), (1, 'b'), (2, 'c')]
            .into_iter()
            .map(|(i, c)| (i, LogLeaf::Digest(digest(c))))
            .collect();
        assert_eq!(b.store.log_leaves(0, 10).await.unwrap(), all);
        assert_eq!(b.store.log_leaves(1, 1).await.unwrap(), all[1..2]);
        assert_eq!(b.store.log_leaves(2, 10).await.unwrap(), all[2..]);
        assert!(b.store.log_leaves(3, 10).await.unwrap().is_empty());
        // Digests that are not 64 hex digits (as the writers of this file's other tests
        // store) come back as stored.
        assert_eq!(stored.len(), 3);
        assert!(
            stored
                .iter()
                .all(|(_, l)| matches!(l, LogLeaf::Digest(d) if d.starts_with("leaf("))),
            "{stored:?}"
        );
        // A missing entry is not papered over: the reader sees the gap.
        sqlx::query("DELETE FROM log_entries WHERE idx = 1")
            .execute(&raw)
            .await
            .unwrap();
        raw.close().await;
        let indexes: Vec<i64> = b
            .store
            .log_leaves(0, 10)
            .await
            .unwrap()
            .iter()
            .map(|(i, _)| *i)
            .collect();
        assert_eq!(indexes, [0, 2]);
        b.finish().await;
    }
}

/// PostgreSQL's search plans with statistics of a real catalog: 20,000 plugins, a word
/// on 10% of them, ten categories and thirty tags. Before the label array, label filters
/// were a `GROUP BY ... HAVING COUNT(*) = n` subquery the planner guessed at 12 plugins
/// where 9,969 matched (at 100,000), and it looped over the plugins one index lookup at a
/// time: 94 ms for a narrow search, 2 s for one shape before that. Every shape the catalog
/// serves must read the plugins in one pass (no nested loop, no plugin_labels) and find
/// exactly what a plain scan finds.
#[tokio::test]
async fn postgres_search_plans_hold_at_scale() {
    let b = postgres().await;
    let w = world(&b.store).await;
    let words = "ARRAY['network','scanner','ticket','cloud','storage','metrics','alert','deploy','backup','secret']";
    let categories = "ARRAY['ticketing','monitoring','security','storage','messaging','ci','analytics','networking','data','testing']";
    let tags = "ARRAY['http','grpc','json','yaml','cli','sdk','webhook','oauth','rest','graphql','kafka','nats','redis','postgres','mysql','s3','gcs','blob','queue','cron','etl','pdf','csv','xml','ldap','saml','sso','vpn','dns','tls']";
    // What refresh_plugin writes for a listed plugin, in bulk (a release each would take
    // minutes): the row with its label array, and the same labels in plugin_labels.
    let seed = format!(
        "INSERT INTO plugins (publisher_id, publisher, name, visibility, display_name, description, \
         provider, runtime, keywords, latest_version, created_at, updated_at, downloads, labels) \
         SELECT {publisher}, 'acme', 'gen-' || g, 'public', 'gen-' || g, \
         ({words})[1 + g % 10] || ' ' || ({words})[1 + (g / 10) % 10] || ' plugin w' || (g % 997), \
         'aws', (ARRAY['wasm','exec','oci'])[1 + (g / 3) % 3], '', '1.0.0', g, g, (g * 7919) % 100000, \
         ARRAY['category:' || ({categories})[1 + (g / 7) % 10], 'tag:' || ({tags})[1 + g % 30], \
         'tag:' || ({tags})[1 + (g / 30 + 1 + g) % 30]] \
         FROM generate_series(1, 20000) AS g",
        publisher = w.acme.id
    );
    let raw = b
        .raw(&[
            seed.as_str(),
            "INSERT INTO plugin_labels (plugin_id, kind, value) \
             SELECT DISTINCT id, split_part(l, ':', 1), substr(l, strpos(l, ':') + 1) \
             FROM plugins CROSS JOIN LATERAL unnest(labels) AS l",
            "ANALYZE",
        ])
        .await;
    let count = |condition: &str| {
        let sql = format!(
            "SELECT COUNT(*) FROM plugins p WHERE latest_version IS NOT NULL AND {condition}"
        );
        let raw = raw.clone();
        async move {
            sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql))
                .fetch_one(&raw)
                .await
                .unwrap()
        }
    };
    let labelled = |category: &str, tag: Option<&str>| {
        let mut c = format!(
            "EXISTS (SELECT 1 FROM plugin_labels l WHERE l.plugin_id = p.id AND l.kind = 'category' AND l.value = '{category}')"
        );
        if let Some(tag) = tag {
            c += &format!(
                " AND EXISTS (SELECT 1 FROM plugin_labels l WHERE l.plugin_id = p.id AND l.kind = 'tag' AND l.value = '{tag}')"
            );
        }
        c
    };
    let search = |text: Option<&str>, category: &str, tag: Option<&str>, runtime: Option<&str>| {
        let mut q = query(text);
        q.category = (!category.is_empty()).then(|| category.to_owned());
        q.tag = tag.map(str::to_owned);
        q.runtime = runtime.map(str::to_owned);
        q
    };
    let shapes = [
        (
            "narrow",
            search(Some("network scanner"), "security", None, Some("wasm")),
            format!(
                "description LIKE '%network%' AND description LIKE '%scanner%' AND runtime = 'wasm' AND {}",
                labelled("security", None)
            ),
        ),
        (
            "word",
            search(Some("network"), "", None, None),
            "description LIKE '%network%'".to_owned(),
        ),
        (
            "word and filters",
            search(Some("network"), "security", Some("http"), None),
            format!(
                "description LIKE '%network%' AND {}",
                labelled("security", Some("http"))
            ),
        ),
        (
            "filters alone",
            search(None, "security", Some("http"), None),
            labelled("security", Some("http")),
        ),
        (
            "category alone",
            search(None, "ci", None, None),
            labelled("ci", None),
        ),
    ];
    for (shape, q, condition) in shapes {
        let plan = b.store.explain_search(&q).await.unwrap();
        assert!(
            plan.iter()
                .all(|line| !line.contains("Nested Loop") && !line.contains("plugin_labels")),
            "{shape}: {plan:#?}"
        );
        let expected = count(&condition).await;
        assert!(expected > 0, "{shape}: the seed must match something");
        let facets = b.store.facets(&q).await.unwrap();
        assert_eq!(facets.total, expected.min(q.max_matches), "{shape}");
        if let Some(category) = &q.category {
            assert_eq!(
                facets.categories,
                [(category.clone(), facets.total)],
                "{shape}"
            );
        }
    }
    raw.close().await;
    b.finish().await;
}

/// A runtime filter with a sort walks the sort order's index on SQLite. Taking the
/// equality on `runtime` (a third of the catalog each) for a selective one, SQLite sorted
/// 33,000 rows for the page at 100,000 plugins (17 ms) instead of reading the downloads
/// index until the page was full (1 ms); it does so with statistics gathered too.
#[tokio::test]
async fn sqlite_runtime_filter_searches_walk_the_sort_index() {
    let b = sqlite().await;
    let w = world(&b.store).await;
    let seed = format!(
        "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 30000) \
         INSERT INTO plugins (publisher_id, publisher, name, visibility, display_name, description, \
         runtime, keywords, latest_version, created_at, updated_at, downloads) \
         SELECT {publisher}, 'acme', 'gen-' || n, 'public', 'gen-' || n, 'plugin ' || n, \
         CASE n % 3 WHEN 0 THEN 'wasm' WHEN 1 THEN 'exec' ELSE 'oci' END, '', '1.0.0', n, n, \
         (n * 7919) % 100000 FROM g",
        publisher = w.acme.id
    );
    b.raw(&[seed.as_str(), "ANALYZE"]).await.close().await;
    // Opened after ANALYZE: its connections plan with the statistics.
    let store = SqlStore::connect(&b.url()).await.unwrap();
    for sort in [SearchSort::Downloads, SearchSort::Name, SearchSort::Recent] {
        let mut q = query(None);
        q.runtime = Some("wasm".into());
        q.sort = sort;
        let plan = store.explain_search(&q).await.unwrap();
        assert!(
            !plan.iter().any(|l| l.contains("TEMP B-TREE")),
            "{sort:?}: {plan:#?}"
        );
        let page = store.search(&q).await.unwrap();
        assert_eq!(page.plugins.len(), 20, "{sort:?}");
        assert!(page.plugins.iter().all(|p| p.runtime == "wasm"));
    }
    store.close().await;
    b.finish().await;
}

/// Every column of every table a publish writes (ids and timestamps aside), one line per
/// row, sorted: what [`bulk_loads_store_what_publishes_store`] compares.
async fn dump(b: &Backend, table: &str) -> Vec<String> {
    let raw = b.raw(&[]).await;
    let columns_sql = match b.cleanup {
        Some(_) => format!(
            "SELECT CAST(column_name AS TEXT) FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = '{table}'"
        ),
        None => format!("SELECT name FROM pragma_table_info('{table}')"),
    };
    let columns: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(columns_sql))
        .fetch_all(&raw)
        .await
        .unwrap();
    let kept: Vec<String> = columns
        .iter()
        .filter(|c| !["id", "at", "created_at", "updated_at", "published_at"].contains(&c.as_str()))
        .map(|c| format!("'{c}=' || COALESCE(CAST({c} AS TEXT), 'NULL')"))
        .collect();
    assert!(kept.len() > 1, "{table}: {columns:?}");
    let sql = format!("SELECT {} FROM {table}", kept.join(" || ' ' || "));
    let mut rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .fetch_all(&raw)
        .await
        .unwrap();
    raw.close().await;
    rows.sort();
    rows
}

/// Bulk loading (how `agora-bench seed --bulk` fills a catalog of a million plugins) must
/// leave the database exactly as publishing the same releases one by one does, or the
/// benchmarks measure another catalog; and it is all or nothing.
async fn bulk_loads_store_what_publishes_store(one: Backend, bulk: Backend) {
    let releases = |w: &World| {
        (0..60)
            .map(|i| {
                let mut extra = format!(
                    "tags: [t{}, t{}]\ncategories: [c{}]\n",
                    i % 5,
                    5 + i % 3,
                    i % 4
                );
                if i % 5 == 0 {
                    extra += "provider: aws\n";
                }
                if i % 7 == 0 {
                    extra += "visibility: private\n";
                }
                if i % 6 == 0 {
                    extra += "dependencies: { acme/gen-1: ^1.0 }\ncapabilities: [outbound_http]\n\
                              network: { outbound_hosts: [a.example] }\n";
                }
                if i % 9 == 0 {
                    extra += "compatibility: { min_core: 2.1.0 }\n";
                }
                let version = if i % 11 == 0 { "0.9.0-beta.1" } else { "1.0.0" };
                let module = format!("module {i}");
                new_release(
                    w,
                    manifest("acme", &format!("gen-{i}"), version, &extra),
                    module.as_bytes(),
                )
            })
            .collect::<Vec<_>>()
    };
    let mut worlds = Vec::new();
    for b in [&one, &bulk] {
        let w = world(&b.store).await;
        b.raw(&["UPDATE publishers SET verified_at = 1"])
            .await
            .close()
            .await;
        worlds.push(w);
    }
    for r in releases(&worlds[0]) {
        one.store.publish(r).await.unwrap();
    }
    assert_eq!(
        bulk.store
            .publish_bulk(&releases(&worlds[1]))
            .await
            .unwrap(),
        60
    );
    for table in [
        "plugins",
        "versions",
        "artifacts",
        "dependencies",
        "plugin_labels",
        "audit_events",
    ] {
        let (a, b) = (dump(&one, table).await, dump(&bulk, table).await);
        assert!(!a.is_empty(), "{table}");
        assert_eq!(a, b, "{table}");
    }
    for text in [Some("gen"), Some("aws"), Some("t1"), None] {
        for category in [None, Some("c2")] {
            let mut q = query(text);
            q.category = category.map(str::to_owned);
            q.viewer.admin = true;
            assert_eq!(
                names(&one.store.search(&q).await.unwrap()),
                names(&bulk.store.search(&q).await.unwrap()),
                "{text:?} {category:?}"
            );
        }
    }
    // All or nothing: a batch with a plugin that exists stores none of the new ones.
    let w = &worlds[1];
    let batch = [
        new_release(w, manifest("acme", "fresh", "1.0.0", ""), b"f"),
        new_release(w, manifest("acme", "gen-3", "2.0.0", ""), b"g"),
    ];
    let err = bulk.store.publish_bulk(&batch).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict(ref m) if m.contains("first releases of new plugins")),
        "{err}"
    );
    assert!(bulk.store.plugin("acme", "fresh").await.unwrap().is_none());
    let mut logged = new_release(w, manifest("acme", "logged", "1.0.0", ""), b"l");
    logged.log_entry = Some(noting("logged"));
    let mut signed = new_release(w, manifest("acme", "signed", "1.0.0", ""), b"s");
    signed.signature = Some("sig".into());
    signed.signer_key = Some("key".into());
    for refused in [logged, signed] {
        let name = refused.manifest.name.to_string();
        let err = bulk.store.publish_bulk(&[refused]).await.unwrap_err();
        assert!(err.to_string().contains("publish it on its own"), "{err}");
        assert!(bulk.store.plugin("acme", &name).await.unwrap().is_none());
    }
    one.finish().await;
    bulk.finish().await;
}

#[tokio::test]
async fn bulk_loads_store_what_publishes_store_on_sqlite() {
    bulk_loads_store_what_publishes_store(sqlite().await, sqlite().await).await;
}

#[tokio::test]
async fn bulk_loads_store_what_publishes_store_on_postgres() {
    bulk_loads_store_what_publishes_store(postgres().await, postgres().await).await;
}

/// With a text query and filters, the full-text index must drive the query; if SQLite
/// starts from a filter's index instead, it runs the full-text query once per row and a
/// search over 100,000 plugins takes seconds (measured: 27 s instead of 5 ms).
#[tokio::test]
async fn sqlite_text_search_is_driven_by_the_full_text_index() {
    let b = sqlite().await;
    let w = world(&b.store).await;
    release(
        &b.store,
        &w,
        manifest("acme", "jira", "1.0.0", "categories: [ticketing]\n"),
        b"a",
    )
    .await
    .unwrap();
    let mut q = query(Some("network scanner"));
    q.category = Some("security".into());
    q.runtime = Some("wasm".into());
    q.tag = Some("http".into());
    let plan = b.store.explain_search(&q).await.unwrap();
    let first_scan = plan
        .iter()
        .find(|l| l.starts_with("SCAN") || l.starts_with("SEARCH"))
        .unwrap();
    assert!(
        first_scan.contains("plugins_fts"),
        "the plan starts elsewhere: {plan:#?}"
    );
    b.finish().await;
}

async fn log_entries_are_appended_with_their_changes_and_dense(store: &SqlStore) {
    let w = world(store).await;
    let mut m = manifest("acme", "jira", "1.0.0", "");
    let digest = Digest::of(b"m");
    let release = |m: Manifest, entry: &str| NewRelease {
        publisher_id: w.acme.id,
        manifest: m,
        manifest_digest: digest,
        signature: None,
        signer_key: None,
        log_entry: Some(noting(entry)),
        artifacts: vec![],
        published_by: w.alice.id,
        actor: "alice".into(),
        jobs: Vec::new(),
    };
    let v = store
        .publish(release(m.clone(), "release one"))
        .await
        .unwrap();
    assert_eq!(v.log_index, Some(0));
    let key = KeyRecord {
        id: "SHA256:k".into(),
        algorithm: "ed25519".into(),
        public_key: "ssh-ed25519 AAAA".into(),
        comment: None,
        created_at: 1,
        created_by: "alice".into(),
        revoked_at: None,
        revoked_by: None,
        revocation_reason: None,
        log_index: None,
        revoked_log_index: None,
    };
    store
        .add_key(w.acme.id, &key, Some(noting("key added")))
        .await
        .unwrap();
    // A failed change appends nothing: the duplicate version is refused whole.
    assert!(
        store
            .publish(release(m.clone(), "duplicate"))
            .await
            .is_err()
    );
    assert!(
        store
            .add_key(w.acme.id, &key, Some(noting("duplicate key")))
            .await
            .is_err()
    );
    assert!(
        !store
            .revoke_key(
                w.acme.id,
                "SHA256:none",
                "alice",
                None,
                2,
                Some(noting("nothing revoked"))
            )
            .await
            .unwrap()
    );
    store
        .revoke_key(
            w.acme.id,
            "SHA256:k",
            "alice",
            None,
            2,
            Some(noting("key revoked")),
        )
        .await
        .unwrap();
    m.version = semver::Version::new(1, 1, 0);
    assert_eq!(
        store
            .publish(release(m, "release two"))
            .await
            .unwrap()
            .log_index,
        Some(3)
    );
    let entries = store.log_entries(0, 100).await.unwrap();
    let bodies: Vec<_> = entries.iter().map(|r| (r.index, r.body.as_str())).collect();
    // Each entry saw its index and the publisher's key head at that moment: the key
    // events chain, and the second release names the revocation as the head.
    assert_eq!(
        bodies,
        [
            (0, "release one @0 head=- public"),
            (1, "key added @1 head=- public"),
            (
                2,
                "key revoked @2 head=1:leaf(key added @1 head=- public) public"
            ),
            (
                3,
                "release two @3 head=2:leaf(key revoked @2 head=1:leaf(key added @1 head=- public) public) public"
            )
        ]
    );
    // What a tree needs: each entry's digest, written with it; one stored is kept.
    let leaves = store.log_leaves(1, 100).await.unwrap();
    assert_eq!(
        leaves.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(
        leaves[0].1,
        LogLeaf::Digest("leaf(key added @1 head=- public)".into())
    );
    assert_eq!(
        store.fill_log_leaves(&[(1, "other".into())]).await.unwrap(),
        0
    );
    assert_eq!(store.log_leaves(1, 1).await.unwrap(), leaves[..1]);
    let plugin = store.plugin("acme", "jira").await.unwrap().unwrap();
    assert_eq!(
        entries[0].plugin_id,
        Some(plugin.id),
        "releases name their plugin"
    );
    assert_eq!(entries[1].plugin_id, None, "key events belong to no plugin");
    assert_eq!(store.log_entries(2, 1).await.unwrap()[0].index, 2);
    let first = store
        .ensure_log_key("origin-a", "skey-a", "vkey-a")
        .await
        .unwrap();
    let second = store
        .ensure_log_key("origin-b", "skey-b", "vkey-b")
        .await
        .unwrap();
    assert_eq!(first, second, "the first key stays");
}

/// Advisories: an import keeps the newest `modified` of each id (audited); packages find
/// advisories and releases (removed ones left out); the re-check goes only through
/// advisories some release's components name, in id order.
async fn advisories_are_kept_by_modified_and_find_the_releases_using_their_packages(
    store: &SqlStore,
) {
    let w = world(store).await;
    let v1 = release(store, &w, manifest("acme", "jira", "1.0.0", ""), b"1")
        .await
        .unwrap();
    let v2 = release(store, &w, manifest("acme", "jira", "1.1.0", ""), b"2")
        .await
        .unwrap();
    let advisory = |id: &str, modified: &str, packages: &[(&str, &str)]| NewAdvisory {
        record: AdvisoryRecord {
            id: id.into(),
            modified: modified.into(),
            withdrawn: None,
            summary: Some(format!("summary of {id} at {modified}")),
            document: format!("{{\"id\":\"{id}\",\"modified\":\"{modified}\"}}"),
            imported_at: 1,
        },
        packages: packages
            .iter()
            .map(|(e, n)| (e.to_string(), n.to_string()))
            .collect(),
    };
    let first = store
        .import_advisories(
            &[
                advisory(
                    "RUSTSEC-1",
                    "2026-01-01T00:00:00Z",
                    &[("crates.io", "smallvec")],
                ),
                advisory("GHSA-2", "2026-01-01T00:00:00Z", &[("npm", "left-pad")]),
                advisory(
                    "RUSTSEC-3",
                    "2026-01-01T00:00:00Z",
                    &[("crates.io", "unused")],
                ),
            ],
            "admin",
        )
        .await
        .unwrap();
    assert_eq!(first.changed.len(), 3, "{first:?}");
    let again = store
        .import_advisories(
            &[
                advisory(
                    "RUSTSEC-1",
                    "2026-02-01T00:00:00Z",
                    &[("crates.io", "smallvec")],
                ),
                advisory("GHSA-2", "2025-12-01T00:00:00Z", &[("npm", "left-pad")]),
            ],
            "admin",
        )
        .await
        .unwrap();
    assert_eq!(
        again.changed,
        ["RUSTSEC-1"],
        "a newer record replaces the stored one"
    );
    assert_eq!(again.unchanged, ["GHSA-2"], "an older one does not");
    let stored = store.advisory("RUSTSEC-1").await.unwrap().unwrap();
    assert_eq!(stored.modified, "2026-02-01T00:00:00Z");
    assert!(store.advisory("nope").await.unwrap().is_none());

    let component = |name: &str, version: &str| ComponentRecord {
        ecosystem: "crates.io".into(),
        name: name.into(),
        version: version.into(),
        purl: format!("pkg:cargo/{name}@{version}"),
    };
    store
        .set_release_components(v1.id, &[component("smallvec", "1.0.0")])
        .await
        .unwrap();
    store
        .set_release_components(
            v2.id,
            &[component("smallvec", "1.2.0"), component("serde", "1.0.0")],
        )
        .await
        .unwrap();
    let users = store.releases_using("crates.io", "smallvec").await.unwrap();
    let mut found: Vec<(String, String)> = users
        .iter()
        .map(|u| (u.version.clone(), u.component_version.clone()))
        .collect();
    found.sort();
    assert_eq!(
        found,
        [
            ("1.0.0".to_owned(), "1.0.0".to_owned()),
            ("1.1.0".to_owned(), "1.2.0".to_owned())
        ]
    );
    let ids = |records: Vec<AdvisoryRecord>| records.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store
            .advisories_for(&[
                ("crates.io".into(), "smallvec".into()),
                ("npm".into(), "left-pad".into())
            ])
            .await
            .unwrap())
        .len(),
        2
    );
    assert_eq!(
        ids(store.advisories_in_use(None, 10).await.unwrap()),
        ["RUSTSEC-1"],
        "only advisories naming a listed component"
    );
    assert!(
        store
            .advisories_in_use(Some("RUSTSEC-1"), 10)
            .await
            .unwrap()
            .is_empty()
    );
    // Replacing a release's components drops the old ones.
    store
        .set_release_components(v1.id, &[component("serde", "1.0.0")])
        .await
        .unwrap();
    assert_eq!(
        store
            .releases_using("crates.io", "smallvec")
            .await
            .unwrap()
            .len(),
        1
    );
}

fn new_tenant(name: &str, admin: &UserRecord) -> NewTenant {
    NewTenant {
        name: name.into(),
        display_name: Some(format!("The {name} team")),
        policy: "{}".into(),
        admin_user_id: admin.id,
        actor: "root".into(),
    }
}

/// Tenants: names are unique; a tenant always keeps an administrator; the policy bumps the
/// generation; instances are unique by name in their tenant, found by their credential's
/// hash until revoked, and keep their last report. Every change is audited.
async fn tenants_keep_an_administrator_and_their_instances_credentials(store: &SqlStore) {
    let w = world(store).await;
    let bob = store.create_user("bob", Role::User).await.unwrap();
    let ops = store
        .create_tenant(&new_tenant("ops", &w.alice))
        .await
        .unwrap();
    assert_eq!((ops.generation, ops.auto_update), (0, false));
    assert_eq!(ops.display_name.as_deref(), Some("The ops team"));
    assert_eq!(store.tenant("ops").await.unwrap(), Some(ops.clone()));
    assert_eq!(store.tenant("nope").await.unwrap(), None);
    let taken = store.create_tenant(&new_tenant("ops", &bob)).await;
    assert!(matches!(taken, Err(StoreError::Conflict(_))), "{taken:?}");
    let dev = store.create_tenant(&new_tenant("dev", &bob)).await.unwrap();
    assert_eq!(store.tenants(10).await.unwrap(), [dev.clone(), ops.clone()]);
    assert_eq!(store.tenants(1).await.unwrap(), std::slice::from_ref(&dev));
    assert_eq!(
        store.tenants_of(w.alice.id).await.unwrap(),
        [(ops.clone(), "admin".to_owned())]
    );
    let created = store.audit_events(Some("ops"), 10).await.unwrap();
    assert_eq!(
        (created[0].action.as_str(), created[0].target.as_str()),
        ("tenant.create", "ops")
    );

    // Members: the last administrator can be neither removed nor demoted.
    for role in [None, Some("member")] {
        let refused = store
            .set_tenant_member(ops.id, w.alice.id, role, "alice")
            .await;
        match refused {
            Err(StoreError::Conflict(message)) => assert!(message.contains("administrator")),
            other => panic!("{other:?}"),
        }
    }
    assert!(
        store
            .set_tenant_member(ops.id, bob.id, Some("member"), "alice")
            .await
            .unwrap()
    );
    assert!(
        !store
            .set_tenant_member(ops.id, bob.id, Some("member"), "alice")
            .await
            .unwrap(),
        "nothing changed"
    );
    assert_eq!(
        store.tenant_role(ops.id, bob.id).await.unwrap().as_deref(),
        Some("member")
    );
    let members = |list: Vec<TenantMemberRecord>| {
        list.into_iter()
            .map(|m| format!("{}:{}", m.user, m.role))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        members(store.tenant_members(ops.id).await.unwrap()),
        ["alice:admin", "bob:member"]
    );
    assert!(
        store
            .set_tenant_member(ops.id, bob.id, Some("admin"), "alice")
            .await
            .unwrap()
    );
    assert!(
        store
            .set_tenant_member(ops.id, w.alice.id, Some("member"), "bob")
            .await
            .unwrap(),
        "with a second administrator the first may step down"
    );
    assert!(matches!(
        store.set_tenant_member(ops.id, bob.id, None, "bob").await,
        Err(StoreError::Conflict(_))
    ));
    assert!(
        store
            .set_tenant_member(ops.id, w.alice.id, None, "bob")
            .await
            .unwrap()
    );
    assert!(
        !store
            .set_tenant_member(ops.id, w.alice.id, None, "bob")
            .await
            .unwrap()
    );
    assert_eq!(store.tenant_role(ops.id, w.alice.id).await.unwrap(), None);
    assert_eq!(
        members(store.tenant_members(ops.id).await.unwrap()),
        ["bob:admin"]
    );
    let member_events: Vec<_> = store
        .audit_events(Some("ops:"), 10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| {
            assert_eq!(e.action, "tenant.member");
            format!("{} {}", e.target, e.detail.unwrap_or_default())
        })
        .collect();
    assert_eq!(
        member_events,
        [
            "ops:alice removed",
            "ops:alice member",
            "ops:bob admin",
            "ops:bob member"
        ],
        "refusals and no-ops leave no event"
    );

    // The policy.
    let changed = store
        .set_tenant_policy(ops.id, r#"{"mode":"strict"}"#, true, "bob")
        .await
        .unwrap();
    assert_eq!(
        (
            changed.generation,
            changed.auto_update,
            changed.policy.as_str()
        ),
        (1, true, r#"{"mode":"strict"}"#)
    );
    assert_eq!(store.tenant("ops").await.unwrap(), Some(changed.clone()));
    assert_eq!(
        store.audit_events(Some("ops"), 1).await.unwrap()[0].action,
        "tenant.policy"
    );

    // Instances.
    let web = store
        .create_instance(ops.id, "web-1", "hash-1", "bob")
        .await
        .unwrap();
    assert_eq!(
        (web.tenant_id, web.name.as_str(), web.created_by.as_str()),
        (ops.id, "web-1", "bob")
    );
    assert_eq!(
        (web.revoked_at, web.last_seen_at, web.state.as_deref()),
        (None, None, None)
    );
    let taken = store
        .create_instance(ops.id, "web-1", "hash-2", "bob")
        .await;
    assert!(matches!(taken, Err(StoreError::Conflict(_))), "{taken:?}");
    store
        .create_instance(dev.id, "web-1", "hash-3", "bob")
        .await
        .expect("another tenant may use the name");
    let (found, tenant) = store.instance_by_token("hash-1").await.unwrap().unwrap();
    assert_eq!((found, tenant), (web.clone(), changed.clone()));
    assert!(store.instance_by_token("hash-2").await.unwrap().is_none());
    store.touch_instance(web.id, 40).await.unwrap();
    assert_eq!(
        store.instances(ops.id).await.unwrap()[0].last_seen_at,
        Some(40)
    );
    let report = InstanceReportRecord {
        at: 42,
        core_version: "1.2.0".into(),
        runner_version: "0.3.0".into(),
        platform: "linux-x86_64".into(),
        generation: 1,
        state: "failed".into(),
        detail: Some("acme/jira: not allowed".into()),
        report: r#"{"plugins":[]}"#.into(),
    };
    store.record_instance_report(web.id, &report).await.unwrap();
    let [reported] =
        <[InstanceRecord; 1]>::try_from(store.instances(ops.id).await.unwrap()).unwrap();
    assert_eq!(reported.last_seen_at, Some(42));
    assert_eq!(reported.core_version.as_deref(), Some("1.2.0"));
    assert_eq!(reported.runner_version.as_deref(), Some("0.3.0"));
    assert_eq!(reported.platform.as_deref(), Some("linux-x86_64"));
    assert_eq!(reported.generation, Some(1));
    assert_eq!(reported.state.as_deref(), Some("failed"));
    assert_eq!(reported.detail.as_deref(), Some("acme/jira: not allowed"));
    assert_eq!(reported.report.as_deref(), Some(r#"{"plugins":[]}"#));
    assert!(store.revoke_instance(ops.id, "web-1", "bob").await.unwrap());
    assert!(!store.revoke_instance(ops.id, "web-1", "bob").await.unwrap());
    assert!(!store.revoke_instance(ops.id, "nope", "bob").await.unwrap());
    assert!(store.instance_by_token("hash-1").await.unwrap().is_none());
    assert!(
        store.instances(ops.id).await.unwrap()[0]
            .revoked_at
            .is_some()
    );
    assert!(store.instance_by_token("hash-3").await.unwrap().is_some());
    let actions: Vec<_> = store
        .audit_events(Some("ops/web-1"), 10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(actions, ["instance.revoke", "instance.register"]);

    // Two administrators demoting each other at once: one wins, the tenant keeps one.
    assert!(
        store
            .set_tenant_member(dev.id, w.alice.id, Some("admin"), "bob")
            .await
            .unwrap()
    );
    let (first, second) = tokio::join!(
        store.set_tenant_member(dev.id, w.alice.id, Some("member"), "bob"),
        store.set_tenant_member(dev.id, bob.id, Some("member"), "alice"),
    );
    assert!(
        matches!(
            (&first, &second),
            (Ok(true), Err(StoreError::Conflict(_))) | (Err(StoreError::Conflict(_)), Ok(true))
        ),
        "{first:?} {second:?}"
    );
    assert_eq!(
        members(store.tenant_members(dev.id).await.unwrap())
            .iter()
            .filter(|m| m.ends_with(":admin"))
            .count(),
        1
    );
}

/// A pin change as the tests make them: the reach names the version, the audit target is
/// `tenant:publisher/name@version`.
fn pin_change(
    tenant: &TenantRecord,
    plugin: &PluginRecord,
    to: Option<&str>,
    keep_previous: bool,
) -> PinChange {
    let to = to.map(|v| {
        (
            v.to_owned(),
            Digest::of(v.as_bytes()).to_string(),
            format!(r#"{{"runtime":"wasm","v":"{v}"}}"#),
        )
    });
    let version = to.as_ref().map_or("-", |t| t.0.as_str());
    PinChange {
        tenant_id: tenant.id,
        plugin_id: plugin.id,
        audit_target: format!(
            "{}:{}/{}@{version}",
            tenant.name, plugin.publisher, plugin.name
        ),
        audit_detail: Some(if to.is_some() { "approve" } else { "remove" }.into()),
        to,
        keep_previous,
        by: "alice".into(),
    }
}

/// Applies a pin change that must succeed, and checks it appended exactly one log entry
/// (sealed, with no plugin id, its opening stored) and bumped the generation by one.
async fn logged_pin_change(store: &SqlStore, change: &PinChange, label: &str) -> Option<PinRecord> {
    let tenant_id = change.tenant_id;
    let generation = |tenants: Vec<TenantRecord>| {
        tenants
            .into_iter()
            .find(|t| t.id == tenant_id)
            .unwrap()
            .generation
    };
    let before = store.log_entries(0, 1000).await.unwrap().len();
    let generation_before = generation(store.tenants(100).await.unwrap());
    let pin = store.change_pin(change, &noting(label), 10).await.unwrap();
    let entries = store.log_entries(0, 1000).await.unwrap();
    assert_eq!(entries.len(), before + 1, "{label}: one entry");
    let entry = entries.last().unwrap();
    assert_eq!(entry.plugin_id, None, "{label}: no plugin id");
    assert_eq!(entry.opening, Some(format!("opening of {label}")));
    assert!(entry.body.ends_with(" head=- private"), "{}", entry.body);
    assert_eq!(
        generation(store.tenants(100).await.unwrap()),
        generation_before + 1
    );
    if let Some(pin) = &pin {
        assert_eq!(pin.log_index, entry.index);
        assert_eq!(pin.log_opening, entry.opening);
        assert_eq!(pin.approved_by, "alice");
        assert_eq!(
            store
                .pin(pin.tenant_id, pin.plugin_id)
                .await
                .unwrap()
                .as_ref(),
            Some(pin)
        );
    }
    pin
}

/// A tenant's approved set: approve, update (the pin replaced is kept), roll back (which
/// clears it), remove; each change one sealed log entry, one generation, one audit event.
/// A new pin beyond the bound writes nothing at all.
async fn pin_changes_are_one_sealed_log_entry_each_and_bounded(store: &SqlStore) {
    let w = world(store).await;
    for (name, version) in [
        ("jira", "1.0.0"),
        ("jira", "1.1.0"),
        ("slack", "1.0.0"),
        ("alpha", "1.0.0"),
    ] {
        release(
            store,
            &w,
            manifest("acme", name, version, ""),
            name.as_bytes(),
        )
        .await
        .unwrap();
    }
    let plugin = async |name: &str| store.plugin("acme", name).await.unwrap().unwrap();
    let (jira, slack, alpha) = (
        plugin("jira").await,
        plugin("slack").await,
        plugin("alpha").await,
    );
    let ops = store
        .create_tenant(&new_tenant("ops", &w.alice))
        .await
        .unwrap();
    let ops = store
        .set_tenant_policy(ops.id, "{}", true, "alice")
        .await
        .unwrap();
    let dev = store
        .create_tenant(&new_tenant("dev", &w.alice))
        .await
        .unwrap();
    let digest = |v: &str| Digest::of(v.as_bytes()).to_string();
    let reach = |v: &str| format!(r#"{{"runtime":"wasm","v":"{v}"}}"#);

    let approved = logged_pin_change(
        store,
        &pin_change(&ops, &jira, Some("1.0.0"), true),
        "approve",
    )
    .await
    .unwrap();
    assert_eq!(
        (approved.publisher.as_str(), approved.name.as_str()),
        ("acme", "jira")
    );
    assert_eq!(approved.version, "1.0.0");
    assert_eq!(approved.manifest_digest, digest("1.0.0"));
    assert_eq!(approved.reach, reach("1.0.0"));
    assert_eq!(approved.previous, None, "nothing was pinned before");
    let updated = logged_pin_change(
        store,
        &pin_change(&ops, &jira, Some("1.1.0"), true),
        "update",
    )
    .await
    .unwrap();
    assert_eq!(updated.version, "1.1.0");
    assert_eq!(
        updated.previous,
        Some(("1.0.0".into(), digest("1.0.0"), reach("1.0.0"))),
        "the pin replaced is kept for a rollback"
    );
    let rolled_back = logged_pin_change(
        store,
        &pin_change(&ops, &jira, Some("1.0.0"), false),
        "rollback",
    )
    .await
    .unwrap();
    assert_eq!(rolled_back.version, "1.0.0");
    assert_eq!(rolled_back.previous, None, "a rollback clears it");
    assert_eq!(
        store.pins(ops.id).await.unwrap(),
        std::slice::from_ref(&rolled_back)
    );

    // A new pin beyond the bound is refused and writes nothing.
    let entries = store.log_entries(0, 1000).await.unwrap().len();
    let events = store.audit_events(None, 1000).await.unwrap().len();
    let refused = store
        .change_pin(
            &pin_change(&ops, &slack, Some("1.0.0"), true),
            &noting("refused"),
            1,
        )
        .await;
    assert!(
        matches!(refused, Err(StoreError::Conflict(_))),
        "{refused:?}"
    );
    assert_eq!(store.log_entries(0, 1000).await.unwrap().len(), entries);
    assert_eq!(store.audit_events(None, 1000).await.unwrap().len(), events);
    assert_eq!(store.pin(ops.id, slack.id).await.unwrap(), None);
    assert_eq!(store.tenant("ops").await.unwrap().unwrap().generation, 4);
    // Moving an existing pin is no new pin: the bound does not apply.
    store
        .change_pin(
            &pin_change(&ops, &jira, Some("1.1.0"), true),
            &noting("move"),
            1,
        )
        .await
        .unwrap();
    logged_pin_change(
        store,
        &pin_change(&ops, &slack, Some("1.0.0"), true),
        "slack",
    )
    .await;
    logged_pin_change(
        store,
        &pin_change(&ops, &alpha, Some("1.0.0"), true),
        "alpha",
    )
    .await;
    let names: Vec<_> = store
        .pins(ops.id)
        .await
        .unwrap()
        .into_iter()
        .map(|p| format!("{}/{}@{}", p.publisher, p.name, p.version))
        .collect();
    assert_eq!(
        names,
        ["acme/alpha@1.0.0", "acme/jira@1.1.0", "acme/slack@1.0.0"]
    );

    // Only tenants with automatic updates on are asked about a plugin's new releases.
    logged_pin_change(store, &pin_change(&dev, &jira, Some("1.0.0"), true), "dev").await;
    let auto: Vec<_> = store
        .auto_update_pins(jira.id)
        .await
        .unwrap()
        .into_iter()
        .map(|(t, p)| (t.name, p.tenant_id, p.version))
        .collect();
    assert_eq!(auto, [("ops".to_owned(), ops.id, "1.1.0".to_owned())]);

    // Removal.
    assert_eq!(
        logged_pin_change(store, &pin_change(&ops, &jira, None, true), "remove").await,
        None
    );
    assert_eq!(store.pin(ops.id, jira.id).await.unwrap(), None);
    assert!(store.auto_update_pins(jira.id).await.unwrap().is_empty());
    let entries = store.log_entries(0, 1000).await.unwrap().len();
    assert!(matches!(
        store
            .change_pin(&pin_change(&ops, &jira, None, true), &noting("again"), 10)
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(store.log_entries(0, 1000).await.unwrap().len(), entries);
    assert!(
        store
            .log_entries(0, 1000)
            .await
            .unwrap()
            .iter()
            .all(|e| e.plugin_id.is_none() && e.opening.is_some())
    );

    // One audit event per change, with the caller's target and detail.
    let pin_events: Vec<_> = store
        .audit_events(Some("ops:acme/jira@"), 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| {
            assert_eq!(
                (e.action.as_str(), e.actor.as_str()),
                ("tenant.pin", "alice")
            );
            format!("{} {}", e.target, e.detail.unwrap_or_default())
        })
        .collect();
    assert_eq!(
        pin_events,
        [
            "ops:acme/jira@- remove",
            "ops:acme/jira@1.1.0 approve",
            "ops:acme/jira@1.0.0 approve",
            "ops:acme/jira@1.1.0 approve",
            "ops:acme/jira@1.0.0 approve",
        ]
    );
    assert_eq!(store.tenant("ops").await.unwrap().unwrap().generation, 8);
}

/// A private plugin offered to a tenant: its viewer (members' tokens, instances) finds it
/// in search, by name, by id and its blobs; another tenant's does not. Granting and
/// revoking are audited once each, and listed by plugin and by tenant.
async fn entitled_tenants_see_a_private_plugin_and_grants_are_audited(store: &SqlStore) {
    let w = world(store).await;
    let secret = release(
        store,
        &w,
        manifest("acme", "secret", "1.0.0", "visibility: private\n"),
        b"entitled module",
    )
    .await
    .unwrap();
    let ops = store
        .create_tenant(&new_tenant("ops", &w.alice))
        .await
        .unwrap();
    let dev = store
        .create_tenant(&new_tenant("dev", &w.alice))
        .await
        .unwrap();
    let plugin = store.plugin("acme", "secret").await.unwrap().unwrap();
    let module = Digest::of(b"entitled module");
    let sees = |viewer: Viewer| async move {
        let by_name = store
            .visible_plugin("acme", "secret", &viewer)
            .await
            .unwrap()
            .is_some();
        let by_id = store.plugin_visible_to(plugin.id, &viewer).await.unwrap();
        let blob = store.blob_readable(&module, &viewer).await.unwrap();
        let mut q = query(Some("secret"));
        q.viewer = viewer.clone();
        let found = names(&store.search(&q).await.unwrap()) == ["secret"];
        assert_eq!([by_id, blob, found], [by_name; 3], "{viewer:?}");
        by_name
    };
    // A viewer with both a private publisher and a tenant binds both lists in order.
    let both = Viewer {
        private_publishers: vec![w.acme.id + 1000],
        tenants: vec![dev.id, ops.id],
        ..Viewer::default()
    };
    assert!(!sees(Viewer::of_tenant(ops.id)).await, "not offered yet");
    assert!(!sees(both.clone()).await);

    assert!(
        store
            .grant_entitlement(plugin.id, ops.id, "alice")
            .await
            .unwrap()
    );
    assert!(
        !store
            .grant_entitlement(plugin.id, ops.id, "alice")
            .await
            .unwrap(),
        "granting twice changes nothing"
    );
    assert!(sees(Viewer::of_tenant(ops.id)).await);
    assert!(sees(both.clone()).await);
    assert!(!sees(Viewer::of_tenant(dev.id)).await, "another tenant");
    assert!(!sees(Viewer::anonymous()).await);

    let by_plugin = store.plugin_entitlements(plugin.id, 10).await.unwrap();
    assert_eq!(by_plugin.len(), 1);
    assert_eq!(
        (
            by_plugin[0].tenant.as_str(),
            by_plugin[0].granted_by.as_str()
        ),
        ("ops", "alice")
    );
    let by_tenant = store.tenant_entitlements(ops.id, 10).await.unwrap();
    assert_eq!(by_tenant, by_plugin);
    assert!(
        store
            .tenant_entitlements(dev.id, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.member_tenants(w.alice.id).await.unwrap(),
        [(dev.id, "dev".to_owned()), (ops.id, "ops".to_owned())]
    );

    assert!(
        store
            .revoke_entitlement(plugin.id, ops.id, "alice")
            .await
            .unwrap()
    );
    assert!(
        !store
            .revoke_entitlement(plugin.id, ops.id, "alice")
            .await
            .unwrap()
    );
    assert!(!sees(Viewer::of_tenant(ops.id)).await, "revoked");
    let missing = store
        .grant_entitlement(plugin.id, ops.id + 1000, "alice")
        .await;
    assert!(
        matches!(missing, Err(StoreError::NotFound(_))),
        "{missing:?}"
    );

    let events = store
        .audit_events(Some("acme/secret:ops"), 10)
        .await
        .unwrap();
    let actions: Vec<_> = events.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["entitlement.revoke", "entitlement.grant"]);
    let _ = secret;
}

/// Garbage collection's protocol: what counts as referenced, marks that a publish, an
/// upload, an OCI link or a HEAD take away, a deletion that only a mark old enough on a
/// blob still unreferenced may begin, and a publish or upload refused while one runs.
async fn gc_marks_yield_to_every_use_and_deletions_to_nothing(store: &SqlStore) {
    let w = world(store).await;
    let v = release(store, &w, manifest("acme", "kept", "1.0.0", ""), b"kept")
        .await
        .unwrap();
    let (kept, orphan, linked, racing) = (
        Digest::of(b"kept"),
        Digest::of(b"orphan"),
        Digest::of(b"linked"),
        Digest::of(b"racing"),
    );
    for d in [&orphan, &linked, &racing] {
        store.record_blob(d, 6, w.alice.id).await.unwrap();
    }
    store.link_oci_blob("acme/kept", &linked).await.unwrap();
    let uses = store
        .blob_uses(&[kept, orphan, linked, v.manifest_digest])
        .await
        .unwrap();
    let referenced: Vec<bool> = uses.iter().map(|u| u.referenced).collect();
    assert_eq!(referenced, [true, false, true, true]);
    assert_eq!(uses[1].recorded_size, Some(6));
    assert!(uses[1].last_upload_ms.is_some() && uses[1].mark.is_none());

    // Marked at 1000; a deletion needs a mark at or before its cutoff.
    store.gc_mark(&[orphan, racing], 1_000).await.unwrap();
    store.gc_mark(&[orphan], 5_000).await.unwrap();
    let mark = store.blob_uses(&[orphan]).await.unwrap()[0].mark.unwrap();
    assert_eq!(
        (mark.state, mark.marked_at),
        (GcState::Marked, 1_000),
        "the older mark stays"
    );
    let now = now_ms();
    assert!(
        !store
            .gc_begin_delete(&orphan, 999, now, 6, "gc")
            .await
            .unwrap(),
        "too young a mark"
    );
    assert!(
        !store
            .gc_begin_delete(&orphan, 1_000, 0, 6, "gc")
            .await
            .unwrap(),
        "uploaded after the cutoff"
    );
    // A HEAD by its publisher takes the mark away.
    store.touch_blob(&racing).await.unwrap();
    assert!(
        !store
            .gc_begin_delete(&racing, now, now, 6, "gc")
            .await
            .unwrap()
    );
    assert!(store.blob_uses(&[racing]).await.unwrap()[0].mark.is_none());

    assert!(
        store
            .gc_begin_delete(&orphan, 1_000, now, 6, "gc")
            .await
            .unwrap()
    );
    assert_eq!(
        store.blob_size(&orphan).await.unwrap(),
        None,
        "its upload records went"
    );
    assert_eq!(store.gc_deleting(now_ms(), 10).await.unwrap(), [orphan]);
    // While the bytes go, the digest can be neither uploaded nor published nor linked.
    let refused = store.record_blob(&orphan, 6, w.alice.id).await.unwrap_err();
    assert!(
        matches!(refused, StoreError::Conflict(ref m) if m.contains("garbage collection")),
        "{refused:?}"
    );
    assert!(matches!(
        store.link_oci_blob("acme/kept", &orphan).await,
        Err(StoreError::Conflict(_))
    ));
    let m = manifest("acme", "late", "1.0.0", "");
    assert!(matches!(
        release(store, &w, m.clone(), b"orphan").await,
        Err(StoreError::Conflict(_))
    ));
    store.gc_end_delete(&orphan).await.unwrap();
    assert!(store.gc_deleting(now_ms(), 10).await.unwrap().is_empty());
    store.record_blob(&orphan, 6, w.alice.id).await.unwrap();
    release(store, &w, m, b"orphan").await.unwrap();

    // A publish takes a mark away: the blob is referenced from then on.
    store.gc_mark(&[racing], 1_000).await.unwrap();
    release(store, &w, manifest("acme", "racer", "1.0.0", ""), b"racing")
        .await
        .unwrap();
    assert!(store.blob_uses(&[racing]).await.unwrap()[0].mark.is_none());
    assert!(
        !store
            .gc_begin_delete(&racing, now, now, 6, "gc")
            .await
            .unwrap()
    );

    // Marks of blobs the store no longer holds are forgotten, within the walked range.
    let gone = Digest::of(b"gone");
    store.gc_mark(&[gone, linked], 1_000).await.unwrap();
    assert_eq!(
        store.gc_forget_absent(None, None, &[linked]).await.unwrap(),
        1
    );
    assert!(store.blob_uses(&[linked]).await.unwrap()[0].mark.is_some());
    store.gc_unmark(&[linked]).await.unwrap();
    assert!(store.blob_uses(&[linked]).await.unwrap()[0].mark.is_none());

    let audit = store
        .audit_events(Some(&orphan.to_string()), 10)
        .await
        .unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].action, "blob.gc");
}

/// Every kind of reference is walked in pages, each once.
async fn blob_references_page_through_each_kind(store: &SqlStore) {
    let w = world(store).await;
    for i in 0..3 {
        release(
            store,
            &w,
            manifest("acme", &format!("p{i}"), "1.0.0", ""),
            format!("module {i}").as_bytes(),
        )
        .await
        .unwrap();
    }
    store
        .record_blob(&Digest::of(b"up"), 2, w.alice.id)
        .await
        .unwrap();
    store
        .link_oci_blob("acme/p0", &Digest::of(b"up"))
        .await
        .unwrap();
    store
        .link_oci_blob("acme/p1", &Digest::of(b"up"))
        .await
        .unwrap();
    let mut counts = std::collections::HashMap::new();
    for kind in RefKind::ALL {
        let mut after = None;
        let mut seen = Vec::new();
        loop {
            let (page, next) = store
                .blob_references(kind, after.as_ref(), 2)
                .await
                .unwrap();
            assert!(page.len() <= 2);
            seen.extend(page.into_iter().map(|r| (r.digest, r.owner)));
            match next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        let unique: std::collections::HashSet<_> = seen.iter().collect();
        assert_eq!(unique.len(), seen.len(), "{kind:?} once each");
        counts.insert(kind, seen.len());
    }
    assert_eq!(
        counts[&RefKind::Artifact],
        6,
        "three modules and three manifests"
    );
    assert_eq!(counts[&RefKind::OciLink], 2);
    assert_eq!(counts[&RefKind::OciManifest], 0);
    assert_eq!(counts[&RefKind::Upload], 1);
}
