package classify

import (
	"encoding/json"
	"image"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/roentgo/roentgo/nn"
	"github.com/roentgo/roentgo/tensor"
)

// randomInputs returns n pseudo-random inputs in [0, 1].
func randomInputs(n int, seed uint64) [][]float32 {
	r := newRNG(seed)
	out := make([][]float32, n)
	for i := range out {
		out[i] = make([]float32, InputSize*InputSize)
		for j := range out[i] {
			out[i][j] = float32(r.float())
		}
	}
	return out
}

func newTestModel(t *testing.T, seed uint64) *Model {
	t.Helper()
	m, err := New(nn.NewRandomBuilder(seed, tensor.F32), DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestForwardShapes(t *testing.T) {
	m := newTestModel(t, 1)
	x := randomInputs(3, 1)
	buf := append(append(append([]float32(nil), x[0]...), x[1]...), x[2]...)
	var lshape, fshape tensor.Shape
	tensor.NoGrad(func() {
		tensor.Do(func() {
			lg, ft := m.Forward(tensor.FromFloat32(buf, 3, 1, InputSize, InputSize))
			lshape, fshape = lg.Shape().Clone(), ft.Shape().Clone()
		})
	})
	if !lshape.Equal(tensor.Shape{3, len(Findings)}) || !fshape.Equal(tensor.Shape{3, DefaultConfig().Hidden}) {
		t.Fatalf("Forward: logits %v, features %v; want [3 %d], [3 %d]", lshape, fshape, len(Findings), DefaultConfig().Hidden)
	}
	// Predict splits into batches of 32: 33 inputs give the same numbers for
	// the first 3 as a batch of 3 (per-sample GroupNorm, no batch
	// statistics), up to float rounding.
	probs, feats, err := m.Predict(append(x, randomInputs(30, 2)...))
	if err != nil {
		t.Fatal(err)
	}
	p3, _, err := m.Predict(x)
	if err != nil {
		t.Fatal(err)
	}
	if len(probs) != 33 || len(feats) != 33 || len(probs[0]) != len(Findings) || len(feats[0]) != DefaultConfig().Hidden {
		t.Fatalf("Predict: %d probs of %d, %d features of %d", len(probs), len(probs[0]), len(feats), len(feats[0]))
	}
	for i := range p3 {
		for k := range p3[i] {
			if d := p3[i][k] - probs[i][k]; d > 1e-5 || d < -1e-5 || !(p3[i][k] > 0 && p3[i][k] < 1) {
				t.Fatalf("input %d finding %d: %v alone, %v in a batch of 33", i, k, p3[i][k], probs[i][k])
			}
		}
	}
	if _, _, err := m.Predict([][]float32{make([]float32, 10)}); err == nil || !strings.Contains(err.Error(), "16384") {
		t.Errorf("Predict of 10 values: error %v, want one naming the expected 16384", err)
	}
}

func TestConfigValidate(t *testing.T) {
	bad := map[string]func(c *Config){
		"groups":   func(c *Config) { c.Groups = 3 },
		"grid":     func(c *Config) { c.Grid = 3 },
		"outputs":  func(c *Config) { c.Outputs = 4 },
		"stages":   func(c *Config) { c.Channels = []int{8, 8, 8, 8, 8, 8, 8, 8} },
		"std":      func(c *Config) { c.Std = 0 },
		"no stage": func(c *Config) { c.Channels = nil },
	}
	for name, f := range bad {
		c := DefaultConfig()
		f(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: no error", name)
		}
		if _, err := New(nn.NewRandomBuilder(1, tensor.F32), c); err == nil {
			t.Errorf("New with bad %s: no error", name)
		}
	}
	if _, err := New(nil, DefaultConfig()); err == nil {
		t.Error("New(nil builder): no error")
	}
}

func TestSaveLoad(t *testing.T) {
	m := newTestModel(t, 5)
	path := filepath.Join(t.TempDir(), "c.safetensors")
	if err := Save(path, m); err != nil {
		t.Fatal(err)
	}
	m2, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path); err != nil { // the loaded model owns its weights
		t.Fatal(err)
	}
	x := randomInputs(4, 9)
	p1, f1, err := m.Predict(x)
	if err != nil {
		t.Fatal(err)
	}
	p2, f2, err := m2.Predict(x)
	if err != nil {
		t.Fatal(err)
	}
	for i := range p1 {
		for k := range p1[i] {
			if p1[i][k] != p2[i][k] {
				t.Fatalf("input %d finding %d: %v before saving, %v after loading", i, k, p1[i][k], p2[i][k])
			}
		}
		for k := range f1[i] {
			if f1[i][k] != f2[i][k] {
				t.Fatalf("input %d feature %d: %v before saving, %v after loading", i, k, f1[i][k], f2[i][k])
			}
		}
	}
	if m2.Config.Hidden != m.Config.Hidden || len(m2.Config.Channels) != len(m.Config.Channels) {
		t.Errorf("config %+v after loading, want %+v", m2.Config, m.Config)
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	m := newTestModel(t, 5)
	params := m.Params()
	cfgJSON := `{"stem":16,"channels":[16,32,64,128],"blocks":1,"groups":8,"grid":4,"hidden":128,"outputs":9,"mean":0.5,"std":0.25}`
	write := func(name string, ps []nn.Param, meta map[string]string) string {
		p := filepath.Join(dir, name)
		if err := nn.SaveSafetensors(p, ps, meta); err != nil {
			t.Fatal(err)
		}
		return p
	}
	corrupt := filepath.Join(dir, "corrupt.safetensors")
	if err := os.WriteFile(corrupt, []byte("\x10\x00\x00\x00\x00\x00\x00\x00{not json at all"), 0o644); err != nil {
		t.Fatal(err)
	}
	misshapen := strings.Replace(cfgJSON, `"hidden":128`, `"hidden":64`, 1)
	cases := []struct {
		name, path, want string
	}{
		{"missing file", filepath.Join(dir, "nope.safetensors"), "no such file"},
		{"corrupt file", corrupt, "corrupt.safetensors"},
		{"no config", write("nometa.safetensors", params, nil), "classify_config"},
		{"bad config", write("badmeta.safetensors", params, map[string]string{metaConfig: "{"}), "classify_config"},
		{"missing tensor", write("missing.safetensors", params[1:], map[string]string{metaConfig: cfgJSON}), params[0].Name},
		{"misshapen tensors", write("shape.safetensors", params, map[string]string{metaConfig: misshapen}), "head.hidden.weight"},
		{"extra tensor", write("extra.safetensors", append(params[:len(params):len(params)], nn.Param{Name: "extra.weight", Tensor: tensor.Zeros(tensor.F32, 2)}), map[string]string{metaConfig: cfgJSON}), "extra.weight"},
	}
	for _, c := range cases {
		_, err := Load(c.path)
		t.Logf("%s: %v", c.name, err)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one mentioning %q", c.name, err, c.want)
		}
	}
	if err := Save(filepath.Join(dir, "x"), nil); err == nil {
		t.Error("Save(nil model): no error")
	}
}

// TestStatJSON: undefined metrics are written as null, defined ones as
// numbers.
func TestStatJSON(t *testing.T) {
	b, err := json.Marshal(Stat{Name: "x", Positives: 0, Negatives: 3, Accuracy: 1, Sensitivity: math.NaN(), Specificity: 1, AUROC: math.NaN()})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"name":"x","positives":0,"negatives":3,"accuracy":1,"sensitivity":null,"specificity":1,"auroc":null}`; string(b) != want {
		t.Fatalf("got %s, want %s", b, want)
	}
}

// TestPredictImages: PredictImages is Predict of Preprocess, and names an
// image Preprocess rejects.
func TestPredictImages(t *testing.T) {
	m := newTestModel(t, 3)
	imgs := make([]image.Image, 3)
	xs := make([][]float32, 3)
	for i := range imgs {
		g := image.NewGray(image.Rect(0, 0, 40+8*i, 48))
		for j := range g.Pix {
			g.Pix[j] = uint8(j*7 + 31*i)
		}
		imgs[i] = g
		x, err := Preprocess(g)
		if err != nil {
			t.Fatal(err)
		}
		xs[i] = x
	}
	p1, f1, err := m.PredictImages(imgs)
	if err != nil {
		t.Fatal(err)
	}
	p2, f2, err := m.Predict(xs)
	if err != nil {
		t.Fatal(err)
	}
	for i := range p1 {
		for k := range p1[i] {
			if p1[i][k] != p2[i][k] {
				t.Fatalf("image %d finding %d: PredictImages %v, Predict %v", i, k, p1[i][k], p2[i][k])
			}
		}
		for k := range f1[i] {
			if f1[i][k] != f2[i][k] {
				t.Fatalf("image %d feature %d: PredictImages %v, Predict %v", i, k, f1[i][k], f2[i][k])
			}
		}
	}
	imgs[1] = image.NewGray(image.Rect(0, 0, 8, 8))
	if _, _, err := m.PredictImages(imgs); err == nil || !strings.Contains(err.Error(), "image 1") {
		t.Errorf("a too small image: error %v, want one naming image 1", err)
	}
}
