package phantom

import (
	"fmt"
	"image"
	"image/color"
	"math"
)

// Image is a rendered phantom: W x H values in [0, 1], row-major from the
// top row, displayed as radiographs are: bright = attenuating (bone,
// fluid, soft tissue), dark = air.
type Image struct {
	W, H int
	Pix  []float32
}

// At returns the value of pixel (x, y).
func (im *Image) At(x, y int) float32 { return im.Pix[y*im.W+x] }

// Gray returns the image as 8-bit grayscale (rounded).
func (im *Image) Gray() *image.Gray {
	g := image.NewGray(image.Rect(0, 0, im.W, im.H))
	for i, v := range im.Pix {
		g.Pix[i] = uint8(math.Round(float64(v) * 255))
	}
	return g
}

// Gray16 returns the image as 16-bit grayscale (rounded).
func (im *Image) Gray16() *image.Gray16 {
	g := image.NewGray16(image.Rect(0, 0, im.W, im.H))
	for y := range im.H {
		for x := range im.W {
			g.SetGray16(x, y, color.Gray16{Y: uint16(math.Round(float64(im.Pix[y*im.W+x]) * 65535))})
		}
	}
	return g
}

// MinSize and MaxSize bound Render's width and height.
const (
	MinSize = 32
	MaxSize = 8192
)

// muDisplay converts tissue units of attenuation to the exponent of the
// transmitted fraction (exp(-muDisplay*A)).
const muDisplay = 2.0

// renderer holds one rendering's state.
type renderer struct {
	p   Params
	g   *geom
	c   *canvas
	n   int
	a   []float64 // attenuation, tissue units (1: the chest's soft tissue)
	air []float64 // fraction of the lungs' air replaced by findings
	ves []float64 // lung markings before gating
	gt  []float64 // where markings show: lung present, not in a pneumothorax
}

// Render draws the phantom at w x h pixels. The geometry is in units of
// the shorter side, centred, so a wider image shows more at the sides.
func Render(p Params, w, h int) (*Image, error) { return render(p, w, h, false) }

