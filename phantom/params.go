package phantom

import (
	"fmt"
	"math"
)

// Side is a side of the patient's body. In a frontal (PA) radiograph the
// patient's Right is on the image's left and the patient's Left on the
// image's right.
type Side int

// Sides.
const (
	NoSide    Side = iota // absent
	Right                 // patient's right: the image's left half
	Left                  // patient's left: the image's right half
	Bilateral             // both sides
)

var sideNames = []string{"none", "right", "left", "bilateral"}

// String returns "none", "right", "left" or "bilateral".
func (s Side) String() string {
	if s >= 0 && int(s) < len(sideNames) {
		return sideNames[s]
	}
	return fmt.Sprintf("Side(%d)", int(s))
}

// sign is -1 for Right (towards the image's left) and +1 for Left.
func (s Side) sign() float64 {
	if s == Right {
		return -1
	}
	return 1
}

// idx is 0 for Right, 1 for Left.
func (s Side) idx() int {
	if s == Left {
		return 1
	}
	return 0
}

// Severity grades a finding's size.
type Severity int

// Severities; None means the finding is absent.
const (
	None Severity = iota
	Small
	Moderate
	Large
)

var severityNames = []string{"none", "small", "moderate", "large"}

// String returns "none", "small", "moderate" or "large".
func (s Severity) String() string {
	if s >= 0 && int(s) < len(severityNames) {
		return severityNames[s]
	}
	return fmt.Sprintf("Severity(%d)", int(s))
}

// Zone is a vertical third of a lung: upper (apex to hilum), middle (the
// hilar level: right middle lobe, lingula) and lower (to the diaphragm).
type Zone int

// Zones.
const (
	Upper Zone = iota + 1
	Middle
	Lower
)

var zoneNames = []string{"", "upper", "middle", "lower"}

// String returns "upper", "middle" or "lower".
func (z Zone) String() string {
	if z >= Upper && z <= Lower {
		return zoneNames[z]
	}
	return fmt.Sprintf("Zone(%d)", int(z))
}

// Sex is the patient's sex (female phantoms have breast shadows).
type Sex int

// Sexes.
const (
	Male Sex = iota
	Female
)

// String returns "Male" or "Female" (CheXpert's spelling).
func (s Sex) String() string {
	if s == Female {
		return "Female"
	}
	return "Male"
}

// Anatomy describes the patient and the positioning. Lengths are in
// normalised image units: 1 is the image's shorter side at Scale 1 (about
// 40 cm, so 1 cm is about 0.025).
type Anatomy struct {
	Sex Sex
	Age int // years; only written to the labels
	// Habitus scales the soft-tissue thickness and the chest wall (0.8 thin
	// .. 1.3 large).
	Habitus float64
	// Scale is the thorax's size in the field of view (0.85 .. 1.1).
	Scale float64
	// Inspiration is the depth of inspiration, 0 (shallow: domes high,
	// about 8 posterior ribs) .. 1 (deep: about 10-11 ribs).
	Inspiration float64
	// Tilt is the in-plane rotation of the patient, degrees (positive:
	// clockwise on the image).
	Tilt float64
	// Rotation is the axial rotation, degrees: it moves the spinous
	// processes off the midline between the clavicular heads.
	Rotation float64
	// OffsetX and OffsetY move the patient in the field, image units.
	OffsetX, OffsetY float64
	// DomeGap is how much higher the right hemidiaphragm lies than the
	// left, image units (normal 0.01 .. 0.04).
	DomeGap float64
}

// Acquisition describes the exposure and the detector.
type Acquisition struct {
	// Exposure shifts the brightness (-0.15 .. 0.15; positive: darker,
	// more penetrated).
	Exposure float64
	// Contrast scales the display window (0.8 .. 1.25; 1 neutral).
	Contrast float64
	// Gamma is the display gamma (0.8 .. 1.25; 1 neutral).
	Gamma float64
	// Noise is the quantum noise level relative to a typical radiograph
	// (0 none, 1 typical). Per-pixel noise grows with the resolution, as
	// with a real detector of finer pixels.
	Noise float64
	// Blur is the unsharpness, a Gaussian sigma in image units (0 .. 0.003).
	Blur float64
	// Sharpen is the strength of the unsharp-mask processing digital
	// radiographs get (0 .. 0.8).
	Sharpen float64
}

