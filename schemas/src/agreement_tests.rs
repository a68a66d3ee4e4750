//! Holds the producer-facing JSON Schemas and the Arrow schemas of the Parquet tables equal, field
//! by field: name, type and nullability. A field is non-null in Arrow exactly when the JSON Schema
//! requires it or gives it a default (the ingest applies defaults).

use arrow::datatypes::DataType;
use serde_json::Value;

use super::*;

/// The Arrow type a JSON Schema property must map to.
fn arrow_type_of(name: &str, property: &Value) -> DataType {
    if let Some(branches) = property.get("oneOf").and_then(Value::as_array) {
        let is_timestamp = branches
            .iter()
            .any(|b| b.get("format").and_then(Value::as_str) == Some("date-time"));
        assert!(is_timestamp, "{name}: oneOf is only used for timestamps");
        return timestamp_type();
    }
    match property.get("type").and_then(Value::as_str) {
        Some("string") => DataType::Utf8,
        Some("integer") => DataType::Int32,
        Some("number") => DataType::Float64,
        Some("boolean") => DataType::Boolean,
        // An object (an exposure's `weights`) is stored as its canonical JSON text.
        Some("object") => DataType::Utf8,
        other => panic!("{name}: unmapped JSON Schema type {other:?}"),
    }
}

fn check_agreement(table: Table) {
    let json: Value = serde_json::from_str(table.json_schema().unwrap()).unwrap();
    let properties = json["properties"].as_object().expect("properties");
    let required: Vec<&str> = json["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let schema = table.schema();

    let json_names: Vec<&str> = properties.keys().map(String::as_str).collect();
    let arrow_names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    let mut json_sorted = json_names.clone();
    let mut arrow_sorted = arrow_names.clone();
    json_sorted.sort_unstable();
    arrow_sorted.sort_unstable();
    assert_eq!(json_sorted, arrow_sorted, "{table}: field names differ");

    for field in schema.fields() {
        let property = &properties[field.name()];
        let expected_type = arrow_type_of(field.name(), property);
        assert_eq!(
            field.data_type(),
            &expected_type,
            "{table}.{}: type",
            field.name()
        );
        let non_null =
            required.contains(&field.name().as_str()) || property.get("default").is_some();
        assert_eq!(
            field.is_nullable(),
            !non_null,
            "{table}.{}: nullability",
            field.name()
        );
        assert!(
            property.get("description").is_some(),
            "{table}.{}: every field is documented for producers",
            field.name()
        );
    }
    for name in &required {
        assert!(
            properties.contains_key(*name),
            "{table}: required {name} is not a property"
        );
    }
}

#[test]
fn request_schemas_agree() {
    check_agreement(Table::Requests);
}

#[test]
fn business_schemas_agree() {
    check_agreement(Table::Business);
}

#[test]
fn exposure_schemas_agree() {
    check_agreement(Table::Exposures);
}

#[test]
fn mode_enum_matches_the_json_schema() {
    let json: Value = serde_json::from_str(REQUEST_JSON_SCHEMA).unwrap();
    let modes: Vec<&str> = json["properties"]["mode"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(modes, MODES);
}

#[test]
fn report_schema_is_valid_json_with_required_keys() {
    let json: Value = serde_json::from_str(REPORT_JSON_SCHEMA).unwrap();
    let required: Vec<&str> = json["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for key in [
        "experiment",
        "verdict",
        "reasons",
        "srm",
        "variants",
        "comparisons",
    ] {
        assert!(required.contains(&key), "report requires {key}");
    }
}

#[test]
fn value_bounds_match_the_json_schemas() {
    let request: Value = serde_json::from_str(REQUEST_JSON_SCHEMA).unwrap();
    let latency = &request["properties"]["latency_ms"];
    assert_eq!(latency["maximum"].as_f64(), Some(MAX_LATENCY_MS));
    let business: Value = serde_json::from_str(BUSINESS_JSON_SCHEMA).unwrap();
    let value = &business["properties"]["value"];
    assert_eq!(value["maximum"].as_f64(), Some(MAX_ABS_VALUE));
    assert_eq!(value["minimum"].as_f64(), Some(-MAX_ABS_VALUE));
}
