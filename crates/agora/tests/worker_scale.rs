//! The verification queue at scale, on PostgreSQL through the real binaries: a burst of
//! releases published to a server that verifies nothing itself, drained by separate
//! `agora worker` processes on the same database and blob store. Every release gets
//! exactly one recorded run; a worker killed mid-run leaves its claimed runs to another
//! worker once their lease ends, and they are still recorded once.

mod support;

use std::process::Child;
use std::time::{Duration, Instant};

use support::*;

/// Releases in a burst.
const BURST: usize = 200;
/// How long a drain may take before the test gives up and shows the logs (a hang guard,
/// not a performance bound).
const DRAIN_GUARD: Duration = Duration::from_secs(150);
/// The publisher of the burst.
const PUBLISHER: &str = "burst";

/// A server with no worker of its own, on a fresh PostgreSQL schema.
fn server() -> Server {
    Server::start_with(
        Backend::Postgres,
        &[
            ("AGORA_WORKER__IN_PROCESS", "false"),
            // What the workers started from this server's environment use.
            ("AGORA_WORKER__LEASE_SECS", "2"),
            ("AGORA_WORKER__IDLE_WAIT_MS", "50"),
        ],
    )
}

/// Publishes `count` signed releases (`burst/p<i>@1.0.0`, one module shared by all)
/// through the client library, as `agora publish` does, one after another.
fn publish_burst(server: &Server, count: usize) {
    server.admin().run(&["publisher", "create", PUBLISHER]).ok();
    let work = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client =
            agora_client::Client::new(&server.url, Some(server.admin_token.clone())).unwrap();
        let key = agora_trust::SigningKey::generate(PUBLISHER).unwrap();
        client
            .add_key(PUBLISHER, &key.public().to_openssh())
            .await
            .unwrap();
        for i in 0..count {
            let name = format!("p{i}");
            let dir = plugin_dir(work.path(), PUBLISHER, &name, "1.0.0", "", b"burst module");
            let release = agora_client::ReleaseFiles::from_dir(&dir).unwrap();
            let signature = agora_client::publish::Signer::Key(&key)
                .sign(&release)
                .unwrap();
            let missing = agora_client::publish::missing(&client, &release)
                .await
                .unwrap();
            agora_client::publish::upload(&client, &missing, |_| {}, |_| {})
                .await
                .unwrap();
            agora_client::publish::submit(&client, &release, &signature)
                .await
                .unwrap();
        }
    });
}

/// One number a query prints.
fn count(server: &Server, sql: &str) -> usize {
    let out = server.query(sql);
    out.trim()
        .parse()
        .unwrap_or_else(|e| panic!("`{sql}` printed {out:?}: {e}"))
}

fn open_jobs(server: &Server) -> usize {
    count(
        server,
        "SELECT count(*) FROM jobs WHERE kind = 'verify' AND state IN ('queued', 'running')",
    )
}

