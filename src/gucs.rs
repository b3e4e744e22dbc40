//! Every GUC of pg_tenancy, in one place.
//!
//! The tenant-context GUCs are `PGC_SUSET`: an ordinary role gets "permission denied" for `SET`,
//! `SET LOCAL`, `set_config(...)` and `RESET` on them, so it cannot forge a context.  Only the
//! functions of [`crate::context`] set them, transaction-locally, after checking who asks.  They are
//! defined in `_PG_init`, which must run at server start (`shared_preload_libraries`): a library
//! loaded later in a session could find a user-created placeholder of the same name.
use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use std::ffi::CString;

/// `tenancy.tenant_id`: the tenant of the current transaction (text form of a uuid, or empty).
pub static TENANT_ID: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
/// `tenancy.user_id`: the user of the current transaction (text form of a uuid, or empty).
pub static USER_ID: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
/// `tenancy.role`: the caller's role in the tenant (`owner` … `client`, or `service`).
pub static ROLE: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);

pub const TENANT_ID_NAME: &std::ffi::CStr = c"tenancy.tenant_id";
pub const USER_ID_NAME: &std::ffi::CStr = c"tenancy.user_id";
pub const ROLE_NAME: &std::ffi::CStr = c"tenancy.role";

/// True once `_PG_init` ran during `shared_preload_libraries` processing.
static PRELOADED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub fn preloaded() -> bool {
    PRELOADED.load(std::sync::atomic::Ordering::Relaxed)
}

pub fn init() {
    // SAFETY: a plain read of a global that PostgreSQL sets while it loads preload libraries.
    let in_preload = unsafe { pgrx::pg_sys::process_shared_preload_libraries_in_progress };
    PRELOADED.store(in_preload, std::sync::atomic::Ordering::Relaxed);

    let context_flags = GucFlags::DISALLOW_IN_FILE | GucFlags::DISALLOW_IN_AUTO_FILE;
    GucRegistry::define_string_guc(
        TENANT_ID_NAME,
        c"Tenant of the current transaction; set only by tenancy.set_tenant, pre_request or authenticate.",
        c"Read it with tenancy.current_tenant_id().  Ordinary roles cannot SET it.",
        &TENANT_ID,
        GucContext::Suset,
        context_flags,
    );
    GucRegistry::define_string_guc(
        USER_ID_NAME,
        c"User of the current transaction; set only by tenancy.set_tenant or pre_request.",
        c"Read it with tenancy.current_user_id().  Ordinary roles cannot SET it.",
        &USER_ID,
        GucContext::Suset,
        context_flags,
    );
    GucRegistry::define_string_guc(
        ROLE_NAME,
        c"Role of the current user in the current tenant; set with the tenant.",
        c"Read it with tenancy.current_role().  Ordinary roles cannot SET it.",
        &ROLE,
        GucContext::Suset,
        context_flags,
    );
    // SAFETY: reserves the "tenancy" prefix, as PostgreSQL extensions do after defining their GUCs;
    // an unknown tenancy.* name is then an error instead of a silent placeholder.
    unsafe {
        #[cfg(not(any(feature = "pg14")))]
        pgrx::pg_sys::MarkGUCPrefixReserved(c"tenancy".as_ptr());
        #[cfg(feature = "pg14")]
        pgrx::pg_sys::EmitWarningsOnPlaceholders(c"tenancy".as_ptr());
    }
}
