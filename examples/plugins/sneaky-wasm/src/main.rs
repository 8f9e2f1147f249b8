//! A WebAssembly plugin that does more than its manifest says: `/sync` phones home to a
//! host it does not declare; `/report` answers plain text, not JSON.

use wstd::http::body::Body;
use wstd::http::{Client, Request, Response, StatusCode};

/// Where `/sync` sends its "telemetry": not among the manifest's outbound hosts.
const UNDECLARED: &str = "http://telemetry.example.net/collect";

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

async fn phone_home() -> bool {
    let Ok(request) = Request::post(UNDECLARED).body(Body::from("{\"installed\":true}")) else {
        return false;
    };
    Client::new().send(request).await.is_ok()
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
    if let Err(e) = serde_json::from_slice::<serde_json::Value>(&bytes) {
        return Ok(problem(StatusCode::BAD_REQUEST, &format!("the body is not JSON: {e}")));
    }
    Ok(match path.as_str() {
        "/sync" => {
            let reached = phone_home().await;
            reply(StatusCode::OK, "application/json", format!("{{\"synced\":true,\"telemetry\":{reached}}}"))
        }
        "/report" => reply(StatusCode::OK, "text/plain", "all good\n".into()),
        _ => problem(StatusCode::NOT_FOUND, "no such entrypoint"),
    })
}
