//! Exact conmon argv and env vectors for the settings podman combines,
//! without spawning anything.

use std::path::{Path, PathBuf};
use std::time::Duration;

use conmon_driver::{
    CgroupManager, CgroupsMode, ConmonArgv, ConmonConfig, ConmonDescriptionExt, ConmonEnv,
    ContainerLayout, ExecArgv, ExitCommand, LogLevel, SdNotifyMode,
};
use runtime_api::{
    ContainerDescription, ContainerDescriptionBuilder, ContainerId, ExecSessionId, LogConfig,
    LogDriver, RestoreOptions,
};
use sync_pipe::PipeNumbers;

fn config() -> ConmonConfig {
    let mut config = ConmonConfig::new("runc", "/t");
    config.log_level = LogLevel::Warning;
    config
}

fn container() -> ContainerDescriptionBuilder {
    ContainerDescription::builder(ContainerId::new("c1").unwrap(), "/b", "/r")
        .log(LogDriver::KubernetesFile, "/r/ctr.log")
}

struct Case {
    config: ConmonConfig,
    container: ContainerDescription,
    json_errors: bool,
    pass_fds: u32,
    restore: Option<RestoreOptions>,
}

impl Case {
    fn new(config: ConmonConfig, container: ContainerDescriptionBuilder) -> Self {
        Self {
            config,
            container: container.build().unwrap(),
            json_errors: true,
            pass_fds: 0,
            restore: None,
        }
    }

    fn argv(&self) -> Vec<String> {
        ConmonArgv {
            config: &self.config,
            runtime_path: Path::new("/usr/bin/runc"),
            container: &self.container,
            json_errors: self.json_errors,
            pass_fds: self.pass_fds,
            restore: self.restore.as_ref(),
        }
        .build()
        .into_iter()
        .map(|a| a.into_string().unwrap())
        .collect()
    }
}

const HEAD: &[&str] = &[
    "--api-version",
    "1",
    "-c",
    "c1",
    "-u",
    "c1",
    "-r",
    "/usr/bin/runc",
    "-b",
    "/b",
    "-p",
    "/r/pidfile",
    "-n",
    "c1",
    "--exit-dir",
    "/t/exits",
    "--full-attach",
    "--socket-dir-path",
    "/t/socket",
    "--persist-dir",
    "/t/persist/c1",
];
const OCI_LOG: &[&str] = &[
    "--runtime-arg",
    "--log-format=json",
    "--runtime-arg",
    "--log",
    "--runtime-arg=/r/oci-log",
];
const PIDFILE: &[&str] = &["--conmon-pidfile", "/r/conmon.pid"];

fn expect(parts: &[&[&str]]) -> Vec<String> {
    parts
        .iter()
        .flat_map(|p| p.iter().map(|s| s.to_string()))
        .collect()
}

#[test]
fn default_k8s_file_container() {
    let case = Case::new(config(), container());
    assert_eq!(
        case.argv(),
        expect(&[
            HEAD,
            &[
                "-l",
                "k8s-file:/r/ctr.log",
                "--log-level",
                "warning",
                "--syslog"
            ],
            OCI_LOG,
            PIDFILE
        ])
    );
}

#[test]
fn runsc_global_flags_become_runtime_args() {
    let mut config = config();
    config.runtime_flags = vec!["--network=none".into(), "--root=/x".into()];
    let case = Case::new(config, container());
    assert_eq!(
        case.argv(),
        expect(&[
            HEAD,
            &[
                "--runtime-arg",
                "--network=none",
                "--runtime-arg",
                "--root=/x"
            ],
            &[
                "-l",
                "k8s-file:/r/ctr.log",
                "--log-level",
                "warning",
                "--syslog"
            ],
            OCI_LOG,
            PIDFILE
        ])
    );
}