// Pneumothorax is air in the pleural space.
type Pneumothorax struct {
	Side Side     // Right or Left; NoSide when absent
	Size Severity // Small (apical rim), Moderate, Large
}

// Consolidation is airspace opacity filling one zone of one lung.
type Consolidation struct {
	Side            Side // Right or Left
	Zone            Zone
	AirBronchograms bool // dark branching bronchi inside the opacity
}

// Lesion is a round nodule (DiameterMM <= 30) or a mass (> 30 mm).
type Lesion struct {
	Side Side // Right or Left
	// X and Y place the centre inside the lung: X from the medial (0) to
	// the lateral (1) border, Y from the apex (0) to the diaphragm (1).
	X, Y       float64
	DiameterMM float64
}

// IsMass reports whether the lesion is a mass (larger than 3 cm).
func (l Lesion) IsMass() bool { return l.DiameterMM > 30 }

// Zone returns the lung zone holding the lesion's centre.
func (l Lesion) Zone() Zone {
	switch {
	case l.Y < 0.4:
		return Upper
	case l.Y < 0.65:
		return Middle
	}
	return Lower
}

// Atelectasis is plate-like (discoid) atelectasis, optionally with volume
// loss (the ipsilateral hemidiaphragm raised and the mediastinum shifted
// towards the side).
type Atelectasis struct {
	Side       Side // Right or Left
	Zone       Zone // Middle or Lower
	VolumeLoss bool
}

// Devices are support devices.
type Devices struct {
	// ETT is an endotracheal tube, its tip ETTTipCM above the carina.
	ETT      bool
	ETTTipCM float64
	// CentralLine is a central venous catheter from the internal jugular
	// vein of that side, tip at the cavoatrial junction; NoSide: none.
	CentralLine Side
	// Pacemaker is a left pectoral generator with atrial and ventricular
	// leads.
	Pacemaker bool
}

// Any reports whether any device is present.
func (d Devices) Any() bool { return d.ETT || d.CentralLine != NoSide || d.Pacemaker }

// Findings are the abnormalities of a phantom; the zero value (with a
// normal CTR) is a normal chest.
type Findings struct {
	// EffusionRight and EffusionLeft are the pleural effusions (None:
	// absent). Small blunts the costophrenic angle; Moderate reaches about
	// a third of the hemithorax and hides the hemidiaphragm; Large about
	// two thirds, with the mediastinum pushed away.
	EffusionRight, EffusionLeft Severity
	// CTR is the cardiothoracic ratio: the heart's greatest transverse
	// width over the thorax's greatest internal width; 0 means a normal
	// heart (0.44). Above 0.5 is cardiomegaly.
	CTR           float64
	Pneumothorax  Pneumothorax
	Consolidation []Consolidation
	Lesions       []Lesion
	Atelectasis   []Atelectasis
	Devices       Devices
}

// Cardiomegaly reports whether the CTR exceeds 0.5.
func (f Findings) Cardiomegaly() bool { return f.ctr() > 0.5 }

func (f Findings) ctr() float64 {
	if f.CTR == 0 {
		return 0.44
	}
	return f.CTR
}

// Effusion returns the side(s) with an effusion (NoSide, Right, Left or
// Bilateral).
func (f Findings) Effusion() Side {
	switch {
	case f.EffusionRight != None && f.EffusionLeft != None:
		return Bilateral
	case f.EffusionRight != None:
		return Right
	case f.EffusionLeft != None:
		return Left
	}
	return NoSide
}

// Normal reports whether there is no pathology (devices do not count, as
// in CheXpert's No Finding).
func (f Findings) Normal() bool {
	return f.Effusion() == NoSide && !f.Cardiomegaly() && f.Pneumothorax.Size == None &&
		len(f.Consolidation) == 0 && len(f.Lesions) == 0 && len(f.Atelectasis) == 0
}

