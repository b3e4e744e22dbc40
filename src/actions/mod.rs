//! Actions validate their inputs and outputs against their JSON Schemas, in the database
//! ([`schema`] holds the JSON Schema functions and the validator cache).
//!
//! * `tenancy.validate_action_input(action_id, input)`: the errors as a jsonb array (empty when
//!   the input is valid); `tenancy.check_action_input(action_id, input)`: 22023 with the first
//!   errors in DETAIL.  The same for outputs.
//! * The action is the current context's tenant's (an action id is unique within a tenant only),
//!   read as the caller reads it (SPI, RLS applies): another tenant's action, or none, or no
//!   context, is "not found" (P0002).  service_role enters the tenant first (`set_tenant`).
//!   Nothing here is `SECURITY DEFINER`.
//! * `actions.input_schema` and `output_schema` must be valid schemas: a CHECK constraint calls
//!   `tenancy._jsonschema_check`, which raises 23514 naming the keyword and where it is.
use crate::error::raise;
use crate::jsonb::JsonbArg;
use crate::spi::KeptStatement;
use pgrx::prelude::*;

pub mod cache;
pub mod document;
pub mod lists;
pub mod mappings;
pub mod paths;
pub mod schema;
pub mod ticking;
pub mod transforms;

/// Errors listed in `check_action_*`'s DETAIL (all of them: `validate_action_*`).
const DETAIL_ERRORS: usize = 5;

fn not_a_schema(what: &str, e: &schema::SchemaError) -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
        format!("{what} is not a valid JSON Schema: {e}"),
        None,
    )
}

/// Whether `schema` is a valid JSON Schema (of its `$schema` draft; 2020-12 when absent).
#[pg_extern(immutable, strict, parallel_safe)]
fn jsonschema_is_valid(schema: JsonbArg) -> bool {
    schema::validator_of(&schema).is_ok()
}

/// Whether `instance` matches `schema` (22023 when `schema` is not a valid schema).
#[pg_extern(immutable, strict, parallel_safe)]
fn jsonb_matches_schema(schema: JsonbArg, instance: JsonbArg) -> bool {
    let validator = schema::validator_of(&schema);
    let validator = match &*validator {
        Ok(v) => v,
        Err(e) => not_a_schema("the schema", e),
    };
    validator.is_valid(ticking::Ticking::root(instance.container()))
}

/// Why `instance` does not match `schema`: an array of `{instance_path, schema_path, keyword,
/// message}`, empty when it matches.  Messages never quote the instance.
#[pg_extern(immutable, strict, parallel_safe)]
fn jsonschema_validation_errors(schema: JsonbArg, instance: JsonbArg) -> pgrx::JsonB {
    let validator = schema::validator_of(&schema);
    let validator = match &*validator {
        Ok(v) => v,
        Err(e) => not_a_schema("the schema", e),
    };
    pgrx::JsonB(serde_json::Value::Array(all_errors(validator, &instance)))
}

/// The CHECK of `actions.input_schema` and `output_schema`: true, or 23514 naming the keyword and
/// where in the schema it is wrong.
#[pg_extern(immutable, strict, parallel_safe)]
fn _jsonschema_check(schema: JsonbArg, column: &str) -> bool {
    match &*schema::validator_of(&schema) {
        Ok(_) => true,
        Err(e) => raise(
            PgSqlErrorCode::ERRCODE_CHECK_VIOLATION,
            format!("{column} is not a valid JSON Schema: {e}"),
            Some("Drafts 4, 6, 7, 2019-09 and 2020-12 (by $schema; 2020-12 when absent); $ref only inside the schema."),
        ),
    }
}

#[derive(Clone, Copy)]
enum Direction {
    Input,
    Output,
}

impl Direction {
    fn column(self) -> &'static str {
        match self {
            Direction::Input => "input_schema",
            Direction::Output => "output_schema",
        }
    }

    /// The column of [`SCHEMAS`] that holds this direction's schema.
    fn ordinal(self) -> usize {
        match self {
            Direction::Input => 1,
            Direction::Output => 2,
        }
    }
}

thread_local! {
    /// The action's schemas, read as the caller reads them (RLS applies), with one statement
    /// planned once per backend (an unused column is not even detoasted).
    static SCHEMAS: KeptStatement = const {
        KeptStatement::reading_as_caller(
            "SELECT input_schema, output_schema FROM tenancy.actions \
              WHERE tenant_id OPERATOR(pg_catalog.=) tenancy.current_tenant_id() \
                AND id OPERATOR(pg_catalog.=) $1",
            &[pg_sys::UUIDOID],
            crate::invalidation::Watch::Actions,
        )
    };
}

