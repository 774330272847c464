//! Password hashing gives its memory back: a server that registers accounts (each hash at
//! the recommended cost takes 19 MiB of working memory, on whatever blocking-pool thread
//! runs it) must not keep 20-40 MB more RSS for every hash it ever made.
//! Its own test binary, so no other test's allocations move this process's RSS.

#![cfg(target_os = "linux")]

use std::thread;

use switchboard_proto::{Effect, EffectResult, Secret};
use switchboard_store::credentials::{run_effect_with, Cost};

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .expect("VmRSS")
}

#[test]
fn hashing_at_the_recommended_cost_returns_its_memory() {
    let before = rss_kib();
    // Each hash on its own thread, as a blocking pool may run them; two at once, as two
    // registrations may arrive together.
    for round in 0..2 {
        let workers: Vec<_> = (0..2)
            .map(|i| {
                thread::spawn(move || {
                    let effect = Effect::HashPassword {
                        password: Secret(format!("password {round} {i}")),
                    };
                    matches!(
                        run_effect_with(&Cost::recommended(), &effect),
                        EffectResult::Hashed { .. }
                    )
                })
            })
            .collect();
        for w in workers {
            assert!(w.join().expect("hashing thread"), "hashed");
        }
    }
    let grown_mib = (rss_kib().saturating_sub(before)) as f64 / 1024.0;
    assert!(
        grown_mib < 10.0,
        "RSS grew {grown_mib:.1} MiB over 4 hashes and stayed there"
    );
}
