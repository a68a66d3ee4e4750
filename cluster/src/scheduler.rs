//! `shiftright scheduler`: Ballista's scheduler with a session that knows the analysis'
//! functions, so a client's plan that names them can be decoded and planned here.

use std::net::SocketAddr;
use std::sync::Arc;

use ballista_core::utils::default_session_builder;
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use ballista_scheduler::scheduler_process::start_server;
use datafusion::execution::registry::FunctionRegistry;
use datafusion::execution::SessionState;
use datafusion::prelude::SessionConfig;
use tokio_util::sync::CancellationToken;

use crate::{Error, Result};

/// Where a scheduler listens and how executors and clients are told to reach it.
#[derive(Debug, Clone)]
pub struct SchedulerOptions {
    /// The gRPC address clients (`--cluster`) and executors connect to.
    pub bind: SocketAddr,
    /// The host name others use for this scheduler, when it is not `bind`'s address (behind NAT
    /// or a Kubernetes service).
    pub advertise_host: Option<String>,
}

/// Runs a scheduler until `shutdown` is cancelled or it fails.
pub async fn run_scheduler(options: SchedulerOptions, shutdown: CancellationToken) -> Result<()> {
    let config = SchedulerConfig {
        bind_host: options.bind.ip().to_string(),
        bind_port: options.bind.port(),
        external_host: options
            .advertise_host
            .clone()
            .unwrap_or_else(|| options.bind.ip().to_string()),
        override_session_builder: Some(Arc::new(session_builder)),
        ..SchedulerConfig::default()
    };
    let ballista = |source| Error::Ballista {
        role: "scheduler",
        source,
    };
    let cluster = BallistaCluster::new_from_config(&config)
        .await
        .map_err(ballista)?;
    tracing::info!(bind = %options.bind, "scheduler listening (clients: --cluster df://{})", options.bind);
    tokio::select! {
        served = start_server(cluster, options.bind, Arc::new(config)) => served.map_err(ballista),
        _ = shutdown.cancelled() => {
            tracing::info!("scheduler stopping");
            Ok(())
        }
    }
}

/// Ballista's session for a job, with the analysis' functions and physical rule added.
fn session_builder(config: SessionConfig) -> datafusion::common::Result<SessionState> {
    // The scheduler plans the jobs: it takes the analysis' physical rule as a local session does.
    let mut state = datafusion::execution::SessionStateBuilder::new_from_existing(
        default_session_builder(config)?,
    )
    .with_physical_optimizer_rule(Arc::new(
        shiftright_analyze::read::one_step::UserAggregateInOneStep,
    ))
    .build();
    register(&mut state)?;
    Ok(state)
}

/// Adds the analysis' aggregate and scalar functions to a session.
fn register(state: &mut SessionState) -> datafusion::common::Result<()> {
    for f in shiftright_analyze::read::functions() {
        state.register_udaf(Arc::new(f))?;
    }
    for f in shiftright_analyze::read::scalar_functions() {
        state.register_udf(Arc::new(f))?;
    }
    Ok(())
}