// Params fully describe a phantom: the same Params give the same pixels.
// Seed fixes what the fields do not: small variations of the organ shapes,
// the vessel tree, the lung texture, the noise and the report's wording.
type Params struct {
	Seed        uint64
	Anatomy     Anatomy
	Acquisition Acquisition
	Findings    Findings
}

// Validate checks that the parameters are within the modelled ranges.
func (p Params) Validate() error {
	a, q, f := p.Anatomy, p.Acquisition, p.Findings
	check := func(name string, v, lo, hi float64) error {
		if !(v >= lo && v <= hi) {
			return fmt.Errorf("phantom: %s %v, expected a value in [%v, %v]", name, v, lo, hi)
		}
		return nil
	}
	for _, c := range []struct {
		name      string
		v, lo, hi float64
	}{
		{"Anatomy.Habitus", a.Habitus, 0.6, 1.6},
		{"Anatomy.Scale", a.Scale, 0.7, 1.3},
		{"Anatomy.Inspiration", a.Inspiration, 0, 1},
		{"Anatomy.Tilt", a.Tilt, -15, 15},
		{"Anatomy.Rotation", a.Rotation, -15, 15},
		{"Anatomy.OffsetX", a.OffsetX, -0.1, 0.1},
		{"Anatomy.OffsetY", a.OffsetY, -0.1, 0.1},
		{"Anatomy.DomeGap", a.DomeGap, -0.05, 0.08},
		{"Acquisition.Exposure", q.Exposure, -0.5, 0.5},
		{"Acquisition.Contrast", q.Contrast, 0.5, 2},
		{"Acquisition.Gamma", q.Gamma, 0.5, 2},
		{"Acquisition.Noise", q.Noise, 0, 5},
		{"Acquisition.Blur", q.Blur, 0, 0.02},
		{"Acquisition.Sharpen", q.Sharpen, 0, 2},
		{"Findings.CTR", f.ctr(), 0.3, 0.8},
		{"Findings.Devices.ETTTipCM", f.Devices.ETTTipCM, 0, 8},
	} {
		if err := check(c.name, c.v, c.lo, c.hi); err != nil {
			return err
		}
	}
	sev := func(name string, s Severity) error {
		if s < None || s > Large {
			return fmt.Errorf("phantom: %s %d, expected None, Small, Moderate or Large", name, int(s))
		}
		return nil
	}
	one := func(name string, s Side) error {
		if s != Right && s != Left {
			return fmt.Errorf("phantom: %s side %v, expected Right or Left", name, s)
		}
		return nil
	}
	if err := sev("Findings.EffusionRight", f.EffusionRight); err != nil {
		return err
	}
	if err := sev("Findings.EffusionLeft", f.EffusionLeft); err != nil {
		return err
	}
	if err := sev("Findings.Pneumothorax.Size", f.Pneumothorax.Size); err != nil {
		return err
	}
	if f.Pneumothorax.Size != None {
		if err := one("Findings.Pneumothorax", f.Pneumothorax.Side); err != nil {
			return err
		}
	}
	for _, c := range f.Consolidation {
		if err := one("Findings.Consolidation", c.Side); err != nil {
			return err
		}
		if c.Zone < Upper || c.Zone > Lower {
			return fmt.Errorf("phantom: Findings.Consolidation zone %v, expected Upper, Middle or Lower", c.Zone)
		}
	}
	for _, l := range f.Lesions {
		if err := one("Findings.Lesions", l.Side); err != nil {
			return err
		}
		if err := check("Findings.Lesions.X", l.X, 0, 1); err != nil {
			return err
		}
		if err := check("Findings.Lesions.Y", l.Y, 0, 1); err != nil {
			return err
		}
		if err := check("Findings.Lesions.DiameterMM", l.DiameterMM, 3, 100); err != nil {
			return err
		}
	}
	for _, t := range f.Atelectasis {
		if err := one("Findings.Atelectasis", t.Side); err != nil {
			return err
		}
		if t.Zone != Middle && t.Zone != Lower {
			return fmt.Errorf("phantom: Findings.Atelectasis zone %v, expected Middle or Lower", t.Zone)
		}
	}
	if c := f.Devices.CentralLine; c != NoSide && c != Right && c != Left {
		return fmt.Errorf("phantom: Findings.Devices.CentralLine %v, expected NoSide, Right or Left", c)
	}
	return nil
}

