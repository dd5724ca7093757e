package lora_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/roentgo/roentgo/nn"
	"github.com/roentgo/roentgo/nn/lora"
	"github.com/roentgo/roentgo/nn/optim"
	"github.com/roentgo/roentgo/tensor"
	"github.com/roentgo/roentgo/tensor/rng"
)

// A LoRA training step on a model built from nn layers (a *unet.Model or
// *clip.TextModel works the same way), and the result saved for
// AUTOMATIC1111 / ComfyUI.
func Example() {
	b := nn.NewRandomBuilder(1, tensor.F32)
	model := &struct{ Q, K *nn.Linear }{
		Q: nn.NewLinear(b.Path("mid_block.attentions.0.transformer_blocks.0.attn1.to_q"), 8, 8, false),
		K: nn.NewLinear(b.Path("mid_block.attentions.0.transformer_blocks.0.attn1.to_k"), 8, 8, false),
	}
	net, err := lora.Attach(model, lora.Config{Rank: 4, Alpha: 4, Seed: 0})
	if err != nil {
		panic(err)
	}
	train, _ := net.Trainable() // the factors; the model's weights stay frozen
	ps, _ := net.ParamSet()
	opt, _ := optim.NewAdamW(train, optim.DefaultAdamW())

	x := tensor.Randn(rng.New(2), 3, 8)
	loss := model.Q.Forward(x).Add(model.K.Forward(x)).Square().MeanAll()
	if err := tensor.Backward(loss); err != nil {
		panic(err)
	}
	_ = ps.CollectGrads(1)
	_ = opt.Step(1e-3)
	ps.ZeroGrad()

	dir, _ := os.MkdirTemp("", "lora")
	defer os.RemoveAll(dir)
	_ = net.Save(filepath.Join(dir, "my_lora.safetensors"), lora.LayoutKohya, nil)
	fmt.Println(len(train), "parameters, e.g.", train[0].Name)
	// Output: 4 parameters, e.g. mid_block.attentions.0.transformer_blocks.0.attn1.processor.to_q_lora.down.weight
}
