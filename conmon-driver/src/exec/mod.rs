//! Exec sessions: running an extra process in a running container through
//! a second conmon (`-e --exec-attach`), its OCI process spec, its
//! capability sets, and the resolution of the user it runs as.

pub(crate) mod capabilities;
pub(crate) mod completion;
pub(crate) mod launch;
pub(crate) mod preserved;
pub(crate) mod registry;
pub(crate) mod root_files;
pub(crate) mod session;
pub(crate) mod spec;
pub(crate) mod user;
