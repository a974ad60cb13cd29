//! Loop semantics with a pure-Rust model: step counts, accumulation, skipping, limits, errors.

use super::*;
use crate::cancel::Never;
use tch::{Kind, Tensor};

/// y = 3x regression with a single weight, plain SGD; batches are a fixed list.
struct Regression {
    weight: Vec<Tensor>,
    batches: Vec<Option<f32>>,
    cursor: usize,
    lr: f64,
    log: Vec<String>,
}

impl Regression {
    fn new(batches: Vec<Option<f32>>) -> Self {
        Self {
            weight: vec![
                Tensor::zeros([1], (Kind::Float, tch::Device::Cpu)).set_requires_grad(true)
            ],
            batches,
            cursor: 0,
            lr: 0.1,
            log: Vec::new(),
        }
    }
}

impl FitHooks for Regression {
    fn parameters(&self) -> &[Tensor] {
        &self.weight
    }

    fn start_epoch(&mut self, state: &FitState) -> Result<Control> {
        self.cursor = 0;
        self.log.push(format!("epoch{}", state.epoch));
        Ok(Control::Continue)
    }

    fn forward(&mut self, _state: &FitState) -> Result<ForwardOutcome> {
        let Some(item) = self.batches.get(self.cursor) else {
            return Ok(ForwardOutcome::EndOfEpoch);
        };
        self.cursor += 1;
        Ok(match item {
            None => ForwardOutcome::Skip,
            Some(x) => {
                let x = Tensor::from_slice(&[*x]);
                let err = &self.weight[0] * &x - &x * 3.0;
                ForwardOutcome::Loss((&err * &err).sum(Kind::Float))
            }
        })
    }

    fn optimizer_step(&mut self, state: &FitState, grad_norm: Option<f64>) -> Result<()> {
        tch::no_grad(|| {
            let mut w = self.weight[0].shallow_clone();
            let update = w.grad() * self.lr;
            let _ = w.f_sub_(&update)?;
            let _ = w.grad().f_zero_()?;
            Ok::<_, CoreError>(())
        })?;
        self.log.push(format!(
            "step{}{}",
            state.global_step,
            if grad_norm.is_some() { "c" } else { "" }
        ));
        Ok(())
    }

    fn end_batch(
        &mut self,
        state: &FitState,
        loss: Option<&Tensor>,
        stepped: bool,
    ) -> Result<Control> {
        let tag = if loss.is_some() { "b" } else { "s" };
        self.log.push(format!(
            "{tag}{}{}",
            state.batch_idx,
            if stepped { "!" } else { "" }
        ));
        Ok(Control::Continue)
    }

    fn end_epoch(&mut self, state: &FitState) -> Result<Control> {
        self.log.push(format!("end{}", state.epoch));
        Ok(Control::Continue)
    }
}

fn config() -> FitConfig {
    FitConfig {
        max_steps: None,
        max_epochs: Some(1),
        accumulate_grad_batches: 1,
        gradient_clip: None,
        limit_train_batches: None,
        batches_per_epoch: None,
        check_finite_loss: true,
        before_optimizer_step_hook: false,
        after_backward_hook: false,
        scale_loss: false,
    }
}

#[test]
fn one_step_per_batch_and_training_converges() {
    let mut hooks = Regression::new(vec![Some(1.0); 4]);
    let mut state = FitState::default();
    let cfg = FitConfig {
        max_epochs: Some(10),
        ..config()
    };
    fit(&cfg, &mut state, &mut hooks, &Never).unwrap();
    assert_eq!(state.global_step, 40);
    assert_eq!(state.epoch, 10);
    let w = hooks.weight[0].double_value(&[0]);
    assert!((w - 3.0).abs() < 1e-3, "weight {w}");
}

