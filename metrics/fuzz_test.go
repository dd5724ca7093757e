package metrics

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParseNPY checks that ParseNPY never panics and that what it accepts is
// consistent (data length = product of the shape).
//
//	go test ./metrics -run '^$' -fuzz FuzzParseNPY -fuzztime 60s
func FuzzParseNPY(f *testing.F) {
	f.Add(AppendNPY(nil, []int{2, 3}, []float64{1, 2, 3, 4, 5, 6}))
	f.Add(AppendNPY(nil, []int{}, []float64{7}))
	f.Add(npyWithHeader("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }\n", []byte{0, 0, 0x80, 0x3f}))
	f.Add(npyWithHeader("{'descr': '<f8', 'fortran_order': True, 'shape': (1,), }\n", make([]byte, 8)))
	f.Add(npyWithHeader("{'descr': '<f8', 'fortran_order': False, 'shape': (3L, 0), }\n", nil))
	v2 := []byte(npyMagic + "\x02\x00\x3a\x00\x00\x00{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }\n")
	f.Add(append(v2, make([]byte, 8)...))
	f.Add([]byte(npyMagic))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := ParseNPY(b)
		if err != nil {
			return
		}
		n := 1
		for _, d := range a.Shape {
			n *= d
		}
		if n != len(a.Data) {
			t.Fatalf("shape %v but %d values", a.Shape, len(a.Data))
		}
	})
}

// FuzzParseNPZ checks that ParseNPZ and StatsFromNPZ never panic on
// arbitrary archives; the seeds include the numpy-written golden files.
//
//	go test ./metrics -run '^$' -fuzz FuzzParseNPZ -fuzztime 60s
func FuzzParseNPZ(f *testing.F) {
	b, _ := EncodeNPZ([]string{"mu", "sigma"}, [][]int{{2}, {2, 2}}, [][]float64{{1, 2}, {1, 0, 0, 1}})
	f.Add(b)
	for _, name := range []string{"stats_cleanfid.npz", "frechet_eps.npz"} {
		if g, err := os.ReadFile(filepath.Join("testdata", name)); err == nil {
			f.Add(g)
		}
	}
	f.Add([]byte("PK\x05\x06" + string(make([]byte, 18))))
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := ParseNPZ(b); err != nil {
			return
		}
		s, err := StatsFromNPZ(b)
		if err != nil {
			return
		}
		if r, c := s.Sigma.Dims(); r != len(s.Mu) || c != len(s.Mu) {
			t.Fatalf("mu %d, sigma %dx%d", len(s.Mu), r, c)
		}
	})
}
