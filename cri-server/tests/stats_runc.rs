//! Container and pod stats with conmon and runc, read from the
//! containers' cgroups: a container growing its memory on cue and a
//! CPU-busy one show rising figures across samples, the pod's stats sum
//! them with its loopback counters, and the list calls filter.

mod common;

use std::time::Duration;

use common::*;
use cri_server::k8s_cri::v1 as cri;

fn value(v: &Option<cri::UInt64Value>) -> Option<u64> {
    v.as_ref().map(|v| v.value)
}

async fn stats(
    client: &mut cri::runtime_service_client::RuntimeServiceClient<tonic::transport::Channel>,
    id: &str,
) -> cri::ContainerStats {
    client
        .container_stats(cri::ContainerStatsRequest {
            container_id: id.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .stats
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_rise_with_memory_and_cpu_use() {
    if !need_runc() {
        return;
    }
    let mut s = TestServer::start_runc().await;
    let pod_config = pod_config("stats", &s.log_dir("stats"));
    let pod = run_pod(&mut s.runtime, pod_config.clone(), "runc").await;

    // Grows by 48 MiB of shell variable once /tmp/go exists.
    let grow = "while [ ! -e /tmp/go ]; do sleep 0.1; done; \
                x=$(head -c 50331648 /dev/zero | tr '\\000' a); \
                echo grown; while :; do sleep 1; done";
    let mem = run_container(
        &mut s.runtime,
        &pod,
        &pod_config,
        container_config("mem", &["sh", "-c", grow]),
    )
    .await;
    let cpu = run_container(
        &mut s.runtime,
        &pod,
        &pod_config,
        container_config("cpu", &["sh", "-c", "while :; do :; done"]),
    )
    .await;

    // Memory: a first sample, the cue, then a bounded poll for the rise.
    let first = stats(&mut s.runtime, &mem).await;
    let first_memory = first.memory.expect("memory figures");
    let first_ws = value(&first_memory.working_set_bytes).unwrap();
    assert!(value(&first_memory.usage_bytes).unwrap() >= first_ws);
    assert!(value(&first_memory.rss_bytes).is_some());
    assert!(value(&first_memory.page_faults).is_some());
    assert!(
        first_memory.available_bytes.is_none(),
        "no limit was set: {first_memory:?}"
    );
    let layer = first.writable_layer.clone().expect("writable layer");
    assert!(value(&layer.used_bytes).unwrap() > 0);
    assert!(value(&layer.inodes_used).unwrap() > 10, "{layer:?}");
    assert!(layer.fs_id.unwrap().mountpoint.ends_with("/rootfs"));
    assert_eq!(first.attributes.as_ref().unwrap().id, mem);
    exec_text(&mut s.runtime, &mem, &["touch", "/tmp/go"]).await;
    let client = s.runtime.clone();
    let grown = poll_until("memory to grow by 32 MiB", Duration::from_secs(60), || {
        let mut client = client.clone();
        let mem = mem.clone();
        async move {
            let m = stats(&mut client, &mem).await.memory?;
            let ws = value(&m.working_set_bytes)?;
            (ws >= first_ws + (32 << 20)).then_some(m)
        }
    })
    .await;
    assert!(value(&grown.rss_bytes).unwrap() >= 32 << 20, "{grown:?}");

    // CPU: the busy loop's cumulative time rises and, from the second
    // sample on, it has a rate.
    let first_cpu = stats(&mut s.runtime, &cpu).await.cpu.expect("cpu figures");
    let first_ns = value(&first_cpu.usage_core_nano_seconds).unwrap();
    let busy = poll_until("cpu time to rise", Duration::from_secs(60), || {
        let mut client = client.clone();
        let cpu = cpu.clone();
        async move {
            let c = stats(&mut client, &cpu).await.cpu?;
            (value(&c.usage_core_nano_seconds)? > first_ns + 100_000_000).then_some(c)
        }
    })
    .await;
    assert!(
        value(&busy.usage_nano_cores).unwrap() > 100_000_000,
        "a busy loop uses more than a tenth of a core: {busy:?}"
    );

    // The list calls and their filters.
    let all = s
        .runtime
        .list_container_stats(cri::ListContainerStatsRequest { filter: None })
        .await
        .unwrap()
        .into_inner()
        .stats;
    assert_eq!(all.len(), 2);
    let only_cpu = s
        .runtime
        .list_container_stats(cri::ListContainerStatsRequest {
            filter: Some(cri::ContainerStatsFilter {
                pod_sandbox_id: pod.clone(),
                label_selector: [("container".to_string(), "cpu".to_string())].into(),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .stats;
    assert_eq!(only_cpu.len(), 1);
    assert_eq!(only_cpu[0].attributes.as_ref().unwrap().id, cpu);
    let none = s
        .runtime
        .list_container_stats(cri::ListContainerStatsRequest {
            filter: Some(cri::ContainerStatsFilter {
                pod_sandbox_id: "other".into(),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .stats;
    assert!(none.is_empty());

    // The pod: the sum of its cgroups, its processes, loopback only.
    let pod_stats = s
        .runtime
        .pod_sandbox_stats(cri::PodSandboxStatsRequest {
            pod_sandbox_id: pod.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .stats
        .unwrap();
    assert_eq!(pod_stats.attributes.as_ref().unwrap().id, pod);
    let linux = pod_stats.linux.unwrap();
    assert_eq!(linux.containers.len(), 2);
    let pod_ws = value(&linux.memory.as_ref().unwrap().working_set_bytes).unwrap();
    assert!(pod_ws >= 32 << 20, "{:?}", linux.memory);
    assert!(value(&linux.cpu.as_ref().unwrap().usage_core_nano_seconds).unwrap() > first_ns);
    // pause, the memory container's shell and sleep, the busy shell.
    let processes = value(&linux.process.as_ref().unwrap().process_count).unwrap();
    assert!(processes >= 3, "{processes}");
    let network = linux.network.expect("network figures");
    assert_eq!(network.default_interface.unwrap().name, "lo");
    let listed = s
        .runtime
        .list_pod_sandbox_stats(cri::ListPodSandboxStatsRequest {
            filter: Some(cri::PodSandboxStatsFilter {
                id: pod.clone(),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .stats;
    assert_eq!(listed.len(), 1);

    // The same figures as named metrics, each described with its labels.
    let described = s
        .runtime
        .list_metric_descriptors(cri::ListMetricDescriptorsRequest {})
        .await
        .unwrap()
        .into_inner()
        .descriptors;
    let metrics = s
        .runtime
        .list_pod_sandbox_metrics(cri::ListPodSandboxMetricsRequest {})
        .await
        .unwrap()
        .into_inner()
        .pod_metrics;
    let of_pod = metrics.iter().find(|m| m.pod_sandbox_id == pod).unwrap();
    let all: Vec<&cri::Metric> = of_pod
        .metrics
        .iter()
        .chain(of_pod.container_metrics.iter().flat_map(|c| &c.metrics))
        .collect();
    for m in &all {
        let d = described.iter().find(|d| d.name == m.name).unwrap();
        assert_eq!(d.label_keys.len(), m.label_values.len(), "{m:?}");
    }
    let of_mem = of_pod
        .container_metrics
        .iter()
        .find(|c| c.container_id == mem)
        .unwrap();
    let working_set = of_mem
        .metrics
        .iter()
        .find(|m| m.name == "container_memory_working_set_bytes")
        .and_then(|m| m.value.as_ref())
        .unwrap()
        .value;
    assert!(working_set >= 32 << 20, "{working_set}");
    assert!(
        all.iter()
            .any(|m| m.name == "pod_processes" && m.value.as_ref().unwrap().value >= 3),
        "{all:?}"
    );
    assert!(
        all.iter()
            .any(|m| m.name == "container_network_receive_bytes_total"
                && m.label_values.first().map(String::as_str) == Some("lo")),
        "{all:?}"
    );

    // A stopped container has no cgroup figures, still its layer.
    s.runtime
        .stop_container(cri::StopContainerRequest {
            container_id: cpu.clone(),
            timeout: 0,
        })
        .await
        .unwrap();
    let stopped = stats(&mut s.runtime, &cpu).await;
    assert!(
        stopped.cpu.is_none() && stopped.memory.is_none(),
        "{stopped:?}"
    );
    assert!(stopped.writable_layer.is_some());

    remove_pod(&mut s.runtime, &pod).await;
    assert_eq!(s.engine.exit_watchers(), 0);
    s.assert_nothing_left(&[&pod, &mem, &cpu]);
    s.finish().await;
}

/// Under runsc the pid the runtime reports is the sandbox's: a container's
/// figures are its sandbox's cgroup (each container is a sandbox of its
/// own with the isolated handler), and a busy loop inside gVisor still
/// shows as rising CPU time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_under_runsc_are_the_sandbox_cgroup() {
    if !need_runsc() {
        return;
    }
    let mut s = TestServer::start_runsc().await;
    let pod_config = pod_config("gstats", &s.log_dir("gstats"));
    let pod = run_pod(&mut s.runtime, pod_config.clone(), "runsc").await;
    let busy = run_container(
        &mut s.runtime,
        &pod,
        &pod_config,
        container_config("busy", &["sh", "-c", "while :; do :; done"]),
    )
    .await;
    let first = stats(&mut s.runtime, &busy).await;
    assert!(value(&first.memory.expect("memory figures").usage_bytes).unwrap() > 0);
    let first_ns = value(&first.cpu.expect("cpu figures").usage_core_nano_seconds).unwrap();
    let client = s.runtime.clone();
    poll_until(
        "cpu time to rise in gVisor",
        Duration::from_secs(60),
        || {
            let mut client = client.clone();
            let busy = busy.clone();
            async move {
                let c = stats(&mut client, &busy).await.cpu?;
                (value(&c.usage_core_nano_seconds)? > first_ns + 100_000_000).then_some(())
            }
        },
    )
    .await;
    let pod_stats = s
        .runtime
        .pod_sandbox_stats(cri::PodSandboxStatsRequest {
            pod_sandbox_id: pod.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .stats
        .unwrap();
    let linux = pod_stats.linux.unwrap();
    assert_eq!(linux.containers.len(), 1);
    assert!(value(&linux.cpu.unwrap().usage_core_nano_seconds).unwrap() > first_ns);
    remove_pod(&mut s.runtime, &pod).await;
    assert_eq!(s.engine.exit_watchers(), 0);
    s.assert_nothing_left(&[&pod, &busy]);
    s.finish().await;
}
