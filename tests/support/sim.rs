//! What the simulation tests share: a seeded generator, normal draws, and a rate checked
//! against its accepted range (printed, so `--nocapture` shows the figures).

#![allow(dead_code)]

use rand::SeedableRng;
use rand_distr::{Distribution, Normal};
use rand_xoshiro::Xoshiro256PlusPlus;

pub fn rng(seed: u64) -> Xoshiro256PlusPlus {
    Xoshiro256PlusPlus::seed_from_u64(seed)
}

pub fn normal(r: &mut Xoshiro256PlusPlus, n: usize, mean: f64, sd: f64) -> Vec<f64> {
    let d = Normal::new(mean, sd).unwrap();
    (0..n).map(|_| d.sample(r)).collect()
}

#[track_caller]
pub fn within(what: &str, rate: f64, lo: f64, hi: f64) {
    eprintln!("{what}: {rate:.3} (accepted range [{lo}, {hi}])");
    assert!(
        (lo..=hi).contains(&rate),
        "{what}: {rate} not in [{lo}, {hi}]"
    );
}
