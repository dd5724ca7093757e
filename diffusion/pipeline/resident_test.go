package pipeline

import (
	"testing"

	"github.com/roentgo/roentgo/tensor"
	"github.com/stretchr/testify/require"
)

// TestModelTensors checks that the weight walk finds the tensors behind
// exported pointers, slices, maps and interfaces once each, and skips nil and
// unexported fields.
func TestModelTensors(t *testing.T) {
	a, b, c, d := tensor.Scalar(1), tensor.Scalar(2), tensor.Scalar(3), tensor.Scalar(4)
	type leaf struct {
		W, B *tensor.Tensor
	}
	type model struct {
		In     *leaf
		Blocks []*leaf
		ByName map[string]*tensor.Tensor
		Any    any
		Nil    *leaf
		hidden *tensor.Tensor
	}
	l := &leaf{W: a}
	m := &model{In: l, Blocks: []*leaf{l, {W: b, B: c}}, ByName: map[string]*tensor.Tensor{"d": d}, Any: &leaf{W: a}, hidden: tensor.Scalar(5)}
	got := modelTensors(m)
	require.ElementsMatch(t, []*tensor.Tensor{a, b, c, d}, got)
}

// TestGenerateDropsResidentWeights checks that generations that drop the
// mapped weights between phases (the default; the second run faults them
// back) and one that keeps them resident give the same latents and image bit
// for bit.
func TestGenerateDropsResidentWeights(t *testing.T) {
	p := loadGolden(t)
	lat1, pix1 := ddimFinal(t, p)
	lat2, pix2 := ddimFinal(t, p)
	requireBits(t, "second run's final latents", lat2, lat1)
	require.Equal(t, pix1, pix2, "second run's image")
	p.KeepWeightsResident = true
	defer func() { p.KeepWeightsResident = false }() // p is shared with other tests
	lat3, pix3 := ddimFinal(t, p)
	requireBits(t, "resident run's final latents", lat3, lat1)
	require.Equal(t, pix1, pix3, "resident run's image")
}
