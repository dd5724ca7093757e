package phantom

import (
	"math"
	"testing"
)

const testSize = 256

// clean returns a normal phantom without noise or processing, so that a
// finding's effect is the difference of two renderings.
func clean(seed uint64) Params {
	p := Normal(seed)
	p.Acquisition.Noise = 0
	p.Acquisition.Sharpen = 0
	return p
}

func renderT(t testing.TB, p Params) *Image {
	t.Helper()
	im, err := Render(p, testSize, testSize)
	if err != nil {
		t.Fatal(err)
	}
	return im
}

// renderSoft renders without the skeleton.
func renderSoft(t testing.TB, p Params) *Image {
	t.Helper()
	im, err := render(p, testSize, testSize, true)
	if err != nil {
		t.Fatal(err)
	}
	return im
}

// pair renders p without and with the finding set by f.
func pair(t *testing.T, p Params, f func(*Findings)) (without, with *Image) {
	t.Helper()
	q := p
	q.Findings.Consolidation = append([]Consolidation(nil), p.Findings.Consolidation...)
	f(&q.Findings)
	return renderT(t, p), renderT(t, q)
}

// boxMean is the mean over pixels [x0,x1) x [y0,y1).
func boxMean(im *Image, x0, y0, x1, y1 float64) float64 {
	s, n := 0.0, 0
	for y := max(int(y0), 0); y < min(int(y1), im.H); y++ {
		for x := max(int(x0), 0); x < min(int(x1), im.W); x++ {
			s += float64(im.At(x, y))
			n++
		}
	}
	return s / float64(n)
}

// lowerLateral is a box in the lower lateral zone of side s.
func lowerLateral(m Landmarks, s int) (x0, y0, x1, y1 float64) {
	cp, dome := m.CostophrenicAngle[s], m.Dome[s]
	xa, xb := cp.X, lerp(cp.X, dome.X, 0.6)
	return math.Min(xa, xb), cp.Y - 0.14*testSize, math.Max(xa, xb), cp.Y - 0.02*testSize
}

func TestDeterministic(t *testing.T) {
	p := Random(7, Options{FindingsRate: 1})
	a, b := renderT(t, p), renderT(t, p)
	for i := range a.Pix {
		if a.Pix[i] != b.Pix[i] {
			t.Fatalf("pixel %d differs between two renderings of the same parameters", i)
		}
	}
	c := renderT(t, Random(8, Options{FindingsRate: 1}))
	d := 0.0
	for i := range a.Pix {
		d += math.Abs(float64(a.Pix[i] - c.Pix[i]))
	}
	if d /= float64(len(a.Pix)); d < 0.01 {
		t.Errorf("seeds 7 and 8 give nearly the same image (mean |diff| %.4f)", d)
	}
	if MakeReport(p).Text != MakeReport(p).Text {
		t.Error("the report is not deterministic")
	}
}

// The geometry is resolution-independent: a 512 rendering averaged down
// to 256 matches the 256 rendering.
func TestResolutionIndependent(t *testing.T) {
	p := clean(3)
	p.Acquisition.Blur = 0.002
	a := renderT(t, p)
	b, err := Render(p, 2*testSize, 2*testSize)
	if err != nil {
		t.Fatal(err)
	}
	d := 0.0
	for y := range testSize {
		for x := range testSize {
			v := (b.At(2*x, 2*y) + b.At(2*x+1, 2*y) + b.At(2*x, 2*y+1) + b.At(2*x+1, 2*y+1)) / 4
			d += math.Abs(float64(v - a.At(x, y)))
		}
	}
	if d /= testSize * testSize; d > 0.01 {
		t.Errorf("256 and downsampled 512 renderings differ by %.4f on average", d)
	}
}

func TestBadInput(t *testing.T) {
	if _, err := Render(Normal(1), 16, 256); err == nil {
		t.Error("size 16x256 accepted")
	}
	for _, f := range []func(*Params){
		func(p *Params) { p.Findings.CTR = 0.95 },
		func(p *Params) { p.Anatomy.Scale = 0 },
		func(p *Params) { p.Findings.Pneumothorax = Pneumothorax{Side: Bilateral, Size: Small} },
		func(p *Params) { p.Findings.Lesions = []Lesion{{Side: Left, X: 2, Y: 0.5, DiameterMM: 10}} },
		func(p *Params) { p.Findings.EffusionLeft = 7 },
		func(p *Params) { p.Acquisition.Noise = math.NaN() },
	} {
		p := Normal(1)
		f(&p)
		if _, err := Render(p, 64, 64); err == nil {
			t.Errorf("invalid parameters accepted: %+v", p.Findings)
		}
	}
}

