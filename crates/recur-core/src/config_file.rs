//! Reading recur's YAML config files, one way for all three: Job A's
//! `Config`, Job B's `LvmConfig` and the service's `ServeConfig`. The file
//! is read under a size limit, parsed with its name in every error (serde
//! names the key: unknown keys are refused, missing ones take the
//! section's `Default`), and each path it holds is made relative to the
//! file's folder, so a config works from any working directory. Each type
//! then checks its own ranges (its `validate`).

use crate::error::{Error, Result};
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};

/// A config that holds file paths, relative to the config file.
pub trait ConfigPaths {
    /// Every path field, to be joined to the config file's folder.
    fn paths_mut(&mut self) -> Vec<&mut PathBuf>;
}

/// Parses YAML `text`; `origin` names it in errors. Paths stay as written.
pub fn parse<T: DeserializeOwned>(text: &str, origin: &str) -> Result<T> {
    serde_yaml_ng::from_str(text).map_err(|e| {
        let msg = e.to_string();
        // The other job's config, named as such rather than by its key.
        let data = serde_yaml_ng::from_str::<serde_yaml_ng::Value>(text)
            .ok()
            .and_then(|v| v.get("data").cloned());
        let has = |k: &str| data.as_ref().is_some_and(|d| d.get(k).is_some());
        let hint = if msg.contains("unknown field `train`") && has("train") {
            "; this is a Job B (LVM) config: train it with `recur lvm train` (Python: `recur.Lvm.train`)"
        } else if msg.contains("unknown field `path`") && has("path") {
            "; this is a Job A (classifier) config: train it with `recur train`"
        } else {
            ""
        };
        Error::config(origin, format!("{msg}{hint}"))
    })
}

/// The config in `path`, with its relative paths joined to the file's
/// folder, and the file's text (for checks that need to know which keys
/// the file itself wrote).
pub fn read<T: DeserializeOwned + ConfigPaths>(path: &Path) -> Result<(T, String)> {
    let text = crate::fsx::read_text(path)?;
    let mut cfg: T = parse(&text, &path.display().to_string())?;
    let base = path.parent().unwrap_or(Path::new("."));
    for p in cfg.paths_mut() {
        // An empty path stays empty, for validation to name (joined, it
        // read as the config's folder: "is a folder; give a file").
        if p.is_relative() && !p.as_os_str().is_empty() {
            *p = base.join(&*p);
        }
    }
    Ok((cfg, text))
}

/// Which job a config file is for: Job B's LVM configs name their
/// training windows (`data.train`), Job A's configs a table (`data.path`).
/// Commands that take either (`recur tune`) dispatch on it; a file that is
/// not YAML reads as Job A's, whose parser then says what is wrong.
pub fn is_lvm_config(path: &Path) -> Result<bool> {
    let text = crate::fsx::read_text(path)?;
    let v: serde_yaml_ng::Value = match serde_yaml_ng::from_str(&text) {
        Ok(v) => v,
        Err(_) => return Ok(false),
    };
    Ok(v.get("data").and_then(|d| d.get("train")).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Default)]
    #[serde(deny_unknown_fields, default)]
    struct Two {
        a: PathBuf,
        b: Option<PathBuf>,
    }

    impl ConfigPaths for Two {
        fn paths_mut(&mut self) -> Vec<&mut PathBuf> {
            std::iter::once(&mut self.a)
                .chain(self.b.as_mut())
                .collect()
        }
    }

    #[test]
    fn relative_paths_follow_the_file_and_absolute_or_missing_ones_stay() {
        let dir = std::env::temp_dir().join(format!("recur-config-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("c.yaml");
        std::fs::write(&f, "a: data/x.npz\nb: /abs/y.npz\n").unwrap();
        let (c, text) = read::<Two>(&f).unwrap();
        assert_eq!(c.a, dir.join("data/x.npz"));
        assert_eq!(c.b, Some(PathBuf::from("/abs/y.npz")));
        assert!(text.contains("data/x.npz"));
        std::fs::write(&f, "b: y.npz\n").unwrap();
        let (c, _) = read::<Two>(&f).unwrap();
        assert_eq!(c.b, Some(dir.join("y.npz")));
        std::fs::write(&f, "c: 1\n").unwrap();
        let e = read::<Two>(&f).err().unwrap().to_string();
        assert!(e.contains("c.yaml") && e.contains("`c`"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
