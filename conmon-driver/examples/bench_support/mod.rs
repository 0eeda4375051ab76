//! What the benchmark examples share: option parsing, sample collection,
//! medians and the ratio table, the driver's configuration, finding the
//! other example binaries, an optional podman, the driver's debug events
//! as time marks and counts, many bundles over one root filesystem, and
//! the process, process tree and machine counters (memory, fds, CPU time).
//! The attach benchmarks' pieces are submodules: the raw socket floor
//! (`raw_socket`), counting sinks and bounded child processes (`streams`)
//! and the CPU time and context switches of reading threads (`usage`).
#![allow(dead_code)]

pub mod raw_socket;
pub mod streams;
pub mod usage;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use conmon_driver::{CgroupsMode, ConmonConfig, ConmonDescriptionExt, ConmonRuntime, LogLevel};
use runtime_api::{ContainerDescription, ContainerId, LogConfig, LogDriver};
use testkit::BundleBuilder;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

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

    /// The value below which a fraction `q` of the samples lie (the
    /// nearest rank); 0 without samples.
    pub fn percentile(&self, q: f64) -> f64 {
        let mut sorted = self.values.clone();
        sorted.sort_by(f64::total_cmp);
        let rank = ((sorted.len() as f64) * q).ceil() as usize;
        sorted
            .get(rank.saturating_sub(1).min(sorted.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0.0)
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

/// Prints the runs whose medians were subtracted from the "net" rows
/// (e.g. `run -- true`), those that were measured only: the first row is
/// the ratios' base.
pub fn print_fixed_costs(rows: &[&Samples]) {
    let measured: Vec<&Samples> = rows.iter().copied().filter(|s| !s.is_empty()).collect();
    if !measured.is_empty() {
        print_durations("fixed costs subtracted above", &measured);
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
    describe_with(work, bundle, name, LogDriver::KubernetesFile, false)
}

/// A container as [`describe`] makes it, with log driver `log` (a k8s-file
/// or JSON log goes under `work`, the others have no path) and its stdin
/// kept open for attach with `stdin`.
pub fn describe_with(
    work: &Path,
    bundle: &Path,
    name: &str,
    log: LogDriver,
    stdin: bool,
) -> Result<ContainerDescription, BoxError> {
    let id = ContainerId::new(format!("{name}-{}", std::process::id()))?;
    let mut builder =
        ContainerDescription::builder(id.clone(), bundle, work.join("run").join(id.as_str()))
            .cgroups_mode(CgroupsMode::NoConmon)
            .stdin(stdin);
    builder = match log {
        LogDriver::KubernetesFile | LogDriver::JsonFile => {
            let logs = work.join("logs");
            std::fs::create_dir_all(&logs)?;
            builder.log(log, logs.join(format!("{id}.log")))
        }
        other => builder.log_config(LogConfig::new(other)),
    };
    Ok(builder.build()?)
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

/// Times at which the driver logged chosen debug events (by message),
/// collected by a tracing layer.
#[derive(Clone)]
pub struct Marks {
    watched: &'static [&'static str],
    seen: Arc<Mutex<Vec<(&'static str, Instant)>>>,
}

impl Marks {
    /// Marks of the debug events whose message is one of `watched`.
    pub fn new(watched: &'static [&'static str]) -> Marks {
        Marks {
            watched,
            seen: Arc::default(),
        }
    }

    /// Installs the layer as the global subscriber, for the driver's debug
    /// events only.
    pub fn install(&self) -> Result<(), BoxError> {
        tracing::subscriber::set_global_default(
            tracing_subscriber::registry().with(
                self.clone().with_filter(
                    tracing_subscriber::filter::Targets::new()
                        .with_target("conmon_driver", tracing::Level::DEBUG),
                ),
            ),
        )?;
        Ok(())
    }

    /// The marks so far, which are forgotten.
    pub fn take(&self) -> Vec<(&'static str, Instant)> {
        std::mem::take(&mut self.seen.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// The first mark of `what` among `marks`.
    pub fn at(marks: &[(&'static str, Instant)], what: &str) -> Option<Instant> {
        marks.iter().find(|(m, _)| *m == what).map(|(_, at)| *at)
    }

    /// How many of `marks` are of `what`.
    pub fn count(marks: &[(&'static str, Instant)], what: &str) -> usize {
        marks.iter().filter(|(m, _)| *m == what).count()
    }
}

struct MessageOf {
    watched: &'static [&'static str],
    found: Option<&'static str>,
}

impl Visit for MessageOf {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let text = format!("{value:?}");
            self.found = self.watched.iter().copied().find(|m| *m == text);
        }
    }
}

impl<S: tracing::Subscriber> Layer<S> for Marks {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let now = Instant::now();
        let mut message = MessageOf {
            watched: self.watched,
            found: None,
        };
        event.record(&mut message);
        if let Some(what) = message.found {
            self.seen
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((what, now));
        }
    }
}

/// Many bundles of one process over one busybox root filesystem: each
/// bundle directory holds its own `config.json` (and the files conmon
/// puts beside it: attach socket, ctl FIFO), whose root is the shared
/// `rootfs` by absolute path. The containers' `/dev` is a tmpfs of their
/// own, so nothing they set up lands in the shared tree.
pub struct Bundles {
    base: testkit::Bundle,
    _dir: tempfile::TempDir,
    paths: Vec<PathBuf>,
}

impl Bundles {
    /// `count` bundles running `args`.
    pub fn new(count: usize, args: &[&str]) -> Result<Bundles, BoxError> {
        let base = BundleBuilder::new().args(args.iter().copied()).build()?;
        let mut spec = base.spec()?;
        let mut root = spec.root().clone().ok_or("the bundle's spec has no root")?;
        root.set_path(base.rootfs());
        spec.set_root(Some(root));
        let dir = tempfile::Builder::new()
            .prefix("bench-bundles-")
            .tempdir()?;
        let mut paths = Vec::with_capacity(count);
        for i in 0..count {
            let path = dir.path().join(format!("b{i}"));
            std::fs::create_dir(&path)?;
            spec.save(path.join("config.json"))?;
            paths.push(path);
        }
        Ok(Bundles {
            base,
            _dir: dir,
            paths,
        })
    }

    /// The bundle directories.
    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }

    /// The shared root filesystem.
    pub fn rootfs(&self) -> PathBuf {
        self.base.rootfs()
    }
}

/// Raises this process's soft limit of open files to its hard limit (as
/// podman does): hundreds of containers at once hold more than the usual
/// 1024 descriptors. Returns the soft limit now in force.
pub fn raise_fd_limit() -> Result<u64, BoxError> {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    limit.current = limit.maximum;
    setrlimit(Resource::Nofile, limit)?;
    Ok(getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX))
}

/// How many descriptors this process has open.
pub fn open_fds() -> Result<usize, BoxError> {
    // The directory's own descriptor is listed too.
    Ok(std::fs::read_dir("/proc/self/fd")?
        .count()
        .saturating_sub(1))
}

/// A `kB` field of `/proc/self/status`, in KiB.
fn status_kib(field: &str) -> Result<u64, BoxError> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| format!("no {field} in /proc/self/status").into())
}

/// What each open descriptor of this process refers to (`/proc/self/fd`
/// links), by number.
pub fn fd_targets() -> Result<std::collections::BTreeMap<i32, String>, BoxError> {
    let mut targets = std::collections::BTreeMap::new();
    for entry in std::fs::read_dir("/proc/self/fd")? {
        let entry = entry?;
        let Some(fd) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        // The directory's own descriptor is gone by now: no link.
        if let Ok(target) = std::fs::read_link(entry.path()) {
            targets.insert(fd, target.display().to_string());
        }
    }
    Ok(targets)
}

/// This process's resident memory now, in KiB.
pub fn rss_kib() -> Result<u64, BoxError> {
    status_kib("VmRSS")
}

/// This process's peak resident memory since it started or since the last
/// [`reset_peak_rss`], in KiB.
pub fn peak_rss_kib() -> Result<u64, BoxError> {
    status_kib("VmHWM")
}

/// Resets the peak resident memory to the current one (`clear_refs` 5).
pub fn reset_peak_rss() -> Result<(), BoxError> {
    std::fs::write("/proc/self/clear_refs", "5")?;
    Ok(())
}

/// The CPU time of this process and of every process it starts, through a
/// cgroup of its own at the root of the `cpuacct` hierarchy (cgroup v1) or
/// of the unified one (v2), which children inherit. A process moved to
/// another cgroup leaves the account: runc moves a container's own
/// processes into the container's cgroup, so what is counted is the
/// engine's side (the benchmark, conmon, the runtime's commands). Dropped,
/// it moves this process back and removes the cgroup.
pub struct CpuAccount {
    dir: PathBuf,
    origin: PathBuf,
    v2: bool,
}

impl CpuAccount {
    /// Moves this process into a new cgroup named `name`; `Ok(None)` (with
    /// a message) where no hierarchy can be used.
    pub fn new(name: &str) -> Result<Option<CpuAccount>, BoxError> {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")?;
        let mut v1 = None;
        let mut v2 = None;
        for line in mountinfo.lines() {
            let Some((before, after)) = line.split_once(" - ") else {
                continue;
            };
            let mut mount = before.split_whitespace().skip(3);
            let (Some("/"), Some(point)) = (mount.next(), mount.next()) else {
                continue;
            };
            let mut fs = after.split_whitespace();
            match (fs.next(), fs.nth(1)) {
                (Some("cgroup"), Some(options)) if options.split(',').any(|o| o == "cpuacct") => {
                    v1.get_or_insert_with(|| PathBuf::from(point));
                }
                (Some("cgroup2"), _) => {
                    v2.get_or_insert_with(|| PathBuf::from(point));
                }
                _ => {}
            }
        }
        let own = std::fs::read_to_string("/proc/self/cgroup")?;
        let path_in = |wanted: &dyn Fn(&str) -> bool| {
            own.lines().find_map(|line| {
                let mut parts = line.splitn(3, ':');
                let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
                wanted(controllers).then(|| path.trim_start_matches('/').to_string())
            })
        };
        let (root, origin, v2) = match (v1, v2) {
            (Some(root), _) => {
                let Some(origin) = path_in(&|c| c.split(',').any(|c| c == "cpuacct")) else {
                    println!("skipped: CPU accounting (this process is in no cpuacct cgroup)");
                    return Ok(None);
                };
                (root, origin, false)
            }
            (None, Some(root)) => {
                let Some(origin) = path_in(&|c| c.is_empty()) else {
                    println!("skipped: CPU accounting (this process is in no v2 cgroup)");
                    return Ok(None);
                };
                (root, origin, true)
            }
            (None, None) => {
                println!("skipped: CPU accounting (no cpuacct or v2 hierarchy mounted)");
                return Ok(None);
            }
        };
        let dir = root.join(format!("{name}-{}", std::process::id()));
        std::fs::create_dir(&dir)?;
        let account = CpuAccount {
            dir,
            origin: root.join(origin),
            v2,
        };
        std::fs::write(
            account.dir.join("cgroup.procs"),
            std::process::id().to_string(),
        )?;
        Ok(Some(account))
    }

    /// The CPU time counted so far, seconds.
    pub fn seconds(&self) -> Result<f64, BoxError> {
        if self.v2 {
            let stat = std::fs::read_to_string(self.dir.join("cpu.stat"))?;
            let usec: f64 = stat
                .lines()
                .find_map(|line| line.strip_prefix("usage_usec "))
                .ok_or("no usage_usec in cpu.stat")?
                .trim()
                .parse()?;
            Ok(usec / 1e6)
        } else {
            let nanos: f64 = std::fs::read_to_string(self.dir.join("cpuacct.usage"))?
                .trim()
                .parse()?;
            Ok(nanos / 1e9)
        }
    }
}

impl Drop for CpuAccount {
    fn drop(&mut self) {
        let back = std::fs::write(
            self.origin.join("cgroup.procs"),
            std::process::id().to_string(),
        );
        // Processes still in it (a straggler of a failed run) keep it.
        if back.is_err() || std::fs::remove_dir(&self.dir).is_err() {
            eprintln!("cannot remove the accounting cgroup {}", self.dir.display());
        }
    }
}

/// CPU time: of this process, of its tree (through a [`CpuAccount`]) and
/// of the machine.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counters {
    /// This process's CPU time (user and system), seconds.
    pub own_cpu: f64,
    /// The CPU time of this process's reaped children, seconds.
    pub children_cpu: f64,
    /// The CPU time of this process and all it started ([`CpuAccount`]),
    /// seconds; NaN without an account.
    pub tree_cpu: f64,
    /// The machine's busy CPU time (everything but idle and iowait), all
    /// CPUs, seconds.
    pub machine_cpu: f64,
}