#[test]
fn systemd_manager_adds_s_unless_no_cgroups_or_split() {
    let mut config = config();
    config.cgroup_manager = CgroupManager::Systemd;
    let with_s = Case::new(config.clone(), container()).argv();
    assert_eq!(
        with_s,
        expect(&[
            HEAD,
            &[
                "-s",
                "-l",
                "k8s-file:/r/ctr.log",
                "--log-level",
                "warning",
                "--syslog"
            ],
            OCI_LOG,
            PIDFILE
        ])
    );
    let split = Case::new(config.clone(), container().cgroups_mode(CgroupsMode::Split)).argv();
    assert!(!split.contains(&"-s".to_string()));
    let no_cgroups = Case::new(config, container().no_cgroups(true)).argv();
    assert_eq!(
        no_cgroups,
        expect(&[
            HEAD,
            &[
                "-l",
                "k8s-file:/r/ctr.log",
                "--log-level",
                "warning",
                "--syslog"
            ],
            OCI_LOG,
            &[
                "--runtime-arg",
                "--cgroup-manager",
                "--runtime-arg",
                "disabled"
            ],
            PIDFILE
        ])
    );
}

#[test]
fn journald_with_tag_and_size_max_from_the_container() {
    let mut config = config();
    config.log_size_max = 1000;
    let case = Case::new(
        config,
        container().log_config(
            LogConfig::new(LogDriver::Journald)
                .with_size_max(4096)
                .with_tag("web"),
        ),
    );
    assert_eq!(
        case.argv(),
        expect(&[
            HEAD,
            &["-l", "journald", "--log-level", "warning", "--syslog"],
            &["--log-size-max", "4096"],
            OCI_LOG,
            &["--log-tag", "web"],
            PIDFILE
        ])
    );
}

#[test]
fn configured_size_max_applies_when_the_container_has_none_and_json_file_is_k8s_file() {
    let mut config = config();
    config.log_size_max = 1000;
    let case = Case::new(config, container().log(LogDriver::JsonFile, "/r/j.log"));
    assert_eq!(
        case.argv(),
        expect(&[
            HEAD,
            &[
                "-l",
                "k8s-file:/r/j.log",
                "--log-level",
                "warning",
                "--syslog"
            ],
            &["--log-size-max", "1000"],
            OCI_LOG,
            PIDFILE
        ])
    );
}

#[test]
fn none_and_passthrough_drivers_debug_level_and_no_syslog() {
    let mut config = config();
    config.log_level = LogLevel::Debug;
    config.syslog = false;
    let none = Case::new(
        config.clone(),
        container().log_config(LogConfig::new(LogDriver::None)),
    );
    // At debug level runtimes print plain errors: no JSON log is asked for.
    assert_eq!(
        none.argv(),
        expect(&[HEAD, &["-l", "none", "--log-level", "debug"], PIDFILE])
    );
    let passthrough = Case::new(
        config,
        container().log_config(LogConfig::new(LogDriver::Passthrough)),
    );
    assert_eq!(
        passthrough.argv(),
        expect(&[
            HEAD,
            &["-l", "passthrough", "--log-level", "debug"],
            PIDFILE
        ])
    );
}

#[test]
fn runtime_without_json_errors_gets_no_oci_log() {
    let mut case = Case::new(config(), container());
    case.json_errors = false;
    assert_eq!(
        case.argv(),
        expect(&[
            HEAD,
            &[
                "-l",
                "k8s-file:/r/ctr.log",
                "--log-level",
                "warning",
                "--syslog"
            ],
            PIDFILE
        ])
    );
}

#[test]
fn terminal_wins_over_stdin_and_stdin_alone_is_i() {
    let tty = Case::new(config(), container().terminal(true).stdin(true)).argv();
    let stdin = Case::new(config(), container().stdin(true)).argv();
    let tail = |flag: &str| {
        expect(&[
            HEAD,
            &[
                "-l",
                "k8s-file:/r/ctr.log",
                "--log-level",
                "warning",
                "--syslog",
            ],
            OCI_LOG,
            &[flag],
            PIDFILE,
        ])
    };
    assert_eq!(tty, tail("-t"));
    assert_eq!(stdin, tail("-i"));
    let reattachable = Case::new(config(), container().stdin(true).leave_stdin_open(true)).argv();
    assert_eq!(
        reattachable,
        expect(&[
            HEAD,
            &[
                "-l",
                "k8s-file:/r/ctr.log",
                "--log-level",
                "warning",
                "--syslog"
            ],
            OCI_LOG,
            &["-i", "--leave-stdin-open"],
            PIDFILE,
        ])
    );
}

