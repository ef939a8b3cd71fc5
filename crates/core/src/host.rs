//! Reads of a tensor's values into host memory, counted. On a GPU each read waits until the device
//! has run everything queued before it, so the hot loops hold to a few reads: none inside a
//! matching step, at most one per evaluation epoch. Every read of gradmatch's libraries goes
//! through here (the workspace's `clippy.toml` refuses candle's `to_scalar` and `to_vec*`
//! elsewhere), so the count is complete; uploads (host to device) are not reads and are not counted.
//!
//! The count is per thread (each device's stream runs on its own). With `GRADMATCH_HOST_READS=1`
//! the condensation loop and the evaluations print theirs ([`reporting`]).

use candle_core::{Result, Tensor, WithDType};
use std::cell::Cell;
use std::sync::OnceLock;

thread_local! {
    static READS: Cell<u64> = const { Cell::new(0) };
}

/// The environment variable that turns the printed counts on.
pub const REPORT_VARIABLE: &str = "GRADMATCH_HOST_READS";

fn note() {
    READS.with(|r| r.set(r.get() + 1));
}

/// Reads counted on this thread so far.
pub fn reads() -> u64 {
    READS.with(Cell::get)
}

/// Whether the loops print their counts (`GRADMATCH_HOST_READS` set to anything but `0` or empty).
pub fn reporting() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var(REPORT_VARIABLE).is_ok_and(|v| !v.is_empty() && v != "0"))
}

/// The value of a rank-0 tensor.
#[allow(clippy::disallowed_methods)]
pub fn scalar<T: WithDType>(t: &Tensor) -> Result<T> {
    note();
    t.to_scalar()
}

/// The values of a rank-1 tensor.
#[allow(clippy::disallowed_methods)]
pub fn vec1<T: WithDType>(t: &Tensor) -> Result<Vec<T>> {
    note();
    t.to_vec1()
}

/// The rows of a rank-2 tensor.
#[allow(clippy::disallowed_methods)]
pub fn vec2<T: WithDType>(t: &Tensor) -> Result<Vec<Vec<T>>> {
    note();
    t.to_vec2()
}

/// The values of a rank-1 tensor on the CPU: a copy with no device to wait for, so not counted.
/// A tensor on another device is refused.
#[allow(clippy::disallowed_methods)]
pub fn cpu_vec1<T: WithDType>(t: &Tensor) -> Result<Vec<T>> {
    if !t.device().is_cpu() {
        candle_core::bail!("cpu_vec1 reads CPU tensors only, not one on {:?}", t.device().location())
    }
    t.to_vec1()
}

/// A rank-0 tensor of any float or integer type, as f64.
pub fn scalar_f64(t: &Tensor) -> Result<f64> {
    scalar(&t.to_dtype(candle_core::DType::F64)?)
}

/// The reads of a stretch of work on this thread: made at its start, [`ReadMeter::lap`] at each
/// of its steps.
pub struct ReadMeter {
    at: u64,
}

impl ReadMeter {
    pub fn start() -> Self {
        ReadMeter { at: reads() }
    }

    /// Reads since the start or the previous lap.
    pub fn lap(&mut self) -> u64 {
        let now = reads();
        std::mem::replace(&mut self.at, now).abs_diff(now)
    }
}

/// The reads of a loop's rounds (an evaluation's epochs): the total and the most in one round.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RoundReads {
    pub rounds: u64,
    pub total: u64,
    pub most: u64,
}

impl RoundReads {
    pub fn add(&mut self, reads: u64) {
        self.rounds += 1;
        self.total += reads;
        self.most = self.most.max(reads);
    }
}

impl std::fmt::Display for RoundReads {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "{} reads in {} rounds, at most {} in one", self.total, self.rounds, self.most)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_read_is_counted_on_its_own_thread() {
        let t = Tensor::new(&[1f32, 2.0, 3.0], &candle_core::Device::Cpu).unwrap();
        let mut meter = ReadMeter::start();
        assert_eq!(vec1::<f32>(&t).unwrap(), [1.0, 2.0, 3.0]);
        assert_eq!(scalar_f64(&t.sum_all().unwrap()).unwrap(), 6.0);
        assert_eq!(vec2::<f32>(&t.reshape((3, 1)).unwrap()).unwrap().len(), 3);
        assert_eq!(meter.lap(), 3);
        std::thread::spawn(move || vec1::<f32>(&t).unwrap()).join().unwrap();
        assert_eq!(meter.lap(), 0, "another thread's read is its own");
        let mut rounds = RoundReads::default();
        [1, 0, 4].into_iter().for_each(|r| rounds.add(r));
        assert_eq!(rounds, RoundReads { rounds: 3, total: 5, most: 4 });
    }
}
