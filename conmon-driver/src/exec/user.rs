//! Resolving an exec user.
//!
//! `podman exec --user SPEC` resolves SPEC against the container's own
//! `/etc/passwd` and `/etc/group` (podman's `lookup.GetUserGroupInfo`, which
//! applies runc's / moby's `user.GetExecUser` rules). This module does the
//! same against a root filesystem path, without running anything:
//!
//! - SPEC is `user[:group]`, split at the first `:`; each part is a name or
//!   a decimal id. A part that is a number is only ever an id (a user named
//!   `1337` cannot be selected by name), and ids must be in
//!   `0..=2147483647`.
//! - A user is looked up by uid (numeric) or by name; the first matching
//!   line wins and gives uid, primary gid and home. A numeric uid without an
//!   entry (or without a passwd file) is accepted with gid 0 and home `/`
//!   (runc's defaults for an unknown user); an unknown name is an error.
//! - An explicit group is looked up by gid or by name in the same way: a
//!   numeric gid needs no entry, an unknown group name is an error. With an
//!   explicit group there are no supplementary groups.
//! - Without an explicit group and with a user found in passwd, the
//!   supplementary groups are every group listing the user's name as a
//!   member, in file order.
//!
//! Where this differs from runc on purpose: lines starting with `#` are
//! skipped in both files (runc skips them only in `/etc/group`), and lines
//! whose ids are not valid numbers are skipped (runc reads them as id 0,
//! which would let a garbage line match `root`); an entry with an empty home
//! gets `/` instead of an empty `HOME`.

use std::path::Path;

use runtime_api::RuntimeError;

use crate::exec::root_files::read_in_root;

/// The largest id runc accepts (ids must fit a signed 32-bit integer).
const MAX_ID: u64 = i32::MAX as u64;

/// The home of a user without a passwd entry (runc's default exec user).
const DEFAULT_HOME: &str = "/";

/// The identity an exec process runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecUser {
    /// The user id.
    pub uid: u32,
    /// The primary group id.
    pub gid: u32,
    /// Supplementary group ids (not including `gid` unless a group file
    /// lists it).
    pub additional_gids: Vec<u32>,
    /// The home directory from passwd, `/` when there is none.
    pub home: String,
}

/// Resolves `user` (`name`, `uid`, `name:group`, `uid:gid`, `name:gid`,
/// `uid:group`) against `<rootfs>/etc/passwd` and `<rootfs>/etc/group`.
///
/// `None` (or an empty spec) means the container's own user: `default_user`
/// is the container's `process.user` as `(uid, gid, additionalGids)` and is
/// returned as is, with the home of that uid from passwd (or `/`). A spec
/// with an empty user part (`:group`) keeps the default uid.
///
/// Symlinks under `rootfs` are followed as if `rootfs` were `/`: an
/// absolute link target is taken relative to `rootfs` and `..` stops at it,
/// so `/etc/passwd -> /usr/lib/passwd` reads `<rootfs>/usr/lib/passwd` and
/// never a host file (podman does the same with `securejoin`). A missing
/// file, or one that is not a regular file, counts as absent.
///
/// Errors are [`RuntimeError::InvalidArgument`] naming the unknown user or
/// group (`unable to find user nope: no matching entries in passwd file`)
/// or the out-of-range id, and [`RuntimeError::Io`] when a file exists but
/// cannot be read.
pub fn resolve_exec_user(
    rootfs: &Path,
    user: Option<&str>,
    default_user: (u32, u32, Vec<u32>),
) -> Result<ExecUser, RuntimeError> {
    resolve(
        user,
        default_user,
        || read_passwd(rootfs),
        || read_group(rootfs),
    )
}

