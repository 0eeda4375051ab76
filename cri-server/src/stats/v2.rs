//! Reading a cgroup v2 container's figures: `cpu.stat` (`usage_usec`),
//! `memory.current`, `memory.max`, `memory.stat` (`anon`,
//! `inactive_file`, `pgfault`, `pgmajfault`) and `pids.current` (or the
//! length of `cgroup.procs`).

use std::path::Path;

use super::parse::{count_pids, read, read_keyed, read_u64};
use super::Figures;

/// The figures of the cgroup v2 directory `dir` (missing files or
/// controllers leave their figures out).
pub fn read_figures(dir: &Path) -> Figures {
    let cpu = read_keyed(&dir.join("cpu.stat"));
    let memory = read_keyed(&dir.join("memory.stat"));
    Figures {
        cpu_usage_ns: cpu.get("usage_usec").map(|us| us.saturating_mul(1000)),
        memory_usage: read_u64(&dir.join("memory.current")),
        // "max" is no limit, and parses as none.
        memory_limit: read_u64(&dir.join("memory.max")),
        inactive_file: memory.get("inactive_file").copied(),
        rss: memory.get("anon").copied(),
        page_faults: memory.get("pgfault").copied(),
        major_page_faults: memory.get("pgmajfault").copied(),
        processes: read_u64(&dir.join("pids.current"))
            .or_else(|| read(&dir.join("cgroup.procs")).map(|t| count_pids(&t))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn a_recorded_v2_tree() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        fs::write(
            dir.join("cpu.stat"),
            "usage_usec 2500\nuser_usec 2000\nsystem_usec 500\n",
        )
        .unwrap();
        fs::write(dir.join("memory.current"), "20971520\n").unwrap();
        fs::write(dir.join("memory.max"), "max\n").unwrap();
        fs::write(
            dir.join("memory.stat"),
            "anon 16777216\nfile 4194304\ninactive_file 2097152\npgfault 77\npgmajfault 1\n",
        )
        .unwrap();
        fs::write(dir.join("pids.current"), "4\n").unwrap();
        let f = read_figures(dir);
        assert_eq!(f.cpu_usage_ns, Some(2_500_000));
        assert_eq!(f.memory_usage, Some(20_971_520));
        assert_eq!(f.memory_limit, None);
        assert_eq!(f.rss, Some(16_777_216));
        assert_eq!(f.working_set(), Some(20_971_520 - 2_097_152));
        assert_eq!((f.page_faults, f.major_page_faults), (Some(77), Some(1)));
        assert_eq!(f.processes, Some(4));

        fs::write(dir.join("memory.max"), "33554432\n").unwrap();
        fs::remove_file(dir.join("pids.current")).unwrap();
        fs::write(dir.join("cgroup.procs"), "1\n2\n3\n").unwrap();
        let f = read_figures(dir);
        assert_eq!(f.available(), Some(33_554_432 - (20_971_520 - 2_097_152)));
        assert_eq!(f.processes, Some(3));
    }

    #[test]
    fn garbage_is_left_out() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        fs::write(dir.join("cpu.stat"), "usage_usec 18446744073709551615\n").unwrap();
        fs::write(dir.join("memory.current"), "\u{fffd}").unwrap();
        fs::write(dir.join("memory.stat"), "anon\ninactive_file 5 6\n").unwrap();
        let f = read_figures(dir);
        // Saturates rather than overflowing.
        assert_eq!(f.cpu_usage_ns, Some(u64::MAX));
        assert_eq!((f.memory_usage, f.rss, f.inactive_file), (None, None, None));
        assert_eq!(read_figures(&dir.join("absent")), Figures::default());
    }
}
