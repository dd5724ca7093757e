package nn_test

import (
	"fmt"

	"github.com/roentgo/roentgo/nn"
	"github.com/roentgo/roentgo/tensor"
)

// A model is built from a Builder at its diffusers path; problems with the
// parameters (here a missing bias and a key the model does not use) are collected
// and reported once by Check.
func ExampleBuilder() {
	src := nn.MapSource{
		"time_embedding.linear_1.weight": tensor.Ones(tensor.F16, 8, 4),
		"time_embedding.linear_1.bias":   tensor.Zeros(tensor.F32, 8),
		"time_embedding.linear_2.weight": tensor.Ones(tensor.F32, 8, 8),
		"time_embedding.extra":           tensor.Zeros(tensor.F32, 1),
	}
	b := nn.NewBuilder(src)
	emb := nn.NewTimestepEmbedding(b.Sub("time_embedding"), 4, 8, 0)
	fmt.Println(b.Check())
	fmt.Println(emb.Linear1.Weight.DType(), "weight used as stored")

	// Random weights (PyTorch's default initialisation) for a benchmark.
	rb := nn.NewRandomBuilder(0, tensor.F32)
	blk := nn.NewResnetBlock2D(rb.Path("down_blocks", 0, "resnets", 0),
		nn.ResnetBlock2DConfig{In: 32, Out: 64, TembChannels: 16, Groups: 8})
	fmt.Println(rb.Check(), len(rb.Params()), rb.Params()[0].Name)
	y := blk.Forward(tensor.Zeros(tensor.F32, 1, 32, 4, 4), tensor.Zeros(tensor.F32, 1, 16))
	fmt.Println(y.Shape())
	// Output:
	// nn: parameters do not match the model: 1 missing, 0 other errors, 1 unused keys
	//   nn: time_embedding.linear_2.bias: missing (want shape [8])
	//   nn: time_embedding.extra: unused (in the source, not in the model)
	// F16 weight used as stored
	// <nil> 12 down_blocks.0.resnets.0.norm1.weight
	// [1, 64, 4, 4]
}
