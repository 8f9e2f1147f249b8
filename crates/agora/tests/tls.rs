//! TLS in `agora serve`, end to end: the real binary with a certificate a test CA signed
//! (made with the `openssl` command, which these tests need): https with HSTS on every
//! answer over HTTP/2 and HTTP/1.1, plain HTTP refused on the TLS port, the redirect
//! listener, certificates replaced without a restart (and a broken replacement refused),
//! the handshake and an idle HTTP/2 connection held to the header timeout, a bad pair
//! refused at start, and the CLI trusting a private CA through `AGORA_CA_FILE`.

mod support;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::*;

/// Runs `openssl ARGS` in `dir`; the tests fail (never skip) without the command.
fn openssl(dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("the openssl command is needed to make the test certificates");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A test certificate authority and the server certificates it signs, in a directory.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        openssl(
            dir.path(),
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-days",
                "2",
                "-subj",
                "/CN=Agora test CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign",
            ],
        );
        std::fs::write(
            dir.path().join("server.ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
             extendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        Pki { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn ca(&self) -> PathBuf {
        self.path("ca.crt")
    }

    /// `NAME.crt` for localhost and 127.0.0.1 with `serial` (hex), signed by the CA, and
    /// its key `NAME.key`.
    fn issue(&self, name: &str, serial: &str) {
        let (key, csr, crt) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.crt"),
        );
        openssl(
            self.dir.path(),
            &[
                "req",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &csr,
                "-subj",
                &format!("/CN={name}"),
            ],
        );
        openssl(
            self.dir.path(),
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-set_serial",
                &format!("0x{serial}"),
                "-days",
                "2",
                "-out",
                &crt,
                "-extfile",
                "server.ext",
            ],
        );
    }

    /// Puts `NAME.crt` and `NAME.key` where the server reads its pair (`served.*`), each
    /// replaced in one step (written beside, then renamed), the key first.
    fn serve(&self, name: &str) {
        for ext in ["key", "crt"] {
            let next = self.path(&format!("served.{ext}.next"));
            std::fs::copy(self.path(&format!("{name}.{ext}")), &next).unwrap();
            std::fs::rename(&next, self.path(&format!("served.{ext}"))).unwrap();
        }
    }

    /// `agora serve` over TLS with the served pair, and `extra` environment.
    fn start(&self, extra: &[(&str, &str)]) -> Server {
        let (cert, key) = (self.path("served.crt"), self.path("served.key"));
        let mut env = vec![
            ("AGORA_TLS__CERT", cert.to_str().unwrap()),
            ("AGORA_TLS__KEY", key.to_str().unwrap()),
        ];
        env.extend_from_slice(extra);
        Server::start_with(Backend::Sqlite, &env)
    }
}

/// The serial number (hex, as openssl prints it) of the certificate in `der`.
fn serial(pki: &Pki, der: &[u8]) -> String {
    let file = pki.path(&format!("peer-{}.der", random_suffix()));
    std::fs::write(&file, der).unwrap();
    let out = openssl(
        pki.dir.path(),
        &[
            "x509",
            "-inform",
            "DER",
            "-in",
            file.to_str().unwrap(),
            "-noout",
            "-serial",
        ],
    );
    String::from_utf8(out)
        .unwrap()
        .trim()
        .trim_start_matches("serial=")
        .to_owned()
}

