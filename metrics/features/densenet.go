package features

import (
	"fmt"
	"math"

	"github.com/roentgo/roentgo/nn"
	"github.com/roentgo/roentgo/tensor"
)

// torchxrayvision's DenseNet-121 (Huang et al., "Densely Connected
// Convolutional Networks", arXiv:1608.06993; torchvision's DenseNet-BC with
// one input channel), as xrv.models.DenseNet(weights="densenet121-res224-all")
// runs it: inputs 1 x 224 x 224 with XRV's value range [-1024, 1024];
// features2 = adaptive_avg_pool(relu(features(x))) (1024-d), the classifier a
// Linear to 18 pathologies, whose logits xrv turns into calibrated
// probabilities with a sigmoid and op_norm against per-pathology operating
// points (op_threshs).

// XRVPathologies are the 18 outputs of densenet121-res224-all in order
// (torchxrayvision's default_pathologies).
var XRVPathologies = []string{"Atelectasis", "Consolidation", "Infiltration", "Pneumothorax", "Edema",
	"Emphysema", "Fibrosis", "Effusion", "Pneumonia", "Pleural_Thickening", "Cardiomegaly", "Nodule", "Mass",
	"Hernia", "Lung Lesion", "Fracture", "Lung Opacity", "Enlarged Cardiomediastinum"}

// XRVOpThresholds are the operating points of densenet121-res224-all
// (torchxrayvision's model_urls["all"]["op_threshs"]), one per XRVPathologies
// entry.
var XRVOpThresholds = []float32{0.07422872, 0.038290843, 0.09814756, 0.0098118475, 0.023601074,
	0.0022490358, 0.010060724, 0.103246614, 0.056810737, 0.026791653, 0.050318155, 0.023985857,
	0.01939503, 0.042889766, 0.053369623, 0.035975814, 0.20204692, 0.05015312}

// xrvEps is the BatchNorm2d default epsilon that DenseNet uses.
const xrvEps = 1e-5

// DenseNetConfig sizes the network; DefaultDenseNetConfig is DenseNet-121 as
// torchxrayvision builds it.
type DenseNetConfig struct {
	GrowthRate      int
	BlockConfig     []int
	NumInitFeatures int
	BNSize          int
	NumClasses      int
	InChannels      int
}

// DefaultDenseNetConfig returns densenet121-res224-all's configuration:
// growth 32, blocks (6, 12, 24, 16), 64 initial features, bottleneck 4, 18
// classes, 1 input channel.
func DefaultDenseNetConfig() DenseNetConfig {
	return DenseNetConfig{GrowthRate: 32, BlockConfig: []int{6, 12, 24, 16}, NumInitFeatures: 64, BNSize: 4,
		NumClasses: 18, InChannels: 1}
}

// Validate checks that every size is positive and bounded.
func (c DenseNetConfig) Validate() error {
	if c.GrowthRate < 1 || c.NumInitFeatures < 1 || c.BNSize < 1 || c.NumClasses < 1 || c.InChannels < 1 ||
		len(c.BlockConfig) == 0 || c.GrowthRate > nn.MaxDim || c.NumInitFeatures > nn.MaxDim || c.BNSize > 64 ||
		c.NumClasses > nn.MaxDim || c.InChannels > 64 || len(c.BlockConfig) > nn.MaxLevels {
		return fmt.Errorf("features: invalid DenseNet config %+v", c)
	}
	for _, n := range c.BlockConfig {
		if n < 1 || n > 1024 {
			return fmt.Errorf("features: invalid DenseNet block size %d in %v", n, c.BlockConfig)
		}
	}
	return nil
}

// DenseNet is the XRV DenseNet. Keys are torchxrayvision's state-dict names
// (features.conv0.weight, features.denseblock1.denselayer1.norm1.weight,
// features.transition1.conv.weight, features.norm5.bias, classifier.weight).
// BatchNorms that follow a convolution (norm0, every norm2) are folded into
// it at load time; the others (norm1, the transitions' norm, norm5) follow a
// concatenation and run as a per-channel affine map with ReLU.
type DenseNet struct {
	Config     DenseNetConfig
	Conv0      *ConvBN // conv0 + norm0 (+ relu0)
	Blocks     [][]*DenseLayer
	Trans      []*Transition
	Norm5      *BatchNorm
	Classifier *nn.Linear
	// OpThresholds are the calibration of Calibrated (XRVOpThresholds for
	// densenet121-res224-all); NaN entries give NaN outputs as in xrv.
	OpThresholds []float32
	// Hook, when set, sees each stage's output by its golden name (pool0,
	// denseblockN, transitionN, norm5, features2); for tests.
	Hook func(name string, t *tensor.Tensor)
}

// DenseLayer is _DenseLayer: norm1, relu, conv1 (1x1 to BNSize*growth),
// norm2, relu, conv2 (3x3 to growth); its output is concatenated to its
// input.
type DenseLayer struct {
	Norm1 *BatchNorm
	Conv1 *ConvBN // conv1 + norm2 (+ relu2)
	Conv2 *nn.Conv2d
}

