package unet

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/roentgo/roentgo/internal/testutil"
	"github.com/roentgo/roentgo/nn"
	"github.com/roentgo/roentgo/tensor"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDeviceTrainStepGradients: the golden epsilon training step
// (tiny-sd1-train/unet_eps) run on the simulated accelerator — the model
// moved with nn.ToDevice, forward and Backward on the device — gives the
// CPU's gradients.
//
//   - F32 compute: every parameter's gradient within 1e-6 of its norm of the
//     CPU's (the device path runs the same kernels/cpu kernels, through the
//     device interface, with reductions and some sums in other orders) and
//     within the golden test's 1e-4 of diffusers'.
//   - BF16 and F16 compute (weights, activations and intermediate gradients
//     16-bit, parameter gradients F32): within 32 unit roundoffs of the
//     compute dtype (BF16 2^-8, F16 2^-11) of each gradient's norm of the
//     CPU's, i.e. 0.125 (BF16) and 0.0156 (F16); measured: 7.6 (BF16) and 9
//     (F16) unit roundoffs. The F16 run scales the loss by lossScaleF16 and
//     the gradients back, as mixed-precision training in F16 must.
//   - Parameters whose true gradient is zero (index.json) are compared
//     absolutely: |g| <= 1e-6 in F32, 0.02 unit roundoffs in 16-bit compute
//     (measured 0.006: 2.2e-5 in BF16, 3.2e-6 in F16).
//
// F32 compute reproduces the CPU's gradients bit for bit (measured).
// The gradients are F32 tensors on the device (tensor.Tensor.Grad).
func TestDeviceTrainStepGradients(t *testing.T) {
	dir := testutil.SharedDir(t, "golden/tiny-sd1-train/unet_eps")
	npy := func(f string) *tensor.Tensor { return testutil.ReadNpy(t, filepath.Join(dir, f)) }
	model := filepath.Join(goldenDir(t), "model", "diffusers", "unet")
	cfg, err := LoadConfig(filepath.Join(model, "config.json"))
	require.NoError(t, err)
	src, closer, err := nn.OpenComponent(model, false)
	require.NoError(t, err)
	defer closer.Close()
	x, ts, ehs, noise := npy("noisy_latents.npy"), npy("timesteps.npy").To(tensor.F32), npy("encoder_hidden_states.npy"), npy("noise.npy")

	// The CPU's gradients.
	m, b, err := nn.Build(src, cfg, tensor.F32, New)
	require.NoError(t, err)
	params := b.Params()
	for _, p := range params {
		p.Tensor.SetRequiresGrad(true).SetName(p.Name)
	}
	require.NoError(t, tensor.Backward(tensor.MSELoss(m.Forward(x, ts, ehs), noise)))
	cpuGrads := map[string][]float32{}
	for _, p := range params {
		require.NotNil(t, p.Tensor.Grad(), p.Name)
		cpuGrads[p.Name] = p.Tensor.Grad().Float32s()
	}
	goldenGrads, err := tensor.LoadSafetensors(filepath.Join(dir, "grads_unet.safetensors"))
	require.NoError(t, err)
	defer goldenGrads.Close()
	var index struct {
		Cases map[string]trainCase `json:"cases"`
	}
	data, err := os.ReadFile(filepath.Join(filepath.Dir(dir), "index.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(data, &index))
	zero := map[string]bool{}
	for _, n := range index.Cases["unet_eps"].ZeroTrueGradientParams {
		zero[n] = true
	}

	for i, dt := range []tensor.DType{tensor.F32, tensor.BF16, tensor.F16} {
		t.Run(dt.String(), func(t *testing.T) {
			dev, err := tensor.Open(fmt.Sprintf("sim:%d", 75+i))
			require.NoError(t, err)
			require.NoError(t, tensor.SetComputeDType(dev, dt))
			m, b, err := nn.Build(src, cfg, tensor.F32, New)
			require.NoError(t, err)
			onDev := moveParams(t, m, b.Params(), dev)
			on := func(h *tensor.Tensor) *tensor.Tensor { return h.ToDevice(dev) }
			pred := m.Forward(on(x), on(ts), on(ehs))
			require.Equal(t, dev, pred.Device())
			loss := tensor.MSELoss(pred, on(noise))
			scale := float32(1)
			if dt == tensor.F16 {
				scale = lossScaleF16
			}
			require.NoError(t, tensor.Backward(loss.MulScalar(scale)))

			tol := 1e-6
			if dt != tensor.F32 {
				tol = 32 * unitRoundoff(dt)
			}
			zeroTol := 1e-6
			if dt != tensor.F32 {
				zeroTol = 0.02 * unitRoundoff(dt)
			}
			worst, worstName, worstZero := 0.0, "", 0.0
			for name, p := range onDev {
				g := p.Grad()
				require.NotNil(t, g, "no gradient for %s", name)
				require.Equal(t, dev, g.Device(), name)
				require.Equal(t, tensor.F32, g.DType(), name)
				got := g.Float32s()
				for k := range got {
					got[k] /= scale
				}
				if zero[name] {
					// No true gradient: rounding noise, bounded absolutely.
					zmax := 0.0
					for _, v := range got {
						zmax = math.Max(zmax, math.Abs(float64(v)))
					}
					worstZero = math.Max(worstZero, zmax)
					assert.True(t, zmax <= zeroTol, "%s: the true gradient is zero: |g| up to %g (tolerance %g)", name, zmax, zeroTol)
					continue
				}
				rel := gradDiff(got, cpuGrads[name])

				if rel > worst {
					worst, worstName = rel, name
				}
				assert.True(t, rel <= tol, "%s: max difference from the CPU's gradient %g of its norm (tolerance %g)", name, rel, tol)
				if dt == tensor.F32 {
					want, err := goldenGrads.Get(name)
					require.NoError(t, err)
					testutil.RequireGradClose(t, name+" (golden)", got, want.Float32s(), false, 1e-4)
				}
			}
			t.Logf("%v: %d gradients; worst %s, %.3g of its norm (%.2f unit roundoffs of %v); parameters without a true gradient: |g| <= %.3g",
				dt, len(onDev), worstName, worst, worst/unitRoundoff(dt), dt, worstZero)
		})
	}
}

// lossScaleF16 multiplies the F16 run's loss (and so every gradient), as
// PyTorch's GradScaler does: without it the small gradients of the
// cross-attention's queries fall below F16's normal range (6.1e-5) and lose
// their precision (norm2's gradients then differ by up to 0.23 of their
// norms, 466 unit roundoffs; with the scale 1024, 9). 65536 overflows.
const lossScaleF16 = 1024

// moveParams moves model m to dev with nn.ToDevice and marks the moved
// parameters for autograd; it returns them by name. nn.Tensors lists a
// model's tensors in one order before and after the move (the models hold
// no maps), which pairs each host parameter with its device copy.
func moveParams(t *testing.T, m any, params []nn.Param, dev tensor.Device) map[string]*tensor.Tensor {
	t.Helper()
	name := map[*tensor.Tensor]string{}
	for _, p := range params {
		name[p.Tensor] = p.Name
	}
	before := nn.Tensors(m)
	var err error
	// Under NoGrad: host tensors that require a gradient (a Builder over the
	// same Source hands out the same tensors) would record the copies.
	tensor.NoGrad(func() { err = nn.ToDevice(m, dev) })
	require.NoError(t, err)
	after := nn.Tensors(m)
	require.Equal(t, len(before), len(after))
	out := map[string]*tensor.Tensor{}
	for i, h := range before {
		if n, ok := name[h]; ok {
			require.Equal(t, dev, after[i].Device(), n)
			out[n] = after[i].SetRequiresGrad(true).SetName(n)
		}
	}
	require.Len(t, out, len(params), "every parameter found in the model")
	return out
}

// gradDiff returns max |got - want| relative to want's norm (0 for a zero
// want equal to got).
func gradDiff(got, want []float32) float64 {
	var norm, diff float64
	for i := range want {
		norm += float64(want[i]) * float64(want[i])
		diff = math.Max(diff, math.Abs(float64(got[i])-float64(want[i])))
	}
	if diff == 0 {
		return 0
	}
	return diff / math.Sqrt(norm)
}

// unitRoundoff returns the unit roundoff of dt's significand.
func unitRoundoff(dt tensor.DType) float64 {
	switch dt {
	case tensor.F16:
		return math.Ldexp(1, -11)
	case tensor.BF16:
		return math.Ldexp(1, -8)
	}
	return math.Ldexp(1, -24)
}
