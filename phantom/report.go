package phantom

import (
	"fmt"
	"math"
	"strings"
	"unicode"
)

// Observation is one of CheXpert's fourteen label columns.
type Observation int

// CheXpert's observations, in its column order.
const (
	ObsNoFinding Observation = iota
	ObsEnlargedCardiomediastinum
	ObsCardiomegaly
	ObsLungOpacity
	ObsLungLesion
	ObsEdema
	ObsConsolidation
	ObsPneumonia
	ObsAtelectasis
	ObsPneumothorax
	ObsPleuralEffusion
	ObsPleuralOther
	ObsFracture
	ObsSupportDevices
	NumObservations
)

var obsNames = [NumObservations]string{"No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly",
	"Lung Opacity", "Lung Lesion", "Edema", "Consolidation", "Pneumonia", "Atelectasis",
	"Pneumothorax", "Pleural Effusion", "Pleural Other", "Fracture", "Support Devices"}

// String returns the CheXpert column name.
func (o Observation) String() string {
	if o >= 0 && o < NumObservations {
		return obsNames[o]
	}
	return fmt.Sprintf("Observation(%d)", int(o))
}

// Label is a CheXpert label value.
type Label int8

// Label values: Blank (not mentioned), Negative (mentioned as absent:
// 0.0), Positive (1.0). CheXpert's uncertain (-1.0) is never produced.
const (
	Blank Label = iota
	Negative
	Positive
)

// CSV returns "", "0.0" or "1.0".
func (l Label) CSV() string {
	switch l {
	case Negative:
		return "0.0"
	case Positive:
		return "1.0"
	}
	return ""
}

// Report is a phantom's IMPRESSION and the labels it implies.
type Report struct {
	// Text is the impression: one or more sentences.
	Text string
	// Labels follow CheXpert's convention: Positive for a finding the
	// text states, Negative for one it negates, Blank for one it does not
	// mention (in a phantom every blank finding is in fact absent).
	Labels [NumObservations]Label
}

// sentence is one statement of a report and the labels it asserts.
type sentence struct {
	text string
	obs  []Observation
	val  Label
}