/// [`resolve_exec_user`] against the text of `/etc/passwd` and
/// `/etc/group` instead of a root filesystem: `None` stands for a file
/// that does not exist. The same rules apply, line for line; nothing is
/// read from disk.
///
/// ```
/// use conmon_driver::{resolve_exec_user_from_text, ExecUser};
///
/// let passwd = "root:x:0:0:root:/root:/bin/sh\nweb:x:101:101::/srv/web:/bin/sh\n";
/// let group = "web:x:101:\nlogs:x:4:web\n";
/// let user = resolve_exec_user_from_text(Some(passwd), Some(group), Some("web"), (0, 0, vec![]))?;
/// assert_eq!(
///     user,
///     ExecUser { uid: 101, gid: 101, additional_gids: vec![4], home: "/srv/web".into() }
/// );
/// # Ok::<(), runtime_api::RuntimeError>(())
/// ```
///
/// # Errors
///
/// [`RuntimeError::InvalidArgument`] naming the unknown user or group or
/// the out-of-range id, as [`resolve_exec_user`].
pub fn resolve_exec_user_from_text(
    passwd: Option<&str>,
    group: Option<&str>,
    user: Option<&str>,
    default_user: (u32, u32, Vec<u32>),
) -> Result<ExecUser, RuntimeError> {
    resolve(
        user,
        default_user,
        || Ok(passwd.map(parse_passwd).unwrap_or_default()),
        || Ok(group.map(parse_group).unwrap_or_default()),
    )
}

/// The resolution itself; each file is loaded only when the spec needs it.
fn resolve(
    user: Option<&str>,
    default_user: (u32, u32, Vec<u32>),
    read_passwd: impl FnOnce() -> Result<Vec<PasswdEntry>, RuntimeError>,
    read_group: impl FnOnce() -> Result<Vec<GroupEntry>, RuntimeError>,
) -> Result<ExecUser, RuntimeError> {
    let (default_uid, default_gid, default_additional) = default_user;
    let spec = user.unwrap_or("");
    let (user_part, group_part) = spec.split_once(':').unwrap_or((spec, ""));

    if user_part.is_empty() && group_part.is_empty() {
        let passwd = read_passwd()?;
        let home = passwd
            .iter()
            .find(|e| e.uid == default_uid)
            .map_or_else(|| DEFAULT_HOME.to_string(), |e| e.home.clone());
        return Ok(ExecUser {
            uid: default_uid,
            gid: default_gid,
            additional_gids: default_additional,
            home,
        });
    }

    let user_arg = parse_arg(user_part, "user")?;
    let group_arg = parse_arg(group_part, "group")?;

    let passwd = read_passwd()?;
    let found = passwd.iter().find(|e| match &user_arg {
        Some(Arg::Id(uid)) => e.uid == *uid,
        Some(Arg::Name(name)) => e.name == *name,
        None => e.uid == default_uid,
    });
    let (uid, mut gid, home, matched_name) = match (found, &user_arg) {
        (Some(e), _) => (e.uid, e.gid, e.home.clone(), Some(e.name.clone())),
        (None, Some(Arg::Id(uid))) => (*uid, 0, DEFAULT_HOME.to_string(), None),
        (None, None) => (default_uid, default_gid, DEFAULT_HOME.to_string(), None),
        (None, Some(Arg::Name(name))) => {
            return Err(RuntimeError::InvalidArgument(format!(
                "unable to find user {name}: no matching entries in passwd file"
            )))
        }
    };

    let mut additional_gids = Vec::new();
    match &group_arg {
        Some(arg) => {
            let groups = read_group()?;
            let found = groups.iter().find(|g| match arg {
                Arg::Id(id) => g.gid == *id,
                Arg::Name(name) => g.name == *name,
            });
            gid = match (found, arg) {
                (Some(g), _) => g.gid,
                (None, Arg::Id(id)) => *id,
                (None, Arg::Name(name)) => {
                    return Err(RuntimeError::InvalidArgument(format!(
                        "unable to find group {name}: no matching entries in group file"
                    )))
                }
            };
        }
        None => {
            if let Some(name) = &matched_name {
                for g in read_group()? {
                    if g.members.iter().any(|m| m == name) && !additional_gids.contains(&g.gid) {
                        additional_gids.push(g.gid);
                    }
                }
            }
        }
    }

    Ok(ExecUser {
        uid,
        gid,
        additional_gids,
        home,
    })
}

