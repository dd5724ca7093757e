package nn

import (
	"fmt"
	"math"

	"github.com/roentgo/roentgo/tensor"
)

// ResnetBlock2DConfig configures a ResnetBlock2D (diffusers' argument names in
// parentheses). Zero values select diffusers' defaults where noted.
type ResnetBlock2DConfig struct {
	In                int     // in_channels
	Out               int     // out_channels (0: In)
	TembChannels      int     // temb_channels (0: no time_emb_proj, as in the VAE)
	Groups            int     // groups (0: 32)
	GroupsOut         int     // groups_out (0: Groups)
	Eps               float32 // eps (0: 1e-6)
	OutputScaleFactor float32 // output_scale_factor (0: 1)
}

// ResnetBlock2D is diffusers' ResnetBlock2D (time_embedding_norm "default", SiLU):
//
//	h = conv1(SiLU(norm1(x))) [+ time_emb_proj(SiLU(temb))[:, :, None, None]]
//	h = conv2(SiLU(norm2(h)))
//	y = (shortcut(x) + h) / output_scale_factor
//
// where shortcut is the 1x1 conv_shortcut when In != Out and the identity
// otherwise. Keys: norm1, conv1, time_emb_proj, norm2, conv2, conv_shortcut.
// Dropout is omitted (inference; p = 0 in Stable Diffusion).
type ResnetBlock2D struct {
	Config       ResnetBlock2DConfig
	Norm1        *GroupNorm
	Conv1        *Conv2d
	TimeEmbProj  *Linear // nil without temb
	Norm2        *GroupNorm
	Conv2        *Conv2d
	ConvShortcut *Conv2d // nil when In == Out
}

// NewResnetBlock2D returns the ResnetBlock2D at b with configuration c.
func NewResnetBlock2D(b *Builder, c ResnetBlock2DConfig) *ResnetBlock2D {
	if c.Out == 0 {
		c.Out = c.In
	}
	if c.Groups == 0 {
		c.Groups = 32
	}
	if c.GroupsOut == 0 {
		c.GroupsOut = c.Groups
	}
	if c.Eps == 0 {
		c.Eps = 1e-6
	}
	if c.OutputScaleFactor == 0 {
		c.OutputScaleFactor = 1
	}
	r := &ResnetBlock2D{
		Config: c,
		Norm1:  NewGroupNorm(b.Sub("norm1"), c.Groups, c.In, c.Eps),
		Conv1:  NewConv2d(b.Sub("conv1"), c.In, c.Out, 3, 1, 1),
	}
	if c.TembChannels > 0 {
		r.TimeEmbProj = NewLinear(b.Sub("time_emb_proj"), c.TembChannels, c.Out, true)
	}
	r.Norm2 = NewGroupNorm(b.Sub("norm2"), c.GroupsOut, c.Out, c.Eps)
	r.Conv2 = NewConv2d(b.Sub("conv2"), c.Out, c.Out, 3, 1, 1)
	if c.In != c.Out {
		r.ConvShortcut = NewConv2d(b.Sub("conv_shortcut"), c.In, c.Out, 1, 1, 0)
	}
	return r
}

// Forward returns the block applied to x [N, In, H, W] with the time embedding
// temb [N, TembChannels] (nil when the block has no time_emb_proj): [N, Out, H, W].
func (r *ResnetBlock2D) Forward(x, temb *tensor.Tensor) *tensor.Tensor {
	if r.TimeEmbProj != nil && temb == nil {
		panic("nn: ResnetBlock2D.Forward: the block has time_emb_proj but temb is nil")
	}
	// The inner scope frees norm1's output once conv1 has run; the chain
	// frees h once norm2 has run and norm2's output once conv2 has.
	return tensor.Scope(func() *tensor.Tensor {
		h := tensor.Scope(func() *tensor.Tensor { return r.Conv1.Forward(r.Norm1.ForwardSiLU(x)) })
		if r.TimeEmbProj != nil {
			t := r.TimeEmbProj.Forward(tensor.SiLU(temb)) // [N, Out]
			h.AddInPlace(t.View(t.Dim(0), t.Dim(1), 1, 1))
		}
		y := tensor.Chain(h, r.Norm2.ForwardSiLU, r.Conv2.Forward)
		if r.ConvShortcut != nil {
			y.AddInPlace(r.ConvShortcut.Forward(x))
		} else {
			y.AddInPlace(x)
		}
		if f := r.Config.OutputScaleFactor; f != 1 {
			y.MulScalarInPlace(1 / f)
		}
		return y
	})
}

// Downsample2D is diffusers' Downsample2D with use_conv: a 3x3 convolution with
// stride 2 (key conv). With padding 1 (the U-Net) it pads one pixel on every
// side; with padding 0 (the VAE encoder) the input is first padded with one row
// of zeros at the bottom and one column at the right (F.pad(x, (0, 1, 0, 1))).
type Downsample2D struct {
	Padding int
	Conv    *Conv2d
}

