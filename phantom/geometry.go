package phantom

import "math"

// Patient coordinates: x from the image's left (the patient's right) to
// the image's right, y from top to bottom, the midline at x = 0.5; the
// renderer maps them to the image with the anatomy's scale, tilt and
// offset. For a side, q is the distance from the midline towards that
// side's lateral chest wall (q = sign*(x-0.5)).

// lungGeom is the outline of one lung as four boundary functions.
type lungGeom struct {
	sgn float64
	// apex dome: yTop(q) = yApex + kTop*(q-qApex)^2
	yApex, qApex, kTop float64
	// lateral (inner rib) wall: qLat(y) = qMax - kLat*(y-yW)^2 above yW,
	// qMax - kLow*(y-yW)^2 below
	qMax, yW, kLat, kLow float64
	// diaphragm: yBot(q) = yDome + kDL*(q-qDome)^2 laterally of qDome,
	// yDome + kDM*(qDome-q)^2 medially
	yDome, qDome, kDL, kDM float64
	// costophrenic angle
	yCP, qCP float64
	depth    float64 // greatest air depth, tissue units
}

func (l *lungGeom) top(q float64) float64 { d := q - l.qApex; return l.yApex + l.kTop*d*d }

func (l *lungGeom) lat(y float64) float64 {
	d := y - l.yW
	if d < 0 {
		return l.qMax - l.kLat*d*d
	}
	return l.qMax - l.kLow*d*d
}

func (l *lungGeom) bot(q float64) float64 {
	if q > l.qDome {
		d := q - l.qDome
		return l.yDome + l.kDL*d*d
	}
	d := l.qDome - q
	return l.yDome + l.kDM*d*d
}

// heartGeom is the cardiac silhouette.
type heartGeom struct {
	right, left float64 // greatest extents from the midline
	yTop        float64 // where the silhouette leaves the mediastinum
	yR, yL      float64 // heights of the greatest extents
	yBot        float64 // lowest point (under the diaphragm)
}

// geom is the derived geometry of one phantom.
type geom struct {
	lung    [2]lungGeom // Right, Left
	heart   heartGeom
	shift   float64 // mediastinal shift, x (positive: towards the patient's left)
	carinaY float64
	yKnob   float64
	knob    float64 // aortic knob prominence
	spineDX float64 // spinous processes offset (axial rotation)
	wall    float64 // chest wall soft tissue thickness
	ribY0   float64 // first posterior rib head
	ribDY   float64 // posterior rib spacing
	hilum   [2][2]float64
	jit     [16]float64 // small per-patient shape jitter in [-1, 1]
}

