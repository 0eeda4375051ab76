//! Runtime information: the versions the runtime and conmon print, the
//! package that installed each (rpm, then dpkg), as podman's `info` reports
//! them, and the host's capability bounding set (read with `caps`).

use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use runtime_api::{ComponentInfo, Result, RuntimeError, RuntimeInfo};
use state_probe::run_bounded;

use crate::errors::from_probe;
use crate::resolve::search_path;
use crate::runtime::ConmonRuntime;
use crate::runtime_cli::{command_with_env, Subcommand};

pub(crate) async fn runtime_info(rt: &ConmonRuntime) -> Result<RuntimeInfo> {
    let runtime_version = rt
        .cli
        .run(Subcommand::Version, rt.config.timeouts.probe)
        .await?;
    let runtime_version = String::from_utf8_lossy(&runtime_version.stdout)
        .trim_end()
        .to_string();

    let conmon_version = run(rt, &rt.conmon_path, &["--version"]).await?;
    // conmon prints "conmon version X\ncommit: Y"; podman joins the first
    // two lines with ", ".
    let conmon_version = conmon_version.trim_end().replacen('\n', ", ", 1);

    let probe = Probe {
        env: &rt.cli.env,
        limit: rt.config.timeouts.probe,
    };
    let mut runtime = ComponentInfo::new(&rt.runtime_path, runtime_version);
    runtime.package = probe.package_of(&rt.runtime_path).await;
    let mut monitor = ComponentInfo::new(&rt.conmon_path, conmon_version);
    monitor.package = probe.package_of(&rt.conmon_path).await;
    let mut info = RuntimeInfo::new(runtime);
    info.monitor = Some(monitor);
    info.capabilities = crate::host_bounding_set()
        .map_err(|e| RuntimeError::driver("reading the host's capability bounding set", e))?;
    Ok(info)
}

async fn run(rt: &ConmonRuntime, program: &Path, args: &[&str]) -> Result<String> {
    Probe {
        env: &rt.cli.env,
        limit: rt.config.timeouts.probe,
    }
    .run(program, args)
    .await
}

/// Runs the probing commands with the driver's environment and limit.
struct Probe<'a> {
    env: &'a [(String, String)],
    limit: Duration,
}

impl Probe<'_> {
    async fn run(&self, program: &Path, args: &[&str]) -> Result<String> {
        let cmd = command_with_env(program, args.iter().map(OsString::from).collect(), self.env);
        let rendered = state_probe::render_command(&cmd);
        let out = run_bounded(cmd, self.limit)
            .await
            .map_err(|e| from_probe(&rendered, e))?;
        if !out.success() {
            return Err(RuntimeError::RuntimeFailed {
                command: rendered,
                status: out.status.code(),
                stderr: out.stderr_text(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The installing package as `name-version-release.arch` (rpm) or
    /// `name_version_arch` (dpkg), as podman's `packageVersion` does: rpm
    /// first, then dpkg when rpm is missing or does not know the file (a
    /// Debian host may have rpm installed and own nothing with it). `None`
    /// when neither knows the file.
    async fn package_of(&self, program: &Path) -> Option<String> {
        let file = program.to_str()?;
        if let Some(rpm) = self.rpm_package(file).await {
            return Some(rpm);
        }
        self.dpkg_package(file).await
    }

    async fn rpm_package(&self, file: &str) -> Option<String> {
        let rpm = search_path("rpm", self.path_var().as_deref())?;
        let out = self
            .run(
                &rpm,
                &[
                    "-q",
                    "--qf",
                    "%{NAME}-%{VERSION}-%{RELEASE}.%{ARCH}\\n",
                    "-f",
                    file,
                ],
            )
            .await
            .ok()?;
        first_line(&out)
    }

    async fn dpkg_package(&self, file: &str) -> Option<String> {
        let path_var = self.path_var();
        let dpkg = search_path("dpkg", path_var.as_deref())?;
        let owner = self.run(&dpkg, &["-S", file]).await.ok()?;
        let package = owner.lines().next()?.split(':').next()?.trim().to_string();
        let query = search_path("dpkg-query", path_var.as_deref())?;
        let described = self
            .run(
                &query,
                &[
                    "-f",
                    "${Package}_${Version}_${Architecture}",
                    "-W",
                    &package,
                ],
            )
            .await
            .ok()?;
        first_line(&described)
    }

    fn path_var(&self) -> Option<OsString> {
        self.env
            .iter()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| OsString::from(v))
    }
}

/// The first line of a command's output, when it is not empty.
fn first_line(out: &str) -> Option<String> {
    out.lines()
        .next()
        .map(|line| line.trim().to_string())
        .filter(|line| !line.is_empty())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn script(dir: &Path, name: &str, body: &str) {
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[tokio::test]
    async fn package_version_falls_back_from_rpm_to_dpkg() {
        let dir = tempfile::tempdir().unwrap();
        // rpm is installed but owns nothing, as on a Debian host.
        script(
            dir.path(),
            "rpm",
            "echo \"file $6 is not owned by any package\"; exit 1",
        );
        script(dir.path(), "dpkg", "echo \"runc: $2\"");
        script(
            dir.path(),
            "dpkg-query",
            "[ \"$4\" = runc ] && echo runc_1.1.5+ds1-1_amd64",
        );
        let env = vec![("PATH".to_string(), dir.path().display().to_string())];
        let probe = Probe {
            env: &env,
            limit: Duration::from_secs(10),
        };
        assert_eq!(
            probe
                .package_of(Path::new("/usr/sbin/runc"))
                .await
                .as_deref(),
            Some("runc_1.1.5+ds1-1_amd64")
        );

        // rpm answers first when it knows the file.
        script(dir.path(), "rpm", "echo runc-1.1.12-1.fc40.x86_64");
        assert_eq!(
            probe
                .package_of(Path::new("/usr/bin/runc"))
                .await
                .as_deref(),
            Some("runc-1.1.12-1.fc40.x86_64")
        );

        // Neither knows it.
        script(dir.path(), "rpm", "exit 1");
        script(dir.path(), "dpkg", "exit 1");
        assert_eq!(probe.package_of(Path::new("/opt/runc")).await, None);
    }
}
