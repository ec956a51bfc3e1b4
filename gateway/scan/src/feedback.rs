//! Corrections from administrators and users ("not spam" on release, "report spam"), kept as
//! the raw messages under `data_dir/feedback/<label>/` so that `jianmen retrain` can learn from
//! them. One file per distinct message (named by its SHA-256); a later correction of the same
//! message replaces the earlier one.

use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// Largest message kept as feedback.
pub const MAX_MESSAGE_BYTES: usize = 25 * 1024 * 1024;

/// What the person said the message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Label {
    /// Legitimate ("not spam").
    Ham,
    /// Unsolicited bulk mail.
    Spam,
    /// Phishing or fraud.
    Phish,
}

impl Label {
    /// All labels, in directory order.
    pub const ALL: [Label; 3] = [Label::Ham, Label::Spam, Label::Phish];

    /// The label's name, as corpora and the trainer spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Label::Ham => "ham",
            Label::Spam => "spam",
            Label::Phish => "phish",
        }
    }

    /// Parses `ham`, `spam` or `phish`.
    pub fn parse(name: &str) -> Option<Label> {
        Label::ALL.into_iter().find(|l| l.as_str() == name)
    }
}

/// Why feedback could not be kept.
#[derive(Debug, thiserror::Error)]
pub enum FeedbackError {
    /// The message is empty or over [`MAX_MESSAGE_BYTES`].
    #[error("message of {0} bytes not kept as feedback (1 to {MAX_MESSAGE_BYTES} bytes)")]
    BadSize(usize),
    /// The store's directory could not be read or written.
    #[error("feedback store {path}: {source}")]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> FeedbackError + '_ {
    move |source| FeedbackError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The feedback directory of one gateway.
pub struct FeedbackStore {
    root: PathBuf,
}

impl FeedbackStore {
    /// The store under `data_dir` (created on first use).
    pub fn open(data_dir: &Path) -> FeedbackStore {
        FeedbackStore {
            root: data_dir.join("feedback"),
        }
    }

    /// The store of one protected domain's own feedback (what its per-domain administrators
    /// report), apart from the gateway's: `jianmen retrain` learns only from the gateway's, so
    /// one tenant's labels do not change every tenant's verdicts.
    pub fn for_domain(data_dir: &Path, domain: &str) -> FeedbackStore {
        FeedbackStore {
            root: data_dir.join("feedback").join("domains").join(domain),
        }
    }

    /// Keeps `raw` as an example of `label`, durably (file and directory fsync'd); returns the
    /// file it was kept in.
    pub fn record(&self, raw: &[u8], label: Label) -> Result<PathBuf, FeedbackError> {
        if raw.is_empty() || raw.len() > MAX_MESSAGE_BYTES {
            return Err(FeedbackError::BadSize(raw.len()));
        }
        let digest = ring::digest::digest(&ring::digest::SHA256, raw);
        let name: String = digest
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
            + ".eml";
        let dir = self.root.join(label.as_str());
        fs::create_dir_all(&dir).map_err(io_error(&dir))?;
        let path = dir.join(&name);
        let temp = dir.join(format!(".{name}.tmp"));
        let written = (|| {
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&temp)?;
            f.write_all(raw)?;
            f.sync_all()?;
            fs::rename(&temp, &path)?;
            File::open(&dir)?.sync_all()
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&temp);
            return Err(io_error(&path)(e));
        }
        // The latest word on a message wins: drop it from the other labels.
        for other in Label::ALL.into_iter().filter(|l| *l != label) {
            let stale = self.root.join(other.as_str()).join(&name);
            if stale.exists() {
                fs::remove_file(&stale).map_err(io_error(&stale))?;
            }
        }
        Ok(path)
    }

    /// The modification times of the label directories (`None` where one is missing): keeping,
    /// replacing or relabelling a message changes at least one of them.
    pub fn stamps(&self) -> Vec<Option<std::time::SystemTime>> {
        Label::ALL
            .iter()
            .map(|l| {
                fs::metadata(self.root.join(l.as_str()))
                    .and_then(|m| m.modified())
                    .ok()
            })
            .collect()
    }

    /// Every kept message with its label, sorted by path.
    pub fn entries(&self) -> Result<Vec<(Label, PathBuf)>, FeedbackError> {
        let mut out = Vec::new();
        for label in Label::ALL {
            let dir = self.root.join(label.as_str());
            let listing = match fs::read_dir(&dir) {
                Ok(l) => l,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_error(&dir)(e)),
            };
            for entry in listing {
                let path = entry.map_err(io_error(&dir))?.path();
                if path.extension().is_some_and(|e| e == "eml") {
                    out.push((label, path));
                }
            }
        }
        out.sort_by(|a, b| a.1.cmp(&b.1));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corrections_are_kept_once_and_the_latest_label_wins() {
        let dir = tempfile::tempdir().unwrap();
        let store = FeedbackStore::open(dir.path());
        assert!(store.entries().unwrap().is_empty());
        let raw = b"Subject: cheap pills\r\n\r\nbuy now\r\n";
        store.record(raw, Label::Spam).unwrap();
        store.record(raw, Label::Spam).unwrap();
        store
            .record(b"Subject: lunch\r\n\r\nnoon?\r\n", Label::Ham)
            .unwrap();
        assert_eq!(store.entries().unwrap().len(), 2);
        let kept = store.record(raw, Label::Ham).unwrap();
        let entries = store.entries().unwrap();
        assert_eq!(entries.len(), 2);
        assert!(entries.iter().all(|(l, _)| *l == Label::Ham));
        assert_eq!(fs::read(kept).unwrap(), raw);
        assert!(matches!(
            store.record(b"", Label::Spam),
            Err(FeedbackError::BadSize(0))
        ));
    }
}
