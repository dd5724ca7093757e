// Package torchzip writes PyTorch zip checkpoints (the torch.save format of
// PyTorch >= 1.6: .bin and .ckpt files) for roentgo's tests, so that tests can
// produce .bin/.ckpt versions of safetensors weights without PyTorch. It is
// written from the format description in tensor/torchpickle's package doc;
// scripts/gen_torch_weights.py checks with PyTorch that its files load.
package torchzip

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"strconv"

	"github.com/roentgo/roentgo/tensor/safetensors"
)

// Tensor is one tensor to write: contiguous little-endian Data of DType
// ("F32", "F16", "BF16", "I64", ...) and Shape.
type Tensor struct {
	Name  string
	DType string
	Shape []int
	Data  []byte
}

var storageClass = map[string]string{
	"F64": "DoubleStorage", "F32": "FloatStorage", "F16": "HalfStorage", "BF16": "BFloat16Storage",
	"I64": "LongStorage", "I32": "IntStorage", "I16": "ShortStorage", "I8": "CharStorage",
	"U8": "ByteStorage", "BOOL": "BoolStorage",
}

var elemSize = map[string]int{
	"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1,
}

type pkl struct{ bytes.Buffer }

func (p *pkl) str(s string) {
	p.WriteByte('X') // BINUNICODE
	binary.Write(&p.Buffer, binary.LittleEndian, uint32(len(s)))
	p.WriteString(s)
}

func (p *pkl) int(v int64) {
	p.WriteByte(0x8a) // LONG1, 8 bytes
	p.WriteByte(8)
	binary.Write(&p.Buffer, binary.LittleEndian, v)
}

func (p *pkl) global(module, name string) { p.WriteString("c" + module + "\n" + name + "\n") }

func (p *pkl) ints(v []int) {
	p.WriteByte('(')
	for _, x := range v {
		p.int(int64(x))
	}
	p.WriteByte('t')
}

// stateDict appends an OrderedDict of the tensors, storage i named "i".
func (p *pkl) stateDict(ts []Tensor) error {
	p.global("collections", "OrderedDict")
	p.WriteString(")R") // OrderedDict()
	p.WriteByte('(')
	for i, t := range ts {
		cls, ok := storageClass[t.DType]
		if !ok {
			return fmt.Errorf("torchzip: %s: dtype %q", t.Name, t.DType)
		}
		n := 1
		for _, d := range t.Shape {
			n *= d
		}
		if n*elemSize[t.DType] != len(t.Data) {
			return fmt.Errorf("torchzip: %s: %d bytes for %s %v", t.Name, len(t.Data), t.DType, t.Shape)
		}
		stride := make([]int, len(t.Shape))
		s := 1
		for j := len(t.Shape) - 1; j >= 0; j-- {
			stride[j] = s
			s *= t.Shape[j]
		}
		p.str(t.Name)
		p.global("torch._utils", "_rebuild_tensor_v2")
		p.WriteString("((")
		p.str("storage")
		p.global("torch", cls)
		p.str(strconv.Itoa(i))
		p.str("cpu")
		p.int(int64(n))
		p.WriteString("tQ") // persistent id
		p.int(0)            // storage offset
		p.ints(t.Shape)
		p.ints(stride)
		p.WriteByte(0x89) // requires_grad False
		p.global("collections", "OrderedDict")
		p.WriteString(")R") // backward hooks
		p.WriteString("tR")
	}
	p.WriteByte('u') // SETITEMS
	return nil
}

// Write writes ts to path as torch.save(state_dict) would, or, when
// nestStateDict, as torch.save({"state_dict": state_dict, "global_step": 1})
// like a Lightning .ckpt. Entries are stored uncompressed.
func Write(path string, ts []Tensor, nestStateDict bool) error {
	var p pkl
	p.Write([]byte{0x80, 0x02})
	if nestStateDict {
		p.WriteString("}(") // EMPTY_DICT, MARK
		p.str("state_dict")
	}
	if err := p.stateDict(ts); err != nil {
		return err
	}
	if nestStateDict {
		p.str("global_step")
		p.int(1)
		p.WriteByte('u')
	}
	p.WriteByte('.')

	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	add := func(name string, data []byte) error {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: "archive/" + name, Method: zip.Store})
		if err != nil {
			return err
		}
		_, err = w.Write(data)
		return err
	}
	if err := add("data.pkl", p.Bytes()); err != nil {
		return err
	}
	for i, t := range ts {
		if err := add("data/"+strconv.Itoa(i), t.Data); err != nil {
			return err
		}
	}
	if err := add("version", []byte("3\n")); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}

// FromSafetensors writes every tensor of the safetensors file src to dst (see
// Write), in the file's name order.
func FromSafetensors(src, dst string, nestStateDict bool) error {
	f, err := safetensors.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	var ts []Tensor
	for _, name := range f.Names() {
		ti, _ := f.Get(name)
		ts = append(ts, Tensor{Name: name, DType: string(ti.DType), Shape: ti.Shape, Data: ti.Data})
	}
	return Write(dst, ts, nestStateDict)
}
