package features

import (
	"fmt"

	"github.com/roentgo/roentgo/nn"
	"github.com/roentgo/roentgo/tensor"
)

// Inception-v3 as pytorch-fid's FIDInceptionV3 computes it (Szegedy et al.,
// "Rethinking the Inception Architecture for Computer Vision",
// arXiv:1512.00567; the TensorFlow graph of 2015-12-05 that FID was defined
// with): torchvision's Inception3 with the blocks FID needs changed —
// FIDInceptionA, FIDInceptionC and FIDInceptionE_1 average-pool their pool
// branch with count_include_pad=False, FIDInceptionE_2 max-pools it — up to
// the 2048-d global average pool ("pool3"). No auxiliary classifier; the fc
// layer of the checkpoint (1008 classes) is not used.

// inceptionEps is the BatchNorm epsilon of Inception's BasicConv2d.
const inceptionEps = 0.001

// InceptionDim is the dimension of the pool3 features of the full-size model.
const InceptionDim = 2048

// InceptionConfig sizes the network. The zero value (or WidthDiv 1) is the
// real FID Inception; WidthDiv > 1 divides every channel count by it (a
// reduced model for tests; every count of the real model is divisible by 16).
type InceptionConfig struct {
	WidthDiv int
	// CleanFIDInput normalises inputs in [0, 1] as clean-fid's InceptionV3W
	// does with its [0, 255] inputs, (255x - 128)/128, instead of
	// pytorch-fid's 2x - 1.
	CleanFIDInput bool
}

func (c InceptionConfig) div() int { return max(c.WidthDiv, 1) }

// Validate checks WidthDiv.
func (c InceptionConfig) Validate() error {
	d := c.div()
	if 16%d != 0 {
		return fmt.Errorf("features: inception WidthDiv %d must divide 16", c.WidthDiv)
	}
	return nil
}

// Inception is the FID Inception-v3. Build it with NewInception (or
// LoadInception) and call Features; the keys are pytorch-fid's state-dict
// names (Conv2d_1a_3x3.conv.weight, Mixed_5b.branch_pool.bn.running_var, ...).
// Each BasicConv2d's BatchNorm (eps 0.001, eval mode) is folded into its
// convolution at load time.
type Inception struct {
	Config                                 InceptionConfig
	Conv1a, Conv2a, Conv2b, Conv3b, Conv4a *ConvBN
	Mixed5b, Mixed5c, Mixed5d              *InceptionA
	Mixed6a                                *InceptionB
	Mixed6b, Mixed6c, Mixed6d, Mixed6e     *InceptionC
	Mixed7a                                *InceptionD
	Mixed7b, Mixed7c                       *InceptionE
	// Hook, when set, sees the output of each stage by its golden name
	// (conv2b, block0, block1, Mixed_5b ... Mixed_7c, pool3); for tests.
	Hook func(name string, t *tensor.Tensor)
}

// basicConv reads pytorch-fid's BasicConv2d at b (conv + bn, relu).
func basicConv(b *nn.Builder, cin, cout, kh, kw, stride, padH, padW int) *ConvBN {
	o := tensor.ConvOpts{StrideH: stride, StrideW: stride, PadH: padH, PadW: padW}
	return foldConvBN(b.Sub("conv"), b.Sub("bn"), cin, cout, kh, kw, o, inceptionEps, true)
}

// InceptionA is FIDInceptionA (Mixed_5b/c/d).
type InceptionA struct {
	B1x1, B5x5_1, B5x5_2, B3dbl1, B3dbl2, B3dbl3, BPool *ConvBN
}

// InceptionB is InceptionB (Mixed_6a), unchanged by pytorch-fid.
type InceptionB struct {
	B3x3, B3dbl1, B3dbl2, B3dbl3 *ConvBN
}

// InceptionC is FIDInceptionC (Mixed_6b..6e).
type InceptionC struct {
	B1x1    *ConvBN
	B7x7    [3]*ConvBN
	B7x7dbl [5]*ConvBN
	BPool   *ConvBN
}

