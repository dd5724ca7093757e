package phantom

import "math"

type vec struct{ x, y float64 }

func (a vec) add(b vec) vec         { return vec{a.x + b.x, a.y + b.y} }
func (a vec) sub(b vec) vec         { return vec{a.x - b.x, a.y - b.y} }
func (a vec) mul(k float64) vec     { return vec{a.x * k, a.y * k} }
func (a vec) len() float64          { return math.Hypot(a.x, a.y) }
func lerpv(a, b vec, t float64) vec { return vec{a.x + (b.x-a.x)*t, a.y + (b.y-a.y)*t} }
func lerp(a, b, t float64) float64  { return a + (b-a)*t }
func rot(a vec, ang float64) vec {
	c, s := math.Cos(ang), math.Sin(ang)
	return vec{c*a.x - s*a.y, s*a.x + c*a.y}
}
func unit(a vec) vec             { return a.mul(1 / a.len()) }
func sq(x float64) float64       { return x * x }
func at(x, y float64) vec        { return vec{x, y} }
func side(sgn, q, y float64) vec { return vec{0.5 + sgn*q, y} }
func bez(p0, p1, p2, p3 vec, t float64) vec {
	u := 1 - t
	return p0.mul(u * u * u).add(p1.mul(3 * u * u * t)).add(p2.mul(3 * u * t * t)).add(p3.mul(t * t * t))
}

// bezier samples a cubic Bézier curve at n+1 points.
func bezier(p0, p1, p2, p3 vec, n int) []vec {
	out := make([]vec, n+1)
	for i := range out {
		out[i] = bez(p0, p1, p2, p3, float64(i)/float64(n))
	}
	return out
}

// spline samples a Catmull-Rom spline through pts, n points per span.
func spline(pts []vec, n int) []vec {
	var out []vec
	for i := 0; i+1 < len(pts); i++ {
		p0, p1, p2 := pts[max(i-1, 0)], pts[i], pts[i+1]
		p3 := pts[min(i+2, len(pts)-1)]
		for k := range n {
			t := float64(k) / float64(n)
			t2, t3 := t*t, t*t*t
			x := 0.5 * (2*p1.x + (-p0.x+p2.x)*t + (2*p0.x-5*p1.x+4*p2.x-p3.x)*t2 + (-p0.x+3*p1.x-3*p2.x+p3.x)*t3)
			y := 0.5 * (2*p1.y + (-p0.y+p2.y)*t + (2*p0.y-5*p1.y+4*p2.y-p3.y)*t2 + (-p0.y+3*p1.y-3*p2.y+p3.y)*t3)
			out = append(out, vec{x, y})
		}
	}
	return append(out, pts[len(pts)-1])
}

// profile is a tube's cross-section: the attenuation at distance d from
// the axis of a tube of radius r, per unit of amplitude.
type profile int

const (
	solid profile = iota // a cylinder: chord 2*sqrt(r^2-d^2)
	bone                 // a cortical shell: dense rim, lighter marrow
	soft                 // a Gaussian of sigma r (integral as a cylinder's)
)

func chord(d, r float64) float64 {
	if d >= r {
		return 0
	}
	return 2 * math.Sqrt(r*r-d*d)
}

func (p profile) at(d, r float64) float64 {
	switch p {
	case bone:
		return chord(d, r) - 0.62*chord(d, 0.74*r)
	case soft:
		return 1.77 * r * math.Exp(-d*d/(r*r))
	}
	return chord(d, r)
}

// canvas holds per-pixel patient coordinates and accumulation buffers.
type canvas struct {
	w, h   int
	s      float64 // shorter side, pixels
	scale  float64 // image units per patient unit
	cs, sn float64 // tilt
	tx, ty float64
	px, py []float64 // patient coordinates of pixel centres
	pix    float64   // pixel size in patient units
}

