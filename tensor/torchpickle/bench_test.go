package torchpickle

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// writeBig writes a ~100 MB checkpoint of 25 F32 tensors [1024, 1024] into dir
// with the test writer (stored records, like torch.save).
func writeBig(b *testing.B, dir string) (string, int64) {
	b.Helper()
	const n, rows, cols = 25, 1024, 1024
	ts := make([]testTensor, n)
	var total int64
	for i := range ts {
		data := make([]byte, 4*rows*cols)
		for j := 0; j < len(data); j += 4 {
			binary.LittleEndian.PutUint32(data[j:], uint32(i*j))
		}
		ts[i] = testTensor{name: fmt.Sprintf("layer.%d.weight", i), class: "FloatStorage", key: fmt.Sprint(i),
			numel: rows * cols, shape: []int64{rows, cols}, stride: []int64{cols, 1}, storage: data}
		total += int64(len(data))
	}
	path := filepath.Join(dir, "big.bin")
	out, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	if err := writeCheckpoint(out, ts, writeOpts{}); err != nil {
		b.Fatal(err)
	}
	if err := out.Close(); err != nil {
		b.Fatal(err)
	}
	return path, total
}

// BenchmarkLoad measures Open + ReadAll of a 100 MB checkpoint (from the page
// cache after the first run): "direct" reads stored records in place with
// ReadAt (+ CRC check), "readall" streams each record through zip's reader
// and io.ReadAll; the baseline reads the whole file with os.ReadFile.
func BenchmarkLoad(b *testing.B) {
	path, total := writeBig(b, b.TempDir())
	b.Run("baseline-os.ReadFile", func(b *testing.B) {
		b.SetBytes(total)
		for i := 0; i < b.N; i++ {
			if _, err := os.ReadFile(path); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, mode := range []string{"direct", "readall"} {
		b.Run(mode, func(b *testing.B) {
			b.SetBytes(total)
			for i := 0; i < b.N; i++ {
				f, err := Open(path)
				if err != nil {
					b.Fatal(err)
				}
				f.noDirect = mode == "readall"
				if _, err := f.ReadAll(); err != nil {
					b.Fatal(err)
				}
				f.Close()
			}
		})
	}
}