impl Counters {
    /// The counters now, from `/proc/self/stat`, the account and
    /// `/proc/stat`.
    pub fn now(account: Option<&CpuAccount>) -> Result<Counters, BoxError> {
        let tick = rustix::param::clock_ticks_per_second() as f64;
        let own = std::fs::read_to_string("/proc/self/stat")?;
        let fields: Vec<&str> = own
            .rsplit_once(')')
            .ok_or("/proc/self/stat has no ')'")?
            .1
            .split_whitespace()
            .collect();
        // utime, stime, cutime, cstime: fields 14 to 17; the list starts at
        // field 3.
        let field = |n: usize| -> Result<f64, BoxError> {
            Ok(fields
                .get(n - 3)
                .ok_or("/proc/self/stat is short")?
                .parse::<f64>()?
                / tick)
        };
        let machine = std::fs::read_to_string("/proc/stat")?;
        let ticks: Vec<f64> = machine
            .lines()
            .find_map(|line| line.strip_prefix("cpu "))
            .ok_or("no cpu line in /proc/stat")?
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        // user nice system idle iowait irq softirq steal (guest time is
        // counted in user already).
        let machine_cpu = ticks
            .iter()
            .take(8)
            .enumerate()
            .filter(|(i, _)| *i != 3 && *i != 4)
            .map(|(_, t)| t)
            .sum::<f64>()
            / tick;
        Ok(Counters {
            own_cpu: field(14)? + field(15)?,
            children_cpu: field(16)? + field(17)?,
            tree_cpu: match account {
                Some(account) => account.seconds()?,
                None => f64::NAN,
            },
            machine_cpu,
        })
    }

