//! Runs a command inside a running container through a second conmon, the
//! way `podman exec` does, and exits with the command's exit code.
//!
//! ```text
//! cargo run -p conmon-driver --example exec -- [--user USER] [-t] CMD ARGS...
//! ```
//!
//! The example starts a busybox container running `sleep`, execs `CMD`
//! in it with the local stdout and stderr attached (and stdin with `-t`,
//! which also gives the process a terminal), prints what the command
//! wrote, stops and deletes the container, and exits with the command's
//! exit code; errors exit 125, 126 or 127 as podman's do.

use std::time::Duration;

use conmon_driver::{ConmonConfig, ConmonRuntime, LogLevel};
use runtime_api::{
    AttachOptions, AttachStreams, ContainerDescription, ContainerId, CreateOptions, ExecConfig,
    LogDriver, OciRuntime, RuntimeError,
};
use testkit::{BundleBuilder, RootlessMapping};

struct Args {
    user: Option<String>,
    terminal: bool,
    command: Vec<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let mut parsed = Args {
        user: None,
        terminal: false,
        command: Vec::new(),
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--user" => parsed.user = Some(args.next().ok_or("--user needs a value")?),
            "-t" | "--tty" => parsed.terminal = true,
            "--" => {
                parsed.command.extend(args.by_ref());
            }
            other if other.starts_with('-') && parsed.command.is_empty() => {
                return Err(format!("unknown option {other}"))
            }
            _ => {
                parsed.command.push(arg);
                parsed.command.extend(args.by_ref());
            }
        }
    }
    if parsed.command.is_empty() {
        return Err("usage: exec [--user USER] [-t] CMD ARGS...".into());
    }
    Ok(parsed)
}

async fn run(args: Args) -> Result<i32, RuntimeError> {
    let work = tempfile::tempdir().map_err(|e| RuntimeError::io("creating a temp dir", e))?;
    let config = ConmonConfig::builder("runc", work.path().join("tmp"))
        .log_level(LogLevel::from_tracing())
        .syslog(false)
        .build()?;
    let mut bundle = BundleBuilder::new().args(["sleep", "1000000"]);
    if config.rootless_uid.is_some() {
        // Container root is the caller (and its subordinate ids when the
        // host has them for it).
        bundle = bundle.rootless(RootlessMapping::for_current_user());
    }
    let bundle = bundle
        .build()
        .map_err(|e| RuntimeError::InvalidArgument(format!("building the bundle: {e}")))?;
    let runtime = ConmonRuntime::new(config)?;
    let id = ContainerId::new(format!("exec-demo-{}", std::process::id()))?;
    let container = ContainerDescription::builder(id, bundle.path(), work.path().join("run"))
        .log(LogDriver::KubernetesFile, work.path().join("ctr.log"))
        .build()?;
    runtime.create(&container, CreateOptions::default()).await?;
    let result = async {
        runtime.start(&container).await?;
        let mut exec = ExecConfig::new(args.command);
        exec.user = args.user;
        exec.terminal = args.terminal;
        exec.stdin = args.terminal;
        let streams = AttachStreams {
            stdin: args
                .terminal
                .then(|| Box::pin(tokio::io::stdin()) as runtime_api::InputStream),
            stdout: Some(Box::pin(tokio::io::stdout())),
            stderr: Some(Box::pin(tokio::io::stderr())),
        };
        let handle = runtime
            .exec(&container, &exec, streams, AttachOptions::default())
            .await?;
        let done = handle.completion.await?;
        Ok(done.exit_code.unwrap_or(0))
    }
    .await;
    let _ = runtime.stop(&container, Duration::ZERO, false).await;
    runtime.delete(&container).await?;
    result
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(125);
        }
    };
    match run(args).await {
        Ok(code) => std::process::exit(code),
        Err(err) => {
            eprintln!("Error: {err}");
            std::process::exit(err.exit_code());
        }
    }
}
