package pipeline

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"testing"

	"github.com/roentgo/roentgo/tensor"
	"github.com/roentgo/roentgo/tensor/rng"
	"github.com/stretchr/testify/require"
)

func TestPNGText(t *testing.T) {
	img := image.NewGray(image.Rect(0, 0, 3, 2))
	img.Pix[4] = 200
	text := []TextChunk{
		{"prompt", "small left-sided pleural effusion"},
		{"negative_prompt", "café"}, // Latin-1: tEXt
		{"note", "東京 — “quotes”"},   // needs iTXt
		{"empty", ""},
	}
	data, err := EncodePNG(img, text)
	require.NoError(t, err)
	// The standard decoder (which checks every chunk's CRC) still reads it.
	dec, err := png.Decode(bytes.NewReader(data))
	require.NoError(t, err)
	require.IsType(t, &image.Gray{}, dec)
	require.Equal(t, uint8(200), dec.(*image.Gray).Pix[4])
	got, err := ReadPNGText(data)
	require.NoError(t, err)
	require.Equal(t, text, got)
	// The Latin-1 value is stored as one byte per character in a tEXt chunk.
	require.True(t, bytes.Contains(data, []byte("tEXtnegative_prompt\x00caf\xe9")))
	require.True(t, bytes.Contains(data, []byte("iTXtnote\x00\x00\x00\x00\x00")))
	// A corrupted byte inside a text chunk is caught by the CRC.
	bad := bytes.Clone(data)
	i := bytes.Index(bad, []byte("small"))
	bad[i] = 'S'
	_, err = ReadPNGText(bad)
	require.ErrorContains(t, err, "CRC")
	_, err = EncodePNG(img, []TextChunk{{"", "x"}})
	require.Error(t, err)
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a.png")
	require.NoError(t, WriteFileAtomic(p, []byte("one")))
	require.NoError(t, WriteFileAtomic(p, []byte("two")))
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	require.Equal(t, "two", string(b))
	require.Error(t, WriteFileAtomic(filepath.Join(dir, "missing", "b.png"), []byte("x")))
	entries, _ := os.ReadDir(dir)
	require.Len(t, entries, 1, "no temporary file left")
	require.Error(t, CheckWritable(filepath.Join(dir, "missing", "c.png")))
	require.Error(t, CheckWritable(filepath.Join(p, "c.png")), "parent is a file")
	require.Error(t, CheckWritable(dir), "a folder as the output")
	require.NoError(t, CheckWritable(filepath.Join(dir, "d.png")))
	entries, _ = os.ReadDir(dir)
	require.Len(t, entries, 1, "CheckWritable leaves nothing behind")
}

func TestPixelConversions(t *testing.T) {
	// Hand-derived: v = clamp(x/2+0.5, 0, 1), round-half-even(v*255).
	for _, c := range []struct {
		x    float32
		want uint8
	}{{-1, 0}, {-3, 0}, {1, 255}, {5, 255}, {0, 128 /* 127.5 -> 128 (even) */}, {2*(100.0/255) - 1, 100}, {float32(2*(0.5/255)) - 1, 0 /* 0.5 -> 0 (even) */}} {
		require.Equal(t, c.want, ToUint8(c.x), "x=%v", c.x)
	}
	// BT.601 luma: 0.299 R + 0.587 G + 0.114 B.
	img := image.NewNRGBA(image.Rect(0, 0, 4, 1))
	for i, c := range []color.NRGBA{{255, 0, 0, 255}, {0, 255, 0, 255}, {0, 0, 255, 255}, {10, 20, 30, 255}} {
		img.Set(i, 0, c)
	}
	g := Gray(img)
	require.Equal(t, []uint8{76, 150, 29, 18 /* 2.99+11.74+3.42=18.15 */}, g.Pix)
}

func TestImageToTensor(t *testing.T) {
	// A 4x2 grayscale image to 2x2: the centred 2x2 crop, no resampling;
	// grayscale gives three equal channels, v -> 2 v/255 - 1.
	img := image.NewGray(image.Rect(0, 0, 4, 2))
	copy(img.Pix, []uint8{1, 2, 3, 4, 5, 6, 7, 8})
	x := ImageToTensor(img, 2, 2)
	require.Equal(t, tensor.Shape{1, 3, 2, 2}, x.Shape())
	want := []float32{}
	for c := 0; c < 3; c++ {
		for _, v := range []float32{2, 3, 6, 7} {
			want = append(want, 2*(v/255)-1)
		}
	}
	require.Equal(t, want, x.Float32s())
	// Resampling a constant image keeps it constant; any size works.
	rgb := image.NewNRGBA(image.Rect(0, 0, 37, 23))
	for i := 0; i < len(rgb.Pix); i += 4 {
		copy(rgb.Pix[i:], []uint8{10, 128, 250, 255})
	}
	y := ImageToTensor(rgb, 16, 8).Float32s()
	for i, v := range y {
		require.Equal(t, 2*(float32([]uint8{10, 128, 250}[i/128])/255)-1, v)
	}
}

