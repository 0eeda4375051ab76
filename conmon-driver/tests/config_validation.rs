//! The driver's configuration: the builder starts from podman's defaults,
//! each setter lands where it should, and each invalid setting or
//! combination is refused with its own typed error, before anything on
//! the host is created.

use std::path::{Path, PathBuf};
use std::time::Duration;

use conmon_driver::{
    CgroupManager, ConfigError, ConmonConfig, ConmonConfigBuilder, ConmonRuntime, LogLevel,
    SelinuxPolicy,
};
use testkit::{fake_conmon, fake_runtime, FakeConmonBehaviour, FakeRuntimeBehaviour};

/// A builder whose runtime and conmon are executables of `dir`, so that
/// only the setting under test can make it fail.
fn valid(dir: &Path) -> ConmonConfigBuilder {
    let runtime = fake_runtime(dir, "fake-rt", FakeRuntimeBehaviour::Succeed).unwrap();
    let conmon = fake_conmon(dir, FakeConmonBehaviour::NeverReports).unwrap();
    ConmonConfig::builder(runtime.to_str().unwrap(), dir.join("tmp")).conmon(conmon)
}

#[test]
fn the_builder_starts_from_podmans_defaults_and_applies_each_setter() {
    let dir = tempfile::tempdir().unwrap();
    let plain = valid(dir.path()).build().unwrap();
    let defaults = ConmonConfig::new("fake-rt", dir.path().join("tmp"));
    assert_eq!(
        PathBuf::from(&plain.runtime_name),
        dir.path().join("fake-rt")
    );
    assert!(plain.runtime_paths.is_empty());
    assert_eq!(plain.cgroup_manager, defaults.cgroup_manager);
    assert_eq!(plain.log_size_max, -1);
    assert_eq!(plain.timeouts, defaults.timeouts);
    assert_eq!(plain.conmon_env, defaults.conmon_env);
    assert!(plain.syslog && plain.enable_keyring && !plain.no_pivot);

    let built = valid(dir.path())
        .runtime_flag("--root=/r")
        .log_level(LogLevel::Debug)
        .log_size_max(4096)
        .syslog(false)
        .no_pivot(true)
        .keyring(false)
        .conmon_env("PATH", "/bin")
        .notify_socket("/run/notify")
        .cgroup_manager(CgroupManager::Systemd)
        .systemd_bus("unix:path=/run/bus")
        .in_systemd_service(true)
        .selinux(SelinuxPolicy::Off)
        .rootless(1000)
        .xdg_runtime_dir(Some(Path::new("/run/user/1000")))
        .home("/home/u")
        .create_timeout(Duration::from_secs(7))
        .build()
        .unwrap();
    assert_eq!(built.runtime_flags, ["--root=/r"]);
    assert_eq!(built.log_level, LogLevel::Debug);
    assert_eq!(built.log_size_max, 4096);
    assert!(!built.syslog && built.no_pivot && !built.enable_keyring);
    assert_eq!(built.conmon_env, [("PATH".to_string(), "/bin".to_string())]);
    assert_eq!(built.notify_socket, Some(PathBuf::from("/run/notify")));
    assert_eq!(built.cgroup_manager, CgroupManager::Systemd);
    assert_eq!(
        built.systemd_bus_address.as_deref(),
        Some("unix:path=/run/bus")
    );
    assert!(built.invocation_id_set);
    assert_eq!(built.selinux, SelinuxPolicy::Off);
    assert_eq!(built.rootless_uid, Some(1000));
    assert_eq!(built.xdg_runtime_dir, Some(PathBuf::from("/run/user/1000")));
    assert_eq!(built.home, Some(PathBuf::from("/home/u")));
    assert_eq!(built.timeouts.create, Duration::from_secs(7));
    // Validation created nothing.
    assert!(!dir.path().join("tmp").exists());
}

