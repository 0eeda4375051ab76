//! `ListMetricDescriptors` and `ListPodSandboxMetrics`: the figures of the
//! stats calls again, as named metrics with cAdvisor's names where one
//! fits, so that a kubelet collecting metrics from the runtime (instead of
//! cAdvisor) has them. CRI metric values are unsigned integers, so only
//! figures that are whole numbers in their unit are described: bytes,
//! counts, network counters. CPU time (cAdvisor's fractional seconds) is
//! left to the stats calls.

use k8s_cri::v1 as cri;

/// Labels of a container's metrics, in this order.
const CONTAINER_LABELS: [&str; 4] = ["container", "id", "namespace", "pod"];
/// Labels of a pod's own metrics.
const POD_LABELS: [&str; 3] = ["id", "namespace", "pod"];
/// Labels of a pod's network metrics.
const NETWORK_LABELS: [&str; 3] = ["interface", "namespace", "pod"];

/// What a metric is read from.
#[derive(Clone, Copy)]
enum Source {
    ContainerWorkingSet,
    ContainerRss,
    ContainerUsage,
    ContainerMajorFaults,
    ContainerWritableLayer,
    PodWorkingSet,
    PodProcesses,
    RxBytes,
    RxErrors,
    TxBytes,
    TxErrors,
}

struct Described {
    name: &'static str,
    help: &'static str,
    kind: cri::MetricType,
    labels: &'static [&'static str],
    source: Source,
}

const METRICS: [Described; 11] = [
    Described {
        name: "container_memory_working_set_bytes",
        help: "Current working set of the container in bytes (usage less inactive file pages)",
        kind: cri::MetricType::Gauge,
        labels: &CONTAINER_LABELS,
        source: Source::ContainerWorkingSet,
    },
    Described {
        name: "container_memory_rss",
        help: "Size of the container's anonymous and swap cache memory in bytes",
        kind: cri::MetricType::Gauge,
        labels: &CONTAINER_LABELS,
        source: Source::ContainerRss,
    },
    Described {
        name: "container_memory_usage_bytes",
        help: "Current memory usage of the container in bytes, all memory regardless of when it was accessed",
        kind: cri::MetricType::Gauge,
        labels: &CONTAINER_LABELS,
        source: Source::ContainerUsage,
    },
    Described {
        name: "container_memory_major_page_faults_total",
        help: "Major page faults of the container's processes",
        kind: cri::MetricType::Counter,
        labels: &CONTAINER_LABELS,
        source: Source::ContainerMajorFaults,
    },
    Described {
        name: "container_fs_usage_bytes",
        help: "Bytes used by the container's writable layer",
        kind: cri::MetricType::Gauge,
        labels: &CONTAINER_LABELS,
        source: Source::ContainerWritableLayer,
    },
    Described {
        name: "pod_memory_working_set_bytes",
        help: "Current working set of the pod in bytes, summed over its cgroups",
        kind: cri::MetricType::Gauge,
        labels: &POD_LABELS,
        source: Source::PodWorkingSet,
    },
    Described {
        name: "pod_processes",
        help: "Processes (and threads) running in the pod",
        kind: cri::MetricType::Gauge,
        labels: &POD_LABELS,
        source: Source::PodProcesses,
    },
    Described {
        name: "container_network_receive_bytes_total",
        help: "Bytes received on an interface of the pod",
        kind: cri::MetricType::Counter,
        labels: &NETWORK_LABELS,
        source: Source::RxBytes,
    },
    Described {
        name: "container_network_receive_errors_total",
        help: "Errors while receiving on an interface of the pod",
        kind: cri::MetricType::Counter,
        labels: &NETWORK_LABELS,
        source: Source::RxErrors,
    },
    Described {
        name: "container_network_transmit_bytes_total",
        help: "Bytes transmitted on an interface of the pod",
        kind: cri::MetricType::Counter,
        labels: &NETWORK_LABELS,
        source: Source::TxBytes,
    },
    Described {
        name: "container_network_transmit_errors_total",
        help: "Errors while transmitting on an interface of the pod",
        kind: cri::MetricType::Counter,
        labels: &NETWORK_LABELS,
        source: Source::TxErrors,
    },
];

/// Every metric [`pod_metrics`] may report.
pub fn descriptors() -> Vec<cri::MetricDescriptor> {
    METRICS
        .iter()
        .map(|m| cri::MetricDescriptor {
            name: m.name.into(),
            help: m.help.into(),
            label_keys: m.labels.iter().map(|l| l.to_string()).collect(),
        })
        .collect()
}

fn value(v: &Option<cri::UInt64Value>) -> Option<u64> {
    v.as_ref().map(|v| v.value)
}

fn metric(m: &Described, labels: Vec<String>, value: u64) -> cri::Metric {
    cri::Metric {
        name: m.name.into(),
        // Gathered live.
        timestamp: 0,
        metric_type: m.kind as i32,
        label_values: labels,
        value: Some(cri::UInt64Value { value }),
    }
}

