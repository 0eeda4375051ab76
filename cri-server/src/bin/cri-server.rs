//! `cri-server`: a CRI v1 server over the conmon driver.
//!
//! ```text
//! cri-server serve  [--socket PATH] [--state-dir DIR] [--run-dir DIR]
//!                   [--handler NAME]... [--runtime-flag NAME=FLAG]...
//!                   [--isolated NAME]... [--default-handler NAME]
//!                   [--pause-image NAME] [--pause-command ARG]...
//!                   [--streaming-address ADDR] [--streaming-token-ttl SECONDS]
//! cri-server import [--state-dir DIR] LAYOUT_DIR NAME
//! ```
//!
//! Each `--handler` is an OCI runtime run through conmon (`runc`, `runsc`,
//! `crun`, or a path); `--runtime-flag runsc=--network=none` adds a global
//! flag to that runtime's calls; `--isolated runsc` makes that handler's
//! containers sandboxes of their own instead of joining the pod's
//! namespaces. `--streaming-address` is where the exec, attach and
//! port-forward URLs point (`127.0.0.1:0`, a free port, by default);
//! `--streaming-token-ttl` is how long such a URL stays valid (60 s).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use conmon_driver::{ConmonConfig, ConmonRuntime};
use cri_server::{bind, serve, Engine, PodNamespaceJoin, RuntimeHandler, ServerConfig};
use runtime_api::OciRuntime;

const DEFAULT_SOCKET: &str = "/run/cri-server/cri-server.sock";
const DEFAULT_STATE: &str = "/var/lib/cri-server";
const DEFAULT_RUN: &str = "/run/cri-server";

#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error("{0}\n\nusage:\n  cri-server serve [--socket PATH] [--state-dir DIR] [--run-dir DIR] [--handler NAME]... [--runtime-flag NAME=FLAG]... [--isolated NAME]... [--default-handler NAME] [--pause-image NAME] [--pause-command ARG]... [--streaming-address ADDR] [--streaming-token-ttl SECONDS]\n  cri-server import [--state-dir DIR] LAYOUT_DIR NAME")]
    Usage(String),
    #[error(transparent)]
    Cri(#[from] cri_server::CriError),
    #[error(transparent)]
    Image(#[from] cri_server::images::ImageError),
    #[error(transparent)]
    Runtime(#[from] runtime_api::RuntimeError),
    #[error("starting the async runtime: {0}")]
    Tokio(std::io::Error),
}

#[derive(Debug, Default)]
struct ServeArgs {
    socket: Option<PathBuf>,
    state_dir: Option<PathBuf>,
    run_dir: Option<PathBuf>,
    handlers: Vec<String>,
    flags: Vec<(String, String)>,
    isolated: Vec<String>,
    default_handler: Option<String>,
    pause_image: Option<String>,
    pause_command: Vec<String>,
    streaming_address: Option<std::net::SocketAddr>,
    streaming_token_ttl: Option<std::time::Duration>,
}

fn value(args: &mut impl Iterator<Item = String>, flag: &str) -> Result<String, CliError> {
    args.next()
        .ok_or_else(|| CliError::Usage(format!("{flag} needs a value")))
}

fn parse_serve(args: impl IntoIterator<Item = String>) -> Result<ServeArgs, CliError> {
    let mut out = ServeArgs::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--socket" => out.socket = Some(value(&mut args, &arg)?.into()),
            "--state-dir" => out.state_dir = Some(value(&mut args, &arg)?.into()),
            "--run-dir" => out.run_dir = Some(value(&mut args, &arg)?.into()),
            "--handler" => out.handlers.push(value(&mut args, &arg)?),
            "--isolated" => out.isolated.push(value(&mut args, &arg)?),
            "--default-handler" => out.default_handler = Some(value(&mut args, &arg)?),
            "--pause-image" => out.pause_image = Some(value(&mut args, &arg)?),
            "--pause-command" => out.pause_command.push(value(&mut args, &arg)?),
            "--streaming-address" => {
                let v = value(&mut args, &arg)?;
                out.streaming_address = Some(v.parse().map_err(|_| {
                    CliError::Usage(format!("--streaming-address {v:?}: expected IP:PORT"))
                })?);
            }
            "--streaming-token-ttl" => {
                let v = value(&mut args, &arg)?;
                let secs = v.parse::<u64>().ok().filter(|s| *s > 0).ok_or_else(|| {
                    CliError::Usage(format!("--streaming-token-ttl {v:?}: expected seconds > 0"))
                })?;
                out.streaming_token_ttl = Some(std::time::Duration::from_secs(secs));
            }
            "--runtime-flag" => {
                let v = value(&mut args, &arg)?;
                let (name, flag) = v.split_once('=').ok_or_else(|| {
                    CliError::Usage(format!("--runtime-flag {v:?}: expected NAME=FLAG"))
                })?;
                out.flags.push((name.to_string(), flag.to_string()));
            }
            other => return Err(CliError::Usage(format!("unknown option {other:?}"))),
        }
    }
    if out.handlers.is_empty() {
        out.handlers.push("runc".into());
    }
    Ok(out)
}

