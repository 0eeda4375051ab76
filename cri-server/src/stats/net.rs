//! Network figures of a pod from `/proc/<infra pid>/net/dev`, which shows
//! the interfaces of the process's network namespace: with loopback-only
//! pods that is `lo` alone, reported as the default interface.

use std::path::Path;

/// One interface's counters.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InterfaceCounters {
    /// The interface's name.
    pub name: String,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Receive errors.
    pub rx_errors: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Send errors.
    pub tx_errors: u64,
}

/// The interfaces of a `net/dev` file's text; malformed lines are skipped.
pub fn parse_net_dev(text: &str) -> Vec<InterfaceCounters> {
    text.lines()
        .filter_map(|line| {
            let (name, rest) = line.split_once(':')?;
            let numbers: Vec<u64> = rest
                .split_whitespace()
                .map(str::parse)
                .collect::<Result<_, _>>()
                .ok()?;
            if numbers.len() < 16 {
                return None;
            }
            Some(InterfaceCounters {
                name: name.trim().to_string(),
                rx_bytes: numbers[0],
                rx_errors: numbers[2],
                tx_bytes: numbers[8],
                tx_errors: numbers[10],
            })
        })
        .filter(|i| !i.name.is_empty())
        .collect()
}

/// The interfaces seen by process `pid` (empty when unreadable).
pub fn interfaces_of(pid: i32) -> Vec<InterfaceCounters> {
    std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("net/dev"))
        .map(|t| parse_net_dev(&t))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_counters() {
        let text = "Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:    1234      10    1    0    0     0          0         0     5678      11    2    0    0     0       0          0
garbage line
  eth0: 1 2 3
";
        assert_eq!(
            parse_net_dev(text),
            vec![InterfaceCounters {
                name: "lo".into(),
                rx_bytes: 1234,
                rx_errors: 1,
                tx_bytes: 5678,
                tx_errors: 2,
            }]
        );
        assert!(parse_net_dev("\u{0}:\n:1 2\n").is_empty());
    }
}
