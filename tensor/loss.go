package tensor

import (
	"fmt"
)

// Losses.

// MSELoss returns mean((pred - target)^2) over all elements as a
// 0-dimensional tensor (torch.nn.functional.mse_loss with reduction
// "mean"), differentiable through pred and target.
func MSELoss(pred, target *Tensor) *Tensor {
	if !pred.shape.Equal(target.shape) {
		panic(fmt.Sprintf("tensor: MSELoss: pred %v and target %v differ in shape", pred.shape, target.shape))
	}
	d := pred.Sub(target)
	sq := d.Square()
	d.Release()
	loss := sq.MeanAll()
	sq.Release()
	return loss
}
