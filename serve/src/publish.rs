//! The decisions topic: each verdict change as one Kafka record (key: the experiment; value: a
//! [`Decision`], `schemas/decision.schema.json`), and a heartbeat per experiment every
//! `heartbeat`, so a consumer can tell "no change" from "no publisher".
//!
//! The producer is idempotent (`enable.idempotence`, `acks=all`): librdkafka's retries never
//! duplicate or reorder a record within a partition. Delivery is at least once across restarts:
//! a restarted server announces each experiment's verdict again as a decision whose
//! `previous_verdict` is null, and consumers act on the verdict, not on the count of records.
//! A record that cannot be delivered is logged and retried with the next heartbeat; it never
//! stops the evaluations or the endpoint.

use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::board::Board;
use crate::decision::Decision;
use crate::error::{Error, Result};
use crate::evaluate::now_ms;

/// Where and how to publish.
#[derive(Debug, Clone)]
pub struct PublishConfig {
    /// Kafka bootstrap servers.
    pub brokers: String,
    /// The decisions topic.
    pub topic: String,
    /// Time between heartbeats.
    pub heartbeat: Duration,
    /// Extra librdkafka properties (TLS, SASL), applied last.
    pub kafka_options: Vec<(String, String)>,
}

/// A producer of decision records.
pub struct Publisher {
    producer: FutureProducer,
    topic: String,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("topic", &self.topic)
            .finish()
    }
}

impl Publisher {
    /// An idempotent producer for `config.topic`.
    pub fn new(config: &PublishConfig) -> Result<Publisher> {
        let client = Self::client_config(config);
        let producer = client.create().map_err(|source| Error::Kafka {
            context: format!("creating the decisions producer for {}", config.brokers),
            source,
        })?;
        Ok(Publisher {
            producer,
            topic: config.topic.clone(),
        })
    }

    /// The producer's librdkafka configuration: idempotent, every replica acknowledging, then the
    /// `--kafka-option`s (see `shiftright_schemas::kafka`).
    pub fn client_config(config: &PublishConfig) -> ClientConfig {
        let mut client = ClientConfig::new();
        client.extend(shiftright_schemas::kafka::client_properties(
            &config.brokers,
            "shiftright-decisions",
            &[
                ("enable.idempotence", "true"),
                ("acks", "all"),
                ("message.timeout.ms", "30000"),
            ],
            &config.kafka_options,
        ));
        client
    }

    /// Sends `decision` and waits for its acknowledgement.
    pub async fn send(&self, decision: &Decision) -> Result<()> {
        let value = serde_json::to_vec(decision).map_err(|e| Error::Encode(e.to_string()))?;
        let record = FutureRecord::to(&self.topic)
            .key(decision.experiment.as_bytes())
            .payload(&value);
        self.producer
            .send(record, Duration::from_secs(30))
            .await
            .map(|_| ())
            .map_err(|(source, _)| Error::Kafka {
                context: format!("sending a decision to {}", self.topic),
                source,
            })
    }
}

/// Publishes the board's decisions as they are announced, and heartbeats, until `shutdown`.
pub async fn run(
    publisher: Publisher,
    board: Board,
    heartbeat: Duration,
    shutdown: CancellationToken,
) {
    let mut decisions = board.subscribe();
    let mut beats = tokio::time::interval(heartbeat);
    beats.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let batch: Vec<Decision> = tokio::select! {
            _ = shutdown.cancelled() => return,
            received = decisions.recv() => match received {
                Ok(d) => vec![d],
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "the decisions topic fell behind; the next heartbeat repeats every verdict");
                    continue;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = beats.tick() => board.heartbeats(now_ms()),
        };
        for decision in batch {
            if let Err(e) = publisher.send(&decision).await {
                tracing::warn!(
                    experiment = %decision.experiment, verdict = %decision.verdict,
                    error = %crate::evaluate::chain(&e),
                    "a decision was not published; the next heartbeat repeats it"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_decisions_producer_takes_the_secure_options_and_stays_idempotent() {
        let config = PublishConfig {
            brokers: "broker:9093".into(),
            topic: "decisions".into(),
            heartbeat: Duration::from_secs(30),
            kafka_options: vec![
                ("security.protocol".into(), "ssl".into()),
                ("ssl.ca.location".into(), "/etc/kafka/ca.pem".into()),
            ],
        };
        let client = Publisher::client_config(&config);
        assert_eq!(client.get("bootstrap.servers"), Some("broker:9093"));
        assert_eq!(client.get("security.protocol"), Some("ssl"));
        assert_eq!(client.get("ssl.ca.location"), Some("/etc/kafka/ca.pem"));
        assert_eq!(client.get("enable.idempotence"), Some("true"));
        assert_eq!(client.get("acks"), Some("all"));
    }
}