fn server_config(args: ServeArgs) -> Result<ServerConfig, CliError> {
    let state_dir = args.state_dir.unwrap_or_else(|| DEFAULT_STATE.into());
    let run_dir = args.run_dir.unwrap_or_else(|| DEFAULT_RUN.into());
    let mut handlers = Vec::new();
    for name in &args.handlers {
        let short = name.rsplit('/').next().unwrap_or(name).to_string();
        let mut conmon = ConmonConfig::new(name, run_dir.join("conmon").join(&short));
        conmon.runtime_flags = args
            .flags
            .iter()
            .filter(|(n, _)| *n == short || n == name)
            .map(|(_, f)| f.clone())
            .collect();
        let runtime: Arc<dyn OciRuntime> = Arc::new(ConmonRuntime::new(conmon)?);
        let join = if args.isolated.contains(&short) {
            PodNamespaceJoin::Isolated
        } else {
            PodNamespaceJoin::Paths
        };
        handlers.push(RuntimeHandler::new(short, runtime).with_join(join));
    }
    let first = handlers.remove(0);
    let mut config = ServerConfig::new(state_dir, run_dir.join("containers"), first);
    config.handlers.extend(handlers);
    if let Some(d) = args.default_handler {
        config.default_handler = d;
    }
    if let Some(p) = args.pause_image {
        config.pause_image = p;
    }
    config.pause_command = args.pause_command;
    if let Some(address) = args.streaming_address {
        config.streaming.address = address;
    }
    if let Some(ttl) = args.streaming_token_ttl {
        config.streaming.token_ttl = ttl;
    }
    Ok(config)
}

fn run(mut argv: impl Iterator<Item = String>) -> Result<(), CliError> {
    let command = argv
        .next()
        .ok_or_else(|| CliError::Usage("a subcommand is needed".into()))?;
    match command.as_str() {
        "import" => {
            let mut state_dir = PathBuf::from(DEFAULT_STATE);
            let mut positional = Vec::new();
            while let Some(arg) = argv.next() {
                if arg == "--state-dir" {
                    state_dir = value(&mut argv, &arg)?.into();
                } else {
                    positional.push(arg);
                }
            }
            let [layout, name] = positional.as_slice() else {
                return Err(CliError::Usage("import needs LAYOUT_DIR and NAME".into()));
            };
            let store = cri_server::images::ImageStore::open(state_dir.join("images"))?;
            let record = store.import_layout(layout.as_ref(), name)?;
            println!("{} {}", record.id, record.names.join(" "));
            Ok(())
        }
        "serve" => {
            let args = parse_serve(argv)?;
            let socket = args.socket.clone().unwrap_or_else(|| DEFAULT_SOCKET.into());
            let config = server_config(args)?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(CliError::Tokio)?;
            runtime.block_on(async move {
                let engine = Arc::new(Engine::new(config)?);
                let found = engine.recovery();
                tracing::info!(
                    pods = found.pods.len(),
                    containers = found.containers.len(),
                    interrupted = found.removed.len(),
                    skipped = found.skipped.len(),
                    "took back the pods and containers of the state directory"
                );
                let listener = bind(&socket)?;
                tracing::info!(socket = %socket.display(), "serving CRI v1");
                serve(engine, listener, shutdown_signal()).await?;
                Ok(())
            })
        }
        other => Err(CliError::Usage(format!("unknown subcommand {other:?}"))),
    }
}

/// Completes on SIGINT or SIGTERM (this process's own handlers; the
/// library installs none).
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(mut int), Ok(mut term)) => {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
        }
        _ => std::future::pending::<()>().await,
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    match run(std::env::args().skip(1)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cri-server: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn serve_options_parse() {
        let a = parse_serve(args(&[
            "--handler",
            "runc",
            "--handler",
            "runsc",
            "--runtime-flag",
            "runsc=--network=none",
            "--isolated",
            "runsc",
            "--pause-command",
            "sleep",
            "--pause-command",
            "inf",
        ]))
        .unwrap();
        assert_eq!(a.handlers, ["runc", "runsc"]);
        assert_eq!(
            a.flags,
            [("runsc".to_string(), "--network=none".to_string())]
        );
        assert_eq!(a.pause_command, ["sleep", "inf"]);
        assert!(parse_serve(args(&["--bogus"])).is_err());
        assert!(parse_serve(args(&["--runtime-flag", "noequals"])).is_err());
        assert_eq!(parse_serve(args(&[])).unwrap().handlers, ["runc"]);
        let s = parse_serve(args(&[
            "--streaming-address",
            "0.0.0.0:10010",
            "--streaming-token-ttl",
            "30",
        ]))
        .unwrap();
        assert_eq!(s.streaming_address, Some("0.0.0.0:10010".parse().unwrap()));
        assert_eq!(
            s.streaming_token_ttl,
            Some(std::time::Duration::from_secs(30))
        );
        assert!(parse_serve(args(&["--streaming-address", "nope"])).is_err());
        assert!(parse_serve(args(&["--streaming-token-ttl", "0"])).is_err());
    }
}