    /// What was counted from `earlier` to `self`.
    pub fn since(&self, earlier: &Counters) -> Counters {
        Counters {
            own_cpu: self.own_cpu - earlier.own_cpu,
            children_cpu: self.children_cpu - earlier.children_cpu,
            tree_cpu: self.tree_cpu - earlier.tree_cpu,
            machine_cpu: self.machine_cpu - earlier.machine_cpu,
        }
    }
}

/// Prints rates: `count` items done in each sample's time, per second of
/// the median, and the ratio to the baseline's (the first entry) rate.
pub fn print_rates(title: &str, count: usize, unit: &str, rows: &[&Samples]) {
    println!("{title}");
    let Some(base) = rows.first().map(|s| s.median()) else {
        return;
    };
    println!(
        "  {:<60} {:>10} {:>12} {:>8}",
        "contender",
        "median s",
        format!("{unit}/s"),
        "ratio"
    );
    for row in rows {
        if row.is_empty() {
            continue;
        }
        let median = row.median();
        println!(
            "  {:<60} {:>10.3} {:>12.1} {:>8.2}",
            row.name,
            median,
            ratio(count as f64, median),
            ratio(base, median)
        );
    }
}

/// Prints plain figures, one a line, with their unit (medians over the
/// rounds where the caller collected several).
pub fn print_figures(title: &str, rows: &[(&str, f64, &str)]) {
    println!("{title}");
    for (name, value, unit) in rows {
        println!("  {name:<60} {value:>10.1} {unit}");
    }
}

