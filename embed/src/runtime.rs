//! The provisioned embedding runtime: where `scripts/setup` put the ONNX
//! Runtime library and the model, and whether those files are the pinned
//! ones. Everything here runs before fastembed is touched, because fastembed
//! (through ort) panics on a missing or wrong library.

use std::fmt;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest as _, Sha256};

/// The pinned sha256 of every runtime file, as `sha256sum` lines relative to
/// the runtime directory. The same file is what `scripts/setup` checks.
pub const PINS: &str = include_str!("../runtime.sha256");

/// The command that creates or repairs the runtime.
pub const SETUP_COMMAND: &str = "scripts/setup";

/// Environment variable naming the runtime directory (or its runtime.json).
pub const RUNTIME_ENV: &str = "SHELF_RUNTIME";

/// Relative path of the runtime directory inside a checkout.
pub const DEFAULT_RUNTIME_DIR: &str = ".runtime";

/// The provisioned fp32 model, a model directory (with its
/// `shelf-model.toml`) inside the runtime directory: `--model` selects it.
pub const FP32_MODEL_DIR: &str = "model-fp32";

/// Why the runtime cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// No runtime.json anywhere shelf looks.
    #[error(
        "no embedding runtime found (looked for {}); run `{SETUP_COMMAND}` in the shelf checkout, \
         or set {RUNTIME_ENV} to the runtime directory it created",
        searched.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    NotFound {
        /// Every runtime.json path tried.
        searched: Vec<PathBuf>,
    },
    /// runtime.json exists but cannot be read.
    #[error("cannot read {}: {detail}; re-run `{SETUP_COMMAND}`", path.display())]
    Unreadable {
        /// The runtime.json path.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// A pinned file is missing.
    #[error("{what} is missing: {} does not exist; run `{SETUP_COMMAND}` to provision it", path.display())]
    MissingFile {
        /// What the file is.
        what: &'static str,
        /// Where it should be.
        path: PathBuf,
    },
    /// A pinned file has other contents than the pin.
    #[error(
        "{what} at {} is not the pinned file (sha256 {actual}, expected {expected}); \
         run `{SETUP_COMMAND} --force` to re-provision it",
        path.display()
    )]
    WrongFile {
        /// What the file is.
        what: &'static str,
        /// Where it is.
        path: PathBuf,
        /// The pinned sha256.
        expected: String,
        /// The file's sha256.
        actual: String,
    },
}

/// One pinned runtime file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    /// Path relative to the runtime directory.
    pub relative: &'static str,
    /// Expected sha256, lowercase hex.
    pub sha256: &'static str,
}

impl Pin {
    /// A short description of the file, for messages.
    pub fn what(&self) -> &'static str {
        if self.relative.starts_with("lib/libonnxruntime") {
            "ONNX Runtime library"
        } else if self.relative.ends_with(".onnx") {
            "ONNX model"
        } else {
            "tokenizer/model config file"
        }
    }
}

/// The pins compiled in from `runtime.sha256`.
pub fn pins() -> Vec<Pin> {
    PINS.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let (sha, rel) = l.split_once("  ")?;
            Some(Pin {
                relative: rel.trim(),
                sha256: sha.trim(),
            })
        })
        .collect()
}

/// The sha256 pinned for `relative`, as raw bytes.
pub fn pinned_sha256(relative: &str) -> Option<[u8; 32]> {
    let pin = pins().into_iter().find(|p| p.relative == relative)?;
    let mut out = [0u8; 32];
    hex::decode_to_slice(pin.sha256, &mut out).ok()?;
    Some(out)
}

#[derive(Deserialize)]
struct RuntimeJson {
    runtime_format: u32,
    onnxruntime_library: String,
    model_dir: String,
    reference_embeddings: Option<String>,
}

/// A located runtime directory (not yet verified).
#[derive(Debug, Clone)]
pub struct Runtime {
    /// The runtime directory.
    pub dir: PathBuf,
    /// The ONNX Runtime shared library.
    pub onnxruntime_library: PathBuf,
    /// Directory with model.onnx and the tokenizer files.
    pub model_dir: PathBuf,
    /// Reference embeddings written by the converter (tests use them).
    pub reference_embeddings: Option<PathBuf>,
}

/// The result of checking one pinned file.
#[derive(Debug)]
pub struct FileCheck {
    /// The pin checked.
    pub pin: Pin,
    /// Its absolute path.
    pub path: PathBuf,
    /// `Ok` or why not.
    pub result: Result<(), RuntimeError>,
}

impl fmt::Display for FileCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.result {
            Ok(()) => write!(f, "ok    {} ({})", self.path.display(), self.pin.what()),
            Err(e) => write!(f, "FAIL  {e}"),
        }
    }
}