/// The metrics of one pod, from its stats (as `PodSandboxStats` answers
/// them). A figure the stats lack is left out, never reported as zero.
pub fn pod_metrics(stats: &cri::PodSandboxStats) -> cri::PodSandboxMetrics {
    let attributes = stats.attributes.clone().unwrap_or_default();
    let meta = attributes.metadata.unwrap_or_default();
    let linux = stats.linux.clone().unwrap_or_default();
    let pod_labels = vec![
        attributes.id.clone(),
        meta.namespace.clone(),
        meta.name.clone(),
    ];
    let mut metrics = Vec::new();
    let mut containers = Vec::new();
    for m in &METRICS {
        match m.source {
            Source::PodWorkingSet => {
                if let Some(v) = linux
                    .memory
                    .as_ref()
                    .and_then(|u| value(&u.working_set_bytes))
                {
                    metrics.push(metric(m, pod_labels.clone(), v));
                }
            }
            Source::PodProcesses => {
                if let Some(v) = linux.process.as_ref().and_then(|p| value(&p.process_count)) {
                    metrics.push(metric(m, pod_labels.clone(), v));
                }
            }
            Source::RxBytes | Source::RxErrors | Source::TxBytes | Source::TxErrors => {
                let network = linux.network.clone().unwrap_or_default();
                let interfaces = network.default_interface.iter().chain(&network.interfaces);
                for interface in interfaces {
                    let figure = match m.source {
                        Source::RxBytes => &interface.rx_bytes,
                        Source::RxErrors => &interface.rx_errors,
                        Source::TxBytes => &interface.tx_bytes,
                        _ => &interface.tx_errors,
                    };
                    if let Some(v) = value(figure) {
                        let labels = vec![
                            interface.name.clone(),
                            meta.namespace.clone(),
                            meta.name.clone(),
                        ];
                        metrics.push(metric(m, labels, v));
                    }
                }
            }
            _ => {}
        }
    }
    for c in &linux.containers {
        let attributes = c.attributes.clone().unwrap_or_default();
        let labels = vec![
            attributes.metadata.map(|m| m.name).unwrap_or_default(),
            attributes.id.clone(),
            meta.namespace.clone(),
            meta.name.clone(),
        ];
        let memory = c.memory.unwrap_or_default();
        let mut of_container = Vec::new();
        for m in &METRICS {
            let figure = match m.source {
                Source::ContainerWorkingSet => value(&memory.working_set_bytes),
                Source::ContainerRss => value(&memory.rss_bytes),
                Source::ContainerUsage => value(&memory.usage_bytes),
                Source::ContainerMajorFaults => value(&memory.major_page_faults),
                Source::ContainerWritableLayer => {
                    c.writable_layer.as_ref().and_then(|l| value(&l.used_bytes))
                }
                _ => None,
            };
            if let Some(v) = figure {
                of_container.push(metric(m, labels.clone(), v));
            }
        }
        containers.push(cri::ContainerMetrics {
            container_id: attributes.id,
            metrics: of_container,
        });
    }
    cri::PodSandboxMetrics {
        pod_sandbox_id: attributes.id,
        metrics,
        container_metrics: containers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(value: u64) -> Option<cri::UInt64Value> {
        Some(cri::UInt64Value { value })
    }

    #[test]
    fn every_reported_metric_is_described_with_as_many_labels_as_keys() {
        let stats = cri::PodSandboxStats {
            attributes: Some(cri::PodSandboxAttributes {
                id: "p1".into(),
                metadata: Some(cri::PodSandboxMetadata {
                    name: "web".into(),
                    namespace: "shop".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            linux: Some(cri::LinuxPodSandboxStats {
                memory: Some(cri::MemoryUsage {
                    working_set_bytes: n(300),
                    ..Default::default()
                }),
                process: Some(cri::ProcessUsage {
                    process_count: n(3),
                    ..Default::default()
                }),
                network: Some(cri::NetworkUsage {
                    default_interface: Some(cri::NetworkInterfaceUsage {
                        name: "lo".into(),
                        rx_bytes: n(10),
                        rx_errors: n(0),
                        tx_bytes: n(10),
                        tx_errors: None,
                    }),
                    ..Default::default()
                }),
                containers: vec![cri::ContainerStats {
                    attributes: Some(cri::ContainerAttributes {
                        id: "c1".into(),
                        metadata: Some(cri::ContainerMetadata {
                            name: "app".into(),
                            attempt: 0,
                        }),
                        ..Default::default()
                    }),
                    memory: Some(cri::MemoryUsage {
                        working_set_bytes: n(200),
                        rss_bytes: n(150),
                        usage_bytes: n(250),
                        ..Default::default()
                    }),
                    writable_layer: Some(cri::FilesystemUsage {
                        used_bytes: n(4096),
                        ..Default::default()
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        let described = descriptors();
        let out = pod_metrics(&stats);
        assert_eq!(out.pod_sandbox_id, "p1");
        let all = out
            .metrics
            .iter()
            .chain(out.container_metrics.iter().flat_map(|c| &c.metrics));
        let mut names = Vec::new();
        for m in all {
            let d = described.iter().find(|d| d.name == m.name).unwrap();
            assert_eq!(d.label_keys.len(), m.label_values.len(), "{}", m.name);
            names.push((m.name.as_str(), m.value.as_ref().unwrap().value));
        }
        for expected in [
            ("pod_memory_working_set_bytes", 300),
            ("pod_processes", 3),
            ("container_network_receive_bytes_total", 10),
            ("container_network_receive_errors_total", 0),
            ("container_network_transmit_bytes_total", 10),
            ("container_memory_working_set_bytes", 200),
            ("container_memory_rss", 150),
            ("container_memory_usage_bytes", 250),
            ("container_fs_usage_bytes", 4096),
        ] {
            assert!(
                names.contains(&expected),
                "{expected:?} missing from {names:?}"
            );
        }
        // Figures the stats lack are left out, not zero.
        assert!(!names
            .iter()
            .any(|(n, _)| *n == "container_network_transmit_errors_total"));
        assert!(!names
            .iter()
            .any(|(n, _)| *n == "container_memory_major_page_faults_total"));
        let c = &out.container_metrics[0];
        assert_eq!(c.container_id, "c1");
        assert_eq!(c.metrics[0].label_values, vec!["app", "c1", "shop", "web"]);
    }
}
