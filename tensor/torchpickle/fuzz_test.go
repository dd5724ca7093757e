package torchpickle

import (
	"archive/zip"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// FuzzUnpickle runs the restricted unpickler and the state-dict extraction on
// arbitrary bytes: it must return an error or a result, never panic or hang.
// Seeds: the data.pkl of every fixture and of the test writer.
func FuzzUnpickle(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.bin"))
	ckpts, _ := filepath.Glob(filepath.Join("testdata", "*.ckpt"))
	for _, path := range append(files, ckpts...) {
		zr, err := zip.OpenReader(path)
		if err != nil {
			f.Fatal(err)
		}
		for _, zf := range zr.File {
			if filepath.Base(zf.Name) == "data.pkl" {
				rc, err := zf.Open()
				if err != nil {
					f.Fatal(err)
				}
				b, err := io.ReadAll(rc)
				rc.Close()
				if err != nil {
					f.Fatal(err)
				}
				f.Add(b)
			}
		}
		zr.Close()
	}
	f.Add(statePickle(simpleTensors()))
	f.Add([]byte("\x80\x02}X\x01\x00\x00\x00a(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x01tQs."))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := parsePickle(data)
		if err != nil {
			return
		}
		for _, e := range p.entries {
			if _, _, ok := span(e.t); ok {
				_ = tensorInfo(e.name, e.t)
			}
		}
	})
}

// FuzzArchive opens arbitrary bytes as a checkpoint and reads every tensor.
// Run with a short -fuzzminimizetime (e.g. 3s): minimising a 7 KB zip input
// otherwise takes the default minute per new input.
func FuzzArchive(f *testing.F) {
	for _, name := range []string{"tensors.bin", "module.bin", "sd.ckpt"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		tf, err := openBytes(data)
		if err != nil {
			return
		}
		tf.ReadAll()
		tf.noDirect = true
		tf.ReadAll()
	})
}
