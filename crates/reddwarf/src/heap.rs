//! The global allocator: mimalloc, counting the bytes the program holds. RSS alone cannot tell
//! live data from memory the allocator keeps for reuse; `reddwarf_heap_bytes` on `/metrics`
//! (and the benches' reports) can.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::sync::atomic::{AtomicIsize, Ordering::Relaxed};

/// mimalloc rather than glibc's malloc: with many threads and bursts of large request and
/// list buffers, glibc kept freed memory resident (a rollout of 3 000 pods left the server at
/// 760 MiB, 540 MiB after `malloc_trim`); mimalloc returns it.
pub struct Counted;

/// Each thread counts in a plain thread-local and adds to the shared total only once its
/// count has moved by [`FLUSH`] bytes: an atomic update on every allocation cost a third of
/// a rollout's throughput. The total is off by less than `FLUSH` per thread (a thread that
/// ends takes its unflushed count with it).
const FLUSH: isize = 16 << 10;

static TOTAL: AtomicIsize = AtomicIsize::new(0);

thread_local! {
    // `const` and without a destructor: usable from inside the allocator.
    static LOCAL: Cell<isize> = const { Cell::new(0) };
}

fn count(delta: isize) {
    let flushed = LOCAL.try_with(|l| {
        let v = l.get() + delta;
        if v.abs() >= FLUSH {
            TOTAL.fetch_add(v, Relaxed);
            l.set(0);
        } else {
            l.set(v);
        }
    });
    if flushed.is_err() {
        TOTAL.fetch_add(delta, Relaxed);
    }
}

/// Bytes allocated and not yet freed (what the program's data takes, before the allocator's
/// own overhead and the free memory it keeps).
pub fn allocated() -> usize {
    TOTAL.load(Relaxed).max(0) as usize
}

// With the `system-alloc` feature the counts wrap the C library's malloc, so a heap profiler
// that interposes malloc (`heaptrack`) sees every allocation with its call stack.
#[cfg(not(feature = "system-alloc"))]
use mimalloc::MiMalloc as Inner;
#[cfg(feature = "system-alloc")]
use std::alloc::System as Inner;

// SAFETY: every call is forwarded unchanged to the inner allocator; only counters are added.
unsafe impl GlobalAlloc for Counted {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { Inner.alloc(l) };
        if !p.is_null() {
            count(l.size() as isize);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        let p = unsafe { Inner.alloc_zeroed(l) };
        if !p.is_null() {
            count(l.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { Inner.dealloc(p, l) };
        count(-(l.size() as isize));
    }

    unsafe fn realloc(&self, p: *mut u8, l: Layout, new_size: usize) -> *mut u8 {
        let q = unsafe { Inner.realloc(p, l, new_size) };
        if !q.is_null() {
            count(new_size as isize - l.size() as isize);
        }
        q
    }
}

/// `reddwarf_heap_bytes` for a metrics registry.
#[derive(Debug)]
pub struct HeapGauge;

impl prometheus_client::encoding::EncodeMetric for HeapGauge {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::MetricEncoder,
    ) -> Result<(), std::fmt::Error> {
        encoder.encode_gauge(&(allocated() as i64))
    }

    fn metric_type(&self) -> prometheus_client::metrics::MetricType {
        prometheus_client::metrics::MetricType::Gauge
    }
}

impl prometheus_client::metrics::TypedMetric for HeapGauge {
    const TYPE: prometheus_client::metrics::MetricType =
        prometheus_client::metrics::MetricType::Gauge;
}

#[cfg(test)]
mod tests {
    #[test]
    fn allocations_are_counted_until_freed() {
        let before = super::allocated();
        let v = vec![0u8; 64 << 20];
        // Other test threads allocate too; 64 MiB stands well clear of them.
        assert!(super::allocated() >= before + (60 << 20));
        drop(v);
        assert!(super::allocated() < before + (32 << 20));
    }
}