// InceptionD is InceptionD (Mixed_7a), unchanged by pytorch-fid.
type InceptionD struct {
	B3x3_1, B3x3_2 *ConvBN
	B7x7x3         [4]*ConvBN
}

// InceptionE is FIDInceptionE_1 (Mixed_7b, average pool without the
// padding) or FIDInceptionE_2 (Mixed_7c, MaxPool set).
type InceptionE struct {
	B1x1, B3x3_1, B3x3_2a, B3x3_2b   *ConvBN
	B3dbl1, B3dbl2, B3dbl3a, B3dbl3b *ConvBN
	BPool                            *ConvBN
	MaxPool                          bool
}

// NewInception builds the FID Inception from b (at the state dict's root).
// Missing or misshapen parameters are recorded in b: call b.Check before use.
func NewInception(b *nn.Builder, c InceptionConfig) (*Inception, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	d := c.div()
	w := func(n int) int { return n / d }
	m := &Inception{Config: c,
		Conv1a: basicConv(b.Sub("Conv2d_1a_3x3"), 3, w(32), 3, 3, 2, 0, 0),
		Conv2a: basicConv(b.Sub("Conv2d_2a_3x3"), w(32), w(32), 3, 3, 1, 0, 0),
		Conv2b: basicConv(b.Sub("Conv2d_2b_3x3"), w(32), w(64), 3, 3, 1, 1, 1),
		Conv3b: basicConv(b.Sub("Conv2d_3b_1x1"), w(64), w(80), 1, 1, 1, 0, 0),
		Conv4a: basicConv(b.Sub("Conv2d_4a_3x3"), w(80), w(192), 3, 3, 1, 0, 0),
	}
	c5 := w(64) + w(64) + w(96)
	m.Mixed5b = newInceptionA(b.Sub("Mixed_5b"), w(192), w(32), w)
	m.Mixed5c = newInceptionA(b.Sub("Mixed_5c"), c5+w(32), w(64), w)
	m.Mixed5d = newInceptionA(b.Sub("Mixed_5d"), c5+w(64), w(64), w)
	m.Mixed6a = newInceptionB(b.Sub("Mixed_6a"), c5+w(64), w)
	c6 := w(384) + w(96) + c5 + w(64)
	m.Mixed6b = newInceptionC(b.Sub("Mixed_6b"), c6, w(128), w)
	m.Mixed6c = newInceptionC(b.Sub("Mixed_6c"), c6, w(160), w)
	m.Mixed6d = newInceptionC(b.Sub("Mixed_6d"), c6, w(160), w)
	m.Mixed6e = newInceptionC(b.Sub("Mixed_6e"), c6, w(192), w)
	m.Mixed7a = newInceptionD(b.Sub("Mixed_7a"), c6, w)
	c7 := w(320) + w(192) + c6
	m.Mixed7b = newInceptionE(b.Sub("Mixed_7b"), c7, w, false)
	m.Mixed7c = newInceptionE(b.Sub("Mixed_7c"), w(320)+2*w(768)+w(192), w, true)
	// The classifier of the checkpoint (fc, 1008 classes) is not part of the
	// features; older torchvision files also lack num_batches_tracked.
	b.Skip("fc.weight")
	b.Skip("fc.bias")
	return m, nil
}

func newInceptionA(b *nn.Builder, cin, pool int, w func(int) int) *InceptionA {
	return &InceptionA{
		B1x1:   basicConv(b.Sub("branch1x1"), cin, w(64), 1, 1, 1, 0, 0),
		B5x5_1: basicConv(b.Sub("branch5x5_1"), cin, w(48), 1, 1, 1, 0, 0),
		B5x5_2: basicConv(b.Sub("branch5x5_2"), w(48), w(64), 5, 5, 1, 2, 2),
		B3dbl1: basicConv(b.Sub("branch3x3dbl_1"), cin, w(64), 1, 1, 1, 0, 0),
		B3dbl2: basicConv(b.Sub("branch3x3dbl_2"), w(64), w(96), 3, 3, 1, 1, 1),
		B3dbl3: basicConv(b.Sub("branch3x3dbl_3"), w(96), w(96), 3, 3, 1, 1, 1),
		BPool:  basicConv(b.Sub("branch_pool"), cin, pool, 1, 1, 1, 0, 0),
	}
}

