package pipeline

import (
	"reflect"
	"runtime/debug"

	"github.com/roentgo/roentgo/nn"
	"github.com/roentgo/roentgo/tensor"
)

// dropResident removes the memory-mapped weights of model from the process's
// resident set until they are next used (see tensor.DropResident), unless the
// pipeline keeps its weights resident.
func (p *Pipeline) dropResident(model any) {
	if p.KeepWeightsResident || p.Device != tensor.CPU || model == nil || reflect.ValueOf(model).IsNil() {
		return
	}
	_ = tensor.DropResident(nn.Tensors(model)...) // a hint: failure changes nothing
}

// trimMemory hands the tensor pool's buffers and the Go heap's free memory back
// to the operating system between phases whose buffer sizes differ (the
// U-Net's activations are of no use to the VAE), unless the pipeline keeps its
// weights resident.
func (p *Pipeline) trimMemory() {
	if p.KeepWeightsResident {
		return
	}
	tensor.DrainPool()
	debug.FreeOSMemory()
}
