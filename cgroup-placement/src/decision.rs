//! The pure decision of where conmon goes, mirroring podman.
//!
//! [`decide`] turns plain data ([`PlacementInputs`]) into a [`Placement`]
//! without touching the host: it reads no environment variable, no file and
//! no bus. It encodes the rules of podman's `moveConmonToCgroupAndSignal`
//! (libpod `oci_conmon_common.go` / `oci_conmon_linux.go`) together with the
//! cgroup-parent defaults podman applies when a container is created
//! (libpod `runtime_ctr.go`).

/// podman's `CgroupfsDefaultCgroupParent`: the parent used with the cgroupfs
/// manager when the container names none.
pub const CGROUPFS_DEFAULT_PARENT: &str = "/libpod_parent";

/// podman's `SystemdDefaultCgroupParent`: the slice used with the systemd
/// manager for a root engine when the container names none.
pub const SYSTEMD_DEFAULT_PARENT: &str = "machine.slice";

/// podman's `SystemdDefaultRootlessCgroupParent`: the slice used with the
/// systemd manager for a rootless engine when the container names none.
pub const SYSTEMD_DEFAULT_ROOTLESS_PARENT: &str = "user.slice";

/// The last path element podman appends to the parent for the cgroupfs
/// manager: conmon lives in `<parent>/conmon`.
pub const CGROUPFS_CONMON_LEAF: &str = "conmon";

/// Which cgroup manager the engine is configured with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CgroupManager {
    /// Cgroups are created by writing to the cgroup filesystem directly.
    Cgroupfs,
    /// Cgroups are created by asking systemd for transient units.
    Systemd,
}

/// The container's cgroups mode (podman's `--cgroups` option).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CgroupsMode {
    /// `enabled`: the default; conmon and the container get cgroups.
    Enabled,
    /// `disabled`: no cgroup is created for the container nor for conmon.
    Disabled,
    /// `no-conmon`: the container gets a cgroup, conmon does not.
    NoConmon,
    /// `split`: conmon stays in the caller's cgroup and the container is
    /// created below it; handled by the runtime arguments, not here.
    Split,
}

/// Everything [`decide`] looks at. Plain data, filled by the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacementInputs {
    /// The configured cgroup manager.
    pub manager: CgroupManager,
    /// The container was created with cgroups disabled altogether
    /// (podman's `NoCgroups`).
    pub no_cgroups: bool,
    /// The container's cgroups mode.
    pub mode: CgroupsMode,
    /// The container's cgroup parent, `None` (or an empty string) for the
    /// manager's default.
    pub cgroup_parent: Option<String>,
    /// The full container id; it names the systemd scope.
    pub container_id: String,
    /// Whether the engine itself runs as a systemd service. The caller
    /// passes whether `INVOCATION_ID` is set in its environment; this crate
    /// never reads the environment.
    pub running_as_systemd_service: bool,
    /// Whether the engine runs rootless; selects the default systemd slice.
    pub rootless: bool,
    /// Whether the host has the unified cgroup v2 hierarchy only (see
    /// [`host_is_cgroup_v2`]). On cgroup v1 an
    /// unprivileged user has no delegated cgroups to create conmon's in.
    pub cgroup_v2: bool,
}

/// Whether the host mounts the unified cgroup v2 hierarchy at
/// `/sys/fs/cgroup` (and so no v1 controllers): its root then holds
/// `cgroup.controllers`.
pub fn host_is_cgroup_v2() -> bool {
    std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// Where conmon is to be placed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Placement {
    /// conmon stays in the cgroup it was started in.
    None,
    /// conmon goes to a cgroupfs cgroup at `path` (relative to every
    /// hierarchy's root), `"<parent>/conmon"`.
    Cgroupfs {
        /// The cgroup path, e.g. `"/libpod_parent/conmon"`.
        path: String,
    },
    /// conmon goes to a transient systemd scope.
    SystemdScope {
        /// The unit name, `"libpod-conmon-<id>.scope"`.
        unit: String,
        /// The slice the scope is created in, e.g. `"machine.slice"`.
        slice: String,
    },
}