fn random_suffix() -> String {
    let mut b = [0u8; 6];
    getrandom::fill(&mut b).unwrap();
    hex::encode(b)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A client that trusts only the test CA, reports the peer's certificate, and keeps no
/// idle connection (so each client's first request is a new handshake).
fn trusting(pki: &Pki) -> reqwest::ClientBuilder {
    let ca = reqwest::Certificate::from_pem(&std::fs::read(pki.ca()).unwrap()).unwrap();
    reqwest::Client::builder()
        .tls_certs_only([ca])
        .tls_info(true)
        .redirect(reqwest::redirect::Policy::none())
}

/// What a GET on `url` with `client` answered: status, HTTP version, HSTS header, and the
/// serial of the certificate the server presented.
struct Answer {
    status: u16,
    version: reqwest::Version,
    hsts: Option<String>,
    serial: String,
}

fn get(pki: &Pki, client: &reqwest::Client, url: &str) -> Answer {
    runtime().block_on(async {
        let response = client.get(url).send().await.unwrap();
        let der = response
            .extensions()
            .get::<reqwest::tls::TlsInfo>()
            .and_then(|info| info.peer_certificate())
            .expect("a certificate over TLS")
            .to_vec();
        Answer {
            status: response.status().as_u16(),
            version: response.version(),
            hsts: response
                .headers()
                .get("strict-transport-security")
                .map(|v| v.to_str().unwrap().to_owned()),
            serial: serial(pki, &der),
        }
    })
}

/// The address of the redirect listener, from the server's log.
fn redirect_address(server: &Server) -> String {
    eventually("the redirect listener's log line", || {
        server.log().lines().find_map(|line| {
            let event: serde_json::Value = serde_json::from_str(line).ok()?;
            event["fields"]["redirect"].as_str().map(str::to_owned)
        })
    })
}

fn port(url: &str) -> u16 {
    url.rsplit(':').next().unwrap().parse().unwrap()
}

#[test]
fn https_answers_carry_hsts_over_http2_and_http1_and_plain_http_is_refused() {
    let pki = Pki::new();
    pki.issue("first", "1001");
    pki.serve("first");
    let server = pki.start(&[]);
    assert!(
        server.url.starts_with("https://127.0.0.1:"),
        "{}",
        server.url
    );

    let h2 = trusting(&pki).build().unwrap();
    let h1 = trusting(&pki).http1_only().build().unwrap();
    // Every kind of answer: a probe, JSON, a problem, a page, the OCI base, a stylesheet.
    for path in [
        "/health",
        "/api/v1/plugins",
        "/api/v1/nothing",
        "/",
        "/v2/",
        "/nothing",
    ] {
        for (client, version) in [
            (&h2, reqwest::Version::HTTP_2),
            (&h1, reqwest::Version::HTTP_11),
        ] {
            let answer = get(&pki, client, &format!("{}{path}", server.url));
            assert_eq!(answer.version, version, "{path}: ALPN");
            assert_eq!(
                answer.hsts.as_deref(),
                Some("max-age=31536000"),
                "{path} over {version:?} answered {}",
                answer.status
            );
            assert_eq!(answer.serial, "1001");
        }
    }
    assert_eq!(
        get(&pki, &h2, &format!("{}/health", server.url)).status,
        200
    );
    // HTTP/2 names the host in `:authority`; what reads `Host` sees it all the same: the
    // OCI challenge's token realm names this server, not a default.
    for client in [&h2, &h1] {
        let challenge = runtime().block_on(async {
            let response = client
                .post(format!("{}/v2/acme/tool/blobs/uploads/", server.url))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 401);
            response.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .to_owned()
        });
        let realm = format!("127.0.0.1:{}/v2/token", port(&server.url));
        assert!(challenge.contains(&realm), "{challenge}");
    }

    runtime().block_on(async {
        // Plain HTTP to the TLS port gets no answer.
        let plain = format!("http://127.0.0.1:{}/health", port(&server.url));
        let refused = reqwest::Client::new().get(&plain).send().await;
        assert!(refused.is_err(), "plain HTTP answered: {refused:?}");
        // Nor does a client that does not trust the test CA.
        let untrusted = reqwest::Client::builder()
            .tls_certs_only([])
            .build()
            .unwrap()
            .get(format!("{}/health", server.url))
            .send()
            .await;
        assert!(
            untrusted.is_err(),
            "an unknown CA was accepted: {untrusted:?}"
        );
    });
}

