//! Shared helpers for the client-side tests live in tests/common.