func TestLoadErrors(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope"), Options{})
	require.ErrorContains(t, err, "does not exist")
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "unet"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "unet", "config.json"), []byte("{}"), 0o644))
	_, err = Load(dir, Options{})
	require.ErrorContains(t, err, "not a diffusers Stable Diffusion folder: missing model_index.json, tokenizer/vocab.json, tokenizer/merges.txt, text_encoder/config.json, vae/config.json, scheduler/scheduler_config.json")
	_, err = Load("", Options{})
	require.Error(t, err)
}

func TestSchedulerConfigFromPipeline(t *testing.T) {
	p := loadGolden(t)
	require.Equal(t, "pndm", p.SchedulerName)
	c, err := p.SchedulerConfig("ddim")
	require.NoError(t, err)
	// The golden ddim case: DDIM.from_config(PNDM config) with clip_sample
	// false, set_alpha_to_one false, steps_offset 1.
	require.False(t, c.ClipSample)
	require.False(t, c.SetAlphaToOne)
	require.Equal(t, 1, c.StepsOffset)
	require.Equal(t, 0.00085, c.BetaStart)
	_, err = p.SchedulerConfig("bogus")
	require.ErrorContains(t, err, "unknown scheduler")
	h, w := p.DefaultSize()
	require.Equal(t, 64, h) // sample_size 32 x factor 2
	require.Equal(t, 64, w)
	require.Regexp(t, "^[0-9a-f]{12}$", p.ModelHash())
}

func TestRequestErrors(t *testing.T) {
	p := loadGolden(t)
	ctx := context.Background()
	for _, c := range []struct {
		req  Request
		want string
	}{
		{Request{Height: 33, Width: 32, Steps: 1}, "multiples of 2"},
		{Request{Height: 32, Width: 32, Steps: -1}, "steps"},
		{Request{Height: 32, Width: 32, Steps: 1, Scheduler: "nope"}, "unknown scheduler"},
		{Request{Height: 32, Width: 32, Steps: 1, NumImages: -2}, "images per prompt"},
		{Request{Height: 32, Width: 32, Steps: 1, Prompts: []string{"a", "b"}, Negatives: []string{"x"}}, "negative prompts"},
	} {
		_, err := p.Txt2Img(ctx, c.req)
		require.ErrorContains(t, err, c.want)
	}
	_, err := p.Img2Img(ctx, Request{Height: 32, Width: 32, Steps: 1})
	require.ErrorContains(t, err, "init image")
	_, err = p.Img2Img(ctx, Request{Height: 32, Width: 32, Steps: 1, InitImage: image.NewGray(image.Rect(0, 0, 4, 4)), Strength: 1.5})
	require.ErrorContains(t, err, "strength")
}

func TestDemoBatchingAndCancel(t *testing.T) {
	p, err := Demo()
	require.NoError(t, err)
	require.True(t, p.Demo)
	ctx := context.Background()
	base := Request{Prompt: "pleural effusion", Negative: "blurry", Guidance: 7.5, Steps: 3, Height: 64, Width: 64, Seed: 9}
	one, err := p.Txt2Img(ctx, base)
	require.NoError(t, err)
	require.Len(t, one.Images, 1)
	require.Equal(t, 64, one.Images[0].Bounds().Dx())
	// Two images per prompt are one draw of [2, 4, 8, 8] from the generator,
	// whose first 256 values are those of [1, 4, 8, 8] (torch's randn fills
	// blocks of 16 in order), so image 0 is the single image; batching them
	// one at a time (PNDM is deterministic) changes nothing.
	two := base
	two.NumImages, two.BatchSize = 2, 1
	r2, err := p.Txt2Img(ctx, two)
	require.NoError(t, err)
	require.Len(t, r2.Images, 2)
	require.Equal(t, one.Images[0].Pix, r2.Images[0].Pix)
	require.NotEqual(t, r2.Images[0].Pix, r2.Images[1].Pix)
	two.BatchSize = 0
	r3, err := p.Txt2Img(ctx, two)
	require.NoError(t, err)
	require.Equal(t, r2.Images[1].Pix, r3.Images[1].Pix)
	require.Equal(t, 2*4, r2.Timings.Steps) // PNDM: 3 steps are 4 evaluations, per batch

	// Cancellation from the callback and from the context.
	calls := 0
	c := base
	c.Callback = func(step, total int, _ float64, _ *tensor.Tensor) bool { calls++; return step < 1 }
	_, err = p.Txt2Img(ctx, c)
	require.ErrorIs(t, err, ErrCancelled)
	require.Equal(t, 2, calls)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = p.Txt2Img(cctx, base)
	require.True(t, errors.Is(err, context.Canceled), "got %v", err)

	text := one.Text(0)
	m := map[string]string{}
	for _, kv := range text {
		m[kv.Key] = kv.Value
	}
	require.Equal(t, "pleural effusion", m["prompt"])
	require.Equal(t, "blurry", m["negative_prompt"])
	require.Equal(t, "9", m["seed"])
	require.Equal(t, "3", m["steps"])
	require.Equal(t, "pndm", m["scheduler"])
	require.Equal(t, "7.5", m["guidance_scale"])
	require.Equal(t, "64x64", m["size"])
	require.Len(t, m["model_hash"], 12)
}