// The image is laid out as radiographs are displayed: the patient's left
// (heart apex, gastric bubble) on the image's right.
func TestLaterality(t *testing.T) {
	p := clean(5)
	m := p.Landmarks(testSize, testSize)
	if !(m.HeartBorder[1].X > testSize/2 && m.HeartBorder[0].X < testSize/2) {
		t.Fatalf("heart borders %v: expected the patient's left border on the image's right", m.HeartBorder)
	}
	if m.HeartBorder[1].X-testSize/2 < 1.5*(testSize/2-m.HeartBorder[0].X) {
		t.Errorf("the heart does not lie mostly on the patient's left: borders %v", m.HeartBorder)
	}
	if m.Dome[0].Y >= m.Dome[1].Y {
		t.Errorf("right dome at y %.1f, left at %.1f: expected the right higher", m.Dome[0].Y, m.Dome[1].Y)
	}
	// gastric bubble: dark under the left dome, not under the right
	im := renderT(t, p)
	under := func(s int) float64 {
		d := m.Dome[s]
		return boxMean(im, d.X-8, d.Y+8, d.X+8, d.Y+16)
	}
	if under(1) > under(0)-0.05 {
		t.Errorf("below the left dome %.3f, right %.3f: expected the gastric bubble (darker) under the left", under(1), under(0))
	}
}

func TestEffusion(t *testing.T) {
	for _, c := range []struct {
		side Side
		sev  Severity
	}{{Left, Small}, {Left, Moderate}, {Right, Moderate}, {Left, Large}, {Right, Large}} {
		p := clean(11)
		m := p.Landmarks(testSize, testSize)
		a, b := pair(t, p, func(f *Findings) {
			if c.side == Left {
				f.EffusionLeft = c.sev
			} else {
				f.EffusionRight = c.sev
			}
		})
		s := c.side.idx()
		x0, y0, x1, y1 := lowerLateral(m, s)
		if c.sev == Small {
			// the costophrenic angle
			cp := m.CostophrenicAngle[s]
			x0, x1 = math.Min(cp.X, lerp(cp.X, m.Dome[s].X, 0.3)), math.Max(cp.X, lerp(cp.X, m.Dome[s].X, 0.3))
			y0, y1 = cp.Y-0.06*testSize, cp.Y
		}
		if c.side == Left && x0 < testSize/2 {
			t.Fatalf("left lower zone at x %.0f..%.0f: expected the image's right half", x0, x1)
		}
		up := boxMean(b, x0, y0, x1, y1) - boxMean(a, x0, y0, x1, y1)
		cx0, cy0, cx1, cy1 := lowerLateral(m, 1-s)
		other := boxMean(b, cx0, cy0, cx1, cy1) - boxMean(a, cx0, cy0, cx1, cy1)
		t.Logf("%v %v effusion: ipsilateral lower zone %+.3f, contralateral %+.3f", c.sev, c.side, up, other)
		if up < 0.03 || math.Abs(other) > 0.3*up {
			t.Errorf("%v %v effusion: ipsilateral lower zone %+.3f, contralateral %+.3f", c.sev, c.side, up, other)
		}
		if c.sev != Moderate {
			continue // a large effusion also shifts the mediastinum and hila
		}
		// meniscus: the opacity's upper edge is higher laterally
		top := func(x float64) float64 {
			xi := int(x)
			peak := 0.0
			for y := 0; y < testSize; y++ {
				peak = math.Max(peak, float64(b.At(xi, y)-a.At(xi, y)))
			}
			for y := 0; y < testSize; y++ {
				if float64(b.At(xi, y)-a.At(xi, y)) > 0.5*peak {
					return float64(y)
				}
			}
			return testSize
		}
		cp, hb := m.CostophrenicAngle[s], m.HeartBorder[s]
		lat, med := top(lerp(cp.X, hb.X, 0.12)), top(lerp(cp.X, hb.X, 0.75))
		if lat >= med {
			t.Errorf("%v %v effusion: upper edge at row %.0f laterally, %.0f medially: expected a meniscus, higher laterally", c.sev, c.side, lat, med)
		}
	}
}

