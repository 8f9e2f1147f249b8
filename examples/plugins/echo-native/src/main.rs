//! A native Agora plugin: `POST /echo` answers its JSON body back.

use native_kit::{Options, Reply, serve};

fn main() {
    serve("echo-native", Options::default(), |request| {
        match (request.method.as_str(), request.path.as_str()) {
            ("POST", "/echo") => Some(match request.json() {
                Ok(value) => Reply::json(200, &value),
                Err(problem) => problem,
            }),
            _ => None,
        }
    })
}