// Options control Random.
type Options struct {
	// FindingsRate is the fraction of phantoms with at least one finding
	// (a pathology or a support device), in [0, 1]; the rest are normal.
	FindingsRate float64
}

// NormalAnatomy returns a typical, centred, well-inspired adult.
func NormalAnatomy() Anatomy {
	return Anatomy{Sex: Male, Age: 50, Habitus: 1, Scale: 1, Inspiration: 0.7, DomeGap: 0.025}
}

// NormalAcquisition returns a typical, well-exposed acquisition.
func NormalAcquisition() Acquisition {
	return Acquisition{Contrast: 1, Gamma: 1, Noise: 1, Blur: 0.0008, Sharpen: 0.25}
}

// Normal returns a normal phantom with typical anatomy and acquisition;
// the seed varies only the details Params.Seed fixes.
func Normal(seed uint64) Params {
	return Params{Seed: seed, Anatomy: NormalAnatomy(), Acquisition: NormalAcquisition(), Findings: Findings{CTR: 0.44}}
}

// Random draws a phantom: anatomy, acquisition and, with probability
// o.FindingsRate, one to three findings. Anatomy, acquisition and findings
// come from separate random streams of the seed.
func Random(seed uint64, o Options) Params {
	r := newRNG(seed, streamAnatomy)
	a := Anatomy{
		Sex:         Sex(r.intn(2)),
		Age:         20 + r.intn(70),
		Habitus:     clampf(1+0.13*r.norm(), 0.8, 1.3),
		Scale:       r.uniform(0.9, 1.04),
		Inspiration: clampf(0.65+0.2*r.norm(), 0.15, 1),
		Tilt:        clampf(1.2*r.norm(), -3.5, 3.5),
		Rotation:    clampf(1.5*r.norm(), -4, 4),
		OffsetX:     r.uniform(-0.02, 0.02),
		OffsetY:     r.uniform(-0.025, 0.02),
		DomeGap:     r.uniform(0.01, 0.04),
	}
	r = newRNG(seed, streamAcquisition)
	q := Acquisition{
		Exposure: clampf(0.05*r.norm(), -0.13, 0.13),
		Contrast: clampf(1+0.08*r.norm(), 0.82, 1.2),
		Gamma:    clampf(1+0.08*r.norm(), 0.82, 1.2),
		Noise:    r.uniform(0.4, 1.6),
		Blur:     r.uniform(0.0004, 0.0016),
		Sharpen:  r.uniform(0.1, 0.45),
	}
	r = newRNG(seed, streamFindings)
	f := Findings{CTR: r.uniform(0.39, 0.48)}
	if r.float() < o.FindingsRate {
		randomFindings(r, &f)
	}
	return Params{Seed: seed, Anatomy: a, Acquisition: q, Findings: f}
}

// DatasetSeed returns the seed of image index of a dataset drawn with
// seed (what examples/phantoms passes to Random).
func DatasetSeed(seed uint64, index int) uint64 { return mix(seed, uint64(index)) }

// Finding kinds for randomFindings.
const (
	kindEffusion = iota
	kindCardiomegaly
	kindPneumothorax
	kindConsolidation
	kindLesion
	kindAtelectasis
	kindDevices
	numKinds
)

var kindWeights = [numKinds]float64{0.2, 0.16, 0.14, 0.16, 0.12, 0.12, 0.1}

func randomSide(r *rng) Side {
	if r.chance(0.5) {
		return Right
	}
	return Left
}

func randomSeverity(r *rng) Severity { return Severity(1 + r.pick([]float64{0.4, 0.4, 0.2})) }

