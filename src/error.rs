//! Errors with a real SQLSTATE, and the OS-random helpers whose only failure is one.  Messages name what is wrong and what to do; they never contain a
//! secret, a key, a token or a plaintext.
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;

/// Raise an ERROR with `code`, `message` and an optional hint.  Never returns.
#[track_caller]
pub fn raise(code: PgSqlErrorCode, message: impl Into<String>, hint: Option<&str>) -> ! {
    let mut report = ErrorReport::new(code, message.into(), "pg_tenancy");
    if let Some(hint) = hint {
        report = report.set_hint(hint);
    }
    report.report(PgLogLevel::ERROR);
    unreachable!("ERROR does not return")
}

/// 22004: a required argument was NULL.
#[track_caller]
pub fn null_argument(name: &str) -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
        format!("{name} must not be NULL"),
        None,
    )
}

/// XX000: an internal SPI statement failed (the statement's own error, never its arguments).
#[track_caller]
pub fn spi_failed(what: &str, e: impl std::fmt::Display) -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
        format!("{what} failed: {e}"),
        None,
    )
}

/// 58000: the OS CSPRNG failed (it does not, on any supported platform; never a silent fallback).
#[track_caller]
pub fn rng_failed() -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_SYSTEM_ERROR,
        "the OS random number generator failed",
        None,
    )
}

/// Fill `buf` from the OS CSPRNG.
pub fn random(buf: &mut [u8]) {
    getrandom::getrandom(buf).unwrap_or_else(|_| rng_failed());
}

/// A random (version 4) uuid from the OS CSPRNG.
pub fn new_uuid() -> pgrx::Uuid {
    let mut bytes = [0u8; 16];
    random(&mut bytes);
    pgrx::Uuid::from_bytes(
        *uuid::Builder::from_random_bytes(bytes)
            .into_uuid()
            .as_bytes(),
    )
}