// NewDownsample2D returns the Downsample2D at b from channels to out channels
// with the given padding (1 or 0, see Downsample2D).
func NewDownsample2D(b *Builder, channels, out, padding int) *Downsample2D {
	if padding != 0 && padding != 1 {
		panic(fmt.Sprintf("nn: NewDownsample2D: padding %d, want 0 or 1", padding))
	}
	return &Downsample2D{Padding: padding, Conv: NewConv2d(b.Sub("conv"), channels, out, 3, 2, padding)}
}

// Forward returns x [N, C, H, W] downsampled: [N, out, OH, OW] with
// OH = floor((H+2p-3)/2)+1 for padding 1, floor((H+1-3)/2)+1 for padding 0.
func (d *Downsample2D) Forward(x *tensor.Tensor) *tensor.Tensor {
	if d.Padding != 0 {
		return d.Conv.Forward(x)
	}
	return tensor.Scope(func() *tensor.Tensor { return d.Conv.Forward(PadRightBottom(x, 1, 1)) })
}

// PadRightBottom returns x [N, C, H, W] padded with zeros: bottom rows at the end
// of H and right columns at the end of W, [N, C, H+bottom, W+right] in the
// compute dtype of x's device; the asymmetric padding of the VAE encoder's
// Downsample2D.
func PadRightBottom(x *tensor.Tensor, bottom, right int) *tensor.Tensor {
	if x.Rank() != 4 || bottom < 0 || right < 0 {
		panic(fmt.Sprintf("nn: PadRightBottom: x %v, bottom %d, right %d", x.Shape(), bottom, right))
	}
	return tensor.Pad2d(x, 0, bottom, 0, right)
}

// Upsample2D is diffusers' Upsample2D with use_conv: nearest-neighbour
// upsampling (2x, or to an explicit size) followed by a 3x3 convolution with
// padding 1 (key conv).
type Upsample2D struct {
	Conv *Conv2d
}

// NewUpsample2D returns the Upsample2D at b from channels to out channels.
func NewUpsample2D(b *Builder, channels, out int) *Upsample2D {
	return &Upsample2D{Conv: NewConv2d(b.Sub("conv"), channels, out, 3, 1, 1)}
}

// Forward returns x [N, C, H, W] upsampled 2x: [N, out, 2H, 2W].
func (u *Upsample2D) Forward(x *tensor.Tensor) *tensor.Tensor {
	return tensor.Scope(func() *tensor.Tensor { return u.Conv.Forward(tensor.Upsample2xNearest(x)) })
}

// ForwardSize returns x [N, C, H, W] upsampled to [N, out, oh, ow] (diffusers'
// output_size, used by the U-Net when a skip connection has an odd size), with
// torch's nearest interpolation: source index min(floor(i*in/out), in-1).
func (u *Upsample2D) ForwardSize(x *tensor.Tensor, oh, ow int) *tensor.Tensor {
	if oh == 2*x.Dim(2) && ow == 2*x.Dim(3) {
		return u.Forward(x)
	}
	return tensor.Scope(func() *tensor.Tensor { return u.Conv.Forward(NearestResize(x, oh, ow)) })
}

// NearestResize returns x [N, C, H, W] resized to [N, C, oh, ow] by nearest
// neighbour, like F.interpolate(x, size=(oh, ow), mode="nearest"): output index
// i reads input index min(floor(float32(i) * float32(in)/float32(out)), in-1)
// (i/2 when out = 2 in, i when out = in).
func NearestResize(x *tensor.Tensor, oh, ow int) *tensor.Tensor {
	if x.Rank() != 4 || oh < 1 || ow < 1 {
		panic(fmt.Sprintf("nn: NearestResize: x %v to %dx%d", x.Shape(), oh, ow))
	}
	if oh == 2*x.Dim(2) && ow == 2*x.Dim(3) {
		return tensor.Upsample2xNearest(x)
	}
	return tensor.Scope(func() *tensor.Tensor { return resizeAxis(resizeAxis(x, 2, oh), 3, ow) })
}

// resizeAxis gathers the nearest source indices along dim (2 or 3) into a new
// tensor of size out there.
func resizeAxis(x *tensor.Tensor, dim, out int) *tensor.Tensor {
	in := x.Dim(dim)
	if in == out {
		return x.Contiguous()
	}
	scale := float32(in) / float32(out)
	// Consecutive outputs reading the same source share one slice (a view).
	return tensor.Scope(func() *tensor.Tensor {
		parts := make([]*tensor.Tensor, 0, out)
		for i := 0; i < out; {
			src := min(int(math.Floor(float64(float32(i)*scale))), in-1)
			if out == 2*in {
				src = i / 2
			}
			j := i + 1
			for j < out {
				s2 := min(int(math.Floor(float64(float32(j)*scale))), in-1)
				if out == 2*in {
					s2 = j / 2
				}
				if s2 != src {
					break
				}
				j++
			}
			sl := x.Narrow(dim, src, 1)
			shape := sl.Shape()
			shape[dim] = j - i
			parts = append(parts, sl.Expand(shape...))
			i = j
		}
		return tensor.Cat(dim, parts...)
	})
}
