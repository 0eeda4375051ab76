//! What a runtime's `exec --help` lists: the flags conmon passes for an
//! exec (`--tty`) and the ones that tell a sandboxing runtime apart
//! (`--internal-pid-file`). Read once per runtime and cached by
//! [`ConmonRuntime`](crate::ConmonRuntime).

/// What the runtime's `exec --help` lists.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ExecFlags {
    /// `--tty` (`--tty`, `-tty` or `--tty=`).
    pub(crate) tty: bool,
    /// `--internal-pid-file`.
    pub(crate) internal_pid_file: bool,
}

impl ExecFlags {
    pub(crate) fn from_help(help: &[u8]) -> Self {
        let text = String::from_utf8_lossy(help);
        let mut flags = Self::default();
        for word in text.split(|c: char| c.is_whitespace() || c == ',' || c == '[' || c == '=') {
            match word.trim_start_matches('-') {
                "tty" if word.starts_with('-') => flags.tty = true,
                "internal-pid-file" if word.starts_with('-') => flags.internal_pid_file = true,
                _ => {}
            }
        }
        flags
    }

    /// The flags either help text lists (runtimes print help on stdout or
    /// stderr).
    pub(crate) fn or(self, other: Self) -> Self {
        Self {
            tty: self.tty || other.tty,
            internal_pid_file: self.internal_pid_file || other.internal_pid_file,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ExecFlags;

    #[test]
    fn exec_flags_are_read_from_runc_crun_and_runsc_help() {
        let runc = b"   --tty, -t                          allocate a pseudo-TTY";
        let crun = b"  -t, --tty[=TTY]            allocate a pseudo-TTY";
        let runsc = b"  -internal-pid-file string\n    \tfilename ... of the tty\n";
        let flags = |tty, internal_pid_file| ExecFlags {
            tty,
            internal_pid_file,
        };
        assert_eq!(ExecFlags::from_help(runc), flags(true, false));
        assert_eq!(ExecFlags::from_help(crun), flags(true, false));
        assert_eq!(ExecFlags::from_help(runsc), flags(false, true));
        assert_eq!(ExecFlags::from_help(b"--ttyfoo tty"), flags(false, false));
        assert_eq!(
            ExecFlags::from_help(runc).or(ExecFlags::from_help(runsc)),
            flags(true, true)
        );
    }
}
