//! WASM plugins: components in the `wasi:http/proxy` world, run in-process by wasmtime.
//!
//! One engine per runner (pooling allocator, epoch interruption, a ticker thread). A
//! component is compiled once per digest and engine and kept in `cache/wasm/`; later
//! loads map the compiled file. Every request gets a fresh store: memory capped by a
//! limiter, a deadline in epoch ticks, a WASI context with nothing but the launch's work
//! directory (as `/tmp`), the contract keys and the granted secrets, no sockets, and an
//! outbound-HTTP hook that allows only the granted hosts and hands requests to
//! `http://agora-core` to the launch's callbacks (`crate::callbacks`).

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use serde_json::json;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, ResourceLimiter, Store,
};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Scheme};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

use crate::audit::{Denied, Kind};
use crate::egress::{Destination, admit_destination};
use crate::{LaunchContext, MAX_OUTPUT_BYTES, PluginSource, RunError};

/// Epoch tick: the granularity of WASM timeouts.
const TICK: Duration = Duration::from_millis(2);
/// Resource-table entries (open files, streams, HTTP handles) a request may hold beyond
/// its `max_fds`.
const TABLE_BASE: usize = 64;

pub(crate) struct WasmEngine {
    engine: Engine,
    linker: Linker<State>,
    cache_dir: PathBuf,
    engine_hash: String,
}

impl WasmEngine {
    pub fn new(cache_dir: &Path, max_memory_mb: u32) -> wasmtime::Result<WasmEngine> {
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(128)
            .total_core_instances(1024)
            .total_memories(256)
            .total_tables(512)
            .max_memories_per_component(1)
            .max_memory_size(max_memory_mb as usize * 1024 * 1024);
        let mut config = Config::new();
        config
            .epoch_interruption(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config)?;
        let mut linker = Linker::new(&engine);
        // The full WASI set with an empty context: Rust std guests import wasi:cli and
        // wasi:random beside wasi:http, and fail to link without them.
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        let weak = engine.weak();
        std::thread::Builder::new()
            .name("agora-wasm-epoch".into())
            .spawn(move || {
                while let Some(engine) = weak.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(TICK);
                }
            })?;
        std::fs::create_dir_all(cache_dir)?;
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Ok(WasmEngine {
            engine,
            linker,
            cache_dir: cache_dir.to_path_buf(),
            engine_hash: format!("{:016x}", hasher.finish()),
        })
    }

    /// The compiled component for `source`, from the cache when there.
    pub fn component(&self, source: &PluginSource) -> Result<Component, RunError> {
        let cached = self.cache_dir.join(format!(
            "{}-{}.cwasm",
            source.digest.hex(),
            self.engine_hash
        ));
        if cached.exists() {
            // SAFETY: the runner alone writes this directory, and the file name binds the
            // compiled code to the module's digest and this engine's configuration.
            match unsafe { Component::deserialize_file(&self.engine, &cached) } {
                Ok(component) => return Ok(component),
                Err(e) => tracing::warn!("recompiling {}: {e}", cached.display()),
            }
        }
        let wasm_error = |problem: String| RunError::Source {
            path: source.code.clone(),
            problem,
        };
        let bytes = std::fs::read(&source.code)
            .map_err(|e| wasm_error(format!("cannot read the module: {e}")))?;
        // Compile exactly the bytes that were checked, never a later version of the file.
        if agora_core::Digest::of(&bytes) != source.digest {
            return Err(RunError::Tampered {
                path: source.code.clone(),
                expected: source.digest.to_string(),
                actual: agora_core::Digest::of(&bytes).to_string(),
            });
        }
        let compiled = self
            .engine
            .precompile_component(&bytes)
            .map_err(|e| wasm_error(format!("not a usable WebAssembly component: {e}")))?;
        let tmp = self.cache_dir.join(format!(
            ".{}-{}.{}.tmp",
            source.digest.hex(),
            self.engine_hash,
            std::process::id()
        ));
        std::fs::write(&tmp, &compiled)
            .and_then(|()| std::fs::rename(&tmp, &cached))
            .map_err(|e| wasm_error(format!("cannot write the compiled cache: {e}")))?;
        // SAFETY: as above; this is the file just written.
        unsafe { Component::deserialize_file(&self.engine, &cached) }
            .map_err(|e| wasm_error(format!("cannot load the compiled module: {e}")))
    }

    pub async fn load(
        &self,
        source: &PluginSource,
        context: LaunchContext,
    ) -> Result<WasmPlugin, RunError> {
        let component = self.component(source)?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .and_then(ProxyPre::new)
            .map_err(|e| RunError::Source {
                path: source.code.clone(),
                problem: format!("not a wasi:http/proxy component this runner can link: {e}"),
            })?;
        context.audit.record(
            Kind::Start,
            &context.subject,
            json!({"sandbox": "wasmtime"}),
        );
        Ok(WasmPlugin {
            pre,
            context: Arc::new(context),
        })
    }
}

