//! Gradient clipping over a parameter list, as `torch.nn.utils.clip_grad_{norm,value}_` do it.

use tch::Tensor;

use crate::error::{CoreError, Result};

/// How `gradient_clip_val` is applied (Lightning's `gradient_clip_algorithm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClipAlgorithm {
    /// Scale all gradients so their global L2 norm is at most the value.
    Norm,
    /// Clamp every gradient element into `[-value, value]`.
    Value,
}

impl std::str::FromStr for ClipAlgorithm {
    type Err = CoreError;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "norm" => Ok(Self::Norm),
            "value" => Ok(Self::Value),
            other => Err(CoreError::Train(format!(
                "gradient_clip_algorithm must be 'norm' or 'value', got '{other}'"
            ))),
        }
    }
}

fn defined_grads(params: &[Tensor]) -> Vec<Tensor> {
    params
        .iter()
        .map(Tensor::grad)
        .filter(Tensor::defined)
        .collect()
}

/// Scales gradients in place so that their global L2 norm is at most `max_norm`; returns the
/// norm before clipping. Parameters without a gradient are ignored.
pub fn clip_grad_norm(params: &[Tensor], max_norm: f64) -> Result<f64> {
    let grads = defined_grads(params);
    if grads.is_empty() {
        return Ok(0.0);
    }
    tch::no_grad(|| {
        let mut squares = Vec::with_capacity(grads.len());
        for g in &grads {
            let norm = g.f_norm()?.f_to_kind(tch::Kind::Double)?;
            squares.push(norm.f_square()?);
        }
        let total = Tensor::f_stack(&squares, 0)?
            .f_sum(tch::Kind::Double)?
            .f_sqrt()?;
        let total_norm = total.f_double_value(&[])?;
        // Same epsilon as torch so both clip identically.
        let coef = max_norm / (total_norm + 1e-6);
        if coef < 1.0 {
            for g in &grads {
                let mut g = g.shallow_clone();
                let _ = g.f_mul_scalar_(coef)?;
            }
        }
        Ok(total_norm)
    })
}

/// Clamps every gradient element into `[-value, value]` in place.
pub fn clip_grad_value(params: &[Tensor], value: f64) -> Result<()> {
    tch::no_grad(|| {
        for g in defined_grads(params) {
            let mut g = g;
            let _ = g.f_clamp_(-value, value)?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn param_with_grad(values: &[f32], grad: &[f32]) -> Tensor {
        let p = Tensor::from_slice(values).set_requires_grad(true);
        let g = Tensor::from_slice(grad);
        (&p * &g).sum(tch::Kind::Float).backward();
        p
    }

    #[test]
    fn norm_clipping_scales_to_max_norm() {
        let a = param_with_grad(&[1.0, 1.0], &[3.0, 0.0]);
        let b = param_with_grad(&[1.0], &[4.0]);
        let params = [a, b];
        let before = clip_grad_norm(&params, 1.0).unwrap();
        assert!((before - 5.0).abs() < 1e-9);
        let after = clip_grad_norm(&params, 100.0).unwrap();
        assert!((after - 1.0).abs() < 1e-5, "norm after clipping {after}");
    }

    #[test]
    fn value_clipping_clamps_elements() {
        let a = param_with_grad(&[1.0, 1.0, 1.0], &[3.0, -0.5, -7.0]);
        clip_grad_value(std::slice::from_ref(&a), 1.0).unwrap();
        let g: Vec<f32> = Vec::try_from(a.grad()).unwrap();
        assert_eq!(g, vec![1.0, -0.5, -1.0]);
    }

    #[test]
    fn unknown_algorithm_is_an_error() {
        let err = "l1".parse::<ClipAlgorithm>().unwrap_err();
        assert!(err.to_string().contains("'norm' or 'value'"));
    }
}
