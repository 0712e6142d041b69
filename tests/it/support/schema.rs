//! The JSON Schema of `--json` (docs/ovlock.schema.json), compiled once, and
//! the check that a document fits it. `Run::json` applies it to every
//! document a test reads.

use std::sync::OnceLock;

use serde_json::Value;

fn validator() -> &'static jsonschema::Validator {
    static VALIDATOR: OnceLock<jsonschema::Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/ovlock.schema.json");
        let text = std::fs::read_to_string(path).expect("docs/ovlock.schema.json is readable");
        let schema: Value = serde_json::from_str(&text).expect("the schema is JSON");
        jsonschema::draft202012::new(&schema).expect("the schema is valid JSON Schema 2020-12")
    })
}

/// Each place where `doc` does not fit the schema, and how; none if it fits.
pub fn schema_errors(doc: &Value) -> Vec<String> {
    validator()
        .iter_errors(doc)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

/// Fails, naming each place that does not fit, unless `doc` fits the schema.
pub fn assert_fits_schema(doc: &Value) {
    let errors = schema_errors(doc);
    assert!(
        errors.is_empty(),
        "the document does not fit docs/ovlock.schema.json:\n{}\n{doc:#}",
        errors.join("\n")
    );
}