/// Per-request store data.
struct State {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    limiter: MemoryCap,
    hooks: Egress,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for State {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

/// Caps linear memory and tables, and remembers that it refused.
struct MemoryCap {
    max_bytes: usize,
    hit: Arc<AtomicBool>,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_bytes {
            self.hit.store(true, Ordering::Relaxed);
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

/// The outbound-HTTP hook: only granted hosts, never internal addresses unless allowed.
struct Egress {
    context: Arc<LaunchContext>,
}

impl WasiHttpHooks for Egress {
    fn send_request(
        &mut self,
        request: http::Request<wasmtime_wasi_http::WasiBody>,
        options: Option<wasmtime_wasi_http::RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
    ) -> Box<
        dyn Future<
                Output = Result<
                    (
                        http::Response<wasmtime_wasi_http::WasiBody>,
                        Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
                    ),
                    wasmtime_wasi_http::Error,
                >,
            > + Send,
    > {
        drop(fut);
        let context = self.context.clone();
        Box::new(async move {
            if request.uri().host() == Some(agora_contract::CORE_AUTHORITY) {
                // A callback to the host's core: answered here, never sent anywhere.
                let answer = context.callbacks.handle(request).await;
                let response = answer.map(|body| {
                    Full::new(body)
                        .map_err(|never| match never {})
                        .boxed_unsync()
                });
                return Ok((
                    response,
                    Box::new(async { Ok(()) }) as Box<dyn Future<Output = _> + Send>,
                ));
            }
            let uri = request.uri();
            let tls = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
            let destination = Destination {
                host: uri.host().unwrap_or_default().to_owned(),
                port: uri.port_u16().unwrap_or(if tls { 443 } else { 80 }),
            };
            let Ok(addresses) = admit_destination(&context, &destination).await else {
                return Err(wasmtime_wasi_http::Error::HttpRequestDenied);
            };
            let mut request = request;
            if !tls {
                // Connect to the address that was checked, not to whatever the name
                // resolves to a moment later (DNS rebinding); the Host header keeps the
                // name. Over HTTPS the certificate binds the connection to the name.
                pin_to_address(&mut request, addresses[0])?;
            }
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options)
                .await
                .inspect_err(|e| {
                    tracing::debug!("outbound request to {destination} failed: {e:?}")
                })?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = _> + Send>,
            ))
        })
    }
}

/// Points a plain-HTTP request at `address`, with the original authority in `Host`.
fn pin_to_address(
    request: &mut http::Request<wasmtime_wasi_http::WasiBody>,
    address: std::net::SocketAddr,
) -> Result<(), wasmtime_wasi_http::Error> {
    let authority = request
        .uri()
        .authority()
        .cloned()
        .ok_or(wasmtime_wasi_http::Error::HttpRequestUriInvalid)?;
    let mut parts = request.uri().clone().into_parts();
    parts.authority = Some(
        address
            .to_string()
            .parse()
            .map_err(|_| wasmtime_wasi_http::Error::HttpRequestUriInvalid)?,
    );
    *request.uri_mut() = http::Uri::from_parts(parts)
        .map_err(|_| wasmtime_wasi_http::Error::HttpRequestUriInvalid)?;
    let host = http::HeaderValue::from_str(authority.as_str())
        .map_err(|_| wasmtime_wasi_http::Error::HttpRequestUriInvalid)?;
    request.headers_mut().insert(http::header::HOST, host);
    Ok(())
}

pub(crate) struct WasmPlugin {
    pre: ProxyPre<State>,
    context: Arc<LaunchContext>,
}

impl WasmPlugin {
    fn store(&self, memory_hit: Arc<AtomicBool>) -> Result<Store<State>, RunError> {
        let context = &self.context;
        let mut wasi = WasiCtx::builder();
        wasi.allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .preopened_dir(&context.workdir, "/tmp", FsPerms::ReadWrite)
            .map_err(|e| RunError::Sandbox(format!("cannot open the work directory: {e}")))?
            .env("TMPDIR", "/tmp");
        for (name, value) in &context.environment {
            wasi.env(name, value);
        }
        let mut table = ResourceTable::new();
        table.set_max_capacity(context.grant.limits.max_fds as usize + TABLE_BASE);
        let mut store = Store::new(
            self.pre.engine(),
            State {
                wasi: wasi.build(),
                http: WasiHttpCtx::new(),
                table,
                limiter: MemoryCap {
                    max_bytes: context.grant.limits.memory_mb as usize * 1024 * 1024,
                    hit: memory_hit,
                },
                hooks: Egress {
                    context: context.clone(),
                },
            },
        );
        store.limiter(|state| &mut state.limiter);
        // Yield to the async runtime at every tick: a busy guest never holds a worker
        // thread, and the request's wall-clock timeout (in `handle`) can always cut it.
        store.set_epoch_deadline(1);
        store.epoch_deadline_async_yield_and_update(1);
        Ok(store)
    }

