package classify

import (
	"testing"

	"github.com/roentgo/roentgo/phantom"
)

// onlyTargets returns the names of the positive targets.
func positives(t []float32) []string {
	var out []string
	for i, v := range t {
		if v == 1 {
			out = append(out, Findings[i].Name)
		} else if v != 0 {
			out = append(out, "non-binary "+Findings[i].Name)
		}
	}
	return out
}

func TestTargets(t *testing.T) {
	cases := []struct {
		name string
		f    phantom.Findings
		want []string
	}{
		{"normal", phantom.Findings{CTR: 0.44}, nil},
		{"zero value (normal CTR)", phantom.Findings{}, nil},
		{"left effusion", phantom.Findings{EffusionLeft: phantom.Small}, []string{"effusion left"}},
		{"right effusion", phantom.Findings{EffusionRight: phantom.Large}, []string{"effusion right"}},
		{"bilateral effusion", phantom.Findings{EffusionRight: phantom.Moderate, EffusionLeft: phantom.Small}, []string{"effusion right", "effusion left"}},
		{"cardiomegaly", phantom.Findings{CTR: 0.6}, []string{"cardiomegaly"}},
		{"CTR exactly 0.5 is not cardiomegaly", phantom.Findings{CTR: 0.5}, nil},
		{"left pneumothorax", phantom.Findings{Pneumothorax: phantom.Pneumothorax{Side: phantom.Left, Size: phantom.Moderate}}, []string{"pneumothorax left"}},
		{"right pneumothorax", phantom.Findings{Pneumothorax: phantom.Pneumothorax{Side: phantom.Right, Size: phantom.Small}}, []string{"pneumothorax right"}},
		{"pneumothorax side without size", phantom.Findings{Pneumothorax: phantom.Pneumothorax{Side: phantom.Right}}, nil},
		{"consolidation", phantom.Findings{Consolidation: []phantom.Consolidation{{Side: phantom.Left, Zone: phantom.Lower}}}, []string{"consolidation"}},
		{"nodule", phantom.Findings{Lesions: []phantom.Lesion{{Side: phantom.Right, X: 0.5, Y: 0.5, DiameterMM: 12}}}, []string{"lung lesion"}},
		{"atelectasis", phantom.Findings{Atelectasis: []phantom.Atelectasis{{Side: phantom.Left, Zone: phantom.Lower}}}, []string{"atelectasis"}},
		{"central line", phantom.Findings{Devices: phantom.Devices{CentralLine: phantom.Right}}, []string{"support devices"}},
		{"pacemaker and left effusion", phantom.Findings{Devices: phantom.Devices{Pacemaker: true}, EffusionLeft: phantom.Moderate}, []string{"effusion left", "support devices"}},
	}
	for _, c := range cases {
		got := positives(Targets(c.f))
		if len(got) != len(c.want) {
			t.Errorf("%s: positives %q, want %q", c.name, got, c.want)
			continue
		}
		for i := range got {
			if got[i] != c.want[i] {
				t.Errorf("%s: positives %q, want %q", c.name, got, c.want)
				break
			}
		}
	}
	if len(Targets(phantom.Findings{})) != len(Findings) || len(Names()) != len(Findings) {
		t.Errorf("Targets/Names lengths differ from len(Findings) = %d", len(Findings))
	}
	if Index("effusion left") != 1 || Index("nope") != -1 {
		t.Errorf("Index: effusion left %d, nope %d; want 1, -1", Index("effusion left"), Index("nope"))
	}
}

// TestLeftIsImageRight checks the side convention the outputs rely on: a
// large effusion of the patient's left brightens the lower part of the
// image's right half, not of its left half.
func TestLeftIsImageRight(t *testing.T) {
	base := phantom.Normal(7)
	eff := base
	eff.Findings.EffusionLeft = phantom.Large
	a, err := phantom.Render(base, 128, 128)
	if err != nil {
		t.Fatal(err)
	}
	b, err := phantom.Render(eff, 128, 128)
	if err != nil {
		t.Fatal(err)
	}
	var dl, dr float64 // mean brightening of the lower image's left and right halves
	for y := 64; y < 128; y++ {
		for x := 0; x < 128; x++ {
			d := float64(b.At(x, y) - a.At(x, y))
			if x < 64 {
				dl += d
			} else {
				dr += d
			}
		}
	}
	dl, dr = dl/(64*64), dr/(64*64)
	if !(dr > 0.02 && dr > 5*max(dl, 0.001)) {
		t.Errorf("left effusion brightens the image's left half by %.4f and its right half by %.4f; want the right half (patient's left)", dl, dr)
	}
	if got := positives(Targets(eff.Findings)); len(got) != 1 || got[0] != "effusion left" {
		t.Errorf("targets %q, want [effusion left]", got)
	}
}
