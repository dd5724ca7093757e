package pipeline

import (
	"fmt"
	"strings"

	"github.com/roentgo/roentgo/internal/errctx"
	"github.com/roentgo/roentgo/nn"
	"github.com/roentgo/roentgo/tensor"
)

// computeOption parses Options.Compute: F16 for "" on an accelerator.
func computeOption(s string) (tensor.DType, error) {
	switch strings.ToLower(s) {
	case "", "f16", "fp16", "float16":
		return tensor.F16, nil
	case "bf16", "bfloat16":
		return tensor.BF16, nil
	case "f32", "fp32", "float32":
		return tensor.F32, nil
	}
	return 0, fmt.Errorf("pipeline: compute dtype %q is not known; expected f16, bf16 or f32", s)
}

// ToDevice moves the pipeline's models to the device named dev ("cpu",
// "cuda", "cuda:N" or "sim"; see tensor.Open) computing in compute ("f16",
// "bf16", "f32"; "" is f16 on an accelerator). On the CPU, "bf16" makes the
// matrix products multiply in BF16 (process-wide, AVX512_BF16 only; see
// tensor.SetComputeDType) and anything else keeps F32.
// Generation then runs every model on that device; the scheduler's
// arithmetic on the latents stays on the host in F32, as do the random draws,
// so a seed gives the same initial noise on every device. A failure (no GPU,
// out of device memory) is returned as an error and leaves the pipeline
// unusable: Close it.
func (p *Pipeline) ToDevice(dev, compute string) error {
	d, err := tensor.ParseDevice(dev)
	if err != nil {
		return errctx.Wrap("pipeline", err)
	}
	cd, err := computeOption(compute)
	if err != nil {
		return err
	}
	if d == tensor.CPU {
		if p.Device != tensor.CPU {
			return fmt.Errorf("pipeline: the models are on %v; moving back to the CPU is not supported", p.Device)
		}
		if cd != tensor.BF16 {
			cd = tensor.F32
		}
		return errctx.Wrap("pipeline", tensor.SetComputeDType(tensor.CPU, cd))
	}
	if err := tensor.OpenDevice(d); err != nil {
		return errctx.Wrap("pipeline", err)
	}
	if err := tensor.SetComputeDType(d, cd); err != nil {
		return errctx.Wrap("pipeline", err)
	}
	for _, m := range []struct {
		name  string
		model any
	}{{"text encoder", p.TextEncoder}, {"unet", p.UNet}, {"vae", p.VAE}} {
		if err := nn.ToDevice(m.model, d); err != nil {
			return fmt.Errorf("pipeline: moving the %s to %v: %w", m.name, d, err)
		}
	}
	p.Device = d
	return nil
}

// toDevice returns a handle on t on the pipeline's device (t itself when it is
// there); release it.
func (p *Pipeline) toDevice(t *tensor.Tensor) *tensor.Tensor { return t.ToDevice(p.Device) }

// toHost takes t (a model output on any device) and returns it as an F32
// host tensor, releasing t.
func toHost(t *tensor.Tensor) *tensor.Tensor {
	if t.Device() == tensor.CPU && t.DType() == tensor.F32 {
		return t
	}
	h := t.ToDevice(tensor.CPU)
	t.Release()
	f := h.To(tensor.F32)
	h.Release()
	return f
}