// MakeReport writes the impression for p, deterministic in p.Seed: the
// findings in varied order and wording, a random subset of negations
// consistent with the labels, and for a chest without pathology a "no
// acute cardiopulmonary process" summary.
func MakeReport(p Params) Report {
	r := newRNG(p.Seed, streamReport)
	f := p.Findings
	var pos, neg []sentence
	one := func(opts ...string) string { return opts[r.intn(len(opts))] }
	add := func(text string, obs ...Observation) {
		pos = append(pos, sentence{text: text, obs: obs, val: Positive})
	}

	// pleural effusion
	if eff := f.Effusion(); eff != NoSide {
		sev := func(s Severity) string {
			switch s {
			case Small:
				return one("small", "small", "trace")
			case Moderate:
				return one("moderate", "moderate", "moderate-sized")
			}
			return one("large", "large", "sizable")
		}
		var t string
		switch {
		case eff == Bilateral && f.EffusionRight == f.EffusionLeft:
			s := sev(f.EffusionRight)
			t = one(s+" bilateral pleural effusions", "bilateral "+s+" pleural effusions", s+" bilateral effusions", "bilateral pleural effusions, "+s)
		case eff == Bilateral:
			t = one(fmt.Sprintf("%s right and %s left pleural effusions", sev(f.EffusionRight), sev(f.EffusionLeft)),
				fmt.Sprintf("bilateral pleural effusions, %s on the right and %s on the left", sev(f.EffusionRight), sev(f.EffusionLeft)))
		default:
			s, sd := f.EffusionRight, "right"
			if eff == Left {
				s, sd = f.EffusionLeft, "left"
			}
			w := sev(s)
			opts := []string{w + " " + sd + " pleural effusion", w + " " + sd + "-sided pleural effusion",
				sd + " pleural effusion, " + w + " in size", "there is a " + w + " " + sd + " pleural effusion"}
			if s == Small {
				opts = append(opts, "blunting of the "+sd+" costophrenic angle, consistent with a small pleural effusion",
					"small "+sd+" pleural effusion blunting the costophrenic angle")
			}
			if s >= Moderate {
				opts = append(opts, w+" "+sd+" pleural effusion obscuring the "+sd+" hemidiaphragm")
			}
			t = one(opts...)
		}
		add(t, ObsPleuralEffusion)
	}

	// cardiomegaly
	if f.Cardiomegaly() {
		c := f.ctr()
		grade := "mild"
		switch {
		case c >= 0.63:
			grade = one("marked", "severe")
		case c >= 0.56:
			grade = "moderate"
		}
		add(one("cardiomegaly", grade+" cardiomegaly", "the heart is enlarged", "enlarged cardiac silhouette",
			"the cardiac silhouette is "+grade+"ly enlarged", grade+" enlargement of the cardiac silhouette"),
			ObsCardiomegaly, ObsEnlargedCardiomediastinum)
	}

	// pneumothorax
	if pt := f.Pneumothorax; pt.Size != None {
		sd := pt.Side.String()
		w := pt.Size.String()
		if pt.Size == Moderate {
			w = one("moderate", "moderate-sized")
		}
		opts := []string{w + " " + sd + " pneumothorax", "there is a " + w + " " + sd + "-sided pneumothorax",
			w + " " + sd + " pneumothorax with a visible visceral pleural line", sd + " pneumothorax, " + w}
		if pt.Size == Small {
			opts = append(opts, "small "+sd+" apical pneumothorax")
		}
		add(one(opts...), ObsPneumothorax)
	}

	// consolidation
	for _, c := range f.Consolidation {
		loc := lobe(r, c.Side, c.Zone)
		t := one(loc+" consolidation", "consolidation in the "+loc, "airspace consolidation in the "+loc,
			"focal consolidation in the "+loc)
		if c.AirBronchograms {
			t += one(" with air bronchograms", " containing air bronchograms")
		}
		add(t, ObsConsolidation, ObsLungOpacity)
	}

	// nodules and masses
	for _, l := range f.Lesions {
		loc := lobe(r, l.Side, l.Zone())
		if l.IsMass() {
			cm := fmt.Sprintf("%.1f cm", l.DiameterMM/10)
			add(one(cm+" mass in the "+loc, loc+" mass measuring "+cm, "large "+loc+" mass, "+cm,
				"there is a "+cm+" mass in the "+loc), ObsLungLesion, ObsLungOpacity)
		} else {
			size := fmt.Sprintf("%d mm", int(math.Round(l.DiameterMM)))
			if l.DiameterMM >= 10 && r.chance(0.5) {
				size = fmt.Sprintf("%.1f cm", l.DiameterMM/10)
			}
			add(one(size+" nodule in the "+loc, size+" "+loc+" nodule", "well-circumscribed "+size+" pulmonary nodule in the "+loc,
				"round "+size+" nodule projecting over the "+loc), ObsLungLesion, ObsLungOpacity)
		}
	}

	// atelectasis
	for _, a := range f.Atelectasis {
		sd := a.Side.String()
		var t string
		if a.Zone == Lower {
			t = one("plate-like atelectasis at the "+sd+" lung base", sd+" basilar linear atelectasis",
				"discoid atelectasis in the "+sd+" lower zone", "linear atelectasis at the "+sd+" base")
		} else {
			t = one("plate-like atelectasis in the "+sd+" mid lung", "linear atelectasis in the "+sd+" mid lung zone")
		}
		if a.VolumeLoss {
			t += one(" with elevation of the "+sd+" hemidiaphragm", " with volume loss", " with mild volume loss")
		}
		add(t, ObsAtelectasis, ObsLungOpacity)
	}

	// support devices
	d := f.Devices
	if d.ETT {
		cm := strings.TrimSuffix(fmt.Sprintf("%.1f", d.ETTTipCM), ".0")
		add(one("endotracheal tube tip "+cm+" cm above the carina", "endotracheal tube in standard position, "+cm+" cm above the carina",
			"ET tube terminates "+cm+" cm above the carina"), ObsSupportDevices)
	}
	if d.CentralLine != NoSide {
		sd := d.CentralLine.String()
		add(one(sd+" internal jugular central venous catheter with tip at the cavoatrial junction",
			sd+" IJ catheter terminating in the low SVC", sd+" internal jugular central line, tip in the lower superior vena cava"), ObsSupportDevices)
	}
	if d.Pacemaker {
		add(one("left-sided dual-chamber pacemaker with leads in standard position", "left pectoral pacemaker generator with atrial and ventricular leads",
			"dual-lead pacemaker in place"), ObsSupportDevices)
	}

	// negations of what is absent
	negate := func(p float64, text string, obs ...Observation) {
		if r.chance(p) {
			neg = append(neg, sentence{text: text, obs: obs, val: Negative})
		}
	}
	noEff, noPtx := f.Effusion() == NoSide, f.Pneumothorax.Size == None
	if noEff && noPtx && r.chance(0.45) {
		negate(1, one("no pleural effusion or pneumothorax", "no pneumothorax or pleural effusion", "no effusion or pneumothorax"), ObsPleuralEffusion, ObsPneumothorax)
	} else {
		if noEff {
			negate(0.6, one("no pleural effusion", "no pleural effusions", "no effusion"), ObsPleuralEffusion)
		}
		if noPtx {
			negate(0.6, one("no pneumothorax", "no evidence of pneumothorax"), ObsPneumothorax)
		}
	}
	if !f.Cardiomegaly() {
		if r.chance(0.3) {
			negate(0.8, one("normal cardiomediastinal silhouette", "the cardiomediastinal silhouette is normal"), ObsCardiomegaly, ObsEnlargedCardiomediastinum)
		} else {
			negate(0.6, one("heart size is normal", "normal heart size", "the cardiac silhouette is normal in size", "no cardiomegaly"), ObsCardiomegaly)
		}
	}
	if len(f.Consolidation) == 0 {
		if len(f.Lesions) == 0 && len(f.Atelectasis) == 0 && f.Effusion() == NoSide && noPtx && r.chance(0.4) {
			negate(1, one("the lungs are clear", "lungs are clear"), ObsConsolidation, ObsLungOpacity)
		} else {
			negate(0.45, one("no focal consolidation", "no consolidation"), ObsConsolidation)
		}
	}
	if len(f.Lesions) == 0 {
		negate(0.12, one("no suspicious pulmonary nodule or mass", "no pulmonary nodules"), ObsLungLesion)
	}

	// order: findings shuffled; negations shuffled, mostly after them, and
	// few enough to keep the text within CLIP's 77 tokens
	shuffle(r, pos)
	shuffle(r, neg)
	if keep := max(5-len(pos), 1); len(neg) > keep {
		neg = neg[:keep]
	}
	var all []sentence
	if f.Normal() {
		sum := sentence{text: one("no acute cardiopulmonary process", "no acute cardiopulmonary abnormality",
			"no acute intrathoracic process", "normal chest radiograph", "no acute cardiopulmonary disease"), obs: []Observation{ObsNoFinding}, val: Positive}
		if r.chance(0.7) {
			all = append(append(append(all, sum), pos...), neg...)
		} else {
			all = append(append(append(all, pos...), neg...), sum)
		}
	} else if r.chance(0.8) {
		all = append(append(all, pos...), neg...)
	} else {
		all = append(append(all, neg...), pos...)
	}

	var rep Report
	var b strings.Builder
	numbered := len(all) > 1 && !f.Normal() && r.chance(0.2)
	for i, s := range all {
		if i > 0 {
			b.WriteByte(' ')
		}
		if numbered {
			fmt.Fprintf(&b, "%d. ", i+1)
		}
		b.WriteString(capitalise(s.text))
		b.WriteByte('.')
		for _, o := range s.obs {
			if rep.Labels[o] != Positive {
				rep.Labels[o] = s.val
			}
		}
	}
	rep.Text = b.String()
	return rep
}

