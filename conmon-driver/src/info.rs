//! Runtime information: the versions the runtime and conmon print, and the
//! package that installed each (rpm or dpkg, whichever the host has), as
//! podman's `info` reports them.

use std::ffi::OsString;
use std::path::Path;

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

    let mut runtime = ComponentInfo::new(&rt.runtime_path, runtime_version);
    runtime.package = package_of(rt, &rt.runtime_path).await;
    let mut monitor = ComponentInfo::new(&rt.conmon_path, conmon_version);
    monitor.package = package_of(rt, &rt.conmon_path).await;
    let mut info = RuntimeInfo::new(runtime);
    info.monitor = Some(monitor);
    Ok(info)
}

async fn run(rt: &ConmonRuntime, program: &Path, args: &[&str]) -> Result<String> {
    let cmd = command_with_env(
        program,
        args.iter().map(OsString::from).collect(),
        &rt.cli.env,
    );
    let rendered = state_probe::render_command(&cmd);
    let out = run_bounded(cmd, rt.config.timeouts.probe)
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
/// `name_version_arch` (dpkg); `None` when no package manager knows the file.
async fn package_of(rt: &ConmonRuntime, program: &Path) -> Option<String> {
    let path_var = rt
        .cli
        .env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| OsString::from(v));
    let file = program.to_str()?;
    if let Some(rpm) = search_path("rpm", path_var.as_deref()) {
        let out = run(
            rt,
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
        return out.lines().next().map(str::to_string);
    }
    let dpkg = search_path("dpkg", path_var.as_deref())?;
    let owner = run(rt, &dpkg, &["-S", file]).await.ok()?;
    let package = owner.lines().next()?.split(':').next()?.trim().to_string();
    let query = search_path("dpkg-query", path_var.as_deref())?;
    let described = run(
        rt,
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
    Some(described.trim().to_string()).filter(|s| !s.is_empty())
}
