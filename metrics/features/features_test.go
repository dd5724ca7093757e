package features

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/roentgo/roentgo/internal/npy"
	"github.com/roentgo/roentgo/nn"
	"github.com/roentgo/roentgo/tensor"
)

// pattern is scripts/golden_features.py's test input: uint8 [n, c, h, w]
// (7x + 13y + 29c + 31i + (x*y) % 17 + (x*x + 3y + seed) % 23) % 256, as
// float32 values.
func pattern(n, c, h, w, seed int) []float32 {
	out := make([]float32, 0, n*c*h*w)
	for i := 0; i < n; i++ {
		for k := 0; k < c; k++ {
			for y := 0; y < h; y++ {
				for x := 0; x < w; x++ {
					out = append(out, float32((7*x+13*y+29*k+31*i+(x*y)%17+(x*x+3*y+seed)%23)%256))
				}
			}
		}
	}
	return out
}

func scaled(v []float32, a, b float32) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = x*a + b
	}
	return out
}

func readGolden(t *testing.T, name string) *npy.Array {
	t.Helper()
	a, err := npy.Read(filepath.Join("testdata", name+".npy"))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// captured is a copy of a hooked layer output.
type captured struct {
	shape []int
	data  []float32
}

func capture(into map[string]captured) func(string, *tensor.Tensor) {
	return func(name string, x *tensor.Tensor) { into[name] = captured{x.Shape(), x.Float32s()} }
}

// compareLayer checks got against the golden prefix (the first channels of
// the layer, as the script stores them): |g - w| <= tol*(max|w| + |w|). It
// returns the largest error relative to max|w|.
func compareLayer(t *testing.T, name string, got captured, want *npy.Array, tol float64) float64 {
	t.Helper()
	wv, err := want.Float32()
	if err != nil {
		t.Fatal(err)
	}
	if len(got.shape) != len(want.Shape) || got.shape[0] != want.Shape[0] {
		t.Fatalf("%s: shape %v, golden %v", name, got.shape, want.Shape)
	}
	for i := 2; i < len(got.shape); i++ {
		if got.shape[i] != want.Shape[i] {
			t.Fatalf("%s: shape %v, golden %v", name, got.shape, want.Shape)
		}
	}
	n, cg, cw := got.shape[0], got.shape[1], want.Shape[1]
	per := 1
	for _, d := range got.shape[2:] {
		per *= d
	}
	var scale float64
	for _, v := range wv {
		scale = math.Max(scale, math.Abs(float64(v)))
	}
	var worst float64
	for i := 0; i < n; i++ {
		for c := 0; c < cw; c++ {
			for j := 0; j < per; j++ {
				g := float64(got.data[(i*cg+c)*per+j])
				w := float64(wv[(i*cw+c)*per+j])
				e := math.Abs(g - w)
				worst = math.Max(worst, e/scale)
				if !(e <= tol*(scale+math.Abs(w))) {
					t.Fatalf("%s: [%d, %d, %d]: got %v, want %v (scale %v)", name, i, c, j, g, w, scale)
				}
			}
		}
	}
	return worst
}

func openSmall(t *testing.T, name string) *nn.SafetensorsSource {
	t.Helper()
	s, err := nn.OpenSafetensors(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

const goldenTol = 1e-4

func TestInceptionGolden(t *testing.T) {
	m, _, err := nn.Build(openSmall(t, "inception_d8.safetensors"), InceptionConfig{WidthDiv: 8}, tensor.F32, NewInception)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		tag     string
		n, h, w int
	}{{"299", 1, 299, 299}, {"107", 2, 107, 93}} {
		got := map[string]captured{}
		m.Hook = capture(got)
		x := tensor.FromFloat32(scaled(pattern(c.n, 3, c.h, c.w, 5), 1.0/255, 0), c.n, 3, c.h, c.w)
		f := m.Features(x)
		if f.Dim(1) != InceptionDim/8 {
			t.Fatalf("features %v", f.Shape())
		}
		checked := 0
		for name, v := range got {
			path := filepath.Join("testdata", "inception_"+c.tag+"_"+name+".npy")
			if _, err := os.Stat(path); err != nil {
				continue
			}
			e := compareLayer(t, c.tag+" "+name, v, readGolden(t, "inception_"+c.tag+"_"+name), goldenTol)
			t.Logf("%s %-9s max error %.2e of max|ref|", c.tag, name, e)
			checked++
		}
		if checked < 3 {
			t.Fatalf("%s: only %d layers checked", c.tag, checked)
		}
	}
}

func smallDenseNet() DenseNetConfig {
	return DenseNetConfig{GrowthRate: 4, BlockConfig: []int{6, 12, 24, 16}, NumInitFeatures: 8, BNSize: 2, NumClasses: 18, InChannels: 1}
}

func TestDenseNetGolden(t *testing.T) {
	m, _, err := nn.Build(openSmall(t, "densenet_small.safetensors"), smallDenseNet(), tensor.F32, NewDenseNet)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		tag     string
		n, h, w int
	}{{"64", 2, 64, 64}, {"224", 1, 224, 224}} {
		got := map[string]captured{}
		m.Hook = capture(got)
		px := pattern(c.n, 1, c.h, c.w, 9)
		for i, v := range px {
			px[i] = XRVNormalize(v)
		}
		f := m.Features(tensor.FromFloat32(px, c.n, 1, c.h, c.w))
		if f.Dim(1) != m.Dim() {
			t.Fatalf("features %v, Dim %d", f.Shape(), m.Dim())
		}
		logits := m.Logits(f)
		got["logits"] = captured{logits.Shape(), logits.Float32s()}
		var cal []float32
		for _, row := range m.Calibrated(logits) {
			cal = append(cal, row...)
		}
		got["calibrated"] = captured{logits.Shape(), cal}
		for name, v := range got {
			e := compareLayer(t, c.tag+" "+name, v, readGolden(t, "densenet_"+c.tag+"_"+name), goldenTol)
			t.Logf("%s %-11s max error %.2e of max|ref|", c.tag, name, e)
		}
		if len(got) != 12 {
			t.Fatalf("%d layers hooked", len(got))
		}
	}
}

func smallCLIP() CLIPVisionConfig {
	return CLIPVisionConfig{HiddenSize: 32, IntermediateSize: 128, NumHiddenLayers: 2, NumAttentionHeads: 4,
		PatchSize: 16, ImageSize: 64, ProjectionDim: 16, HiddenAct: "quick_gelu", LayerNormEps: 1e-5}
}

func clipInput() *tensor.Tensor {
	px := pattern(2, 3, 64, 64, 11)
	hw := 64 * 64
	for i := range px {
		k := (i / hw) % 3
		px[i] = (px[i]/255 - CLIPMean[k]) / CLIPStd[k]
	}
	return tensor.FromFloat32(px, 2, 3, 64, 64)
}

func checkCLIP(t *testing.T, m *CLIPVision) {
	t.Helper()
	got := map[string]captured{}
	m.Hook = capture(got)
	m.Features(clipInput())
	for name, v := range got {
		e := compareLayer(t, name, v, readGolden(t, "clip_"+name), goldenTol)
		t.Logf("%-12s max error %.2e of max|ref|", name, e)
	}
	if len(got) != 5 {
		t.Fatalf("%d layers hooked", len(got))
	}
}

func TestCLIPVisionGolden(t *testing.T) {
	m, _, err := nn.Build(openSmall(t, "clip_vision_small.safetensors"), smallCLIP(), tensor.F32, NewCLIPVision)
	if err != nil {
		t.Fatal(err)
	}
	checkCLIP(t, m)
}

// The same weights under OpenAI's names (in_proj packed, proj transposed)
// give the same model through OpenAIVisionSource.
func TestCLIPVisionOpenAINames(t *testing.T) {
	hf := openSmall(t, "clip_vision_small.safetensors")
	get := func(k string) *tensor.Tensor {
		x, err := hf.Load(k)
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	oa := nn.MapSource{
		"visual.class_embedding":       get("vision_model.embeddings.class_embedding"),
		"visual.conv1.weight":          get("vision_model.embeddings.patch_embedding.weight"),
		"visual.positional_embedding":  get("vision_model.embeddings.position_embedding.weight"),
		"visual.ln_pre.weight":         get("vision_model.pre_layrnorm.weight"),
		"visual.ln_pre.bias":           get("vision_model.pre_layrnorm.bias"),
		"visual.ln_post.weight":        get("vision_model.post_layernorm.weight"),
		"visual.ln_post.bias":          get("vision_model.post_layernorm.bias"),
		"visual.proj":                  get("visual_projection.weight").Transpose(0, 1).Contiguous(),
		"transformer.resblocks.0.ln_1": get("vision_model.post_layernorm.bias"), // a text-tower key: ignored
	}
	for i := 0; i < 2; i++ {
		hp := fmt.Sprintf("vision_model.encoder.layers.%d.", i)
		op := fmt.Sprintf("visual.transformer.resblocks.%d.", i)
		for _, p := range []string{"weight", "bias"} {
			oa[op+"attn.in_proj_"+p] = tensor.Cat(0, get(hp+"self_attn.q_proj."+p), get(hp+"self_attn.k_proj."+p), get(hp+"self_attn.v_proj."+p))
			for oName, hName := range map[string]string{"attn.out_proj.": "self_attn.out_proj.", "ln_1.": "layer_norm1.",
				"ln_2.": "layer_norm2.", "mlp.c_fc.": "mlp.fc1.", "mlp.c_proj.": "mlp.fc2."} {
				oa[op+oName+p] = get(hp + hName + p)
			}
		}
	}
	src := OpenAIVisionSource(oa)
	m, b, err := nn.Build(prefixSource{src, []string{"vision_model.", "visual_projection."}}, smallCLIP(), tensor.F32, NewCLIPVision)
	if err != nil {
		t.Fatal(err, b.Missing())
	}
	checkCLIP(t, m)
}

func TestResizeBicubicGolden(t *testing.T) {
	for tag, s := range map[string][4]int{"down": {64, 80, 29, 37}, "up": {23, 17, 40, 31}, "mixed": {50, 20, 30, 45}} {
		im := &Image{C: 1, H: s[0], W: s[1], Pix: pattern(1, 1, s[0], s[1], 3)}
		got := ResizeBicubic(im, s[3], s[2])
		e := compareLayer(t, "pil "+tag, captured{[]int{1, 1, s[2], s[3]}, got.Pix},
			&npy.Array{Shape: []int{1, 1, s[2], s[3]}, DType: "f4", Data: readGolden(t, "resize_pil_"+tag).Data}, 1e-6)
		t.Logf("PIL bicubic %-5s max error %.2e of max|ref|", tag, e)
	}
	// The identity size is a copy.
	im := &Image{C: 1, H: 5, W: 4, Pix: pattern(1, 1, 5, 4, 1)}
	if r := ResizeBicubic(im, 4, 5); fmt.Sprint(r.Pix) != fmt.Sprint(im.Pix) {
		t.Fatal("same-size resize changed the image")
	}
}

func TestResizeXRVGolden(t *testing.T) {
	for tag, s := range map[string][2]int{"down": {80, 24}, "up": {20, 33}} {
		px := pattern(1, 1, s[0], s[0], 4)
		for i, v := range px {
			px[i] = XRVNormalize(v)
		}
		got := ResizeXRV(&Image{C: 1, H: s[0], W: s[0], Pix: px}, s[1])
		e := compareLayer(t, "xrv "+tag, captured{[]int{1, 1, s[1], s[1]}, got.Pix},
			&npy.Array{Shape: []int{1, 1, s[1], s[1]}, DType: "f4", Data: readGolden(t, "resize_xrv_"+tag).Data}, 1e-5)
		t.Logf("XRV resize %-4s max error %.2e of max|ref|", tag, e)
	}
}

func TestPreprocessShapes(t *testing.T) {
	rgb := &Image{C: 3, H: 40, W: 30, Pix: pattern(1, 3, 40, 30, 2)}
	gray := &Image{C: 1, H: 40, W: 30, Pix: pattern(1, 1, 40, 30, 2)}
	x := PreprocessInception([]*Image{rgb, gray})
	if s := x.Shape(); s[0] != 2 || s[1] != 3 || s[2] != 299 || s[3] != 299 || x.MaxAll().Item() > 1 || x.MinAll().Item() < 0 {
		t.Fatalf("inception input %v", s)
	}
	x = PreprocessXRV([]*Image{rgb, gray})
	if s := x.Shape(); s[0] != 2 || s[1] != 1 || s[2] != 224 || s[3] != 224 || x.MaxAll().Item() > 1024 || x.MinAll().Item() < -1024 {
		t.Fatalf("xrv input %v", s)
	}
	x = PreprocessCLIP([]*Image{rgb, gray}, 24)
	if s := x.Shape(); s[0] != 2 || s[1] != 3 || s[2] != 24 || s[3] != 24 {
		t.Fatalf("clip input %v", s)
	}
	// Centre crop: a 40x30 image is cropped to rows 5..34.
	c := Crop(gray, 5, 0, 30, 30)
	if c.Pix[0] != gray.Pix[5*30] {
		t.Fatal("crop offset")
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	_, err := LoadInception(filepath.Join(dir, "missing.pth"), InceptionConfig{})
	if err == nil || !strings.Contains(err.Error(), "pytorch-fid") {
		t.Fatalf("missing file: %v", err)
	}
	legacy := filepath.Join(dir, "legacy.pth")
	os.WriteFile(legacy, []byte{0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc}, 0o644)
	if _, err := LoadInception(legacy, InceptionConfig{}); err == nil || !strings.Contains(err.Error(), "legacy") {
		t.Fatalf("legacy file: %v", err)
	}
	// The small model's file lacks the full-size shapes.
	if _, err := LoadDenseNet(filepath.Join("testdata", "densenet_small.safetensors")); err == nil || !strings.Contains(err.Error(), "features.conv0.weight") {
		t.Fatalf("wrong sizes: %v", err)
	}
	if _, err := LoadCLIPVision(filepath.Join("testdata", "clip_vision_small.safetensors"), smallCLIP()); err != nil {
		t.Fatal(err)
	}
}
