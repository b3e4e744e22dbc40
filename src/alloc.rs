//! Rust's heap, counted: the extension's global allocator is the system's, and keeps the net
//! number of bytes this backend's Rust code holds (PostgreSQL runs a backend on one thread).
//!
//! Rust memory is not palloc memory: no memory context frees it at the end of a statement, and an
//! allocation that fails aborts the process (and with it every session of the server).  What a
//! caller's input makes Rust allocate is therefore bounded by measuring it: the JSON Schema cache
//! weighs each validator by the bytes compiling it kept (`actions::cache`), and listing errors or
//! building a mapped document stops with 54000 past a budget (`actions::ticking`).
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

pub struct Counting;

thread_local! {
    static NET: Cell<isize> = const { Cell::new(0) };
}

#[inline]
fn add(delta: isize) {
    // try_with: an allocation during the thread's teardown is not counted.
    let _ = NET.try_with(|n| n.set(n.get().wrapping_add(delta)));
}

// SAFETY: every call is forwarded to the system allocator unchanged; only a counter is kept.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, forwarded.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            add(layout.size() as isize);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, forwarded.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            add(layout.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.dealloc(ptr, layout) };
        add(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract, forwarded.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            add(new_size as isize - layout.size() as isize);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The bytes this thread's Rust code holds now, net of what it freed (a difference of two
/// readings is what happened between them).
#[inline]
pub fn held() -> isize {
    NET.try_with(Cell::get).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn counts_what_is_held() {
        let before = super::held();
        let v = vec![0u8; 1 << 20];
        assert!(super::held() - before >= 1 << 20);
        drop(v);
        assert!(super::held() - before < 1024);
    }
}
