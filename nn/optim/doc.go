// Package optim trains the parameters of an nn.ParamSet with PyTorch 1.13's
// optimisers and the training utilities of diffusers 0.16.1's example
// scripts, computed like them in F32 on the host, element by element:
//
//   - AdamW (torch.optim.AdamW: decoupled weight decay p *= 1 - lr*wd first,
//     bias corrections in float64, eps added after the corrected square root;
//     amsgrad off) and SGD (torch.optim.SGD: momentum, dampening, Nesterov,
//     L2 weight decay). Both update the parameters' F32 masters and write them
//     back into the models' tensors (nn.Trainable.SyncValue), skip parameters
//     without a gradient as torch does, and refuse non-finite gradients with a
//     *NonFiniteError naming the parameter, before changing anything.
//   - ClipGradNorm (torch.nn.utils.clip_grad_norm_), GradNorm, ScaleGrads.
//   - Schedule: diffusers' get_scheduler (constant, constant_with_warmup,
//     linear, cosine, cosine_with_restarts, polynomial) as a function of the
//     optimiser step, in float64.
//   - EMA: diffusers' EMAModel (decay warm-up rules, s -= (1-d)(s-p)).
//   - LossScaler: dynamic loss scaling for F16 training
//     (torch.cuda.amp.GradScaler: skip steps with non-finite gradients, back
//     off, grow every 2000 good steps).
//   - Accumulator: gradient accumulation as accelerate does it in the scripts.
//
// A training step of train_text_to_image.py reads:
//
//	train, _ := ps.Trainable()
//	opt, _ := optim.NewAdamW(train, optim.DefaultAdamW())
//	sched, _ := optim.NewSchedule(1e-4, optim.ScheduleConfig{Name: "constant"})
//	ema, _ := optim.NewEMA(train, optim.DefaultEMA())
//	for step := 0; step < steps; step++ {
//		// forward, loss, tensor.Backward(loss), ps.CollectGrads(1) ...
//		if _, err := optim.ClipGradNorm(train, 1.0); err != nil { ... }
//		if err := opt.Step(sched.LR(step)); err != nil { ... }
//		ps.ZeroGrad()
//		ema.Step()
//	}
//
// Row-sparse embedding gradients (nn.ParamSet.SetRowSparse) reach the
// optimisers as ordinary dense gradient buffers whose untouched rows are
// zero, so every optimiser and utility here treats them as torch treats the
// dense gradient of Embedding(sparse=False): AdamW decays and updates every
// row.
//
// Save and Load write and read the state (optimiser moments, EMA shadows) as
// safetensors files keyed by the parameters' diffusers names; loading checks
// every name and shape first and changes nothing when the file does not fit.
//
// The update loops are fused (one pass over parameter, gradient and state,
// no temporaries) and run on kernels/cpu's worker goroutines in chunks of
// 32768 elements, so many small tensors and a few large ones both spread
// over the threads. AdamW's loop has an AVX2/FMA version on amd64 (eight
// lanes); the pure-Go loop (other CPUs, -tags purego) emulates its fused
// multiply-adds in float64, which can differ in the last bit only in rare
// ties, and agrees with it bit for bit in the tests. The other loops are
// plain Go and bound by memory bandwidth. Parameters must not be part of a retained autograd graph
// when a step writes them: the optimisers write masters in place without
// tensor's version counters.
package optim