/// The errors of `document` against the action's schema for `direction`, read as the caller
/// reads the action (RLS applies): P0002 when there is no such action for the caller.
fn action_errors(
    action_id: pgrx::Uuid,
    direction: Direction,
    document: &JsonbArg,
) -> Vec<serde_json::Value> {
    let validator = SCHEMAS.with(|query| {
        query.select(&[action_id.into()], "reading the action", |rows| {
            if rows.is_empty() {
                return Ok(None);
            }
            let datum = rows.first().get_datum_by_ordinal(direction.ordinal())?;
            // SAFETY: the column is jsonb (NOT NULL), valid until SPI finishes, after its use here.
            let schema = datum.and_then(|d| unsafe {
                JsonbArg::from_polymorphic_datum(d, false, pg_sys::JSONBOID)
            });
            Ok(schema.map(|s| schema::validator_of(&s)))
        })
    });
    let Some(validator) = validator else {
        raise(
            PgSqlErrorCode::ERRCODE_NO_DATA_FOUND,
            format!("action {action_id} not found"),
            Some("An action is found in the tenant of the current context only."),
        )
    };
    let validator = match &*validator {
        Ok(v) => v,
        Err(e) => not_a_schema(&format!("the action's {}", direction.column()), e),
    };
    all_errors(validator, document)
}

/// Every error of `document`, within [`ticking::ERROR_LISTING`] (54000 past it).
fn all_errors(validator: &schema::Validator, document: &JsonbArg) -> Vec<serde_json::Value> {
    ticking::with_budget(&ticking::ERROR_LISTING, || {
        validator
            .iter_errors(ticking::Ticking::root(document.container()))
            .map(|e| schema::error_json(&e))
            .collect()
    })
}

fn check(action_id: pgrx::Uuid, direction: Direction, document: &JsonbArg) {
    let errors = action_errors(action_id, direction, document);
    if errors.is_empty() {
        return;
    }
    let detail: Vec<String> = errors
        .iter()
        .take(DETAIL_ERRORS)
        .map(|e| {
            let path = e["instance_path"].as_str().unwrap_or("");
            format!(
                "{}: {}",
                if path.is_empty() { "/" } else { path },
                e["message"].as_str().unwrap_or("")
            )
        })
        .collect();
    let more = errors.len().saturating_sub(DETAIL_ERRORS);
    let what = match direction {
        Direction::Input => "input",
        Direction::Output => "output",
    };
    let mut report = pgrx::pg_sys::panic::ErrorReport::new(
        PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
        format!(
            "the {what} does not match the action's {} ({} error{})",
            direction.column(),
            errors.len(),
            if errors.len() == 1 { "" } else { "s" }
        ),
        "pg_tenancy",
    )
    .set_detail(if more > 0 {
        format!(
            "{}\n... and {more} more (tenancy.validate_action_{what} lists them all)",
            detail.join("\n")
        )
    } else {
        detail.join("\n")
    });
    report = report.set_hint(format!(
        "tenancy.validate_action_{what}(action_id, {what}) returns every error as jsonb."
    ));
    report.report(PgLogLevel::ERROR);
}

/// The errors of `input` against the action's `input_schema` (an empty array when it matches).
#[pg_extern(stable, strict, parallel_restricted)]
fn validate_action_input(action_id: pgrx::Uuid, input: JsonbArg) -> pgrx::JsonB {
    pgrx::JsonB(serde_json::Value::Array(action_errors(
        action_id,
        Direction::Input,
        &input,
    )))
}

/// 22023 unless `input` matches the action's `input_schema` (the first errors in DETAIL).
#[pg_extern(stable, strict, parallel_restricted)]
fn check_action_input(action_id: pgrx::Uuid, input: JsonbArg) {
    check(action_id, Direction::Input, &input)
}

/// The errors of `output` against the action's `output_schema` (an empty array when it matches).
#[pg_extern(stable, strict, parallel_restricted)]
fn validate_action_output(action_id: pgrx::Uuid, output: JsonbArg) -> pgrx::JsonB {
    pgrx::JsonB(serde_json::Value::Array(action_errors(
        action_id,
        Direction::Output,
        &output,
    )))
}

/// 22023 unless `output` matches the action's `output_schema` (the first errors in DETAIL).
#[pg_extern(stable, strict, parallel_restricted)]
fn check_action_output(action_id: pgrx::Uuid, output: JsonbArg) {
    check(action_id, Direction::Output, &output)
}
