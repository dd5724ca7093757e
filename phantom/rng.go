package phantom

import "math"

// rng is a small deterministic generator (splitmix64). The package keeps
// its own so that a seed gives the same phantom on every Go version: the
// standard library's derived distributions may change between releases.
type rng struct {
	s     uint64
	spare float64
	has   bool
}

// Random streams: each aspect of a phantom draws from its own stream, so
// that changing one (adding a finding) leaves the others (the anatomy, the
// vessel tree, the noise) as they were.
const (
	streamAnatomy uint64 = iota + 1
	streamAcquisition
	streamFindings
	streamShape
	streamVessels
	streamTexture
	streamNoise
	streamReport
	streamLesion
)

// mix hashes values into one seed.
func mix(vals ...uint64) uint64 {
	h := uint64(0x243f6a8885a308d3)
	for _, v := range vals {
		h ^= v + 0x9e3779b97f4a7c15 + (h << 6) + (h >> 2)
		h = splitmix(h)
	}
	return h
}

func splitmix(z uint64) uint64 {
	z += 0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

func newRNG(vals ...uint64) *rng { return &rng{s: mix(vals...)} }

func (r *rng) next() uint64 {
	r.s += 0x9e3779b97f4a7c15
	z := r.s
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// float returns a uniform value in [0, 1).
func (r *rng) float() float64 { return float64(r.next()>>11) / (1 << 53) }

// uniform returns a uniform value in [a, b).
func (r *rng) uniform(a, b float64) float64 { return a + (b-a)*r.float() }

// intn returns a uniform integer in [0, n).
func (r *rng) intn(n int) int { return int(r.next() % uint64(n)) }

// chance reports true with probability p.
func (r *rng) chance(p float64) bool { return r.float() < p }

// norm returns a standard normal value (Box-Muller).
func (r *rng) norm() float64 {
	if r.has {
		r.has = false
		return r.spare
	}
	u := 1 - r.float()
	v := r.float()
	m := math.Sqrt(-2 * math.Log(u))
	r.spare = m * math.Sin(2*math.Pi*v)
	r.has = true
	return m * math.Cos(2*math.Pi*v)
}

// pick returns an index drawn with the given weights.
func (r *rng) pick(w []float64) int {
	t := 0.0
	for _, x := range w {
		t += x
	}
	u := r.float() * t
	for i, x := range w {
		if u < x {
			return i
		}
		u -= x
	}
	return len(w) - 1
}

// hash2 hashes a lattice point to [-1, 1) for value noise.
func hash2(seed uint64, i, j int32) float64 {
	h := splitmix(seed ^ uint64(uint32(i))<<32 ^ uint64(uint32(j)))
	return float64(h>>11)/(1<<52) - 1
}

// valueNoise is smooth lattice noise in [-1, 1] with unit cell size.
func valueNoise(seed uint64, x, y float64) float64 {
	fx, fy := math.Floor(x), math.Floor(y)
	i, j := int32(fx), int32(fy)
	tx, ty := x-fx, y-fy
	tx = tx * tx * (3 - 2*tx)
	ty = ty * ty * (3 - 2*ty)
	a := hash2(seed, i, j)
	b := hash2(seed, i+1, j)
	c := hash2(seed, i, j+1)
	d := hash2(seed, i+1, j+1)
	return (a+(b-a)*tx)*(1-ty) + (c+(d-c)*tx)*ty
}