// highpass returns the variance of (pixel - 5x5 mean) over the pixels
// where in is true, and their mean.
func highpass(im *Image, in func(x, y int) bool) (variance, mean float64) {
	n := 0
	for y := 2; y < im.H-2; y++ {
		for x := 2; x < im.W-2; x++ {
			if !in(x, y) {
				continue
			}
			s := 0.0
			for dy := -2; dy <= 2; dy++ {
				for dx := -2; dx <= 2; dx++ {
					s += float64(im.At(x+dx, y+dy))
				}
			}
			d := float64(im.At(x, y)) - s/25
			variance += d * d
			mean += float64(im.At(x, y))
			n++
		}
	}
	return variance / float64(n), mean / float64(n)
}

func TestPneumothorax(t *testing.T) {
	for _, sd := range []Side{Right, Left} {
		p := clean(21)
		a, b := pair(t, p, func(f *Findings) { f.Pneumothorax = Pneumothorax{Side: sd, Size: Large} })
		q := p
		q.Findings.Pneumothorax = Pneumothorax{Side: sd, Size: Large}
		sa, sb := renderSoft(t, p), renderSoft(t, q) // markings without the ribs
		g := newGeom(q)
		c := newCanvas(testSize, testSize, q.Anatomy)
		r := &renderer{p: q, g: g, c: c}
		// the band lateral to the pleural line (at least 2 pixels from it),
		// away from the chest wall, upper half; the same band mirrored
		// on the other side
		band := func(s int) func(x, y int) bool {
			return func(x, y int) bool {
				k := y*testSize + x
				mx := c.px[k]
				if s != sd.idx() {
					mx = 1 - mx
				}
				d, _, dl, dt, _ := r.lungFull(sd.idx(), mx, c.py[k])
				gap, _ := r.pneumo(sd.idx(), dl+2*c.pix, dt+2*c.pix, c.py[k])
				l := &g.lung[s]
				return d > 0 && c.py[k] < lerp(l.yApex, l.yCP, 0.45) && math.Min(dl, 1.2*dt) > 0.03 && gap > 0.99
			}
		}
		s := sd.idx()
		va, ma := highpass(sa, band(s))
		vb, mb := highpass(sb, band(s))
		vo, _ := highpass(sa, band(1-s))
		vob, _ := highpass(sb, band(1-s))
		t.Logf("%v pneumothorax: markings variance %.2e -> %.2e, mean %.3f -> %.3f; other side %.2e -> %.2e", sd, va, vb, ma, mb, vo, vob)
		if vb > 0.6*va {
			t.Errorf("%v pneumothorax: high-pass variance lateral to the pleural line %.2e -> %.2e: expected the markings gone", sd, va, vb)
		}
		if mb >= ma {
			t.Errorf("%v pneumothorax: mean %.3f -> %.3f: expected darker", sd, ma, mb)
		}
		if math.Abs(vob-vo) > 0.05*vo {
			t.Errorf("%v pneumothorax changed the other lung: %.2e -> %.2e", sd, vo, vob)
		}
		// the image side: a left pneumothorax darkens the image's right half
		dl, dr := 0.0, 0.0
		for y := range testSize {
			for x := range testSize {
				d := float64(b.At(x, y) - a.At(x, y))
				if x < testSize/2 {
					dl += d
				} else {
					dr += d
				}
			}
		}
		if (sd == Left) != (math.Abs(dr) > math.Abs(dl)) {
			t.Errorf("%v pneumothorax: change %.1f in the image's left half, %.1f in the right", sd, dl, dr)
		}
	}
}

// measureCTR measures the cardiothoracic ratio on the image with row
// profiles: the heart's greatest width (from the midline out to where the
// row falls halfway from the silhouette to the darkest lung) over the
// thorax's greatest internal width (from the chest wall's brightest point
// in to where the row falls halfway to the lung). Landmarks only bound the
// search.
func measureCTR(im *Image, m Landmarks) float64 {
	row := func(y int) []float64 {
		v := make([]float64, im.W)
		for x := range im.W {
			s := 0.0
			for dy := -1; dy <= 1; dy++ {
				for dx := -1; dx <= 1; dx++ {
					s += float64(im.At(min(max(x+dx, 0), im.W-1), min(max(y+dy, 0), im.H-1)))
				}
			}
			v[x] = s / 9
		}
		return v
	}
	xl, xr := int(m.ThoraxWall[0].X), int(m.ThoraxWall[1].X)
	mid := int((m.HeartBorder[0].X + m.HeartBorder[1].X) / 2)
	lung := func(v []float64) float64 {
		lo := 1.0
		for x := xl + 3; x < xr-3; x++ {
			lo = math.Min(lo, v[x])
		}
		return lo
	}
	heart := 0.0
	for y := int(m.Hilum[0].Y) + 4; y < int(m.Dome[0].Y)-2; y++ {
		v := row(y)
		thr := (v[mid] + lung(v)) / 2
		l, r := mid, mid
		for l > 0 && v[l] > thr {
			l--
		}
		for r < im.W-1 && v[r] > thr {
			r++
		}
		heart = math.Max(heart, float64(r-l))
	}
	thorax := 0.0
	reach := int(0.06 * float64(im.W))
	for y := int(m.Hilum[0].Y); y < int(m.CostophrenicAngle[0].Y)-2; y++ {
		v := row(y)
		lo := lung(v)
		// left wall: brightest point outside, then in to the lung
		pk := max(xl-reach, 0)
		for x := pk; x < xl+reach; x++ {
			if v[x] > v[pk] {
				pk = x
			}
		}
		l := pk
		for l < mid && v[l] > (v[pk]+lo)/2 {
			l++
		}
		pk = min(xr+reach, im.W-1)
		for x := pk; x > xr-reach; x-- {
			if v[x] > v[pk] {
				pk = x
			}
		}
		r := pk
		for r > mid && v[r] > (v[pk]+lo)/2 {
			r--
		}
		thorax = math.Max(thorax, float64(r-l))
	}
	return heart / thorax
}