/// One part of a user spec.
#[derive(Debug, PartialEq, Eq)]
enum Arg {
    Id(u32),
    Name(String),
}

/// Parses one part of a user spec: empty -> `None`, an optionally signed run
/// of digits -> an id (error when out of range, as runc's `ErrRange`),
/// anything else -> a name.
fn parse_arg(part: &str, what: &str) -> Result<Option<Arg>, RuntimeError> {
    if part.is_empty() {
        return Ok(None);
    }
    match parse_id(part) {
        Some(Ok(id)) => Ok(Some(Arg::Id(id))),
        Some(Err(())) => Err(RuntimeError::InvalidArgument(format!(
            "{what} {part:?} is out of range: uids and gids must be in range 0-{MAX_ID}"
        ))),
        None => Ok(Some(Arg::Name(part.to_string()))),
    }
}

/// `None` when `s` is not a number at all, `Some(Err)` when it is one but
/// outside `0..=MAX_ID`.
fn parse_id(s: &str) -> Option<Result<u32, ()>> {
    let (negative, digits) = match s.as_bytes().first() {
        Some(b'+') => (false, &s[1..]),
        Some(b'-') => (true, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let value = digits.parse::<u64>().ok().filter(|v| *v <= MAX_ID);
    Some(match value {
        Some(0) => Ok(0),
        Some(v) if !negative => Ok(v as u32),
        _ => Err(()),
    })
}

/// An id field of a passwd or group line; `None` when malformed.
fn field_id(s: &str) -> Option<u32> {
    match parse_id(s.trim()) {
        Some(Ok(id)) => Some(id),
        _ => None,
    }
}

#[derive(Debug)]
struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
    home: String,
}

#[derive(Debug)]
struct GroupEntry {
    name: String,
    gid: u32,
    members: Vec<String>,
}

/// `name:password:uid:gid[:gecos:home:shell]`; lines with fewer than four
/// fields, an empty name or bad ids are skipped.
fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    data_lines(text)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            if fields.len() < 4 || fields[0].is_empty() {
                return None;
            }
            let home = fields.get(5).copied().unwrap_or("");
            Some(PasswdEntry {
                name: fields[0].to_string(),
                uid: field_id(fields[2])?,
                gid: field_id(fields[3])?,
                home: if home.is_empty() { DEFAULT_HOME } else { home }.to_string(),
            })
        })
        .collect()
}

/// `name:password:gid[:member,member...]`; lines with fewer than three
/// fields, an empty name or a bad gid are skipped.
fn parse_group(text: &str) -> Vec<GroupEntry> {
    data_lines(text)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            if fields.len() < 3 || fields[0].is_empty() {
                return None;
            }
            let members = fields
                .get(3)
                .map(|list| {
                    list.split(',')
                        .filter(|m| !m.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            Some(GroupEntry {
                name: fields[0].to_string(),
                gid: field_id(fields[2])?,
                members,
            })
        })
        .collect()
}

/// Non-empty, non-comment lines, trimmed (glibc allows leading blanks).
fn data_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
}

fn read_passwd(rootfs: &Path) -> Result<Vec<PasswdEntry>, RuntimeError> {
    Ok(read_in_root(rootfs, "etc/passwd")?
        .map(|t| parse_passwd(&t))
        .unwrap_or_default())
}

