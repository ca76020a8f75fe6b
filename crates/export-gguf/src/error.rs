//! The crate's error type: `qwen-lora`'s, whose messages name the file, tensor or flag involved.

use std::path::Path;

pub use qwen_lora::{Error, Result};

pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::io(path, source)
}
