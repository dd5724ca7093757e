package metrics

import (
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/mat"
)

// aurocBrute is the Mann–Whitney definition, pair by pair.
func aurocBrute(pos, neg []float64) float64 {
	var s float64
	for _, p := range pos {
		for _, n := range neg {
			switch {
			case p > n:
				s++
			case p == n:
				s += 0.5
			}
		}
	}
	return s / float64(len(pos)*len(neg))
}

func TestAUROCHand(t *testing.T) {
	for _, c := range []struct {
		pos, neg []float64
		want     float64
	}{
		{[]float64{1}, []float64{0}, 1},
		{[]float64{0}, []float64{1}, 0},
		{[]float64{0.5}, []float64{0.5}, 0.5},
		// Pairs (p, n): (0.9,0.1)=1 (0.9,0.4)=1 (0.9,0.8)=1, (0.4,0.1)=1
		// (0.4,0.4)=½ (0.4,0.8)=0: 4.5/6.
		{[]float64{0.9, 0.4}, []float64{0.1, 0.4, 0.8}, 4.5 / 6},
		// All tied: ½.
		{[]float64{2, 2, 2}, []float64{2, 2}, 0.5},
		// sklearn's roc_auc_score([1,1,1,0,0,0], [.3,.7,.7,.3,.2,.7]): positive .3
		// scores ½+1+0 against the negatives, each .7 scores 1+1+½: 6.5/9.
		{[]float64{0.3, 0.7, 0.7}, []float64{0.3, 0.2, 0.7}, 6.5 / 9},
	} {
		got, err := AUROC(c.pos, c.neg)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(got-c.want) > 1e-15 {
			t.Errorf("AUROC(%v, %v) = %v, want %v", c.pos, c.neg, got, c.want)
		}
	}
	if _, err := AUROC(nil, []float64{1}); err == nil {
		t.Error("no positives accepted")
	}
	if _, err := AUROC([]float64{math.NaN()}, []float64{1}); err == nil {
		t.Error("NaN accepted")
	}
	got, err := AUROCLabels([]float64{0.9, 0.1, 0.4, 0.4, 0.8}, []bool{true, false, true, false, false})
	if err != nil || math.Abs(got-4.5/6) > 1e-15 {
		t.Errorf("AUROCLabels = %v, %v; want %v", got, err, 4.5/6)
	}
}

// TestAUROCBrute compares the rank formula with the pairwise definition on
// random scores with many ties.
func TestAUROCBrute(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := 0; trial < 200; trial++ {
		np, nn := 1+rng.IntN(20), 1+rng.IntN(20)
		levels := 1 + rng.IntN(6)
		draw := func(n int, shift float64) []float64 {
			v := make([]float64, n)
			for i := range v {
				v[i] = float64(rng.IntN(levels)) + shift*float64(rng.IntN(2))
			}
			return v
		}
		pos, neg := draw(np, 1), draw(nn, 0)
		got, err := AUROC(pos, neg)
		if err != nil {
			t.Fatal(err)
		}
		if want := aurocBrute(pos, neg); math.Abs(got-want) > 1e-12 {
			t.Fatalf("AUROC(%v, %v) = %v, brute force %v", pos, neg, got, want)
		}
	}
}

