package nn

import (
	"testing"

	"github.com/roentgo/roentgo/tensor"
	"github.com/stretchr/testify/require"
)

type leaf struct {
	W, B *tensor.Tensor
}

type model struct {
	In     *leaf
	Blocks []*leaf
	ByName map[string]*tensor.Tensor
	Any    any
	Nil    *leaf
	IDs    *tensor.Tensor
	hidden *tensor.Tensor
}

// Tensors finds the tensors behind exported pointers, slices, maps and
// interfaces once each, and skips nil and unexported fields.
func TestTensors(t *testing.T) {
	a, b, c, d := tensor.Scalar(1), tensor.Scalar(2), tensor.Scalar(3), tensor.Scalar(4)
	l := &leaf{W: a}
	m := &model{In: l, Blocks: []*leaf{l, {W: b, B: c}}, ByName: map[string]*tensor.Tensor{"d": d}, Any: &leaf{W: a}, hidden: tensor.Scalar(5)}
	require.ElementsMatch(t, []*tensor.Tensor{a, b, c, d}, Tensors(m))
}

// ToDevice moves every settable parameter, keeps shared tensors shared, gives
// vectors as F32 and matrices in the device's compute dtype, and leaves the
// values (as rounded to that dtype) and unexported fields alone.
func TestToDevice(t *testing.T) {
	dev, err := tensor.Open("sim:60")
	require.NoError(t, err)
	require.NoError(t, tensor.SetComputeDType(dev, tensor.BF16))
	w := tensor.FromFloat32([]float32{1, -2.5, 3, 0.1, 5, 6}, 2, 3)
	bias := tensor.FromFloat32([]float32{0.25, -1}).To(tensor.F16)
	ids := tensor.FromInt64([]int64{4, 5, 6})
	hidden := tensor.Scalar(7)
	shared := &leaf{W: w, B: bias}
	m := &model{In: shared, Blocks: []*leaf{shared, {W: w}}, IDs: ids, hidden: hidden}
	require.NoError(t, ToDevice(m, dev))

	require.Same(t, m.In, m.Blocks[0])
	require.Same(t, m.In.W, m.Blocks[1].W, "a tensor held twice is moved once")
	require.Equal(t, dev, m.In.W.Device())
	require.Equal(t, tensor.BF16, m.In.W.DType())
	require.Equal(t, w.To(tensor.BF16).Float32s(), m.In.W.Float32s())
	require.Equal(t, tensor.F32, m.In.B.DType(), "vectors go as F32")
	require.Equal(t, bias.Float32s(), m.In.B.Float32s())
	require.Equal(t, tensor.I64, m.IDs.DType())
	require.Equal(t, []int64{4, 5, 6}, m.IDs.Int64s())
	require.Same(t, hidden, m.hidden)
	require.Equal(t, tensor.CPU, w.Device(), "the host tensors are left as they were")

	require.Error(t, ToDevice(*m, dev), "a struct value cannot be updated")
}