#[test]
fn hsts_follows_its_settings_and_the_redirect_listener_sends_clients_to_https() {
    let pki = Pki::new();
    pki.issue("first", "1001");
    pki.serve("first");
    let server = pki.start(&[
        ("AGORA_TLS__HSTS_MAX_AGE_SECS", "600"),
        ("AGORA_TLS__HSTS_INCLUDE_SUBDOMAINS", "true"),
        ("AGORA_TLS__REDIRECT_FROM", "127.0.0.1:0"),
    ]);
    let client = trusting(&pki).build().unwrap();
    let answer = get(&pki, &client, &format!("{}/health", server.url));
    assert_eq!(
        answer.hsts.as_deref(),
        Some("max-age=600; includeSubDomains")
    );

    let redirect = redirect_address(&server);
    let tls_port = port(&server.url);
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    runtime().block_on(async {
        for (host, path, expected) in [
            (
                None,
                "/api/v1/plugins?q=echo&limit=2",
                format!("https://127.0.0.1:{tls_port}/api/v1/plugins?q=echo&limit=2"),
            ),
            (
                Some("registry.example.com:80"),
                "/v2/",
                format!("https://registry.example.com:{tls_port}/v2/"),
            ),
            (
                Some("registry.example.com"),
                "/",
                format!("https://registry.example.com:{tls_port}/"),
            ),
        ] {
            let mut request = plain.post(format!("http://{redirect}{path}"));
            if let Some(host) = host {
                request = request.header("host", host);
            }
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 308, "{host:?} {path}");
            assert_eq!(response.headers()["location"], expected.as_str());
            assert!(
                response
                    .headers()
                    .get("strict-transport-security")
                    .is_none(),
                "no HSTS over plain HTTP"
            );
        }
    });
    // A request without a Host header (HTTP/1.0) cannot be redirected: 400.
    let mut stream = std::net::TcpStream::connect(&redirect).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(b"GET /health HTTP/1.0\r\n\r\n").unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.0 400"), "{answer}");
    assert!(answer.contains("urn:agora:problem:bad-request"), "{answer}");
}

#[test]
fn replaced_certificates_serve_new_connections_without_a_restart_and_broken_ones_are_refused() {
    let pki = Pki::new();
    pki.issue("first", "1001");
    pki.issue("second", "2002");
    pki.serve("first");
    // A header timeout well past the reload's: the kept connection is not closed as idle.
    let server = pki.start(&[("AGORA_LIMITS__HEADER_TIMEOUT_SECS", "60")]);
    let health = format!("{}/health", server.url);
    // A client whose HTTP/2 connection stays open across the replacement.
    let kept = trusting(&pki).build().unwrap();
    let rt = runtime();
    let kept_serial = |rt: &tokio::runtime::Runtime| {
        rt.block_on(async {
            let response = kept.get(&health).send().await.unwrap();
            let der = response
                .extensions()
                .get::<reqwest::tls::TlsInfo>()
                .and_then(|i| i.peer_certificate())
                .unwrap()
                .to_vec();
            serial(&pki, &der)
        })
    };
    assert_eq!(kept_serial(&rt), "1001");

    let replaced = Instant::now();
    pki.serve("second");
    let fresh = || get(&pki, &trusting(&pki).build().unwrap(), &health).serial;
    eventually("the replaced certificate on new connections", || {
        (fresh() == "2002").then_some(())
    });
    let took = replaced.elapsed();
    eprintln!("a replaced pair served to new connections after {took:?}");
    assert!(took < Duration::from_secs(8), "took {took:?}");
    // The connection opened before keeps the pair it started with.
    assert_eq!(
        kept_serial(&rt),
        "1001",
        "an open connection keeps its certificate"
    );

    // A broken replacement (no certificate in the file), then a certificate whose key is
    // another's: both refused with an error naming the file, the second pair still served.
    std::fs::write(pki.path("served.crt"), "not a certificate\n").unwrap();
    eventually("the broken certificate refused in the log", || {
        server
            .log()
            .lines()
            .any(|l| l.contains("refused") && l.contains("served.crt holds no certificate"))
            .then_some(())
    });
    assert_eq!(fresh(), "2002", "the previous pair stays in use");
    pki.issue("third", "3003");
    std::fs::copy(pki.path("third.crt"), pki.path("served.crt")).unwrap();
    eventually("the mismatched pair refused in the log", || {
        server
            .log()
            .lines()
            .any(|l| l.contains("served.key does not belong to the certificate"))
            .then_some(())
    });
    assert_eq!(fresh(), "2002", "the previous pair stays in use");
    // The right key arrives: the third pair is served.
    pki.serve("third");
    eventually("the third certificate", || {
        (fresh() == "3003").then_some(())
    });
}

