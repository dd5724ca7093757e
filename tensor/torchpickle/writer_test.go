package torchpickle

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"io"
	"math"
	"testing"
)

// A minimal writer of torch.save-style checkpoints for tests and benchmarks,
// written from the format description in doc.go (not from torch's code).

// testTensor is one tensor to write: a view (offset, shape, stride) of storage
// key, whose bytes are data.
type testTensor struct {
	name    string
	class   string // "FloatStorage", ...
	key     string
	numel   int64
	offset  int64
	shape   []int64
	stride  []int64
	storage []byte // written once per key (first occurrence)
}

type pkl struct{ bytes.Buffer }

func (p *pkl) str(s string) {
	p.WriteByte('X')
	binary.Write(&p.Buffer, binary.LittleEndian, uint32(len(s)))
	p.WriteString(s)
}

func (p *pkl) int(v int64) {
	p.WriteByte(0x8a)
	p.WriteByte(8)
	binary.Write(&p.Buffer, binary.LittleEndian, v)
}

func (p *pkl) global(module, name string) {
	p.WriteString("c" + module + "\n" + name + "\n")
}

func (p *pkl) ints(v []int64) {
	p.WriteByte('(')
	for _, x := range v {
		p.int(x)
	}
	p.WriteByte('t')
}

// statePickle returns a protocol-2 pickle of an OrderedDict of the tensors.
func statePickle(ts []testTensor) []byte {
	var p pkl
	p.Write([]byte{0x80, 0x02})
	p.global("collections", "OrderedDict")
	p.WriteString(")R(")
	for _, t := range ts {
		p.str(t.name)
		p.global("torch._utils", "_rebuild_tensor_v2")
		p.WriteByte('(')
		p.WriteByte('(')
		p.str("storage")
		p.global("torch", t.class)
		p.str(t.key)
		p.str("cpu")
		p.int(t.numel)
		p.WriteString("tQ")
		p.int(t.offset)
		p.ints(t.shape)
		p.ints(t.stride)
		p.WriteByte(0x89)
		p.global("collections", "OrderedDict")
		p.WriteString(")R")
		p.WriteString("tR")
	}
	p.WriteString("u.")
	return p.Bytes()
}

// writeOpts alter the archive for error tests.
type writeOpts struct {
	pickle    []byte // replaces data.pkl when non-nil
	noPickle  bool   // omit data.pkl
	skipKey   string // omit this storage record
	byteorder string // write a byteorder record
	deflate   bool
}

// writeCheckpoint writes a zip checkpoint with archive name "archive".
func writeCheckpoint(w io.Writer, ts []testTensor, o writeOpts) error {
	zw := zip.NewWriter(w)
	method := zip.Store
	if o.deflate {
		method = zip.Deflate
	}
	add := func(name string, b []byte) error {
		fw, err := zw.CreateHeader(&zip.FileHeader{Name: "archive/" + name, Method: method})
		if err != nil {
			return err
		}
		_, err = fw.Write(b)
		return err
	}
	pk := o.pickle
	if pk == nil {
		pk = statePickle(ts)
	}
	if !o.noPickle {
		if err := add("data.pkl", pk); err != nil {
			return err
		}
	}
	if o.byteorder != "" {
		if err := add("byteorder", []byte(o.byteorder)); err != nil {
			return err
		}
	}
	done := map[string]bool{}
	for _, t := range ts {
		if done[t.key] || t.key == o.skipKey {
			continue
		}
		done[t.key] = true
		if err := add("data/"+t.key, t.storage); err != nil {
			return err
		}
	}
	if err := add("version", []byte("3\n")); err != nil {
		return err
	}
	return zw.Close()
}

func checkpointBytes(t testing.TB, ts []testTensor, o writeOpts) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := writeCheckpoint(&buf, ts, o); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// f32Bytes encodes float32 values little-endian.
func f32Bytes(v ...float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}
