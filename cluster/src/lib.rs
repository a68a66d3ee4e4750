//! shiftright on a Ballista cluster: a scheduler and an executor that know the analysis' own
//! functions.
//!
//! The analysis is a DataFusion plan whose aggregates (`user_experiments`,
//! `latency_distribution`) and reader (`latency_quantile`) are ours. A plan travels to a Ballista
//! scheduler as protobuf that names those functions; the scheduler plans it in a session of its
//! own and ships each stage to executors, which decode it with a function registry of their own.
//! Stock Ballista binaries know neither, so `shiftright scheduler` and `shiftright executor`
//! are Ballista's processes with our functions registered on both sides ([`scheduler`],
//! [`executor`]); a client reaches them with `--cluster df://HOST:PORT`
//! (`shiftright_analyze::Engine::cluster`).

pub mod executor;
pub mod scheduler;

pub use executor::{run_executor, ExecutorOptions};
pub use scheduler::{run_scheduler, SchedulerOptions};

/// Why a scheduler or executor stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An address or option is not usable; the message says what to pass instead.
    #[error("{0}")]
    Config(String),
    /// Ballista failed to start or stopped with an error.
    #[error("{role} failed")]
    Ballista {
        /// `scheduler` or `executor`.
        role: &'static str,
        /// Ballista's error.
        #[source]
        source: ballista_core::error::BallistaError,
    },
}

/// Result alias of the cluster crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
