//! The demo's command line: the usage text, the parsed [`Options`] and the
//! parser, which stops at the command (or at `--`) so that the command's own
//! options are passed on untouched. Bad options are reported as a message
//! for the usage error, never as a panic.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

pub(crate) const USAGE: &str = "\
Usage: run [OPTIONS] [--] CMD [ARGS...]
       run [OPTIONS] --bundle DIR

Runs CMD in a busybox container through conmon and exits with its exit code.

Options:
  -i, --interactive           forward stdin to the container (its EOF closes the container's stdin)
  -t, --tty                   give the container a terminal (raw local terminal with -i)
      --detach-keys KEYS      detach sequence (default: ctrl-p,ctrl-q; empty: never);
                              detaching leaves the container running and exits 0
      --runtime NAME|PATH     OCI runtime (default: runc); a value with '/' is a path
      --runtime-flag FLAG     global runtime flag, repeatable (runsc default: --network=none)
      --conmon PATH           conmon binary (default: podman's places, then $PATH)
      --bundle DIR            run this existing OCI bundle as it is (no CMD)
      --image-cache DIR       where the shared busybox root filesystem is kept
                              (default for root: /var/cache/conmon-demo)
      --no-image-cache        copy busybox into the bundle instead of mounting
                              an overlay over the shared root filesystem
      --id ID                 container id (default: demo-<pid>)
      --create-timeout SECS   limit for conmon's launch (default: 240)
      --phase-times           print when each step ended on stderr (CLOCK_MONOTONIC ns)
  -h, --help                  print this help
      --                      end of options

Environment: RUST_LOG filters the log written to stderr (default: warn).";

/// The parsed command line.
#[derive(Debug, Default)]
pub(crate) struct Options {
    /// `-i`: forward the local stdin.
    pub(crate) interactive: bool,
    /// `-t`: give the container a terminal.
    pub(crate) tty: bool,
    /// `--detach-keys`, already checked.
    pub(crate) detach_keys: Option<String>,
    /// `--runtime`.
    pub(crate) runtime: Option<String>,
    /// `--runtime-flag`, in order.
    pub(crate) runtime_flags: Vec<String>,
    /// `--conmon`.
    pub(crate) conmon: Option<PathBuf>,
    /// `--bundle`: run this bundle instead of building one.
    pub(crate) bundle: Option<PathBuf>,
    /// `--image-cache`: where the shared root filesystem is kept.
    pub(crate) image_cache: Option<PathBuf>,
    /// `--no-image-cache`: copy the root filesystem into the bundle.
    pub(crate) no_image_cache: bool,
    /// `--id`.
    pub(crate) id: Option<String>,
    /// `--create-timeout`.
    pub(crate) create_timeout: Option<Duration>,
    /// `--phase-times`.
    pub(crate) phase_times: bool,
    /// `CMD ARGS...`.
    pub(crate) command: Vec<String>,
}

/// What the command line asks for.
#[derive(Debug)]
pub(crate) enum Request {
    /// Run a container with these options (boxed: the help request is
    /// tiny).
    Run(Box<Options>),
    /// Print the usage.
    Help,
}

/// Parses the arguments after the program name. `Err` is a usage error.
pub(crate) fn parse_args(args: impl IntoIterator<Item = OsString>) -> Result<Request, String> {
    let mut args = args
        .into_iter()
        .map(|a| {
            a.into_string()
                .map_err(|a| format!("argument {a:?} is not valid UTF-8"))
        })
        .collect::<Result<Vec<String>, String>>()?
        .into_iter();
    let mut options = Options::default();
    while let Some(arg) = args.next() {
        if arg == "--" {
            break;
        }
        if arg == "-h" || arg == "--help" {
            return Ok(Request::Help);
        }
        if !arg.starts_with('-') || arg == "-" {
            options.command.push(arg);
            break;
        }
        match arg.as_str() {
            "--interactive" => {
                options.interactive = true;
                continue;
            }
            "--tty" => {
                options.tty = true;
                continue;
            }
            "--phase-times" => {
                options.phase_times = true;
                continue;
            }
            "--no-image-cache" => {
                options.no_image_cache = true;
                continue;
            }
            _ => {}
        }
        // Short flags, alone or clustered: -i, -t, -it, -ti.
        if let Some(flags) = arg.strip_prefix('-').filter(|f| !f.starts_with('-')) {
            for flag in flags.chars() {
                match flag {
                    'i' => options.interactive = true,
                    't' => options.tty = true,
                    'h' => return Ok(Request::Help),
                    _ => return Err(format!("unknown option {arg:?}")),
                }
            }
            continue;
        }
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) => (name.to_string(), Some(value)),
            None => (arg.clone(), None),
        };
        let known = [
            "--detach-keys",
            "--runtime",
            "--runtime-flag",
            "--conmon",
            "--bundle",
            "--image-cache",
            "--id",
            "--create-timeout",
        ];
        if !known.contains(&name.as_str()) {
            return Err(format!("unknown option {arg:?}"));
        }
        let value = match inline {
            Some(value) => value.to_string(),
            None => args
                .next()
                .ok_or_else(|| format!("option {name} needs a value"))?,
        };
        // An empty detach sequence means "never detach", as in podman.
        if value.is_empty() && name != "--detach-keys" {
            return Err(format!("option {name} needs a non-empty value"));
        }
        match name.as_str() {
            "--detach-keys" => {
                attach::DetachKeys::parse(&value)
                    .map_err(|e| format!("--detach-keys {value:?}: {e}"))?;
                options.detach_keys = Some(value);
            }
            "--runtime" => options.runtime = Some(value),
            "--runtime-flag" => options.runtime_flags.push(value),
            "--conmon" => options.conmon = Some(PathBuf::from(value)),
            "--bundle" => options.bundle = Some(PathBuf::from(value)),
            "--image-cache" => options.image_cache = Some(PathBuf::from(value)),
            "--id" => options.id = Some(value),
            "--create-timeout" => {
                let secs: f64 = value
                    .parse()
                    .ok()
                    .filter(|s: &f64| s.is_finite() && *s > 0.0)
                    .ok_or_else(|| {
                        format!(
                            "--create-timeout needs a positive number of seconds, not {value:?}"
                        )
                    })?;
                options.create_timeout = Some(Duration::from_secs_f64(secs));
            }
            _ => return Err(format!("unknown option {arg:?}")),
        }
    }
    options.command.extend(args);
    if options.no_image_cache && options.image_cache.is_some() {
        return Err("--image-cache and --no-image-cache exclude each other".into());
    }
    if options.bundle.is_some() && (options.no_image_cache || options.image_cache.is_some()) {
        return Err(
            "--bundle runs its own root filesystem; the image cache options do not apply".into(),
        );
    }
    match (&options.bundle, options.command.is_empty()) {
        (None, true) => Err("no command given".into()),
        (Some(_), false) => Err(format!(
            "--bundle runs the bundle's own process; do not also give a command ({:?})",
            options.command
        )),
        _ => Ok(Request::Run(Box::new(options))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Request, String> {
        parse_args(args.iter().map(OsString::from))
    }

    #[test]
    fn options_stop_at_the_command_or_double_dash() {
        let Ok(Request::Run(o)) = parse(&[
            "--runtime=runsc",
            "--runtime-flag",
            "--debug",
            "--id",
            "x",
            "sh",
            "-c",
            "--id",
        ]) else {
            panic!("parses");
        };
        assert_eq!(o.runtime.as_deref(), Some("runsc"));
        assert_eq!(o.runtime_flags, ["--debug"]);
        assert_eq!(o.id.as_deref(), Some("x"));
        assert_eq!(o.command, ["sh", "-c", "--id"]);
        assert!(!o.interactive && !o.tty);

        let Ok(Request::Run(o)) = parse(&["--", "-weird", "--help"]) else {
            panic!("parses");
        };
        assert_eq!(o.command, ["-weird", "--help"]);
        assert!(!o.phase_times);
        assert!(o.image_cache.is_none() && !o.no_image_cache);
        let Ok(Request::Run(o)) = parse(&["--phase-times", "true", "--phase-times"]) else {
            panic!("parses");
        };
        assert!(o.phase_times);
        assert_eq!(o.command, ["true", "--phase-times"]);
        assert!(matches!(parse(&["-h", "x"]), Ok(Request::Help)));
    }

    #[test]
    fn interactive_terminal_and_detach_keys() {
        for args in [
            &["-it", "sh"][..],
            &["-ti", "sh"],
            &["-i", "-t", "sh"],
            &["--interactive", "--tty", "sh"],
        ] {
            let Ok(Request::Run(o)) = parse(args) else {
                panic!("{args:?} parses");
            };
            assert!(o.interactive && o.tty, "{args:?}");
            assert_eq!(o.command, ["sh"]);
            assert_eq!(o.detach_keys, None);
        }
        let Ok(Request::Run(o)) = parse(&["-i", "--detach-keys", "ctrl-a,x", "cat", "-t"]) else {
            panic!("parses");
        };
        assert!(o.interactive && !o.tty);
        assert_eq!(o.detach_keys.as_deref(), Some("ctrl-a,x"));
        assert_eq!(o.command, ["cat", "-t"]);
        let Ok(Request::Run(o)) = parse(&["--detach-keys=", "-i", "cat"]) else {
            panic!("an empty sequence (never detach) parses");
        };
        assert_eq!(o.detach_keys.as_deref(), Some(""));
    }

    #[test]
    fn image_cache_options() {
        let Ok(Request::Run(o)) = parse(&["--image-cache", "/c", "true"]) else {
            panic!("parses");
        };
        assert_eq!(o.image_cache.as_deref(), Some(std::path::Path::new("/c")));
        assert!(!o.no_image_cache);
        let Ok(Request::Run(o)) = parse(&["--no-image-cache", "true", "--no-image-cache"]) else {
            panic!("parses");
        };
        assert!(o.no_image_cache && o.image_cache.is_none());
        assert_eq!(o.command, ["true", "--no-image-cache"]);
    }

    #[test]
    fn usage_errors() {
        for bad in [
            &[][..],
            &["--"],
            &["--nope", "x"],
            &["--runtime"],
            &["--create-timeout", "-1", "x"],
            &["--bundle", "/b", "echo"],
            &["-ix", "sh"],
            &["--detach-keys", "ctrl-1", "sh"],
            &["--detach-keys"],
            &["--tty=yes", "sh"],
            &["--image-cache", "/c", "--no-image-cache", "sh"],
            &["--image-cache", "", "sh"],
            &["--no-image-cache", "--bundle", "/b"],
            &["--image-cache=/c", "--bundle", "/b"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        assert!(matches!(parse(&["--bundle", "/b"]), Ok(Request::Run(_))));
        assert!(matches!(
            parse(&["-t", "--bundle", "/b"]),
            Ok(Request::Run(_))
        ));
    }
}
