use candle_core::Result;

/// What a step strategy may do with the network between two matching steps.
pub trait InnerTrainer {
    /// One epoch of SGD on the synthetic set (shuffled, batch 256).
    fn train_epoch(&mut self) -> Result<()>;
    /// Mean cross-entropy of the network on a real validation batch fixed for this training phase.
    fn validation_loss(&mut self) -> Result<f64>;
}

/// Where in the condensation run the training phase happens.
#[derive(Debug, Clone, Copy)]
pub struct StepContext {
    /// Index of the matching step inside the current outer iteration (0-based).
    pub outer_step: usize,
    /// Matching steps per outer iteration (from the loops table).
    pub outer_loop: usize,
    /// Epochs per training phase from the loops table.
    pub inner_epochs: usize,
}

/// How long to train the network between matching steps. Returns the number of epochs it ran.
pub trait StepStrategy: Send + Sync {
    fn train(&self, ctx: &StepContext, trainer: &mut dyn InnerTrainer) -> Result<usize>;
}
