//! Tests of reading and awaiting conmon's exit files.

use std::future::Future;
use std::io::Write;
use std::path::Path;
use std::pin::{pin, Pin};
use std::task::Poll;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use state_probe::{read_exit_file, wait_for_exit_file, ExitRecord, ProbeError};

/// The file's ctime, read with stat(2) directly.
fn stat_ctime(path: &Path) -> SystemTime {
    let st = nix::sys::stat::stat(path).expect("stat");
    let secs = u64::try_from(st.st_ctime).expect("ctime after 1970");
    let nanos = u32::try_from(st.st_ctime_nsec).expect("nanoseconds");
    UNIX_EPOCH + Duration::new(secs, nanos)
}

fn record(path: &Path) -> ExitRecord {
    read_exit_file(path).expect("valid").expect("present")
}

#[test]
fn decimal_codes_with_optional_whitespace() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("abc");
    for (content, code) in [
        ("3", 3),
        ("137\n", 137),
        ("0", 0),
        (" 255 \n", 255),
        ("-1", -1),
    ] {
        std::fs::write(&path, content).expect("write");
        let rec = record(&path);
        assert_eq!(rec.code, code, "{content:?}");
        assert_eq!(rec.finished, stat_ctime(&path));
    }
}

#[test]
fn empty_or_non_numeric_is_invalid() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("abc");
    for content in ["", "abc", "3 4", "\n", "99999999999"] {
        std::fs::write(&path, content).expect("write");
        match read_exit_file(&path) {
            Err(ProbeError::InvalidExitFile {
                path: p,
                content: c,
            }) => {
                assert_eq!(p, path);
                assert_eq!(c, content);
            }
            other => panic!("expected InvalidExitFile for {content:?}, got {other:?}"),
        }
    }
}

#[test]
fn missing_is_none() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert_eq!(read_exit_file(&dir.path().join("abc")).expect("ok"), None);
    assert_eq!(
        read_exit_file(&dir.path().join("no-dir").join("abc")).expect("ok"),
        None
    );
}

#[test]
fn a_directory_is_an_io_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert!(matches!(
        read_exit_file(dir.path()),
        Err(ProbeError::Io { .. })
    ));
}

#[tokio::test]
async fn waits_for_a_file_written_after_the_wait_started() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("abc");
    // join! polls the waiter first: its watch is in place before the
    // writer runs.
    let (waited, ()) = tokio::join!(wait_for_exit_file(&path, Duration::from_secs(10)), async {
        std::fs::write(&path, "3").expect("write");
    });
    let rec = waited.expect("exit file seen");
    assert_eq!(rec.code, 3);
    assert_eq!(rec.finished, stat_ctime(&path));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waits_for_a_file_written_by_another_task() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("abc");
    let writer_path = path.clone();
    // No ordering with the waiter: the watch is registered before the
    // existence check, so the file is found either way.
    let writer = tokio::spawn(async move {
        std::fs::write(&writer_path, "42").expect("write");
    });
    let rec = wait_for_exit_file(&path, Duration::from_secs(10))
        .await
        .expect("exit file seen");
    writer.await.expect("writer task");
    assert_eq!(rec.code, 42);
}

#[tokio::test]
async fn a_file_already_present_is_returned_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("abc");
    std::fs::write(&path, "0").expect("write");
    let rec = wait_for_exit_file(&path, Duration::from_secs(10))
        .await
        .expect("present");
    assert_eq!(rec.code, 0);
}

#[tokio::test]
async fn an_atomic_rename_into_place_is_seen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("abc");
    let tmp = dir.path().join(".abc.tmp");
    let (waited, ()) = tokio::join!(wait_for_exit_file(&path, Duration::from_secs(10)), async {
        std::fs::write(&tmp, "137").expect("write tmp");
        std::fs::rename(&tmp, &path).expect("rename");
    });
    assert_eq!(waited.expect("renamed file seen").code, 137);
}

/// Polls `fut` once, returning what it returned.
async fn poll_once<F: Future + Unpin>(fut: &mut F) -> Poll<F::Output> {
    std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut *fut).poll(cx))).await
}

#[tokio::test]
async fn an_empty_created_file_is_waited_on_until_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("abc");
    let mut waiter = pin!(wait_for_exit_file(&path, Duration::from_secs(10)));
    assert!(
        poll_once(&mut waiter).await.is_pending(),
        "watch registered"
    );
    let mut file = std::fs::File::create(&path).expect("create");
    // Lets the reactor see the inotify event, then lets the waiter read
    // IN_CREATE while the file is still empty: it must keep waiting.
    tokio::task::yield_now().await;
    assert!(
        poll_once(&mut waiter).await.is_pending(),
        "empty file is not final"
    );
    file.write_all(b"9").expect("write");
    drop(file);
    assert_eq!(waiter.await.expect("written file seen").code, 9);
}

#[tokio::test]
async fn other_files_in_the_directory_are_ignored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("abc");
    let (waited, ()) = tokio::join!(wait_for_exit_file(&path, Duration::from_secs(10)), async {
        std::fs::write(dir.path().join("other"), "garbage").expect("write other");
        std::fs::write(&path, "1").expect("write");
    });
    assert_eq!(waited.expect("exit file seen").code, 1);
}

#[tokio::test]
async fn a_finished_invalid_file_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("abc");
    let (waited, ()) = tokio::join!(wait_for_exit_file(&path, Duration::from_secs(10)), async {
        std::fs::write(&path, "abc").expect("write");
    });
    assert!(
        matches!(waited, Err(ProbeError::InvalidExitFile { .. })),
        "{waited:?}"
    );
}

#[tokio::test]
async fn times_out_when_no_file_comes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("abc");
    let limit = Duration::from_millis(100);
    let started = Instant::now();
    match wait_for_exit_file(&path, limit).await {
        Err(ProbeError::Timeout { command, limit: l }) => {
            assert_eq!(command, format!("waiting for exit file {}", path.display()));
            assert_eq!(l, limit);
        }
        other => panic!("expected Timeout, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_missing_directory_is_an_io_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("no-dir").join("abc");
    assert!(matches!(
        wait_for_exit_file(&path, Duration::from_secs(10)).await,
        Err(ProbeError::Io { .. })
    ));
}

#[tokio::test]
async fn a_removed_directory_ends_the_wait() {
    let dir = tempfile::tempdir().expect("tempdir");
    let exits = dir.path().join("exits");
    std::fs::create_dir(&exits).expect("mkdir");
    let path = exits.join("abc");
    let (waited, ()) = tokio::join!(wait_for_exit_file(&path, Duration::from_secs(10)), async {
        std::fs::remove_dir(&exits).expect("rmdir");
    });
    assert!(matches!(waited, Err(ProbeError::Io { .. })), "{waited:?}");
}
