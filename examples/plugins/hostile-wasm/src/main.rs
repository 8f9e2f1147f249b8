//! A hostile WebAssembly plugin: each entrypoint attempts one escape and reports it.

use serde_json::{Value, json};
use wstd::http::body::Body;
use wstd::http::{Client, Request, Response, StatusCode};

fn reply(status: StatusCode, content_type: &str, body: String) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Body::from(body))
        .expect("static response parts are valid")
}

fn problem(status: StatusCode, detail: &str) -> Response<Body> {
    let title = status.canonical_reason().unwrap_or("error");
    reply(status, agora_contract::PROBLEM_JSON, agora_contract::problem_json(status.as_u16(), title, detail))
}

fn outcome<T>(result: Result<T, impl std::fmt::Display>, ok: impl FnOnce(T) -> Value) -> Value {
    match result {
        Ok(v) => json!({"ok": true, "result": ok(v)}),
        Err(e) => json!({"ok": false, "error": e.to_string()}),
    }
}

fn verify(method: &str, path: &str, headers: &wstd::http::HeaderMap, body: &[u8]) -> Result<(), String> {
    let key = std::env::var(agora_contract::KEY_ENV)
        .map_err(|_| "no signing key".to_owned())
        .and_then(|k| agora_contract::Key::from_hex(&k).map_err(|e| e.to_string()))?;
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    key.verify(method, path, header(agora_contract::TIMESTAMP_HEADER), header(agora_contract::SIGNATURE_HEADER), body, now)
        .map_err(|e| e.to_string())
}

async fn fetch(url: &str) -> Result<u16, String> {
    let request = Request::get(url).body(Body::empty()).map_err(|e| e.to_string())?;
    let response = Client::new().send(request).await.map_err(|e| format!("{e:?}"))?;
    Ok(response.status().as_u16())
}

#[wstd::http_server]
async fn main(request: Request<Body>) -> Result<Response<Body>, wstd::http::Error> {
    let path = request.uri().path().to_owned();
    let method = request.method().as_str().to_owned();
    let headers = request.headers().clone();
    let mut body = request.into_body();
    let bytes = body.contents().await.map(<[u8]>::to_vec).unwrap_or_default();
    if let Err(why) = verify(&method, &path, &headers, &bytes) {
        return Ok(problem(StatusCode::UNAUTHORIZED, &why));
    }
    if method == "GET" && path == "/healthz" {
        return Ok(reply(StatusCode::OK, "application/json", "{\"status\":\"ok\"}".into()));
    }
    let input: Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(e) => return Ok(problem(StatusCode::BAD_REQUEST, &format!("the body is not JSON: {e}"))),
    };
    let field = |name: &str| input[name].as_str().unwrap_or_default().to_owned();
    let answer = match path.as_str() {
        "/read" => outcome(std::fs::read(field("path")), |b| json!(b.len())),
        "/write" => outcome(std::fs::write(field("path"), b"owned"), |()| json!("written")),
        "/fetch" => outcome(fetch(&field("url")).await, Value::from),
        "/alloc" => {
            let mb = input["mb"].as_u64().unwrap_or(1024) as usize;
            let mut block: Vec<u8> = Vec::new();
            block.resize(mb * 1024 * 1024, 1);
            json!({"ok": true, "allocated_mb": mb, "sample": block[block.len() / 2]})
        }
        "/sleep" => {
            // Waits on the host (a clock), where epoch interruption cannot reach it.
            wstd::task::sleep(wstd::time::Duration::from_secs(60)).await;
            json!({"ok": true, "result": "woke up"})
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
                match std::fs::File::create(format!("/tmp/f{}", files.len())) {
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
        _ => return Ok(problem(StatusCode::NOT_FOUND, "no such entrypoint")),
    };
    Ok(reply(StatusCode::OK, "application/json", answer.to_string()))
}