// TestImg2ImgStrengthZero: with no step left, the output is the VAE's
// reconstruction of the init image, computed here from the parts.
func TestImg2ImgStrengthZero(t *testing.T) {
	p := loadGolden(t)
	img := image.NewNRGBA(image.Rect(0, 0, 40, 30))
	g := rng.New(5)
	u := tensor.Rand(g, len(img.Pix)).Float32s()
	for i := range img.Pix {
		img.Pix[i] = uint8(u[i] * 255)
	}
	// DDIM (PNDM would still run one step: its N+1 timesteps, as in diffusers).
	res, err := p.Img2Img(context.Background(), Request{Prompt: "x", Guidance: 7.5, Steps: 4, Height: 32, Width: 32, InitImage: img, Strength: 0, EncodeMode: true, Scheduler: "ddim"})
	require.NoError(t, err)
	require.Equal(t, 0, res.Timings.Steps)
	x := ImageToTensor(img, 32, 32)
	z := p.VAE.Encode(x).Mode()
	sf := float32(p.VAE.Config.ScalingFactor)
	dec := p.VAE.Decode(z.MulScalar(sf).MulScalar(float32(1 / p.VAE.Config.ScalingFactor)))
	want := TensorToImages(dec)[0]
	require.Equal(t, want.Pix, res.Images[0].Pix)

	// Strength 1 runs every step, 0.5 half of them (diffusers' get_timesteps).
	for _, c := range []struct {
		s    float64
		want int
	}{{1, 5 /* PNDM: 4 steps, 5 evaluations */}, {0.5, 3}} {
		res, err := p.Img2Img(context.Background(), Request{Prompt: "x", Guidance: 7.5, Steps: 4, Height: 32, Width: 32, InitImage: img, Strength: c.s})
		require.NoError(t, err)
		require.Equal(t, c.want, res.Timings.Steps, "strength %v", c.s)
	}
}

// TestWriteRandomRoundTrip: a random model written as a diffusers folder
// loads back (in its stored dtype) and computes exactly what the in-memory
// model computes.
func TestWriteRandomRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "m")
	require.NoError(t, WriteRandom(dir, "tiny", 3, tensor.F16))
	require.ErrorContains(t, WriteRandom(dir, "tiny", 3, tensor.F16), "already holds a model")
	require.ErrorContains(t, WriteRandom(t.TempDir(), "huge", 3, tensor.F16), "unknown random model")
	mem, err := NewRandom("tiny", 3, tensor.F16)
	require.NoError(t, err)
	disk, err := Load(dir, Options{})
	require.NoError(t, err)
	defer disk.Close()
	require.Equal(t, tensor.F16, disk.UNet.ConvIn.Weight.DType(), "F16 folder -> F16 weights")
	f32, err := Load(dir, Options{DType: "f32"})
	require.NoError(t, err)
	defer f32.Close()
	require.Equal(t, tensor.F32, f32.UNet.ConvIn.Weight.DType())
	_, err = Load(dir, Options{DType: "f8"})
	require.ErrorContains(t, err, "dtype")
	_, err = Load(dir, Options{Scheduler: "nope"})
	require.ErrorContains(t, err, "unknown scheduler")

	req := Request{Prompt: "the effusion", Guidance: 5, Steps: 2, Height: 64, Width: 64, Seed: 1, Scheduler: "ddim"}
	a, err := mem.Txt2Img(context.Background(), req)
	require.NoError(t, err)
	b, err := disk.Txt2Img(context.Background(), req)
	require.NoError(t, err)
	require.Equal(t, a.Images[0].Pix, b.Images[0].Pix)
	ids, _, err := disk.Tokenizer.Encode("th is")
	require.NoError(t, err)
	// BOS, "th</w>" (the one merge), "i", "s</w>" (byte symbols: 'i' is
	// byte 105, the 73rd printable symbol, id 72; "s</w>" is 256 + 82), EOS.
	require.Equal(t, []int32{512, 514, 72, 256 + 82, 513}, ids[:5])
}
