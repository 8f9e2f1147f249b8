//! The contract's server side for native example plugins: HTTP/1.1 over the listening
//! Unix socket the runner hands over as file descriptor `AGORA_PLUGIN_FD` (3), each request's signature checked with the key in
//! `AGORA_PLUGIN_KEY`, errors as `application/problem+json`. One thread per connection,
//! one request per connection.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::{SystemTime, UNIX_EPOCH};

use agora_contract::{
    CALLBACK_KEY_ENV, CORE_SOCKET_ENV, FD_ENV, KEY_ENV, Key, SIGNATURE_HEADER, TIMESTAMP_HEADER,
};
use serde_json::Value;

const MAX_BODY: usize = 1024 * 1024;
const MAX_HEADERS: usize = 64;

pub struct Request {
    pub method: String,
    pub path: String,
    pub body: Vec<u8>,
}

impl Request {
    /// The body as JSON, or a 400 problem.
    pub fn json(&self) -> Result<Value, Reply> {
        serde_json::from_slice(&self.body)
            .map_err(|e| Reply::problem(400, "Bad Request", &format!("the body is not JSON: {e}")))
    }
}

pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(status: u16, value: &Value) -> Reply {
        Reply {
            status,
            content_type: "application/json",
            body: value.to_string().into_bytes(),
        }
    }

    pub fn problem(status: u16, title: &str, detail: &str) -> Reply {
        Reply {
            status,
            content_type: agora_contract::PROBLEM_JSON,
            body: agora_contract::problem_json(status, title, detail).into_bytes(),
        }
    }
}

/// How a plugin built on this kit behaves; the non-default settings exist to show the
/// conformance harness catching plugins that break the contract.
#[derive(Clone, Copy, Default)]
pub struct Options {
    /// Accept requests without checking their signature (breaks the contract).
    pub skip_auth: bool,
    /// Answer errors as HTML pages (breaks the contract).
    pub html_errors: bool,
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        413 => "Content Too Large",
        _ => "Status",
    }
}

fn write_reply(stream: &mut UnixStream, reply: Reply, options: Options) {
    let reply = if options.html_errors && reply.status >= 400 {
        Reply {
            status: reply.status,
            content_type: "text/html; charset=utf-8",
            body: format!("<html><body><h1>Error {}</h1></body></html>", reply.status).into_bytes(),
        }
    } else {
        reply
    };
    let head = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: {}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        reply.status,
        reason(reply.status),
        reply.content_type,
        reply.body.len()
    );
    let _ = stream
        .write_all(head.as_bytes())
        .and_then(|_| stream.write_all(&reply.body));
}

fn read_request(stream: &UnixStream) -> Result<(Request, Option<String>, Option<String>), Reply> {
    let mut reader = BufReader::new(stream);
    let bad = |detail: &str| Reply::problem(400, "Bad Request", detail);
    let mut line = String::new();
    reader.read_line(&mut line).map_err(|_| bad("unreadable request line"))?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_owned();
    let target = parts.next().unwrap_or("");
    let path = target.split('?').next().unwrap_or("").to_owned();
    let (mut length, mut timestamp, mut signature) = (0usize, None, None);
    for _ in 0..MAX_HEADERS {
        let mut header = String::new();
        if reader.read_line(&mut header).is_err() || header == "\r\n" || header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            let value = value.trim().to_owned();
            match name.trim().to_ascii_lowercase().as_str() {
                "content-length" => length = value.parse().map_err(|_| bad("bad content-length"))?,
                n if n == TIMESTAMP_HEADER => timestamp = Some(value),
                n if n == SIGNATURE_HEADER => signature = Some(value),
                _ => {}
            }
        }
    }
    if length > MAX_BODY {
        return Err(Reply::problem(413, "Content Too Large", "bodies are limited to 1 MiB"));
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).map_err(|_| bad("the body ended early"))?;
    Ok((Request { method, path, body }, timestamp, signature))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn handle<H>(mut stream: UnixStream, key: &Key, options: Options, handler: &H)
