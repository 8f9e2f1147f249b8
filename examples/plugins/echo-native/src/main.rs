//! A native Agora plugin: `POST /echo` answers its JSON body back; `POST /callback` calls
//! back the host's core (`{"name": "notes.add", "body": {...}, "forge": false}`) and
//! answers what the core, or the runner, said.

use native_kit::{Options, Reply, callback, serve};
use serde_json::{Value, json};

fn main() {
    serve("echo-native", Options::default(), |request| {
        match (request.method.as_str(), request.path.as_str()) {
            ("POST", "/echo") => Some(match request.json() {
                Ok(value) => Reply::json(200, &value),
                Err(problem) => problem,
            }),
            ("POST", "/callback") => Some(match request.json() {
                Ok(input) => call_back(&input),
                Err(problem) => problem,
            }),
            _ => None,
        }
    })
}

fn call_back(input: &Value) -> Reply {
    let Some(name) = input["name"].as_str() else {
        return Reply::problem(400, "Bad Request", "`name` (the callback to call) is missing");
    };
    let forge = input["forge"].as_bool().unwrap_or(false);
    let body = input.get("body").cloned().unwrap_or(json!({}));
    match callback(name, &body, forge) {
        Ok((status, answer)) => {
            let answer = serde_json::from_slice(&answer)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&answer).into_owned()));
            Reply::json(200, &json!({"status": status, "answer": answer}))
        }
        Err(why) => Reply::problem(502, "Bad Gateway", &why),
    }
}
