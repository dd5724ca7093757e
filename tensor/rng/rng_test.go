package rng

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/roentgo/roentgo/internal/npy"
	"github.com/roentgo/roentgo/internal/testutil/refdata"
)

// The expected values in testdata were written by PyTorch 1.13
// (scripts/gen_rng_testdata.py); every comparison is bit for bit.

type tdOp struct {
	Kind   string  `json:"kind"`
	Shape  []int   `json:"shape"`
	N      int     `json:"n"`
	From   float64 `json:"from"`
	To     float64 `json:"to"`
	Mean   float64 `json:"mean"`
	Std    float64 `json:"std"`
	Offset int     `json:"offset"`
	NBytes int     `json:"nbytes"`
	SHA256 string  `json:"sha256"`
}

type tdCase struct {
	Name string `json:"name"`
	Seed uint64 `json:"seed"`
	Ops  []tdOp `json:"ops"`
}

func loadCases(t *testing.T) ([]tdCase, []byte) {
	t.Helper()
	idx, err := os.ReadFile(filepath.Join("testdata", "cases.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Cases []tdCase `json:"cases"`
	}
	if err := json.Unmarshal(idx, &f); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join("testdata", "data.bin"))
	if err != nil {
		t.Fatal(err)
	}
	return f.Cases, data
}

func numel(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// runOp performs op on g and returns the output as little-endian bytes.
func runOp(g *Generator, op tdOp) []byte {
	switch op.Kind {
	case "random64":
		out := make([]byte, 8*op.N)
		for i := 0; i < op.N; i++ {
			binary.LittleEndian.PutUint64(out[8*i:], g.Uint64())
		}
		return out
	}
	var f []float32
	switch op.Kind {
	case "randn":
		f = make([]float32, numel(op.Shape))
		g.Normal(f, 0, 1)
	case "rand":
		f = make([]float32, numel(op.Shape))
		g.Uniform(f, 0, 1)
	case "uniform":
		f = make([]float32, op.N)
		g.Uniform(f, float32(op.From), float32(op.To))
	case "normal":
		f = make([]float32, op.N)
		g.Normal64(f, op.Mean, op.Std)
	default:
		panic("unknown op " + op.Kind)
	}
	out := make([]byte, 4*len(f))
	for i, v := range f {
		binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(v))
	}
	return out
}

func describeMismatch(kind string, got, want []byte) string {
	size := 4
	if kind == "random64" {
		size = 8
	}
	bad, first := 0, -1
	for i := 0; i+size <= len(want) && i+size <= len(got); i += size {
		if string(got[i:i+size]) != string(want[i:i+size]) {
			bad++
			if first < 0 {
				first = i / size
			}
		}
	}
	if first < 0 {
		return fmt.Sprintf("length %d, want %d", len(got), len(want))
	}
	if size == 4 {
		g := math.Float32frombits(binary.LittleEndian.Uint32(got[4*first:]))
		w := math.Float32frombits(binary.LittleEndian.Uint32(want[4*first:]))
		return fmt.Sprintf("%d of %d elements differ; first at %d: got %v (%#08x), want %v (%#08x)",
			bad, len(want)/4, first, g, math.Float32bits(g), w, math.Float32bits(w))
	}
	return fmt.Sprintf("%d of %d elements differ; first at %d: got %#x, want %#x", bad, len(want)/8, first,
		binary.LittleEndian.Uint64(got[8*first:]), binary.LittleEndian.Uint64(want[8*first:]))
}

func TestAgainstTorch(t *testing.T) {
	cases, data := loadCases(t)
	if len(cases) < 50 {
		t.Fatalf("only %d cases in testdata", len(cases))
	}
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			g := New(c.Seed)
			for i, op := range c.Ops {
				got := runOp(g, op)
				if op.SHA256 != "" {
					sum := sha256.Sum256(got)
					if hex.EncodeToString(sum[:]) != op.SHA256 {
						t.Fatalf("op %d (%s %v): SHA-256 of the output differs from torch's", i, op.Kind, op.Shape)
					}
					continue
				}
				want := data[op.Offset : op.Offset+op.NBytes]
				if string(got) != string(want) {
					t.Fatalf("op %d (%s %v n=%d): %s", i, op.Kind, op.Shape, op.N, describeMismatch(op.Kind, got, want))
				}
			}
		})
	}
}

