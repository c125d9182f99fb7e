//! Settings from the process environment and a dotenv file, read the way the template's Python
//! example reads them, without ever changing the process environment.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::error::Error;

pub(crate) const API_URL: &str = "TB_API_URL";
pub(crate) const TOKEN: &str = "TB_WRITE_TOKEN";
pub(crate) const DATASOURCE: &str = "TB_DATASOURCE";

/// Where `TB_*` settings are looked up: the process environment first, then the dotenv file.
/// Empty when the builder reads neither.
#[derive(Default)]
pub(crate) struct Env {
    read_process: bool,
    file: HashMap<String, String>,
}

impl Env {
    /// Reads the dotenv file at `dotenv` (a missing file is an empty one) and, when `read` is
    /// false, nothing at all.
    pub(crate) fn read(read: bool, dotenv: Option<&Path>) -> Result<Self, Error> {
        if !read {
            return Ok(Self::default());
        }
        let file = match dotenv {
            Some(path) => read_dotenv(path)?,
            None => HashMap::new(),
        };
        Ok(Self {
            read_process: true,
            file,
        })
    }

    /// The value of `key`, unless it is unset or blank.
    pub(crate) fn get(&self, key: &str) -> Option<String> {
        if !self.read_process {
            return None;
        }
        std::env::var(key)
            .ok()
            .or_else(|| self.file.get(key).cloned())
            .filter(|value| !value.trim().is_empty())
    }
}

/// The `TB_*` entries of a dotenv file; a missing file is an empty one. Errors name the entry,
/// never its content: that line may hold the token.
fn read_dotenv(path: &Path) -> Result<HashMap<String, String>, Error> {
    let error = |entry: Option<usize>, source: Option<std::io::Error>| Error::Dotenv {
        path: PathBuf::from(path),
        entry,
        source,
    };
    let entries = match dotenvy::from_path_iter(path) {
        Ok(entries) => entries,
        Err(error) if error.not_found() => return Ok(HashMap::new()),
        Err(dotenvy::Error::Io(io)) => return Err(error(None, Some(io))),
        Err(_) => return Err(error(None, None)),
    };
    let mut found = HashMap::new();
    for (index, entry) in entries.enumerate() {
        match entry {
            Ok((key, value)) if key.starts_with("TB_") => {
                found.insert(key, value);
            }
            Ok(_) => {}
            Err(dotenvy::Error::Io(io)) => return Err(error(Some(index + 1), Some(io))),
            // A parse error quotes the line: keep only where it is.
            Err(_) => return Err(error(Some(index + 1), None)),
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotenv_supplies_what_the_environment_lacks_and_hides_bad_lines() {
        let dir = std::env::temp_dir().join(format!("mcp-analytics-dotenv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.env");
        std::fs::write(
            &good,
            "# comment\nTB_WRITE_TOKEN=p.from-file\nTB_DATASOURCE=from_file\nOTHER=1\n",
        )
        .unwrap();
        let entries = read_dotenv(&good).unwrap();
        assert_eq!(
            entries.get("TB_WRITE_TOKEN").map(String::as_str),
            Some("p.from-file")
        );
        assert_eq!(
            entries.get("TB_DATASOURCE").map(String::as_str),
            Some("from_file")
        );
        assert!(!entries.contains_key("OTHER"));

        let bad = dir.join("bad.env");
        std::fs::write(
            &bad,
            "TB_API_URL=https://api.tinybird.co\nTB_WRITE_TOKEN='p.secret\n",
        )
        .unwrap();
        let error = read_dotenv(&bad).unwrap_err();
        let text = error.to_string();
        assert!(text.contains("entry 2 cannot be parsed"), "{text}");
        assert!(!text.contains("p.secret"), "{text}");
        assert!(!format!("{error:?}").contains("p.secret"), "{error:?}");

        assert!(read_dotenv(&dir.join("missing.env")).unwrap().is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_unreadable_dotenv_keeps_its_cause() {
        // A directory where the file should be: it exists, and reading it fails.
        let dir =
            std::env::temp_dir().join(format!("mcp-analytics-dotenv-dir-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let error = read_dotenv(&dir).unwrap_err();
        assert!(
            std::error::Error::source(&error).is_some(),
            "the I/O error is its source: {error:?}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