// lobe names a zone of a lung, as a lobe or a zone.
func lobe(r *rng, s Side, z Zone) string {
	sd := s.String()
	switch z {
	case Upper:
		return sd + " " + []string{"upper lobe", "upper lobe", "upper zone", "apex"}[r.intn(4)]
	case Middle:
		if s == Left {
			return []string{"lingula", "left mid lung", "left mid lung zone"}[r.intn(3)]
		}
		return sd + " " + []string{"middle lobe", "middle lobe", "mid lung zone"}[r.intn(3)]
	}
	return sd + " " + []string{"lower lobe", "lower lobe", "lung base", "lower zone"}[r.intn(4)]
}

func shuffle(r *rng, s []sentence) {
	for i := len(s) - 1; i > 0; i-- {
		j := r.intn(i + 1)
		s[i], s[j] = s[j], s[i]
	}
}

func capitalise(s string) string {
	for i, c := range s {
		return string(unicode.ToUpper(c)) + s[i+len(string(c)):]
	}
	return s
}

// Columns are the labels CSV's columns: CheXpert's (Path, Sex, Age,
// Frontal/Lateral, AP/PA and the fourteen observations), then the
// phantom's own: Seed, CTR, Effusion Right, Effusion Left, Pneumothorax
// Side, Pneumothorax Size, Report.
func Columns() []string {
	c := []string{"Path", "Sex", "Age", "Frontal/Lateral", "AP/PA"}
	for o := range NumObservations {
		c = append(c, o.String())
	}
	return append(c, "Seed", "CTR", "Effusion Right", "Effusion Left", "Pneumothorax Side", "Pneumothorax Size", "Report")
}

// Row returns the labels CSV row of the image at path, in Columns order.
func (rep Report) Row(path string, p Params) []string {
	a, f := p.Anatomy, p.Findings
	row := []string{path, a.Sex.String(), fmt.Sprint(a.Age), "Frontal", "PA"}
	for _, l := range rep.Labels {
		row = append(row, l.CSV())
	}
	pt := ""
	if f.Pneumothorax.Size != None {
		pt = f.Pneumothorax.Side.String()
	}
	return append(row, fmt.Sprint(p.Seed), fmt.Sprintf("%.3f", f.ctr()), f.EffusionRight.String(), f.EffusionLeft.String(),
		pt, f.Pneumothorax.Size.String(), rep.Text)
}