#[test]
fn exit_command_delay_no_pivot_keyring_and_preserved_fds() {
    let mut config = config();
    config.no_pivot = true;
    config.enable_keyring = false;
    let mut case = Case::new(
        config,
        container().preserved_fds(2).exit_command(ExitCommand {
            program: PathBuf::from("/usr/bin/engine"),
            args: vec!["cleanup".into(), "c1".into()],
            delay: Some(Duration::from_secs(300)),
        }),
    );
    case.pass_fds = 2;
    assert_eq!(
        case.argv(),
        expect(&[
            HEAD,
            &[
                "-l",
                "k8s-file:/r/ctr.log",
                "--log-level",
                "warning",
                "--syslog"
            ],
            OCI_LOG,
            &["--no-new-keyring"],
            PIDFILE,
            &["--no-pivot"],
            &["--exit-command", "/usr/bin/engine"],
            &["--exit-command-arg", "cleanup", "--exit-command-arg", "c1"],
            &["--exit-delay", "300"],
            &["--runtime-opt", "--preserve-fds", "--runtime-opt", "2"],
        ])
    );
}

#[test]
fn restore_with_tcp_established_and_file_locks() {
    let mut case = Case::new(config(), container());
    let mut restore = RestoreOptions::new("/cp/c1");
    restore.tcp_established = true;
    restore.file_locks = true;
    case.restore = Some(restore);
    assert_eq!(
        case.argv(),
        expect(&[
            HEAD,
            &[
                "-l",
                "k8s-file:/r/ctr.log",
                "--log-level",
                "warning",
                "--syslog"
            ],
            OCI_LOG,
            PIDFILE,
            &["--restore", "/cp/c1"],
            &[
                "--runtime-opt",
                "--tcp-established",
                "--runtime-opt",
                "--file-locks"
            ],
        ])
    );
}

#[test]
fn sd_notify_container_mode_passes_the_socket() {
    let mut config = config();
    config.notify_socket = Some("/run/systemd/notify".into());
    let case = Case::new(
        config.clone(),
        container().sd_notify(SdNotifyMode::Container),
    );
    assert_eq!(
        case.argv(),
        expect(&[
            HEAD,
            &[
                "-l",
                "k8s-file:/r/ctr.log",
                "--log-level",
                "warning",
                "--syslog"
            ],
            OCI_LOG,
            &["--sdnotify-socket=/run/systemd/notify"],
            PIDFILE
        ])
    );
    let conmon_mode = Case::new(config, container().sd_notify(SdNotifyMode::Conmon)).argv();
    assert!(!conmon_mode.iter().any(|a| a.starts_with("--sdnotify")));
}

#[test]
fn custom_name_and_conmon_pidfile() {
    let case = Case::new(
        config(),
        container()
            .name("web")
            .conmon_pidfile("/elsewhere/conmon.pid"),
    );
    let argv = case.argv();
    assert_eq!(argv[12..14], ["-n".to_string(), "web".to_string()]);
    assert_eq!(
        argv[argv.len() - 2..],
        [
            "--conmon-pidfile".to_string(),
            "/elsewhere/conmon.pid".to_string()
        ]
    );
}

