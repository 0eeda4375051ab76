//! Runs a command in a busybox container and prints its `k8s-file` log as
//! `podman logs` does, following it until the container exits.
//!
//! ```text
//! cargo run -p conmon-driver --example logs -- [--tail N] [--timestamps] \
//!     [--log-size-max BYTES] CMD ARGS...
//! cargo run -p conmon-driver --example logs -- --timestamps \
//!     sh -c 'for i in 1 2 3; do echo line $i; sleep 1; done'
//! ```
//!
//! The container is created and started first; its log is then read from
//! the start (or its last `N` lines with `--tail`) and followed: new lines
//! are printed as conmon writes them, across conmon's rotation at
//! `--log-size-max`, until the container has exited and the log is drained.
//! The container is deleted and the example exits with its exit code
//! (125, 126 or 127 for errors, as podman's).

use std::time::Duration;

use conmon_driver::{ConmonConfig, ConmonRuntime, LogLevel, LogOptions};
use runtime_api::{
    ContainerDescription, ContainerId, CreateOptions, LogConfig, LogDriver, OciRuntime,
    RuntimeError,
};
use testkit::BundleBuilder;
use tokio::io::AsyncWriteExt;

struct Args {
    tail: Option<usize>,
    timestamps: bool,
    size_max: Option<i64>,
    command: Vec<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let mut parsed = Args {
        tail: None,
        timestamps: false,
        size_max: None,
        command: Vec::new(),
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--tail" => {
                let n = args.next().ok_or("--tail needs a number")?;
                parsed.tail = Some(n.parse().map_err(|_| format!("--tail {n:?}"))?);
            }
            "--log-size-max" => {
                let n = args.next().ok_or("--log-size-max needs a number")?;
                parsed.size_max = Some(n.parse().map_err(|_| format!("--log-size-max {n:?}"))?);
            }
            "--timestamps" => parsed.timestamps = true,
            "--" => parsed.command.extend(args.by_ref()),
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
        return Err(
            "usage: logs [--tail N] [--timestamps] [--log-size-max BYTES] CMD ARGS...".into(),
        );
    }
    Ok(parsed)
}

async fn run(args: Args) -> Result<i32, RuntimeError> {
    let work = tempfile::tempdir().map_err(|e| RuntimeError::io("creating a temp dir", e))?;
    let bundle = BundleBuilder::new()
        .args(args.command)
        .build()
        .map_err(|e| RuntimeError::InvalidArgument(format!("building the bundle: {e}")))?;
    let config = ConmonConfig::builder("runc", work.path().join("tmp"))
        .log_level(LogLevel::from_tracing())
        .syslog(false)
        .build()?;
    let runtime = ConmonRuntime::new(config)?;
    let id = ContainerId::new(format!("logs-demo-{}", std::process::id()))?;
    let mut log = LogConfig::new(LogDriver::KubernetesFile).with_path(work.path().join("ctr.log"));
    if let Some(bytes) = args.size_max {
        log = log.with_size_max(bytes);
    }
    let container = ContainerDescription::builder(id, bundle.path(), work.path().join("run"))
        .log_config(log)
        .build()?;
    runtime.create(&container, CreateOptions::default()).await?;
    let result = async {
        runtime.start(&container).await?;
        let mut options = LogOptions::default().follow();
        if let Some(n) = args.tail {
            options = options.tail(n);
        }
        let mut reader = runtime.logs(&container, options)?;
        let mut stdout = tokio::io::stdout();
        let mut stderr = tokio::io::stderr();
        while let Some(line) = reader.next_line().await? {
            let text = line.render(args.timestamps);
            let written = match line.stream {
                conmon_driver::LogStream::Stdout => stdout.write_all(text.as_bytes()).await,
                conmon_driver::LogStream::Stderr => stderr.write_all(text.as_bytes()).await,
            };
            written.map_err(|e| RuntimeError::io("printing the log", e))?;
        }
        runtime.wait(&container, Duration::from_secs(60)).await
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
