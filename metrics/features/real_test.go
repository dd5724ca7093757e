package features

import (
	"math"
	"os"
	"testing"

	"github.com/roentgo/roentgo/nn"
	"github.com/roentgo/roentgo/tensor"
)

// Tests with the real weights run when the environment names the files
// (docs/EVALUATION.md): ROENTGO_INCEPTION (pt_inception-2015-12-05-6726825d.pth
// as a zip checkpoint, or its safetensors conversion), ROENTGO_XRV_DENSENET
// (densenet121-res224-all as safetensors), ROENTGO_CLIP_VIT (ViT-B/32 image
// tower: transformers or OpenAI/open_clip keys).

func realWeights(t *testing.T, env string) string {
	p := os.Getenv(env)
	if p == "" {
		t.Skipf("%s not set: no real weights", env)
	}
	return p
}

func requireFinite(t *testing.T, what string, x *tensor.Tensor, rows, dim int) []float32 {
	t.Helper()
	if s := x.Shape(); len(s) != 2 || s[0] != rows || s[1] != dim {
		t.Fatalf("%s: shape %v, want [%d %d]", what, s, rows, dim)
	}
	v := x.Float32s()
	for _, f := range v {
		if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
			t.Fatalf("%s: non-finite feature", what)
		}
	}
	return v
}

func testImages() []*Image {
	return []*Image{{C: 1, H: 320, W: 256, Pix: pattern(1, 1, 320, 256, 1)}, {C: 3, H: 200, W: 240, Pix: pattern(1, 3, 200, 240, 2)}}
}

func TestRealInception(t *testing.T) {
	m, err := LoadInception(realWeights(t, "ROENTGO_INCEPTION"), InceptionConfig{})
	if err != nil {
		t.Fatal(err)
	}
	v := requireFinite(t, "inception", m.Features(PreprocessInception(testImages())), 2, InceptionDim)
	for _, f := range v {
		if f < 0 {
			t.Fatal("negative pool3 feature (pool3 averages ReLU outputs)")
		}
	}
}

func TestRealDenseNet(t *testing.T) {
	m, err := LoadDenseNet(realWeights(t, "ROENTGO_XRV_DENSENET"))
	if err != nil {
		t.Fatal(err)
	}
	f := m.Features(PreprocessXRV(testImages()))
	requireFinite(t, "densenet", f, 2, 1024)
	for _, row := range m.Calibrated(m.Logits(f)) {
		for j, p := range row {
			if !(p >= 0 && p <= 1) {
				t.Fatalf("%s: calibrated output %v", XRVPathologies[j], p)
			}
		}
	}
}

func TestRealCLIPVision(t *testing.T) {
	m, err := LoadCLIPVision(realWeights(t, "ROENTGO_CLIP_VIT"), DefaultCLIPVisionConfig())
	if err != nil {
		t.Fatal(err)
	}
	requireFinite(t, "clip", m.Features(PreprocessCLIP(testImages(), 224)), 2, 512)
}

// BenchmarkInceptionFeatures times the full-size FID Inception (random
// weights) on a batch of 8 images at 299x299 and reports images/s.
//
//	go test ./metrics/features -run '^$' -bench Inception -benchtime 3x
func BenchmarkInceptionFeatures(b *testing.B) {
	m, err := NewInception(nn.NewRandomBuilder(1, tensor.F32), InceptionConfig{})
	if err != nil {
		b.Fatal(err)
	}
	const n = 8
	x := tensor.FromFloat32(scaled(pattern(n, 3, 299, 299, 5), 1.0/255, 0), n, 3, 299, 299)
	m.Features(x).Release() // warm the buffer pool
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m.Features(x).Release()
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "images/s")
}

// BenchmarkDenseNetFeatures is BenchmarkInceptionFeatures for the XRV
// DenseNet-121 at 224x224.
func BenchmarkDenseNetFeatures(b *testing.B) {
	m, err := NewDenseNet(nn.NewRandomBuilder(1, tensor.F32), DefaultDenseNetConfig())
	if err != nil {
		b.Fatal(err)
	}
	const n = 8
	x := tensor.FromFloat32(scaled(pattern(n, 1, 224, 224, 5), 2048.0/255, -1024), n, 1, 224, 224)
	m.Features(x).Release()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m.Features(x).Release()
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "images/s")
}