// TestMT19937Standard checks the engine against the C++ standard's required
// value: the 10000th output of std::mt19937 with the default seed 5489.
func TestMT19937Standard(t *testing.T) {
	g := New(5489)
	var v uint32
	for i := 0; i < 10000; i++ {
		v = g.Uint32()
	}
	if v != 4123659995 {
		t.Fatalf("10000th draw = %d, want 4123659995", v)
	}
}

func TestUint64IsTwoDraws(t *testing.T) {
	a, b := New(77), New(77)
	for i := 0; i < 1000; i++ {
		hi, lo := a.Uint32(), a.Uint32()
		if got, want := b.Uint64(), uint64(hi)<<32|uint64(lo); got != want {
			t.Fatalf("draw %d: Uint64 = %#x, want %#x", i, got, want)
		}
	}
}

func TestSeedTruncatesTo32Bits(t *testing.T) {
	a, b := New(5), New(1<<32+5)
	for i := 0; i < 10; i++ {
		if a.Uint32() != b.Uint32() {
			t.Fatal("seeds 5 and 2^32+5 differ; torch uses only the low 32 bits")
		}
	}
	if b.InitialSeed() != 1<<32+5 {
		t.Fatalf("InitialSeed = %d", b.InitialSeed())
	}
}

// TestCloneAndSeed checks that a clone (including the cached normal sample)
// continues the same stream independently, and that Seed resets everything.
func TestCloneAndSeed(t *testing.T) {
	g := New(9)
	x := make([]float32, 3) // odd count: leaves a cached sample
	g.Normal(x, 0, 1)
	c := g.Clone()
	a, b := make([]float32, 40), make([]float32, 40)
	g.Normal(a[:1], 0, 1)
	g.Normal(a[1:], 0, 1)
	c.Normal(b[:1], 0, 1)
	c.Normal(b[1:], 0, 1)
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			t.Fatalf("clone diverged at %d: %v vs %v", i, a[i], b[i])
		}
	}
	g.Seed(9)
	fresh := New(9)
	y, z := make([]float32, 5), make([]float32, 5)
	g.Normal(y, 0, 1)
	fresh.Normal(z, 0, 1)
	for i := range y {
		if y[i] != z[i] {
			t.Fatalf("Seed did not reset the generator (element %d: %v vs %v)", i, y[i], z[i])
		}
	}
}

// TestGoldenInitialLatents compares with the initial latents diffusers drew in
// the golden pipeline runs: torch.randn((1,4,32,32), generator=manual_seed(seed)).
func TestGoldenInitialLatents(t *testing.T) {
	root := refdata.GoldenDir(t)
	caseJSON, err := os.ReadFile(filepath.Join(root, "case.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cj struct {
		Txt2Img json.RawMessage `json:"txt2img"`
	}
	if err := json.Unmarshal(caseJSON, &cj); err != nil {
		t.Fatal(err)
	}
	seeds := goldenSeeds(t, cj.Txt2Img)
	for _, name := range []string{"ddim_4steps", "pndm_5steps"} {
		seed, ok := seeds[name]
		if !ok {
			t.Fatalf("case.json has no seed for %s", name)
		}
		a, err := npy.Read(filepath.Join(root, "txt2img", name, "initial_latents.npy"))
		if err != nil {
			t.Fatal(err)
		}
		if a.DType != "f4" || fmt.Sprint(a.Shape) != "[1 4 32 32]" {
			t.Fatalf("%s: unexpected array %s %v", name, a.DType, a.Shape)
		}
		want, _ := a.Float32()
		got := make([]float32, len(want))
		New(seed).Normal(got, 0, 1)
		for i := range got {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				t.Fatalf("%s (seed %d): element %d = %v, want %v", name, seed, i, got[i], want[i])
			}
		}
	}
}

// goldenSeeds extracts {case id: seed} from case.json's txt2img list.
func goldenSeeds(t *testing.T, raw json.RawMessage) map[string]uint64 {
	t.Helper()
	var list []struct {
		ID   string  `json:"id"`
		Seed *uint64 `json:"seed"`
	}
	if err := json.Unmarshal(raw, &list); err != nil {
		t.Fatalf("case.json txt2img: %v", err)
	}
	out := map[string]uint64{}
	for _, x := range list {
		if x.Seed != nil {
			out[x.ID] = *x.Seed
		}
	}
	return out
}