func newInceptionB(b *nn.Builder, cin int, w func(int) int) *InceptionB {
	return &InceptionB{
		B3x3:   basicConv(b.Sub("branch3x3"), cin, w(384), 3, 3, 2, 0, 0),
		B3dbl1: basicConv(b.Sub("branch3x3dbl_1"), cin, w(64), 1, 1, 1, 0, 0),
		B3dbl2: basicConv(b.Sub("branch3x3dbl_2"), w(64), w(96), 3, 3, 1, 1, 1),
		B3dbl3: basicConv(b.Sub("branch3x3dbl_3"), w(96), w(96), 3, 3, 2, 0, 0),
	}
}

func newInceptionC(b *nn.Builder, cin, c7 int, w func(int) int) *InceptionC {
	o := w(192)
	return &InceptionC{
		B1x1: basicConv(b.Sub("branch1x1"), cin, o, 1, 1, 1, 0, 0),
		B7x7: [3]*ConvBN{
			basicConv(b.Sub("branch7x7_1"), cin, c7, 1, 1, 1, 0, 0),
			basicConv(b.Sub("branch7x7_2"), c7, c7, 1, 7, 1, 0, 3),
			basicConv(b.Sub("branch7x7_3"), c7, o, 7, 1, 1, 3, 0),
		},
		B7x7dbl: [5]*ConvBN{
			basicConv(b.Sub("branch7x7dbl_1"), cin, c7, 1, 1, 1, 0, 0),
			basicConv(b.Sub("branch7x7dbl_2"), c7, c7, 7, 1, 1, 3, 0),
			basicConv(b.Sub("branch7x7dbl_3"), c7, c7, 1, 7, 1, 0, 3),
			basicConv(b.Sub("branch7x7dbl_4"), c7, c7, 7, 1, 1, 3, 0),
			basicConv(b.Sub("branch7x7dbl_5"), c7, o, 1, 7, 1, 0, 3),
		},
		BPool: basicConv(b.Sub("branch_pool"), cin, o, 1, 1, 1, 0, 0),
	}
}

func newInceptionD(b *nn.Builder, cin int, w func(int) int) *InceptionD {
	return &InceptionD{
		B3x3_1: basicConv(b.Sub("branch3x3_1"), cin, w(192), 1, 1, 1, 0, 0),
		B3x3_2: basicConv(b.Sub("branch3x3_2"), w(192), w(320), 3, 3, 2, 0, 0),
		B7x7x3: [4]*ConvBN{
			basicConv(b.Sub("branch7x7x3_1"), cin, w(192), 1, 1, 1, 0, 0),
			basicConv(b.Sub("branch7x7x3_2"), w(192), w(192), 1, 7, 1, 0, 3),
			basicConv(b.Sub("branch7x7x3_3"), w(192), w(192), 7, 1, 1, 3, 0),
			basicConv(b.Sub("branch7x7x3_4"), w(192), w(192), 3, 3, 2, 0, 0),
		},
	}
}