func TestCardiomegaly(t *testing.T) {
	prev := 0.0
	for _, ctr := range []float64{0.42, 0.5, 0.58, 0.68} {
		p := clean(31)
		p.Findings.CTR = ctr
		got := measureCTR(renderT(t, p), p.Landmarks(testSize, testSize))
		t.Logf("CTR %.2f: measured %.3f", ctr, got)
		if math.Abs(got-ctr) > 0.05 {
			t.Errorf("CTR %.2f: measured %.3f on the image", ctr, got)
		}
		if got <= prev {
			t.Errorf("CTR %.2f: measured %.3f, not above the smaller CTR's %.3f", ctr, got, prev)
		}
		prev = got
		if (ctr > 0.5) != p.Findings.Cardiomegaly() {
			t.Errorf("CTR %.2f: Cardiomegaly() = %v", ctr, p.Findings.Cardiomegaly())
		}
	}
}

func TestConsolidation(t *testing.T) {
	for _, c := range []Consolidation{{Side: Right, Zone: Lower, AirBronchograms: true}, {Side: Left, Zone: Upper}, {Side: Right, Zone: Middle}, {Side: Left, Zone: Lower}} {
		p := clean(41)
		a, b := pair(t, p, func(f *Findings) { f.Consolidation = []Consolidation{c} })
		r := &renderer{p: p, g: newGeom(p), c: newCanvas(testSize, testSize, p.Anatomy)}
		zoneMean := func(im *Image, s int, z Zone) float64 {
			y := map[Zone]float64{Upper: 0.25, Middle: 0.52, Lower: 0.85}[z]
			ctr := r.lungPoint(s, 0.5, y)
			x, yy := r.c.toPixel(ctr)
			return boxMean(im, x-10, yy-10, x+10, yy+10)
		}
		s := c.Side.idx()
		up := zoneMean(b, s, c.Zone) - zoneMean(a, s, c.Zone)
		other := zoneMean(b, 1-s, c.Zone) - zoneMean(a, 1-s, c.Zone)
		t.Logf("%v %v consolidation: zone %+.3f, contralateral %+.3f", c.Side, c.Zone, up, other)
		if up < 0.05 || math.Abs(other) > 0.01 {
			t.Errorf("%v %v consolidation: zone %+.3f, contralateral %+.3f", c.Side, c.Zone, up, other)
		}
	}
}

func TestLesion(t *testing.T) {
	for _, l := range []Lesion{{Side: Left, X: 0.5, Y: 0.3, DiameterMM: 15}, {Side: Right, X: 0.6, Y: 0.6, DiameterMM: 45}} {
		p := clean(51)
		a, b := pair(t, p, func(f *Findings) { f.Lesions = []Lesion{l} })
		r := &renderer{p: p, g: newGeom(p), c: newCanvas(testSize, testSize, p.Anatomy)}
		cx, cy := r.c.toPixel(r.lungPoint(l.Side.idx(), l.X, l.Y))
		rad := l.DiameterMM / 10 * 0.025 / 2 * testSize
		if (l.Side == Left) != (cx > testSize/2) {
			t.Errorf("%v lesion drawn at x %.0f", l.Side, cx)
		}
		ring := func(r0, r1 float64) float64 {
			s, n := 0.0, 0
			for y := range testSize {
				for x := range testSize {
					d := math.Hypot(float64(x)+0.5-cx, float64(y)+0.5-cy)
					if d >= r0 && d < r1 {
						s += float64(b.At(x, y) - a.At(x, y))
						n++
					}
				}
			}
			return s / float64(n)
		}
		in, out := ring(0, 0.6*rad), ring(1.3*rad, 2*rad)
		t.Logf("%.0f mm lesion: %+.3f inside, %+.3f around", l.DiameterMM, in, out)
		if in < 0.06 || out > 0.2*in {
			t.Errorf("%.0f mm lesion: %+.3f inside, %+.3f around: expected a round, well-defined opacity", l.DiameterMM, in, out)
		}
	}
}

