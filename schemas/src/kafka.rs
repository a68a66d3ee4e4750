//! How every Kafka client shiftright makes is configured: the ingest's consumer, its dead-letter
//! producer, `serve`'s decisions producer, and the producers of `produce` and `generate`.
//!
//! One rule, so that a secure broker works for all of them or for none: the client's own
//! settings first, then the user's `--kafka-option key=value`s (TLS, SASL, timeouts), applied last
//! so they win. A client that was built from the brokers alone could not reach a broker that
//! requires `security.protocol=ssl` while the others could; this module is what prevents that.
//! Properties meant for the other kind of client (a consumer's `session.timeout.ms` given to a
//! producer) are ignored by librdkafka with a warning, so one list of options serves every client.

/// The librdkafka properties of one client, in the order they must be applied: bootstrap servers,
/// `client.id`, the client's `defaults`, then the user's `options`.
pub fn client_properties(
    brokers: &str,
    client_id: &str,
    defaults: &[(&str, &str)],
    options: &[(String, String)],
) -> Vec<(String, String)> {
    let mut properties = vec![
        ("bootstrap.servers".to_string(), brokers.to_string()),
        ("client.id".to_string(), client_id.to_string()),
    ];
    properties.extend(
        defaults
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string())),
    );
    properties.extend(options.iter().cloned());
    properties
}

/// The value `properties` ends with for `key` (the last one set), as librdkafka will see it.
pub fn effective<'a>(properties: &'a [(String, String)], key: &str) -> Option<&'a str> {
    properties
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_users_options_come_last_and_win() {
        let options = vec![
            ("security.protocol".to_string(), "sasl_ssl".to_string()),
            ("message.timeout.ms".to_string(), "5000".to_string()),
        ];
        let properties = client_properties(
            "b:9092",
            "shiftright-test",
            &[("message.timeout.ms", "30000"), ("acks", "all")],
            &options,
        );
        assert_eq!(effective(&properties, "bootstrap.servers"), Some("b:9092"));
        assert_eq!(effective(&properties, "client.id"), Some("shiftright-test"));
        assert_eq!(
            effective(&properties, "security.protocol"),
            Some("sasl_ssl")
        );
        assert_eq!(effective(&properties, "message.timeout.ms"), Some("5000"));
        assert_eq!(effective(&properties, "acks"), Some("all"));
        assert_eq!(effective(&properties, "sasl.mechanism"), None);
    }
}
