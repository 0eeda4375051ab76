//! CPU usage in nanocores, from two samples of cumulative CPU time: the
//! server keeps the previous sample of each container and pod and
//! computes the rate over the time since. A first sample has no rate, and
//! is reported without `usage_nano_cores` (the field is left out rather
//! than reported as 0).

use std::collections::HashMap;
use std::sync::Mutex;

/// One kept sample: when, and the cumulative CPU time then.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at_nanos: i64,
    usage_ns: u64,
}

/// The previous CPU sample of each container and pod.
#[derive(Debug, Default)]
pub struct Sampler {
    last: Mutex<HashMap<String, Sample>>,
}

impl Sampler {
    /// Records `usage_ns` (cumulative CPU nanoseconds) at `at_nanos` for
    /// `key`, returning the rate since the previous sample in nanocores
    /// (CPU nanoseconds per second); `None` for a first sample, a clock
    /// that did not advance, or a counter that went backwards (a new
    /// cgroup under the same key).
    pub fn nano_cores(&self, key: &str, at_nanos: i64, usage_ns: u64) -> Option<u64> {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let previous = last.insert(key.to_string(), Sample { at_nanos, usage_ns })?;
        let elapsed = u128::try_from(at_nanos.checked_sub(previous.at_nanos)?)
            .ok()
            .filter(|e| *e > 0)?;
        let used = u128::from(usage_ns.checked_sub(previous.usage_ns)?);
        u64::try_from(used * 1_000_000_000 / elapsed).ok()
    }

    /// Forgets `key`'s sample (its container or pod was removed).
    pub fn forget(&self, key: &str) {
        self.last
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_over_the_interval_since_the_previous_sample() {
        let s = Sampler::default();
        assert_eq!(s.nano_cores("c", 1_000_000_000, 5_000), None);
        // Half a core over two seconds.
        assert_eq!(
            s.nano_cores("c", 3_000_000_000, 5_000 + 1_000_000_000),
            Some(500_000_000)
        );
        // Same instant: no rate; a counter going back: no rate.
        assert_eq!(s.nano_cores("c", 3_000_000_000, 2_000_000_000), None);
        assert_eq!(s.nano_cores("c", 4_000_000_000, 1), None);
        // Keys are apart; forgetting starts over.
        assert_eq!(s.nano_cores("d", 4_000_000_000, 1), None);
        s.forget("c");
        assert_eq!(s.nano_cores("c", 9_000_000_000, 10), None);
        // The clock going backwards gives no rate.
        assert_eq!(s.nano_cores("c", 1, 20), None);
    }
}
