//! Bytes the series store holds per sample, its index included: 10,000 series (labels like a
//! real exporter's) scraped every 15 s for an hour of retention, counted by a counting global
//! allocator (live heap bytes), then one more hour so the store prunes as it would in a
//! daemon. Prints bytes per sample. Run: `cargo run --release --example store_memory`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Duration;

use warden::labels::Labels;
use warden::series::Store;

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn main() {
    const SERIES: usize = 10_000;
    const STEP_MS: i64 = 15_000;
    let hour = Duration::from_secs(3600);
    let series: Vec<Labels> = (0..SERIES)
        .map(|i| {
            let mut l = Labels::new();
            l.insert("__name__".into(), "http_requests_total".into());
            l.insert("job".into(), "app".into());
            l.insert(
                "instance".into(),
                format!("10.0.{}.{}:8080", i / 250, i % 250),
            );
            l.insert("route".into(), format!("/api/v1/resource/{}", i % 50));
            l.insert("status".into(), ["200", "404", "500", "503"][i % 4].into());
            l
        })
        .collect();
    let before = LIVE.load(Ordering::Relaxed);
    let mut store = Store::new(hour);
    let scrapes = (2 * hour.as_millis() as i64) / STEP_MS;
    for k in 0..scrapes {
        let t = k * STEP_MS;
        let samples = series
            .iter()
            .enumerate()
            .map(|(i, l)| (l.clone(), None, (k as f64) * (i % 7) as f64))
            .collect();
        store.ingest("app", samples, t);
        if k % 4 == 0 {
            store.prune(t);
        }
    }
    let held = LIVE.load(Ordering::Relaxed) - before;
    let samples = store.sample_count();
    println!(
        "series {} samples {} heap {:.1} MiB bytes/sample {:.1}",
        store.series_count(),
        samples,
        held as f64 / (1024.0 * 1024.0),
        held as f64 / samples as f64
    );
}
