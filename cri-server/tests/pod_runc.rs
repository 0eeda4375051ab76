//! Pods with runc: two containers of one pod share the infra container's
//! network, IPC and UTS namespaces; security contexts apply; names are
//! reserved and missing images are reported.

mod common;

use common::*;
use cri_server::k8s_cri::v1 as cri;
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_in_one_pod_share_network_ipc_and_hostname() {
    if !need_runc() {
        return;
    }
    let mut s = TestServer::start_runc().await;
    let log_dir = s.log_dir("shared");
    let mut pod_config = pod_config("shared", &log_dir);
    pod_config.dns_config = Some(cri::DnsConfig {
        servers: vec!["10.96.0.10".into()],
        searches: vec!["default.svc.cluster.local".into()],
        options: vec!["ndots:5".into()],
    });
    pod_config.port_mappings = vec![cri::PortMapping {
        protocol: cri::Protocol::Tcp as i32,
        container_port: 80,
        host_port: 8080,
        host_ip: String::new(),
    }];
    let pod = run_pod(&mut s.runtime, pod_config.clone(), "runc").await;
    // The port mappings are recorded with the pod (nothing forwards them
    // without CNI) and shown in its verbose status.
    let info = s
        .runtime
        .pod_sandbox_status(cri::PodSandboxStatusRequest {
            pod_sandbox_id: pod.clone(),
            verbose: true,
        })
        .await
        .unwrap()
        .into_inner()
        .info;
    let info: serde_json::Value = serde_json::from_str(&info["info"]).unwrap();
    assert_eq!(info["portMappings"][0]["containerPort"], 80, "{info}");
    assert_eq!(info["portMappings"][0]["hostPort"], 8080, "{info}");
    let script = idle_script("a");
    let a = run_container(
        &mut s.runtime,
        &pod,
        &pod_config,
        container_config("a", &["sh", "-c", &script]),
    )
    .await;
    let b = run_container(
        &mut s.runtime,
        &pod,
        &pod_config,
        container_config("b", &["sh", "-c", &script]),
    )
    .await;

    for ns in ["net", "ipc", "uts"] {
        let path = format!("/proc/self/ns/{ns}");
        let in_a = exec_text(&mut s.runtime, &a, &["readlink", &path]).await;
        let in_b = exec_text(&mut s.runtime, &b, &["readlink", &path]).await;
        let on_host = std::fs::read_link(&path).unwrap().display().to_string();
        assert_eq!(in_a, in_b, "{ns}");
        assert_ne!(in_a, on_host, "{ns} is the host's");
    }
    // Each container keeps its own pid namespace.
    let pid_a = exec_text(&mut s.runtime, &a, &["readlink", "/proc/self/ns/pid"]).await;
    let pid_b = exec_text(&mut s.runtime, &b, &["readlink", "/proc/self/ns/pid"]).await;
    assert_ne!(pid_a, pid_b);
    assert_eq!(
        exec_text(&mut s.runtime, &a, &["hostname"]).await,
        "shared-host"
    );
    assert_eq!(
        exec_text(&mut s.runtime, &b, &["hostname"]).await,
        "shared-host"
    );
    // The pod's DNS config is every container's resolv.conf.
    assert_eq!(
        exec_text(&mut s.runtime, &a, &["cat", "/etc/resolv.conf"]).await,
        "nameserver 10.96.0.10\nsearch default.svc.cluster.local\noptions ndots:5"
    );

    // Loopback traffic between the two: a listens (started in the
    // background of an exec), b connects. The connect is retried inside
    // the container until the listener is up, bounded to 100 tries.
    let listen = exec(
        &mut s.runtime,
        &a,
        &["sh", "-c", "nc -l -p 8080 -e echo pong >/dev/null 2>&1 &"],
        10,
    )
    .await
    .unwrap();
    assert_eq!(listen.exit_code, 0);
    let got = exec_text(
        &mut s.runtime,
        &b,
        &["sh", "-c", "for i in $(seq 100); do nc 127.0.0.1 8080 </dev/null 2>/dev/null && exit 0; sleep 0.05; done; exit 1"],
    )
    .await;
    assert_eq!(got, "pong");
    // Only loopback exists in the pod's network namespace.
    let links = exec_text(&mut s.runtime, &a, &["ls", "/sys/class/net"]).await;
    assert_eq!(links, "lo");

    remove_pod(&mut s.runtime, &pod).await;
    s.assert_nothing_left(&[&pod, &a, &b]);
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_context_sets_user_read_only_root_and_capabilities() {
    if !need_runc() {
        return;
    }
    let mut s = TestServer::start_runc().await;
    let pod_config = pod_config("secure", &s.log_dir("secure"));
    let pod = run_pod(&mut s.runtime, pod_config.clone(), "").await;
    let script = idle_script("secure");
    let mut config = container_config("locked", &["sh", "-c", &script]);
    config.linux = Some(cri::LinuxContainerConfig {
        resources: None,
        security_context: Some(cri::LinuxContainerSecurityContext {
            run_as_user: Some(cri::Int64Value { value: 1234 }),
            run_as_group: Some(cri::Int64Value { value: 1234 }),
            supplemental_groups: vec![3000],
            readonly_rootfs: true,
            no_new_privs: true,
            capabilities: Some(cri::Capability {
                drop_capabilities: vec!["NET_RAW".into(), "CHOWN".into()],
                add_capabilities: vec!["SYS_TIME".into()],
                ..Default::default()
            }),
            ..Default::default()
        }),
    });
    let c = run_container(&mut s.runtime, &pod, &pod_config, config).await;
    assert_eq!(exec_text(&mut s.runtime, &c, &["id", "-u"]).await, "1234");
    assert_eq!(exec_text(&mut s.runtime, &c, &["id", "-g"]).await, "1234");
    let groups = exec_text(&mut s.runtime, &c, &["id", "-G"]).await;
    assert!(groups.split(' ').any(|g| g == "2000"), "{groups}");
    assert!(groups.split(' ').any(|g| g == "3000"), "{groups}");
    let touch = exec(&mut s.runtime, &c, &["touch", "/written"], 10)
        .await
        .unwrap();
    assert_ne!(touch.exit_code, 0);
    assert!(
        String::from_utf8_lossy(&touch.stderr).contains("Read-only file system"),
        "{touch:?}"
    );
    let status = exec_text(&mut s.runtime, &c, &["cat", "/proc/self/status"]).await;
    let field = |name: &str| -> String {
        status
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}:")))
            .unwrap_or_else(|| panic!("{name} missing in {status}"))
            .trim()
            .to_string()
    };
    let bounding = u64::from_str_radix(&field("CapBnd"), 16).unwrap();
    const CHOWN: u64 = 1 << 0;
    const KILL: u64 = 1 << 5;
    const NET_RAW: u64 = 1 << 13;
    const SYS_TIME: u64 = 1 << 25;
    assert_eq!(bounding & (CHOWN | NET_RAW), 0, "CapBnd {bounding:x}");
    assert_eq!(
        bounding & (KILL | SYS_TIME),
        KILL | SYS_TIME,
        "CapBnd {bounding:x}"
    );
    assert_eq!(field("NoNewPrivs"), "1");

    remove_pod(&mut s.runtime, &pod).await;
    s.assert_nothing_left(&[&pod, &c]);
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_are_reserved_and_missing_images_are_reported() {
    if !need_runc() {
        return;
    }
    let mut s = TestServer::start_runc().await;
    let pod_config = pod_config("dup", &s.log_dir("dup"));
    let pod = run_pod(&mut s.runtime, pod_config.clone(), "").await;
    let err = s
        .runtime
        .run_pod_sandbox(cri::RunPodSandboxRequest {
            config: Some(pod_config.clone()),
            runtime_handler: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists, "{err:?}");
    assert!(err.message().contains(&pod), "{}", err.message());

    let c = run_container(
        &mut s.runtime,
        &pod,
        &pod_config,
        container_config("one", &["sleep", "60"]),
    )
    .await;
    let create = |config: cri::ContainerConfig| cri::CreateContainerRequest {
        pod_sandbox_id: pod.clone(),
        config: Some(config),
        sandbox_config: Some(pod_config.clone()),
    };
    let err = s
        .runtime
        .create_container(create(container_config("one", &["sleep", "60"])))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists, "{err:?}");

    let mut missing = container_config("two", &["true"]);
    missing.image = Some(cri::ImageSpec {
        image: "quay.io/nobody/nothing:1".into(),
        ..Default::default()
    });
    let err = s
        .runtime
        .create_container(create(missing))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    assert!(
        err.message().contains("not in the local store"),
        "{}",
        err.message()
    );
    let err = s
        .images
        .pull_image(cri::PullImageRequest {
            image: Some(cri::ImageSpec {
                image: "alpine".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert!(
        err.message().contains("no registry client is configured"),
        "{}",
        err.message()
    );

    // Malformed container configs are refused before anything is created.
    let mut bad_cap = container_config("three", &["true"]);
    bad_cap.linux = Some(cri::LinuxContainerConfig {
        security_context: Some(cri::LinuxContainerSecurityContext {
            capabilities: Some(cri::Capability {
                add_capabilities: vec!["FLY".into()],
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    });
    let err = s
        .runtime
        .create_container(create(bad_cap))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    let mut bad_mount = container_config("four", &["true"]);
    bad_mount.mounts = vec![cri::Mount {
        container_path: "relative".into(),
        host_path: "/tmp".into(),
        ..Default::default()
    }];
    let err = s
        .runtime
        .create_container(create(bad_mount))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    // A failed create released its name: the name can be used again.
    let again = run_container(
        &mut s.runtime,
        &pod,
        &pod_config,
        container_config("three", &["sleep", "60"]),
    )
    .await;

    // Starting a running container is refused.
    let err = s
        .runtime
        .start_container(cri::StartContainerRequest {
            container_id: c.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");

    remove_pod(&mut s.runtime, &pod).await;
    s.assert_nothing_left(&[&pod, &c, &again]);
    // After removal, the names are free again.
    let pod2 = run_pod(&mut s.runtime, pod_config.clone(), "").await;
    remove_pod(&mut s.runtime, &pod2).await;
    s.assert_nothing_left(&[&pod2]);
    s.finish().await;
}
