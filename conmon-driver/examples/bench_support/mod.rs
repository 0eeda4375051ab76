//! What the benchmark examples share: option parsing, sample collection,
//! medians and the ratio table, the driver's configuration, finding the
//! other example binaries, and an optional podman.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use conmon_driver::{CgroupsMode, ConmonConfig, ConmonDescriptionExt, ConmonRuntime, LogLevel};
use runtime_api::{ContainerDescription, ContainerId, LogDriver};

/// The benchmarks' error type.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Command-line options common to the benchmarks: `--rounds N`, `--quick`
/// and `--KEY VALUE` pairs the benchmark reads itself.
pub struct Options {
    pub rounds: usize,
    pub quick: bool,
    pairs: Vec<(String, String)>,
}

impl Options {
    /// Parses `std::env::args()`; `default_rounds` when `--rounds` is absent
    /// (1 with `--quick`).
    pub fn parse(default_rounds: usize) -> Result<Options, String> {
        let mut args = std::env::args().skip(1);
        let mut options = Options {
            rounds: 0,
            quick: false,
            pairs: Vec::new(),
        };
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--quick" => options.quick = true,
                "-h" | "--help" => {
                    return Err("see the documentation at the top of the file".into())
                }
                flag if flag.starts_with("--") => {
                    let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
                    options.pairs.push((flag[2..].to_string(), value));
                }
                other => return Err(format!("unexpected argument {other:?}")),
            }
        }
        options.rounds = match options.value("rounds") {
            Some(n) => n.parse().map_err(|e| format!("--rounds {n}: {e}"))?,
            None if options.quick => 1,
            None => default_rounds,
        };
        if options.rounds == 0 {
            return Err("--rounds must be at least 1".into());
        }
        Ok(options)
    }

    /// The value of `--key`, the last one when repeated.
    pub fn value(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// `--key` parsed, or `default`.
    pub fn number<T: std::str::FromStr>(&self, key: &str, default: T) -> Result<T, String>
    where
        T::Err: std::fmt::Display,
    {
        match self.value(key) {
            Some(v) => v.parse().map_err(|e| format!("--{key} {v}: {e}")),
            None => Ok(default),
        }
    }
}

/// Samples of one contender, in seconds.
#[derive(Debug, Default)]
pub struct Samples {
    pub name: String,
    values: Vec<f64>,
}

impl Samples {
    pub fn new(name: impl Into<String>) -> Samples {
        Samples {
            name: name.into(),
            values: Vec::new(),
        }
    }

    pub fn push(&mut self, took: Duration) {
        self.values.push(took.as_secs_f64());
    }

    pub fn push_secs(&mut self, secs: f64) {
        self.values.push(secs);
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The median (the upper one of an even count); 0 without samples.
    pub fn median(&self) -> f64 {
        let mut sorted = self.values.clone();
        sorted.sort_by(f64::total_cmp);
        sorted.get(sorted.len() / 2).copied().unwrap_or(0.0)
    }

    pub fn min(&self) -> f64 {
        self.values.iter().copied().fold(f64::INFINITY, f64::min)
    }

    pub fn max(&self) -> f64 {
        self.values.iter().copied().fold(0.0, f64::max)
    }
}

/// Prints durations: median, min, max, and the median's ratio to the
/// baseline's (the first entry).
pub fn print_durations(title: &str, rows: &[&Samples]) {
    println!("{title}");
    let Some(base) = rows.first().map(|s| s.median()) else {
        return;
    };
    println!(
        "  {:<60} {:>10} {:>10} {:>10} {:>8}",
        "contender", "median ms", "min ms", "max ms", "ratio"
    );
    for row in rows {
        if row.is_empty() {
            continue;
        }
        println!(
            "  {:<60} {:>10.2} {:>10.2} {:>10.2} {:>8.2}",
            row.name,
            row.median() * 1e3,
            row.min() * 1e3,
            row.max() * 1e3,
            ratio(row.median(), base)
        );
    }
}

/// Prints throughputs of `bytes` moved in each sample: MB/s of the median
/// time, and the ratio to the baseline's (the first entry) throughput.
pub fn print_throughputs(title: &str, bytes: u64, rows: &[&Samples]) {
    println!("{title}");
    let Some(base) = rows.first().map(|s| s.median()) else {
        return;
    };
    println!(
        "  {:<60} {:>10} {:>10} {:>8}",
        "contender", "median s", "MB/s", "ratio"
    );
    for row in rows {
        if row.is_empty() {
            continue;
        }
        let median = row.median();
        if median <= 0.0 {
            // A net time that the subtracted fixed cost swallowed (tiny
            // sizes): no meaningful throughput.
            println!(
                "  {:<60} {:>10.3} {:>10} {:>8}",
                row.name, median, "n/a", "n/a"
            );
            continue;
        }
        println!(
            "  {:<60} {:>10.3} {:>10.1} {:>8.2}",
            row.name,
            median,
            bytes as f64 / median / 1e6,
            ratio(base, median)
        );
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        0.0
    }
}

/// The driver as the benchmarks use it: tmp dir under `work`, conmon's
/// log at warning level, no syslog.
pub fn runtime(work: &Path) -> Result<ConmonRuntime, BoxError> {
    let mut config = ConmonConfig::new("runc", work.join("tmp"));
    config.log_level = LogLevel::Warning;
    config.syslog = false;
    Ok(ConmonRuntime::new(config)?)
}

/// A container of `bundle` with a k8s-file log under `work`, conmon left in
/// the driver's own cgroup (as the demo does not place it either).
pub fn describe(work: &Path, bundle: &Path, name: &str) -> Result<ContainerDescription, BoxError> {
    let id = ContainerId::new(format!("{name}-{}", std::process::id()))?;
    let logs = work.join("logs");
    std::fs::create_dir_all(&logs)?;
    Ok(
        ContainerDescription::builder(id.clone(), bundle, work.join("run").join(id.as_str()))
            .log(LogDriver::KubernetesFile, logs.join(format!("{id}.log")))
            .cgroups_mode(CgroupsMode::NoConmon)
            .build()?,
    )
}

/// Path of another example of this package: `--NAME-binary PATH`, else the
/// file next to this benchmark's executable. `None` (with a message) when
/// it was not built.
pub fn example_binary(options: &Options, name: &str) -> Option<PathBuf> {
    let key = format!("{}-binary", name.replace('_', "-"));
    if let Some(path) = options.value(&key) {
        return Some(PathBuf::from(path));
    }
    let beside = std::env::current_exe().ok()?.with_file_name(name);
    if beside.is_file() {
        Some(beside)
    } else {
        println!(
            "skipped: example {name} not found next to this benchmark \
             (build it with `cargo build --release -p conmon-driver --example {name}` \
             or pass --{key} PATH)"
        );
        None
    }
}

/// The podman image to compare with (`--podman-image`, default `localhost/busybox`, imported with `podman import`),
/// when `podman run --rm IMAGE true` works; otherwise prints why podman is
/// skipped.
pub fn podman_image(options: &Options) -> Option<String> {
    if options.value("podman") == Some("off") {
        println!("skipped: podman (--podman off)");
        return None;
    }
    let image = options
        .value("podman-image")
        .unwrap_or("localhost/busybox")
        .to_string();
    let probe = Command::new("podman")
        .args(["run", "--rm", "--log-driver", "k8s-file", &image, "true"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output();
    match probe {
        Ok(out) if out.status.success() => Some(image),
        Ok(out) => {
            println!(
                "skipped: podman: `podman run --rm {image} true` failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            None
        }
        Err(e) => {
            println!("skipped: podman: {e}");
            None
        }
    }
}
