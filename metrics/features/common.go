package features

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strings"

	"github.com/roentgo/roentgo/internal/errctx"
	"github.com/roentgo/roentgo/nn"
	"github.com/roentgo/roentgo/tensor"
)

// BatchNorm holds an eval-mode torch.nn.BatchNorm2d as the affine map it
// computes: y = x*Scale[c] + Shift[c], Scale = weight/sqrt(running_var+eps),
// Shift = bias - running_mean*Scale (F32 [C]). Keys: weight, bias,
// running_mean, running_var (and num_batches_tracked, which is not used).
type BatchNorm struct {
	Scale, Shift *tensor.Tensor // [C]
}

// newBatchNorm reads the BatchNorm2d of c channels at b (eps its epsilon).
// With missing parameters (errors recorded in b) Scale and Shift are nil.
func newBatchNorm(b *nn.Builder, c int, eps float64) *BatchNorm {
	w := b.GetInit("weight", nn.InitConst(1), c)
	bias := b.GetInit("bias", nn.InitConst(0), c)
	mean := b.GetInit("running_mean", nn.InitConst(0), c)
	v := b.GetInit("running_var", nn.InitConst(1), c)
	b.Skip("num_batches_tracked")
	if w == nil || bias == nil || mean == nil || v == nil {
		return &BatchNorm{}
	}
	wv, bv, mv, vv := w.Float32s(), bias.Float32s(), mean.Float32s(), v.Float32s()
	sc, sh := make([]float32, c), make([]float32, c)
	for i := range sc {
		s := float64(wv[i]) / math.Sqrt(float64(vv[i])+eps)
		sc[i] = float32(s)
		sh[i] = float32(float64(bv[i]) - float64(mv[i])*s)
	}
	return &BatchNorm{Scale: tensor.FromFloat32(sc, c), Shift: tensor.FromFloat32(sh, c)}
}

// Forward returns the normalised x [N, C, H, W], with ReLU when relu is set.
func (n *BatchNorm) Forward(x *tensor.Tensor, relu bool) *tensor.Tensor {
	return tensor.ChannelAffine(x, n.Scale, n.Shift, relu)
}

// ConvBN is a bias-free convolution followed by an eval-mode BatchNorm2d,
// folded at load time into one convolution with bias: W' = W*Scale[k],
// b' = Shift[k] (F32). ReLU follows when Relu is set (pytorch-fid's
// BasicConv2d: conv, bn, relu).
type ConvBN struct {
	Weight *tensor.Tensor // [K, C, R, S], F32, folded
	Bias   *tensor.Tensor // [K], F32, folded
	Opts   tensor.ConvOpts
	Relu   bool
}

// foldConvBN reads the conv weight [k, c, kh, kw] at conv and the
// BatchNorm2d at bn, and folds them.
func foldConvBN(conv, bn *nn.Builder, c, k, kh, kw int, o tensor.ConvOpts, eps float64, relu bool) *ConvBN {
	w := conv.GetInit("weight", nn.InitKaimingUniform(), k, c, kh, kw)
	norm := newBatchNorm(bn, k, eps)
	cb := &ConvBN{Opts: o, Relu: relu}
	if w == nil || norm.Scale == nil {
		return cb
	}
	wv := w.Float32s()
	sc := norm.Scale.Float32s()
	per := c * kh * kw
	for i := 0; i < k; i++ {
		for j := i * per; j < (i+1)*per; j++ {
			wv[j] *= sc[i]
		}
	}
	cb.Weight = tensor.FromFloat32(wv, k, c, kh, kw)
	cb.Bias = norm.Shift
	return cb
}

// Forward returns relu(conv(x) + b) (or without relu) for x [N, C, H, W]
// (the ReLU fused into the convolution).
func (c *ConvBN) Forward(x *tensor.Tensor) *tensor.Tensor {
	return tensor.Conv2dFused(x, c.Weight, c.Bias, c.Opts, tensor.ConvFusion{OutReLU: c.Relu})
}

// ForwardMapped is Forward on ChannelAffine(x, n.Scale, n.Shift, true): the
// eval-mode BatchNorm and ReLU in front of the convolution, fused into it.
func (c *ConvBN) ForwardMapped(n *BatchNorm, x *tensor.Tensor) *tensor.Tensor {
	return tensor.Conv2dFused(x, c.Weight, c.Bias, c.Opts, tensor.ConvFusion{InScale: n.Scale, InShift: n.Shift, InReLU: true, OutReLU: c.Relu})
}

// openWeights opens a weight file by its contents: safetensors (any name) or
// a PyTorch zip checkpoint (.pth, .pt, .bin). what names the model in errors,
// env the environment variable users set, and where says where to get the file.
func openWeights(path, what, where string) (nn.Source, io.Closer, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil, fmt.Errorf("features: %s weights %s do not exist (%s)", what, path, where)
		}
		return nil, nil, fmt.Errorf("features: %s weights: %w", what, err)
	}
	head := make([]byte, 8)
	n, _ := io.ReadFull(f, head)
	f.Close()
	if n >= 4 && string(head[:4]) == "PK\x03\x04" {
		s, err := nn.OpenTorch(path)
		if err != nil {
			return nil, nil, errctx.Wrap("features: "+what+" weights", err)
		}
		return s, s, nil
	}
	if n >= 2 && head[0] == 0x80 && head[1] <= 5 {
		return nil, nil, fmt.Errorf("features: %s weights %s: a legacy (PyTorch < 1.6) torch.save file, which roentgo does not read; convert it to safetensors with scripts/convert_features_weights.py (see docs/EVALUATION.md)", what, path)
	}
	s, err := nn.OpenSafetensors(path)
	if err != nil {
		return nil, nil, errctx.Wrap("features: "+what+" weights (want safetensors or a PyTorch zip checkpoint)", err)
	}
	return s, s, nil
}

// prefixSource exposes only the keys of src that start with one of prefixes,
// so that Check's unused-key report ignores the rest of a larger checkpoint
// (the text tower of a full CLIP model).
type prefixSource struct {
	src      nn.Source
	prefixes []string
}

func (p prefixSource) keep(k string) bool {
	for _, pre := range p.prefixes {
		if strings.HasPrefix(k, pre) {
			return true
		}
	}
	return false
}

// Keys returns the kept keys.
func (p prefixSource) Keys() []string {
	var ks []string
	for _, k := range p.src.Keys() {
		if p.keep(k) {
			ks = append(ks, k)
		}
	}
	return ks
}

// Info returns the stored dtype and shape of a kept key.
func (p prefixSource) Info(name string) (string, []int, bool) {
	if !p.keep(name) {
		return "", nil, false
	}
	return p.src.Info(name)
}

// Load loads a kept key.
func (p prefixSource) Load(name string) (*tensor.Tensor, error) {
	if !p.keep(name) {
		return nil, fmt.Errorf("no tensor %q", name)
	}
	return p.src.Load(name)
}