fn env(
    config: &ConmonConfig,
    container: &ContainerDescription,
    preserved: u32,
    listen: u32,
) -> Vec<(String, String)> {
    ConmonEnv {
        config,
        container,
        pipes: PipeNumbers::new(preserved, false),
        listen_fds: listen,
    }
    .build()
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

const PATH: (&str, &str) = (
    "PATH",
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
);

#[test]
fn env_default() {
    let c = container().build().unwrap();
    assert_eq!(
        env(&config(), &c, 0, 0),
        pairs(&[
            PATH,
            ("_OCI_SYNCPIPE", "3"),
            ("_OCI_STARTPIPE", "4"),
            ("XDG_RUNTIME_DIR", "/run"),
        ])
    );
}

#[test]
fn env_rootless_userns_home_and_preserved_fds() {
    let mut config = config();
    config.rootless_uid = Some(1000);
    config.userns_configured = true;
    config.home = Some("/home/u".into());
    config.xdg_runtime_dir = Some("/run/user/1000".into());
    config
        .conmon_env
        .push(("XDG_RUNTIME_DIR".into(), "/overridden".into()));
    config
        .conmon_env
        .push(("NOTIFY_SOCKET".into(), "/never".into()));
    config.conmon_env.push(("TZ".into(), "UTC".into()));
    let c = container().preserved_fds(2).build().unwrap();
    assert_eq!(
        env(&config, &c, 2, 0),
        pairs(&[
            PATH,
            ("TZ", "UTC"),
            ("_OCI_SYNCPIPE", "5"),
            ("_OCI_STARTPIPE", "6"),
            ("XDG_RUNTIME_DIR", "/run/user/1000"),
            ("_CONTAINERS_USERNS_CONFIGURED", "done"),
            ("_CONTAINERS_ROOTLESS_UID", "1000"),
            ("HOME", "/home/u"),
        ])
    );
}

#[test]
fn env_notify_socket_only_in_container_mode_and_socket_activation() {
    let mut config = config();
    config.notify_socket = Some("/run/notify".into());
    let container_mode = container()
        .sd_notify(SdNotifyMode::Container)
        .build()
        .unwrap();
    let ignore = container().sd_notify(SdNotifyMode::Ignore).build().unwrap();
    assert_eq!(
        env(&config, &container_mode, 3, 3),
        pairs(&[
            PATH,
            ("_OCI_SYNCPIPE", "6"),
            ("_OCI_STARTPIPE", "7"),
            ("XDG_RUNTIME_DIR", "/run"),
            ("NOTIFY_SOCKET", "/run/notify"),
            ("LISTEN_FDS", "3"),
            ("LISTEN_PID", "1"),
        ])
    );
    assert!(!env(&config, &ignore, 0, 0)
        .iter()
        .any(|(k, _)| k == "NOTIFY_SOCKET"));
}

#[test]
fn rendered_log_tags_reach_both_log_drivers() {
    use conmon_driver::{render_log_tag, LogTagData};
    let data = LogTagData {
        id: "0123456789abcdef0123".into(),
        name: "web".into(),
        image_name: "busybox:latest".into(),
        ..LogTagData::default()
    };
    let tag = render_log_tag("{{.Name}}/{{.ID | truncate 12}}", &data).unwrap();
    assert_eq!(tag, "web/0123456789ab");
    for (driver, path, l) in [
        (LogDriver::Journald, None, "journald".to_string()),
        (
            LogDriver::KubernetesFile,
            Some(PathBuf::from("/r/ctr.log")),
            "k8s-file:/r/ctr.log".to_string(),
        ),
    ] {
        let case = Case::new(
            config(),
            container().log_config({
                let mut log = LogConfig::new(driver).with_tag(tag.clone());
                log.path = path;
                log
            }),
        );
        assert_eq!(
            case.argv(),
            expect(&[
                HEAD,
                &["-l", l.as_str(), "--log-level", "warning", "--syslog"],
                OCI_LOG,
                &["--log-tag", "web/0123456789ab"],
                PIDFILE
            ])
        );
    }
    let err = render_log_tag("{{.Nope}}", &data).unwrap_err();
    assert!(err.to_string().contains(".Nope"), "{err}");
}

fn exec_argv(terminal: bool, stdin: bool, timeout: Option<u64>, delay: Option<u64>) -> Vec<String> {
    let config = config();
    let c = container().build().unwrap();
    let layout = ContainerLayout::new(&config, &c).session(&ExecSessionId::new("e1").unwrap());
    ExecArgv {
        config: &config,
        runtime_path: Path::new("/usr/bin/runc"),
        container: &c,
        session: "e1",
        layout: &layout,
        json_errors: true,
        terminal,
        stdin,
        timeout_secs: timeout,
        exit_delay_secs: delay,
        preserve_fds: 0,
        sandbox_pidfile: None,
    }
    .build()
    .into_iter()
    .map(|a| a.into_string().unwrap())
    .collect()
}

#[test]
fn exec_sessions_point_every_path_into_their_directory() {
    let head: &[&str] = &[
        "--api-version",
        "1",
        "-c",
        "c1",
        "-u",
        "e1",
        "-r",
        "/usr/bin/runc",
        "-b",
        "/b/exec-e1",
        "-p",
        "/b/exec-e1/exec_pid",
        "-n",
        "c1",
        "--exit-dir",
        "/b/exec-e1/exit",
        "--full-attach",
        "--socket-dir-path",
        "/t/socket",
        "--persist-dir",
        "/b/exec-e1/persist",
        "-l",
        "none",
        "--log-level",
        "warning",
        "--syslog",
        "--runtime-arg",
        "--log-format=json",
        "--runtime-arg",
        "--log",
        "--runtime-arg=/b/exec-e1/oci-log",
    ];
    let tail: &[&str] = &[
        "--conmon-pidfile",
        "/b/exec-e1/conmon.pid",
        "-e",
        "--exec-attach",
        "--exec-process-spec",
        "/b/exec-e1/process.json",
    ];
    assert_eq!(exec_argv(false, false, None, None), expect(&[head, tail]));
    assert_eq!(
        exec_argv(true, true, Some(5), Some(2)),
        expect(&[head, &["-t", "-i"], tail, &["-T", "5", "--exit-delay", "2"]])
    );
}

#[test]
fn log_tag_templates_are_rendered_before_reaching_conmon() {
    let case = Case::new(
        config(),
        container()
            .image("docker.io/library/busybox:latest", "605c77e624dd")
            .pod("p1")
            .log_config(
                LogConfig::new(LogDriver::Journald)
                    .with_tag("{{.Name}}/{{.ID}}/{{.ImageName}}/{{.Image | truncate 4}}/{{.Pod}}"),
            ),
    );
    assert_eq!(
        case.argv(),
        expect(&[
            HEAD,
            &["-l", "journald", "--log-level", "warning", "--syslog"],
            OCI_LOG,
            &[
                "--log-tag",
                "c1/c1/docker.io/library/busybox:latest/605c/p1"
            ],
            PIDFILE
        ])
    );
}

#[test]
fn exec_preserving_fds_asks_the_runtime_to_keep_them() {
    let config = config();
    let c = container().build().unwrap();
    let layout = ContainerLayout::new(&config, &c).session(&ExecSessionId::new("e1").unwrap());
    let argv: Vec<String> = ExecArgv {
        config: &config,
        runtime_path: Path::new("/usr/bin/runc"),
        container: &c,
        session: "e1",
        layout: &layout,
        json_errors: true,
        terminal: false,
        stdin: false,
        timeout_secs: None,
        exit_delay_secs: None,
        preserve_fds: 2,
        sandbox_pidfile: None,
    }
    .build()
    .into_iter()
    .map(|a| a.into_string().unwrap())
    .collect();
    let plain = exec_argv(false, false, None, None);
    let at = plain.iter().position(|a| a == "--conmon-pidfile").unwrap();
    let mut expected = plain.clone();
    expected.splice(
        at..at,
        ["--runtime-opt", "--preserve-fds", "--runtime-opt", "2"].map(String::from),
    );
    assert_eq!(argv, expected);
}

#[test]
fn exec_in_a_sandboxed_runtime_asks_for_the_process_pid_inside_it() {
    let config = config();
    let c = container().build().unwrap();
    let layout = ContainerLayout::new(&config, &c).session(&ExecSessionId::new("e1").unwrap());
    let argv: Vec<String> = ExecArgv {
        config: &config,
        runtime_path: Path::new("/usr/bin/runsc"),
        container: &c,
        session: "e1",
        layout: &layout,
        json_errors: true,
        terminal: false,
        stdin: false,
        timeout_secs: None,
        exit_delay_secs: None,
        preserve_fds: 0,
        sandbox_pidfile: Some(&layout.sandbox_pidfile),
    }
    .build()
    .into_iter()
    .map(|a| a.into_string().unwrap())
    .collect();
    let mut expected = exec_argv(false, false, None, None);
    let runtime = expected.iter().position(|a| a == "/usr/bin/runc").unwrap();
    expected[runtime] = "/usr/bin/runsc".into();
    let at = expected
        .iter()
        .position(|a| a == "--conmon-pidfile")
        .unwrap();
    expected.splice(
        at..at,
        [
            "--runtime-opt",
            "--internal-pid-file",
            "--runtime-opt",
            "/b/exec-e1/exec_sandbox_pid",
        ]
        .map(String::from),
    );
    assert_eq!(argv, expected);
}
