//! The decoder's contract: each input is one event or one rejection with the right reason, and no
//! input, however odd, panics it.

use proptest::prelude::*;
use shiftright_schemas::Table;

use super::*;
use crate::config::IngestConfig;

const NOW: i64 = 1_790_000_000_000;

fn decoder() -> Decoder {
    Decoder::new(&IngestConfig::new("localhost:9092", "/tmp/unused"))
}

fn decode(table: Table, payload: &[u8]) -> Result<Event, Rejection> {
    decoder().decode(table, Some(payload), NOW)
}

fn reason(table: Table, payload: &str) -> RejectReason {
    decode(table, payload.as_bytes()).expect_err(payload).reason
}

const GOOD_REQUEST: &str = r#"{"event_id":"e1","ts":1790000000000,"user_id":"u1","experiment":"checkout","variant":"v2","status":503,"latency_ms":12.5,"endpoint":"GET /cart"}"#;

#[test]
fn a_good_request_decodes_with_defaults() {
    let event = decode(Table::Requests, GOOD_REQUEST.as_bytes()).unwrap();
    let Event::Request {
        common,
        experiment,
        variant,
        status,
        latency_ms,
        mode,
        endpoint,
        service,
        ..
    } = event
    else {
        panic!("not a request");
    };
    assert_eq!(common.event_id, "e1");
    assert!(!common.synthetic);
    assert_eq!(
        (experiment.as_str(), variant.as_str(), status, latency_ms),
        ("checkout", "v2", 503, 12.5)
    );
    assert_eq!(mode, "live");
    assert_eq!(endpoint.as_deref(), Some("GET /cart"));
    assert_eq!(service, None);
}

