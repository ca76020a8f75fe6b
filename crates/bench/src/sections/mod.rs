//! The benchmark's sections. Each measures one thing and returns plain figures (medians over
//! `repeats` after one warm-up unless it says otherwise), then renders them: its rows of the
//! side-by-side table (where ratios against the reference are made) and its details.

pub mod decode;
pub mod eval_gen;
pub mod load;
pub mod matmul;
pub mod train;
pub mod train_rows;
