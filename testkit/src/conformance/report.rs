//! Running the cases against a target, one after another, and the
//! [`Report`] of how each ended.
//!
//! Cases run sequentially: the outcome of one never depends on another's
//! timing, and a runtime's failure is reproducible with a filter. Each case
//! has an overall time bound, so that a hang becomes a failed row instead
//! of a hung test, and its containers are cleaned up (bounded too) whatever
//! its outcome.

use std::fmt;
use std::time::Duration;

use runtime_api::Feature;

use super::cases::{cases, Case};
use super::context::{Context, CLEANUP_LIMIT};
use super::feature_cases::probe_unsupported;
use super::target::Target;

/// Which cases to run, and whether to run them.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Options {
    /// Only cases whose name contains this text.
    pub filter: Option<String>,
    /// Only the core cases (no optional feature).
    pub core_only: bool,
    /// List the selected cases without running them: each row is skipped
    /// with the reason "listed, not run".
    pub list: bool,
}

impl Options {
    /// Only cases whose name contains `text`.
    #[must_use]
    pub fn with_filter(mut self, text: impl Into<String>) -> Self {
        self.filter = Some(text.into());
        self
    }

    /// Only the core cases.
    #[must_use]
    pub fn core_only(mut self) -> Self {
        self.core_only = true;
        self
    }

    /// List instead of running.
    #[must_use]
    pub fn list_only(mut self) -> Self {
        self.list = true;
        self
    }

    fn selects(&self, case: &Case) -> bool {
        let named = match self.filter.as_deref() {
            Some(text) => case.name.contains(text),
            None => true,
        };
        named && !(self.core_only && case.feature.is_some())
    }
}

/// How one case ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The runtime did what the contract says.
    Passed,
    /// Not run, with the reason (an optional feature the runtime does not
    /// offer, or a listing).
    Skipped(String),
    /// The runtime broke the contract; the message says how.
    Failed(String),
}

/// One case's result.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Row {
    /// The case's name, a sentence.
    pub name: &'static str,
    /// Its area (lifecycle, errors, attach...).
    pub area: &'static str,
    /// The optional feature it needs; `None` for the core.
    pub feature: Option<Feature>,
    /// How it ended.
    pub outcome: Outcome,
}

/// The results of one run, printed as a table with a summary line.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// One row per selected case, in order.
    pub rows: Vec<Row>,
}

/// How long one case may take before it counts as hung.
pub const CASE_LIMIT: Duration = Duration::from_secs(90);

/// Runs the selected cases one after another against `target`.
pub async fn run(target: &dyn Target, options: &Options) -> Report {
    let selected: Vec<Case> = cases().into_iter().filter(|c| options.selects(c)).collect();
    let row = |case: &Case, outcome| Row {
        name: case.name,
        area: case.area,
        feature: case.feature,
        outcome,
    };
    if options.list {
        let listed = || Outcome::Skipped("listed, not run".into());
        return Report {
            rows: selected.iter().map(|case| row(case, listed())).collect(),
        };
    }
    let runtime = target.runtime();
    let features = match tokio::time::timeout(CASE_LIMIT, runtime.features()).await {
        Ok(Ok(features)) => features,
        failed => {
            let message = match failed {
                Ok(Err(e)) => format!("features() failed: {e}"),
                _ => format!("features() did not answer within {CASE_LIMIT:?}"),
            };
            return Report {
                rows: vec![Row {
                    name: "the runtime says which features it offers",
                    area: "features",
                    feature: None,
                    outcome: Outcome::Failed(message),
                }],
            };
        }
    };
    let mut report = Report::default();
    for case in &selected {
        let outcome = match case.feature {
            _ if case.reopens && target.reopened().is_none() => Outcome::Skipped(
                "the target cannot reopen its runtime (Target::reopened answers None)".into(),
            ),
            Some(feature) if !features.contains(feature) => {
                match probe_unsupported(runtime.as_ref(), feature).await {
                    Ok(()) => Outcome::Skipped(format!(
                        "runtime does not offer {feature}; it answers Unsupported"
                    )),
                    Err(message) => Outcome::Failed(message),
                }
            }
            _ => run_case(target, case).await,
        };
        report.rows.push(row(case, outcome));
    }
    report
}

async fn run_case(target: &dyn Target, case: &Case) -> Outcome {
    let ctx = Context::new(target);
    let result = tokio::time::timeout(CASE_LIMIT, (case.run)(&ctx)).await;
    let cleaned = tokio::time::timeout(CLEANUP_LIMIT, ctx.cleanup()).await;
    match (result, cleaned) {
        (Err(_), _) => Outcome::Failed(format!("did not finish within {CASE_LIMIT:?}")),
        (Ok(Err(message)), _) => Outcome::Failed(message),
        (Ok(Ok(())), Err(_)) => Outcome::Failed(format!(
            "stopping and deleting its containers took over {CLEANUP_LIMIT:?}"
        )),
        (Ok(Ok(())), Ok(Err(leak))) => Outcome::Failed(leak),
        (Ok(Ok(())), Ok(Ok(()))) => Outcome::Passed,
    }
}

impl Report {
    /// The rows that failed.
    pub fn failures(&self) -> Vec<&Row> {
        self.rows
            .iter()
            .filter(|r| matches!(r.outcome, Outcome::Failed(_)))
            .collect()
    }

    /// How many rows passed, were skipped and failed, in that order.
    pub fn counts(&self) -> (usize, usize, usize) {
        let mut counts = (0, 0, 0);
        for row in &self.rows {
            match row.outcome {
                Outcome::Passed => counts.0 += 1,
                Outcome::Skipped(_) => counts.1 += 1,
                Outcome::Failed(_) => counts.2 += 1,
            }
        }
        counts
    }

    /// Panics naming every failed case and its message.
    #[track_caller]
    pub fn assert_all_passed(&self) {
        let failures = self.failures();
        if !failures.is_empty() {
            let list: Vec<String> = failures
                .iter()
                .map(|r| match &r.outcome {
                    Outcome::Failed(message) => format!("- {}: {message}", r.name),
                    other => format!("- {}: {other:?}", r.name),
                })
                .collect();
            panic!(
                "{} conformance case(s) failed:\n{}\n\n{self}",
                list.len(),
                list.join("\n")
            );
        }
    }
}

impl fmt::Display for Report {
    /// One line per case, `n/total  area  name  ok|skipped (reason)|FAILED
    /// (message)`, then a summary line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total = self.rows.len();
        let number = total.to_string().len();
        let area = self.rows.iter().map(|r| r.area.len()).max().unwrap_or(0);
        let name = self.rows.iter().map(|r| r.name.len()).max().unwrap_or(0);
        for (i, row) in self.rows.iter().enumerate() {
            let outcome = match &row.outcome {
                Outcome::Passed => "ok".to_string(),
                Outcome::Skipped(reason) => format!("skipped ({reason})"),
                Outcome::Failed(message) => format!("FAILED ({message})"),
            };
            writeln!(
                f,
                "{:>number$}/{total}  {:<area$}  {:<name$}  {outcome}",
                i + 1,
                row.area,
                row.name,
            )?;
        }
        let (passed, skipped, failed) = self.counts();
        write!(
            f,
            "conformance: {total} cases, {passed} passed, {skipped} skipped, {failed} failed"
        )
    }
}
