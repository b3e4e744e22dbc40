//! pg_tenancy: a multi-tenant SaaS data foundation that PostgreSQL itself enforces.
//!
//! One module per capability, each with the SQL it needs beside its name:
//!
//! | module        | SQL                    | what it does                                        |
//! |---------------|------------------------|-----------------------------------------------------|
//! | (data model)  | `sql/schema.sql`       | roles, enums, tables, indexes (bootstrap)           |
//! | [`gucs`]      |                        | every GUC of the extension                          |
//! | [`context`]   |                        | tenant context: set_tenant, pre_request, current_*  |
//! | [`lookup`]    |                        | primary-key lookups without SPI, per-backend caches |
//! | [`invalidation`] | `sql/caches.sql`    | how per-backend caches learn of writes              |
//! | [`spi`]       |                        | statements planned once per backend and kept        |
//! | [`superuser`] |                        | the extension's own SQL, with more rights: reviewed |
//! | [`advisory`]  |                        | our advisory locks, tagged with a keyed hash        |
//! | [`datum`]     |                        | datum conversions pgrx does not give directly       |
//! | [`triggers`]  | `sql/triggers.sql`     | the `updated_at` trigger and `manage_updated_at`    |
//! | [`vault`]     | `sql/vault.sql`        | keyring, envelope keys, AEAD format, credentials    |
//! | [`api_keys`]  | `sql/api_keys.sql`     | tenant API keys: issue, verify, authenticate        |
//! | [`memberships`] |                      | add, change and remove members, by the rules        |
//! | [`lock_guard`] |                       | no application role takes a lock that blocks others |
//! | [`jsonb`]     |                        | jsonb in and out without text (vault, logs)         |
//! | [`request_log`] | `sql/request_logs.sql` | log_request (redaction, caps), partitions, stats  |
//! | [`actions`]   | `sql/actions.sql`      | JSON Schema, action validation, field mappings      |
//! | [`alloc`]     |                        | the counting global allocator (budgets, weights)    |
//! | (isolation)   | `sql/isolation.sql`    | RLS policies, `enable_tenant_isolation`             |
//! | (supabase)    | `sql/supabase.sql`     | mirror `auth.users` into `tenancy.users`            |
//! | (operations)  | `sql/operations.sql`   | `health()`, `seed_demo()`                           |
//! | (grants)      | `sql/grants.sql`       | policies on every table, grants (finalize)          |
//!
//! Every `unsafe` block says why it is sound (`// SAFETY:`), enforced by the lint below.
#![warn(clippy::undocumented_unsafe_blocks)]
use pgrx::prelude::*;

pub mod actions;
pub mod advisory;
pub mod alloc;
pub mod api_keys;
pub mod citus;
pub mod context;
pub mod datum;
pub mod error;
pub mod gucs;
pub mod invalidation;
pub mod jsonb;
pub mod jwt;
pub mod lock_guard;
pub mod lookup;
pub mod memberships;
pub mod request_log;
pub mod roles;
pub mod session_state;
pub mod spi;
pub mod superuser;
pub mod triggers;
pub mod vault;

::pgrx::pg_module_magic!(name, version);

extension_sql_file!("../sql/schema.sql", name = "schema", bootstrap);
extension_sql_file!("../sql/vault.sql", name = "vault", requires = ["schema"]);
extension_sql_file!(
    "../sql/api_keys.sql",
    name = "api_keys",
    requires = ["schema", "vault"]
);
extension_sql_file!(
    "../sql/caches.sql",
    name = "caches",
    requires = ["schema", "vault", "api_keys"]
);
extension_sql_file!(
    "../sql/triggers.sql",
    name = "triggers",
    requires = ["schema"]
);
extension_sql_file!(
    "../sql/isolation.sql",
    name = "isolation",
    requires = [
        "schema",
        context::current_tenant_id,
        context::current_user_id,
        context::current_role
    ]
);
extension_sql_file!(
    "../sql/request_logs.sql",
    name = "request_logs",
    requires = ["schema", context::current_tenant_id]
);
extension_sql_file!(
    "../sql/supabase.sql",
    name = "supabase",
    requires = ["schema"]
);
extension_sql_file!(
    "../sql/operations.sql",
    name = "operations",
    requires = ["schema", "isolation", library_info]
);
extension_sql_file!(
    "../sql/actions.sql",
    name = "actions",
    requires = [
        "schema",
        actions::_jsonschema_check,
        actions::mappings::_field_mapping_check
    ]
);
extension_sql_file!(
    "../sql/citus.sql",
    name = "citus",
    requires = ["schema", "isolation"]
);
extension_sql_file!("../sql/grants.sql", name = "grants", finalize);

/// What the loaded library knows about itself: its version and whether it was preloaded.
/// `tenancy.health()` merges this into its report.
#[pg_extern(stable, parallel_safe)]
fn library_info() -> pgrx::JsonB {
    let mut info = serde_json::json!({
        "library_version": env!("CARGO_PKG_VERSION"),
        "preloaded": gucs::preloaded(),
        // How many times this backend's caches were emptied (src/lookup.rs).
        "cache_resets": lookup::generation(),
        // This backend's verified-token cache (src/jwt/cache.rs).
        "jwt_cache": jwt::backend::cache_info(),
        // This backend's compiled JSON Schemas (src/actions/schema.rs).
        "schema_cache": actions::schema::cache_info(),
        // This backend's compiled field mappings (src/actions/mappings.rs).
        "mapping_cache": actions::mappings::cache_info(),
        // This backend's kept lists of actions' mappings (src/actions/lists.rs).
        "mapping_lists": actions::lists::cache_info(),
    });
    if let (Some(info), serde_json::Value::Object(vault)) = (info.as_object_mut(), vault::status())
    {
        info.extend(vault);
    }
    pgrx::JsonB(info)
}

/// Called once per backend when the library is loaded; with `shared_preload_libraries` that is
/// at server start, before any session could create placeholder GUCs of the same names.
#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    // Errors reach the client with their DETAIL, to which pgrx appends a Rust backtrace (source
    // paths, the build's layout) when the server runs with RUST_BACKTRACE set.  None goes out
    // unless RUST_LIB_BACKTRACE asks for it explicitly.  (Backends are single-threaded; with
    // shared_preload_libraries this runs in the postmaster, and every backend inherits it.)
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        std::env::set_var("RUST_LIB_BACKTRACE", "0");
    }
    gucs::init();
    if gucs::preloaded() {
        vault::load_at_start();
        // Executor tracking for "one context per statement" (src/context/statements.rs).
        context::statements::init();
        // Privilege checks before the locks of utility statements (src/lock_guard.rs).
        lock_guard::init();
        // Citus: a tenant's queries to its shard (src/citus/routing.rs).
        citus::init();
        // Nothing an application role leaves in a pooled connection (src/session_state.rs).
        session_state::init();
        // The key of the extension's advisory lock tags (src/advisory.rs).
        crate::advisory::init_lock_tags();
    }
}

/// Required by `cargo pgrx test`.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec!["shared_preload_libraries = 'pg_tenancy'"]
    }
}