/// Decides where conmon goes, following podman's rules in order.
///
/// ```
/// use cgroup_placement::{decide, CgroupManager, CgroupsMode, Placement, PlacementInputs};
///
/// let inputs = PlacementInputs {
///     manager: CgroupManager::Systemd,
///     no_cgroups: false,
///     mode: CgroupsMode::Enabled,
///     cgroup_parent: Some("machine.slice/machine-libpod_pod_x.slice".into()),
///     container_id: "abc".into(),
///     running_as_systemd_service: false,
///     rootless: false,
///     cgroup_v2: false,
/// };
/// assert_eq!(
///     decide(&inputs),
///     Placement::SystemdScope {
///         unit: "libpod-conmon-abc.scope".into(),
///         slice: "machine-libpod_pod_x.slice".into(),
///     }
/// );
/// ```
pub fn decide(inputs: &PlacementInputs) -> Placement {
    // Rule 1 — podman starts from "must create a cgroup" = !NoCgroups: a
    // container created without cgroups gets none for conmon either.
    if inputs.no_cgroups {
        return Placement::None;
    }

    // Rule 2 — podman's `switch CgroupsMode { case "disabled", "no-conmon",
    // "split" }` turns the move off: `disabled` wants no cgroups at all,
    // `no-conmon` explicitly leaves conmon where it is, and `split` keeps
    // conmon in the caller's cgroup because the container's cgroup is
    // derived from it by the runtime arguments.
    match inputs.mode {
        CgroupsMode::Disabled | CgroupsMode::NoConmon | CgroupsMode::Split => {
            return Placement::None
        }
        CgroupsMode::Enabled => {}
    }

    // Rule 3 — "$INVOCATION_ID is set by systemd when running as a
    // service": podman then leaves conmon in the service's own cgroup so
    // that systemd keeps tracking (and stopping) it as part of the unit.
    // podman guards this with `RemoteURI() == ""`; a library driving conmon
    // is always the local engine, so only the service flag remains.
    if inputs.running_as_systemd_service {
        return Placement::None;
    }

    // Rule 5 — podman's "cannot create cgroups rootless on cgroup v1":
    // without delegation there is no cgroupfs directory an unprivileged
    // user may create, so conmon stays where it was started.
    if inputs.rootless && !inputs.cgroup_v2 && inputs.manager == CgroupManager::Cgroupfs {
        return Placement::None;
    }

    let parent = inputs.cgroup_parent.as_deref().filter(|p| !p.is_empty());
    match inputs.manager {
        CgroupManager::Systemd => {
            // Rule 4 — the default parent podman assigns at container
            // creation: `user.slice` rootless, `machine.slice` otherwise.
            let parent = parent.unwrap_or(if inputs.rootless {
                SYSTEMD_DEFAULT_ROOTLESS_PARENT
            } else {
                SYSTEMD_DEFAULT_PARENT
            });
            Placement::SystemdScope {
                unit: conmon_unit_name(&inputs.container_id),
                slice: scope_slice(parent),
            }
        }
        CgroupManager::Cgroupfs => {
            // Rule 6 — cgroupfs: `filepath.Join(CgroupParent, "conmon")`,
            // with `/libpod_parent` as the creation-time default.
            let parent = parent.unwrap_or(CGROUPFS_DEFAULT_PARENT);
            Placement::Cgroupfs {
                path: join_clean(parent, CGROUPFS_CONMON_LEAF),
            }
        }
    }
}

/// The systemd unit podman creates for conmon:
/// `createUnitName("libpod-conmon", id)` = `"libpod-conmon-<id>.scope"`.
pub fn conmon_unit_name(container_id: &str) -> String {
    format!("libpod-conmon-{container_id}.scope")
}

/// The slice a conmon scope goes into for a given systemd cgroup parent.
///
/// Rule 5 — a systemd slice name cannot contain `/`, but a cgroup parent may
/// be written as a path of slices (`machine.slice/machine-libpod_pod_x.slice`,
/// as pods do). When the parent ends in `.slice` and has more than one `/`
/// separated part, podman passes only the last part, which is the slice's
/// unit name (systemd derives the ancestry from the dashes in the name).
/// Anything else is passed through unchanged.
pub fn scope_slice(cgroup_parent: &str) -> String {
    let parts: Vec<&str> = cgroup_parent.split('/').collect();
    match parts.last() {
        Some(last) if cgroup_parent.ends_with(".slice") && parts.len() > 1 => (*last).to_string(),
        _ => cgroup_parent.to_string(),
    }
}

