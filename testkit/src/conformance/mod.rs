//! The conformance suite: cases any [`OciRuntime`](runtime_api::OciRuntime)
//! runs from its own `cargo test` to prove it keeps the trait's contract.
//!
//! An implementation provides a [`Target`] (its runtime, and how to run
//! the suite's [`Workload`]s on it) and calls [`run`]; the [`Report`]
//! prints one row per case (passed, skipped with its reason, or failed
//! with its message). Core cases never skip. A case of an optional
//! [`Feature`](runtime_api::Feature) the runtime does not advertise checks
//! that the feature's calls answer `Unsupported` and is reported as
//! skipped, naming the feature; an advertised feature answering
//! `Unsupported` fails.
//!
//! ```
//! use std::sync::Arc;
//! use testkit::conformance::{run, MockTarget, Options};
//! use testkit::mock::MockRuntime;
//!
//! # #[tokio::main]
//! # async fn main() {
//! let target = MockTarget::new(Arc::new(MockRuntime::new()));
//! let report = run(&target, &Options::default()).await;
//! println!("{report}");
//! report.assert_all_passed();
//! # }
//! ```

mod busybox;
mod cases;
mod context;
mod feature_cases;
mod mock_target;
mod report;
mod target;

pub use busybox::{shell_script, BusyboxTarget};
pub use cases::{cases, Case, CaseFn};
pub use context::Context;
pub use mock_target::MockTarget;
pub use report::{run, Options, Outcome, Report, Row, CASE_LIMIT};
pub use target::{ContainerSpec, Prepared, Target, Workload};