// domeRow finds the hemidiaphragm's top in the column x: the first row
// below the hilum where the image turns bright (lung to abdomen).
func domeRow(im *Image, x, from float64) float64 {
	xi := int(x)
	col := func(y int) float64 { return boxMean(im, float64(xi-2), float64(y), float64(xi+3), float64(y+1)) }
	lo, hi := 1.0, 0.0
	for y := int(from); y < im.H; y++ {
		lo, hi = math.Min(lo, col(y)), math.Max(hi, col(y))
	}
	for y := int(from); y < im.H; y++ {
		if col(y) > (lo+hi)/2 && col(y+3) > (lo+hi)/2 && col(y+10) > (lo+hi)/2 {
			return float64(y)
		}
	}
	return float64(im.H)
}

func TestAtelectasis(t *testing.T) {
	for _, sd := range []Side{Left, Right} {
		p := clean(61)
		at := Atelectasis{Side: sd, Zone: Lower, VolumeLoss: true}
		a, b := pair(t, p, func(f *Findings) { f.Atelectasis = []Atelectasis{at} })
		m := p.Landmarks(testSize, testSize)
		s := sd.idx()
		col := func(s int) float64 { return lerp(m.Dome[s].X, m.CostophrenicAngle[s].X, 0.4) }
		ya, yb := domeRow(a, col(s), m.Hilum[s].Y), domeRow(b, col(s), m.Hilum[s].Y)
		oa, ob := domeRow(a, col(1-s), m.Hilum[1-s].Y), domeRow(b, col(1-s), m.Hilum[1-s].Y)
		t.Logf("%v atelectasis: ipsilateral dome row %.0f -> %.0f, contralateral %.0f -> %.0f", sd, ya, yb, oa, ob)
		if ya-yb < 0.02*testSize || math.Abs(oa-ob) > 1 {
			t.Errorf("%v atelectasis with volume loss: ipsilateral dome row %.0f -> %.0f, contralateral %.0f -> %.0f", sd, ya, yb, oa, ob)
		}
		// the plate: a thin band brighter than the lung around it
		d, n := 0.0, 0
		for k := range a.Pix {
			if v := float64(b.Pix[k] - a.Pix[k]); v > 0.05 {
				d += v
				n++
			}
		}
		if n == 0 {
			t.Errorf("%v atelectasis: no linear opacity", sd)
		}
	}
}

func TestDevices(t *testing.T) {
	p := clean(71)
	a, b := pair(t, p, func(f *Findings) {
		f.Devices = Devices{ETT: true, ETTTipCM: 4, CentralLine: Right, Pacemaker: true}
	})
	m := p.Landmarks(testSize, testSize)
	// the tube's radiopaque stripe in the trachea above the carina
	c := m.Carina
	maxUp := 0.0
	for y := int(c.Y - 0.2*testSize); y < int(c.Y-0.12*testSize); y++ {
		for x := int(c.X) - 6; x <= int(c.X)+6; x++ {
			maxUp = math.Max(maxUp, float64(b.At(x, y)-a.At(x, y)))
		}
	}
	// but not below the tip (4 cm above the carina)
	below := 0.0
	for y := int(c.Y - 0.05*testSize); y < int(c.Y); y++ {
		for x := int(c.X) - 3; x <= int(c.X)+3; x++ {
			below = math.Max(below, float64(b.At(x, y)-a.At(x, y)))
		}
	}
	if maxUp < 0.1 || below > 0.05 {
		t.Errorf("endotracheal tube: brightening %.3f in the trachea, %.3f below the tip", maxUp, below)
	}
	// the pacemaker generator on the patient's left (image right), upper chest
	gen := boxMean(b, 0.72*testSize, 0.18*testSize, 0.76*testSize, 0.23*testSize)
	if gen < 0.9 {
		t.Errorf("pacemaker generator brightness %.3f, expected near white", gen)
	}
}
