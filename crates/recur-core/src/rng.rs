//! The one seeded random generator recur uses for initialisation, shuffling
//! and dropout masks. candle's CPU generator cannot be seeded
//! (`Device::Cpu.set_seed` fails), so every random draw that affects numbers
//! goes through this type instead: same seed, same numbers.

use rand::{Rng as _, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

/// A seeded generator (ChaCha8: fast, portable, reproducible across platforms).
pub struct Rng(ChaCha8Rng);

impl Rng {
    /// A generator seeded with `seed`: the same seed gives the same draws.
    pub fn new(seed: u64) -> Self {
        Rng(ChaCha8Rng::seed_from_u64(seed))
    }
    /// A generator for a named sub-stream, so that adding draws in one place
    /// (say, dropout) does not shift the numbers drawn in another (shuffling).
    pub fn stream(seed: u64, stream: u64) -> Self {
        let mut r = ChaCha8Rng::seed_from_u64(seed);
        r.set_stream(stream);
        Rng(r)
    }
    /// A draw from the uniform distribution on `[lo, hi)`.
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        self.0.random_range(lo..hi)
    }
    /// A draw from the standard normal distribution.
    pub fn normal(&mut self) -> f32 {
        StandardNormal.sample(&mut self.0)
    }
    /// A float in [0, 1).
    pub fn unit(&mut self) -> f32 {
        self.0.random::<f32>()
    }
    /// Fisher-Yates shuffle.
    pub fn shuffle<T>(&mut self, xs: &mut [T]) {
        use rand::seq::SliceRandom;
        xs.shuffle(&mut self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_numbers_and_streams_differ() {
        let a: Vec<f32> = (0..5)
            .map({
                let mut r = Rng::new(42);
                move |_| r.normal()
            })
            .collect();
        let mut r = Rng::new(42);
        let b: Vec<f32> = (0..5).map(|_| r.normal()).collect();
        assert_eq!(a, b);
        let mut s = Rng::stream(42, 1);
        let c: Vec<f32> = (0..5).map(|_| s.normal()).collect();
        assert_ne!(a, c);
    }
}