fn read_group(rootfs: &Path) -> Result<Vec<GroupEntry>, RuntimeError> {
    Ok(read_in_root(rootfs, "etc/group")?
        .map(|t| parse_group(&t))
        .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    const PASSWD: &str = "\
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
tester:x:1234:1234:Test User:/home/tester:/bin/sh
";
    const GROUP: &str = "\
root:x:0:
nobody:x:65534:
tester:x:1234:
extra:x:2000:tester
other:x:3000:root,tester
";

    fn rootfs(passwd: Option<&str>, group: Option<&str>) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("etc")).unwrap();
        if let Some(text) = passwd {
            fs::write(dir.path().join("etc/passwd"), text).unwrap();
        }
        if let Some(text) = group {
            fs::write(dir.path().join("etc/group"), text).unwrap();
        }
        dir
    }

    const CONTAINER_USER: (u32, u32, Vec<u32>) = (1234, 1234, Vec::new());

    fn user(uid: u32, gid: u32, additional: &[u32], home: &str) -> ExecUser {
        ExecUser {
            uid,
            gid,
            additional_gids: additional.to_vec(),
            home: home.to_string(),
        }
    }

    fn invalid(result: Result<ExecUser, RuntimeError>) -> String {
        match result {
            Err(RuntimeError::InvalidArgument(msg)) => msg,
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
    }

    #[test]
    fn exec_user_resolution_table() {
        let root = rootfs(Some(PASSWD), Some(GROUP));
        let cases: &[(&str, ExecUser)] = &[
            ("root", user(0, 0, &[3000], "/root")),
            ("0", user(0, 0, &[3000], "/root")),
            ("nobody", user(65534, 65534, &[], "/nonexistent")),
            ("tester", user(1234, 1234, &[2000, 3000], "/home/tester")),
            ("1234", user(1234, 1234, &[2000, 3000], "/home/tester")),
            ("tester:extra", user(1234, 2000, &[], "/home/tester")),
            ("tester:3000", user(1234, 3000, &[], "/home/tester")),
            ("tester:4242", user(1234, 4242, &[], "/home/tester")),
            ("1234:65534", user(1234, 65534, &[], "/home/tester")),
            ("0:other", user(0, 3000, &[], "/root")),
            ("4321", user(4321, 0, &[], "/")),
            ("4321:4321", user(4321, 4321, &[], "/")),
            ("4321:extra", user(4321, 2000, &[], "/")),
            ("+7", user(7, 0, &[], "/")),
            (":extra", user(1234, 2000, &[], "/home/tester")),
        ];
        for (spec, want) in cases {
            let got = resolve_exec_user(root.path(), Some(spec), CONTAINER_USER)
                .unwrap_or_else(|e| panic!("{spec}: {e}"));
            assert_eq!(&got, want, "{spec}");
        }
    }

    #[test]
    fn exec_user_unknown_names_are_errors_naming_them() {
        let root = rootfs(Some(PASSWD), Some(GROUP));
        let msg = invalid(resolve_exec_user(root.path(), Some("nope"), CONTAINER_USER));
        assert_eq!(
            msg,
            "unable to find user nope: no matching entries in passwd file"
        );
        let msg = invalid(resolve_exec_user(
            root.path(),
            Some("tester:nogroup"),
            CONTAINER_USER,
        ));
        assert_eq!(
            msg,
            "unable to find group nogroup: no matching entries in group file"
        );
        let msg = invalid(resolve_exec_user(
            root.path(),
            Some("1234:nogroup"),
            CONTAINER_USER,
        ));
        assert!(msg.contains("nogroup"), "{msg}");
    }

    #[test]
    fn exec_user_ids_out_of_range_are_errors() {
        let root = rootfs(Some(PASSWD), Some(GROUP));
        for spec in ["-1", "2147483648", "99999999999999999999999", "0:-5"] {
            let msg = invalid(resolve_exec_user(root.path(), Some(spec), CONTAINER_USER));
            assert!(msg.contains("out of range"), "{spec}: {msg}");
        }
        let max = resolve_exec_user(root.path(), Some("2147483647"), CONTAINER_USER).unwrap();
        assert_eq!(max.uid, 2147483647);
    }

    #[test]
    fn exec_user_missing_passwd() {
        let root = rootfs(None, Some(GROUP));
        assert_eq!(
            resolve_exec_user(root.path(), Some("1000"), CONTAINER_USER).unwrap(),
            user(1000, 0, &[], "/")
        );
        assert_eq!(
            resolve_exec_user(root.path(), Some("1000:extra"), CONTAINER_USER).unwrap(),
            user(1000, 2000, &[], "/")
        );
        let msg = invalid(resolve_exec_user(
            root.path(),
            Some("tester"),
            CONTAINER_USER,
        ));
        assert!(msg.contains("unable to find user tester"), "{msg}");
        // No /etc at all behaves the same.
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(
            resolve_exec_user(empty.path(), Some("5"), CONTAINER_USER).unwrap(),
            user(5, 0, &[], "/")
        );
    }

    #[test]
    fn exec_user_missing_group_file() {
        let root = rootfs(Some(PASSWD), None);
        assert_eq!(
            resolve_exec_user(root.path(), Some("tester"), CONTAINER_USER).unwrap(),
            user(1234, 1234, &[], "/home/tester")
        );
        assert_eq!(
            resolve_exec_user(root.path(), Some("tester:77"), CONTAINER_USER).unwrap(),
            user(1234, 77, &[], "/home/tester")
        );
        let msg = invalid(resolve_exec_user(
            root.path(),
            Some("tester:extra"),
            CONTAINER_USER,
        ));
        assert!(msg.contains("unable to find group extra"), "{msg}");
    }

    #[test]
    fn exec_user_skips_malformed_and_comment_lines() {
        let passwd = "\
# root:x:0:0:comment:/comment:/bin/sh
   # indented comment
garbage line without colons
short:x:5
:x:6:6::/empty-name:/bin/sh
badid:x:abc:0::/bad:/bin/sh
baduid:x::0::/bad:/bin/sh
biggid:x:7:99999999999::/bad:/bin/sh

  tester:x:1234:1234:Test User:/home/tester:/bin/sh  
noHome:x:42:42
root:x:0:0:root:/root:/bin/sh
";
        let group = "\
# extra:x:2000:tester
broken
bad:x:notanumber:tester
:x:2500:tester
extra:x:2000:tester
other:x:3000:,root,,tester
";
        let root = rootfs(Some(passwd), Some(group));
        assert_eq!(
            resolve_exec_user(root.path(), Some("tester"), CONTAINER_USER).unwrap(),
            user(1234, 1234, &[2000, 3000], "/home/tester")
        );
        // The commented and garbage lines did not shadow root.
        assert_eq!(
            resolve_exec_user(root.path(), Some("0"), CONTAINER_USER).unwrap(),
            user(0, 0, &[3000], "/root")
        );
        // Four fields are enough; a missing home is "/".
        assert_eq!(
            resolve_exec_user(root.path(), Some("noHome"), CONTAINER_USER).unwrap(),
            user(42, 42, &[], "/")
        );
        for skipped in [
            "short",
            "badid",
            "baduid",
            "biggid",
            "garbage line without colons",
        ] {
            let msg = invalid(resolve_exec_user(
                root.path(),
                Some(skipped),
                CONTAINER_USER,
            ));
            assert!(msg.contains(skipped), "{msg}");
        }
        let msg = invalid(resolve_exec_user(
            root.path(),
            Some("0:bad"),
            CONTAINER_USER,
        ));
        assert!(msg.contains("group bad"), "{msg}");
    }

    #[test]
    fn exec_user_none_keeps_the_container_user() {
        let root = rootfs(Some(PASSWD), Some(GROUP));
        // The container's own groups, not /etc/group's, and its home.
        assert_eq!(
            resolve_exec_user(root.path(), None, (1234, 1234, vec![10, 20])).unwrap(),
            user(1234, 1234, &[10, 20], "/home/tester")
        );
        assert_eq!(
            resolve_exec_user(root.path(), Some(""), (0, 5, vec![])).unwrap(),
            user(0, 5, &[], "/root")
        );
        // A uid without an entry gets "/" as home.
        assert_eq!(
            resolve_exec_user(root.path(), None, (999, 999, vec![1])).unwrap(),
            user(999, 999, &[1], "/")
        );
        let missing = rootfs(None, None);
        assert_eq!(
            resolve_exec_user(missing.path(), None, (0, 0, vec![])).unwrap(),
            user(0, 0, &[], "/")
        );
    }

    #[test]
    fn exec_user_symlinks_stay_inside_the_root() {
        use std::os::unix::fs::symlink;
        // An absolute link is resolved inside the root, never on the host.
        let root = rootfs(None, Some(GROUP));
        fs::create_dir_all(root.path().join("usr/lib")).unwrap();
        fs::write(
            root.path().join("usr/lib/passwd"),
            "inside:x:77:77::/home/inside:/bin/sh\n",
        )
        .unwrap();
        symlink("/usr/lib/passwd", root.path().join("etc/passwd")).unwrap();
        assert_eq!(
            resolve_exec_user(root.path(), Some("inside"), CONTAINER_USER).unwrap(),
            user(77, 77, &[], "/home/inside")
        );

        // ../../../ cannot climb out: it stops at the root.
        let host = tempfile::tempdir().unwrap();
        fs::write(host.path().join("passwd"), "escaped:x:1:1::/host:/bin/sh\n").unwrap();
        let root = rootfs(None, None);
        let climb = format!("../../../../../../..{}/passwd", host.path().display());
        symlink(&climb, root.path().join("etc/passwd")).unwrap();
        let msg = invalid(resolve_exec_user(
            root.path(),
            Some("escaped"),
            CONTAINER_USER,
        ));
        assert!(msg.contains("unable to find user escaped"), "{msg}");

        // An absolute link to a host path is read as that path in the root.
        let root = rootfs(None, None);
        symlink(host.path().join("passwd"), root.path().join("etc/passwd")).unwrap();
        let msg = invalid(resolve_exec_user(
            root.path(),
            Some("escaped"),
            CONTAINER_USER,
        ));
        assert!(msg.contains("unable to find user escaped"), "{msg}");

        // A directory symlink for /etc, and a link loop.
        let root = tempfile::tempdir().unwrap();
        fs::create_dir(root.path().join("real-etc")).unwrap();
        fs::write(root.path().join("real-etc/passwd"), PASSWD).unwrap();
        symlink("/real-etc", root.path().join("etc")).unwrap();
        assert_eq!(
            resolve_exec_user(root.path(), Some("nobody"), CONTAINER_USER)
                .unwrap()
                .uid,
            65534
        );
        let looping = rootfs(None, None);
        symlink("/etc/passwd", looping.path().join("etc/passwd")).unwrap();
        match resolve_exec_user(looping.path(), Some("x"), CONTAINER_USER) {
            Err(RuntimeError::Io { source, .. }) => {
                assert_eq!(source.raw_os_error(), Some(libc::ELOOP))
            }
            other => panic!("expected ELOOP, got {other:?}"),
        }
    }

    #[test]
    fn exec_user_non_regular_files_count_as_absent() {
        let root = rootfs(None, None);
        fs::create_dir(root.path().join("etc/passwd")).unwrap();
        assert_eq!(
            resolve_exec_user(root.path(), Some("12"), CONTAINER_USER).unwrap(),
            user(12, 0, &[], "/")
        );
        let fifo = root.path().join("etc/group");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        assert_eq!(
            resolve_exec_user(root.path(), Some("12:34"), CONTAINER_USER).unwrap(),
            user(12, 34, &[], "/")
        );
    }
}
