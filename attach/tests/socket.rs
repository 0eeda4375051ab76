//! Attach socket client against real `SOCK_SEQPACKET` peers made in the
//! test: socketpairs and listeners bound in temporary directories
//! (including paths longer than `sun_path`). Needs neither root nor any
//! external binary.

use std::fs::OpenOptions;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use attach::{
    copy_detachable, AttachError, AttachRecord, AttachSocket, AttachStream, CopyOutcome,
    DetachKeys, RecordBatch, MAX_BATCH_RECORD, MAX_INPUT_CHUNK, MAX_RECORD_PAYLOAD,
    RECORD_BUFFER_LEN, SUN_PATH_LEN,
};
use nix::sys::socket::{
    accept, bind, listen, recv, send, socket, socketpair, AddressFamily, Backlog, MsgFlags,
    SockFlag, SockType, UnixAddr,
};

const LIMIT: Duration = Duration::from_secs(10);

/// Takes ownership of a descriptor returned by `accept`.
#[allow(unsafe_code)]
fn own(raw: RawFd) -> OwnedFd {
    // SAFETY: `raw` was just returned by a successful `accept` and is owned
    // by nobody else.
    unsafe { OwnedFd::from_raw_fd(raw) }
}

fn seqpacket_pair() -> (OwnedFd, OwnedFd) {
    socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .expect("socketpair")
}

fn send_msg(fd: &OwnedFd, msg: &[u8]) {
    let n = send(fd.as_raw_fd(), msg, MsgFlags::MSG_NOSIGNAL).expect("send");
    assert_eq!(n, msg.len());
}

fn recv_msg(fd: &OwnedFd) -> Vec<u8> {
    let mut buf = vec![0u8; 65536];
    let n = recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty()).expect("recv");
    buf.truncate(n);
    buf
}

/// A listening `SOCK_SEQPACKET` socket bound at `path` (through
/// `/proc/self/fd` when the path is long, as conmon does).
fn listener(path: &Path) -> OwnedFd {
    let fd = socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .expect("socket");
    let dir = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH)
        .open(path.parent().expect("parent"))
        .expect("open parent");
    let short = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()))
        .join(path.file_name().expect("file name"));
    bind(fd.as_raw_fd(), &UnixAddr::new(&short).expect("addr")).expect("bind");
    listen(&fd, Backlog::new(4).expect("backlog")).expect("listen");
    fd
}

fn record(stream: AttachStream, data: &[u8]) -> AttachRecord {
    AttachRecord {
        stream,
        data: data.to_vec(),
    }
}

#[tokio::test]
async fn records_are_decoded_and_unknown_prefixes_dropped() {
    let (client, server) = seqpacket_pair();
    let socket = AttachSocket::from_fd(client).expect("wrap");

    let full: Vec<u8> = (0..MAX_RECORD_PAYLOAD).map(|i| (i % 251) as u8).collect();
    let mut full_record = vec![2u8];
    full_record.extend_from_slice(&full);
    assert_eq!(full_record.len(), 8193);

    send_msg(&server, b"\x02out");
    send_msg(&server, b"\x07dropped");
    send_msg(&server, b"\x03err");
    send_msg(&server, &full_record);
    send_msg(&server, b"\x01stdin is never sent");
    send_msg(&server, b"\x02last");
    drop(server);

    let mut got = Vec::new();
    while let Some(rec) = socket.read_record().await.expect("read") {
        got.push(rec);
    }
    assert_eq!(
        got,
        vec![
            record(AttachStream::Stdout, b"out"),
            record(AttachStream::Stderr, b"err"),
            record(AttachStream::Stdout, &full),
            record(AttachStream::Stdout, b"last"),
        ]
    );
    // EOF is sticky.
    assert_eq!(socket.read_record().await.expect("read"), None);
}

#[tokio::test]
async fn a_record_longer_than_the_buffer_is_read_whole_and_reading_continues() {
    let (client, server) = seqpacket_pair();
    let socket = AttachSocket::from_fd(client).expect("wrap");
    let mut big = vec![2u8];
    big.resize(RECORD_BUFFER_LEN + 100, b'x');
    send_msg(&server, &big);
    send_msg(&server, b"\x02after");
    assert_eq!(
        socket.read_record().await.expect("read"),
        Some(record(AttachStream::Stdout, &big[1..]))
    );
    assert_eq!(
        socket.read_record().await.expect("read"),
        Some(record(AttachStream::Stdout, b"after"))
    );
}