// newGeom derives the geometry from the parameters.
func newGeom(p Params) *geom {
	r := newRNG(p.Seed, streamShape)
	g := &geom{}
	for i := range g.jit {
		g.jit[i] = 2*r.float() - 1
	}
	a, f := p.Anatomy, p.Findings
	j := g.jit
	// Volume loss raises a hemidiaphragm and pulls the mediastinum; large
	// effusions push it away.
	var raise [2]float64
	for _, t := range f.Atelectasis {
		if t.VolumeLoss {
			raise[t.Side.idx()] += 0.05
			g.shift += 0.012 * t.Side.sign()
		}
	}
	if f.EffusionRight == Large {
		g.shift += 0.02
	}
	if f.EffusionLeft == Large {
		g.shift -= 0.02
	}
	insp := a.Inspiration
	yDomeR := 0.655 + 0.07*(0.6-insp) + 0.008*j[0]
	for s := range 2 {
		l := &g.lung[s]
		l.sgn = -1 + 2*float64(s)
		l.yApex = 0.125 + 0.006*j[1+s]
		l.qApex = 0.13
		l.kTop = 3.0
		l.qMax = 0.365 + 0.01*j[3+s]
		l.yW = 0.58
		l.kLat = 1.25
		l.kLow = 0.5
		l.yDome = yDomeR - raise[s]
		if s == 1 {
			l.yDome += a.DomeGap
		}
		l.qDome = 0.16 + 0.01*j[5+s]
		l.kDL = 3.6
		l.kDM = 2.2
		l.depth = 0.6
		// costophrenic angle: where the lateral wall meets the dome
		y := l.yDome + 0.1
		for range 30 {
			q := l.lat(y)
			y = l.bot(q)
		}
		l.yCP, l.qCP = y, l.lat(y)
	}
	g.carinaY = 0.335 + 0.008*j[7]
	g.yKnob = g.carinaY - 0.055
	g.knob = 0.022 + 0.005*j[8] + 0.0002*float64(a.Age-50)
	g.spineDX = 0.0035 * a.Rotation
	g.wall = 0.04 * a.Habitus
	g.ribY0 = 0.082
	g.ribDY = 0.057

	// Heart: its width is CTR times the internal thoracic width.
	ctr := f.ctr()
	thorax := g.lung[0].qMax + g.lung[1].qMax
	wHeart := ctr * thorax
	rf := 0.33 + 0.12*(ctr-0.45)
	h := &g.heart
	h.right = rf * wHeart
	h.left = wHeart - h.right
	h.yTop = g.carinaY + 0.075
	h.yR = g.lung[0].yDome - 0.085
	h.yL = g.lung[1].yDome - 0.07
	h.yBot = g.lung[1].yDome + 0.06
	// hila: where the pulmonary arteries enter the lungs (left higher)
	g.hilum[0] = [2]float64{0.5 - 0.095 + g.shift, g.carinaY + 0.1}
	g.hilum[1] = [2]float64{0.5 + 0.1 + g.shift, g.carinaY + 0.075}
	return g
}

// med is the mediastinal border of a side: q of the lung's medial edge
// where no heart is in front.
func (g *geom) med(s int, y float64) float64 {
	b := 0.05 + 0.012*smoothstep(0.12, 0.4, y)
	sgn := g.lung[s].sgn
	if s == 1 {
		d := (y - g.yKnob) / 0.028
		b += g.knob * math.Exp(-d*d)
	} else {
		// superior vena cava / right paratracheal stripe
		d := (y - (g.carinaY - 0.02)) / 0.07
		b += 0.012 * math.Exp(-d*d)
	}
	return b + sgn*g.shift
}

// heartQ is the distance from the heart's axis (0.5+shift) to its border
// on side s at height y; 0 above the heart.
func (g *geom) heartQ(s int, y float64) float64 {
	h := &g.heart
	if y < h.yTop-0.03 {
		return 0
	}
	if s == 0 {
		// right atrium: convex, from the superior vena cava down
		t0 := h.yTop
		if y < h.yR {
			t := clampf((y-t0)/(h.yR-t0), 0, 1)
			return 0.055 + (h.right-0.055)*math.Pow(math.Sin(t*math.Pi/2), 0.5)
		}
		d := (y - h.yR) / (h.yBot - h.yR)
		return h.right * (1 - 0.2*d*d)
	}
	// left: main pulmonary artery segment, the flat left atrial
	// appendage, then the convex left ventricle out to the apex
	t0 := h.yTop - 0.035
	if y < h.yL {
		t := clampf((y-t0)/(h.yL-t0), 0, 1)
		return 0.068 + (h.left-0.068)*math.Pow(math.Sin(t*math.Pi/2), 1.1) + 0.01*math.Exp(-sq((t-0.18)/0.1))
	}
	d := (y - h.yL) / (h.yBot - h.yL)
	return h.left * (1 - 0.35*d*d)
}

func smoothstep(e0, e1, x float64) float64 {
	t := clampf((x-e0)/(e1-e0), 0, 1)
	return t * t * (3 - 2*t)
}

// edge is the chord of a cylinder entered t (in units of its half
// width) from its edge: 0 outside, rising like a square root, 1 beyond.
func edge(t float64) float64 {
	if t <= 0 {
		return 0
	}
	if t >= 1 {
		return 1
	}
	return math.Sqrt(t * (2 - t))
}
