//! The embedded Kafka broker: librdkafka's mock cluster, which speaks the Kafka protocol over TCP
//! on loopback. It lets the demo and the tests run the real consumer-group code with no setup, and
//! lets separate processes (crash tests, `shiftright broker`) share one broker.

use std::ffi::{CStr, CString};

use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, Producer};
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use rdkafka_sys as rdsys;

use crate::error::{Error, Result};

/// A running mock cluster. Dropping it stops the brokers.
pub struct EmbeddedBroker {
    /// The client that owns the mock cluster; the cluster lives as long as it does. Never read.
    #[allow(dead_code)]
    host: BaseProducer,
    cluster: *mut rdsys::rd_kafka_mock_cluster_t,
    bootstrap: String,
}

// SAFETY: the mock cluster's functions only post operations to the cluster's own thread under its
// lock (librdkafka's rdkafka_mock.c), so the handle may be used from any thread; `host` keeps it alive.
unsafe impl Send for EmbeddedBroker {}
// SAFETY: as above; no method needs exclusive access.
unsafe impl Sync for EmbeddedBroker {}

impl std::fmt::Debug for EmbeddedBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedBroker")
            .field("bootstrap", &self.bootstrap)
            .finish()
    }
}

fn check(err: rdsys::rd_kafka_resp_err_t, context: String) -> Result<()> {
    if err == RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR {
        Ok(())
    } else {
        Err(Error::Broker(format!("{context}: {err:?}")))
    }
}

impl EmbeddedBroker {
    /// Starts a cluster of `brokers` brokers on loopback.
    pub fn start(brokers: i32) -> Result<Self> {
        let host: BaseProducer = ClientConfig::new()
            .set("test.mock.num.brokers", brokers.to_string())
            .create()
            .map_err(|e| Error::Broker(format!("starting the mock cluster: {e}")))?;
        // SAFETY: the pointer is the live client's; librdkafka returns the cluster it created for it.
        let cluster = unsafe { rdsys::rd_kafka_handle_mock_cluster(host.client().native_ptr()) };
        if cluster.is_null() {
            return Err(Error::Broker("librdkafka created no mock cluster".into()));
        }
        // SAFETY: `cluster` is valid while `host` lives; the returned string is owned by the cluster.
        let bootstrap = unsafe { CStr::from_ptr(rdsys::rd_kafka_mock_cluster_bootstraps(cluster)) }
            .to_string_lossy()
            .into_owned();
        // Group (re)joins otherwise wait out the broker's default initial rebalance delay (3 s).
        // SAFETY: valid cluster handle.
        unsafe { rdsys::rd_kafka_mock_group_initial_rebalance_delay_ms(cluster, 0) };
        Ok(EmbeddedBroker {
            host,
            cluster,
            bootstrap,
        })
    }

    /// The `bootstrap.servers` string clients connect with.
    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap
    }

    /// Creates a topic (the mock does not support the admin API's CreateTopics).
    pub fn create_topic(&self, name: &str, partitions: i32) -> Result<()> {
        let c_name = CString::new(name)
            .map_err(|_| Error::Broker(format!("topic name {name:?} has a NUL byte")))?;
        // SAFETY: valid cluster handle and NUL-terminated name.
        let err = unsafe {
            rdsys::rd_kafka_mock_topic_create(self.cluster, c_name.as_ptr(), partitions, 1)
        };
        check(err, format!("creating topic {name}"))
    }

    /// Takes broker `id` (1-based) down: its connections are closed and refused.
    pub fn broker_down(&self, id: i32) -> Result<()> {
        // SAFETY: valid cluster handle.
        check(
            unsafe { rdsys::rd_kafka_mock_broker_set_down(self.cluster, id) },
            format!("taking broker {id} down"),
        )
    }

    /// Brings broker `id` back up.
    pub fn broker_up(&self, id: i32) -> Result<()> {
        // SAFETY: valid cluster handle.
        check(
            unsafe { rdsys::rd_kafka_mock_broker_set_up(self.cluster, id) },
            format!("bringing broker {id} up"),
        )
    }

    /// Makes the next requests of kind `api` fail with `errors`, one each, in order.
    pub fn push_request_errors(&self, api: RDKafkaApiKey, errors: &[RDKafkaRespErr]) {
        // SAFETY: valid cluster handle; the array is read during the call only.
        unsafe {
            rdsys::rd_kafka_mock_push_request_errors_array(
                self.cluster,
                api as i16,
                errors.len(),
                errors.as_ptr(),
            )
        };
    }
}