impl Runtime {
    /// Finds the runtime: `explicit` (a directory or its runtime.json), else
    /// `$SHELF_RUNTIME`, else `.runtime/runtime.json` in the current directory
    /// or any parent, else next to the running executable or any parent of it
    /// (so `target/debug/shelf` finds the checkout's runtime).
    pub fn locate(explicit: Option<&Path>) -> Result<Runtime, RuntimeError> {
        let mut searched = Vec::new();
        let given = explicit
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os(RUNTIME_ENV).map(PathBuf::from));
        if let Some(given) = given {
            let json = if given.is_dir() || given.extension().is_none_or(|e| e != "json") {
                given.join("runtime.json")
            } else {
                given
            };
            if json.is_file() {
                return Self::from_json(&json);
            }
            return Err(RuntimeError::NotFound {
                searched: vec![json],
            });
        }
        let mut roots = Vec::new();
        if let Ok(cwd) = std::env::current_dir() {
            roots.push(cwd);
        }
        if let Some(exe_dir) = std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
        {
            roots.push(exe_dir);
        }
        for root in roots {
            for dir in root.ancestors() {
                let json = dir.join(DEFAULT_RUNTIME_DIR).join("runtime.json");
                if json.is_file() {
                    return Self::from_json(&json);
                }
                if !searched.contains(&json) && searched.len() < 6 {
                    searched.push(json);
                }
            }
        }
        Err(RuntimeError::NotFound { searched })
    }

    fn from_json(path: &Path) -> Result<Runtime, RuntimeError> {
        let unreadable = |detail: String| RuntimeError::Unreadable {
            path: path.to_path_buf(),
            detail,
        };
        let bytes = std::fs::read(path).map_err(|e| unreadable(e.to_string()))?;
        let json: RuntimeJson =
            serde_json::from_slice(&bytes).map_err(|e| unreadable(e.to_string()))?;
        if json.runtime_format != 1 {
            return Err(unreadable(format!(
                "runtime_format {} is not 1",
                json.runtime_format
            )));
        }
        let dir = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        Ok(Runtime {
            onnxruntime_library: dir.join(json.onnxruntime_library),
            model_dir: dir.join(json.model_dir),
            reference_embeddings: json.reference_embeddings.map(|r| dir.join(r)),
            dir,
        })
    }

    /// Checks every pinned file: present, and with the pinned sha256.
    pub fn check(&self) -> Vec<FileCheck> {
        pins()
            .into_iter()
            .map(|pin| {
                let path = self.dir.join(pin.relative);
                let result = check_file(&pin, &path);
                FileCheck { pin, path, result }
            })
            .collect()
    }

    /// The provisioned fp32 model's directory, to pass as `--model`.
    pub fn fp32_model_dir(&self) -> PathBuf {
        self.dir.join(FP32_MODEL_DIR)
    }

    /// Like [`Runtime::check`], stopping at the first problem.
    pub fn verify(&self) -> Result<(), RuntimeError> {
        for pin in pins() {
            check_file(&pin, &self.dir.join(pin.relative))?;
        }
        Ok(())
    }
}

fn check_file(pin: &Pin, path: &Path) -> Result<(), RuntimeError> {
    let missing = || RuntimeError::MissingFile {
        what: pin.what(),
        path: path.to_path_buf(),
    };
    let mut file = File::open(path).map_err(|_| missing())?;
    let actual = sha256_of(&mut file).map_err(|_| missing())?;
    if actual != pin.sha256 {
        return Err(RuntimeError::WrongFile {
            what: pin.what(),
            path: path.to_path_buf(),
            expected: pin.sha256.to_string(),
            actual,
        });
    }
    Ok(())
}

fn sha256_of(file: &mut File) -> io::Result<String> {
    struct HashWriter(Sha256);
    impl io::Write for HashWriter {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.update(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let mut h = HashWriter(Sha256::new());
    io::copy(file, &mut h)?;
    Ok(hex::encode(h.0.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_cover_library_model_and_tokenizer() {
        let pins = pins();
        assert_eq!(pins.len(), 12, "{pins:?}");
        assert!(pins.iter().all(|p| p.sha256.len() == 64));
        assert!(pinned_sha256("model/model.onnx").is_some());
        assert!(pinned_sha256("model/tokenizer.json").is_some());
        let fp32 = format!("{FP32_MODEL_DIR}/model.onnx");
        assert!(pinned_sha256(&fp32).is_some());
        assert_ne!(
            pinned_sha256(&fp32),
            pinned_sha256("model/model.onnx"),
            "the default and the fp32 model are different files"
        );
        assert!(pinned_sha256(&format!("{FP32_MODEL_DIR}/shelf-model.toml")).is_some());
        assert!(pins.iter().any(|p| p.what() == "ONNX Runtime library"));
    }

    #[test]
    fn missing_runtime_names_setup_command_and_where_it_looked() {
        let t = std::env::temp_dir().join("shelf-no-runtime-here");
        let err = Runtime::locate(Some(&t)).unwrap_err().to_string();
        assert!(
            err.contains("scripts/setup") && err.contains("shelf-no-runtime-here"),
            "{err}"
        );
    }
}