func newInceptionE(b *nn.Builder, cin int, w func(int) int, maxPool bool) *InceptionE {
	return &InceptionE{
		B1x1:    basicConv(b.Sub("branch1x1"), cin, w(320), 1, 1, 1, 0, 0),
		B3x3_1:  basicConv(b.Sub("branch3x3_1"), cin, w(384), 1, 1, 1, 0, 0),
		B3x3_2a: basicConv(b.Sub("branch3x3_2a"), w(384), w(384), 1, 3, 1, 0, 1),
		B3x3_2b: basicConv(b.Sub("branch3x3_2b"), w(384), w(384), 3, 1, 1, 1, 0),
		B3dbl1:  basicConv(b.Sub("branch3x3dbl_1"), cin, w(448), 1, 1, 1, 0, 0),
		B3dbl2:  basicConv(b.Sub("branch3x3dbl_2"), w(448), w(384), 3, 3, 1, 1, 1),
		B3dbl3a: basicConv(b.Sub("branch3x3dbl_3a"), w(384), w(384), 1, 3, 1, 0, 1),
		B3dbl3b: basicConv(b.Sub("branch3x3dbl_3b"), w(384), w(384), 3, 1, 1, 1, 0),
		BPool:   basicConv(b.Sub("branch_pool"), cin, w(192), 1, 1, 1, 0, 0),
		MaxPool: maxPool,
	}
}

// chain applies convs in order, freeing each intermediate.
func chain(x *tensor.Tensor, cs ...*ConvBN) *tensor.Tensor {
	h := cs[0].Forward(x)
	for _, c := range cs[1:] {
		h = tensor.Scope(func() *tensor.Tensor { return c.Forward(h) }, h)
	}
	return h
}

// avgPoolExcl is avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False).
func avgPoolExcl(x *tensor.Tensor) *tensor.Tensor {
	return tensor.AvgPool2d(x, tensor.PoolSquare(3, 1, 1), false)
}

// Forward returns the block's output for x [N, C, H, W].
func (a *InceptionA) Forward(x *tensor.Tensor) *tensor.Tensor {
	return tensor.Scope(func() *tensor.Tensor {
		return tensor.Cat(1, a.B1x1.Forward(x), chain(x, a.B5x5_1, a.B5x5_2),
			chain(x, a.B3dbl1, a.B3dbl2, a.B3dbl3), a.BPool.Forward(avgPoolExcl(x)))
	})
}

// Forward returns the block's output for x [N, C, H, W].
func (bl *InceptionB) Forward(x *tensor.Tensor) *tensor.Tensor {
	return tensor.Scope(func() *tensor.Tensor {
		return tensor.Cat(1, bl.B3x3.Forward(x), chain(x, bl.B3dbl1, bl.B3dbl2, bl.B3dbl3),
			tensor.MaxPool2d(x, tensor.PoolSquare(3, 2, 0)))
	})
}

// Forward returns the block's output for x [N, C, H, W].
func (c *InceptionC) Forward(x *tensor.Tensor) *tensor.Tensor {
	return tensor.Scope(func() *tensor.Tensor {
		return tensor.Cat(1, c.B1x1.Forward(x), chain(x, c.B7x7[:]...), chain(x, c.B7x7dbl[:]...),
			c.BPool.Forward(avgPoolExcl(x)))
	})
}

// Forward returns the block's output for x [N, C, H, W].
func (d *InceptionD) Forward(x *tensor.Tensor) *tensor.Tensor {
	return tensor.Scope(func() *tensor.Tensor {
		return tensor.Cat(1, chain(x, d.B3x3_1, d.B3x3_2), chain(x, d.B7x7x3[:]...),
			tensor.MaxPool2d(x, tensor.PoolSquare(3, 2, 0)))
	})
}

// Forward returns the block's output for x [N, C, H, W].
func (e *InceptionE) Forward(x *tensor.Tensor) *tensor.Tensor {
	return tensor.Scope(func() *tensor.Tensor {
		b3 := e.B3x3_1.Forward(x)
		bd := chain(x, e.B3dbl1, e.B3dbl2)
		var pooled *tensor.Tensor
		if e.MaxPool {
			pooled = tensor.MaxPool2d(x, tensor.PoolSquare(3, 1, 1))
		} else {
			pooled = avgPoolExcl(x)
		}
		return tensor.Cat(1, e.B1x1.Forward(x),
			e.B3x3_2a.Forward(b3), e.B3x3_2b.Forward(b3),
			e.B3dbl3a.Forward(bd), e.B3dbl3b.Forward(bd),
			e.BPool.Forward(pooled))
	})
}

