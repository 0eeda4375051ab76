//! The fd numbers conmon expects its pipes at, and the environment variables
//! that name them. With `N` preserved fds, fds `3..3+N` belong to the
//! container and the pipes follow: sync = `N+3`, start = `N+4`,
//! attach = `N+5`.

use std::os::fd::RawFd;

/// The first fd number after stdin, stdout and stderr.
const FIRST_EXTRA_FD: RawFd = 3;

/// fd numbers conmon expects, shifted by the count of preserved fds
/// (preserved fds occupy `3..3+N`, then sync = `N+3`, start = `N+4`,
/// attach = `N+5`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PipeNumbers {
    /// Where the child end of the sync pipe goes (`_OCI_SYNCPIPE`).
    pub sync: RawFd,
    /// Where the child end of the start pipe goes (`_OCI_STARTPIPE`).
    pub start: RawFd,
    /// Where the child end of the attach pipe goes (`_OCI_ATTACHPIPE`), for
    /// exec sessions with `--exec-attach` only.
    pub attach: Option<RawFd>,
}

impl PipeNumbers {
    /// The numbers for `preserved_fds` preserved fds, with or without an
    /// attach pipe.
    ///
    /// A count so large that `N+5` does not fit an fd number saturates at
    /// `RawFd::MAX`, a number no kernel hands out (Linux caps fds below it),
    /// so placing a pipe there fails loudly instead of landing elsewhere.
    pub fn new(preserved_fds: u32, with_attach: bool) -> Self {
        let base = RawFd::try_from(preserved_fds)
            .unwrap_or(RawFd::MAX)
            .saturating_add(FIRST_EXTRA_FD);
        PipeNumbers {
            sync: base,
            start: base.saturating_add(1),
            attach: with_attach.then(|| base.saturating_add(2)),
        }
    }

    /// `("_OCI_SYNCPIPE", "N+3")`, `("_OCI_STARTPIPE", "N+4")`, and
    /// `("_OCI_ATTACHPIPE", "N+5")` when there is an attach pipe, in that
    /// order.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            ("_OCI_SYNCPIPE".to_owned(), self.sync.to_string()),
            ("_OCI_STARTPIPE".to_owned(), self.start.to_string()),
        ];
        if let Some(attach) = self.attach {
            env.push(("_OCI_ATTACHPIPE".to_owned(), attach.to_string()));
        }
        env
    }

    /// The target numbers in the order sync, start, attach.
    pub fn targets(&self) -> impl Iterator<Item = RawFd> {
        [Some(self.sync), Some(self.start), self.attach]
            .into_iter()
            .flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn no_preserved_fds() {
        let n = PipeNumbers::new(0, false);
        assert_eq!(
            n,
            PipeNumbers {
                sync: 3,
                start: 4,
                attach: None
            }
        );
        assert_eq!(
            n.env(),
            env(&[("_OCI_SYNCPIPE", "3"), ("_OCI_STARTPIPE", "4")])
        );
        let n = PipeNumbers::new(0, true);
        assert_eq!(n.attach, Some(5));
        assert_eq!(
            n.env(),
            env(&[
                ("_OCI_SYNCPIPE", "3"),
                ("_OCI_STARTPIPE", "4"),
                ("_OCI_ATTACHPIPE", "5")
            ])
        );
        assert_eq!(n.targets().collect::<Vec<_>>(), vec![3, 4, 5]);
    }

    #[test]
    fn one_preserved_fd() {
        assert_eq!(
            PipeNumbers::new(1, false).env(),
            env(&[("_OCI_SYNCPIPE", "4"), ("_OCI_STARTPIPE", "5")])
        );
        assert_eq!(
            PipeNumbers::new(1, true).env(),
            env(&[
                ("_OCI_SYNCPIPE", "4"),
                ("_OCI_STARTPIPE", "5"),
                ("_OCI_ATTACHPIPE", "6")
            ])
        );
    }

    #[test]
    fn five_preserved_fds() {
        let n = PipeNumbers::new(5, false);
        assert_eq!((n.sync, n.start, n.attach), (8, 9, None));
        assert_eq!(
            n.env(),
            env(&[("_OCI_SYNCPIPE", "8"), ("_OCI_STARTPIPE", "9")])
        );
        assert_eq!(
            PipeNumbers::new(5, true).env(),
            env(&[
                ("_OCI_SYNCPIPE", "8"),
                ("_OCI_STARTPIPE", "9"),
                ("_OCI_ATTACHPIPE", "10")
            ])
        );
        assert_eq!(
            PipeNumbers::new(5, false).targets().collect::<Vec<_>>(),
            vec![8, 9]
        );
    }

    #[test]
    fn absurd_counts_saturate() {
        let n = PipeNumbers::new(u32::MAX, true);
        assert_eq!(n.sync, RawFd::MAX);
        assert_eq!(n.start, RawFd::MAX);
        assert_eq!(n.attach, Some(RawFd::MAX));
    }
}
