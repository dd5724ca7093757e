package tensor

import (
	"github.com/roentgo/roentgo/kernels"
	"github.com/roentgo/roentgo/kernels/cpu"
)

// The null device's training kernels (see nullDevice): they do nothing either.

type nb = *nullBuf

func (d *nullDevice) Conv2dBackwardData(cpu.ConvParams, nb, kernels.DeviceMat[nb], nb) error {
	return d.k()
}
func (d *nullDevice) Conv2dBackwardWeight(cpu.ConvParams, nb, nb, nb) error { return d.k() }
func (d *nullDevice) Conv2dBackwardBias(cpu.ConvParams, nb, nb) error       { return d.k() }
func (d *nullDevice) AttentionWithLSE(cpu.AttnParams, nb, nb, nb, nb, nb) error {
	return d.k()
}
func (d *nullDevice) AttentionBackward(cpu.AttnParams, nb, nb, nb, nb, nb, nb, nb, nb, nb) error {
	return d.k()
}
func (d *nullDevice) GroupNormSave(nb, nb, int, int, int, int, float32, nb, nb, bool, nb, nb) error {
	return d.k()
}
func (d *nullDevice) GroupNormBackward(nb, nb, nb, int, int, int, int, nb, nb, nb, nb, bool, nb, nb) error {
	return d.k()
}
func (d *nullDevice) LayerNormSave(nb, nb, int, int, float32, nb, nb, nb, nb) error { return d.k() }
func (d *nullDevice) LayerNormBackward(nb, nb, nb, int, int, nb, nb, nb, nb, nb) error {
	return d.k()
}
func (d *nullDevice) SoftmaxBackward(nb, nb, nb, int, int) error                  { return d.k() }
func (d *nullDevice) ActivateBackward(cpu.Activation, nb, nb, nb, int) error      { return d.k() }
func (d *nullDevice) GEGLUBackward(nb, nb, nb, int, int) error                    { return d.k() }
func (d *nullDevice) Upsample2xBackward(nb, nb, int, int, int) error              { return d.k() }
func (d *nullDevice) EmbeddingBackward([]int64, nb, int, int, nb) error           { return d.k() }
func (d *nullDevice) EmbeddingBackwardSparse([]int64, nb, int, []int64, nb) error { return d.k() }
