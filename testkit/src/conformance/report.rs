//! Running the cases against a target and reporting each one.

use std::fmt;
use std::time::Duration;

use super::cases::{cases, probe_unsupported, Context};
use super::target::Target;

/// Which cases to run.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Only cases whose name contains this text.
    pub filter: Option<String>,
    /// Only the core cases (no optional feature).
    pub core_only: bool,
}

/// How one case ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The runtime did what the contract says.
    Passed,
    /// Not run, with the reason (an optional feature the runtime lacks).
    Skipped(String),
    /// The runtime broke the contract; the message says how.
    Failed(String),
}

/// One case's result.
#[derive(Debug, Clone)]
pub struct Row {
    /// The case's name, a sentence.
    pub name: &'static str,
    /// Its area (lifecycle, errors, attach...).
    pub area: &'static str,
    /// How it ended.
    pub outcome: Outcome,
}

/// The results of one run.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// One row per case, in order.
    pub rows: Vec<Row>,
}

/// How long one case may take before it counts as hung.
const CASE_LIMIT: Duration = Duration::from_secs(90);

/// Runs the selected cases one after another against `target`.
pub async fn run(target: &dyn Target, options: &Options) -> Report {
    let runtime = target.runtime();
    let features = match runtime.features().await {
        Ok(features) => Some(features),
        Err(e) => {
            return Report {
                rows: vec![Row {
                    name: "the runtime answers features()",
                    area: "features",
                    outcome: Outcome::Failed(e.to_string()),
                }],
            }
        }
    };
    let features = features.unwrap_or_default();
    let mut report = Report::default();
    for case in cases() {
        if let Some(filter) = &options.filter {
            if !case.name.contains(filter.as_str()) {
                continue;
            }
        }
        if options.core_only && case.feature.is_some() {
            continue;
        }
        let outcome = match case.feature {
            Some(feature) if !features.contains(feature) => {
                match probe_unsupported(runtime.as_ref(), feature).await {
                    Ok(()) => Outcome::Skipped(format!(
                        "runtime does not offer {feature}; it answers Unsupported"
                    )),
                    Err(message) => Outcome::Failed(message),
                }
            }
            _ => {
                let ctx = Context::new(target);
                let result = tokio::time::timeout(CASE_LIMIT, (case.run)(&ctx)).await;
                ctx.cleanup().await;
                match result {
                    Ok(Ok(())) => Outcome::Passed,
                    Ok(Err(message)) => Outcome::Failed(message),
                    Err(_) => Outcome::Failed(format!("did not finish within {CASE_LIMIT:?}")),
                }
            }
        };
        let outcome = match (case.feature, outcome) {
            (Some(feature), Outcome::Failed(message)) if message.contains("Unsupported {") => {
                Outcome::Failed(format!(
                    "{feature} is advertised but answered Unsupported: {message}"
                ))
            }
            (_, outcome) => outcome,
        };
        report.rows.push(Row {
            name: case.name,
            area: case.area,
            outcome,
        });
    }
    report
}

impl Report {
    /// The rows that failed.
    pub fn failures(&self) -> Vec<&Row> {
        self.rows
            .iter()
            .filter(|r| matches!(r.outcome, Outcome::Failed(_)))
            .collect()
    }

    /// How many rows passed, were skipped and failed.
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

    /// Panics naming every failed case.
    pub fn assert_all_passed(&self) {
        let failures = self.failures();
        if !failures.is_empty() {
            let list: Vec<String> = failures
                .iter()
                .map(|r| format!("{}: {:?}", r.name, r.outcome))
                .collect();
            panic!(
                "{} conformance case(s) failed:\n{}",
                list.len(),
                list.join("\n")
            );
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total = self.rows.len();
        for (i, row) in self.rows.iter().enumerate() {
            let outcome = match &row.outcome {
                Outcome::Passed => "ok".to_string(),
                Outcome::Skipped(reason) => format!("skipped ({reason})"),
                Outcome::Failed(message) => format!("FAILED ({message})"),
            };
            writeln!(
                f,
                "{:>2}/{total}  {:<10} {} : {outcome}",
                i + 1,
                row.area,
                row.name
            )?;
        }
        let (passed, skipped, failed) = self.counts();
        write!(
            f,
            "conformance: {passed} passed, {failed} failed, {skipped} skipped"
        )
    }
}
