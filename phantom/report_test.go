package phantom

import (
	"strings"
	"testing"
)

// keywords name each modelled observation in report text; a sentence
// mentioning one is a negation when it has one of negWords.
var keywords = map[Observation][]string{
	ObsCardiomegaly:    {"cardiomegaly", "heart", "cardiac silhouette", "cardiomediastinal"},
	ObsPleuralEffusion: {"effusion"},
	ObsPneumothorax:    {"pneumothorax"},
	ObsConsolidation:   {"consolidation", "lungs are clear"},
	ObsLungLesion:      {"nodule", "mass"},
	ObsAtelectasis:     {"atelectasis"},
	ObsSupportDevices:  {"tube", "catheter", "central line", "pacemaker"},
}

var negWords = []string{"no ", "normal", "clear"}

func sentences(text string) []string {
	var out []string
	for _, s := range strings.Split(text, ". ") {
		s = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(s), "."))
		if i := strings.Index(s, ". "); i >= 0 && i < 4 { // "1. ..."
			s = s[i+2:]
		}
		if len(s) > 2 && s[1] == '.' {
			s = strings.TrimSpace(s[2:])
		}
		out = append(out, s)
	}
	return out
}

// present reports whether the observation is truly present in p.
func present(f Findings, o Observation) bool {
	switch o {
	case ObsCardiomegaly, ObsEnlargedCardiomediastinum:
		return f.Cardiomegaly()
	case ObsPleuralEffusion:
		return f.Effusion() != NoSide
	case ObsPneumothorax:
		return f.Pneumothorax.Size != None
	case ObsConsolidation:
		return len(f.Consolidation) > 0
	case ObsLungLesion:
		return len(f.Lesions) > 0
	case ObsAtelectasis:
		return len(f.Atelectasis) > 0
	case ObsSupportDevices:
		return f.Devices.Any()
	case ObsLungOpacity:
		return len(f.Consolidation)+len(f.Lesions)+len(f.Atelectasis) > 0
	case ObsNoFinding:
		return f.Normal()
	}
	return false
}

// The report mentions exactly the present findings, its negations are of
// absent ones, and the labels agree with the text.
func TestReportMatchesFindings(t *testing.T) {
	texts := map[string]bool{}
	for seed := range uint64(3000) {
		p := Random(seed, Options{FindingsRate: 0.7})
		rep := MakeReport(p)
		texts[rep.Text] = true
		f := p.Findings
		ss := sentences(rep.Text)
		for o, kws := range keywords {
			var pos, neg bool
			for _, s := range ss {
				for _, kw := range kws {
					if !strings.Contains(s, kw) {
						continue
					}
					isNeg := false
					for _, n := range negWords {
						if strings.HasPrefix(s, n) || strings.Contains(s, " "+n) || strings.HasPrefix(s, "the "+n) {
							isNeg = true
						}
					}
					if isNeg {
						neg = true
					} else {
						pos = true
					}
				}
			}
			want := Blank
			switch {
			case pos:
				want = Positive
			case neg:
				want = Negative
			}
			if rep.Labels[o] != want {
				t.Fatalf("seed %d: %v labelled %q, text %q says %v", seed, o, rep.Labels[o].CSV(), rep.Text, want.CSV())
			}
			if present(f, o) != pos {
				t.Fatalf("seed %d: %v present=%v but the text %q mentions it positively=%v", seed, o, present(f, o), rep.Text, pos)
			}
			if neg && present(f, o) {
				t.Fatalf("seed %d: %v present but negated: %q", seed, o, rep.Text)
			}
		}
		for _, o := range []Observation{ObsNoFinding, ObsLungOpacity, ObsEnlargedCardiomediastinum} {
			if (rep.Labels[o] == Positive) != present(f, o) {
				t.Fatalf("seed %d: %v labelled %q, present %v (%q)", seed, o, rep.Labels[o].CSV(), present(f, o), rep.Text)
			}
		}
		for _, o := range []Observation{ObsEdema, ObsPneumonia, ObsPleuralOther, ObsFracture} {
			if rep.Labels[o] != Blank {
				t.Fatalf("seed %d: unmodelled %v labelled %q", seed, o, rep.Labels[o].CSV())
			}
		}
		if f.Normal() && !strings.Contains(strings.ToLower(rep.Text), "no acute") && !strings.Contains(strings.ToLower(rep.Text), "normal chest") {
			t.Fatalf("seed %d: normal chest without a summary: %q", seed, rep.Text)
		}
		// sides: a one-sided effusion or pneumothorax names its side and not the other
		low := strings.ToLower(rep.Text)
		for _, c := range []struct {
			on   bool
			side Side
			kw   string
		}{{f.Pneumothorax.Size != None, f.Pneumothorax.Side, "pneumothorax"}, {f.Effusion() == Left || f.Effusion() == Right, f.Effusion(), "effusion"}} {
			if !c.on {
				continue
			}
			for _, s := range sentences(low) {
				if strings.Contains(s, c.kw) {
					other := Left
					if c.side == Left {
						other = Right
					}
					if !strings.Contains(s, c.side.String()) || strings.Contains(s, other.String()+" ") && !strings.Contains(s, "hemidiaphragm") {
						t.Fatalf("seed %d: %v %s described as %q", seed, c.side, c.kw, s)
					}
				}
			}
		}
		if n := len(strings.Fields(rep.Text)); n > 60 {
			t.Errorf("seed %d: %d words, too long for CLIP's 77 tokens: %q", seed, n, rep.Text)
		}
	}
	if len(texts) < 1500 {
		t.Errorf("only %d distinct reports of 3000", len(texts))
	}
}

func TestColumns(t *testing.T) {
	want := "Path,Sex,Age,Frontal/Lateral,AP/PA,No Finding,Enlarged Cardiomediastinum,Cardiomegaly,Lung Opacity,Lung Lesion,Edema,Consolidation,Pneumonia,Atelectasis,Pneumothorax,Pleural Effusion,Pleural Other,Fracture,Support Devices"
	cols := Columns()
	if got := strings.Join(cols[:19], ","); got != want {
		t.Errorf("CheXpert columns\n%s\nwant\n%s", got, want)
	}
	p := Random(5, Options{FindingsRate: 1})
	rep := MakeReport(p)
	row := rep.Row("00005.png", p)
	if len(row) != len(cols) {
		t.Fatalf("row has %d fields, header %d", len(row), len(cols))
	}
	for i, c := range cols[5:19] {
		v := row[5+i]
		if v != "" && v != "0.0" && v != "1.0" {
			t.Errorf("%s = %q, expected 1.0, 0.0 or blank", c, v)
		}
	}
	if row[len(row)-1] != rep.Text || row[3] != "Frontal" || row[4] != "PA" {
		t.Errorf("row %q", row)
	}
}

func TestRandomFindingsRate(t *testing.T) {
	for _, rate := range []float64{0, 0.5, 1} {
		n := 0
		for seed := range uint64(2000) {
			f := Random(seed, Options{FindingsRate: rate}).Findings
			if !f.Normal() || f.Devices.Any() {
				n++
			}
		}
		if got := float64(n) / 2000; got < rate-0.04 || got > rate+0.04 {
			t.Errorf("findings rate %.1f: %.3f of phantoms have findings", rate, got)
		}
	}
}

func BenchmarkRender(b *testing.B) {
	for _, size := range []int{256, 512} {
		b.Run(map[int]string{256: "256", 512: "512"}[size], func(b *testing.B) {
			p := Random(9, Options{FindingsRate: 1})
			for b.Loop() {
				if _, err := Render(p, size, size); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "images/s")
		})
	}
}
