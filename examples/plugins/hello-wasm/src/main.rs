//! A WebAssembly Agora plugin in the `wasi:http/proxy` world.

use wstd::http::body::Body;
use wstd::http::{Request, Response, StatusCode};

fn json(status: StatusCode, content_type: &str, body: String) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Body::from(body))
        .expect("static response parts are valid")
}

fn problem(status: StatusCode, detail: &str) -> Response<Body> {
    let title = status.canonical_reason().unwrap_or("error");
    let body = agora_contract::problem_json(status.as_u16(), title, detail);
    json(status, agora_contract::PROBLEM_JSON, body)
}

/// The value of `"name"` in a flat JSON object, without a JSON library (keeps the module small).
fn name_of(body: &str) -> Option<String> {
    let rest = &body[body.find("\"name\"")? + 6..];
    let rest = rest.trim_start().strip_prefix(':')?.trim_start().strip_prefix('"')?;
    let end = rest.find('"')?;
    let name = &rest[..end];
    (!name.is_empty() && name.len() <= 100 && !name.contains('\\')).then(|| name.to_owned())
}

/// Checks the runner's signature (see `docs/plugin-contract.md`).
fn authorized(method: &str, path: &str, headers: &wstd::http::HeaderMap, body: &[u8]) -> Result<(), String> {
    let key = std::env::var(agora_contract::KEY_ENV)
        .map_err(|_| "the plugin has no signing key".to_owned())
        .and_then(|k| agora_contract::Key::from_hex(&k).map_err(|e| e.to_string()))?;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    key.verify(
        method,
        path,
        header(agora_contract::TIMESTAMP_HEADER),
        header(agora_contract::SIGNATURE_HEADER),
        body,
        now,
    )
    .map_err(|e| e.to_string())
}

/// `POST /callback` (feature `callback`): calls the host core's callback named by the
/// input's `name` through the runner (`http://agora-core`), signed with
/// `AGORA_CALLBACK_KEY`, or with a made-up key when the input holds `"forge":true`; answers
/// `{"status": N, "answer": ...}` with what came back.
#[cfg(feature = "callback")]
async fn call_back(input: &str) -> Response<Body> {
    let Some(name) = name_of(input) else {
        return problem(StatusCode::BAD_REQUEST, "send a JSON object with the callback's name");
    };
    let key = match std::env::var(agora_contract::CALLBACK_KEY_ENV).map(|k| agora_contract::Key::from_hex(&k)) {
        Ok(Ok(_)) if input.replace(' ', "").contains("\"forge\":true") => agora_contract::Key::from_bytes([0x42; 32]),
        Ok(Ok(key)) => key,
        _ => return problem(StatusCode::BAD_GATEWAY, "the plugin has no callback key"),
    };
    let path = agora_contract::callback_path(&name);
    let body = "{\"from\":\"hello-wasm\"}";
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let request = Request::post(format!("http://{}{path}", agora_contract::CORE_AUTHORITY))
        .header("content-type", "application/json")
        .header(agora_contract::TIMESTAMP_HEADER, now.to_string())
        .header(agora_contract::SIGNATURE_HEADER, key.sign_callback("POST", &path, now, body.as_bytes()))
        .body(Body::from(body));
    let request = match request {
        Ok(request) => request,
        Err(e) => return problem(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    match wstd::http::Client::new().send(request).await {
        Ok(response) => {
            let status = response.status().as_u16();
            let mut answer = response.into_body();
            let answer = answer.contents().await.map(<[u8]>::to_vec).unwrap_or_default();
            let answer = String::from_utf8_lossy(&answer);
            json(StatusCode::OK, "application/json", format!("{{\"status\":{status},\"answer\":{answer}}}"))
        }
        Err(e) => problem(StatusCode::BAD_GATEWAY, &format!("the callback failed: {e}")),
    }
}

#[wstd::http_server]
async fn main(request: Request<Body>) -> Result<Response<Body>, wstd::http::Error> {
    let path = request.uri().path().to_owned();
    let method = request.method().as_str().to_owned();
    let headers = request.headers().clone();
    let mut body = request.into_body();
    let bytes = body.contents().await.map(<[u8]>::to_vec).unwrap_or_default();
    if let Err(why) = authorized(&method, &path, &headers, &bytes) {
        return Ok(problem(StatusCode::UNAUTHORIZED, &why));
    }
    Ok(match (method.as_str(), path.as_str()) {
        ("GET", "/healthz") => json(StatusCode::OK, "application/json", "{\"status\":\"ok\"}".into()),
        ("POST", "/greet") => {
            let text = String::from_utf8_lossy(&bytes);
            match name_of(&text) {
                Some(name) => json(StatusCode::OK, "application/json", format!("{{\"greeting\":\"Hello, {name}!\"}}")),
                None => problem(StatusCode::BAD_REQUEST, "send a JSON object with a non-empty string field name"),
            }
        }
        #[cfg(feature = "callback")]
        ("POST", "/callback") => call_back(&String::from_utf8_lossy(&bytes)).await,
        _ => problem(StatusCode::NOT_FOUND, "no such entrypoint"),
    })
}