// Features returns the pool3 features [N, 2048/WidthDiv] of images x [N, 3,
// H, W] with values in [0, 1] (RGB; grayscale images repeated over the three
// channels). x is not resized: FID is defined at 299x299 (use
// PreprocessInception for clean-fid's resizing); any size >= 75 runs.
// pytorch-fid normalises to 2x - 1 (normalize_input=True); with
// Config.CleanFIDInput it is (255x - 128)/128 as clean-fid's model computes.
func (m *Inception) Features(x *tensor.Tensor) *tensor.Tensor {
	if x.Rank() != 4 || x.Dim(1) != 3 || x.Dim(2) < 75 || x.Dim(3) < 75 {
		panic(fmt.Sprintf("features: Inception.Features: x %v (want [N, 3, H, W] with H, W >= 75)", x.Shape()))
	}
	hook := func(name string, t *tensor.Tensor) {
		if m.Hook != nil {
			m.Hook(name, t)
		}
	}
	var out *tensor.Tensor
	tensor.NoGrad(func() {
		out = tensor.Scope(func() *tensor.Tensor {
			var h *tensor.Tensor
			if m.Config.CleanFIDInput {
				h = x.Affine(255.0/128, -1)
			} else {
				h = x.Affine(2, -1)
			}
			h = tensor.Scope(func() *tensor.Tensor { return chain(h, m.Conv1a, m.Conv2a, m.Conv2b) }, h)
			hook("conv2b", h)
			h = tensor.Scope(func() *tensor.Tensor { return tensor.MaxPool2d(h, tensor.PoolSquare(3, 2, 0)) }, h)
			hook("block0", h)
			h = tensor.Scope(func() *tensor.Tensor {
				return tensor.MaxPool2d(chain(h, m.Conv3b, m.Conv4a), tensor.PoolSquare(3, 2, 0))
			}, h)
			hook("block1", h)
			type block interface {
				Forward(*tensor.Tensor) *tensor.Tensor
			}
			for _, s := range []struct {
				name string
				b    block
			}{{"Mixed_5b", m.Mixed5b}, {"Mixed_5c", m.Mixed5c}, {"Mixed_5d", m.Mixed5d}, {"Mixed_6a", m.Mixed6a},
				{"Mixed_6b", m.Mixed6b}, {"Mixed_6c", m.Mixed6c}, {"Mixed_6d", m.Mixed6d}, {"Mixed_6e", m.Mixed6e},
				{"Mixed_7a", m.Mixed7a}, {"Mixed_7b", m.Mixed7b}, {"Mixed_7c", m.Mixed7c}} {
				h = tensor.Scope(func() *tensor.Tensor { return s.b.Forward(h) }, h)
				hook(s.name, h)
			}
			p := tensor.AdaptiveAvgPool2d(h, 1, 1)
			return p.Reshape(p.Dim(0), p.Dim(1))
		})
	})
	hook("pool3", out)
	return out
}

// LoadInception builds the full-size FID Inception from the weight file at
// path: pytorch-fid's pt_inception-2015-12-05-6726825d.pth when it is a zip
// checkpoint, or a safetensors file with the same keys (docs/EVALUATION.md
// shows how to convert a legacy .pth). Close releases the file.
func LoadInception(path string, c InceptionConfig) (*Inception, error) {
	src, closer, err := openWeights(path, "Inception",
		"pytorch-fid's pt_inception-2015-12-05-6726825d.pth from github.com/mseitzer/pytorch-fid/releases; see docs/EVALUATION.md")
	if err != nil {
		return nil, err
	}
	m, _, err := nn.Build(src, c, tensor.F32, NewInception)
	closer.Close() // folded weights are copies
	if err != nil {
		return nil, fmt.Errorf("features: Inception weights %s: %w", path, err)
	}
	return m, nil
}
