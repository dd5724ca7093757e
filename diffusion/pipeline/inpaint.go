package pipeline

import (
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"math"

	"github.com/roentgo/roentgo/diffusion"
	"github.com/roentgo/roentgo/tensor"
	"github.com/roentgo/roentgo/tensor/rng"
)

// The kinds of inpainting (Result.Inpaint).
const (
	// InpaintModel is diffusers 0.16.1's StableDiffusionInpaintPipeline: a
	// U-Net with 9 input channels (sd-v1-5-inpainting) sees the latents, the
	// mask and the masked image's latents at every step.
	InpaintModel = "model"
	// InpaintLegacy is diffusers 0.16.1's StableDiffusionInpaintPipelineLegacy
	// for ordinary 4-channel models: img2img from the init image, with the
	// kept region replaced by the noised original after every step.
	InpaintLegacy = "legacy"
)

// MaskThreshold is the value (of 1, luma/255) from which an inpainting
// U-Net's mask repaints: luma >= 128 of 255 repaints, less keeps (diffusers'
// prepare_mask_and_masked_image: mask < 0.5 becomes 0, the rest 1).
const MaskThreshold = 0.5

// IsInpaintModel reports whether the U-Net is an inpainting U-Net: its
// input is the latents, a mask channel and the masked image's latents
// (in_channels 2 latent_channels + 1, 9 for Stable Diffusion). Such a model
// generates only through Inpaint.
func (p *Pipeline) IsInpaintModel() bool {
	l := p.VAE.Config.LatentChannels
	return p.UNet.Config.InChannels == 2*l+1
}

// Inpaint repaints the white part of req.MaskImage in req.InitImage from
// text. It follows diffusers 0.16.1 step by step, in one of two ways
// chosen by the model:
//
// An inpainting U-Net (IsInpaintModel; StableDiffusionInpaintPipeline):
// the mask is read as luma/255 and thresholded at MaskThreshold (gray
// values become 0 or 1; Warn says so), masked_image = image * (mask < 0.5)
// (the repainted region becomes 0, mid-gray), and its VAE posterior,
// sampled with the generator after the initial noise was drawn and times
// scaling_factor, is the masked-image latents; the mask is brought to the
// latent size by nearest sampling (pixels [0::f, 0::f], torch's
// F.interpolate). Every step the U-Net gets cat([scaled latents, mask,
// masked-image latents]) along the channels (each duplicated for
// guidance), and the scheduler moves the 4 latent channels. As in 0.16.1
// there is no strength: generation starts from pure noise (Strength is
// ignored; Warn says so when it is neither 0 nor 1).
//
// A 4-channel model (StableDiffusionInpaintPipelineLegacy): img2img from
// the init image with req.Strength (the generator draws the posterior
// sample, then the noise), and after every step the latents become
// add_noise(init, noise, t) * keep + latents * (1 - keep), with keep = 1 -
// mask/255 at latent size (nearest sampling at pixel centres, PIL's
// NEAREST: pixels [f/2::f, f/2::f]); after the last step, init * keep +
// latents * (1 - keep). The legacy pipeline does not threshold: gray mask
// values blend the original and the generated latents in proportion
// (Warn says so).
//
// Init image and mask are brought to the output size (Request.MaskImage).
// Finished images are returned with an error as Txt2Img does.
func (p *Pipeline) Inpaint(ctx context.Context, req Request) (*Result, error) {
	if req.MaskImage == nil {
		return nil, errors.New("pipeline: inpainting needs a mask image (white = repaint)")
	}
	return p.run(ctx, &req, modeInpaint)
}

// planInpaint checks what inpainting needs (and that only inpainting uses
// an inpainting U-Net) and warns about what it ignores.
func (p *Pipeline) planInpaint(pl *plan, req *Request, warn bool) error {
	model := p.IsInpaintModel()
	if pl.mode != modeInpaint {
		if model {
			return fmt.Errorf("pipeline: the U-Net takes %d input channels: an inpainting model, which generates only from an init image and a mask (Inpaint, examples/inpaint)", p.UNet.Config.InChannels)
		}
		return nil
	}
	if req.MaskImage == nil {
		return errors.New("pipeline: inpainting needs a mask image (white = repaint)")
	}
	if b := req.MaskImage.Bounds(); b.Dx() < 1 || b.Dy() < 1 {
		return errors.New("pipeline: the mask image is empty")
	}
	if b := req.InitImage.Bounds(); b.Dx() < 1 || b.Dy() < 1 {
		return errors.New("pipeline: the init image is empty")
	}
	pl.inpaintModel = model
	if !warn {
		return nil
	}
	if model && req.Strength != 0 && req.Strength != 1 {
		p.warn(fmt.Sprintf("strength %g is ignored: with an inpainting model (9-channel U-Net) generation starts from pure noise, as diffusers 0.16.1's StableDiffusionInpaintPipeline does", req.Strength))
	}
	ib, mb := req.InitImage.Bounds(), req.MaskImage.Bounds()
	if ib.Dx() != mb.Dx() || ib.Dy() != mb.Dy() {
		p.warn(fmt.Sprintf("the mask is %dx%d but the init image %dx%d: both are resized to the output size %dx%d", mb.Dx(), mb.Dy(), ib.Dx(), ib.Dy(), pl.w, pl.h))
	}
	return nil
}

