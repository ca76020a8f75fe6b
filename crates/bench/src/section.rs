//! The benchmark's sections, as named on the command line (`--only`), in report order.

/// One part of the benchmark, as named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Section {
    /// Matmul GFLOP/s on the model's projection shapes (f32, and bf16 where the CPU has it): the practical ceiling.
    Matmul,
    /// Base model load time.
    Load,
    /// Greedy decode tokens/s, batch 1 and batched.
    Decode,
    /// One LoRA forward+backward on a fixed batch, beside a plain forward.
    TrainStep,
    /// `--steps` optimizer steps of the real recipe, scaled to one and three epochs.
    TrainEpoch,
    /// The whole eval set's generation, batched, against per-prompt generation.
    EvalGen,
}

impl Section {
    pub const ALL: [Section; 6] =
        [Section::Matmul, Section::Load, Section::Decode, Section::TrainStep, Section::TrainEpoch, Section::EvalGen];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Section::Matmul => "matmul",
            Section::Load => "load",
            Section::Decode => "decode",
            Section::TrainStep => "train-step",
            Section::TrainEpoch => "train-epoch",
            Section::EvalGen => "eval-gen",
        }
    }
}