#[test]
fn a_silent_client_is_cut_at_the_header_timeout_over_tls_and_http2() {
    let pki = Pki::new();
    pki.issue("first", "1001");
    pki.serve("first");
    let server = pki.start(&[("AGORA_LIMITS__HEADER_TIMEOUT_SECS", "2")]);
    let address = format!("127.0.0.1:{}", port(&server.url));
    // No handshake at all: closed once the header timeout has passed.
    let started = Instant::now();
    let mut silent = std::net::TcpStream::connect(&address).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut buf = [0u8; 64];
    let read = silent.read(&mut buf);
    let took = started.elapsed();
    assert!(matches!(read, Ok(0)) || read.is_err(), "{read:?}");
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(6),
        "a silent handshake held {took:?}"
    );

    // A handshake that chose HTTP/2, then nothing: closed after about two header
    // timeouts (a GOAWAY, then the socket).
    let started = Instant::now();
    let mut client = Command::new("openssl")
        .args(["s_client", "-connect", &address, "-alpn", "h2", "-CAfile"])
        .arg(pki.ca())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the openssl command is needed");
    let mut output = String::new();
    client
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut output)
        .unwrap();
    let _ = client.wait();
    let took = started.elapsed();
    assert!(output.contains("ALPN protocol: h2"), "{output}");
    assert!(output.contains("Verify return code: 0 (ok)"), "{output}");
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(10),
        "an idle HTTP/2 connection held {took:?}"
    );
}

#[test]
fn the_start_line_and_admin_hint_say_https_and_a_bad_pair_stops_the_start() {
    let pki = Pki::new();
    pki.issue("first", "1001");
    pki.issue("other", "1002");
    pki.serve("first");
    let data = tempfile::tempdir().unwrap();
    let start = |cert: &Path, key: &Path| {
        Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data.path())
            .env_remove("AGORA_ADMIN_TOKEN")
            .env_remove("AGORA_DATABASE_URL")
            .env("AGORA_TLS__CERT", cert)
            .env("AGORA_TLS__KEY", key)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    // A key that is another certificate's: refused before anything is opened.
    let refused = start(&pki.path("first.crt"), &pki.path("other.key"))
        .wait_with_output()
        .unwrap();
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("tls.cert and tls.key")
            && err.contains("other.key does not belong to the certificate")
            && err.contains("first.crt"),
        "{err}"
    );
    assert!(
        !data.path().join("agora.db").exists(),
        "nothing was opened before the pair was checked"
    );

    let mut child = start(&pki.path("served.crt"), &pki.path("served.key"));
    use std::io::BufRead;
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok);
    let first = lines.next().unwrap();
    let url = first.split("listening on ").nth(1).unwrap().to_owned();
    assert!(url.starts_with("https://127.0.0.1:"), "{first}");
    assert!(lines.next().unwrap().contains("shown only this once"));
    let hint = lines.next().unwrap();
    assert!(
        hint.contains(&format!("agora login --registry {url} --token ")),
        "{hint}"
    );
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn the_cli_trusts_a_private_ca_named_by_agora_ca_file() {
    let pki = Pki::new();
    pki.issue("first", "1001");
    pki.serve("first");
    let server = pki.start(&[]);
    let mut admin = server.admin();
    let err = admin.run(&["whoami"]).fails();
    assert!(err.contains("cannot reach the registry"), "{err}");

    admin
        .env
        .push(("AGORA_CA_FILE".into(), pki.ca().display().to_string()));
    assert_eq!(admin.run(&["--json", "whoami"]).json()["username"], "admin");
    let mut login = server.cli(None);
    login.env = admin.env.clone();
    login.run(&["login", "--token", &server.admin_token]).ok();
    assert_eq!(login.run(&["--json", "whoami"]).json()["username"], "admin");

    // A CA file that holds no certificate is named, with the variable.
    std::fs::write(pki.path("empty.pem"), "").unwrap();
    admin.env = vec![(
        "AGORA_CA_FILE".into(),
        pki.path("empty.pem").display().to_string(),
    )];
    let err = admin.run(&["whoami"]).fails();
    assert!(err.contains("empty.pem (named by AGORA_CA_FILE)"), "{err}");
}
