//! What the benchmarks share: a 1 ms poll and the statistics of the tables in
//! docs/benchmarks.md.
#![allow(dead_code)] // Each benchmark uses its own part.

use std::time::{Duration, Instant};

/// Polls `check` every millisecond (the tests' `wait_until` sleeps 50 ms: too coarse here).
pub fn poll<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

pub fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

pub struct Stats {
    pub median: f64,
    pub p99: f64,
    pub min: f64,
    pub max: f64,
}

pub fn stats(samples: &[Duration]) -> Stats {
    let mut sorted: Vec<f64> = samples.iter().copied().map(millis).collect();
    sorted.sort_by(f64::total_cmp);
    let at = |q: f64| sorted[((sorted.len() as f64 * q).ceil() as usize).saturating_sub(1)];
    Stats {
        median: at(0.5),
        p99: at(0.99),
        min: sorted[0],
        max: sorted[sorted.len() - 1],
    }
}

/// One row of a results table.
pub fn row(name: &str, samples: &[Duration]) {
    let s = stats(samples);
    println!(
        "| {name} | {:.1} | {:.1} | {:.1} | {:.1} |",
        s.median, s.p99, s.min, s.max
    );
}
