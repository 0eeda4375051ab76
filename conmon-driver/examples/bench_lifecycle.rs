//! Measures a whole container lifecycle through the driver against plain
//! `runc run` of the same bundle, in the same process, and prints the ratio.
//!
//! ```text
//! cargo run --release -p conmon-driver --example bench_lifecycle -- [ITERATIONS]
//! ```
//!
//! Each iteration of the baseline is `runc run --bundle B ID` of `true`
//! (create, start, wait and delete inside runc itself). Each iteration of
//! the driver is `create` (conmon launch and sync record), `start`, `wait`
//! (exit file, inotify) and `delete` (runtime delete, conmon's exit) of the
//! same bundle. The two alternate so that machine noise hits both alike;
//! medians are compared.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use conmon_driver::{ConmonConfig, ConmonRuntime, LogLevel};
use runtime_api::{ContainerDescription, ContainerId, CreateOptions, LogDriver, OciRuntime};
use testkit::BundleBuilder;

fn median(samples: &mut [Duration]) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let iterations: usize = std::env::args()
        .nth(1)
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(20);
    let work = tempfile::tempdir()?;
    let bundle = BundleBuilder::new().args(["true"]).build()?;
    let mut config = ConmonConfig::new("runc", work.path().join("tmp"));
    config.log_level = LogLevel::Warning;
    config.syslog = false;
    let runtime = ConmonRuntime::new(config)?;

    let mut baseline = Vec::with_capacity(iterations);
    let mut driver = Vec::with_capacity(iterations);
    let mut phases: [Vec<Duration>; 4] = Default::default();
    for i in 0..iterations {
        let id = format!("bench-runc-{}-{i}", std::process::id());
        let started = Instant::now();
        let status = Command::new("runc")
            .args(["run", "--bundle"])
            .arg(bundle.path())
            .arg(&id)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()?;
        baseline.push(started.elapsed());
        if !status.success() {
            return Err(format!("runc run failed: {status}").into());
        }

        let id = ContainerId::new(format!("bench-driver-{}-{i}", std::process::id()))?;
        let run_dir = work.path().join("run").join(id.as_str());
        let container = ContainerDescription::builder(id, bundle.path(), run_dir)
            .log(
                LogDriver::KubernetesFile,
                work.path().join(format!("{i}.log")),
            )
            .build()?;
        let started = Instant::now();
        runtime.create(&container, CreateOptions::default()).await?;
        let created = Instant::now();
        runtime.start(&container).await?;
        let running = Instant::now();
        let code = runtime.wait(&container, Duration::from_secs(60)).await?;
        let exited = Instant::now();
        runtime.delete(&container).await?;
        let deleted = Instant::now();
        driver.push(deleted - started);
        for (phase, took) in phases.iter_mut().zip([
            created - started,
            running - created,
            exited - running,
            deleted - exited,
        ]) {
            phase.push(took);
        }
        if code != 0 {
            return Err(format!("container exited with {code}").into());
        }
    }
    let base = median(&mut baseline);
    let ours = median(&mut driver);
    println!("iterations: {iterations}");
    println!("runc run (baseline) median: {base:?}");
    println!("driver create+start+wait+delete median: {ours:?}");
    for (name, samples) in ["create", "start", "wait", "delete"]
        .iter()
        .zip(phases.iter_mut())
    {
        println!("  {name:>6} median: {:?}", median(samples));
    }
    println!(
        "ratio driver/baseline: {:.2}",
        ours.as_secs_f64() / base.as_secs_f64()
    );
    Ok(())
}
