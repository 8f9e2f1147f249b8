//! Messages a person can act on, through the real binary: a registry's refusal says why
//! on every command, nothing is said twice, a registry URL without a scheme gets the URL
//! probably meant, secrets typed on a terminal are not shown, `-q` still prints a
//! one-time secret, `-v` logs each registry request, and `AGORA_TOKEN` wins over the
//! stored login.

mod support;

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::*;

/// The `error: ` line of a failed run, without its prefix and line break.
fn error_line(run: &Run) -> String {
    let err = run.fails();
    err.trim_end()
        .strip_prefix("error: ")
        .unwrap_or_else(|| panic!("no `error: ` prefix: {err}"))
        .to_owned()
}

/// Fails when a part of the message (between `: `) comes twice.
fn said_once(message: &str) {
    let parts: Vec<&str> = message.split(": ").collect();
    for (i, part) in parts.iter().enumerate() {
        assert!(
            !parts[i + 1..].contains(part),
            "{part:?} is said twice in: {message}"
        );
    }
}

#[test]
fn a_refusal_says_why_on_every_command_and_nothing_twice() {
    let server = Server::start(Backend::Sqlite);
    server.admin().run(&["publisher", "create", "acme"]).ok();
    let work = tempfile::tempdir().unwrap();
    let plugin = plugin_dir(
        work.path(),
        "acme",
        "widget",
        "1.0.0",
        "",
        b"\0asm\x01\0\0\0",
    );

    // A bad token: publish (whose first request is a HEAD, which has no body) says what
    // the registry said, like every other command.
    let mut bad = server.cli(Some("agora_not_a_real_token"));
    let key = bad.home.path().join("key");
    bad.run(&["keygen", "--out", key.to_str().unwrap()]).ok();
    bad.key = Some(key);
    for args in [
        vec!["publish", plugin.to_str().unwrap()],
        vec!["whoami"],
        vec!["token", "list"],
    ] {
        let err = error_line(&bad.run(&args));
        assert!(
            err.contains("is not known to this registry")
                && err.ends_with("(401, urn:agora:problem:unauthorized)"),
            "{args:?}: {err}"
        );
        assert!(
            !err.contains("Unauthorized: \n") && !err.ends_with(':'),
            "{err}"
        );
        said_once(&err);
    }

    // Field errors come through with the field, what is wrong and what is accepted.
    let err = error_line(&server.admin().run(&["user", "create", "Bad Name"]));
    assert!(
        err.contains("username: \"Bad Name\" is not a valid user name (expected ")
            && err.ends_with("(422, urn:agora:problem:invalid-request)"),
        "{err}"
    );
    said_once(&err);

    // A registry that does not answer: the cause once, not once per layer.
    let mut gone = server.admin();
    gone.registry = "http://127.0.0.1:1".into();
    let err = error_line(&gone.run(&["whoami"]));
    assert!(
        err.starts_with("cannot reach the registry at http://127.0.0.1:1/")
            && err.contains("refused"),
        "{err}"
    );
    said_once(&err);
}

#[test]
fn a_registry_url_without_a_scheme_gets_the_url_probably_meant() {
    let server = Server::start(Backend::Sqlite);
    let mut cli = server.cli(None);
    cli.registry = "localhost:8080".into();
    assert_eq!(
        error_line(&cli.run(&["whoami"])),
        "invalid registry URL \"localhost:8080\": it has no scheme; did you mean http://localhost:8080?"
    );
    cli.registry = "registry.example.com".into();
    for args in [
        vec!["whoami"],
        vec!["login", "--token", "t"],
        vec!["search", "x"],
    ] {
        let err = error_line(&cli.run(&args));
        assert!(
            err.ends_with("did you mean https://registry.example.com?"),
            "{args:?}: {err}"
        );
        said_once(&err);
    }
    // The flag as well as the environment.
    let err = error_line(
        &server
            .cli(None)
            .run(&["--registry", "127.0.0.1:9", "whoami"]),
    );
    assert!(err.ends_with("did you mean http://127.0.0.1:9?"), "{err}");
}

#[test]
fn quiet_still_prints_the_one_time_token_and_verbose_logs_each_request() {
    let server = Server::start(Backend::Sqlite);
    let admin = server.admin();
    admin.run(&["user", "create", "alice"]).ok();
    let run = admin.run(&[
        "-q", "token", "create", "--user", "alice", "--scope", "review",
    ]);
    let out = run.ok();
    assert_eq!(run.stderr(), "", "quiet: no chatter");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1, "the token alone: {out}");
    let token = lines[0];
    assert!(!token.contains(' '), "{token}");
    let me = server.cli(Some(token)).run(&["--json", "whoami"]).json();
    assert_eq!(me["username"], "alice");
    // Quiet still prints nothing for other commands.
    assert_eq!(admin.run(&["-q", "whoami"]).ok(), "");

    // -v: one debug line per registry request, on stderr; the result stays on stdout.
    let run = admin.run(&["-v", "whoami"]);
    assert!(run.ok().contains("admin"));
    let log = run.stderr();
    let request = log
        .lines()
        .find(|l| l.contains("registry request"))
        .unwrap_or_else(|| panic!("no request logged: {log}"));
    for part in [
        "DEBUG",
        "method=GET",
        &format!("url={}/api/v1/me", server.url),
        "status=200",
        "ms=",
    ] {
        assert!(request.contains(part), "{part} missing from {request}");
    }
    // Without -v nothing is logged.
    assert_eq!(admin.run(&["whoami"]).stderr(), "");
}

