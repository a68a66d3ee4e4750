//! Traffic for shiftright: reproducible scenarios of canaries and A/B tests (users, allocation,
//! error rates, lognormal latency, conversions, heavy-tailed revenue, synthetic users, malformed
//! messages), the sinks that send them (Kafka, JSON lines), and the brokers that the demo, the
//! tests and the benchmarks run on (the embedded mock cluster, tansu).

pub mod broker;
pub mod error;
pub mod generate;
pub mod scenario;
pub mod sink;
pub mod tansu;

pub use broker::EmbeddedBroker;
pub use error::{Error, Result};
pub use generate::{generate, GenerationSummary, Message, VariantTruth};
pub use scenario::{ExperimentSpec, Scenario, VariantSpec};
pub use sink::{produce_paced, JsonLinesSink, KafkaSink, RawSink, TopicNames};
pub use tansu::Tansu;