// Transition is _Transition: norm, relu, conv (1x1, halving the channels),
// 2x2 average pool.
type Transition struct {
	Norm *BatchNorm
	Conv *nn.Conv2d
}

// NewDenseNet builds the DenseNet from b (at the state dict's root).
// Missing or misshapen parameters are recorded in b: call b.Check before use.
func NewDenseNet(b *nn.Builder, c DenseNetConfig) (*DenseNet, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	f := b.Sub("features")
	m := &DenseNet{Config: c, OpThresholds: XRVOpThresholds}
	m.Conv0 = foldConvBN(f.Sub("conv0"), f.Sub("norm0"), c.InChannels, c.NumInitFeatures, 7, 7,
		tensor.ConvSquare(2, 3), xrvEps, true)
	ch := c.NumInitFeatures
	g, mid := c.GrowthRate, c.BNSize*c.GrowthRate
	for i, n := range c.BlockConfig {
		blk := f.Sub(fmt.Sprintf("denseblock%d", i+1))
		var layers []*DenseLayer
		for j := 0; j < n; j++ {
			lb := blk.Sub(fmt.Sprintf("denselayer%d", j+1))
			cin := ch + j*g
			layers = append(layers, &DenseLayer{
				Norm1: newBatchNorm(lb.Sub("norm1"), cin, xrvEps),
				Conv1: foldConvBN(lb.Sub("conv1"), lb.Sub("norm2"), cin, mid, 1, 1, tensor.ConvOpts{}, xrvEps, true),
				Conv2: nn.NewConv2dOpts(lb.Sub("conv2"), mid, g, 3, 3, tensor.ConvSquare(1, 1), false),
			})
		}
		m.Blocks = append(m.Blocks, layers)
		ch += n * g
		if i != len(c.BlockConfig)-1 {
			tb := f.Sub(fmt.Sprintf("transition%d", i+1))
			m.Trans = append(m.Trans, &Transition{
				Norm: newBatchNorm(tb.Sub("norm"), ch, xrvEps),
				Conv: nn.NewConv2dOpts(tb.Sub("conv"), ch, ch/2, 1, 1, tensor.ConvOpts{}, false),
			})
			ch /= 2
		}
	}
	m.Norm5 = newBatchNorm(f.Sub("norm5"), ch, xrvEps)
	m.Classifier = nn.NewLinear(b.Sub("classifier"), ch, c.NumClasses, true)
	if c.NumClasses != len(XRVOpThresholds) {
		m.OpThresholds = nil
	}
	return m, nil
}

// Dim returns the feature dimension (1024 for DenseNet-121).
func (m *DenseNet) Dim() int {
	ch := m.Config.NumInitFeatures
	for i, n := range m.Config.BlockConfig {
		ch += n * m.Config.GrowthRate
		if i != len(m.Config.BlockConfig)-1 {
			ch /= 2
		}
	}
	return ch
}

// Forward returns the layer's output, x with the new features appended.
func (l *DenseLayer) Forward(x *tensor.Tensor) *tensor.Tensor {
	return tensor.Scope(func() *tensor.Tensor {
		h := l.Conv2.Forward(l.Conv1.ForwardMapped(l.Norm1, x))
		return tensor.Cat(1, x, h)
	})
}

// denseBlock runs a dense block's layers on x [N, C, H, W] and returns x
// with every layer's features appended: the same values as calling each
// layer's Forward in turn, without its concatenation. The output tensor is
// allocated once at its final width; x is copied into its first channels and
// each layer reads the channels filled so far (a view, read in place) and
// writes its new features after them, so the features are copied once in
// all instead of once per later layer.
func denseBlock(layers []*DenseLayer, x *tensor.Tensor) *tensor.Tensor {
	n, c, hh, ww := x.Dim(0), x.Dim(1), x.Dim(2), x.Dim(3)
	grow := make([]int, len(layers))
	total := c
	for i, l := range layers {
		grow[i] = l.Conv2.Weight.Dim(0)
		total += grow[i]
	}
	buf := tensor.EmptyOn(x.Device(), x.DType(), n, total, hh, ww)
	tensor.Do(func() { buf.Narrow(1, 0, c).CopyFrom(x) })
	for i, l := range layers {
		tensor.Do(func() {
			h := l.Conv2.Forward(l.Conv1.ForwardMapped(l.Norm1, buf.Narrow(1, 0, c)))
			buf.Narrow(1, c, grow[i]).CopyFrom(h)
		})
		c += grow[i]
	}
	return buf
}

// Forward returns the transition's output.
func (t *Transition) Forward(x *tensor.Tensor) *tensor.Tensor {
	return tensor.Scope(func() *tensor.Tensor {
		y := tensor.Conv2dFused(x, t.Conv.Weight, t.Conv.Bias, t.Conv.Opts, tensor.ConvFusion{InScale: t.Norm.Scale, InShift: t.Norm.Shift, InReLU: true})
		return tensor.AvgPool2d(y, tensor.PoolSquare(2, 2, 0), true)
	})
}

