package main

import (
	"bytes"
	"encoding/csv"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/roentgo/roentgo/diffusion/dataset"
	"github.com/roentgo/roentgo/phantom"
)

func write(t *testing.T, args ...string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "out")
	var stdout, stderr bytes.Buffer
	if rc := run(append(args, "-out", dir), &stdout, &stderr); rc != 0 {
		t.Fatalf("run %q: exit %d: %s", args, rc, stderr.String())
	}
	return dir
}

// The written folder is a dataset that diffusion/dataset opens (Folder
// layout) and iterates, with the captions and labels of the phantoms.
func TestDatasetOpens(t *testing.T) {
	dir := write(t, "-n", "6", "-size", "64", "-seed", "3", "-findings-rate", "0.8", "-workers", "2")
	d, err := dataset.Open(dir, dataset.Options{Resolution: 64, Strict: true, Epochs: 1, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if d.Layout() != dataset.Folder || d.Len() != 6 {
		t.Fatalf("layout %v with %d records, expected folder with 6", d.Layout(), d.Len())
	}
	it, err := d.Iter(dataset.Position{})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	f, err := os.Open(filepath.Join(dir, "labels.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(rows[0], ",") != strings.Join(phantom.Columns(), ",") || len(rows) != 7 {
		t.Fatalf("labels.csv header %q with %d rows", rows[0], len(rows)-1)
	}
	n := 0
	for {
		s, err := it.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
		if len(s.Pixels) != 3*64*64 {
			t.Errorf("%s: %d values", s.Path, len(s.Pixels))
		}
		row := rows[s.Index+1]
		if row[0] != s.Path || row[len(row)-1] != s.Caption {
			t.Errorf("%s: caption %q, labels.csv has %q for %s", s.Path, s.Caption, row[len(row)-1], row[0])
		}
		i := 0
		for k, c := range row[0] {
			if c >= '0' && c <= '9' {
				i = i*10 + int(c-'0')
			} else if k > 0 {
				break
			}
		}
		p := phantom.Random(phantom.DatasetSeed(3, i), phantom.Options{FindingsRate: 0.8})
		if want := phantom.MakeReport(p).Text; s.Caption != want {
			t.Errorf("%s: caption %q, phantom %d's report is %q", s.Path, s.Caption, i, want)
		}
	}
	if n != 6 {
		t.Errorf("iterated %d samples, expected 6", n)
	}
}

// Same flags, byte-identical output, whatever the number of workers.
func TestDeterministicOutput(t *testing.T) {
	a := write(t, "-n", "5", "-size", "48", "-seed", "9", "-workers", "1", "-bits", "16")
	b := write(t, "-n", "5", "-size", "48", "-seed", "9", "-workers", "3", "-bits", "16")
	ea, _ := os.ReadDir(a)
	eb, _ := os.ReadDir(b)
	if len(ea) != 11 || len(ea) != len(eb) {
		t.Fatalf("%d and %d files, expected 11 (5 images, 5 captions, labels.csv)", len(ea), len(eb))
	}
	for _, e := range ea {
		x, _ := os.ReadFile(filepath.Join(a, e.Name()))
		y, err := os.ReadFile(filepath.Join(b, e.Name()))
		if err != nil || !bytes.Equal(x, y) {
			t.Errorf("%s differs between -workers 1 and 3", e.Name())
		}
	}
	c := write(t, "-n", "5", "-size", "48", "-seed", "10", "-bits", "16")
	x, _ := os.ReadFile(filepath.Join(a, "00000.png"))
	y, _ := os.ReadFile(filepath.Join(c, "00000.png"))
	if bytes.Equal(x, y) {
		t.Error("seeds 9 and 10 wrote the same first image")
	}
}

func TestBadFlags(t *testing.T) {
	full := t.TempDir()
	os.WriteFile(filepath.Join(full, "x"), nil, 0o644)
	for _, args := range [][]string{
		{"-n", "3"}, // no -out
		{"-n", "0", "-out", t.TempDir()},
		{"-size", "8", "-out", t.TempDir()},
		{"-findings-rate", "1.5", "-out", t.TempDir()},
		{"-bits", "12", "-out", t.TempDir()},
		{"-workers", "0", "-out", t.TempDir()},
		{"-out", full},
		{"-n", "3", "extra"},
	} {
		var stdout, stderr bytes.Buffer
		if rc := run(args, &stdout, &stderr); rc == 0 || strings.Count(stderr.String(), "\n") != 1 {
			t.Errorf("%q: exit %d, stderr %q: expected a one-line error", args, rc, stderr.String())
		}
	}
}

func TestGrid(t *testing.T) {
	out := filepath.Join(t.TempDir(), "grid.png")
	var stdout, stderr bytes.Buffer
	if rc := run([]string{"-grid", out, "-tile", "64"}, &stdout, &stderr); rc != 0 {
		t.Fatal(stderr.String())
	}
	if n := strings.Count(stdout.String(), "\n"); n != 12 {
		t.Errorf("%d captions, expected 12:\n%s", n, stdout.String())
	}
	if _, err := os.Stat(out); err != nil {
		t.Error(err)
	}
}
