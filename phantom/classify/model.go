package classify

import (
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"os"

	"github.com/roentgo/roentgo/nn"
	"github.com/roentgo/roentgo/tensor"
)

// Config describes the network. The zero value is not valid; start from
// DefaultConfig.
type Config struct {
	// Stem is the number of channels of the stem, a 3x3 convolution at
	// full resolution.
	Stem int `json:"stem"`
	// Channels are the output channels of the stages; each stage halves the
	// resolution with a 3x3 stride-2 convolution, then applies Blocks more
	// 3x3 convolutions. Every convolution is followed by GroupNorm and SiLU.
	Channels []int `json:"channels"`
	// Blocks is the number of extra convolutions per stage (0 or more).
	Blocks int `json:"blocks"`
	// Groups is the number of GroupNorm groups (dividing every channel
	// count).
	Groups int `json:"groups"`
	// Grid is the side of the map the last stage's output is average-pooled
	// to before flattening (it must divide that output's side): 4 keeps
	// which quarter of the image a feature came from, so left and right
	// stay apart.
	Grid int `json:"grid"`
	// Hidden is the length of the feature vector (Linear + SiLU) before the
	// output layer.
	Hidden int `json:"hidden"`
	// Outputs is the number of logits: len(Findings).
	Outputs int `json:"outputs"`
	// Mean and Std normalise the input inside Forward: (x - Mean) / Std.
	Mean float64 `json:"mean"`
	Std  float64 `json:"std"`
}

// DefaultConfig returns the classifier's default network: a 16-channel stem
// at 128x128, stages of 16, 32, 64 and 128 channels down to 8x8 with one
// extra convolution each, pooled to 4x4, a 128-feature hidden layer and
// len(Findings) outputs, normalising with mean 0.5 and std 0.25.
func DefaultConfig() Config {
	return Config{Stem: 16, Channels: []int{16, 32, 64, 128}, Blocks: 1, Groups: 8, Grid: 4,
		Hidden: 128, Outputs: len(Findings), Mean: 0.5, Std: 0.25}
}

// Validate checks c.
func (c Config) Validate() error {
	if c.Stem < 1 || len(c.Channels) == 0 {
		return fmt.Errorf("classify: Config has stem %d and %d stages, expected both at least 1", c.Stem, len(c.Channels))
	}
	if c.Groups < 1 || c.Stem%c.Groups != 0 {
		return fmt.Errorf("classify: Config.Groups %d does not divide the stem's %d channels", c.Groups, c.Stem)
	}
	for i, ch := range c.Channels {
		if ch < 1 || ch%c.Groups != 0 {
			return fmt.Errorf("classify: Config.Channels[%d] is %d, expected a positive multiple of Groups (%d)", i, ch, c.Groups)
		}
	}
	if c.Blocks < 0 {
		return fmt.Errorf("classify: Config.Blocks is %d, expected 0 or more", c.Blocks)
	}
	side := InputSize >> len(c.Channels)
	if side < 1 || side<<len(c.Channels) != InputSize {
		return fmt.Errorf("classify: %d stages cannot halve the %d-pixel input evenly, expected at most 7", len(c.Channels), InputSize)
	}
	if c.Grid < 1 || side%c.Grid != 0 {
		return fmt.Errorf("classify: Config.Grid is %d, expected a divisor of the last stage's side %d", c.Grid, side)
	}
	if c.Hidden < 1 {
		return fmt.Errorf("classify: Config.Hidden is %d, expected at least 1", c.Hidden)
	}
	if c.Outputs != len(Findings) {
		return fmt.Errorf("classify: Config.Outputs is %d, expected len(Findings) = %d", c.Outputs, len(Findings))
	}
	if !(c.Std > 0) {
		return fmt.Errorf("classify: Config.Std is %v, expected > 0", c.Std)
	}
	return nil
}

// convNorm is a 3x3 convolution followed by GroupNorm and SiLU.
type convNorm struct {
	Conv *nn.Conv2d
	Norm *nn.GroupNorm
}

func newConvNorm(b *nn.Builder, in, out, stride, groups int) *convNorm {
	return &convNorm{
		Conv: nn.NewConv2d(b.Sub("conv"), in, out, 3, stride, 1),
		Norm: nn.NewGroupNorm(b.Sub("norm"), groups, out, 1e-5),
	}
}

func (c *convNorm) forward(x *tensor.Tensor) *tensor.Tensor {
	return tensor.Scope(func() *tensor.Tensor { return c.Norm.ForwardSiLU(c.Conv.Forward(x)) })
}

