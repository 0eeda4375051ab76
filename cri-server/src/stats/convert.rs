//! Mapping [`Figures`], writable-layer usage and interface counters onto
//! the CRI stats messages. A figure the host did not give is left out of
//! the message, never reported as zero.

use std::path::Path;

use k8s_cri::v1 as cri;

use super::disk::DiskUsage;
use super::net::InterfaceCounters;
use super::Figures;

fn value(v: Option<u64>) -> Option<cri::UInt64Value> {
    v.map(|value| cri::UInt64Value { value })
}

/// The CPU message: cumulative usage and, from the second sample on, the
/// rate; `None` when the cgroup gave no CPU time.
pub fn cpu(at: i64, figures: &Figures, nano_cores: Option<u64>) -> Option<cri::CpuUsage> {
    figures.cpu_usage_ns.map(|usage| cri::CpuUsage {
        timestamp: at,
        usage_core_nano_seconds: value(Some(usage)),
        usage_nano_cores: value(nano_cores),
    })
}

/// The memory message; `None` when the cgroup gave no memory usage.
pub fn memory(at: i64, figures: &Figures) -> Option<cri::MemoryUsage> {
    figures.memory_usage?;
    Some(cri::MemoryUsage {
        timestamp: at,
        working_set_bytes: value(figures.working_set()),
        available_bytes: value(figures.available()),
        usage_bytes: value(figures.memory_usage),
        rss_bytes: value(figures.rss),
        page_faults: value(figures.page_faults),
        major_page_faults: value(figures.major_page_faults),
    })
}

/// The writable layer message for `root`.
pub fn writable_layer(at: i64, root: &Path, usage: &DiskUsage) -> cri::FilesystemUsage {
    cri::FilesystemUsage {
        timestamp: at,
        fs_id: Some(cri::FilesystemIdentifier {
            mountpoint: root.display().to_string(),
        }),
        used_bytes: value(Some(usage.bytes)),
        inodes_used: value(Some(usage.inodes)),
    }
}

/// The process count message.
pub fn process(at: i64, figures: &Figures) -> Option<cri::ProcessUsage> {
    figures.processes.map(|n| cri::ProcessUsage {
        timestamp: at,
        process_count: value(Some(n)),
    })
}

/// The network message: every interface, the first (loopback in a
/// loopback-only pod) as the default one; `None` without interfaces.
pub fn network(at: i64, interfaces: &[InterfaceCounters]) -> Option<cri::NetworkUsage> {
    let to_cri = |i: &InterfaceCounters| cri::NetworkInterfaceUsage {
        name: i.name.clone(),
        rx_bytes: value(Some(i.rx_bytes)),
        rx_errors: value(Some(i.rx_errors)),
        tx_bytes: value(Some(i.tx_bytes)),
        tx_errors: value(Some(i.tx_errors)),
    };
    let first = interfaces.first()?;
    Some(cri::NetworkUsage {
        timestamp: at,
        default_interface: Some(to_cri(first)),
        interfaces: interfaces.iter().map(to_cri).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_figures_are_left_out() {
        let none = Figures::default();
        assert!(cpu(1, &none, None).is_none());
        assert!(memory(1, &none).is_none());
        assert!(process(1, &none).is_none());
        assert!(network(1, &[]).is_none());

        let f = Figures {
            cpu_usage_ns: Some(5),
            memory_usage: Some(100),
            inactive_file: Some(30),
            ..Figures::default()
        };
        let c = cpu(7, &f, None).unwrap();
        assert_eq!(c.usage_core_nano_seconds.unwrap().value, 5);
        assert!(c.usage_nano_cores.is_none(), "a first sample has no rate");
        let m = memory(7, &f).unwrap();
        assert_eq!(m.working_set_bytes.unwrap().value, 70);
        assert!(m.available_bytes.is_none(), "no limit, no available bytes");
        assert!(m.rss_bytes.is_none());
    }
}
