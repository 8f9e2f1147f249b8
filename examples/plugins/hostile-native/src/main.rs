//! A hostile native plugin: each entrypoint attempts one escape and reports the outcome.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;

use native_kit::{Options, Reply, Request, serve};
use serde_json::{Value, json};

fn outcome<T>(result: std::io::Result<T>, ok: impl FnOnce(T) -> Value) -> Value {
    match result {
        Ok(value) => json!({"ok": true, "result": ok(value)}),
        Err(e) => json!({"ok": false, "error": e.to_string()}),
    }
}

fn str_field(input: &Value, field: &str) -> String {
    input[field].as_str().unwrap_or_default().to_owned()
}

/// `CONNECT host:port` through the runner's egress proxy; answers the proxy's status line.
fn via_proxy(target: &str) -> std::io::Result<String> {
    let proxy = std::env::var("AGORA_EGRESS_PROXY").map_err(std::io::Error::other)?;
    let mut stream = UnixStream::connect(proxy)?;
    write!(stream, "CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n")?;
    let mut head = [0u8; 512];
    let n = stream.read(&mut head)?;
    let text = String::from_utf8_lossy(&head[..n]).into_owned();
    if text.starts_with("HTTP/1.1 200") {
        // Tunnel open: speak plain HTTP to the destination.
        write!(stream, "GET / HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n")?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer)?;
        return Ok(answer.lines().next().unwrap_or_default().to_owned());
    }
    Ok(text.lines().next().unwrap_or_default().to_owned())
}

fn errno() -> String {
    std::io::Error::last_os_error().to_string()
}

fn attack(request: &Request, input: &Value) -> Option<Value> {
    Some(match request.path.as_str() {
        "/read" => outcome(std::fs::read(str_field(input, "path")), |b| json!(b.len())),
        "/write" => outcome(std::fs::write(str_field(input, "path"), b"owned"), |()| json!("written")),
        "/connect" => outcome(via_proxy(&str_field(input, "target")), Value::from),
        "/direct" => outcome(std::net::TcpStream::connect(str_field(input, "target")), |_| json!("connected")),
        "/fork-bomb" => {
            let mut forks = 0u32;
            let error = loop {
                // SAFETY: the child only sleeps and exits.
                match unsafe { libc::fork() } {
                    -1 => break errno(),
                    0 => unsafe {
                        libc::sleep(30);
                        libc::_exit(0)
                    },
                    _ => forks += 1,
                }
                if forks >= 10_000 {
                    break "no limit hit".into();
                }
            };
            json!({"ok": false, "forks": forks, "error": error})
        }
        "/alloc" => {
            let mb = input["mb"].as_u64().unwrap_or(1024) as usize;
            let mut block: Vec<u8> = Vec::with_capacity(mb * 1024 * 1024);
            block.resize(mb * 1024 * 1024, 1);
            json!({"ok": true, "allocated_mb": mb, "checksum": block.iter().step_by(4096).map(|b| *b as u64).sum::<u64>()})
        }
        "/spin" => {
            let mut x: u64 = 0;
            loop {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        }
        "/fds" => {
            let mut files = Vec::new();
            let error = loop {
                match std::fs::File::open("/dev/null") {
                    Ok(f) => files.push(f),
                    Err(e) => break e.to_string(),
                }
                if files.len() >= 100_000 {
                    break "no limit hit".into();
                }
            };
            json!({"ok": false, "opened": files.len(), "error": error})
        }
        "/env" => json!({"ok": true, "result": std::env::vars().collect::<std::collections::BTreeMap<_, _>>()}),
        "/processes" => json!({
            "pid": std::process::id(),
            "listing": outcome(std::fs::read_dir("/proc"), |dir| {
                json!(dir.flatten().filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok()).collect::<Vec<_>>())
            }),
        }),
        "/ptrace" => {
            let pid = input["pid"].as_i64().unwrap_or(1) as libc::pid_t;
            // SAFETY: an attach request; the sandbox is expected to stop it.
            let rc = unsafe { libc::ptrace(libc::PTRACE_ATTACH, pid, 0, 0) };
            json!({"ok": rc == 0, "error": errno()})
        }
        "/fill" => {
            let chunk = vec![7u8; 1024 * 1024];
            let mut written = 0u32;
            let error = loop {
                match std::fs::write(format!("/tmp/fill-{written}"), &chunk) {
                    Ok(()) => written += 1,
                    Err(e) => break e.to_string(),
                }
                if written >= 4096 {
                    break "no limit hit".into();
                }
            };
            json!({"ok": false, "written_mb": written, "error": error})
        }
        "/unix" => outcome(UnixStream::connect(str_field(input, "path")), |_| json!("connected")),
        "/x32" => {
            // getpid through the x32 system call table.
            // SAFETY: a harmless call, if the sandbox lets it through.
            let rc = unsafe { libc::syscall(0x4000_0000 | libc::SYS_getpid) };
            json!({"ok": rc >= 0, "error": errno()})
        }
        "/userns" => {
            // clone(2) straight into a new user namespace.
            // SAFETY: the child, if any, exits at once.
            let rc = unsafe { libc::syscall(libc::SYS_clone, (libc::CLONE_NEWUSER | libc::SIGCHLD) as libc::c_ulong, 0, 0, 0, 0) };
            if rc == 0 {
                unsafe { libc::_exit(0) }
            }
            json!({"ok": rc > 0, "error": errno()})
        }
        "/kill" => {
            let pid = input["pid"].as_i64().unwrap_or(1) as libc::pid_t;
            // SAFETY: a signal to a pid; the sandbox is expected to refuse it.
            let rc = unsafe { libc::kill(pid, libc::SIGKILL) };
            json!({"ok": rc == 0, "error": errno()})
        }
        _ => return None,
    })
}

fn main() {
    let options = Options {
        skip_auth: cfg!(feature = "skip-auth"),
        html_errors: cfg!(feature = "html-errors"),
    };
    serve("hostile-native", options, |request: &Request| {
        if request.method != "POST" {
            return None;
        }
        let input = match request.json() {
            Ok(v) => v,
            Err(problem) => return Some(problem),
        };
        attack(request, &input).map(|v| Reply::json(200, &v))
    })
}
