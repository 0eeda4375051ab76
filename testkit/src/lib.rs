//! Test support for the conmon driver workspace.
//!
//! This crate is only ever used as a dev-dependency. It provides:
//!
//! - [`guard`]: environment checks ([`require`], [`find_binary`]) so that a
//!   test needing root or an external binary is skipped loudly on a developer
//!   machine and fails under CI, never passing silently;
//! - [`bundle`]: OCI bundles whose root filesystem is the system's static
//!   busybox ([`BundleBuilder`], [`Bundle`]);
//! - [`image`]: a busybox root filesystem prepared once in a cache directory
//!   and shared by bundles as the lower layer of an overlay
//!   ([`BusyboxImage`]);
//! - [`fakes`]: small shell scripts that imitate an OCI runtime or conmon and
//!   misbehave on purpose, for fault-injection tests ([`fake_runtime`],
//!   [`fake_conmon`], [`recorded_calls`]), and a recording wrapper around a
//!   real runtime ([`recording_runtime`]);
//! - [`fake_systemd`]: a fake systemd manager on a private D-Bus bus
//!   ([`FakeSystemd`]) recording `StartTransientUnit` calls;
//! - [`error`]: the crate's error type, [`TestkitError`];
//! - [`conformance`]: the suite any `OciRuntime` runs to prove it keeps
//!   the trait's contract;
//! - [`mock`]: [`MockRuntime`](mock::MockRuntime), an in-memory runtime
//!   with scripted processes that passes that suite.

pub mod audit;
pub mod bundle;
pub mod collector;
pub mod conformance;
pub mod error;
mod executable;
pub mod fake_systemd;
pub mod fakes;
pub mod guard;
pub mod image;
pub mod mock;
mod rootfs;

pub use bundle::{make_rootless, Bundle, BundleBuilder, RootlessMapping};
pub use collector::Collector;
pub use error::TestkitError;
pub use fake_systemd::{FakeSystemd, RecordedCall, RecordedProperty};
pub use fakes::{
    fake_conmon, fake_runtime, fake_runtime_without_containers, fake_script, recorded_calls,
    recording_runtime, shell_quote, FakeConmonBehaviour, FakeRuntimeBehaviour,
};
pub use guard::{find_binary, is_root, require, Need};
pub use image::BusyboxImage;