func TestParseLabel(t *testing.T) {
	for in, want := range map[string]LabelState{"": LabelOmitted, "nan": LabelOmitted, "1": LabelStated, "1.0": LabelStated,
		" 0.0 ": LabelNegated, "0": LabelNegated, "-1.0": LabelUncertain, "True": LabelStated, "no": LabelNegated} {
		got, err := ParseLabel(in)
		if err != nil || got != want {
			t.Errorf("ParseLabel(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"2", "maybe", "0.5"} {
		if _, err := ParseLabel(bad); err == nil {
			t.Errorf("ParseLabel(%q) accepted", bad)
		}
	}
}

func TestAdherenceHand(t *testing.T) {
	scores := []float64{0.9, 0.6, 0.2, 0.7, 0.1, 0.3, 0.55, 0.8}
	states := []LabelState{LabelStated, LabelStated, LabelStated, LabelNegated, LabelNegated, LabelOmitted, LabelOmitted, LabelUncertain}
	r, err := Adherence(scores, states, 0.5)
	if err != nil {
		t.Fatal(err)
	}
	if r.Stated != 3 || r.Negated != 2 || r.Omitted != 2 || r.Uncertain != 1 {
		t.Fatalf("counts %+v", r)
	}
	// Detected (>= 0.5): stated 0.9, 0.6 (2/3); negated 0.7 (1/2); omitted 0.55 (1/2).
	if r.RateStated != 2.0/3 || r.RateNegated != 0.5 || r.RateOmitted != 0.5 {
		t.Errorf("rates %v %v %v", r.RateStated, r.RateNegated, r.RateOmitted)
	}
	// Stated {.9 .6 .2} vs {.7 .1 .3 .55}: .9 beats 4, .6 beats 3, .2 beats 1: 8/12.
	if math.Abs(r.AUROC-8.0/12) > 1e-15 {
		t.Errorf("AUROC %v, want %v", r.AUROC, 8.0/12)
	}
	// vs negated {.7 .1}: .9: 2, .6: 1, .2: 1 → 4/6.
	if math.Abs(r.AUROCNegated-4.0/6) > 1e-15 {
		t.Errorf("AUROCNegated %v, want %v", r.AUROCNegated, 4.0/6)
	}
	if math.Abs(r.MeanStated-1.7/3) > 1e-15 || math.Abs(r.MeanNotStated-1.65/4) > 1e-15 {
		t.Errorf("means %v %v", r.MeanStated, r.MeanNotStated)
	}
	// Nothing stated: AUROC undefined (NaN), rates NaN for empty groups.
	r, err = Adherence([]float64{0.1, 0.2}, []LabelState{LabelNegated, LabelNegated}, 0.5)
	if err != nil || !math.IsNaN(r.AUROC) || !math.IsNaN(r.RateStated) || !math.IsNaN(r.RateOmitted) || r.RateNegated != 0 {
		t.Errorf("no stated: %+v, %v", r, err)
	}
	if _, err := Adherence([]float64{1}, nil, 0.5); err == nil {
		t.Error("length mismatch accepted")
	}
}

func TestNeighborsHand(t *testing.T) {
	ref := mat.NewDense(4, 2, []float64{
		1, 0, // 0
		0, 1, // 1
		1, 1, // 2
		0, 0, // 3: zero row, similarity 0
	})
	q := mat.NewDense(2, 2, []float64{
		2, 0, // cos: 1, 0, 1/√2, 0
		-1, -1, // cos: -1/√2, -1/√2, -1, 0
	})
	nn, err := CosineNeighbors(q, ref, 3)
	if err != nil {
		t.Fatal(err)
	}
	r2 := 1 / math.Sqrt2
	want := [][]Neighbor{{{0, 1}, {2, r2}, {1, 0}}, {{3, 0}, {0, -r2}, {1, -r2}}}
	for i := range want {
		for j := range want[i] {
			g := nn[i][j]
			if g.Index != want[i][j].Index || math.Abs(g.Similarity-want[i][j].Similarity) > 1e-15 {
				t.Errorf("query %d neighbour %d: %+v, want %+v", i, j, g, want[i][j])
			}
		}
	}
	// Correlation: centring makes (1, 3) and (10, 12) identical (r = 1),
	// and (3, 1) anti-correlated.
	ref = mat.NewDense(2, 2, []float64{10, 12, 3, 1})
	nn, err = CorrelationNeighbors(mat.NewDense(1, 2, []float64{1, 3}), ref, 5)
	if err != nil {
		t.Fatal(err)
	}
	if len(nn[0]) != 2 || nn[0][0].Index != 0 || math.Abs(nn[0][0].Similarity-1) > 1e-15 || math.Abs(nn[0][1].Similarity+1) > 1e-15 {
		t.Errorf("correlation neighbours %+v", nn[0])
	}
	if _, err := CosineNeighbors(q, mat.NewDense(1, 3, nil), 1); err == nil {
		t.Error("dimension mismatch accepted")
	}
}

// TestNeighborsBrute checks the blocked product and top-k selection against
// a direct loop, over more query rows than one block.
func TestNeighborsBrute(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	nq, nr, d, k := neighborBlock+37, 50, 7, 4
	q, r := mat.NewDense(nq, d, nil), mat.NewDense(nr, d, nil)
	for _, m := range []*mat.Dense{q, r} {
		raw := m.RawMatrix().Data
		for i := range raw {
			raw[i] = float64(rng.IntN(5)) - 2 // small integers: ties
		}
	}
	nn, err := CorrelationNeighbors(q, r, k)
	if err != nil {
		t.Fatal(err)
	}
	corr := func(a, b []float64) float64 {
		var ma, mb float64
		for i := range a {
			ma += a[i]
			mb += b[i]
		}
		ma /= float64(len(a))
		mb /= float64(len(b))
		var sab, saa, sbb float64
		for i := range a {
			sab += (a[i] - ma) * (b[i] - mb)
			saa += (a[i] - ma) * (a[i] - ma)
			sbb += (b[i] - mb) * (b[i] - mb)
		}
		if saa == 0 || sbb == 0 {
			return 0
		}
		return sab / math.Sqrt(saa*sbb)
	}
	for i := 0; i < nq; i++ {
		all := make([]float64, nr)
		for j := range all {
			all[j] = corr(q.RawRowView(i), r.RawRowView(j))
		}
		for rank, nb := range nn[i] {
			if math.Abs(all[nb.Index]-nb.Similarity) > 1e-12 {
				t.Fatalf("query %d: neighbour %d similarity %v, direct %v", i, nb.Index, nb.Similarity, all[nb.Index])
			}
			// Exactly rank rows are strictly better (up to rounding).
			better := 0
			for _, v := range all {
				if v > nb.Similarity+1e-12 {
					better++
				}
			}
			if better > rank {
				t.Fatalf("query %d: neighbour at rank %d has %d better rows", i, rank, better)
			}
		}
	}
}

func TestMemorizationSummary(t *testing.T) {
	nn := [][]Neighbor{{{3, 0.99}, {1, 0.5}}, {{0, 0.2}}, {{2, 0.96}}, {{1, 0.5}}}
	s := SummarizeMemorization(nn, 0.95)
	if s.N != 4 || s.Above != 2 || s.Fraction != 0.5 || s.Max != 0.99 || s.Median != 0.5*(0.5+0.96) ||
		math.Abs(s.Mean-(0.99+0.2+0.96+0.5)/4) > 1e-15 {
		t.Errorf("summary %+v", s)
	}
	ps := ClosestPairs(nn, 2)
	if len(ps) != 2 || ps[0] != (Pair{0, 3, 0.99}) || ps[1] != (Pair{2, 2, 0.96}) {
		t.Errorf("pairs %+v", ps)
	}
	if s := SummarizeMemorization(nil, 0.9); s.N != 0 || !math.IsNaN(s.Mean) {
		t.Errorf("empty summary %+v", s)
	}
}

func TestExcludeSelf(t *testing.T) {
	ref := mat.NewDense(3, 2, []float64{1, 0, 1, 0, 0, 1})
	nn, err := CosineNeighbors(ref, ref, 2)
	if err != nil {
		t.Fatal(err)
	}
	// Rows 0 and 1 are equal: each one's nearest other row is the other
	// (similarity 1); row 2's nearest others are 0 and 1 (similarity 0).
	got := ExcludeSelf(nn)
	if got[0][0] != (Neighbor{1, 1}) || got[1][0] != (Neighbor{0, 1}) || got[2][0] != (Neighbor{0, 0}) || len(got[2]) != 1 {
		t.Errorf("ExcludeSelf: %+v", got)
	}
}