    pub async fn handle(
        &self,
        request: http::Request<Bytes>,
        timeout: Duration,
    ) -> Result<http::Response<Bytes>, RunError> {
        let memory_hit = Arc::new(AtomicBool::new(false));
        let mut store = self.store(memory_hit.clone())?;
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let request = request.map(|body| {
            Full::new(body)
                .map_err(|never: std::convert::Infallible| -> ErrorCode { match never {} })
        });
        let setup =
            |e: wasmtime::Error| RunError::Sandbox(format!("cannot hand over the request: {e}"));
        let incoming = store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, request)
            .map_err(setup)?;
        let outparam = store
            .data_mut()
            .http()
            .new_response_outparam(sender)
            .map_err(setup)?;
        // The guest and the reading of its answer run in this task, side by side: the
        // guest may still be writing the body after it has set the response.
        // The guest owns the store, so that when it ends (even by a trap) the response
        // outparam is dropped and the reader below learns there is no answer.
        let pre = &self.pre;
        let guest = async move {
            let proxy = pre.instantiate_async(&mut store).await?;
            proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, incoming, outparam)
                .await
        };
        let answer = async {
            let response = receiver.await.map_err(|_| None)?;
            let response = response.map_err(|code| {
                Some(RunError::Protocol(format!(
                    "the component answered with an error: {code:?}"
                )))
            })?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, MAX_OUTPUT_BYTES)
                .collect()
                .await
                .map_err(|e| {
                    Some(RunError::Protocol(format!(
                        "cannot read the response body: {e}"
                    )))
                })?
                .to_bytes();
            Ok(http::Response::from_parts(parts, body))
        };
        // The epoch deadline stops guest code; this also stops a guest waiting on the
        // host (an outbound request), and dropping the futures drops the store.
        let both = async { tokio::join!(guest, answer) };
        match tokio::time::timeout(timeout + TICK * 4, both).await {
            Err(_) => Err(self.timed_out(timeout)),
            Ok((_, Ok(response))) => Ok(response),
            Ok((_, Err(Some(error)))) => Err(error),
            Ok((guest, Err(None))) => Err(self.failure(guest, &memory_hit)),
        }
    }

    fn timed_out(&self, timeout: Duration) -> RunError {
        self.context.audit.record(
            Kind::Denial,
            &self.context.subject,
            json!({"denied": Denied::Limit, "limit": "timeout", "timeout_ms": timeout.as_millis() as u64}),
        );
        RunError::Timeout {
            ms: timeout.as_millis() as u64,
        }
    }

    /// Why the guest ended without answering.
    fn failure(&self, guest: wasmtime::Result<()>, memory_hit: &AtomicBool) -> RunError {
        let error = match guest {
            Ok(()) => {
                return RunError::Protocol(
                    "the component returned without setting a response".into(),
                );
            }
            Err(e) => e,
        };
        if memory_hit.load(Ordering::Relaxed) {
            let limit = self.context.grant.limits.memory_mb;
            self.context.audit.record(
                Kind::Denial,
                &self.context.subject,
                json!({"denied": Denied::Limit, "limit": "memory", "memory_mb": limit}),
            );
            return RunError::Limit {
                what: format!("memory ({limit} MiB)"),
            };
        }
        let table_full = matches!(
            error.downcast_ref::<wasmtime::component::ResourceTableError>(),
            Some(wasmtime::component::ResourceTableError::Full)
        ) || format!("{error:#}").contains("resource table has no free keys");
        if table_full {
            let limit = self.context.grant.limits.max_fds;
            self.context.audit.record(
                Kind::Denial,
                &self.context.subject,
                json!({"denied": Denied::Limit, "limit": "handles", "max_fds": limit}),
            );
            return RunError::Limit {
                what: format!("open handles ({limit} files, streams and requests)"),
            };
        }
        RunError::Crashed(format!("the component trapped: {error:#}"))
    }
}
