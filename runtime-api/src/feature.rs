//! What a runtime offers beyond the required lifecycle. Each optional group
//! of [`OciRuntime`](crate::OciRuntime) methods is one [`Feature`]; a runtime
//! answers [`features`](crate::OciRuntime::features) with a [`FeatureSet`],
//! and every method of a feature it lacks answers
//! [`RuntimeError::Unsupported`](crate::RuntimeError::Unsupported). An
//! engine asks once, up front, instead of trying and failing.

use std::fmt;

/// One optional capability of a runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Feature {
    /// `pause` and `resume`.
    Pause,
    /// `attach` to the container's streams.
    Attach,
    /// `resize_terminal` of a container with a terminal.
    ResizeTerminal,
    /// `exec`, `exec_detached`, `exec_wait`, `exec_stop`, `exec_alive`.
    Exec,
    /// `exec_resize_terminal` of an exec session with a terminal.
    ExecResizeTerminal,
    /// `checkpoint` a running container.
    Checkpoint,
    /// `restore` a container from a checkpoint.
    Restore,
    /// `update_resources` of a running container.
    UpdateResources,
    /// `info`: versions and packages of the runtime.
    Info,
    /// `reopen_log`: the monitor reopens the container's log file (after
    /// a rotation).
    ReopenLog,
}

impl Feature {
    /// Every feature, in declaration order.
    pub const ALL: [Feature; 10] = [
        Feature::Pause,
        Feature::Attach,
        Feature::ResizeTerminal,
        Feature::Exec,
        Feature::ExecResizeTerminal,
        Feature::Checkpoint,
        Feature::Restore,
        Feature::UpdateResources,
        Feature::Info,
        Feature::ReopenLog,
    ];

    /// The feature's name, as printed (`pause`, `exec-resize-terminal`).
    pub fn name(self) -> &'static str {
        match self {
            Feature::Pause => "pause",
            Feature::Attach => "attach",
            Feature::ResizeTerminal => "resize-terminal",
            Feature::Exec => "exec",
            Feature::ExecResizeTerminal => "exec-resize-terminal",
            Feature::Checkpoint => "checkpoint",
            Feature::Restore => "restore",
            Feature::UpdateResources => "update-resources",
            Feature::Info => "info",
            Feature::ReopenLog => "reopen-log",
        }
    }

    fn bit(self) -> u32 {
        1 << (self as u32)
    }
}

impl fmt::Display for Feature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of [`Feature`]s.
///
/// ```
/// use runtime_api::{Feature, FeatureSet};
/// let set: FeatureSet = [Feature::Pause, Feature::Exec].into_iter().collect();
/// assert!(set.contains(Feature::Exec));
/// assert!(!set.contains(Feature::Checkpoint));
/// assert_eq!(set.to_string(), "pause, exec");
/// assert_eq!(FeatureSet::all().iter().count(), Feature::ALL.len());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FeatureSet(u32);

impl FeatureSet {
    /// No optional feature: a core-only runtime.
    pub const fn empty() -> Self {
        Self(0)
    }

    /// Every feature.
    pub fn all() -> Self {
        Feature::ALL.into_iter().collect()
    }

    /// Whether `feature` is in the set.
    pub fn contains(self, feature: Feature) -> bool {
        self.0 & feature.bit() != 0
    }

    /// Adds `feature`.
    pub fn insert(&mut self, feature: Feature) {
        self.0 |= feature.bit();
    }

    /// Removes `feature`.
    pub fn remove(&mut self, feature: Feature) {
        self.0 &= !feature.bit();
    }

    /// The set with `feature` added.
    #[must_use]
    pub fn with(mut self, feature: Feature) -> Self {
        self.insert(feature);
        self
    }

    /// The set without `feature`.
    #[must_use]
    pub fn without(mut self, feature: Feature) -> Self {
        self.remove(feature);
        self
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The features in the set, in declaration order.
    pub fn iter(self) -> impl Iterator<Item = Feature> {
        Feature::ALL.into_iter().filter(move |f| self.contains(*f))
    }
}

impl FromIterator<Feature> for FeatureSet {
    fn from_iter<I: IntoIterator<Item = Feature>>(iter: I) -> Self {
        let mut set = Self::empty();
        for feature in iter {
            set.insert(feature);
        }
        set
    }
}

impl fmt::Debug for FeatureSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl fmt::Display for FeatureSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for feature in self.iter() {
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            f.write_str(feature.name())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_are_distinct_and_round_trip() {
        let mut set = FeatureSet::empty();
        for (i, feature) in Feature::ALL.into_iter().enumerate() {
            assert!(!set.contains(feature));
            set.insert(feature);
            assert!(set.contains(feature));
            assert_eq!(set.iter().count(), i + 1);
        }
        assert_eq!(set, FeatureSet::all());
        set.remove(Feature::Exec);
        assert!(!set.contains(Feature::Exec));
        assert!(set.contains(Feature::ExecResizeTerminal));
        assert!(FeatureSet::empty().is_empty());
    }
}
