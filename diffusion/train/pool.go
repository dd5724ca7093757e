package train

import (
	"github.com/roentgo/roentgo/diffusion/pipeline"
	"github.com/roentgo/roentgo/tensor"
)

// The tensor package's buffer pool keeps at most 2 GiB of released buffers
// by default: enough for sampling, whose working set is small. A training
// step releases and reallocates its whole set of activations and gradients
// every step; beyond the limit they go to the garbage collector, whose heap
// then grows to about twice the live data and whose returned pages fault
// back in on every step. Measured on the SD1.5 U-Net step at 32x32 latents
// (unet BenchmarkTrainStep, 2 cores): 17.6 s/step and 18.7 GB peak with the
// default limit, 13.0 s/step and 13.7 GB with no limit, in the same run. So
// a Trainer raises the limit for its lifetime.

// raisePoolLimit raises the pool limit to half the memory available now
// (never lowering it) and returns the function that restores the old one.
func raisePoolLimit() (restore func()) {
	avail, ok := pipeline.AvailableMemory()
	if !ok {
		return func() {}
	}
	want := int64(avail / 2)
	if want <= 2<<30 { // the default; little memory to spare
		return func() {}
	}
	old := tensor.SetPoolLimit(want)
	if want < old { // someone set a higher limit: keep it (the pool was drained)
		tensor.SetPoolLimit(old)
	}
	return func() { tensor.SetPoolLimit(old) }
}
