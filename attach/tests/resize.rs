//! Terminal resize and log reopen requests against a real FIFO made in a
//! temporary directory. Needs neither root nor any external binary.

use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use attach::{reopen_log, resize, AttachError, TerminalSize};
use nix::sys::stat::Mode;
use nix::unistd::mkfifo;

fn make_fifo(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("ctl");
    mkfifo(&path, Mode::from_bits_truncate(0o600)).expect("mkfifo");
    path
}

/// Opens the FIFO for reading (blocking until a writer comes) and reads
/// until the writer closes it.
fn read_fifo(path: &Path) -> Vec<u8> {
    let mut file = std::fs::File::open(path).expect("open fifo for reading");
    let mut got = Vec::new();
    file.read_to_end(&mut got).expect("read fifo");
    got
}

#[tokio::test(flavor = "current_thread")]
async fn resize_waits_for_a_reader_then_writes_one_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ctl = make_fifo(dir.path());
    let size = TerminalSize::new(40, 120);

    let writer_path = ctl.clone();
    let writer =
        tokio::spawn(async move { resize(&writer_path, size, Duration::from_secs(10)).await });
    // Let the resize task make its first attempt (no reader yet: ENXIO)
    // before the reader exists.
    tokio::task::yield_now().await;
    assert!(!writer.is_finished());

    let reader_path = ctl.clone();
    let reader = tokio::task::spawn_blocking(move || read_fifo(&reader_path));

    writer.await.expect("join").expect("resize");
    let got = reader.await.expect("join");
    assert_eq!(got, b"1 40 120\n");
}

#[tokio::test]
async fn reopen_log_writes_its_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ctl = make_fifo(dir.path());
    let reader_path = ctl.clone();
    let reader = tokio::task::spawn_blocking(move || read_fifo(&reader_path));
    reopen_log(&ctl, Duration::from_secs(10))
        .await
        .expect("reopen");
    assert_eq!(reader.await.expect("join"), b"2 0 0\n");
}

#[tokio::test]
async fn no_reader_times_out() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ctl = make_fifo(dir.path());
    let limit = Duration::from_millis(200);
    let started = Instant::now();
    let err = resize(&ctl, TerminalSize::new(24, 80), limit)
        .await
        .expect_err("nobody reads");
    let elapsed = started.elapsed();
    match &err {
        AttachError::Timeout { what, limit: l } => {
            assert_eq!(*l, limit);
            assert!(what.contains("ctl"), "{what}");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(elapsed >= limit, "gave up after {elapsed:?}");
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
}

#[tokio::test]
async fn missing_ctl_is_unavailable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ctl = dir.path().join("ctl");
    let err = resize(&ctl, TerminalSize::new(24, 80), Duration::from_secs(1))
        .await
        .expect_err("missing");
    assert!(
        matches!(&err, AttachError::ControlUnavailable { path, .. } if path == &ctl),
        "{err:?}"
    );
}

#[tokio::test]
async fn regular_file_is_not_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ctl = dir.path().join("ctl");
    std::fs::write(&ctl, b"").expect("create");
    let err = resize(&ctl, TerminalSize::new(24, 80), Duration::from_secs(1))
        .await
        .expect_err("not a fifo");
    assert!(matches!(err, AttachError::NotAFifo { .. }), "{err:?}");
    assert_eq!(std::fs::read(&ctl).expect("read"), b"");
}