/// Waits until no verification is queued or running.
fn drained(server: &Server, workers: &[&str]) {
    let guard = Instant::now() + DRAIN_GUARD;
    while open_jobs(server) > 0 {
        if Instant::now() > guard {
            let logs: Vec<String> = workers.iter().map(|w| server.worker_log(w)).collect();
            panic!(
                "the queue did not drain; jobs:\n{}\nworkers:\n{}",
                server.query("SELECT state, attempts, worker, count(*) FROM jobs GROUP BY 1, 2, 3"),
                logs.join("\n---\n")
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every release of the burst has exactly one recorded run, with an outcome.
fn each_release_verified_once(server: &Server) {
    let versions = count(server, "SELECT count(*) FROM versions");
    assert_eq!(versions, BURST);
    let runs = server.query(
        "SELECT count(*), count(DISTINCT version_id), \
         count(*) FILTER (WHERE outcome IN ('verified', 'needs-review', 'rejected')) \
         FROM verifications",
    );
    assert_eq!(
        runs.trim(),
        format!("{BURST}|{BURST}|{BURST}"),
        "runs, releases with a run, runs with an outcome"
    );
}

/// `(worker, jobs it ended)`, by worker name.
fn jobs_by_worker(server: &Server) -> Vec<(String, usize)> {
    server
        .query(
            "SELECT worker, count(*) FROM jobs WHERE kind = 'verify' GROUP BY worker ORDER BY worker",
        )
        .lines()
        .map(|line| {
            let (worker, n) = line.split_once('|').unwrap();
            (worker.to_owned(), n.parse().unwrap())
        })
        .collect()
}

struct Worker {
    child: Child,
    name: String,
}

impl Worker {
    fn start(server: &Server, log: &str, args: &[&str]) -> Worker {
        let child = server
            .worker(log, args)
            .spawn()
            .expect("agora worker starts");
        let name = format!("worker-{}", child.id());
        Worker { child, name }
    }

    /// SIGKILL: no shutdown, no chance to end what it holds.
    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn two_worker_processes_drain_a_burst_running_each_job_once() {
    let server = server();
    publish_burst(&server, BURST);
    assert_eq!(
        open_jobs(&server),
        BURST,
        "nothing verified before the workers"
    );

    let a = Worker::start(&server, "a", &[]);
    let b = Worker::start(&server, "b", &[]);
    drained(&server, &["a", "b"]);
    let names = [a.name.clone(), b.name.clone()];
    drop((a, b));

    each_release_verified_once(&server);
    assert_eq!(
        server
            .query("SELECT state, attempts, count(*) FROM jobs WHERE kind = 'verify' GROUP BY 1, 2")
            .trim(),
        format!("done|1|{BURST}"),
        "every job ran once, at its first attempt"
    );
    let by_worker = jobs_by_worker(&server);
    assert_eq!(
        by_worker
            .iter()
            .map(|(w, _)| w.as_str())
            .collect::<Vec<_>>(),
        {
            let mut sorted = names.to_vec();
            sorted.sort();
            sorted
        },
        "both processes ran jobs: {by_worker:?}"
    );
    assert!(by_worker.iter().all(|(_, n)| *n > 0), "{by_worker:?}");
}

#[test]
fn a_worker_killed_mid_run_is_taken_over_and_every_release_is_verified_once() {
    let server = server();
    publish_burst(&server, BURST);

    // The first worker runs four at a time; once some runs are recorded, it is frozen
    // while it holds claimed runs (so what it holds is known exactly) and killed.
    let first = Worker::start(&server, "first", &["--concurrency", "4"]);
    let held_by_first = format!(
        "SELECT count(*) FROM jobs WHERE state = 'running' AND worker LIKE '{}-%'",
        first.name
    );
    let guard = Instant::now() + DRAIN_GUARD;
    let orphaned = loop {
        assert!(
            Instant::now() < guard,
            "the first worker never held a run: {}",
            server.worker_log("first")
        );
        if count(&server, "SELECT count(*) FROM verifications") < BURST / 10 {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        signal(&first.child, "STOP");
        let held = count(&server, &held_by_first);
        if held > 0 {
            break held;
        }
        signal(&first.child, "CONT");
        std::thread::sleep(Duration::from_millis(5));
    };
    let first_name = first.name.clone();
    first.kill();
    assert!(
        open_jobs(&server) > orphaned,
        "the burst was cut in the middle"
    );

    // A new worker takes the killed one's runs over when their 2 s lease ends.
    let second = Worker::start(&server, "second", &[]);
    drained(&server, &["first", "second"]);
    let second_name = second.name.clone();
    drop(second);

    each_release_verified_once(&server);
    let retried = server.query(
        "SELECT worker, attempts, count(*) FROM jobs WHERE kind = 'verify' AND attempts > 1 \
         GROUP BY 1, 2",
    );
    assert_eq!(
        retried.trim(),
        format!("{second_name}|2|{orphaned}"),
        "the runs the killed worker held were run again, once, by the new one"
    );
    assert_eq!(
        count(
            &server,
            "SELECT count(*) FROM jobs WHERE kind = 'verify' AND state = 'done'"
        ),
        BURST
    );
    let by_worker = jobs_by_worker(&server);
    let first_ran: usize = by_worker
        .iter()
        .filter(|(w, _)| w.starts_with(&format!("{first_name}-")))
        .map(|(_, n)| n)
        .sum();
    assert!(first_ran >= BURST / 10, "{by_worker:?}");
    assert!(
        by_worker.iter().any(|(w, n)| *w == second_name && *n > 0),
        "{by_worker:?}"
    );
}

/// Sends `SIG<name>` to a child process.
fn signal(child: &Child, name: &str) {
    let status = std::process::Command::new("kill")
        .arg(format!("-{name}"))
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name}");
}