// Features returns features2, the 1024-d features [N, Dim()] of x [N, 1, H,
// W] in XRV's range (XRVNormalize; PreprocessXRV crops and resizes to
// 224x224 as torchxrayvision's transforms do). x is not resized (xrv
// resizes other sizes bilinearly with a warning; do it beforehand).
func (m *DenseNet) Features(x *tensor.Tensor) *tensor.Tensor {
	if x.Rank() != 4 || x.Dim(1) != m.Config.InChannels || x.Dim(2) < 32 || x.Dim(3) < 32 {
		panic(fmt.Sprintf("features: DenseNet.Features: x %v (want [N, %d, H, W], H, W >= 32)", x.Shape(), m.Config.InChannels))
	}
	hook := func(name string, t *tensor.Tensor) {
		if m.Hook != nil {
			m.Hook(name, t)
		}
	}
	var out *tensor.Tensor
	tensor.NoGrad(func() {
		out = tensor.Scope(func() *tensor.Tensor {
			h := tensor.Scope(func() *tensor.Tensor {
				return tensor.MaxPool2d(m.Conv0.Forward(x), tensor.PoolSquare(3, 2, 1))
			})
			hook("pool0", h)
			for i, layers := range m.Blocks {
				h = tensor.Scope(func() *tensor.Tensor { return denseBlock(layers, h) }, h)
				hook(fmt.Sprintf("denseblock%d", i+1), h)
				if i < len(m.Trans) {
					h = tensor.Scope(func() *tensor.Tensor { return m.Trans[i].Forward(h) }, h)
					hook(fmt.Sprintf("transition%d", i+1), h)
				}
			}
			h = tensor.Scope(func() *tensor.Tensor { return m.Norm5.Forward(h, false) }, h)
			hook("norm5", h)
			p := tensor.AdaptiveAvgPool2d(tensor.ReLU(h), 1, 1)
			return p.Reshape(p.Dim(0), p.Dim(1))
		})
	})
	hook("features2", out)
	return out
}

// Logits returns the classifier's raw outputs [N, NumClasses] for features
// [N, Dim()].
func (m *DenseNet) Logits(features *tensor.Tensor) *tensor.Tensor {
	var out *tensor.Tensor
	tensor.NoGrad(func() { out = m.Classifier.Forward(features) })
	return out
}

// Calibrated returns what xrv's DenseNet.forward returns with op_threshs set:
// p = sigmoid(logit), then op_norm: p/(2t) where p < t, else
// 1 - (1-p)/(2(1-t)), with t the pathology's operating point, so that 0.5 is
// the operating point. logits is [N, NumClasses] as Logits returns; the
// result is a new [N][NumClasses] table. Without OpThresholds it returns the
// plain sigmoid.
func (m *DenseNet) Calibrated(logits *tensor.Tensor) [][]float32 {
	n, k := logits.Dim(0), logits.Dim(1)
	v := logits.Float32s()
	out := make([][]float32, n)
	for i := range out {
		out[i] = make([]float32, k)
		for j := range out[i] {
			p := float32(1 / (1 + math.Exp(-float64(v[i*k+j]))))
			if m.OpThresholds != nil {
				t := m.OpThresholds[j]
				if p < t {
					p = p / (t * 2)
				} else {
					p = 1 - (1-p)/((1-t)*2)
				}
			}
			out[i][j] = p
		}
	}
	return out
}

// LoadDenseNet builds torchxrayvision's densenet121-res224-all from a weight
// file at path: a safetensors file (or PyTorch zip state dict) with xrv's
// keys; xrv's own .pt file pickles the whole model object and must be
// converted first (scripts/convert_features_weights.py, docs/EVALUATION.md).
func LoadDenseNet(path string) (*DenseNet, error) {
	src, closer, err := openWeights(path, "XRV DenseNet",
		"torchxrayvision's densenet121-res224-all weights, converted with scripts/convert_features_weights.py; see docs/EVALUATION.md")
	if err != nil {
		return nil, err
	}
	m, _, err := nn.Build(src, DefaultDenseNetConfig(), tensor.F32, NewDenseNet)
	if err != nil {
		closer.Close()
		return nil, fmt.Errorf("features: XRV DenseNet weights %s: %w", path, err)
	}
	// The unfolded convolutions and the classifier use the file's tensors:
	// copy them out so that the file can be closed.
	detach := func(t *tensor.Tensor) *tensor.Tensor { return tensor.Persist(t.Clone()) }
	for _, layers := range m.Blocks {
		for _, l := range layers {
			l.Conv2.Weight = detach(l.Conv2.Weight)
		}
	}
	for _, t := range m.Trans {
		t.Conv.Weight = detach(t.Conv.Weight)
	}
	m.Classifier.Weight, m.Classifier.Bias = detach(m.Classifier.Weight), detach(m.Classifier.Bias)
	closer.Close()
	return m, nil
}
