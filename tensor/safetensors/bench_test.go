package safetensors

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// benchFile writes a synthetic file of about size bytes (64 F32 tensors) and
// returns its path.
func benchFile(b *testing.B, size int) string {
	b.Helper()
	per := size / 64 / 4 * 4
	data := make([]byte, per)
	for i := range data {
		data[i] = byte(i)
	}
	tensors := make([]TensorInfo, 64)
	for i := range tensors {
		tensors[i] = TensorInfo{Name: fmt.Sprintf("layer.%02d.weight", i), DType: F32, Shape: []int{per / 4}, Data: data}
	}
	path := filepath.Join(b.TempDir(), "big.safetensors")
	if err := WriteFile(path, tensors, map[string]string{"format": "pt"}); err != nil {
		b.Fatal(err)
	}
	return path
}

// BenchmarkOpen compares opening a ~1 GB file with Open (mmap: only the header
// is read) against reading the whole file and parsing it. Set
// SAFETENSORS_BENCH_MB to change the size.
func BenchmarkOpen(b *testing.B) {
	mb := 1024
	if s := os.Getenv("SAFETENSORS_BENCH_MB"); s != "" {
		if v, err := strconv.Atoi(s); err == nil && v > 0 {
			mb = v
		}
	}
	if testing.Short() {
		mb = 16
	}
	path := benchFile(b, mb<<20)
	st, _ := os.Stat(path)
	b.Run("mmap", func(b *testing.B) {
		b.SetBytes(st.Size())
		for i := 0; i < b.N; i++ {
			f, err := Open(path)
			if err != nil {
				b.Fatal(err)
			}
			_ = f.Tensors[len(f.Tensors)-1].Data[0] // touch one page
			f.Close()
		}
	})
	b.Run("readfile", func(b *testing.B) {
		b.SetBytes(st.Size())
		for i := 0; i < b.N; i++ {
			buf, err := os.ReadFile(path)
			if err != nil {
				b.Fatal(err)
			}
			f, err := Parse(buf)
			if err != nil {
				b.Fatal(err)
			}
			_ = f.Tensors[len(f.Tensors)-1].Data[0]
		}
	})
}
