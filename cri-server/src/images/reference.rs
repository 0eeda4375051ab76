//! Image names as the kubelet sends them (`busybox`, `quay.io/x/y:1`,
//! `name@sha256:...`) in their one normalized form, the way
//! containerd and CRI-O compare them: a registry domain, a repository
//! path, and a tag (`latest` when none is given) or a digest.

use std::fmt;

/// The registry short names are resolved against.
pub const DEFAULT_DOMAIN: &str = "docker.io";

/// A parsed, normalized image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// `domain/path`, e.g. `docker.io/library/busybox`.
    pub repository: String,
    /// The tag, when the reference has one (or had neither tag nor digest).
    pub tag: Option<String>,
    /// `sha256:<hex>`, when the reference pins a digest.
    pub digest: Option<String>,
}

impl Reference {
    /// Parses and normalizes `name`. Refuses an empty name, upper-case
    /// repository paths, characters outside the reference grammar and a
    /// malformed digest, with a message naming the problem.
    ///
    /// ```
    /// use cri_server::images::Reference;
    /// let r = Reference::parse("busybox")?;
    /// assert_eq!(r.to_string(), "docker.io/library/busybox:latest");
    /// let r = Reference::parse("localhost:5000/a/b:v1")?;
    /// assert_eq!(r.to_string(), "localhost:5000/a/b:v1");
    /// # Ok::<(), String>(())
    /// ```
    pub fn parse(name: &str) -> Result<Self, String> {
        if name.is_empty() {
            return Err("the image name is empty".into());
        }
        let (rest, digest) = match name.split_once('@') {
            Some((rest, digest)) => {
                validate_digest(digest)?;
                (rest, Some(digest.to_string()))
            }
            None => (name, None),
        };
        let (path, tag) = match rest.rsplit_once(':') {
            Some((path, tag)) if !tag.contains('/') => (path, Some(tag.to_string())),
            _ => (rest, None),
        };
        if let Some(tag) = &tag {
            let ok = !tag.is_empty()
                && tag.len() <= 128
                && tag
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
            if !ok {
                return Err(format!("image tag {tag:?} in {name:?} is not valid"));
            }
        }
        if path.is_empty() {
            return Err(format!("image name {name:?} has no repository"));
        }
        let mut parts: Vec<&str> = path.split('/').collect();
        let has_domain = parts.len() > 1
            && (parts[0].contains('.') || parts[0].contains(':') || parts[0] == "localhost");
        let domain = if has_domain {
            parts.remove(0).to_string()
        } else {
            DEFAULT_DOMAIN.to_string()
        };
        if domain == DEFAULT_DOMAIN && parts.len() == 1 {
            parts.insert(0, "library");
        }
        for part in &parts {
            let ok = !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c));
            if !ok {
                return Err(format!(
                    "image name {name:?}: path component {part:?} must be lower-case letters, digits and . _ -"
                ));
            }
        }
        let tag = match (&tag, &digest) {
            (None, None) => Some("latest".to_string()),
            _ => tag,
        };
        Ok(Self {
            repository: format!("{domain}/{}", parts.join("/")),
            tag,
            digest,
        })
    }

    /// `repository:tag`, when the reference has a tag.
    pub fn tagged(&self) -> Option<String> {
        self.tag
            .as_ref()
            .map(|t| format!("{}:{t}", self.repository))
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// Checks `sha256:` followed by 64 lower-case hex digits, the only digest
/// form the store handles (and safe as a file name).
pub fn validate_digest(digest: &str) -> Result<&str, String> {
    match digest.strip_prefix("sha256:") {
        Some(hex)
            if hex.len() == 64
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) =>
        {
            Ok(hex)
        }
        _ => Err(format!(
            "digest {digest:?} is not of the form sha256:<64 lower-case hex digits>"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_normalize_as_the_kubelet_expects() {
        let d = format!("sha256:{}", "a".repeat(64));
        for (input, expected) in [
            ("busybox", "docker.io/library/busybox:latest".to_string()),
            ("busybox:1.36", "docker.io/library/busybox:1.36".into()),
            ("library/busybox", "docker.io/library/busybox:latest".into()),
            ("foo/bar", "docker.io/foo/bar:latest".into()),
            ("quay.io/foo/bar:v2", "quay.io/foo/bar:v2".into()),
            ("localhost/pause", "localhost/pause:latest".into()),
            ("reg:5000/x", "reg:5000/x:latest".into()),
            (
                &format!("busybox@{d}"),
                format!("docker.io/library/busybox@{d}"),
            ),
        ] {
            assert_eq!(
                Reference::parse(input).unwrap().to_string(),
                expected,
                "{input}"
            );
        }
    }

    #[test]
    fn bad_names_are_refused_with_a_reason() {
        for (input, needle) in [
            ("", "empty"),
            ("BusyBox", "lower-case"),
            ("a//b", "path component"),
            ("a:", "tag"),
            ("a@sha256:12", "digest"),
            ("a b", "path component"),
        ] {
            let err = Reference::parse(input).unwrap_err();
            assert!(err.contains(needle), "{input}: {err}");
        }
    }
}
