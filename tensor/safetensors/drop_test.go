package safetensors

import (
	"bytes"
	"path/filepath"
	"testing"
)

// TestDropResident checks that dropping a mapped file's pages from the resident
// set leaves its data readable and unchanged (it faults back from the file), and
// that it is a no-op for parsed buffers and closed files.
func TestDropResident(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.safetensors")
	want := pattern(1<<16, 3) // several pages
	if err := WriteFile(path, []TensorInfo{{Name: "w", DType: U8, Shape: []int{len(want)}, Data: want}}, nil); err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	w, _ := f.Get("w")
	if !bytes.Equal(w.Data, want) {
		t.Fatal("data differs before DropResident")
	}
	for i := 0; i < 2; i++ {
		if err := f.DropResident(); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(w.Data, want) {
			t.Fatalf("data differs after DropResident #%d", i+1)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.DropResident(); err != nil {
		t.Fatalf("DropResident after Close: %v", err)
	}

	// A parsed buffer is the caller's memory: never dropped (MADV_DONTNEED
	// would zero anonymous memory).
	var buf bytes.Buffer
	if err := Write(&buf, []TensorInfo{{Name: "w", DType: U8, Shape: []int{len(want)}, Data: want}}, nil); err != nil {
		t.Fatal(err)
	}
	p, err := Parse(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if err := p.DropResident(); err != nil {
		t.Fatal(err)
	}
	pw, _ := p.Get("w")
	if !bytes.Equal(pw.Data, want) {
		t.Fatal("parsed data changed after DropResident")
	}
}
