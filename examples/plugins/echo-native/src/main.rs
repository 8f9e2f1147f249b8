//! A native Agora plugin: HTTP/1.1 over the Unix socket named by `AGORA_PLUGIN_SOCKET`.
//! Standard library only, one request per connection.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};

const MAX_BODY: usize = 1024 * 1024;

fn respond(stream: &mut UnixStream, status: &str, content_type: &str, body: &[u8]) {
    let head = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes()).and_then(|_| stream.write_all(body));
}

fn problem(stream: &mut UnixStream, status: &str, detail: &str) {
    let code: u16 = status.split(' ').next().and_then(|c| c.parse().ok()).unwrap_or(500);
    let body = format!(
        "{{\"type\":\"urn:agora:problem:plugin\",\"title\":\"{status}\",\"status\":{code},\"detail\":\"{}\"}}",
        detail.replace('\\', "\\\\").replace('"', "\\\"")
    );
    respond(stream, status, "application/problem+json", body.as_bytes());
}

fn handle(mut stream: UnixStream) {
    let mut reader = BufReader::new(match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    });
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).is_err() || line == "\r\n" || line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    if length > MAX_BODY {
        return problem(&mut stream, "413 Content Too Large", "bodies are limited to 1 MiB");
    }
    let mut body = vec![0u8; length];
    if reader.read_exact(&mut body).is_err() {
        return problem(&mut stream, "400 Bad Request", "the body ended early");
    }
    match (method, path) {
        ("GET", "/healthz") => respond(&mut stream, "200 OK", "application/json", b"{\"status\":\"ok\"}"),
        ("POST", "/echo") => {
            let trimmed = String::from_utf8_lossy(&body).trim().to_owned();
            if !(trimmed.starts_with('{') || trimmed.starts_with('[')) {
                return problem(&mut stream, "400 Bad Request", "the body must be a JSON object or array");
            }
            respond(&mut stream, "200 OK", "application/json", trimmed.as_bytes())
        }
        _ => problem(&mut stream, "404 Not Found", "no such entrypoint"),
    }
}

fn main() {
    let Some(path) = std::env::var_os("AGORA_PLUGIN_SOCKET") else {
        eprintln!("echo-native: AGORA_PLUGIN_SOCKET is not set; the runner names the socket to serve on");
        std::process::exit(2);
    };
    let listener = match UnixListener::bind(&path) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("echo-native: cannot listen on {}: {e}", path.to_string_lossy());
            std::process::exit(1);
        }
    };
    for stream in listener.incoming().flatten() {
        handle(stream);
    }
}
