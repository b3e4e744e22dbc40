//! pg_tenancy's own advisory locks: transaction-level, in lock classes of their own (SQL-level
//! advisory locks use classes 1 and 2, so they never collide), tagged with a keyed hash of the id
//! they protect so that `pg_locks`, which every role reads, names no tenant.
use pgrx::pg_sys;

/// The key of the advisory lock tags: random, made once in the postmaster at server start
/// (`shared_preload_libraries`) and inherited by every backend it forks, so all of them tag a
/// lock alike; all zeros when the library is not preloaded (then each backend would otherwise
/// have a key of its own, and two backends would not exclude each other).
static LOCK_TAG_KEY: std::sync::OnceLock<[u8; 32]> = std::sync::OnceLock::new();

/// Make the key of the advisory lock tags.  From `_PG_init`, when preloaded.
pub fn init_lock_tags() {
    let mut key = [0u8; 32];
    crate::error::random(&mut key);
    let _ = LOCK_TAG_KEY.set(key);
}

/// Take a transaction-level advisory lock on `id` in pg_tenancy's lock class `class` (shown in
/// `pg_locks` as `locktype = 'advisory'`, `objsubid = class`, with a hash of `id`; SQL-level
/// advisory locks use 1 and 2, so they can never collide).  Exclusive or share; waits if `wait`, else returns whether it got
/// the lock.
pub fn advisory_xact_lock(class: u16, id: &pgrx::Uuid, exclusive: bool, wait: bool) -> bool {
    // pg_locks is readable by every role: the tag is a keyed hash of the id, not the id, so that
    // it does not tell other tenants whose keys, members or API keys are being handled, nor let
    // one who knows a tenant's id recognise it.
    use sha2::Digest;
    let digest = sha2::Sha256::new()
        .chain_update(b"pg_tenancy advisory lock\0")
        .chain_update(LOCK_TAG_KEY.get().copied().unwrap_or_default())
        .chain_update(class.to_be_bytes())
        .chain_update(id.as_bytes())
        .finalize();
    let b = &digest[..8];
    let mode = if exclusive {
        pg_sys::ExclusiveLock
    } else {
        pg_sys::ShareLock
    };
    // SAFETY: a well-formed advisory LOCKTAG in the current database; released at transaction end.
    unsafe {
        let tag = pg_sys::LOCKTAG {
            locktag_field1: pg_sys::MyDatabaseId.to_u32(),
            locktag_field2: u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
            locktag_field3: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
            locktag_field4: class,
            locktag_type: pg_sys::LockTagType::LOCKTAG_ADVISORY as u8,
            locktag_lockmethodid: pg_sys::USER_LOCKMETHOD as u8,
        };
        pg_sys::LockAcquire(&tag, mode as pg_sys::LOCKMODE, false, !wait)
            != pg_sys::LockAcquireResult::LOCKACQUIRE_NOT_AVAIL
    }
}
