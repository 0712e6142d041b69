//! Windows' reserved device names (CON, NUL, COM1, ...): a path component
//! with one of them, whatever its extension, names a device, not a file,
//! and opening it gives errors that say nothing of why.

use std::path::{Component, Path};

const DEVICES: [&str; 4] = ["CON", "PRN", "AUX", "NUL"];

/// The first component of `path` that names a device, if one does.
pub fn device_in(path: &Path) -> Option<String> {
    path.components().find_map(|c| match c {
        Component::Normal(name) => {
            let name = name.to_string_lossy();
            let stem = name.split('.').next().unwrap_or_default();
            let stem = stem.trim_end_matches([' ', '.']).to_ascii_uppercase();
            let numbered = |prefix: &str| {
                stem.strip_prefix(prefix).is_some_and(|n| {
                    matches!(n, "1" | "2" | "3" | "4" | "5" | "6" | "7" | "8" | "9")
                })
            };
            (DEVICES.contains(&stem.as_str()) || numbered("COM") || numbered("LPT"))
                .then(|| name.into_owned())
        }
        _ => None,
    })
}
