//! Second-order autodiff switch.
//!
//! Candle detaches every gradient it computes unless the environment variable
//! `CANDLE_GRAD_DO_NOT_DETACH` is set, and it reads that variable once per thread, on the thread's
//! first backward pass. Without it the synthetic-image gradient of a matching loss is silently wrong
//! (measured relative error 1.2-2.0), so every entry point calls [`enable`] first; it sets the variable
//! and then proves on a tiny problem that a second-order gradient really flows on this thread.

use candle_core::{Device, Result, Tensor, Var};

const VAR: &str = "CANDLE_GRAD_DO_NOT_DETACH";

/// Turns second-order gradients on for this process and checks that they work on this thread.
/// Call it at the start of `main` (before spawning threads) and at the start of any thread or test
/// that back-propagates through a gradient.
pub fn enable() -> Result<()> {
    // Edition 2021: `set_var` is safe; we call it before any backward pass on this thread.
    std::env::set_var(VAR, "1");
    check()
}

/// Fails loudly unless a gradient of a gradient is correct on the current thread.
///
/// Probe: y = sum((w*x)^2), g = dy/dw = 2 w x^2, L = sum(g), dL/dx = 4 w x.
pub fn check() -> Result<()> {
    let dev = Device::Cpu;
    let x = Var::new(&[1.5f64, -2.0], &dev)?;
    let w = Var::new(&[0.5f64, 3.0], &dev)?;
    let y = w.as_tensor().mul(x.as_tensor())?.sqr()?.sum_all()?;
    let g = y.backward()?.remove(w.as_tensor()).expect("probe: w takes part in y");
    let expected: Vec<f64> = vec![4.0 * 0.5 * 1.5, 4.0 * 3.0 * -2.0];
    let got = match g.sum_all()?.backward()?.remove(x.as_tensor()) {
        Some(t) => t.to_vec1::<f64>()?,
        None => vec![0.0; 2],
    };
    let ok = got.iter().zip(&expected).all(|(a, b)| (a - b).abs() < 1e-9);
    if !ok {
        candle_core::bail!(
            "second-order gradients do not flow on this thread (got {got:?}, expected {expected:?}). \
             Candle reads {VAR} once per thread, at its first backward pass: call \
             gradmatch_core::second_order::enable() before any backward pass on this thread, or \
             start the process with {VAR}=1"
        )
    }
    Ok(())
}

/// Constant copies of gradients: drops the graph the second-order switch keeps alive.
pub fn detach_all(grads: Vec<Tensor>) -> Vec<Tensor> {
    grads.into_iter().map(|g| g.detach()).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn check_fails_on_a_thread_that_backpropagated_before_enable() {
        // A fresh thread whose first backward runs with the variable unset caches "detach".
        let result = std::thread::spawn(|| {
            std::env::remove_var(super::VAR);
            super::check()
        })
        .join()
        .unwrap();
        // Another test may have set the variable process-wide in between; only assert when it was unset.
        if std::env::var(super::VAR).is_err() {
            let err = result.unwrap_err().to_string();
            assert!(err.contains("second-order gradients do not flow"), "{err}");
        }
        // And enabling on a new thread always works.
        std::thread::spawn(super::enable).join().unwrap().unwrap();
    }
}