// randomFindings adds one to three different findings to f.
func randomFindings(r *rng, f *Findings) {
	n := 1
	if r.chance(0.35) {
		n++
		if r.chance(0.3) {
			n++
		}
	}
	w := kindWeights
	for k := 0; k < n; k++ {
		kind := r.pick(w[:])
		w[kind] = 0
		switch kind {
		case kindEffusion:
			switch r.pick([]float64{0.4, 0.4, 0.2}) {
			case 0:
				f.EffusionRight = randomSeverity(r)
			case 1:
				f.EffusionLeft = randomSeverity(r)
			default:
				f.EffusionRight = Severity(1 + r.intn(2))
				f.EffusionLeft = f.EffusionRight
				if r.chance(0.3) {
					f.EffusionLeft = Severity(1 + r.intn(2))
				}
			}
		case kindCardiomegaly:
			f.CTR = r.uniform(0.54, 0.7)
		case kindPneumothorax:
			f.Pneumothorax = Pneumothorax{Side: randomSide(r), Size: randomSeverity(r)}
		case kindConsolidation:
			c := Consolidation{Side: randomSide(r), Zone: Zone(1 + r.pick([]float64{0.25, 0.25, 0.5})), AirBronchograms: r.chance(0.5)}
			f.Consolidation = append(f.Consolidation, c)
		case kindLesion:
			d := math.Round(r.uniform(6, 28))
			if r.chance(0.3) {
				d = math.Round(r.uniform(35, 70))
			}
			f.Lesions = append(f.Lesions, Lesion{Side: randomSide(r), X: r.uniform(0.3, 0.8), Y: r.uniform(0.15, 0.8), DiameterMM: d})
		case kindAtelectasis:
			f.Atelectasis = append(f.Atelectasis, Atelectasis{Side: randomSide(r), Zone: Zone(2 + r.intn(2)), VolumeLoss: r.chance(0.5)})
		case kindDevices:
			switch r.pick([]float64{0.35, 0.3, 0.2, 0.15}) {
			case 0:
				f.Devices.ETT = true
			case 1:
				f.Devices.CentralLine = randomSide(r)
			case 2:
				f.Devices.Pacemaker = true
			default:
				f.Devices.ETT = true
				f.Devices.CentralLine = Right
			}
			if f.Devices.ETT {
				f.Devices.ETTTipCM = math.Round(r.uniform(3, 6)*2) / 2
			}
		}
	}
}

// Showcase returns twelve phantoms, one per tile of the preview grid:
// a normal chest, then each finding (see docs/PHANTOMS.md).
func Showcase(seed uint64) []Params {
	base := func(i int) Params {
		p := Normal(mix(seed, uint64(i)))
		p.Anatomy.Sex = Sex(i % 2)
		return p
	}
	var out []Params
	add := func(f func(*Findings)) {
		p := base(len(out))
		f(&p.Findings)
		out = append(out, p)
	}
	add(func(f *Findings) {})
	add(func(f *Findings) { f.EffusionRight = Small })
	add(func(f *Findings) { f.EffusionLeft = Large })
	add(func(f *Findings) { f.EffusionRight, f.EffusionLeft = Moderate, Moderate })
	add(func(f *Findings) { f.CTR = 0.64 })
	add(func(f *Findings) { f.Pneumothorax = Pneumothorax{Side: Right, Size: Large} })
	add(func(f *Findings) {
		f.Consolidation = []Consolidation{{Side: Right, Zone: Lower, AirBronchograms: true}}
	})
	add(func(f *Findings) { f.Consolidation = []Consolidation{{Side: Left, Zone: Upper}} })
	add(func(f *Findings) { f.Lesions = []Lesion{{Side: Left, X: 0.55, Y: 0.3, DiameterMM: 18}} })
	add(func(f *Findings) { f.Lesions = []Lesion{{Side: Right, X: 0.5, Y: 0.5, DiameterMM: 55}} })
	add(func(f *Findings) {
		f.Atelectasis = []Atelectasis{{Side: Left, Zone: Lower, VolumeLoss: true}}
	})
	add(func(f *Findings) {
		f.Devices = Devices{ETT: true, ETTTipCM: 4.5, CentralLine: Right, Pacemaker: true}
	})
	return out
}

func clampf(v, lo, hi float64) float64 {
	if v < lo {
		return lo
	}
	if v > hi {
		return hi
	}
	return v
}
