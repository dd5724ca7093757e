//go:build cuda

package tensor

import "github.com/roentgo/roentgo/kernels/cuda"

// The CUDA device: *cuda.Device is a kernels.Device[*cuda.Buffer], run by the
// accelerator backend. Built only with -tags cuda, so that the default build
// needs no CUDA. cuda.Open refuses GPUs older than compute capability 8.0.

func init() {
	openers[KindCUDA] = func(dev Device) (accelerator, error) {
		d, err := cuda.Open(dev.Index)
		if err != nil {
			return nil, err
		}
		return newAccelBackend[*cuda.Buffer](dev, d), nil
	}
}