#[test]
fn agora_token_wins_over_the_stored_login() {
    let server = Server::start(Backend::Sqlite);
    let admin = server.admin();
    admin.run(&["user", "create", "alice"]).ok();
    let alice_token = admin.token_for("alice", &["review"]);
    let mut cli = server.cli(None);
    cli.run(&["login", "--token", &alice_token]).ok();
    let who = |cli: &Cli| cli.run(&["--json", "whoami"]).json()["username"].clone();
    assert_eq!(who(&cli), "alice", "the stored login");
    cli.env = vec![("AGORA_TOKEN".into(), server.admin_token.clone())];
    assert_eq!(who(&cli), "admin", "AGORA_TOKEN wins");
    cli.env = vec![("AGORA_TOKEN".into(), String::new())];
    assert_eq!(who(&cli), "alice", "an empty AGORA_TOKEN is no token");
}

/// Runs `agora ARGS` on a new pseudo-terminal (its controlling terminal when
/// `controlling`, else a terminal on standard input only, as in some containers), types
/// `secret` and Enter once the program asked and turned echo off, and returns whether it
/// succeeded and everything the terminal showed.
fn on_a_terminal(
    cli: &Cli,
    args: &[&str],
    controlling: bool,
    asks: &str,
    secret: &str,
) -> (bool, String) {
    use nix::sys::termios::{LocalFlags, tcgetattr};
    let pty = nix::pty::openpty(None, None).unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .current_dir(cli.home.path())
        .env("AGORA_REGISTRY", &cli.registry)
        .env("XDG_CONFIG_HOME", cli.home.path().join("config"))
        .env("HOME", cli.home.path())
        .stdin(Stdio::from(pty.slave.try_clone().unwrap()))
        .stdout(Stdio::from(pty.slave.try_clone().unwrap()))
        .stderr(Stdio::from(pty.slave.try_clone().unwrap()));
    match &cli.token {
        Some(t) => cmd.env("AGORA_TOKEN", t),
        None => cmd.env_remove("AGORA_TOKEN"),
    };
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if nix::libc::setsid() < 0
                || (controlling && nix::libc::ioctl(0, nix::libc::TIOCSCTTY, 0) < 0)
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    drop(cmd);
    let screen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let reader = {
        let screen = screen.clone();
        let mut master = std::fs::File::from(pty.master.try_clone().unwrap());
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // Ends with EIO once the program exited and closed the terminal.
            while let Ok(n) = master.read(&mut buf) {
                if n == 0 {
                    break;
                }
                screen.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        })
    };
    let shown = || String::from_utf8_lossy(&screen.lock().unwrap()).into_owned();
    let started = Instant::now();
    while !shown().contains(asks)
        || tcgetattr(&pty.slave)
            .unwrap()
            .local_flags
            .contains(LocalFlags::ECHO)
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the program did not ask for {asks:?} with echo off: {}",
            shown()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut master = std::fs::File::from(pty.master);
    master.write_all(format!("{secret}\n").as_bytes()).unwrap();
    let status = child.wait().unwrap();
    drop(pty.slave);
    reader.join().unwrap();
    (status.success(), shown())
}

#[test]
fn tokens_and_passwords_typed_on_a_terminal_are_not_shown() {
    let server = Server::start(Backend::Sqlite);
    for controlling in [true, false] {
        let cli = server.cli(None);
        let (ok, screen) = on_a_terminal(
            &cli,
            &["login"],
            controlling,
            "Token for",
            &server.admin_token,
        );
        assert!(ok, "{screen}");
        assert!(screen.contains("Logged in to"), "{screen}");
        assert!(
            !screen.contains(&server.admin_token),
            "the token was shown: {screen}"
        );
        // It was stored: the next command uses it.
        assert!(cli.run(&["whoami"]).ok().contains("admin"));
    }

    let password = "correct horse battery staple";
    let (ok, screen) = on_a_terminal(
        &server.admin(),
        &["user", "password"],
        true,
        "New password for admin",
        password,
    );
    assert!(ok, "{screen}");
    assert!(screen.contains("Password of admin set"), "{screen}");
    assert!(
        !screen.contains("horse"),
        "the password was shown: {screen}"
    );
}

#[test]
fn secrets_on_a_pipe_are_the_first_line() {
    let server = Server::start(Backend::Sqlite);
    let cli = server.cli(None);
    let mut child = Command::new(BIN)
        .args(["login"])
        .env("AGORA_REGISTRY", &cli.registry)
        .env("XDG_CONFIG_HOME", cli.home.path().join("config"))
        .env("HOME", cli.home.path())
        .env_remove("AGORA_TOKEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{}\nsecond line\n", server.admin_token).as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("Logged in to"), "{stdout}");
    assert!(cli.run(&["whoami"]).ok().contains("admin"));
}