// maskPixels returns the mask's luma [h*w] at the output size w x h, with
// the same centre crop as ImageToTensor and nearest sampling (pixel
// centres), so that it stays aligned with the init image. Luma is PIL's
// convert("L"): (19595 R + 38470 G + 7471 B + 2^15) >> 16 of the 8-bit
// values; alpha is ignored.
func maskPixels(img image.Image, w, h int) []uint8 {
	b := img.Bounds()
	sw, sh := b.Dx(), b.Dy()
	cx, cy, cw, ch := cropRegion(sw, sh, w, h)
	out := make([]uint8, w*h)
	for y := 0; y < h; y++ {
		sy := cy + min(int(math.Floor((float64(y)+0.5)*float64(ch)/float64(h))), ch-1)
		for x := 0; x < w; x++ {
			sx := cx + min(int(math.Floor((float64(x)+0.5)*float64(cw)/float64(w))), cw-1)
			c := color.NRGBAModel.Convert(img.At(b.Min.X+sx, b.Min.Y+sy)).(color.NRGBA)
			out[y*w+x] = uint8((19595*uint32(c.R) + 38470*uint32(c.G) + 7471*uint32(c.B) + 1<<15) >> 16)
		}
	}
	return out
}

// isBinaryMask reports whether every mask value is 0 or 255.
func isBinaryMask(m []uint8) bool {
	for _, v := range m {
		if v != 0 && v != 255 {
			return false
		}
	}
	return true
}

// inpaintState is what the denoising loop needs beyond the latents.
type inpaintState struct {
	// extra: the inpainting U-Net's extra channels [N, 5, h, w] (mask,
	// masked-image latents); nil for legacy.
	extra *tensor.Tensor
	// Legacy: the encoded init image and the noise [N, C, h, w], and keep =
	// 1 - mask [h*w] (1 keeps the original; the same for every channel and
	// image).
	init, noise *tensor.Tensor
	keep        []float32
}

// legacy reports whether s blends (legacy inpainting).
func (s *inpaintState) legacy() bool { return s != nil && s.keep != nil }

// extraRows returns the extra channels of images lo..hi-1 (nil if none).
func (s *inpaintState) extraRows(lo, hi int) *tensor.Tensor {
	if s == nil || s.extra == nil {
		return nil
	}
	return s.extra.Narrow(0, lo, hi-lo)
}

func (s *inpaintState) release() {
	if s == nil {
		return
	}
	s.extra.Release()
	s.init.Release()
	s.noise.Release()
}

// inpaintModelInputs prepares an inpainting U-Net's extra channels (after
// the initial noise was drawn, as diffusers' prepare_mask_latents does).
func (p *Pipeline) inpaintModelInputs(req *Request, pl *plan, shared *rng.Generator, gens []*rng.Generator) (*inpaintState, error) {
	n := len(pl.prompts)
	img := ImageToTensor(req.InitImage, pl.w, pl.h) // [1, 3, H, W]
	defer img.Release()
	req.trace.values("prep_image", img)
	m := maskPixels(req.MaskImage, pl.w, pl.h)
	if !isBinaryMask(m) {
		p.warn(fmt.Sprintf("the mask has gray values: an inpainting model's mask is thresholded at %g (luma 128 of 255 and more repaint, less keep)", MaskThreshold))
	}
	hw := pl.w * pl.h
	mask := make([]float32, hw)
	for i, v := range m {
		if float32(v)/255 >= MaskThreshold {
			mask[i] = 1
		}
	}
	px := img.F32Data()
	masked := make([]float32, len(px))
	for c := 0; c < 3; c++ {
		for i := 0; i < hw; i++ {
			k := float32(0)
			if mask[i] < 0.5 {
				k = 1
			}
			masked[c*hw+i] = px[c*hw+i] * k
		}
	}
	if req.trace != nil && req.trace.named != nil {
		req.trace.named("prep_mask", mask)
		req.trace.named("masked_image", masked)
	}
	f := p.VAEScaleFactor()
	ml := make([]float32, pl.lh*pl.lw)
	for y := 0; y < pl.lh; y++ {
		for x := 0; x < pl.lw; x++ {
			ml[y*pl.lw+x] = mask[y*f*pl.w+x*f]
		}
	}
	if req.trace != nil && req.trace.named != nil {
		req.trace.named("mask_latent", ml)
	}
	mt := tensor.FromFloat32(masked, 1, 3, pl.h, pl.w)
	lat := p.encodeImage(mt, false, n, shared, gens) // [n, C, h, w]
	mt.Release()
	defer lat.Release()
	req.trace.values("masked_image_latents", lat)
	lc := lat.Dim(1)
	per := lc * pl.lh * pl.lw
	ld := lat.F32Data()
	extra := make([]float32, 0, n*(per+len(ml)))
	for i := 0; i < n; i++ {
		extra = append(extra, ml...)
		extra = append(extra, ld[i*per:(i+1)*per]...)
	}
	return &inpaintState{extra: tensor.FromFloat32(extra, n, lc+1, pl.lh, pl.lw)}, nil
}

