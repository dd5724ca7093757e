package phantom

import (
	"image/png"
	"os"
	"testing"
)

// TestWritePreview writes a preview sheet to $PHANTOM_PREVIEW (skipped
// when unset): a development aid for looking at the phantoms.
func TestWritePreview(t *testing.T) {
	out := os.Getenv("PHANTOM_PREVIEW")
	if out == "" {
		t.Skip("PHANTOM_PREVIEW not set")
	}
	g, err := Grid(Showcase(1), 256, 4)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := png.Encode(f, g); err != nil {
		t.Fatal(err)
	}
}

// TestWriteRandom writes a sheet of 12 random phantoms to $PHANTOM_RANDOM.
func TestWriteRandom(t *testing.T) {
	out := os.Getenv("PHANTOM_RANDOM")
	if out == "" {
		t.Skip("PHANTOM_RANDOM not set")
	}
	var ps []Params
	for i := range 12 {
		p := Random(DatasetSeed(1, i), Options{FindingsRate: 0.5})
		t.Log(i, MakeReport(p).Text)
		ps = append(ps, p)
	}
	g, err := Grid(ps, 256, 4)
	if err != nil {
		t.Fatal(err)
	}
	f, _ := os.Create(out)
	defer f.Close()
	png.Encode(f, g)
}