#[test]
fn accumulation_steps_every_n_batches_and_at_epoch_end() {
    let mut hooks = Regression::new(vec![Some(1.0); 5]);
    let mut state = FitState::default();
    let cfg = FitConfig {
        accumulate_grad_batches: 2,
        ..config()
    };
    fit(&cfg, &mut state, &mut hooks, &Never).unwrap();
    assert_eq!(
        hooks.log,
        ["epoch0", "b0", "step1", "b1!", "b2", "step2", "b3!", "b4", "step3", "end0"]
    );
    assert_eq!(state.global_step, 3);
}

#[test]
fn known_epoch_length_steps_the_remainder_on_the_last_batch() {
    let mut hooks = Regression::new(vec![Some(1.0); 5]);
    let mut state = FitState::default();
    let cfg = FitConfig {
        accumulate_grad_batches: 2,
        batches_per_epoch: Some(5),
        ..config()
    };
    fit(&cfg, &mut state, &mut hooks, &Never).unwrap();
    assert_eq!(
        hooks.log,
        ["epoch0", "b0", "step1", "b1!", "b2", "step2", "b3!", "step3", "b4!", "end0"]
    );
}

#[test]
fn skipped_batches_do_not_step() {
    let mut hooks = Regression::new(vec![Some(1.0), None, Some(1.0)]);
    let mut state = FitState::default();
    fit(&config(), &mut state, &mut hooks, &Never).unwrap();
    assert_eq!(
        hooks.log,
        ["epoch0", "step1", "b0!", "s1", "step2", "b2!", "end0"]
    );
}

#[test]
fn max_steps_and_limit_train_batches_stop_the_run() {
    let mut hooks = Regression::new(vec![Some(1.0); 10]);
    let mut state = FitState::default();
    let cfg = FitConfig {
        max_steps: Some(7),
        max_epochs: None,
        limit_train_batches: Some(3),
        ..config()
    };
    fit(&cfg, &mut state, &mut hooks, &Never).unwrap();
    assert_eq!(state.global_step, 7);
    assert_eq!(state.epoch, 2);
    assert_eq!(state.batch_idx, 1);
}

#[test]
fn clipping_reports_the_norm() {
    let mut hooks = Regression::new(vec![Some(10.0)]);
    let mut state = FitState::default();
    let cfg = FitConfig {
        gradient_clip: Some((1.0, ClipAlgorithm::Norm)),
        ..config()
    };
    fit(&cfg, &mut state, &mut hooks, &Never).unwrap();
    assert!(hooks.log.contains(&"step1c".to_string()));
    // d/dw (w*10 - 30)^2 at w=0 is -600; clipped to norm 1, SGD 0.1 moves w by 0.1.
    let w = hooks.weight[0].double_value(&[0]);
    assert!((w - 0.1).abs() < 1e-5, "weight {w}");
}

#[test]
fn nonfinite_loss_names_the_step() {
    let mut hooks = Regression::new(vec![Some(1.0), Some(f32::NAN)]);
    let mut state = FitState::default();
    let err = fit(&config(), &mut state, &mut hooks, &Never).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("loss is NaN at global step 1 (epoch 0, batch 1)"),
        "{text}"
    );
}

#[test]
fn missing_limits_are_rejected() {
    let mut hooks = Regression::new(vec![Some(1.0)]);
    let cfg = FitConfig {
        max_epochs: None,
        ..config()
    };
    let err = fit(&cfg, &mut FitState::default(), &mut hooks, &Never).unwrap_err();
    assert!(err.to_string().contains("set max_steps or max_epochs"));
}

#[test]
fn interrupt_stops_between_batches() {
    let mut hooks = Regression::new(vec![Some(1.0); 100]);
    let calls = std::sync::atomic::AtomicUsize::new(0);
    let stop_after_five = || calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) >= 5;
    let err = fit(
        &config(),
        &mut FitState::default(),
        &mut hooks,
        &stop_after_five,
    )
    .unwrap_err();
    assert!(matches!(err, CoreError::Interrupted));
}