/// Joins two path elements and cleans the result lexically, like Go's
/// `filepath.Join` (which podman uses): duplicate slashes, `.` and `..`
/// elements are resolved without touching the filesystem.
fn join_clean(parent: &str, leaf: &str) -> String {
    let joined = if parent.is_empty() {
        leaf.to_string()
    } else {
        format!("{parent}/{leaf}")
    };
    clean(&joined)
}

/// Lexical path cleaning with Go's `path.Clean` semantics.
fn clean(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for element in path.split('/') {
        match element {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|last| *last != "..") {
                    out.pop();
                } else if !rooted {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    let body = out.join("/");
    match (rooted, body.is_empty()) {
        (true, _) => format!("/{body}"),
        (false, true) => ".".to_string(),
        (false, false) => body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use CgroupManager::{Cgroupfs, Systemd};
    use CgroupsMode::{Disabled, Enabled, NoConmon, Split};

    fn inputs(
        manager: CgroupManager,
        mode: CgroupsMode,
        no_cgroups: bool,
        service: bool,
    ) -> PlacementInputs {
        PlacementInputs {
            manager,
            no_cgroups,
            mode,
            cgroup_parent: None,
            container_id: "abc".to_string(),
            running_as_systemd_service: service,
            rootless: false,
            cgroup_v2: false,
        }
    }

    fn scope() -> Placement {
        Placement::SystemdScope {
            unit: "libpod-conmon-abc.scope".to_string(),
            slice: "machine.slice".to_string(),
        }
    }

    fn fs() -> Placement {
        Placement::Cgroupfs {
            path: "/libpod_parent/conmon".to_string(),
        }
    }

    #[test]
    fn every_manager_mode_no_cgroups_service_combination() {
        let none = Placement::None;
        // (manager, mode, no_cgroups, running_as_systemd_service, expected)
        let table: [(CgroupManager, CgroupsMode, bool, bool, Placement); 32] = [
            (Cgroupfs, Enabled, false, false, fs()),
            (Cgroupfs, Enabled, false, true, none.clone()),
            (Cgroupfs, Enabled, true, false, none.clone()),
            (Cgroupfs, Enabled, true, true, none.clone()),
            (Cgroupfs, Disabled, false, false, none.clone()),
            (Cgroupfs, Disabled, false, true, none.clone()),
            (Cgroupfs, Disabled, true, false, none.clone()),
            (Cgroupfs, Disabled, true, true, none.clone()),
            (Cgroupfs, NoConmon, false, false, none.clone()),
            (Cgroupfs, NoConmon, false, true, none.clone()),
            (Cgroupfs, NoConmon, true, false, none.clone()),
            (Cgroupfs, NoConmon, true, true, none.clone()),
            (Cgroupfs, Split, false, false, none.clone()),
            (Cgroupfs, Split, false, true, none.clone()),
            (Cgroupfs, Split, true, false, none.clone()),
            (Cgroupfs, Split, true, true, none.clone()),
            (Systemd, Enabled, false, false, scope()),
            (Systemd, Enabled, false, true, none.clone()),
            (Systemd, Enabled, true, false, none.clone()),
            (Systemd, Enabled, true, true, none.clone()),
            (Systemd, Disabled, false, false, none.clone()),
            (Systemd, Disabled, false, true, none.clone()),
            (Systemd, Disabled, true, false, none.clone()),
            (Systemd, Disabled, true, true, none.clone()),
            (Systemd, NoConmon, false, false, none.clone()),
            (Systemd, NoConmon, false, true, none.clone()),
            (Systemd, NoConmon, true, false, none.clone()),
            (Systemd, NoConmon, true, true, none.clone()),
            (Systemd, Split, false, false, none.clone()),
            (Systemd, Split, false, true, none.clone()),
            (Systemd, Split, true, false, none.clone()),
            (Systemd, Split, true, true, none.clone()),
        ];
        for (manager, mode, no_cgroups, service, expected) in table {
            let got = decide(&inputs(manager, mode, no_cgroups, service));
            assert_eq!(
                got, expected,
                "manager={manager:?} mode={mode:?} no_cgroups={no_cgroups} service={service}"
            );
        }
    }

    #[test]
    fn rootless_cgroupfs_places_conmon_only_with_cgroup_v2() {
        let rootless = |manager, cgroup_v2| {
            decide(&PlacementInputs {
                manager,
                no_cgroups: false,
                mode: CgroupsMode::Enabled,
                cgroup_parent: None,
                container_id: "abc".into(),
                running_as_systemd_service: false,
                rootless: true,
                cgroup_v2,
            })
        };
        // cgroup v1: nothing an unprivileged user may create.
        assert_eq!(rootless(CgroupManager::Cgroupfs, false), Placement::None);
        // cgroup v2 with delegation: podman's rules as for root.
        assert_eq!(
            rootless(CgroupManager::Cgroupfs, true),
            Placement::Cgroupfs {
                path: "/libpod_parent/conmon".into()
            }
        );
        // systemd: the user's scope in user.slice, over the session bus.
        for cgroup_v2 in [false, true] {
            assert_eq!(
                rootless(CgroupManager::Systemd, cgroup_v2),
                Placement::SystemdScope {
                    unit: "libpod-conmon-abc.scope".into(),
                    slice: "user.slice".into(),
                }
            );
        }
    }

    fn systemd_with_parent(parent: Option<&str>, rootless: bool) -> Placement {
        decide(&PlacementInputs {
            cgroup_parent: parent.map(str::to_string),
            rootless,
            ..inputs(Systemd, Enabled, false, false)
        })
    }

    fn slice_of(placement: Placement) -> String {
        match placement {
            Placement::SystemdScope { slice, .. } => slice,
            other => panic!("expected a systemd scope, got {other:?}"),
        }
    }

    #[test]
    fn systemd_slice_parent_rules() {
        let cases: [(Option<&str>, bool, &str); 12] = [
            (None, false, "machine.slice"),
            (None, true, "user.slice"),
            (Some(""), false, "machine.slice"),
            (Some(""), true, "user.slice"),
            (Some("machine.slice"), true, "machine.slice"),
            (Some("a/b/c.slice"), false, "c.slice"),
            (
                Some("machine.slice/machine-libpod_pod_1234.slice"),
                false,
                "machine-libpod_pod_1234.slice",
            ),
            (Some("/system.slice"), false, "system.slice"),
            (Some("my.slice"), false, "my.slice"),
            // Not ending in ".slice": passed through untouched.
            (Some("a/b/c"), false, "a/b/c"),
            (Some("a.slice/b"), false, "a.slice/b"),
            (Some("a/b.slicex"), false, "a/b.slicex"),
        ];
        for (parent, rootless, expected) in cases {
            assert_eq!(
                slice_of(systemd_with_parent(parent, rootless)),
                expected,
                "parent={parent:?} rootless={rootless}"
            );
        }
    }

    #[test]
    fn systemd_unit_name_uses_full_container_id() {
        let id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let placement = decide(&PlacementInputs {
            container_id: id.to_string(),
            ..inputs(Systemd, Enabled, false, false)
        });
        assert_eq!(
            placement,
            Placement::SystemdScope {
                unit: format!("libpod-conmon-{id}.scope"),
                slice: "machine.slice".to_string(),
            }
        );
    }

    #[test]
    fn cgroupfs_parent_rules() {
        let cases: [(Option<&str>, bool, &str); 7] = [
            (None, false, "/libpod_parent/conmon"),
            // The cgroupfs default does not depend on rootless (where a
            // rootless engine may create cgroups at all: cgroup v2).
            (None, true, "/libpod_parent/conmon"),
            (Some(""), false, "/libpod_parent/conmon"),
            (Some("/my/parent"), false, "/my/parent/conmon"),
            (Some("/my/parent/"), false, "/my/parent/conmon"),
            (Some("//a/./b/../c"), false, "/a/c/conmon"),
            (Some("relative"), false, "relative/conmon"),
        ];
        for (parent, rootless, expected) in cases {
            let placement = decide(&PlacementInputs {
                cgroup_parent: parent.map(str::to_string),
                rootless,
                cgroup_v2: true,
                ..inputs(Cgroupfs, Enabled, false, false)
            });
            assert_eq!(
                placement,
                Placement::Cgroupfs {
                    path: expected.to_string()
                },
                "parent={parent:?}"
            );
        }
    }

    #[test]
    fn clean_matches_go_semantics() {
        for (input, expected) in [
            ("", "."),
            ("/", "/"),
            ("a//b", "a/b"),
            ("/../a", "/a"),
            ("../a", "../a"),
            ("a/../..", ".."),
            ("/a/b/", "/a/b"),
        ] {
            assert_eq!(clean(input), expected, "input={input:?}");
        }
    }
}
