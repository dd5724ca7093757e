package phantom

// Point is a position in pixels (x to the right, y down; pixel centres at
// half-integers).
type Point struct{ X, Y float64 }

// Landmarks are anatomical positions of a phantom in pixels of a w x h
// rendering, from its geometry (not measured on the image). Arrays are
// indexed by patient side: [0] Right (the image's left), [1] Left.
type Landmarks struct {
	Apex              [2]Point // top of each lung
	Dome              [2]Point // top of each hemidiaphragm
	CostophrenicAngle [2]Point
	Hilum             [2]Point
	// ThoraxWall is the inner chest wall at the thorax's greatest width.
	ThoraxWall [2]Point
	// HeartBorder is the cardiac border at the heart's greatest extent.
	HeartBorder [2]Point
	Carina      Point
}

// Landmarks returns the phantom's landmarks for a w x h rendering.
func (p Params) Landmarks(w, h int) Landmarks {
	g := newGeom(p)
	c := &canvas{w: w, h: h, s: float64(min(w, h)), scale: p.Anatomy.Scale}
	ang := p.Anatomy.Tilt * 3.141592653589793 / 180
	c.cs, c.sn = cosSin(ang)
	c.tx, c.ty = p.Anatomy.OffsetX, p.Anatomy.OffsetY
	pt := func(v vec) Point {
		x, y := c.toPixel(v)
		return Point{x, y}
	}
	var m Landmarks
	for s := range 2 {
		l := &g.lung[s]
		m.Apex[s] = pt(side(l.sgn, l.qApex, l.yApex))
		m.Dome[s] = pt(side(l.sgn, l.qDome, l.yDome))
		m.CostophrenicAngle[s] = pt(side(l.sgn, l.qCP, l.yCP))
		m.Hilum[s] = pt(vec{g.hilum[s][0], g.hilum[s][1]})
		m.ThoraxWall[s] = pt(side(l.sgn, l.qMax, l.yW))
		y := g.heart.yR
		if s == 1 {
			y = g.heart.yL
		}
		m.HeartBorder[s] = pt(vec{0.5 + g.shift + l.sgn*g.heartQ(s, y), y})
	}
	m.Carina = pt(vec{0.5 + 0.4*g.shift, g.carinaY})
	return m
}