func newCanvas(w, h int, a Anatomy) *canvas {
	c := &canvas{w: w, h: h, s: float64(min(w, h)), scale: a.Scale}
	ang := a.Tilt * math.Pi / 180
	c.cs, c.sn = cosSin(ang)
	c.tx, c.ty = a.OffsetX, a.OffsetY
	c.pix = 1 / (c.s * c.scale)
	c.px = make([]float64, w*h)
	c.py = make([]float64, w*h)
	for j := range h {
		v := (float64(j)+0.5-float64(h)/2)/c.s + 0.5
		for i := range w {
			u := (float64(i)+0.5-float64(w)/2)/c.s + 0.5
			du, dv := u-0.5-c.tx, v-0.5-c.ty
			k := j*w + i
			c.px[k] = 0.5 + (c.cs*du+c.sn*dv)/c.scale
			c.py[k] = 0.5 + (-c.sn*du+c.cs*dv)/c.scale
		}
	}
	return c
}

// toPixel maps patient coordinates to (fractional) pixel coordinates.
func (c *canvas) toPixel(p vec) (float64, float64) {
	dx, dy := (p.x-0.5)*c.scale, (p.y-0.5)*c.scale
	u := 0.5 + c.cs*dx - c.sn*dy + c.tx
	v := 0.5 + c.sn*dx + c.cs*dy + c.ty
	return (u-0.5)*c.s + float64(c.w)/2, (v-0.5)*c.s + float64(c.h)/2
}

// rect returns the pixel rectangle [i0,i1) x [j0,j1) covering the patient
// box [x0,x1] x [y0,y1].
func (c *canvas) rect(x0, y0, x1, y1 float64) (i0, j0, i1, j1 int) {
	fi0, fj0 := math.Inf(1), math.Inf(1)
	fi1, fj1 := math.Inf(-1), math.Inf(-1)
	for _, p := range []vec{{x0, y0}, {x1, y0}, {x0, y1}, {x1, y1}} {
		u, v := c.toPixel(p)
		fi0, fi1 = math.Min(fi0, u), math.Max(fi1, u)
		fj0, fj1 = math.Min(fj0, v), math.Max(fj1, v)
	}
	i0 = max(int(math.Floor(fi0))-1, 0)
	j0 = max(int(math.Floor(fj0))-1, 0)
	i1 = min(int(math.Ceil(fi1))+2, c.w)
	j1 = min(int(math.Ceil(fj1))+2, c.h)
	return
}

// stroke adds a tube along pts (radius r[i] at pts[i]) with the given
// amplitude (attenuation per unit chord) and profile to buf. Tubes
// thinner than a pixel are widened with their amplitude lowered, so their
// integral is kept and they do not alias.
func (c *canvas) stroke(buf []float64, pts []vec, r []float64, amp float64, pr profile) {
	minR := 0.7 * c.pix
	for k := 0; k+1 < len(pts); k++ {
		a, b := pts[k], pts[k+1]
		ra, rb := r[k], r[k+1]
		rm := math.Max(math.Max(ra, rb), minR) * 1.8
		if pr != soft {
			rm = math.Max(math.Max(ra, rb), minR) * 1.05
		}
		i0, j0, i1, j1 := c.rect(math.Min(a.x, b.x)-rm, math.Min(a.y, b.y)-rm, math.Max(a.x, b.x)+rm, math.Max(a.y, b.y)+rm)
		ab := b.sub(a)
		l2 := ab.x*ab.x + ab.y*ab.y
		if l2 == 0 {
			continue
		}
		last := k+2 == len(pts)
		for j := j0; j < j1; j++ {
			row := j * c.w
			for i := i0; i < i1; i++ {
				x, y := c.px[row+i]-a.x, c.py[row+i]-a.y
				t := (x*ab.x + y*ab.y) / l2
				if t < 0 || t >= 1 && !last || t > 1 {
					continue
				}
				dx, dy := x-t*ab.x, y-t*ab.y
				d := math.Sqrt(dx*dx + dy*dy)
				rr := ra + (rb-ra)*t
				g := amp
				if rr < minR {
					g *= rr * rr / (minR * minR)
					rr = minR
				}
				if d < rr*1.8 {
					buf[row+i] += g * pr.at(d, rr)
				}
			}
		}
	}
}

// radii returns n radii going from r0 to r1.
func radii(n int, r0, r1 float64) []float64 {
	out := make([]float64, n)
	for i := range out {
		t := 0.0
		if n > 1 {
			t = float64(i) / float64(n-1)
		}
		out[i] = r0 + (r1-r0)*t
	}
	return out
}

