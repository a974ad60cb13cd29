//! Cooperative cancellation for long calls.
//!
//! Long loops call [`Interrupt::check`] at step boundaries. The Python bindings implement it by
//! briefly taking the GIL and running the interpreter's signal handlers, so Ctrl-C in a terminal
//! or a notebook stops the loop with `KeyboardInterrupt`.

use crate::error::CoreError;

/// Something that can ask a long-running loop to stop.
pub trait Interrupt: Sync {
    /// Returns `Err(CoreError::Interrupted)` when the loop should stop now.
    fn check(&self) -> Result<(), CoreError>;
}

/// Never interrupts: for Rust callers and tests.
#[derive(Debug, Default, Clone, Copy)]
pub struct Never;

impl Interrupt for Never {
    fn check(&self) -> Result<(), CoreError> {
        Ok(())
    }
}

impl<F> Interrupt for F
where
    F: Fn() -> bool + Sync,
{
    /// A closure returning `true` means "stop".
    fn check(&self) -> Result<(), CoreError> {
        if self() {
            Err(CoreError::Interrupted)
        } else {
            Ok(())
        }
    }
}

/// Busy loop for `duration`, checking `interrupt` every millisecond.
///
/// Used by the boundary tests (Ctrl-C reaches a Rust loop that holds no GIL) and as the
/// reference shape of every long loop in this crate.
pub fn spin_for(
    duration: std::time::Duration,
    interrupt: &dyn Interrupt,
) -> Result<u64, CoreError> {
    let start = std::time::Instant::now();
    let mut ticks = 0u64;
    while start.elapsed() < duration {
        interrupt.check()?;
        std::thread::sleep(std::time::Duration::from_millis(1));
        ticks += 1;
    }
    Ok(ticks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[test]
    fn closure_interrupts_loop() {
        let calls = AtomicUsize::new(0);
        let stop_after_three = || calls.fetch_add(1, Ordering::SeqCst) >= 3;
        let err = spin_for(Duration::from_secs(10), &stop_after_three).unwrap_err();
        assert!(matches!(err, CoreError::Interrupted));
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[test]
    fn never_runs_to_completion() {
        let ticks = spin_for(Duration::from_millis(5), &Never).unwrap();
        assert!(ticks >= 1);
    }
}
