//! CPU time and context switches of the reading side of a benchmark:
//! single threads, whole processes (from `/proc`) and reaped children,
//! collected per MiB moved.

use std::path::Path;

use super::{BoxError, Samples};

/// CPU time and context switches of a set of threads.
#[derive(Clone, Copy, Debug, Default)]
pub struct Usage {
    pub cpu_ns: u64,
    pub switches: u64,
}

impl Usage {
    /// The counters of one thread's `/proc` directory.
    pub fn of_task(dir: &Path) -> Result<Usage, BoxError> {
        let schedstat = std::fs::read_to_string(dir.join("schedstat"))?;
        let cpu_ns = schedstat
            .split_whitespace()
            .next()
            .ok_or("empty schedstat")?
            .parse()?;
        let status = std::fs::read_to_string(dir.join("status"))?;
        let mut switches = 0;
        for line in status.lines() {
            if let Some(rest) = line
                .strip_prefix("voluntary_ctxt_switches:")
                .or_else(|| line.strip_prefix("nonvoluntary_ctxt_switches:"))
            {
                switches += rest.trim().parse::<u64>()?;
            }
        }
        Ok(Usage { cpu_ns, switches })
    }

    /// The calling thread's.
    pub fn this_thread() -> Result<Usage, BoxError> {
        Usage::of_task(Path::new("/proc/thread-self"))
    }

    /// The sum over the live threads of process `pid`.
    pub fn of_process(pid: u32) -> Result<Usage, BoxError> {
        let mut sum = Usage::default();
        for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
            // A thread may end between the listing and the read.
            if let Ok(usage) = Usage::of_task(&task?.path()) {
                sum = sum.plus(usage);
            }
        }
        Ok(sum)
    }

    /// CPU time of this process's reaped children (`cutime` + `cstime`,
    /// clock ticks of 10 ms).
    pub fn reaped_children() -> Result<Usage, BoxError> {
        let stat = std::fs::read_to_string("/proc/self/stat")?;
        let after_name = stat.rsplit_once(')').ok_or("no comm in stat")?.1;
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        // Fields 16 and 17 of stat (cutime, cstime); `fields[0]` is field 3.
        let ticks: u64 = fields.get(13).ok_or("short stat")?.parse::<u64>()?
            + fields.get(14).ok_or("short stat")?.parse::<u64>()?;
        Ok(Usage {
            cpu_ns: ticks * 10_000_000,
            switches: 0,
        })
    }

    pub fn plus(self, other: Usage) -> Usage {
        Usage {
            cpu_ns: self.cpu_ns + other.cpu_ns,
            switches: self.switches + other.switches,
        }
    }

    pub fn since(self, earlier: Usage) -> Usage {
        Usage {
            cpu_ns: self.cpu_ns.saturating_sub(earlier.cpu_ns),
            switches: self.switches.saturating_sub(earlier.switches),
        }
    }
}

/// Per-MiB usage samples of one contender.
pub struct UsageSamples {
    pub cpu: Samples,
    pub switches: Samples,
}

impl UsageSamples {
    pub fn new(name: &str) -> UsageSamples {
        UsageSamples {
            cpu: Samples::new(name),
            switches: Samples::new(name),
        }
    }

    pub fn push(&mut self, usage: Usage, mib: u64) {
        let mib = mib.max(1) as f64;
        self.cpu.push_secs(usage.cpu_ns as f64 / 1e9 / mib);
        self.switches.push_secs(usage.switches as f64 / mib);
    }
}