/// Runs `each` on every item at once, as tasks of the current tokio
/// runtime; the results in the items' order.
pub async fn all_at_once<T, R, F, Fut>(items: Vec<T>, each: F) -> Vec<Result<R, BoxError>>
where
    F: Fn(T) -> Fut,
    Fut: std::future::Future<Output = Result<R, BoxError>> + Send + 'static,
    R: Send + 'static,
{
    let count = items.len();
    let mut tasks = tokio::task::JoinSet::new();
    for (i, item) in items.into_iter().enumerate() {
        let task = each(item);
        tasks.spawn(async move { (i, task.await) });
    }
    let mut results: Vec<Option<Result<R, BoxError>>> = (0..count).map(|_| None).collect();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((i, result)) => results[i] = Some(result),
            Err(e) => return vec![Err(format!("a task failed: {e}").into())],
        }
    }
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err("a task left no result".into())))
        .collect()
}

/// The first error among `results`, with how many failed; the values
/// otherwise.
pub fn all_ok<R>(what: &str, results: Vec<Result<R, BoxError>>) -> Result<Vec<R>, BoxError> {
    let failed = results.iter().filter(|r| r.is_err()).count();
    let mut values = Vec::with_capacity(results.len());
    for result in results {
        match result {
            Ok(value) => values.push(value),
            Err(e) => return Err(format!("{what}: {failed} failed, the first: {e}").into()),
        }
    }
    Ok(values)
}

/// How long one `runc` command of the benchmarks may take.
pub const RUNC_LIMIT: Duration = Duration::from_secs(120);

/// Runs `runc ARGS` (bounded by [`RUNC_LIMIT`], killed past it); its
/// stdout, or an error with its stderr when it failed.
pub async fn runc(args: &[&str]) -> Result<Vec<u8>, BoxError> {
    let mut command = tokio::process::Command::new("runc");
    command.args(args);
    let out = state_probe::run_bounded(command, RUNC_LIMIT).await?;
    if !out.success() {
        return Err(format!("runc {args:?}: {} {}", out.status, out.stderr_text()).into());
    }
    Ok(out.stdout)
}

/// How a target fared, for the benchmarks' verdict lines.
pub fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "missed"
    }
}
