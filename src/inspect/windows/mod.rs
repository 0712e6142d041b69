//! The Windows side of inspection, one module per question the shared code
//! asks. Windows keeps no lock table anyone may read and names no owner of a
//! byte-range lock: what it can tell is who has a file open, by enumerating
//! every process's handles, and that is what these modules answer.

pub mod dir_lock;
pub mod file_id;
pub mod open_files;
pub mod path_walk;
pub mod reserved;
pub mod servers;
