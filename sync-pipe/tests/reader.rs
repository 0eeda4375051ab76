//! `SyncReader` over real socketpairs: records, EOF, garbage, oversized
//! records, timeouts and records in sequence.

use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use nix::sys::socket::{send, MsgFlags};
use sync_pipe::{seqpacket_pair, SyncPipeError, SyncReader, SyncRecord};

const LONG: Duration = Duration::from_secs(10);

fn write_record(peer: &OwnedFd, bytes: &[u8]) {
    let n = send(peer.as_raw_fd(), bytes, MsgFlags::MSG_NOSIGNAL).expect("send");
    assert_eq!(n, bytes.len());
}

fn reader() -> (SyncReader, OwnedFd) {
    let (parent, child) = seqpacket_pair().expect("socketpair");
    (SyncReader::new(parent).expect("reader"), child)
}

#[tokio::test]
async fn reads_a_record() {
    let (mut reader, peer) = reader();
    write_record(&peer, b"{\"data\": 12345}\n");
    let record = reader.read_record(LONG).await.unwrap();
    assert_eq!(
        record,
        SyncRecord {
            data: 12345,
            message: None
        }
    );
}

#[tokio::test]
async fn reads_a_failure_record() {
    let (mut reader, peer) = reader();
    write_record(
        &peer,
        b"{\"data\": -1, \"message\": \"runtime stderr text\\n\"}\n",
    );
    let record = reader.read_record(LONG).await.unwrap();
    assert!(record.is_failure());
    assert_eq!(record.message.as_deref(), Some("runtime stderr text\n"));
}

#[tokio::test]
async fn eof_when_the_peer_closes_without_writing() {
    let (mut reader, peer) = reader();
    drop(peer);
    let err = reader.read_record(LONG).await.unwrap_err();
    assert!(matches!(err, SyncPipeError::Eof), "{err:?}");
    assert_eq!(
        err.to_string(),
        "conmon closed the sync pipe without writing a status record"
    );
}

#[tokio::test]
async fn eof_after_a_record() {
    let (mut reader, peer) = reader();
    write_record(&peer, b"{\"data\": 1}\n");
    drop(peer);
    assert_eq!(reader.read_record(LONG).await.unwrap().data, 1);
    assert!(matches!(
        reader.read_record(LONG).await,
        Err(SyncPipeError::Eof)
    ));
}

#[tokio::test]
async fn garbage_then_a_good_record() {
    let (mut reader, peer) = reader();
    write_record(&peer, b"abc");
    write_record(&peer, b"{\"data\": 2}");
    match reader.read_record(LONG).await {
        Err(SyncPipeError::Garbage { first_bytes }) => assert_eq!(first_bytes, "abc"),
        other => panic!("expected Garbage, got {other:?}"),
    }
    assert_eq!(reader.read_record(LONG).await.unwrap().data, 2);
}

#[tokio::test]
async fn oversized_record_reports_its_full_length() {
    let (mut reader, peer) = reader();
    let big = vec![b' '; 70_000];
    write_record(&peer, &big);
    write_record(&peer, b"{\"data\": 3}");
    assert!(matches!(
        reader.read_record(LONG).await,
        Err(SyncPipeError::Oversized { len: 70_000 })
    ));
    assert_eq!(reader.read_record(LONG).await.unwrap().data, 3);
}

#[tokio::test]
async fn record_at_the_size_limit_is_read() {
    let (mut reader, peer) = reader();
    let mut edge = b"{\"data\": 4}".to_vec();
    edge.resize(sync_pipe::MAX_RECORD_LEN, b' ');
    write_record(&peer, &edge);
    assert_eq!(reader.read_record(LONG).await.unwrap().data, 4);
}

#[tokio::test]
async fn timeout_when_nothing_is_written() {
    let (mut reader, peer) = reader();
    let limit = Duration::from_millis(100);
    let err = reader.read_record(limit).await.unwrap_err();
    assert!(
        matches!(err, SyncPipeError::Timeout { limit: l } if l == limit),
        "{err:?}"
    );
    // The pipe is still usable after a timeout.
    write_record(&peer, b"{\"data\": 5}\n");
    assert_eq!(reader.read_record(LONG).await.unwrap().data, 5);
}

#[tokio::test]
async fn two_records_are_read_separately() {
    let (mut reader, peer) = reader();
    write_record(&peer, b"{\"data\": 100}\n");
    write_record(&peer, b"{\"data\": 0}\n");
    assert_eq!(reader.read_record(LONG).await.unwrap().data, 100);
    assert_eq!(reader.read_record(LONG).await.unwrap().data, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_written_while_waiting() {
    let (mut reader, peer) = reader();
    let writer = tokio::task::spawn_blocking(move || {
        write_record(&peer, b"{\"data\": 6}\n");
        peer
    });
    assert_eq!(reader.read_record(LONG).await.unwrap().data, 6);
    drop(writer.await.unwrap());
}

#[test]
fn new_outside_a_runtime_is_an_error() {
    let (parent, _child) = seqpacket_pair().unwrap();
    let err = SyncReader::new(parent).unwrap_err();
    assert!(matches!(err, SyncPipeError::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("tokio runtime"), "{err}");
}
