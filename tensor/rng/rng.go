package rng

import "math"

// Generator reproduces torch.Generator("cpu"): an mt19937 engine plus the
// cached second sample of torch's float64 Box-Muller (next_double_normal_sample).
// The zero value is not usable; create one with New.
type Generator struct {
	mt         mt19937
	seed       uint64
	nextNormal float64 // cached r*sin(theta) of the scalar normal path
	hasNext    bool
}

// New returns a generator in the state of
// torch.Generator("cpu").manual_seed(seed). Only the low 32 bits of the seed
// reach the engine (as in torch), so seeds 5 and 2^32+5 give the same stream.
func New(seed uint64) *Generator {
	g := &Generator{}
	g.Seed(seed)
	return g
}

// Seed resets g to the state of manual_seed(seed), clearing the cached normal
// sample.
func (g *Generator) Seed(seed uint64) {
	g.seed = seed
	g.mt.seed(seed)
	g.hasNext = false
	g.nextNormal = 0
}

// InitialSeed returns the seed last given to New or Seed (torch's initial_seed()).
func (g *Generator) InitialSeed() uint64 { return g.seed }

// Clone returns an independent copy of g: both continue with the same stream.
func (g *Generator) Clone() *Generator {
	c := *g
	return &c
}

// Uint32 returns one raw 32-bit draw (torch's CPUGeneratorImpl::random()).
func (g *Generator) Uint32() uint32 { return g.mt.uint32() }

// Uint64 returns two draws combined, the first in the high 32 bits
// (torch's CPUGeneratorImpl::random64()).
func (g *Generator) Uint64() uint64 {
	hi := g.mt.uint32()
	lo := g.mt.uint32()
	return uint64(hi)<<32 | uint64(lo)
}

// float24 returns a float32 uniform on [0, 1): the low 24 bits of one draw
// times 2^-24 (exact).
func (g *Generator) float24() float32 {
	return float32(g.mt.uint32()&(1<<24-1)) * (1.0 / (1 << 24))
}

// float53 returns a float64 uniform on [0, 1): the low 53 bits of Uint64 times
// 2^-53 (exact).
func (g *Generator) float53() float64 {
	return float64(g.Uint64()&(1<<53-1)) * (1.0 / (1 << 53))
}

// Uniform fills dst with uniform samples on [from, to), bit for bit equal to
// torch.empty(len(dst)).uniform_(from, to, generator=g) (and so torch.rand for
// from=0, to=1). Each element uses one 32-bit draw.
func (g *Generator) Uniform(dst []float32, from, to float32) {
	span := to - from
	for i := range dst {
		dst[i] = fma32(g.float24(), span, from)
	}
}

// Normal fills dst with normal samples of the given mean and standard
// deviation, bit for bit equal to torch.empty(len(dst)).normal_(mean, std,
// generator=g) on a contiguous float32 tensor; for mean 0 and std 1 that is
// torch.randn(len(dst), generator=g) (for any shape with len(dst) elements).
// Consecutive calls continue the stream as consecutive torch calls do. See the
// package documentation for the two algorithms (len(dst) >= 16 and < 16).
//
// Note that normal_(mean, std) applies std and mean with one fused
// multiply-add, so it is not always bit-equal to torch.randn(n)*std + mean
// (two roundings); with mean 0 and std 1 both are exact.
func (g *Generator) Normal(dst []float32, mean, std float32) {
	g.Normal64(dst, float64(mean), float64(std))
}

// Normal64 is Normal with the mean and standard deviation given as float64,
// as Python passes them to torch: the path for len(dst) >= 16 rounds them to
// float32 first, the path for len(dst) < 16 uses them in float64.
func (g *Generator) Normal64(dst []float32, mean, std float64) {
	n := len(dst)
	if n < 16 {
		for i := range dst {
			dst[i] = float32(math.FMA(g.normal64(), std, mean))
		}
		return
	}
	mean32, std32 := float32(mean), float32(std)
	for i := range dst {
		dst[i] = g.float24()
	}
	for i := 0; i+16 <= n; i += 16 {
		boxMuller16(dst[i:i+16], mean32, std32)
	}
	if n%16 != 0 {
		tail := dst[n-16:]
		for i := range tail {
			tail[i] = g.float24()
		}
		boxMuller16(tail, mean32, std32)
	}
}

// normal64 returns one standard normal float64 sample of torch's scalar path:
// the cached sample if there is one, else a new Box-Muller pair of which the
// second is cached.
func (g *Generator) normal64() float64 {
	if g.hasNext {
		g.hasNext = false
		return g.nextNormal
	}
	u1 := g.float53()
	u2 := g.float53()
	r := math.Sqrt(-2 * math.Log(1-u2))
	sin, cos := math.Sincos(2 * math.Pi * u1)
	g.nextNormal = r * sin
	g.hasNext = true
	return r * cos
}

// boxMuller16 transforms 16 uniforms in place: element j (j < 8) is paired with
// j+8, as torch's AVX2 normal_fill_16 does.
func boxMuller16(d []float32, mean, std float32) {
	d = d[:16]
	for j := 0; j < 8; j++ {
		u1 := 1 - d[j]
		u2 := d[j+8]
		radius := sqrt32(logNeg2(u1))
		theta := float32(twoPi32 * u2)
		s, c := sincos32(theta)
		d[j] = fma32(float32(radius*c), std, mean)
		d[j+8] = fma32(float32(radius*s), std, mean)
	}
}