#[test]
fn rfc3339_and_epoch_millis_are_the_same_instant() {
    let a = decode(Table::Exposures, br#"{"event_id":"e","ts":"2026-09-21T14:13:20Z","user_id":"u","experiment":"x","variant":"a"}"#).unwrap();
    let b = decode(
        Table::Exposures,
        br#"{"event_id":"e","ts":1790000000000,"user_id":"u","experiment":"x","variant":"a"}"#,
    )
    .unwrap();
    assert_eq!(a.common().ts_ms, 1_790_000_000_000);
    assert_eq!(a, b);
    assert_eq!(a.date(), "2026-09-21");
}

#[test]
fn synthetic_users_are_flagged_by_field_or_prefix() {
    let by_prefix = decode(Table::Exposures, br#"{"event_id":"e","ts":1790000000000,"user_id":"synthetic-42","experiment":"x","variant":"a"}"#).unwrap();
    let by_field = decode(Table::Exposures, br#"{"event_id":"e","ts":1790000000000,"user_id":"u","synthetic":true,"experiment":"x","variant":"a"}"#).unwrap();
    let real = decode(
        Table::Exposures,
        br#"{"event_id":"e","ts":1790000000000,"user_id":"u","experiment":"x","variant":"a"}"#,
    )
    .unwrap();
    assert!(by_prefix.common().synthetic);
    assert!(by_field.common().synthetic);
    assert!(!real.common().synthetic);
}

#[test]
fn business_value_defaults_to_zero() {
    let e = decode(
        Table::Business,
        br#"{"event_id":"e","ts":1790000000000,"user_id":"u","kind":"conversion"}"#,
    )
    .unwrap();
    assert!(matches!(e, Event::Business { value, .. } if value == 0.0));
    assert_eq!(e.experiment(), None);
}

#[test]
fn every_bad_input_class_has_its_reason() {
    use RejectReason::*;
    assert_eq!(
        decoder()
            .decode(Table::Requests, None, NOW)
            .unwrap_err()
            .reason,
        Empty
    );
    assert_eq!(decode(Table::Requests, b"").unwrap_err().reason, Empty);
    assert_eq!(
        decode(Table::Requests, &[0xff, 0xfe, b'{'])
            .unwrap_err()
            .reason,
        InvalidUtf8
    );
    assert_eq!(reason(Table::Requests, "{not json"), InvalidJson);
    assert_eq!(reason(Table::Requests, "[1,2]"), NotAnObject);
    assert_eq!(
        reason(
            Table::Requests,
            r#"{"event_id":"e","ts":1790000000000,"user_id":"u","experiment":"x","variant":"a","latency_ms":1}"#
        ),
        MissingField
    );
    assert_eq!(
        reason(
            Table::Requests,
            r#"{"event_id":"e","ts":1790000000000,"user_id":"u","experiment":"x","variant":"a","status":"500","latency_ms":1}"#
        ),
        WrongType
    );
    assert_eq!(
        reason(
            Table::Requests,
            r#"{"event_id":"e","ts":1790000000000,"user_id":"u","experiment":"x","variant":"a","status":500,"latency_ms":-1}"#
        ),
        InvalidValue
    );
    // Finite but absurd: one such latency would own every quantile, one such value the variance.
    assert_eq!(
        reason(
            Table::Requests,
            r#"{"event_id":"e","ts":1790000000000,"user_id":"u","experiment":"x","variant":"a","status":500,"latency_ms":1.7e308}"#
        ),
        InvalidValue
    );
    for value in ["1.7e308", "-1.7e308", "1000000000001"] {
        assert_eq!(
            reason(
                Table::Business,
                &format!(
                    r#"{{"event_id":"e","ts":1790000000000,"user_id":"u","kind":"purchase","value":{value}}}"#
                )
            ),
            InvalidValue,
            "value {value}"
        );
    }
    assert_eq!(
        reason(
            Table::Requests,
            r#"{"event_id":"e","ts":1790000000000,"user_id":"u","experiment":"x","variant":"a","status":500,"latency_ms":1e999}"#
        ),
        InvalidJson
    );
    assert_eq!(
        reason(
            Table::Requests,
            r#"{"event_id":"e","ts":1790000000000,"user_id":"u","experiment":"x","variant":"a","status":700,"latency_ms":1}"#
        ),
        InvalidValue
    );
    assert_eq!(
        reason(
            Table::Requests,
            r#"{"event_id":"e","ts":1790000000000,"user_id":"u","experiment":"x","variant":"a","status":200,"latency_ms":1,"mode":"replay"}"#
        ),
        InvalidValue
    );
    assert_eq!(
        reason(
            Table::Requests,
            r#"{"event_id":"e","ts":"yesterday","user_id":"u","experiment":"x","variant":"a","status":200,"latency_ms":1}"#
        ),
        InvalidTimestamp
    );
    assert_eq!(
        reason(
            Table::Requests,
            r#"{"event_id":"e","ts":0,"user_id":"u","experiment":"x","variant":"a","status":200,"latency_ms":1}"#
        ),
        TimestampOutOfRange
    );
    assert_eq!(
        reason(
            Table::Requests,
            r#"{"event_id":"","ts":1790000000000,"user_id":"u","experiment":"x","variant":"a","status":200,"latency_ms":1}"#
        ),
        InvalidValue
    );
    assert_eq!(
        reason(
            Table::Exposures,
            r#"{"event_id":"e","ts":1790000000000,"user_id":null,"experiment":"x","variant":"a"}"#
        ),
        MissingField
    );
    let big = format!(r#"{{"event_id":"{}"}}"#, "x".repeat(2 << 20));
    assert_eq!(reason(Table::Requests, &big), TooLarge);
}

#[test]
fn details_name_the_field_at_fault() {
    let r = decode(Table::Requests, br#"{"event_id":"e","ts":1790000000000,"user_id":"u","experiment":"x","variant":"a","status":"500","latency_ms":1}"#).unwrap_err();
    assert!(r.detail.contains("status"), "{}", r.detail);
}

fn arbitrary_json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        any::<i64>().prop_map(|n| serde_json::json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| serde_json::json!(f)),
        ".{0,12}".prop_map(serde_json::Value::String),
    ];
    let field = prop_oneof![
        Just("event_id".to_string()),
        Just("ts".to_string()),
        Just("user_id".to_string()),
        Just("experiment".to_string()),
        Just("variant".to_string()),
        Just("status".to_string()),
        Just("latency_ms".to_string()),
        Just("mode".to_string()),
        Just("kind".to_string()),
        Just("value".to_string()),
        Just("synthetic".to_string()),
        "[a-z_]{1,8}",
    ];
    leaf.prop_recursive(3, 24, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            prop::collection::btree_map(field.clone(), inner, 0..10)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        for table in Table::EVENTS {
            let _ = decoder().decode(table, Some(&bytes), NOW);
        }
    }

    #[test]
    fn arbitrary_json_is_an_event_or_a_rejection(value in arbitrary_json()) {
        let bytes = serde_json::to_vec(&value).unwrap();
        for table in Table::EVENTS {
            match decoder().decode(table, Some(&bytes), NOW) {
                Ok(event) => prop_assert!(!event.common().event_id.is_empty()),
                Err(rejection) => prop_assert!(!rejection.detail.is_empty()),
            }
        }
    }
}

#[test]
fn an_exposures_weights_are_kept_as_its_normalised_shares() {
    let exposure = |weights: &str| {
        format!(
            r#"{{"event_id":"e","ts":1790000000000,"user_id":"u","experiment":"x","variant":"a","weights":{weights}}}"#
        )
    };
    let weights_of = |text: &str| match decode(Table::Exposures, text.as_bytes()).unwrap() {
        Event::Exposure { weights, .. } => weights,
        other => panic!("{other:?}"),
    };
    let shares = Some(r#"{"v1":0.95,"v2":0.05}"#.to_string());
    // Percentages, shares in another key order, buckets of 10,000: one allocation.
    assert_eq!(weights_of(&exposure(r#"{"v1": 95, "v2": 5}"#)), shares);
    assert_eq!(weights_of(&exposure(r#"{"v2": 0.05, "v1": 0.95}"#)), shares);
    assert_eq!(weights_of(&exposure(r#"{"v1": 9500, "v2": 500}"#)), shares);
    // The last of duplicate keys wins, as for every field.
    assert_eq!(
        weights_of(&exposure(r#"{"v1": 1, "v2": 5, "v1": 95}"#)),
        shares
    );
    assert_eq!(weights_of(&exposure("null")), None);
    assert_eq!(
        weights_of(
            r#"{"event_id":"e","ts":1790000000000,"user_id":"u","experiment":"x","variant":"a"}"#
        ),
        None
    );
    for (weights, expected) in [
        (r#""95/5""#, RejectReason::WrongType),
        ("[95, 5]", RejectReason::WrongType),
        (r#"{"v1": "95", "v2": 5}"#, RejectReason::WrongType),
        (r#"{"v1": {"share": 95}, "v2": 5}"#, RejectReason::WrongType),
        (r#"{"v1": 100}"#, RejectReason::InvalidValue),
        (r#"{"v1": 0, "v2": 100}"#, RejectReason::InvalidValue),
        (r#"{"v1": -5, "v2": 105}"#, RejectReason::InvalidValue),
        (r#"{"": 50, "v2": 50}"#, RejectReason::InvalidValue),
        (r#"{"v1": 1e308, "v2": 1e308}"#, RejectReason::InvalidValue),
    ] {
        let got = decode(Table::Exposures, exposure(weights).as_bytes()).unwrap_err();
        assert_eq!(got.reason, expected, "{weights}: {}", got.detail);
        assert!(got.detail.contains("weights"), "{weights}: {}", got.detail);
    }
    let many: Vec<String> = (0..65).map(|i| format!(r#""v{i}": 1"#)).collect();
    let got = decode(
        Table::Exposures,
        exposure(&format!("{{{}}}", many.join(","))).as_bytes(),
    )
    .unwrap_err();
    assert_eq!(got.reason, RejectReason::InvalidValue, "{}", got.detail);
}
