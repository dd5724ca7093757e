package cpu

import (
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// convReadGolden reads a little-endian float32 file written by
// scripts/golden_conv_attn.py and checks its length.
func convReadGolden(t *testing.T, name string, n int) []float32 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatalf("golden data (regenerate with /usr/bin/python3 scripts/golden_conv_attn.py): %v", err)
	}
	if len(b) != 4*n {
		t.Fatalf("%s: %d bytes, want %d float32 values", name, len(b), n)
	}
	x := make([]float32, n)
	for i := range x {
		x[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return x
}

// TestConv2dGoldenTorch compares Conv2d with torch.nn.functional.conv2d.
func TestConv2dGoldenTorch(t *testing.T) {
	x := convReadGolden(t, "conv_x.bin", 2*3*9*7)
	w := convReadGolden(t, "conv_w.bin", 5*3*3*3)
	b := convReadGolden(t, "conv_b.bin", 5)
	for _, tc := range []struct {
		file   string
		stride int
	}{{"conv_y_s1p1.bin", 1}, {"conv_y_s2p1.bin", 2}} {
		p := ConvParams{N: 2, C: 3, H: 9, W: 7, K: 5, R: 3, S: 3, StrideH: tc.stride, StrideW: tc.stride, PadH: 1, PadW: 1}
		want := convReadGolden(t, tc.file, 2*5*p.OutH()*p.OutW())
		got := make([]float32, len(want))
		Conv2d(p, x, F32Mat(w, 27, false), b, got)
		// 27-term float32 sums of N(0,1)*0.3N(0,1) values, computed two ways.
		convCompare(t, tc.file, got, want, 1e-5, 1e-5)
	}
}

// TestAttentionGoldenTorch compares Attention with softmax(q k^T / sqrt(D)) v in PyTorch.
func TestAttentionGoldenTorch(t *testing.T) {
	const B, H, Sq, Sk, D = 2, 3, 11, 13, 8
	q := convReadGolden(t, "attn_q.bin", B*Sq*H*D)
	k := convReadGolden(t, "attn_k.bin", B*Sk*H*D)
	v := convReadGolden(t, "attn_v.bin", B*Sk*H*D)
	for _, tc := range []struct {
		file   string
		causal bool
	}{{"attn_o.bin", false}, {"attn_o_causal.bin", true}} {
		want := convReadGolden(t, tc.file, B*Sq*H*D)
		p := AttnParams{B: B, H: H, Sq: Sq, Sk: Sk, D: D, Scale: float32(1 / math.Sqrt(D)), Causal: tc.causal}
		got := make([]float32, len(want))
		Attention(p, q, k, v, got)
		// Values are N(0,1); outputs are convex combinations of them.
		convCompare(t, tc.file, got, want, 1e-5, 1e-5)
	}
}
