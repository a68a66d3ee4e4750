//! `shiftright executor`: Ballista's executor with a function registry that holds the
//! analysis' functions, so the stages a scheduler ships here can be decoded and run.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use ballista_core::registry::BallistaFunctionRegistry;
use ballista_executor::executor_process::{start_executor_process, ExecutorProcessConfig};
use tokio_util::sync::CancellationToken;

use crate::{Error, Result};

/// How an executor reaches its scheduler, where it serves its results, and its limits.
#[derive(Debug, Clone)]
pub struct ExecutorOptions {
    /// The scheduler, `df://HOST:PORT`.
    pub scheduler: String,
    /// The address the executor's two services bind.
    pub bind_host: IpAddr,
    /// The Arrow Flight port other executors and clients fetch results from.
    pub flight_port: u16,
    /// The gRPC port the scheduler sends tasks to.
    pub grpc_port: u16,
    /// The host name others use for this executor, when it is not `bind_host`.
    pub advertise_host: Option<String>,
    /// Tasks run at once; 0: one per core.
    pub threads: usize,
    /// The executor's memory pool, shared by its tasks (spilling past it); None: 70% of the
    /// machine's or container's memory.
    pub memory_limit: Option<u64>,
    /// Where shuffle files and spills go; None: a temporary directory.
    pub work_dir: Option<PathBuf>,
}

/// Seconds an executor keeps trying to reach its scheduler before it gives up, so executors may
/// start before the scheduler does.
const CONNECT_TIMEOUT_SECONDS: u16 = 60;

/// Runs an executor until `shutdown` is cancelled, it receives SIGTERM, or it fails.
pub async fn run_executor(options: ExecutorOptions, shutdown: CancellationToken) -> Result<()> {
    let (scheduler_host, scheduler_port) =
        shiftright_analyze::read::engine::scheduler_address(&options.scheduler)
            .map_err(Error::Config)?;
    if options.flight_port == options.grpc_port {
        return Err(Error::Config(format!(
            "--flight-port and --grpc-port are both {}; an executor needs two ports",
            options.flight_port
        )));
    }
    if let Some(dir) = &options.work_dir {
        std::fs::create_dir_all(dir).map_err(|e| {
            Error::Config(format!(
                "cannot create the work directory {}: {e}",
                dir.display()
            ))
        })?;
    }
    let config = ExecutorProcessConfig {
        bind_host: options.bind_host.to_string(),
        external_host: options.advertise_host.clone(),
        port: options.flight_port,
        grpc_port: options.grpc_port,
        scheduler_host,
        scheduler_port,
        scheduler_connect_timeout_seconds: CONNECT_TIMEOUT_SECONDS,
        vcores: options.threads,
        work_dir: options.work_dir.as_ref().map(|d| d.display().to_string()),
        memory_pool_size: options.memory_limit,
        print_thread_info: false,
        override_function_registry: Some(Arc::new(registry())),
        ..ExecutorProcessConfig::default()
    };
    tracing::info!(
        scheduler = %options.scheduler, flight_port = options.flight_port,
        grpc_port = options.grpc_port, "executor starting"
    );
    tokio::select! {
        ran = start_executor_process(Arc::new(config)) => ran.map_err(|source| Error::Ballista {
            role: "executor",
            source,
        }),
        _ = shutdown.cancelled() => {
            tracing::info!("executor stopping");
            Ok(())
        }
    }
}

/// DataFusion's functions (the nested ones too: `array_element`, which user-defined metrics read,
/// is not in Ballista's default registry), Ballista's, and the analysis'.
fn registry() -> BallistaFunctionRegistry {
    let mut registry = BallistaFunctionRegistry::default();
    for f in ballista_core::extension::ballista_scalar_functions() {
        registry.scalar_functions.insert(f.name().to_string(), f);
    }
    for f in ballista_core::extension::ballista_aggregate_functions() {
        registry.aggregate_functions.insert(f.name().to_string(), f);
    }
    for f in shiftright_analyze::read::functions() {
        registry
            .aggregate_functions
            .insert(f.name().to_string(), Arc::new(f));
    }
    for f in shiftright_analyze::read::scalar_functions() {
        registry
            .scalar_functions
            .insert(f.name().to_string(), Arc::new(f));
    }
    registry
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_registry_holds_the_analysis_functions_and_datafusions() {
        let registry = registry();
        for name in ["user_experiments", "latency_distribution", "sum", "count"] {
            assert!(registry.aggregate_functions.contains_key(name), "{name}");
        }
        for name in [
            "latency_quantile",
            "get_field",
            "array_element",
            "array_position",
        ] {
            assert!(registry.scalar_functions.contains_key(name), "{name}");
        }
    }
}