// ellipse adds fn(rho) over an ellipse (centre, radii, angle), where rho
// is the normalised elliptic radius (1 on the outline); fn is evaluated
// for rho < reach.
func (c *canvas) ellipse(buf []float64, ctr vec, rx, ry, ang, reach float64, fn func(rho, u, v float64) float64) {
	rm := math.Max(rx, ry) * reach
	i0, j0, i1, j1 := c.rect(ctr.x-rm, ctr.y-rm, ctr.x+rm, ctr.y+rm)
	cs, sn := math.Cos(ang), math.Sin(ang)
	for j := j0; j < j1; j++ {
		row := j * c.w
		for i := i0; i < i1; i++ {
			x, y := c.px[row+i]-ctr.x, c.py[row+i]-ctr.y
			u := (cs*x + sn*y) / rx
			v := (-sn*x + cs*y) / ry
			rho := math.Sqrt(u*u + v*v)
			if rho < reach {
				buf[row+i] += fn(rho, u, v)
			}
		}
	}
}

// sphere is the chord profile of a ball (1 at the centre), softened over
// soft (in units of the radius) to avoid aliasing.
func sphere(rho, soft float64) float64 {
	if rho >= 1+soft {
		return 0
	}
	if rho <= 1-soft {
		return math.Sqrt(1 - rho*rho)
	}
	// blend across the edge
	t := (rho - (1 - soft)) / (2 * soft)
	v := math.Sqrt(math.Max(0, 1-sq(1-soft)))
	return v * (1 - smoothstep(0, 1, t))
}

// gaussBlur blurs a w x h image in place with a Gaussian of sigma pixels
// (separable; kernel radius 3 sigma, edges clamped).
func gaussBlur(buf []float64, w, h int, sigma float64) {
	if sigma < 0.2 {
		return
	}
	rad := int(math.Ceil(3 * sigma))
	k := make([]float64, 2*rad+1)
	sum := 0.0
	for i := range k {
		x := float64(i - rad)
		k[i] = math.Exp(-x * x / (2 * sigma * sigma))
		sum += k[i]
	}
	for i := range k {
		k[i] /= sum
	}
	tmp := make([]float64, max(w, h))
	for j := range h {
		row := buf[j*w : (j+1)*w]
		for i := range w {
			s := 0.0
			for t, kv := range k {
				ii := min(max(i+t-rad, 0), w-1)
				s += kv * row[ii]
			}
			tmp[i] = s
		}
		copy(row, tmp[:w])
	}
	for i := range w {
		for j := range h {
			s := 0.0
			for t, kv := range k {
				jj := min(max(j+t-rad, 0), h-1)
				s += kv * buf[jj*w+i]
			}
			tmp[j] = s
		}
		for j := range h {
			buf[j*w+i] = tmp[j]
		}
	}
}

// boxBlur3 approximates a Gaussian of sigma pixels by three box blurs.
func boxBlur3(src []float64, w, h int, sigma float64) []float64 {
	r := max(int(math.Round(sigma*0.87)), 1)
	out := append([]float64(nil), src...)
	tmp := make([]float64, max(w, h))
	line := make([]float64, max(w, h))
	for range 3 {
		for j := range h {
			boxLine(out[j*w:(j+1)*w], tmp[:w], r)
		}
		for i := range w {
			for j := range h {
				line[j] = out[j*w+i]
			}
			boxLine(line[:h], tmp[:h], r)
			for j := range h {
				out[j*w+i] = line[j]
			}
		}
	}
	return out
}

// boxLine replaces v by its running mean over 2r+1 samples (edges clamped).
func boxLine(v, tmp []float64, r int) {
	n := len(v)
	s := 0.0
	for k := -r; k <= r; k++ {
		s += v[min(max(k, 0), n-1)]
	}
	inv := 1 / float64(2*r+1)
	for i := range n {
		tmp[i] = s * inv
		s += v[min(i+r+1, n-1)] - v[max(i-r, 0)]
	}
	copy(v, tmp)
}

func cosSin(a float64) (float64, float64) { return math.Cos(a), math.Sin(a) }
