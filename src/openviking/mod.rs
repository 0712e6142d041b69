//! What OpenViking writes and reads, written down once: the layout of a data
//! directory, the pid file, the path-lock token and ov.conf. Everything here
//! changes when OpenViking does, and nothing else should have to.

pub mod layout;
// Only Linux searches the storage tree for path-lock files to decode.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub mod lock_token;
pub mod ovconf;
pub mod pid_file;
