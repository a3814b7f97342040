//! The shim's global allocator: free lists of small blocks in front of Talc.
//!
//! The interpreter allocates and frees small objects for nearly every value and call
//! (boxed expressions, scope entries, strings, `Rc`s). A freed block of up to
//! [`MAX_SMALL`] bytes goes onto the free list of its size class and the next allocation
//! of that class takes it back in a few instructions; everything else, and a class whose
//! list is empty, goes to Talc. Small blocks are never returned to Talc: an instance's
//! memory is bounded by its limit and reset (or the instance dropped) by the host, so
//! the cost is at most the peak of each class.
//!
//! The wasm32 guest has a single thread (no `atomics` target feature; `lib.rs` only
//! installs this allocator then), which is what makes the unsynchronised lists sound.

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::ptr;

/// Granularity of the size classes, and the alignment they serve.
const GRAIN: usize = 8;
/// Number of size classes: blocks of 8, 16, … [`MAX_SMALL`] bytes.
const CLASSES: usize = 32;
/// Largest block served from the free lists.
pub const MAX_SMALL: usize = GRAIN * CLASSES;

/// Size-class free lists over the allocator `A`.
pub struct SmallBlocks<A> {
    inner: A,
    /// Head of each class's list; a free block's first word points to the next one.
    free: UnsafeCell<[*mut u8; CLASSES]>,
}

// SAFETY: only installed on wasm32 without threads (see the module docs), so `free` is
// never reached from two threads.
unsafe impl<A: Sync> Sync for SmallBlocks<A> {}

impl<A> SmallBlocks<A> {
    /// Free lists, all empty, in front of `inner`.
    pub const fn new(inner: A) -> Self {
        Self {
            inner,
            free: UnsafeCell::new([ptr::null_mut(); CLASSES]),
        }
    }
}

/// The size class of a block of `size` bytes aligned to `align`, if it has one.
#[inline(always)]
fn class(size: usize, align: usize) -> Option<usize> {
    (size <= MAX_SMALL && align <= GRAIN).then(|| size.saturating_sub(1) / GRAIN)
}

/// The layout in which blocks of class `class` are taken from the inner allocator.
#[inline(always)]
fn class_layout(class: usize) -> Layout {
    // SAFETY: the size is a non-zero multiple of GRAIN, a power of two, far below
    // isize::MAX.
    unsafe { Layout::from_size_align_unchecked((class + 1) * GRAIN, GRAIN) }
}

// SAFETY: every block handed out is either from `inner` with the caller's layout, or a
// block of at least the caller's size and GRAIN alignment taken from `inner` with its
// class layout; a block goes back to the list of the class it was taken with, because
// the class is a function of the layout the caller must pass to `dealloc`/`realloc`.
unsafe impl<A: GlobalAlloc> GlobalAlloc for SmallBlocks<A> {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some(class) = class(layout.size(), layout.align()) else {
            // SAFETY: the caller's contract, passed on.
            return unsafe { self.inner.alloc(layout) };
        };
        // SAFETY: single-threaded (see above); no other reference to `free` is alive.
        let free = unsafe { &mut *self.free.get() };
        let head = free[class];
        if head.is_null() {
            // SAFETY: a valid, non-zero layout.
            return unsafe { self.inner.alloc(class_layout(class)) };
        }
        // SAFETY: `head` is a free block of this class, at least GRAIN bytes and
        // aligned to GRAIN, whose first word is the next free block.
        free[class] = unsafe { head.cast::<*mut u8>().read() };
        head
    }

    #[inline]
    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        let Some(class) = class(layout.size(), layout.align()) else {
            // SAFETY: the caller's contract, passed on.
            return unsafe { self.inner.dealloc(block, layout) };
        };
        // SAFETY: single-threaded; `block` was handed out for this class and is no
        // longer used by the caller, so its first word may hold the list link.
        unsafe {
            let free = &mut *self.free.get();
            block.cast::<*mut u8>().write(free[class]);
            free[class] = block;
        }
    }

    #[inline]
    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let old = class(layout.size(), layout.align());
        let new = class(new_size, layout.align());
        match (old, new) {
            // The block already has room for the new size.
            (Some(a), Some(b)) if a == b => block,
            // SAFETY: the caller's contract, passed on; the block is the inner one's.
            (None, None) => unsafe { self.inner.realloc(block, layout, new_size) },
            _ => {
                // SAFETY: the caller guarantees a valid new size for this alignment.
                let new_layout =
                    unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
                // SAFETY: both blocks are valid for the copied length and distinct.
                unsafe {
                    let moved = self.alloc(new_layout);
                    if !moved.is_null() {
                        ptr::copy_nonoverlapping(block, moved, layout.size().min(new_size));
                        self.dealloc(block, layout);
                    }
                    moved
                }
            }
        }
    }
}
