package tensor

import (
	"testing"

	"github.com/roentgo/roentgo/tensor/rng"
)

func TestRandnRandMatchTorch(t *testing.T) {
	// torch.randn(2, 3, generator=torch.Generator().manual_seed(0)) and
	// torch.rand(4, generator=...manual_seed(0)) printed by PyTorch 1.13.
	x := Randn(rng.New(0), 2, 3)
	requireShape(t, x, 2, 3)
	requireClose(t, "randn", x.Float32s(), []float32{1.5409960746765137, -0.293428897857666, -2.1787893772125244,
		0.5684312582015991, -1.0845223665237427, -1.3985954523086548}, 1e-6, 1e-6)
	u := Rand(rng.New(0), 4)
	requireClose(t, "rand", u.Float32s(), []float32{0.49625658988952637, 0.7682217955589294, 0.08847743272781372, 0.13203048706054688}, 1e-7, 1e-7)
}
