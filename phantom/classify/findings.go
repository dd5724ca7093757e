package classify

import "github.com/roentgo/roentgo/phantom"

// Finding is one output of the classifier: a name and the ground truth of
// a phantom's findings.
type Finding struct {
	// Name is the finding in lower case, the patient's side last
	// ("effusion right").
	Name string
	// Present reports whether the finding is present in f.
	Present func(f phantom.Findings) bool
}

// Findings are the classifier's outputs, in order. Sides are the patient's:
// "effusion right" is fluid in the patient's right hemithorax, on the
// image's left. A bilateral effusion makes both effusion outputs positive.
// "consolidation", "lung lesion" (nodule or mass) and "atelectasis" are
// positive on either side; "support devices" for any device
// (phantom.Devices.Any).
var Findings = []Finding{
	{"effusion right", func(f phantom.Findings) bool { return f.EffusionRight != phantom.None }},
	{"effusion left", func(f phantom.Findings) bool { return f.EffusionLeft != phantom.None }},
	{"cardiomegaly", func(f phantom.Findings) bool { return f.Cardiomegaly() }},
	{"pneumothorax right", func(f phantom.Findings) bool {
		return f.Pneumothorax.Size != phantom.None && f.Pneumothorax.Side == phantom.Right
	}},
	{"pneumothorax left", func(f phantom.Findings) bool {
		return f.Pneumothorax.Size != phantom.None && f.Pneumothorax.Side == phantom.Left
	}},
	{"consolidation", func(f phantom.Findings) bool { return len(f.Consolidation) > 0 }},
	{"lung lesion", func(f phantom.Findings) bool { return len(f.Lesions) > 0 }},
	{"atelectasis", func(f phantom.Findings) bool { return len(f.Atelectasis) > 0 }},
	{"support devices", func(f phantom.Findings) bool { return f.Devices.Any() }},
}

// Names returns the names of Findings, in order.
func Names() []string {
	out := make([]string, len(Findings))
	for i, f := range Findings {
		out[i] = f.Name
	}
	return out
}

// Index returns the position of the finding called name in Findings, or -1.
func Index(name string) int {
	for i, f := range Findings {
		if f.Name == name {
			return i
		}
	}
	return -1
}

// Targets returns the classifier's targets for f: 1 where the finding of
// Findings is present, 0 where it is absent.
func Targets(f phantom.Findings) []float32 {
	out := make([]float32, len(Findings))
	for i, d := range Findings {
		if d.Present(f) {
			out[i] = 1
		}
	}
	return out
}