/// What a sender thread sent: `count` records of varying length, stream
/// and content, as (stream, payload) pairs.
fn varied_records(count: usize) -> Vec<(AttachStream, Vec<u8>)> {
    (0..count)
        .map(|i| {
            let stream = if i % 7 == 3 {
                AttachStream::Stderr
            } else {
                AttachStream::Stdout
            };
            // Full records, small ones and empty ones.
            let len = match i % 5 {
                0 | 1 => MAX_RECORD_PAYLOAD,
                2 => i % 300,
                3 => 0,
                _ => 4096 + i % 97,
            };
            let payload = (0..len).map(|j| ((i * 31 + j) % 251) as u8).collect();
            (stream, payload)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_carry_every_record_in_order_while_a_sender_races() {
    let (client, server) = seqpacket_pair();
    let socket = AttachSocket::from_fd(client).expect("wrap");
    let sent = varied_records(3000);
    let sender = std::thread::spawn({
        let sent = sent.clone();
        move || {
            for (i, (stream, payload)) in sent.iter().enumerate() {
                let mut msg = vec![stream.prefix()];
                msg.extend_from_slice(payload);
                send_msg(&server, &msg);
                if i % 500 == 0 {
                    // An unknown prefix now and then: dropped.
                    send_msg(&server, b"\x09junk");
                }
            }
        }
    });
    let (reader, _writer) = socket.split();
    let mut batch = RecordBatch::new();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut records = 0;
    let mut batches = 0;
    loop {
        let n = tokio::time::timeout(LIMIT, reader.read_batch(&mut batch))
            .await
            .expect("a batch in time")
            .expect("read_batch");
        if n == 0 {
            break;
        }
        batches += 1;
        assert_eq!(n, batch.len());
        records += n;
        let joined: usize = batch.runs().map(|(_, data)| data.len()).sum();
        assert_eq!(joined, batch.payload_len());
        for (stream, data) in batch.runs() {
            match stream {
                AttachStream::Stdout => out.extend_from_slice(data),
                AttachStream::Stderr => err.extend_from_slice(data),
            }
        }
    }
    sender.join().expect("sender");
    assert_eq!(records, sent.len());
    assert!(batches <= records);
    let expected = |which: AttachStream| -> Vec<u8> {
        sent.iter()
            .filter(|(s, _)| *s == which)
            .flat_map(|(_, p)| p.iter().copied())
            .collect()
    };
    assert!(out == expected(AttachStream::Stdout), "stdout differs");
    assert!(err == expected(AttachStream::Stderr), "stderr differs");
    // The end is sticky.
    assert_eq!(reader.read_batch(&mut batch).await.expect("read"), 0);
}

#[tokio::test]
async fn batch_records_keep_their_boundaries_a_long_one_is_whole_and_an_oversized_one_comes_after_them(
) {
    let (client, server) = seqpacket_pair();
    let socket = AttachSocket::from_fd(client).expect("wrap");
    send_msg(&server, b"\x02ab");
    send_msg(&server, b"\x03c");
    let mut long = vec![3u8];
    long.resize(RECORD_BUFFER_LEN + 100, b'l');
    send_msg(&server, &long);
    send_msg(&server, b"\x02d");
    let mut big = vec![2u8];
    big.resize(MAX_BATCH_RECORD + 1, b'x');
    send_msg(&server, &big);
    send_msg(&server, b"\x02after");
    drop(server);
    let mut batch = RecordBatch::new();
    assert_eq!(socket.read_batch(&mut batch).await.expect("first batch"), 4);
    let records: Vec<(AttachStream, Vec<u8>)> =
        batch.records().map(|(s, d)| (s, d.to_vec())).collect();
    assert_eq!(
        records,
        [
            (AttachStream::Stdout, b"ab".to_vec()),
            (AttachStream::Stderr, b"c".to_vec()),
            (AttachStream::Stderr, long[1..].to_vec()),
            (AttachStream::Stdout, b"d".to_vec()),
        ]
    );
    match socket.read_batch(&mut batch).await {
        Err(AttachError::RecordTooLong { len, limit }) => {
            assert_eq!((len, limit), (MAX_BATCH_RECORD + 1, MAX_BATCH_RECORD));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(socket.read_batch(&mut batch).await.expect("after"), 1);
    assert_eq!(
        batch.runs().next().map(|(_, d)| d.to_vec()),
        Some(b"after".to_vec())
    );
    assert_eq!(socket.read_batch(&mut batch).await.expect("end"), 0);
}

#[tokio::test]
async fn connect_write_and_shutdown_through_a_listener() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("attach");
    let listening = listener(&path);

    let socket = AttachSocket::connect(&path, LIMIT).await.expect("connect");
    let server = own(accept(listening.as_raw_fd()).expect("accept"));

    send_msg(&server, b"\x02hello\n");
    assert_eq!(
        socket.read_record().await.expect("read"),
        Some(record(AttachStream::Stdout, b"hello\n"))
    );

    socket.write_all(b"input line\n").await.expect("write");
    socket.shutdown_write().expect("shutdown");
    let server = tokio::task::spawn_blocking(move || {
        assert_eq!(recv_msg(&server), b"input line\n");
        // shutdown(SHUT_WR) on the client: the server reads end of file.
        assert_eq!(recv_msg(&server), b"");
        server
    })
    .await
    .expect("join");

    // Output still flows after the write side is shut.
    send_msg(&server, b"\x03bye");
    assert_eq!(
        socket.read_record().await.expect("read"),
        Some(record(AttachStream::Stderr, b"bye"))
    );
}

#[tokio::test]
async fn long_socket_path_is_reached_through_proc_self_fd() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut deep = dir.path().to_path_buf();
    while deep.as_os_str().len() < 2 * SUN_PATH_LEN {
        deep.push("a-rather-long-directory-name");
    }
    std::fs::create_dir_all(&deep).expect("mkdir");
    let path = deep.join("attach");
    assert!(path.as_os_str().len() >= SUN_PATH_LEN);
    let listening = listener(&path);

    let socket = AttachSocket::connect(&path, LIMIT)
        .await
        .expect("connect long path");
    let server = own(accept(listening.as_raw_fd()).expect("accept"));
    send_msg(&server, b"\x02deep");
    assert_eq!(
        socket.read_record().await.expect("read"),
        Some(record(AttachStream::Stdout, b"deep"))
    );
}

#[tokio::test]
async fn path_of_exactly_sun_path_len_uses_the_detour() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = dir.path().join("x");
    let pad = SUN_PATH_LEN - base.as_os_str().len() - "/attach".len();
    let parent = dir.path().join("x".repeat(pad + 1));
    std::fs::create_dir(&parent).expect("mkdir");
    let path = parent.join("attach");
    assert_eq!(path.as_os_str().len(), SUN_PATH_LEN);
    let listening = listener(&path);
    let socket = AttachSocket::connect(&path, LIMIT).await.expect("connect");
    let server = own(accept(listening.as_raw_fd()).expect("accept"));
    drop(server);
    assert_eq!(socket.read_record().await.expect("read"), None);
}

#[tokio::test]
async fn missing_socket_is_unavailable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("attach");
    match AttachSocket::connect(&path, LIMIT).await {
        Err(AttachError::SocketUnavailable { path: p, source }) => {
            assert_eq!(p, path);
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("unexpected {other:?}"),
    }
    let long = dir.path().join("d".repeat(SUN_PATH_LEN)).join("attach");
    assert!(matches!(
        AttachSocket::connect(&long, LIMIT).await,
        Err(AttachError::SocketUnavailable { .. })
    ));
}

#[tokio::test]
async fn socket_without_listener_is_unavailable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("attach");
    drop(listener(&path)); // the socket file stays, nobody listens
    let err = AttachSocket::connect(&path, LIMIT)
        .await
        .expect_err("refused");
    match &err {
        AttachError::SocketUnavailable { source, .. } => {
            assert_eq!(source.kind(), std::io::ErrorKind::ConnectionRefused);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(
        err.to_string().contains("is the container running"),
        "{err}"
    );
}

#[tokio::test]
async fn large_writes_are_chunked_and_wait_for_room() {
    let (client, server) = seqpacket_pair();
    let socket = AttachSocket::from_fd(client).expect("wrap");
    let data: Vec<u8> = (0..2_000_000u32).map(|i| (i % 253) as u8).collect();
    let expected = data.clone();
    let receiver = tokio::task::spawn_blocking(move || {
        let mut got = Vec::new();
        loop {
            let msg = recv_msg(&server);
            if msg.is_empty() {
                return got;
            }
            assert!(
                msg.len() <= MAX_INPUT_CHUNK,
                "message of {} bytes",
                msg.len()
            );
            got.extend(msg);
        }
    });
    socket.write_all(&data).await.expect("write");
    socket.shutdown_write().expect("shutdown");
    let got = receiver.await.expect("join");
    assert_eq!(got.len(), expected.len());
    assert!(got == expected, "payload differs");
}

#[tokio::test]
async fn writing_after_the_peer_closed_is_broken_pipe() {
    let (client, server) = seqpacket_pair();
    let socket = AttachSocket::from_fd(client).expect("wrap");
    drop(server);
    match socket.write_all(b"x").await {
        Err(AttachError::Io { source, .. }) => {
            assert_eq!(source.kind(), std::io::ErrorKind::BrokenPipe);
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_halves_work_in_separate_tasks() {
    let (client, server) = seqpacket_pair();
    let (reader, writer) = AttachSocket::from_fd(client).expect("wrap").split();

    // An echo server: every input message comes back as a stdout record.
    let echo = tokio::task::spawn_blocking(move || loop {
        let msg = recv_msg(&server);
        if msg.is_empty() {
            return;
        }
        let mut out = vec![2u8];
        out.extend(msg);
        send_msg(&server, &out);
    });

    let reading = tokio::spawn(async move {
        let mut got = Vec::new();
        while let Some(rec) = reader.read_record().await.expect("read") {
            assert_eq!(rec.stream, AttachStream::Stdout);
            got.extend(rec.data);
        }
        got
    });
    let writing = tokio::spawn(async move {
        for i in 0..100u8 {
            writer.write_all(&[i; 100]).await.expect("write");
        }
        writer.shutdown_write().expect("shutdown");
    });
    writing.await.expect("writer");
    echo.await.expect("echo");
    let got = reading.await.expect("reader");
    let expected: Vec<u8> = (0..100u8).flat_map(|i| [i; 100]).collect();
    assert_eq!(got, expected);
}

#[tokio::test]
async fn copy_detachable_into_the_socket() {
    let (client, server) = seqpacket_pair();
    let (_reader, writer) = AttachSocket::from_fd(client).expect("wrap").split();
    let input: &[u8] = b"echo hi\n\x10\x10\x11ignored";
    let outcome = copy_detachable(input, &writer, &DetachKeys::default())
        .await
        .expect("copy");
    assert_eq!(outcome, CopyOutcome::Detached);
    writer.shutdown_write().expect("shutdown");
    let mut got = Vec::new();
    loop {
        let msg = recv_msg(&server);
        if msg.is_empty() {
            break;
        }
        got.extend(msg);
    }
    assert_eq!(got, b"echo hi\n\x10");
}

#[tokio::test]
async fn socket_is_close_on_exec_and_nonblocking() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("attach");
    let _listening = listener(&path);
    let socket = AttachSocket::connect(&path, LIMIT).await.expect("connect");
    let fd = std::os::fd::AsFd::as_fd(&socket).as_raw_fd();
    let fd_flags = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFD).expect("getfd");
    assert_ne!(fd_flags & libc::FD_CLOEXEC, 0, "FD_CLOEXEC missing");
    let fl_flags = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFL).expect("getfl");
    assert_ne!(fl_flags & libc::O_NONBLOCK, 0, "O_NONBLOCK missing");
}

#[test]
fn creating_outside_a_runtime_is_an_error() {
    let (client, _server) = seqpacket_pair();
    let err = AttachSocket::from_fd(client).expect_err("no runtime");
    assert!(err.to_string().contains("tokio runtime"), "{err}");
}
