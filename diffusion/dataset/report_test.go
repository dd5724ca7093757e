package dataset

import (
	"strings"
	"testing"
)

const mimicReport = `                                 FINAL REPORT
 EXAMINATION:  CHEST (PA AND LAT)
 
 INDICATION:  ___F with new onset ascites  // eval for infection
 
 TECHNIQUE:  Chest PA and lateral
 
 COMPARISON:  None.
 
 FINDINGS: 
 
 There is no focal consolidation, pleural effusion or pneumothorax.  Bilateral
 nodular opacities that most likely represent nipple shadows.
 
 IMPRESSION: 
 
 No acute cardiopulmonary process.
`

func TestImpression(t *testing.T) {
	cases := []struct{ name, report, want string }{
		{"mimic", mimicReport, "No acute cardiopulmonary process."},
		{"fallback findings", "INDICATION: cough\n\nFINDINGS:\n  Lungs are clear.\n  Heart size   normal.\n", "Lungs are clear. Heart size normal."},
		{"neither", "INDICATION: cough\nCOMPARISON: none\n", ""},
		{"empty impression falls back to findings", "FINDINGS: Clear lungs.\nIMPRESSION:\n\n", "Clear lungs."},
		{"lowercase headers", "Findings: a\nImpression: Mild cardiomegaly.\n", "Mild cardiomegaly."},
		{"text on header line", "IMPRESSION: Small left effusion.\nNOTIFICATION: called", "Small left effusion."},
		{"combined header", "FINDINGS AND IMPRESSION:\nStable right PICC.\n", "Stable right PICC."},
		{"conclusion", "Conclusion:\nNo pneumothorax.", "No pneumothorax."},
		{"plural and (s)", "IMPRESSION(S):\n1. Edema.\n", "Edema."},
		{"numbered lines", "IMPRESSION:\n 1. Right lower lobe pneumonia.\n 2. Small effusion.\n 10) Old fracture.\n", "Right lower lobe pneumonia. Small effusion. Old fracture."},
		{"inline numbers", "IMPRESSION: 1. No effusion. 2. Clear lungs.", "No effusion. Clear lungs."},
		{"decimals kept", "IMPRESSION: 1.5 cm nodule at T 5. stable.", "1.5 cm nodule at T 5. stable."},
		{"placeholders", "IMPRESSION: Findings discussed with Dr. ___ by ___ at ___ on ___.", "Findings discussed with Dr. by at on."},
		{"placeholder comma", "IMPRESSION: Compared to ___, ___, no change.", "Compared to, no change."},
		{"mixed-case non-header kept", "IMPRESSION: Edema.\nNote: this is part of it.\n", "Edema. Note: this is part of it."},
		{"upper unknown header ends", "IMPRESSION: Edema.\nWET READ: ___ 3:00 PM\n", "Edema."},
		{"time is not a header", "IMPRESSION:\nEdema.\n10:30 am discussed.\n", "Edema. 10:30 am discussed."},
		{"crlf", "IMPRESSION:\r\nEdema\r\nand effusion.\r\n", "Edema and effusion."},
		{"first of two impressions", "IMPRESSION: First.\nADDENDUM: x\nIMPRESSION: Second.", "First."},
	}
	for _, c := range cases {
		if got := Impression(c.report); got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
	}
}

func TestSections(t *testing.T) {
	s := Sections(mimicReport)
	var names []string
	for _, x := range s {
		names = append(names, x.Name)
	}
	want := "|EXAMINATION|INDICATION|TECHNIQUE|COMPARISON|FINDINGS|IMPRESSION"
	if got := strings.Join(names, "|"); got != want {
		t.Errorf("sections %q, want %q", got, want)
	}
}

func TestCleanCaption(t *testing.T) {
	if got := CleanCaption("  Left \n\t Pleural  EFFUSION ", true); got != "left pleural effusion" {
		t.Errorf("got %q", got)
	}
	if got := CleanCaption("  Left \n Effusion ", false); got != "Left Effusion" {
		t.Errorf("got %q", got)
	}
}

func TestSwapLaterality(t *testing.T) {
	cases := []struct {
		in, want string
		ok       bool
	}{
		{"left pleural effusion", "right pleural effusion", true},
		{"Right-sided PICC; LEFT lung clear.", "Left-sided PICC; RIGHT lung clear.", true},
		{"no acute process", "no acute process", true},
		{"bright upright leftover", "bright upright leftover", true},
		{"r lower lobe opacity and L hemidiaphragm", "l lower lobe opacity and R hemidiaphragm", true},
		{"rt IJ line", "lt IJ line", true},
		{"mild levoscoliosis", "mild dextroscoliosis", true},
		{"Dextroconvex curvature", "Levoconvex curvature", true},
		{"L1 compression fracture, right rib", "L1 compression fracture, left rib", true},
		{"shift leftward", "shift rightward", true},
		{"catheter was left in place", "", false},
		{"L>R effusions", "", false},
		{"r/o pneumonia", "", false},
		{"dextrocardia", "", false},
		{"situs inversus", "", false},
	}
	for _, c := range cases {
		got, ok := SwapLaterality(c.in)
		if ok != c.ok || (ok && got != c.want) {
			t.Errorf("SwapLaterality(%q) = %q, %v; want %q, %v", c.in, got, ok, c.want, c.ok)
		}
		if !ok && got != c.in {
			t.Errorf("refused caption changed: %q", got)
		}
	}
}

func TestChexpertCaption(t *testing.T) {
	// Columns: EnlCM, Cardiomegaly, Opacity, Lesion, Edema, Consol, Pneumonia,
	// Atelectasis, PTX, Effusion, PleuralOther, Fracture, Devices.
	row := func(m map[int]string) []string {
		v := make([]string, 13)
		for i, s := range m {
			v[i] = s
		}
		return v
	}
	cases := []struct {
		labels []string
		policy UncertainPolicy
		want   string
	}{
		{row(nil), UncertainPossible, "no finding"},
		{row(map[int]string{1: "0.0", 4: "0"}), UncertainPossible, "no finding"},
		{row(map[int]string{1: "1.0", 9: "1.0", 4: "-1.0"}), UncertainPossible, "cardiomegaly, pleural effusion, possible edema"},
		{row(map[int]string{1: "1.0", 9: "1.0", 4: "-1.0"}), UncertainPositive, "cardiomegaly, edema, pleural effusion"},
		{row(map[int]string{4: "-1.0"}), UncertainIgnore, "no finding"},
		{row(map[int]string{4: "-1.0"}), UncertainNegative, "no finding"},
		{row(map[int]string{10: "1", 12: "1"}), UncertainPossible, "other pleural abnormality, support devices"},
	}
	for _, c := range cases {
		got, err := chexpertCaption(c.labels, c.policy)
		if err != nil || got != c.want {
			t.Errorf("%v (policy %d): got %q, %v; want %q", c.labels, c.policy, got, err, c.want)
		}
	}
	if _, err := chexpertCaption(row(map[int]string{2: "yes"}), UncertainPossible); err == nil || !strings.Contains(err.Error(), "Lung Opacity") {
		t.Errorf("bad label: %v", err)
	}
}
