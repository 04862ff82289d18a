//! One key-value pair in one heap allocation, shared by reference count.
//!
//! Layout: `refs: u32 | key_len: u32 | value_len: u32 | key | value`, so a
//! 16-byte key with a 100-byte value is one 128-byte block, where a key and
//! a value as two `Bytes` cost two allocations plus their shared headers.
//! The handle is one pointer wide. Pairs are immutable once built; clones
//! share the block (a map node copied for a snapshot shares its pairs).

use std::alloc::{alloc, dealloc, handle_alloc_error, Layout};
use std::mem::{align_of, size_of};
use std::ptr::NonNull;
use std::sync::atomic::{fence, AtomicU32, Ordering};

#[repr(C)]
struct Header {
    refs: AtomicU32,
    key_len: u32,
    value_len: u32,
}

/// Above this many references a clone aborts the process (as `Arc` does
/// on overflow): only reachable by leaking handles on purpose.
const REFS_MAX: u32 = u32::MAX / 2;

pub(crate) struct Pair {
    ptr: NonNull<Header>,
}

// SAFETY: the bytes are never written after `new`, and the reference count
// is atomic, so handles may move to and be shared between threads.
unsafe impl Send for Pair {}
unsafe impl Sync for Pair {}

impl Pair {
    /// Copies `key` and `value` into one block; `None` when a length does
    /// not fit the u32 header fields.
    pub(crate) fn new(key: &[u8], value: &[u8]) -> Option<Pair> {
        let key_len = u32::try_from(key.len()).ok()?;
        let value_len = u32::try_from(value.len()).ok()?;
        let layout = layout(key.len(), value.len())?;
        // SAFETY: the layout has a non-zero size (the header); the writes
        // stay inside the block, which holds the header plus both slices.
        unsafe {
            let raw = alloc(layout);
            let Some(ptr) = NonNull::new(raw.cast::<Header>()) else {
                handle_alloc_error(layout)
            };
            ptr.as_ptr().write(Header {
                refs: AtomicU32::new(1),
                key_len,
                value_len,
            });
            let data = raw.add(size_of::<Header>());
            std::ptr::copy_nonoverlapping(key.as_ptr(), data, key.len());
            std::ptr::copy_nonoverlapping(value.as_ptr(), data.add(key.len()), value.len());
            Some(Pair { ptr })
        }
    }

    fn header(&self) -> &Header {
        // SAFETY: the block lives as long as any handle to it.
        unsafe { self.ptr.as_ref() }
    }

    fn data(&self) -> *const u8 {
        // SAFETY: the bytes start right after the header, inside the block.
        unsafe { self.ptr.as_ptr().cast::<u8>().add(size_of::<Header>()) }
    }

    pub(crate) fn key(&self) -> &[u8] {
        let header = self.header();
        // SAFETY: `key_len` bytes were copied there by `new` and never change.
        unsafe { std::slice::from_raw_parts(self.data(), header.key_len as usize) }
    }

    pub(crate) fn value(&self) -> &[u8] {
        let header = self.header();
        // SAFETY: as for `key`, the value follows the key.
        unsafe {
            std::slice::from_raw_parts(
                self.data().add(header.key_len as usize),
                header.value_len as usize,
            )
        }
    }
}

fn layout(key_len: usize, value_len: usize) -> Option<Layout> {
    let size = size_of::<Header>()
        .checked_add(key_len)?
        .checked_add(value_len)?;
    Layout::from_size_align(size, align_of::<Header>()).ok()
}

impl Clone for Pair {
    fn clone(&self) -> Pair {
        // Relaxed, as in `Arc`: a new reference comes from an existing one.
        if self.header().refs.fetch_add(1, Ordering::Relaxed) > REFS_MAX {
            std::process::abort();
        }
        Pair { ptr: self.ptr }
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        let header = self.header();
        if header.refs.fetch_sub(1, Ordering::Release) != 1 {
            return;
        }
        // Every other handle's use of the block happens before its free.
        fence(Ordering::Acquire);
        let (key_len, value_len) = (header.key_len as usize, header.value_len as usize);
        // SAFETY: this was the last handle; the layout is the one `new`
        // allocated with (it validated these lengths then).
        unsafe {
            let layout = Layout::from_size_align_unchecked(
                size_of::<Header>() + key_len + value_len,
                align_of::<Header>(),
            );
            dealloc(self.ptr.as_ptr().cast::<u8>(), layout);
        }
    }
}

impl std::fmt::Debug for Pair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pair")
            .field("key", &bytes::Bytes::copy_from_slice(self.key()))
            .field("value_len", &self.value().len())
            .finish()
    }
}

/// A `Pair` seen as its value, for zero-copy `Bytes` (`Bytes::from_owner`).
pub(crate) struct ValueOwner(pub(crate) Pair);

impl AsRef<[u8]> for ValueOwner {
    fn as_ref(&self) -> &[u8] {
        self.0.value()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_key_and_value_and_frees_with_the_last_handle() {
        for (key, value) in [
            (&b""[..], &b""[..]),
            (b"k", b""),
            (b"", b"v"),
            (b"key:000000000001", &[7u8; 100][..]),
        ] {
            let pair = Pair::new(key, value).unwrap();
            assert_eq!(pair.key(), key);
            assert_eq!(pair.value(), value);
            let copies: Vec<Pair> = (0..4).map(|_| pair.clone()).collect();
            drop(pair);
            for copy in &copies {
                assert_eq!((copy.key(), copy.value()), (key, value));
            }
        }
        assert_eq!(size_of::<Pair>(), size_of::<usize>());
        assert_eq!(size_of::<Option<Pair>>(), size_of::<usize>());
    }

    #[test]
    fn handles_cross_threads() {
        let pair = Pair::new(b"shared", b"value").unwrap();
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let mine = pair.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        let extra = mine.clone();
                        assert_eq!(extra.value(), b"value");
                    }
                    mine
                })
            })
            .collect();
        for thread in threads {
            assert_eq!(thread.join().unwrap().key(), b"shared");
        }
        let bytes = bytes::Bytes::from_owner(ValueOwner(pair));
        assert_eq!(&bytes[..], b"value");
    }
}
