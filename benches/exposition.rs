//! The exposition parser on a realistic body of 10,000 series (an application's HTTP
//! histograms and counters, node_exporter-like gauges), side by side with the
//! `prometheus-parse` crate on the same body. Throughput in MB/s of body.
//!
//! `cargo bench --bench exposition -- --warm-up-time 1 --measurement-time 3`

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

use warden::exposition::{parse, Format, Limits};

/// About 10,000 series: 5,600 histogram series (400 label sets × 12 buckets, `_sum`,
/// `_count`), 2,400 request counters, 2,000 filesystem and CPU gauges, each family with its
/// HELP and TYPE. Names and values as real exporters print them; no colons (the other crate
/// skips such lines).
fn body() -> String {
    let mut out = String::new();
    let handlers: Vec<String> = (0..50).map(|i| format!("/api/v1/resource_{i}")).collect();
    let methods = ["GET", "POST", "PUT", "DELETE"];
    let bounds = [
        "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf",
    ];
    out.push_str("# HELP http_request_duration_seconds Duration of HTTP requests in seconds.\n");
    out.push_str("# TYPE http_request_duration_seconds histogram\n");
    let mut n = 0u64;
    for handler in &handlers {
        for method in methods {
            for instance in 0..2 {
                let labels = format!(
                    "handler=\"{handler}\",instance=\"10.0.{instance}.17:8080\",method=\"{method}\""
                );
                let mut count = 0u64;
                for le in bounds {
                    n = n
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    count += n >> 58;
                    out.push_str(&format!(
                        "http_request_duration_seconds_bucket{{{labels},le=\"{le}\"}} {count}\n"
                    ));
                }
                out.push_str(&format!(
                    "http_request_duration_seconds_sum{{{labels}}} {}\n",
                    count as f64 * 0.0421337
                ));
                out.push_str(&format!(
                    "http_request_duration_seconds_count{{{labels}}} {count}\n"
                ));
            }
        }
    }
    out.push_str("# HELP http_requests_total Total number of HTTP requests.\n");
    out.push_str("# TYPE http_requests_total counter\n");
    for handler in &handlers {
        for method in methods {
            for code in [
                "200", "201", "204", "301", "400", "401", "404", "409", "429", "500", "502", "503",
            ] {
                n = n
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                out.push_str(&format!(
                    "http_requests_total{{code=\"{code}\",handler=\"{handler}\",method=\"{method}\"}} {}\n",
                    n >> 40
                ));
            }
        }
    }
    out.push_str("# HELP node_filesystem_avail_bytes Filesystem space available to non-root users in bytes.\n");
    out.push_str("# TYPE node_filesystem_avail_bytes gauge\n");
    for i in 0..1000 {
        n = n
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        out.push_str(&format!(
            "node_filesystem_avail_bytes{{device=\"/dev/mapper/vg{}-lv{i}\",fstype=\"ext4\",mountpoint=\"/srv/volumes/{i}\"}} {:e}\n",
            i % 7,
            (n >> 24) as f64
        ));
    }
    out.push_str("# HELP node_cpu_seconds_total Seconds the CPUs spent in each mode.\n");
    out.push_str("# TYPE node_cpu_seconds_total counter\n");
    for cpu in 0..125 {
        for mode in [
            "idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user",
        ] {
            n = n
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            out.push_str(&format!(
                "node_cpu_seconds_total{{cpu=\"{cpu}\",mode=\"{mode}\"}} {:.2}\n",
                (n >> 44) as f64 / 100.0
            ));
        }
    }
    out
}

fn exposition(c: &mut Criterion) {
    let text = body();
    let open_metrics = format!("{text}# EOF\n");
    let limits = Limits::default();
    let ours = parse(text.as_bytes(), Format::Text004, &limits).expect("the bench body parses");
    let theirs = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
        .expect("the other crate parses the bench body");
    eprintln!(
        "body: {} bytes, {} samples (prometheus-parse folds histograms and summaries: {} samples)",
        text.len(),
        ours.samples.len(),
        theirs.samples.len()
    );

    // Parsing alone: the result is dropped outside the timed loop (`iter_with_large_drop`),
    // for every parser alike. Freeing 10,000 samples' strings and maps is the consumer's cost
    // and not small: the last figure shows warden's with it.
    let mut group = c.benchmark_group("exposition");
    group.throughput(Throughput::BytesDecimal(text.len() as u64));
    group.bench_function("warden text 0.0.4", |b| {
        b.iter_with_large_drop(|| {
            parse(black_box(text.as_bytes()), Format::Text004, &limits).unwrap()
        })
    });
    group.bench_function("warden openmetrics", |b| {
        b.iter_with_large_drop(|| {
            parse(
                black_box(open_metrics.as_bytes()),
                Format::OpenMetrics,
                &limits,
            )
            .unwrap()
        })
    });
    group.bench_function("prometheus-parse", |b| {
        b.iter_with_large_drop(|| {
            prometheus_parse::Scrape::parse(black_box(&text).lines().map(|l| Ok(l.to_owned())))
                .unwrap()
        })
    });
    group.bench_function("warden text 0.0.4, result dropped in the loop", |b| {
        b.iter(|| parse(black_box(text.as_bytes()), Format::Text004, &limits).unwrap())
    });
    group.finish();
}

criterion_group!(benches, exposition);
criterion_main!(benches);