where
    H: Fn(&Request) -> Option<Reply>,
{
    let reply = match read_request(&stream) {
        Err(reply) => reply,
        Ok((request, timestamp, signature)) => {
            let verdict = key.verify(
                &request.method,
                &request.path,
                timestamp.as_deref(),
                signature.as_deref(),
                &request.body,
                now(),
            );
            match verdict {
                Err(why) if !options.skip_auth => Reply::problem(401, "Unauthorized", &why.to_string()),
                _ => match (request.method.as_str(), request.path.as_str()) {
                    ("GET", "/healthz") => Reply::json(200, &serde_json::json!({"status": "ok"})),
                    _ => handler(&request)
                        .unwrap_or_else(|| Reply::problem(404, "Not Found", "no such entrypoint")),
                },
            }
        }
    };
    write_reply(&mut stream, reply, options);
}

/// Calls the host core's callback `name` with the JSON `body` through the runner
/// (`AGORA_CORE_SOCKET`), signed with `AGORA_CALLBACK_KEY`, or with a made-up key when
/// `forge` is set (the runner must refuse that). Returns the status and the body.
pub fn callback(name: &str, body: &Value, forge: bool) -> Result<(u16, Vec<u8>), String> {
    let socket = std::env::var(CORE_SOCKET_ENV).map_err(|_| format!("{CORE_SOCKET_ENV} is not set"))?;
    let key = match std::env::var(CALLBACK_KEY_ENV).map(|k| Key::from_hex(&k)) {
        Ok(Ok(_)) if forge => Key::from_bytes([0x42; 32]),
        Ok(Ok(key)) => key,
        _ => return Err(format!("{CALLBACK_KEY_ENV} is missing or malformed")),
    };
    let path = agora_contract::callback_path(name);
    let body = body.to_string();
    let when = now();
    let signature = key.sign_callback("POST", &path, when, body.as_bytes());
    let mut stream = UnixStream::connect(&socket).map_err(|e| format!("cannot connect to {socket}: {e}"))?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n{TIMESTAMP_HEADER}: {when}\r\n{SIGNATURE_HEADER}: {signature}\r\n\
         connection: close\r\n\r\n",
        agora_contract::CORE_AUTHORITY,
        body.len()
    );
    stream
        .write_all(head.as_bytes())
        .and_then(|_| stream.write_all(body.as_bytes()))
        .map_err(|e| format!("cannot send the callback: {e}"))?;
    let mut answer = Vec::new();
    stream
        .take(MAX_BODY as u64 + 64 * 1024)
        .read_to_end(&mut answer)
        .map_err(|e| format!("cannot read the answer: {e}"))?;
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("the answer has no header end")?;
    let head = String::from_utf8_lossy(&answer[..split]);
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or("the answer has no status")?;
    Ok((status, answer[split + 4..].to_vec()))
}

/// Serves the contract until the process is stopped. `handler` answers entrypoints
/// (`None`: not found); `GET /healthz` is answered here.
pub fn serve<H>(name: &str, options: Options, handler: H) -> !
where
    H: Fn(&Request) -> Option<Reply> + Send + Sync + 'static,
{
    let fail = |what: String| -> ! {
        eprintln!("{name}: {what}");
        std::process::exit(2)
    };
    let key = match std::env::var(KEY_ENV).map(|k| Key::from_hex(&k)) {
        Ok(Ok(key)) => key,
        _ => fail(format!("{KEY_ENV} is missing or malformed; the runner provides it")),
    };
    let fd: i32 = match std::env::var(FD_ENV).map(|v| v.parse()) {
        Ok(Ok(fd)) => fd,
        _ => fail(format!("{FD_ENV} is missing; the runner hands over the socket to serve on")),
    };
    // SAFETY: the runner passes a listening Unix socket as this descriptor, for us alone.
    let listener = unsafe { <UnixListener as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    let shared = std::sync::Arc::new((key, handler));
    for stream in listener.incoming().flatten() {
        let shared = shared.clone();
        std::thread::spawn(move || handle(stream, &shared.0, options, &shared.1));
    }
    fail("the listener closed".into())
}