// Model is the classifier network. Its parameters are named
// stem.{conv,norm}.*, stages.K.down.{conv,norm}.*,
// stages.K.blocks.J.{conv,norm}.*, head.hidden.* and head.out.*. Predict
// does not change the model.
type Model struct {
	// Config is the network's configuration.
	Config Config

	stem   *convNorm
	stages [][]*convNorm // each: the stride-2 convolution, then Blocks more
	hidden *nn.Linear
	out    *nn.Linear

	params []nn.Param
}

// New builds the network of c from b (nn.NewRandomBuilder for new weights,
// nn.NewBuilder over a Source to load them).
func New(b *nn.Builder, c Config) (*Model, error) {
	if b == nil {
		return nil, errors.New("classify: New: the builder is nil, expected an *nn.Builder")
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	c.Channels = append([]int(nil), c.Channels...)
	m := &Model{Config: c}
	m.stem = newConvNorm(b.Path("stem"), 1, c.Stem, 1, c.Groups)
	in := c.Stem
	for k, ch := range c.Channels {
		st := []*convNorm{newConvNorm(b.Path("stages", k, "down"), in, ch, 2, c.Groups)}
		for j := 0; j < c.Blocks; j++ {
			st = append(st, newConvNorm(b.Path("stages", k, "blocks", j), ch, ch, 1, c.Groups))
		}
		m.stages = append(m.stages, st)
		in = ch
	}
	m.hidden = nn.NewLinear(b.Path("head", "hidden"), in*c.Grid*c.Grid, c.Hidden, true)
	m.out = nn.NewLinear(b.Path("head", "out"), c.Hidden, c.Outputs, true)
	if err := b.Err(); err != nil {
		return nil, err
	}
	m.params = b.Params()
	return m, nil
}

// Params returns the model's parameters with their names (for nn.ParamSet
// and saving).
func (m *Model) Params() []nn.Param { return append([]nn.Param(nil), m.params...) }

// Forward returns the logits [N, Outputs] and the features [N, Hidden] (the
// hidden layer after SiLU) of x [N, 1, InputSize, InputSize] with values in
// [0, 1]. It records for autograd when the parameters require gradients.
// It panics on a wrong shape (a programmer error; Predict checks its
// inputs).
func (m *Model) Forward(x *tensor.Tensor) (logits, features *tensor.Tensor) {
	c := m.Config
	if x.Rank() != 4 || x.Dim(1) != 1 || x.Dim(2) != InputSize || x.Dim(3) != InputSize {
		panic(fmt.Sprintf("classify: Forward: x is %v, expected [N, 1, %d, %d]", x.Shape(), InputSize, InputSize))
	}
	return tensor.Scope2(func() (*tensor.Tensor, *tensor.Tensor) {
		n := x.Dim(0)
		h := x.Affine(float32(1/c.Std), float32(-c.Mean/c.Std))
		h = m.stem.forward(h)
		for _, st := range m.stages {
			for _, l := range st {
				h = tensor.Scope(func() *tensor.Tensor { return l.forward(h) }, h)
			}
		}
		// h: [N, C, S, S] -> mean over S/G x S/G cells -> [N, C*G*G]
		ch, s, g := h.Dim(1), h.Dim(2), c.Grid
		p := h.Reshape(n, ch, g, s/g, g, s/g).Mean(5, false).Mean(3, false)
		features = tensor.SiLU(m.hidden.Forward(p.Reshape(n, ch*g*g)))
		return m.out.Forward(features), features
	})
}

// PredictBatch is the number of images Predict runs through the network at
// once.
const PredictBatch = 32

// Predict returns, for each input (InputSize*InputSize values in [0, 1], as
// Preprocess returns), the probability of each finding of Findings
// (sigmoid of the logits) and the features (Hidden values), computing
// without autograd in batches of PredictBatch.
func (m *Model) Predict(x [][]float32) (probs, features [][]float32, err error) {
	const px = InputSize * InputSize
	for i, v := range x {
		if len(v) != px {
			return nil, nil, fmt.Errorf("classify: Predict: input %d has %d values, expected %d (%dx%d, see Preprocess)", i, len(v), px, InputSize, InputSize)
		}
	}
	probs, features = make([][]float32, len(x)), make([][]float32, len(x))
	tensor.NoGrad(func() {
		for lo := 0; lo < len(x) && err == nil; lo += PredictBatch {
			hi := min(lo+PredictBatch, len(x))
			buf := make([]float32, 0, (hi-lo)*px)
			for _, v := range x[lo:hi] {
				buf = append(buf, v...)
			}
			err = tensor.Catch(func() {
				tensor.Do(func() {
					lg, ft := m.Forward(tensor.FromFloat32(buf, hi-lo, 1, InputSize, InputSize))
					pv, fv := lg.Sigmoid().Float32s(), ft.Float32s()
					k, hd := m.Config.Outputs, m.Config.Hidden
					for i := lo; i < hi; i++ {
						probs[i] = append([]float32(nil), pv[(i-lo)*k:(i-lo+1)*k]...)
						features[i] = append([]float32(nil), fv[(i-lo)*hd:(i-lo+1)*hd]...)
					}
				})
			})
		}
	})
	if err != nil {
		return nil, nil, fmt.Errorf("classify: Predict: %w", err)
	}
	return probs, features, nil
}

// PredictImages is Predict of the Preprocess of each image: for each image
// (any image.Image at least MinImageSize pixels a side, converted to gray,
// centre-cropped and resized as Preprocess does), the probability of each
// finding of Findings and the features. An image Preprocess rejects is an
// error naming its index.
func (m *Model) PredictImages(imgs []image.Image) (probs, features [][]float32, err error) {
	xs := make([][]float32, len(imgs))
	for i, im := range imgs {
		if xs[i], err = Preprocess(im); err != nil {
			return nil, nil, fmt.Errorf("classify: PredictImages: image %d: %w", i, err)
		}
	}
	return m.Predict(xs)
}

// metaConfig is the safetensors metadata key holding the Config as JSON.
const metaConfig = "classify_config"

// Save writes m's weights to path as safetensors (F32, the parameter names
// of Model) with its Config as JSON under the metadata key
// "classify_config". The file is written atomically.
func Save(path string, m *Model) error {
	if m == nil {
		return errors.New("classify: Save: the model is nil")
	}
	cj, err := json.Marshal(m.Config)
	if err != nil {
		return fmt.Errorf("classify: Save: %w", err)
	}
	params := make([]nn.Param, len(m.params))
	for i, p := range m.params {
		params[i] = nn.Param{Name: p.Name, Tensor: p.Tensor.Detach()}
	}
	defer func() {
		for _, p := range params {
			p.Tensor.Release()
		}
	}()
	if err := nn.SaveSafetensors(path, params, map[string]string{"format": "pt", metaConfig: string(cj)}); err != nil {
		return fmt.Errorf("classify: Save %s: %w", path, err)
	}
	return nil
}

// Load reads a model written by Save. The weights are copied into memory,
// so the file may change afterwards. Errors name the file and the problem:
// a missing or unreadable file, no or invalid config metadata, missing,
// misshapen or unexpected tensors.
func Load(path string) (*Model, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("classify: Load: %w", err)
	}
	src, err := nn.OpenSafetensors(path)
	if err != nil {
		return nil, fmt.Errorf("classify: Load %s: %w (expected a safetensors file written by classify.Save)", path, err)
	}
	defer src.Close()
	cfg, err := readConfig(path)
	if err != nil {
		return nil, err
	}
	ms := nn.MapSource{}
	for _, k := range src.Keys() {
		t, err := src.Load(k)
		if err != nil {
			return nil, fmt.Errorf("classify: Load %s: tensor %q: %w", path, k, err)
		}
		if t.DType() != tensor.F32 {
			c := t.To(tensor.F32)
			ms[k] = c
		} else {
			ms[k] = t.Clone()
		}
	}
	m, _, err := nn.Build(ms, cfg, tensor.F32, New)
	if err != nil {
		return nil, fmt.Errorf("classify: Load %s: %w", path, err)
	}
	return m, nil
}

// readConfig reads the Config from the metadata of the safetensors file at
// path.
func readConfig(path string) (Config, error) {
	a, err := tensor.LoadSafetensors(path)
	if err != nil {
		return Config{}, fmt.Errorf("classify: Load %s: %w", path, err)
	}
	defer a.Close()
	js, ok := a.Metadata[metaConfig]
	if !ok {
		return Config{}, fmt.Errorf("classify: Load %s: no %q metadata, expected a file written by classify.Save", path, metaConfig)
	}
	var c Config
	if err := json.Unmarshal([]byte(js), &c); err != nil {
		return Config{}, fmt.Errorf("classify: Load %s: metadata %q: %w", path, metaConfig, err)
	}
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("classify: Load %s: %w", path, err)
	}
	return c, nil
}
