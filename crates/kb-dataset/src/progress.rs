//! The workspace's one progress bar: drawn on stderr (results stay on stdout) and hidden when
//! stderr is not a terminal, so logs and pipes stay clean. It lives here, in the lowest crate,
//! because both the binaries' shared code and the trainer draw one.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A progress bar of `len` steps labelled `prefix`, with `set_message` for extra figures;
/// hidden when stderr is not a terminal.
pub fn progress_bar(len: u64, prefix: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    if !std::io::stderr().is_terminal() {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    let style = ProgressStyle::with_template("{prefix} [{elapsed_precise}] {wide_bar} {pos}/{len} ETA {eta} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_prefix(prefix.to_string());
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bar_counts_and_is_hidden_off_a_terminal() {
        let bar = progress_bar(10, "answering");
        bar.inc(3);
        assert_eq!((bar.position(), bar.length()), (3, Some(10)));
        assert_eq!(bar.prefix(), "answering");
        // Tests run with stderr captured or piped, never a terminal.
        if !std::io::stderr().is_terminal() {
            assert!(bar.is_hidden());
        }
    }
}
