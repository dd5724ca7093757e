package optim

import "fmt"

// Accumulator counts micro-batches for gradient accumulation the way
// diffusers 0.16.1's scripts do it through accelerate
// (--gradient_accumulation_steps k, `with accelerator.accumulate(unet)`):
//
//   - each micro-batch's loss is divided by k before Backward
//     (accelerator.backward), so the gradients, summed over the k
//     micro-batches, are their mean. With roentgo: scale the loss by
//     LossScale(), or Backward the plain loss and collect with
//     ps.CollectGrads(acc.LossScale()) — the same up to float32 rounding
//     (torch scales the gradient at the loss, this after Backward).
//   - clipping, the optimiser step, the schedule step and zero_grad happen
//     only on the k-th micro-batch (accelerator.sync_gradients), which Next
//     reports; the scripts' global_step, the schedule's step and the EMA's
//     step count optimiser steps, not micro-batches.
//   - the scripts build the schedule with num_warmup_steps =
//     lr_warmup_steps·k and num_training_steps = max_train_steps·k, but
//     accelerate steps it once per optimiser step; to reproduce a run, pass
//     those products to NewSchedule and call LR with the optimiser step.
//   - the logged train_loss is the sum over the micro-batches of loss/k.
type Accumulator struct {
	steps int
	micro int
}

// NewAccumulator returns an Accumulator over steps micro-batches per
// optimiser step (>= 1; 1 means no accumulation).
func NewAccumulator(steps int) (*Accumulator, error) {
	if steps < 1 {
		return nil, fmt.Errorf("optim: gradient accumulation over %d micro-batches, want >= 1", steps)
	}
	return &Accumulator{steps: steps}, nil
}

// Steps returns the number of micro-batches per optimiser step.
func (a *Accumulator) Steps() int { return a.steps }

// LossScale returns float32(1/steps), the factor of each micro-batch's
// loss (accelerate divides the float32 loss by k, which can differ from
// multiplying by the rounded reciprocal in the last bit).
func (a *Accumulator) LossScale() float32 { return float32(1 / float64(a.steps)) }

// Next records that a micro-batch's gradients were accumulated and reports
// whether it completed an optimiser step (then clip, step, zero the
// gradients).
func (a *Accumulator) Next() (sync bool) {
	a.micro++
	if a.micro == a.steps {
		a.micro = 0
		return true
	}
	return false
}

// Pending returns the number of micro-batches accumulated since the last
// completed step (0 after a step).
func (a *Accumulator) Pending() int { return a.micro }