#[test]
fn each_invalid_setting_has_its_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let zero_exec = conmon_driver::Timeouts {
        exec: Duration::ZERO,
        ..Default::default()
    };
    type Check = fn(&ConfigError) -> bool;
    let cases: Vec<(&str, ConmonConfigBuilder, Check)> = vec![
        (
            "unknown runtime",
            ConmonConfig::builder("no-such-runtime-xyz", d.join("tmp"))
                .conmon(fake_conmon(d, FakeConmonBehaviour::NeverReports).unwrap()),
            |e| {
                matches!(
                    e,
                    ConfigError::ProgramNotFound {
                        what: "OCI runtime",
                        ..
                    }
                )
            },
        ),
        (
            "runtime path that is not a file",
            ConmonConfig::builder("/nonexistent/runc", d.join("tmp"))
                .conmon(fake_conmon(d, FakeConmonBehaviour::NeverReports).unwrap()),
            |e| {
                matches!(
                    e,
                    ConfigError::ProgramNotFound {
                        what: "OCI runtime",
                        ..
                    }
                )
            },
        ),
        (
            "missing conmon",
            valid(d).conmon("/nonexistent/conmon"),
            |e| matches!(e, ConfigError::ProgramNotFound { what: "conmon", .. }),
        ),
        (
            "relative tmp dir",
            ConmonConfig::builder("runc", "tmp"),
            |e| {
                matches!(
                    e,
                    ConfigError::RelativePath {
                        what: "tmp dir",
                        ..
                    }
                )
            },
        ),
        (
            "relative runtime candidate",
            valid(d).runtime_path("bin/runc"),
            |e| {
                matches!(
                    e,
                    ConfigError::RelativePath {
                        what: "runtime path",
                        ..
                    }
                )
            },
        ),
        ("relative conmon", valid(d).conmon("bin/conmon"), |e| {
            matches!(
                e,
                ConfigError::RelativePath {
                    what: "conmon path",
                    ..
                }
            )
        }),
        (
            "relative XDG_RUNTIME_DIR",
            valid(d).xdg_runtime_dir(Some(Path::new("run/user"))),
            |e| {
                matches!(
                    e,
                    ConfigError::RelativePath {
                        what: "XDG_RUNTIME_DIR",
                        ..
                    }
                )
            },
        ),
        ("relative HOME", valid(d).home("home"), |e| {
            matches!(e, ConfigError::RelativePath { what: "HOME", .. })
        }),
        (
            "relative notify socket",
            valid(d).notify_socket("notify"),
            |e| {
                matches!(
                    e,
                    ConfigError::RelativePath {
                        what: "notify socket",
                        ..
                    }
                )
            },
        ),
        (
            "a systemd bus with the cgroupfs manager",
            valid(d)
                .cgroup_manager(CgroupManager::Cgroupfs)
                .systemd_bus("unix:path=/run/bus"),
            |e| matches!(e, ConfigError::BusWithoutSystemd { .. }),
        ),
        ("an empty runtime flag", valid(d).runtime_flag(""), |e| {
            matches!(e, ConfigError::BadRuntimeFlag { .. })
        }),
        (
            "a runtime flag with a NUL byte",
            valid(d).runtime_flag("--root=/a\0b"),
            |e| matches!(e, ConfigError::BadRuntimeFlag { .. }),
        ),
        ("log size max below -1", valid(d).log_size_max(-2), |e| {
            matches!(e, ConfigError::BadLogSizeMax(-2))
        }),
        (
            "an environment name with '='",
            valid(d).conmon_env("A=B", "c"),
            |e| matches!(e, ConfigError::BadEnvironment { .. }),
        ),
        (
            "a zero create timeout",
            valid(d).create_timeout(Duration::ZERO),
            |e| matches!(e, ConfigError::ZeroTimeout { name: "create" }),
        ),
        ("a zero exec timeout", valid(d).timeouts(zero_exec), |e| {
            matches!(e, ConfigError::ZeroTimeout { name: "exec" })
        }),
    ];
    for (what, builder, expected) in cases {
        let config = builder.peek().clone();
        let err = builder.build().expect_err(what);
        assert!(expected(&err), "{what}: {err:?}");
        assert!(!err.to_string().is_empty());
        // The runtime refuses the same configuration, naming the problem.
        let runtime_err = ConmonRuntime::new(config).expect_err(what);
        assert!(
            runtime_err.to_string().contains(&err.to_string()),
            "{what}: {runtime_err}"
        );
    }
    assert!(
        !d.join("tmp").exists(),
        "a refused configuration created files"
    );
}

#[test]
fn the_runtime_is_looked_up_on_the_callers_path_not_on_conmons() {
    if !testkit::require(&[
        testkit::Need::Binary("runc"),
        testkit::Need::Binary("conmon"),
    ]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty-bin");
    std::fs::create_dir(&empty).unwrap();
    let mut config = ConmonConfig::new("runc", dir.path().join("tmp"));
    // conmon's PATH holds no runtime at all; the caller's PATH does.
    config.conmon_env = vec![("PATH".into(), empty.display().to_string())];
    let runtime = ConmonRuntime::new(config).unwrap();
    let on_callers_path = std::env::split_paths(&std::env::var_os("PATH").unwrap())
        .map(|dir| dir.join("runc"))
        .find(|candidate| candidate.is_file())
        .unwrap();
    assert!(runtime.runtime_path().is_absolute());
    assert_eq!(
        runtime.runtime_path(),
        std::path::absolute(on_callers_path).unwrap()
    );
}
