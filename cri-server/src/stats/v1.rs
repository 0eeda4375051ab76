//! Reading a cgroup v1 container's figures: `cpuacct.usage`, the memory
//! controller's `memory.usage_in_bytes`, `memory.limit_in_bytes` and
//! `memory.stat` (the `total_` hierarchical counters, falling back to the
//! local ones), and `pids.current` (or the length of `cgroup.procs`).

use std::path::Path;

use super::parse::{count_pids, read, read_keyed, read_u64};
use super::Figures;

/// A v1 memory limit at or above this is "no limit" (the kernel reports
/// `PAGE_COUNTER_MAX` pages, rounded, for an unlimited cgroup).
const UNLIMITED: u64 = 1 << 62;

/// The figures of the controllers' directories given (a missing
/// directory or file leaves its figures out).
pub fn read_figures(cpuacct: Option<&Path>, memory: Option<&Path>, pids: Option<&Path>) -> Figures {
    let mut f = Figures::default();
    if let Some(dir) = cpuacct {
        f.cpu_usage_ns = read_u64(&dir.join("cpuacct.usage"));
    }
    if let Some(dir) = memory {
        f.memory_usage = read_u64(&dir.join("memory.usage_in_bytes"));
        f.memory_limit = read_u64(&dir.join("memory.limit_in_bytes")).filter(|l| *l < UNLIMITED);
        let stat = read_keyed(&dir.join("memory.stat"));
        let pick = |name: &str| {
            stat.get(&format!("total_{name}"))
                .or_else(|| stat.get(name))
                .copied()
        };
        f.inactive_file = pick("inactive_file");
        f.rss = pick("rss");
        f.page_faults = pick("pgfault");
        f.major_page_faults = pick("pgmajfault");
    }
    f.processes = pids
        .and_then(|dir| read_u64(&dir.join("pids.current")))
        .or_else(|| {
            [pids, memory, cpuacct]
                .into_iter()
                .flatten()
                .find_map(|dir| read(&dir.join("cgroup.procs")))
                .map(|text| count_pids(&text))
        });
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn a_recorded_v1_tree() {
        let tmp = tempfile::tempdir().unwrap();
        let (cpu, mem, pids) = (
            tmp.path().join("cpuacct"),
            tmp.path().join("memory"),
            tmp.path().join("pids"),
        );
        for d in [&cpu, &mem, &pids] {
            fs::create_dir_all(d).unwrap();
        }
        fs::write(cpu.join("cpuacct.usage"), "123456789\n").unwrap();
        fs::write(mem.join("memory.usage_in_bytes"), "10485760\n").unwrap();
        fs::write(mem.join("memory.limit_in_bytes"), "9223372036854771712\n").unwrap();
        fs::write(
            mem.join("memory.stat"),
            "cache 4096\nrss 100\ninactive_file 50\npgfault 1\ntotal_rss 8192\ntotal_inactive_file 1048576\ntotal_pgfault 300\ntotal_pgmajfault 2\n",
        )
        .unwrap();
        fs::write(pids.join("pids.current"), "3\n").unwrap();
        let f = read_figures(Some(&cpu), Some(&mem), Some(&pids));
        assert_eq!(f.cpu_usage_ns, Some(123_456_789));
        assert_eq!(f.memory_usage, Some(10_485_760));
        assert_eq!(f.memory_limit, None, "the unlimited value is no limit");
        assert_eq!(f.rss, Some(8192));
        assert_eq!(f.inactive_file, Some(1_048_576));
        assert_eq!(f.working_set(), Some(10_485_760 - 1_048_576));
        assert_eq!(f.page_faults, Some(300));
        assert_eq!(f.major_page_faults, Some(2));
        assert_eq!(f.processes, Some(3));

        // A limit, no pids controller: cgroup.procs counts.
        fs::write(mem.join("memory.limit_in_bytes"), "67108864").unwrap();
        fs::write(mem.join("cgroup.procs"), "10\n11\n").unwrap();
        let f = read_figures(Some(&cpu), Some(&mem), None);
        assert_eq!(f.memory_limit, Some(64 << 20));
        assert_eq!(f.available(), Some((64 << 20) - (10_485_760 - 1_048_576)));
        assert_eq!(f.processes, Some(2));
    }

    #[test]
    fn garbage_and_missing_files_leave_figures_out() {
        let tmp = tempfile::tempdir().unwrap();
        let mem = tmp.path().join("memory");
        fs::create_dir_all(&mem).unwrap();
        fs::write(mem.join("memory.usage_in_bytes"), "lots").unwrap();
        fs::write(mem.join("memory.stat"), "\u{0}\u{1}garbage\ntotal_rss -5\n").unwrap();
        let f = read_figures(Some(&tmp.path().join("gone")), Some(&mem), None);
        assert_eq!(f, Figures::default());
        assert_eq!(f.working_set(), None);
    }
}