// legacyInpaintLatents prepares legacy inpainting: the img2img latents and
// the blending state.
func (p *Pipeline) legacyInpaintLatents(req *Request, pl *plan, shared *rng.Generator, gens []*rng.Generator) (*tensor.Tensor, *inpaintState, int, error) {
	m := maskPixels(req.MaskImage, pl.w, pl.h)
	if !isBinaryMask(m) {
		p.warn("the mask has gray values: with a 4-channel model they blend the original and the generated image in proportion at every step (diffusers' legacy inpainting does not threshold); use a black-and-white mask for a hard edge")
	}
	f := p.VAEScaleFactor()
	keep := make([]float32, pl.lh*pl.lw)
	for y := 0; y < pl.lh; y++ {
		for x := 0; x < pl.lw; x++ {
			v := float32(m[(y*f+f/2)*pl.w+x*f+f/2]) / 255
			keep[y*pl.lw+x] = 1 - v
		}
	}
	if req.trace != nil && req.trace.named != nil {
		req.trace.named("keep_mask", keep)
	}
	lat, init, noise, first, err := p.noisedInit(req, pl, shared, gens)
	if err != nil {
		return nil, nil, 0, err
	}
	return lat, &inpaintState{init: init, noise: noise, keep: keep}, first, nil
}

// blend replaces the kept region of the latents lat of images lo..hi-1, in
// place, by the init latents noised to timestep t (the step just taken):
// lat = add_noise(init, noise, t) * keep + lat * (1 - keep), in float32 as
// diffusers computes it.
func (s *inpaintState) blend(sched diffusion.Scheduler, lat *tensor.Tensor, lo, hi int, t float64, tr *trace) {
	init := s.init.Narrow(0, lo, hi-lo)
	noise := s.noise.Narrow(0, lo, hi-lo)
	ts := make([]float64, hi-lo)
	for i := range ts {
		ts[i] = t
	}
	proper := sched.AddNoise(init, noise, ts)
	init.Release()
	noise.Release()
	defer proper.Release()
	if tr != nil && tr.named != nil {
		tr.named("step_prev_sample", lat.Float32s())
		tr.named("init_latents_proper", proper.Float32s())
	}
	mix(lat.F32Data(), proper.Float32s(), s.keep)
	if tr != nil && tr.named != nil {
		tr.named("latents_after_blend", lat.Float32s())
	}
}

// finalBlend returns init * keep + out * (1 - keep) for images lo..hi-1,
// releasing out.
func (s *inpaintState) finalBlend(out *tensor.Tensor, lo, hi int) *tensor.Tensor {
	init := s.init.Narrow(0, lo, hi-lo)
	r := out.Contiguous()
	out.Release()
	if r.DType() != tensor.F32 || r.Device() != tensor.CPU {
		panic("pipeline: finalBlend: latents not F32 on the host")
	}
	mix(r.F32Data(), init.Float32s(), s.keep)
	init.Release()
	return r
}

// mix sets dst = src * keep + dst * (1 - keep) elementwise, keep repeating
// over dst's channels and images; each product is rounded to float32
// before the sum (no fused multiply-add), as PyTorch computes it.
func mix(dst, src, keep []float32) {
	k := len(keep)
	for i := range dst {
		m := keep[i%k]
		dst[i] = float32(src[i]*m) + float32(dst[i]*(1-m))
	}
}
