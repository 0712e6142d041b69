//! ovlock's integration tests, one binary (as cargo's own are), so that
//! they link once. Each module makes its situations for real in temporary
//! directories; `support` is the shared harness.

mod support;

mod clear_stale;
mod cli;
mod config;
mod evidence;
mod fixes;
mod hostile;
mod interop;
mod metrics;
mod network_fs;
mod path_lock_interop;
mod path_locks;
mod races;
mod reduced_privilege;
mod schema;
mod server;
mod situations;
mod usage;
