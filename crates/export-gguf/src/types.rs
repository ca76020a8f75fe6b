//! Which ggml type each written tensor gets, and the fallback when a type's blocks do not fit.

use candle_core::quantized::GgmlDType;

/// The type the merged (or converted) weight matrices are stored as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutType {
    /// The base tensor's own type (merged GGUF); f32 for --lora-only.
    Same,
    /// 8-bit blocks of 32 values with one f16 scale (rows must be a multiple of 32).
    #[value(name = "q8_0")]
    Q8_0,
    /// Half precision.
    F16,
    /// Single precision.
    F32,
}

impl OutType {
    /// The ggml type for a tensor stored as `original` in the base (`None` for an HF base).
    pub fn ggml(self, original: Option<GgmlDType>) -> Option<GgmlDType> {
        match self {
            OutType::Same => original,
            OutType::Q8_0 => Some(GgmlDType::Q8_0),
            OutType::F16 => Some(GgmlDType::F16),
            OutType::F32 => Some(GgmlDType::F32),
        }
    }

    /// The adapter tensors' type for `--lora-only` with `--type t` (f32 when not given).
    pub fn for_lora_only(t: Option<OutType>) -> GgmlDType {
        match t {
            None | Some(OutType::Same | OutType::F32) => GgmlDType::F32,
            Some(OutType::F16) => GgmlDType::F16,
            Some(OutType::Q8_0) => GgmlDType::Q8_0,
        }
    }

    /// The weight matrices' type converting an HF base with `--type t` (f16 when not given);
    /// `None` for `same`, which only a GGUF base has.
    pub fn for_hf(t: Option<OutType>) -> Option<GgmlDType> {
        match t {
            None | Some(OutType::F16) => Some(GgmlDType::F16),
            Some(OutType::Q8_0) => Some(GgmlDType::Q8_0),
            Some(OutType::F32) => Some(GgmlDType::F32),
            Some(OutType::Same) => None,
        }
    }
}

/// llama.cpp's name for a ggml type, for messages.
pub fn type_name(t: GgmlDType) -> &'static str {
    match t {
        GgmlDType::F32 => "F32",
        GgmlDType::F16 => "F16",
        GgmlDType::BF16 => "BF16",
        GgmlDType::Q4_0 => "Q4_0",
        GgmlDType::Q4_1 => "Q4_1",
        GgmlDType::Q5_0 => "Q5_0",
        GgmlDType::Q5_1 => "Q5_1",
        GgmlDType::Q8_0 => "Q8_0",
        GgmlDType::Q8_1 => "Q8_1",
        GgmlDType::Q2K => "Q2_K",
        GgmlDType::Q3K => "Q3_K",
        GgmlDType::Q4K => "Q4_K",
        GgmlDType::Q5K => "Q5_K",
        GgmlDType::Q6K => "Q6_K",
        GgmlDType::Q8K => "Q8_K",
    }
}

/// `general.file_type` (llama.cpp's `LLAMA_FTYPE_*`) of a file whose weight matrices are `t`.
pub fn file_type(t: GgmlDType) -> u32 {
    match t {
        GgmlDType::F32 => 0,
        GgmlDType::F16 => 1,
        GgmlDType::Q8_0 => 7,
        GgmlDType::BF16 => 32,
        // Not written by this tool as a whole-file type; "mostly Q8_0" is the closest claim.
        _ => 7,
    }
}

/// The type a tensor of `dims` (candle order, rows last) is written as when `want` is asked for:
/// `want` when its blocks tile each row, else F16 (block 1), with a note saying so.
pub fn fit(name: &str, dims: &[usize], want: GgmlDType) -> (GgmlDType, Option<String>) {
    let row = dims.last().copied().unwrap_or(1);
    let block = want.block_size();
    if row.is_multiple_of(block) {
        (want, None)
    } else {
        let note = format!(
            "{name}: rows of {row} values are not a multiple of {}'s block of {block}; written as F16 instead",
            type_name(want)
        );
        (GgmlDType::F16, Some(note))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_keeps_the_original_type() {
        assert_eq!(OutType::Same.ggml(Some(GgmlDType::Q5_0)), Some(GgmlDType::Q5_0));
        assert_eq!(OutType::Same.ggml(None), None);
        assert_eq!(OutType::Q8_0.ggml(Some(GgmlDType::Q5_0)), Some(GgmlDType::Q8_0));
    }

    #[test]
    fn types_that_do_not_tile_a_row_fall_back_to_f16_and_say_so() {
        assert_eq!(fit("w", &[8, 64], GgmlDType::Q8_0), (GgmlDType::Q8_0, None));
        let (t, note) = fit("blk.0.attn_q.weight", &[8, 48], GgmlDType::Q8_0);
        assert_eq!(t, GgmlDType::F16);
        let note = note.unwrap();
        assert!(note.contains("blk.0.attn_q.weight") && note.contains("48") && note.contains("Q8_0"), "{note}");
        // Qwen2.5-0.5B's hidden size 896 fits Q8_0 but not the 256-value K-quant blocks.
        assert_eq!(fit("w", &[896, 896], GgmlDType::Q8_0).0, GgmlDType::Q8_0);
        let (t, note) = fit("w", &[896, 896], GgmlDType::Q4K);
        assert_eq!(t, GgmlDType::F16);
        assert!(note.unwrap().contains("Q4_K's block of 256"));
        assert_eq!(fit("w", &[3, 5], GgmlDType::F32), (GgmlDType::F32, None));
    }

    #[test]
    fn clap_names_match_llama_cpp() {
        use clap::ValueEnum;
        let names: Vec<String> =
            OutType::value_variants().iter().map(|v| v.to_possible_value().unwrap().get_name().to_string()).collect();
        assert_eq!(names, ["same", "q8_0", "f16", "f32"]);
    }
}