// render draws the phantom; noBones leaves out the skeleton (tests use it
// to measure lung markings without the ribs).
func render(p Params, w, h int, noBones bool) (*Image, error) {
	if w < MinSize || h < MinSize || w > MaxSize || h > MaxSize {
		return nil, fmt.Errorf("phantom: size %dx%d, expected width and height in [%d, %d]", w, h, MinSize, MaxSize)
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	n := w * h
	r := &renderer{p: p, g: newGeom(p), c: newCanvas(w, h, p.Anatomy), n: n,
		a: make([]float64, n), air: make([]float64, n), ves: make([]float64, n), gt: make([]float64, n)}
	r.consolidation()
	r.atelectasis()
	r.fields()
	r.vessels()
	for k := range r.a {
		r.a[k] += r.ves[k] * r.gt[k]
	}
	r.airways()
	if !noBones {
		r.bones()
	}
	r.lesions()
	r.devices()
	return r.acquire(), nil
}

// lungFull is the air depth of side s's lung at (x, y) before heart and
// findings, and the distances used by the findings.
func (r *renderer) lungFull(s int, x, y float64) (d, q, dl, dt, dm float64) {
	l := &r.g.lung[s]
	q = l.sgn * (x - 0.5)
	if q <= 0 {
		return
	}
	dl = l.lat(y) - q
	dt = y - l.top(q)
	db := l.bot(q) - y
	dm = q - r.g.med(s, y)
	if dl <= 0 || dt <= 0 || db <= 0 || dm <= 0 {
		return
	}
	d = l.depth * edge(dl/0.09) * edge(dt/0.07) * edge(db/0.045) * edge(dm/0.05) *
		(0.62 + 0.38*smoothstep(l.yApex, l.yDome-0.05, y))
	return
}

// heartFrac is how much of the lung's depth the heart displaces at (x, y).
func (r *renderer) heartFrac(x, y float64) float64 {
	ax := 0.5 + r.g.shift
	s := 1
	if x < ax {
		s = 0
	}
	hq := r.g.heartQ(s, y)
	if hq == 0 {
		return 0
	}
	f := edge((hq - math.Abs(x-ax)) / 0.035)
	// the heart's top merges into the mediastinum
	return f * smoothstep(r.g.heart.yTop-0.03, r.g.heart.yTop+0.02, y)
}

// effusion is the fraction of the lung replaced by pleural fluid at
// lateral fraction a (0 medial .. 1 lateral) and height y.
func (r *renderer) effusion(s int, a, dl, y float64) float64 {
	sev := r.p.Findings.EffusionRight
	if s == 1 {
		sev = r.p.Findings.EffusionLeft
	}
	if sev == None {
		return 0
	}
	l := &r.g.lung[s]
	span := l.yCP - l.yApex
	h := [...]float64{0, 0.09, 0.3, 0.58}[sev] * span
	m := [...]float64{0, 0.07, 0.13, 0.16}[sev]
	ramp := [...]float64{0, 0.02, 0.035, 0.045}[sev]
	a = clampf(a, 0, 1)
	top := l.yCP - h + m*(1-a)*(1-a)
	f := smoothstep(top-0.3*ramp, top+ramp, y)
	// a thin layer climbing the lateral wall above the meniscus
	f = math.Max(f, 0.85*math.Exp(-dl/0.018)*smoothstep(top-0.07, top, y))
	return f
}

// pneumo returns the pneumothorax gap (1 inside) and the visceral pleural
// line's attenuation at a point of side s's lung.
func (r *renderer) pneumo(s int, dl, dt, y float64) (gap, line float64) {
	pt := r.p.Findings.Pneumothorax
	if pt.Size == None || pt.Side.idx() != s {
		return 0, 0
	}
	l := &r.g.lung[s]
	big := [...]float64{0, 0.022, 0.05, 0.09}[pt.Size]
	floor := [...]float64{0, 0, 0.15, 0.35}[pt.Size]
	t := clampf((y-l.yApex)/(l.yCP-l.yApex), 0, 1)
	g := big * (floor + (1-floor)*math.Pow(math.Max(0, 1-1.15*t), 1.3))
	if g <= 0 {
		return 0, 0
	}
	d := math.Min(dl, dt*1.2)
	px := r.c.pix
	gap = 1 - smoothstep(g-px, g+px, d)
	lw := math.Max(0.0014, 0.6*px)
	line = 0.1 * (0.0014 / lw) * math.Exp(-sq((d-g)/lw)) * smoothstep(0, 0.006, g)
	return gap, line
}

// collapse is how much denser the collapsed lung of a pneumothorax is.
func (r *renderer) collapse(s int) float64 {
	pt := r.p.Findings.Pneumothorax
	if pt.Size == None || pt.Side.idx() != s {
		return 0
	}
	return 0.3 * float64(pt.Size)
}

// fields computes the per-pixel structures: body, lungs, heart,
// mediastinum, trachea, pleural findings, breasts.
func (r *renderer) fields() {
	g, c := r.g, r.c
	an := r.p.Anatomy
	tex := newRNG(r.p.Seed, streamTexture).next()
	thick := 0.92 + 0.3*(an.Habitus-1)
	female := an.Sex == Female
	for k := range r.n {
		x, y := c.px[k], c.py[k]
		// body: an elliptic cross-section below the neck and shoulders
		s := 0
		if x >= 0.5 {
			s = 1
		}
		l := &g.lung[s]
		q := math.Abs(x - 0.5)
		chest := l.lat(math.Max(y, l.yApex+0.06)) + g.wall
		R := chest
		if y < 0.4 {
			R = math.Max(R, lerp(0.64, chest, smoothstep(0.2, 0.4, y)))
		}
		body := 0.0
		if q < R {
			t := edge((R - q) / 0.08)
			if q > 0.085 {
				top := 0.015 + 0.45*sq(q-0.085)
				t *= edge((y - top) / 0.06)
			}
			ap := lerp(0.55, 1, smoothstep(0.02, 0.22, y))
			ap *= lerp(1, 0.72, smoothstep(chest-0.01, chest+0.06, q))
			// shoulder girdle muscles over the upper chest
			ap *= 1 + 0.15*(1-smoothstep(0.12, 0.42, y))
			body = thick * ap * t
		}
		A := body
		// lungs
		d, ql, dl, dt, _ := r.lungFull(s, x, y)
		gate := 0.0
		if d > 0 {
			d *= 1 - 0.86*r.heartFrac(x, y)
			d *= 1 - r.air[k]
			qm := math.Max(g.med(s, y), g.heartQ(s, y)+l.sgn*g.shift)
			a := (ql - qm) / math.Max(l.lat(y)-qm, 1e-3)
			d *= 1 - r.effusion(s, a, dl, y)
			gap, line := r.pneumo(s, dl, dt, y)
			n := 0.55*valueNoise(tex, x*70, y*70) + 0.3*valueNoise(tex+1, x*150, y*150) + 0.15*valueNoise(tex+2, x*300, y*300)
			A -= d
			A += d * 0.13 * (1 + 0.6*n) * (1 - gap) * (1 + r.collapse(s))
			A -= 0.05 * gap
			A += line
			gate = clampf(d/(0.3*l.depth), 0, 1) * (1 - gap) * smoothstep(0, 0.045, dl) * smoothstep(0, 0.04, dt)
		}
		r.gt[k] = gate
		// trachea
		if y < g.carinaY+0.01 {
			xt := 0.5 + 0.4*g.shift - 0.005*math.Exp(-sq((y-g.yKnob)/0.05))
			hw := 0.0175
			A -= 0.17 * edge((hw-math.Abs(x-xt))/hw) * smoothstep(g.carinaY+0.01, g.carinaY-0.01, y) * smoothstep(-0.05, 0.05, y)
		}
		// breasts
		if female {
			for bs := range 2 {
				bl := &g.lung[bs]
				cx := 0.5 + bl.sgn*0.23
				cy := bl.yDome - 0.07
				u, v := (x-cx)/0.2, (y-cy)/0.15
				rho := math.Sqrt(u*u + v*v)
				if rho < 1 {
					A += 0.11 * thick * edge((1-rho)/0.3) * smoothstep(-1.1, 0.4, v)
				}
			}
		}
		r.a[k] = A
	}
}

// lungPoint converts lung-relative coordinates (X medial 0 .. lateral 1,
// Y apex 0 .. diaphragm 1) of side s to patient coordinates.
func (r *renderer) lungPoint(s int, X, Y float64) vec {
	g := r.g
	l := &g.lung[s]
	y := lerp(l.yApex+0.025, l.yDome-0.015, Y)
	qm := math.Max(g.med(s, y), g.heartQ(s, y)+l.sgn*g.shift) + 0.01
	q := lerp(qm, l.lat(y)-0.01, X)
	return vec{0.5 + l.sgn*q, y}
}

// vessels draws the pulmonary vascular trees from the hila.
func (r *renderer) vessels() {
	rg := newRNG(r.p.Seed, streamVessels)
	for s := range 2 {
		l := &r.g.lung[s]
		h := vec{r.g.hilum[s][0], r.g.hilum[s][1]}
		trunks := []struct {
			dx, dy, r float64
		}{{0.3, -1, 0.0095}, {1, -0.25, 0.0075}, {0.8, 0.9, 0.0105}, {0.15, 1, 0.01}, {0.6, 0.3, 0.007}, {0.1, -1, 0.006}}
		// the pulmonary artery from the mediastinum to the hilum
		pa := []vec{side(l.sgn, 0.055, h.y-0.025), side(l.sgn, 0.075, h.y-0.012), h}
		pa[0].x += r.g.shift
		pa[1].x += r.g.shift
		r.c.stroke(r.ves, spline(pa, 6), radii(13, 0.013, 0.011), 7, soft)
		for _, t := range trunks {
			dir := unit(vec{l.sgn * t.dx, t.dy})
			start := h.add(dir.mul(rg.uniform(0.01, 0.028))).add(vec{l.sgn * rg.uniform(-0.008, 0.008), rg.uniform(-0.015, 0.015)})
			r.branch(rg, s, start, dir, t.r, 0)
		}
	}
}

// branch draws one vessel and its children (monopodial branching).
func (r *renderer) branch(rg *rng, s int, p, dir vec, rad float64, depth int) {
	const rmin = 0.0008
	length := rad * rg.uniform(7, 11)
	bend := rg.uniform(-0.25, 0.25)
	pts := []vec{p}
	cur, d := p, dir
	for range 3 {
		d = rot(d, bend/3)
		cur = cur.add(d.mul(length / 3))
		if dd, _, _, _, _ := r.lungFull(s, cur.x, cur.y); dd <= 0 && depth > 0 {
			break
		}
		pts = append(pts, cur)
	}
	if len(pts) < 2 {
		return
	}
	r.c.stroke(r.ves, pts, radii(len(pts), rad, rad*0.9), 15, soft)
	if len(pts) < 4 || rad < rmin || depth > 14 {
		return
	}
	turn := rg.uniform(0.3, 0.7)
	if rg.chance(0.5) {
		turn = -turn
	}
	r.branch(rg, s, cur, rot(d, -turn*0.35), rad*rg.uniform(0.8, 0.88), depth+1)
	r.branch(rg, s, cur, rot(d, turn), rad*rg.uniform(0.58, 0.72), depth+1)
}

// airways draws the main bronchi and the gastric air bubble.
func (r *renderer) airways() {
	g := r.g
	cx := 0.5 + 0.4*g.shift
	car := vec{cx, g.carinaY - 0.005}
	rb := []vec{car, {cx - 0.03, g.carinaY + 0.035}, {cx - 0.055, g.carinaY + 0.08}}
	lb := []vec{car, {cx + 0.035, g.carinaY + 0.03}, {cx + 0.075, g.carinaY + 0.065}}
	r.c.stroke(r.a, spline(rb, 6), radii(13, 0.012, 0.009), -6, solid)
	r.c.stroke(r.a, spline(lb, 6), radii(13, 0.011, 0.008), -6, solid)
	// gastric bubble under the left dome, with a flat air-fluid level
	l := &g.lung[1]
	qb := 0.15 + 0.02*g.jit[9]
	ctr := vec{0.5 + qb, l.bot(qb) + 0.042}
	rx, ry := 0.055+0.01*g.jit[10], 0.03
	r.c.ellipse(r.a, ctr, rx, ry, 0, 1, func(rho, u, v float64) float64 {
		return -0.28 * edge((1-rho)/0.5) * smoothstep(0.55, 0.35, v)
	})
}

// bones draws the ribs, clavicles, spine and shoulders.
func (r *renderer) bones() {
	g, c := r.g, r.c
	const amp = 9
	for s := range 2 {
		l := &g.lung[s]
		sg := l.sgn
		for i := 1; i <= 11; i++ {
			fi := float64(i)
			yh := g.ribY0 + g.ribDY*(fi-1) + 0.004*g.jit[(i+3*s)%16]
			qh := 0.03
			yl := yh + 0.045 + 0.0065*fi
			ql := l.lat(yl) + 0.011
			if i == 1 {
				ql = 0.8 * ql
			}
			if i >= 11 {
				ql = l.lat(l.yCP) - 0.01
			}
			post := bezier(side(sg, qh, yh), side(sg, qh+0.35*(ql-qh), yh-0.035), side(sg, ql-0.035, yl-0.055), side(sg, ql, yl), 20)
			rp := 0.0082 + 0.0004*fi
			// the medial ends hide in the mediastinum's density
			ra0 := radii(len(post), rp*0.85, rp)
			am := amp * (1 + 0.12*g.jit[(i+5*s)%16])
			c.stroke(r.a, post[:5], ra0[:5], 0.4*am, bone)
			c.stroke(r.a, post[4:], ra0[4:], am, bone)
			if i > 9 {
				continue
			}
			qa := 0.065 + 0.013*fi
			ya := yh + 0.1 + 0.012*fi
			ant := bezier(side(sg, ql, yl), side(sg, ql+0.01, yl+0.04), side(sg, qa+0.09, ya-0.01), side(sg, qa, ya), 20)
			ra := 0.0105 + 0.0003*fi
			c.stroke(r.a, ant, radii(len(ant), ra, ra*0.9), amp*0.4, bone)
		}
		// clavicle (S-shaped)
		cl := bezier(side(sg, 0.03, 0.17), side(sg, 0.13, 0.178), side(sg, 0.22, 0.102), side(sg, 0.335, 0.113), 30)
		rc := make([]float64, len(cl))
		for i := range rc {
			t := float64(i) / float64(len(rc)-1)
			rc[i] = 0.0105 + 0.004*sq(1-2*t) + 0.002*(1-t)
		}
		c.stroke(r.a, cl, rc, amp, bone)
		// humeral head and shaft at the upper corners
		hh := side(sg, 0.475, 0.165)
		c.ellipse(r.a, hh, 0.06, 0.06, 0, 1.05, func(rho, u, v float64) float64 {
			return 0.3*sphere(rho, 0.05) + 0.08*math.Exp(-sq((rho-0.96)/0.05))
		})
		// scapula: faint plate with a denser lateral border
		sc := []vec{side(sg, 0.43, 0.21), side(sg, 0.38, 0.3), side(sg, 0.35, 0.39)}
		c.stroke(r.a, spline(sc, 8), radii(17, 0.008, 0.005), amp*0.5, bone)
		c.ellipse(r.a, side(sg, 0.41, 0.27), 0.05, 0.11, -sg*0.35, 1, func(rho, u, v float64) float64 {
			return 0.05 * edge((1-rho)/0.3)
		})
	}
	// spine: C6 to L1, bodies with cortical rims, pedicles, spinous processes
	for v := -2; v <= 12; v++ {
		fv := float64(v)
		yc := 0.095 + 0.0575*fv
		hh := 0.5 * (0.044 + 0.0015*fv)
		hw := 0.024 + 0.0011*fv
		if v < 0 {
			hh, hw = 0.017, 0.02
		}
		ctr := vec{0.5, yc}
		c.ellipse(r.a, ctr, hw, hh, 0, 1.1, func(rho, u, w float64) float64 {
			sup := math.Pow(math.Pow(math.Abs(u), 6)+math.Pow(math.Abs(w), 6), 1.0/6)
			if sup >= 1.05 {
				return 0
			}
			return 0.045*edge((1-sup)/0.4) + 0.022*math.Exp(-sq((sup-0.95)/0.06))
		})
		for _, sg := range []float64{-1, 1} {
			c.ellipse(r.a, vec{0.5 + sg*0.72*hw + 0.3*g.spineDX, yc - 0.25*hh}, 0.2*hw, 0.32*hh, 0, 1.3, func(rho, u, w float64) float64 {
				return 0.08 * math.Exp(-sq((rho-0.9)/0.25))
			})
			c.ellipse(r.a, vec{0.5 + sg*1.45*hw, yc - 0.1*hh}, 0.45*hw, 0.16*hh, sg*0.2, 1, func(rho, u, w float64) float64 {
				return 0.05 * sphere(rho, 0.2)
			})
		}
		c.ellipse(r.a, vec{0.5 + g.spineDX, yc + 0.45*hh}, 0.18*hw, 0.45*hh, 0, 1, func(rho, u, w float64) float64 {
			return 0.07 * sphere(rho, 0.2)
		})
	}
}

// consolidation draws airspace opacity into r.air.
func (r *renderer) consolidation() {
	for ci, co := range r.p.Findings.Consolidation {
		rg := newRNG(r.p.Seed, streamLesion, uint64(ci))
		s := co.Side.idx()
		y0, y1, x0, x1 := 0.05, 0.4, 0.15, 1.0
		switch co.Zone {
		case Middle:
			y0, y1, x0, x1 = 0.38, 0.66, 0.0, 0.65
		case Lower:
			y0, y1, x0, x1 = 0.6, 1.1, 0.1, 1.0
		}
		buf := make([]float64, r.n)
		for range 22 {
			p := r.lungPoint(s, rg.uniform(x0, x1), rg.uniform(y0, y1))
			rad := rg.uniform(0.022, 0.045)
			w := rg.uniform(0.5, 1)
			r.c.ellipse(buf, p, rad, rad*rg.uniform(0.7, 1.1), rg.uniform(0, 3), 2.5, func(rho, u, v float64) float64 {
				return w * math.Exp(-rho*rho)
			})
		}
		var bron []float64
		if co.AirBronchograms {
			bron = make([]float64, r.n)
			for range 4 {
				p := r.lungPoint(s, rg.uniform(x0, x0+0.2), lerp(y0, y1, rg.uniform(0.3, 0.6)))
				dir := unit(vec{r.g.lung[s].sgn * rg.uniform(0.5, 1), rg.uniform(-0.4, 0.6)})
				r.bronchus(rg, bron, p, dir, 0.0038, 0)
			}
		}
		fy := r.g.hilum[0][1] - 0.01 // horizontal fissure
		for k := range r.n {
			if buf[k] == 0 {
				continue
			}
			v := 0.93 * (1 - math.Exp(-2.2*buf[k]))
			if s == 0 && co.Zone != Lower {
				e := smoothstep(fy-0.003, fy+0.003, r.c.py[k])
				if co.Zone == Upper {
					e = 1 - e
				}
				v *= e
			}
			if bron != nil {
				v *= 1 - clampf(bron[k]*110, 0, 0.6)
			}
			r.air[k] = math.Max(r.air[k], v)
		}
	}
}

// bronchus draws an air-filled bronchus (for air bronchograms).
func (r *renderer) bronchus(rg *rng, buf []float64, p, dir vec, rad float64, depth int) {
	length := rad * rg.uniform(8, 12)
	pts := []vec{p, p.add(dir.mul(length / 2)), p.add(rot(dir, rg.uniform(-0.2, 0.2)).mul(length))}
	r.c.stroke(buf, pts, radii(3, rad, rad*0.85), 1, soft)
	if depth >= 3 || rad < 0.0016 {
		return
	}
	r.bronchus(rg, buf, pts[2], rot(dir, rg.uniform(0.2, 0.5)), rad*0.78, depth+1)
	r.bronchus(rg, buf, pts[2], rot(dir, -rg.uniform(0.2, 0.5)), rad*0.72, depth+1)
}

// atelectasis draws plate-like bands into r.air (volume loss is in the
// geometry).
func (r *renderer) atelectasis() {
	for ai, at := range r.p.Findings.Atelectasis {
		rg := newRNG(r.p.Seed, streamLesion, 100+uint64(ai))
		s := at.Side.idx()
		Y := rg.uniform(0.74, 0.84)
		if at.Zone == Middle {
			Y = rg.uniform(0.5, 0.6)
		}
		X := rg.uniform(0.35, 0.55)
		bands := 1
		if rg.chance(0.4) {
			bands = 2
		}
		for b := range bands {
			p0 := r.lungPoint(s, X-0.22, Y+float64(b)*0.06)
			p1 := r.lungPoint(s, X+0.3, Y+float64(b)*0.06-rg.uniform(0.02, 0.06))
			mid := lerpv(p0, p1, 0.5).add(vec{0, rg.uniform(-0.008, 0.008)})
			pts := spline([]vec{p0, mid, p1}, 10)
			buf := make([]float64, r.n)
			rad := rg.uniform(0.005, 0.007) / (1 + float64(b))
			rr := make([]float64, len(pts))
			for i := range rr {
				t := float64(i) / float64(len(rr)-1)
				rr[i] = rad * (0.4 + 0.6*math.Sin(math.Pi*t))
			}
			r.c.stroke(buf, pts, rr, 1/(1.77*rad), soft)
			for k, v := range buf {
				if v > 0 {
					r.air[k] = math.Max(r.air[k], 0.9*math.Min(v, 1))
				}
			}
		}
	}
}

// lesions draws nodules and masses.
func (r *renderer) lesions() {
	for li, le := range r.p.Findings.Lesions {
		rg := newRNG(r.p.Seed, streamLesion, 200+uint64(li))
		s := le.Side.idx()
		ctr := r.lungPoint(s, le.X, le.Y)
		rad := le.DiameterMM / 10 * 0.025 / 2
		soft := math.Min(0.3, 1.2*r.c.pix/rad)
		gain := 0.3 * (1 - math.Exp(-rad/0.014)) / rad
		r.c.ellipse(r.a, ctr, rad, rad, 0, 1+soft, func(rho, u, v float64) float64 {
			return gain * rad * sphere(rho, soft)
		})
		if le.IsMass() {
			// lobulation
			for range 3 {
				ang := rg.uniform(0, 2*math.Pi)
				pc := ctr.add(vec{math.Cos(ang), math.Sin(ang)}.mul(rad * 0.6))
				rl := rad * rg.uniform(0.45, 0.6)
				r.c.ellipse(r.a, pc, rl, rl, 0, 1+soft, func(rho, u, v float64) float64 {
					return 0.5 * gain * rl * sphere(rho, soft)
				})
			}
		}
	}
}

// devices draws the endotracheal tube, central line and pacemaker.
func (r *renderer) devices() {
	d := r.p.Findings.Devices
	g, c := r.g, r.c
	if d.ETT {
		tip := g.carinaY - d.ETTTipCM*0.025
		xt := func(y float64) float64 {
			return 0.5 + 0.4*g.shift - 0.005*math.Exp(-sq((y-g.yKnob)/0.05))
		}
		var wall, stripe []vec
		for i := 0; i <= 20; i++ {
			y := lerp(-0.06, tip, float64(i)/20)
			wall = append(wall, vec{xt(y), y})
			stripe = append(stripe, vec{xt(y) + 0.0065, y})
		}
		c.stroke(r.a, wall, radii(len(wall), 0.009, 0.009), 3, solid)
		c.stroke(r.a, stripe, radii(len(stripe), 0.0017, 0.0017), 55, solid)
	}
	if d.CentralLine != NoSide {
		sg := d.CentralLine.sign()
		pts := []vec{side(sg, 0.08, -0.04), side(sg, 0.075, 0.08), side(sg, 0.062, 0.17)}
		if d.CentralLine == Left {
			pts = append(pts, at(0.5+0.03, 0.215), at(0.5-0.03, 0.245))
		}
		pts = append(pts, at(0.5-0.047+g.shift, g.carinaY), at(0.5-0.042+g.shift, g.carinaY+0.09))
		c.stroke(r.a, spline(pts, 8), radii(8*(len(pts)-1)+1, 0.0022, 0.0022), 45, solid)
	}
	if d.Pacemaker {
		gen := at(0.5+0.245, 0.215)
		c.ellipse(r.a, gen, 0.05, 0.036, -0.15, 1.1, func(rho, u, v float64) float64 {
			sup := math.Pow(math.Pow(math.Abs(u), 3.5)+math.Pow(math.Abs(v), 3.5), 1/3.5)
			if sup > 1.05 {
				return 0
			}
			return 1.8 * edge((1.02-sup)/0.08)
		})
		// epoxy header with connector pins
		c.ellipse(r.a, gen.add(vec{-0.012, -0.04}), 0.03, 0.011, -0.15, 1.1, func(rho, u, v float64) float64 {
			return 0.3 * edge((1.02-rho)/0.2)
		})
		for _, dx := range []float64{-0.022, -0.008} {
			c.ellipse(r.a, gen.add(vec{dx, -0.041}), 0.003, 0.007, -0.15, 1.1, func(rho, u, v float64) float64 {
				return 0.9 * sphere(rho, 0.2)
			})
		}
		h := g.heart
		common := []vec{gen.add(vec{-0.015, -0.048}), at(0.5+0.2, 0.16), at(0.5+0.1, 0.175), at(0.5+0.03, 0.205), at(0.5-0.035+g.shift, 0.26), at(0.5-0.048+g.shift, g.carinaY+0.05)}
		atr := append(append([]vec(nil), common...), at(0.5-0.065+g.shift, h.yTop+0.08), at(0.5-0.04+g.shift, h.yTop+0.03), at(0.5-0.025+g.shift, h.yTop+0.045))
		ven := append(append([]vec(nil), common...), at(0.5-0.06+g.shift, h.yTop+0.1), at(0.5+g.shift, h.yR+0.01), at(0.5+g.shift+0.55*h.left, h.yL+0.01))
		for _, lead := range [][]vec{atr, ven} {
			pts := spline(lead, 8)
			c.stroke(r.a, pts, radii(len(pts), 0.0019, 0.0019), 50, solid)
			tip := lead[len(lead)-1]
			c.ellipse(r.a, tip, 0.004, 0.004, 0, 1.2, func(rho, u, v float64) float64 {
				return 0.35 * sphere(rho, 0.2)
			})
		}
	}
}

// acquire simulates the exposure: transmission exp(-mu*A), focal-spot and
// detector blur, quantum noise, log transform, display window, gamma,
// unsharp-mask processing.
func (r *renderer) acquire() *Image {
	q := r.p.Acquisition
	c := r.c
	t := make([]float64, r.n)
	for k, a := range r.a {
		t[k] = math.Exp(-muDisplay * a)
	}
	gaussBlur(t, c.w, c.h, q.Blur*c.s)
	if q.Noise > 0 {
		rg := newRNG(r.p.Seed, streamNoise)
		sig := 0.016 * q.Noise * c.s / 256
		for k := range t {
			t[k] += sig * math.Sqrt(t[k]) * rg.norm()
		}
	}
	lo := -0.04 + q.Exposure
	hi := lo + 1.42/q.Contrast
	v := make([]float64, r.n)
	for k, tv := range t {
		l := -math.Log(math.Max(tv, 1e-5)) / muDisplay
		x := clampf((l-lo)/(hi-lo), 0, 1)
		x = math.Pow(x, q.Gamma)
		v[k] = 0.6*x + 0.4*x*x*(3-2*x)
	}
	if q.Sharpen > 0 {
		b := boxBlur3(v, c.w, c.h, 0.035*c.s)
		for k := range v {
			v[k] += q.Sharpen * (v[k] - b[k])
		}
	}
	im := &Image{W: c.w, H: c.h, Pix: make([]float32, r.n)}
	for k, x := range v {
		im.Pix[k] = float32(clampf(x, 0, 1))
	}
	return im
}
