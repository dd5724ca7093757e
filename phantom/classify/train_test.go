package classify

import (
	"context"
	"strings"
	"testing"
)

func TestTrainOptionErrors(t *testing.T) {
	for name, o := range map[string]TrainOptions{
		"findings rate": {FindingsRate: 1.5},
		"render size":   {RenderSize: 8},
		"negative val":  {Val: -1},
		"bad config":    {Config: Config{Stem: 16, Groups: 3}},
	} {
		if _, _, err := Train(context.Background(), o); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := Train(ctx, TrainOptions{Train: 4, Val: 0, Steps: 1, Batch: 2, RenderSize: 64}); err == nil {
		t.Error("cancelled context: no error")
	}
}

// TestTrainDeterministic: two tiny runs with the same options give the same
// model, bit for bit.
func TestTrainDeterministic(t *testing.T) {
	o := TrainOptions{Seed: 3, Train: 6, Val: 4, Steps: 2, Batch: 3, RenderSize: 64, Workers: 2}
	m1, rep, err := Train(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	m2, _, err := Train(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Findings) != len(Findings) || rep.Val != 4 || rep.Steps != 2 || !strings.Contains(rep.String(), "| effusion left |") {
		t.Errorf("report %+v", rep)
	}
	x := randomInputs(2, 4)
	p1, _, _ := m1.Predict(x)
	p2, _, _ := m2.Predict(x)
	for i := range p1 {
		for k := range p1[i] {
			if p1[i][k] != p2[i][k] {
				t.Fatalf("input %d finding %d: %v then %v", i, k, p1[i][k], p2[i][k])
			}
		}
	}
}

// TestAugment: augmentation keeps values in [0, 1], is deterministic given
// its generator and never mirrors: a bright left half stays on the left.
func TestAugment(t *testing.T) {
	const n = InputSize
	src := make([]float32, n*n)
	for y := 0; y < n; y++ {
		for x := 0; x < n/2; x++ {
			src[y*n+x] = 0.9
		}
	}
	a, b := make([]float32, n*n), make([]float32, n*n)
	for s := uint64(0); s < 20; s++ {
		augment(a, src, newRNG(s))
		augment(b, src, newRNG(s))
		var left, right float64
		for i, v := range a {
			if v < 0 || v > 1 || v != b[i] {
				t.Fatalf("seed %d: pixel %d = %v (again %v)", s, i, v, b[i])
			}
			if i%n < n/2 {
				left += float64(v)
			} else {
				right += float64(v)
			}
		}
		if left < 2*right {
			t.Fatalf("seed %d: left half sum %.1f, right %.1f: the bright half moved", s, left, right)
		}
	}
}

// TestTrainLearns trains on rendered phantoms and checks validation AUROCs
// against chance. The short run (always) is 240 training phantoms rendered
// at 128, 120 steps of 16 without augmentation (about 40 s on a busy CPU;
// it reached AUROC 0.86 for cardiomegaly and 0.80 and 0.72 for the
// effusions) and asserts cardiomegaly AUROC > 0.75 and a mean effusion
// AUROC > 0.65. With -args -long (and without -short) a longer run (600
// phantoms, 500 augmented steps, minutes) must reach AUROC > 0.8 for
// effusion right, effusion left and cardiomegaly.
func TestTrainLearns(t *testing.T) {
	o := TrainOptions{Seed: 11, Train: 240, Val: 100, Steps: 120, Batch: 16, RenderSize: 128, NoAugment: true, Workers: 2}
	want := map[string]float64{"cardiomegaly": 0.75}
	wantEff := 0.65
	if !testing.Short() && testingLong {
		o = TrainOptions{Seed: 11, Train: 600, Val: 200, Steps: 500, Batch: 16, RenderSize: 128, Workers: 2}
		want = map[string]float64{"cardiomegaly": 0.8, "effusion right": 0.8, "effusion left": 0.8}
	}
	_, rep, err := Train(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", rep)
	for name, min := range want {
		if s, _ := rep.Stat(name); !(s.AUROC > min) {
			t.Errorf("%s: validation AUROC %.3f, want > %.2f", name, s.AUROC, min)
		}
	}
	r, _ := rep.Stat("effusion right")
	l, _ := rep.Stat("effusion left")
	if m := (r.AUROC + l.AUROC) / 2; !(m > wantEff) {
		t.Errorf("effusions: mean validation AUROC %.3f, want > %.2f", m, wantEff)
	}
}
