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
    let body = format!(
        "{{\"type\":\"urn:agora:problem:plugin\",\"title\":\"{}\",\"status\":{},\"detail\":\"{detail}\"}}",
        status.canonical_reason().unwrap_or("error"),
        status.as_u16()
    );
    json(status, "application/problem+json", body)
}

/// The value of `"name"` in a flat JSON object, without a JSON library (keeps the module small).
fn name_of(body: &str) -> Option<String> {
    let rest = &body[body.find("\"name\"")? + 6..];
    let rest = rest.trim_start().strip_prefix(':')?.trim_start().strip_prefix('"')?;
    let end = rest.find('"')?;
    let name = &rest[..end];
    (!name.is_empty() && name.len() <= 100 && !name.contains('\\')).then(|| name.to_owned())
}

#[wstd::http_server]
async fn main(request: Request<Body>) -> Result<Response<Body>, wstd::http::Error> {
    let path = request.uri().path().to_owned();
    let method = request.method().as_str().to_owned();
    Ok(match (method.as_str(), path.as_str()) {
        ("GET", "/healthz") => json(StatusCode::OK, "application/json", "{\"status\":\"ok\"}".into()),
        ("POST", "/greet") => {
            let mut body = request.into_body();
            let text = body.str_contents().await.map(str::to_owned).unwrap_or_default();
            match name_of(&text) {
                Some(name) => json(StatusCode::OK, "application/json", format!("{{\"greeting\":\"Hello, {name}!\"}}")),
                None => problem(StatusCode::BAD_REQUEST, "send a JSON object with a non-empty string field name"),
            }
        }
        _ => problem(StatusCode::NOT_FOUND, "no such entrypoint"),
    })
}
