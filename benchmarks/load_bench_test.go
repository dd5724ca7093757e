package benchmarks

import (
	"testing"

	"github.com/roentgo/roentgo/diffusion/pipeline"
	"github.com/roentgo/roentgo/tensor"
)

// BenchmarkLoadSD15F16 measures pipeline.Load of a diffusers folder holding the
// SD1.5 architecture with random F16 weights (about 2 GB of safetensors, written
// once to a temporary folder before the timer starts): memory-mapping and building
// the text encoder, U-Net and VAE. Pages are faulted in lazily by the first steps,
// so this is the cost before sampling can start, not the cost of reading 2 GB.
func BenchmarkLoadSD15F16(b *testing.B) {
	dir := b.TempDir() + "/sd15"
	if err := pipeline.WriteRandom(dir, "sd15", 1, tensor.F16); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p, err := pipeline.Load(dir, pipeline.Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		p.Close()
		b.StartTimer()
	}
}
