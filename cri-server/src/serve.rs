//! Serving both CRI services on a Unix socket, with the streaming server
//! beside them.

use std::future::Future;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::sync::Arc;

use k8s_cri::v1::image_service_server::ImageServiceServer;
use k8s_cri::v1::runtime_service_server::RuntimeServiceServer;
use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;

use crate::engine::Engine;
use crate::error::{CriError, Result};
use crate::service::CriService;
use crate::streaming::server::StreamingServer;

/// The largest gRPC message accepted or sent (the kubelet's own limit is
/// 16 MiB; exec output can come close to it).
pub const MAX_MESSAGE: usize = 32 << 20;

/// Binds the Unix socket at `path`: creates its directory, replaces a stale
/// socket (never another kind of file) and restricts it to its owner.
/// Must be called inside a tokio runtime.
pub fn bind(path: &Path) -> Result<UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(CriError::io(format!("creating {}", parent.display())))?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            std::fs::remove_file(path).map_err(CriError::io(format!(
                "removing the stale socket {}",
                path.display()
            )))?;
        }
        Ok(_) => {
            return Err(CriError::InvalidArgument(format!(
                "{} exists and is not a socket",
                path.display()
            )))
        }
        Err(_) => {}
    }
    let listener =
        UnixListener::bind(path).map_err(CriError::io(format!("binding {}", path.display())))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(CriError::io(format!("restricting {}", path.display())))?;
    Ok(listener)
}

/// Serves `RuntimeService` and `ImageService` over `engine` on `listener`
/// until `shutdown` completes, and the streaming server (on the engine's
/// [`StreamingConfig::address`](crate::StreamingConfig::address)) for as
/// long.
pub async fn serve(
    engine: Arc<Engine>,
    listener: UnixListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<()> {
    engine.watch_recovered().await;
    let streaming = StreamingServer::start(engine.clone()).await?;
    let service = CriService::new(engine);
    let served = tonic::transport::Server::builder()
        .add_service(
            RuntimeServiceServer::new(service.clone())
                .max_decoding_message_size(MAX_MESSAGE)
                .max_encoding_message_size(MAX_MESSAGE),
        )
        .add_service(
            ImageServiceServer::new(service)
                .max_decoding_message_size(MAX_MESSAGE)
                .max_encoding_message_size(MAX_MESSAGE),
        )
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), shutdown)
        .await
        .map_err(CriError::Transport);
    streaming.stop().await;
    served
}
