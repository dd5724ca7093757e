package safetensors

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"
)

// FuzzParse checks that Parse never panics and that whatever it accepts is
// consistent: tensors tile the data region in offset order with the right byte
// counts, and writing them back gives a file that parses to the same tensors.
//
//	go test -fuzz=FuzzParse ./tensor/safetensors
func FuzzParse(f *testing.F) {
	var valid bytes.Buffer
	_ = Write(&valid, []TensorInfo{
		{Name: "a", DType: F32, Shape: []int{2, 2}, Data: make([]byte, 16)},
		{Name: "b", DType: BF16, Shape: []int{3}, Data: []byte{1, 2, 3, 4, 5, 6}},
		{Name: "s", DType: I64, Shape: []int{}, Data: make([]byte, 8)},
		{Name: "e", DType: U8, Shape: []int{0}, Data: nil},
	}, map[string]string{"format": "pt"})
	f.Add(valid.Bytes())
	f.Add(rawFile(`{}`, nil))
	f.Add(rawFile(`{"__metadata__":{"k":"v"}}`, nil))
	f.Add(rawFile(`{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, make([]byte, 8)))
	f.Add(rawFile(`{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"b":{"dtype":"U8","shape":[2],"data_offsets":[1,3]}}`, make([]byte, 3)))
	f.Add(rawFile(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[2,3]}}`, make([]byte, 3)))
	f.Add(rawFile(`{"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}`, make([]byte, 4)))
	f.Add(rawFile(`{"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}}`, nil))
	f.Add(rawFile(`{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w":{}}`, make([]byte, 4)))
	f.Add(rawFile("{\"\xff\":1}", nil))
	f.Add(binary.LittleEndian.AppendUint64(nil, 1<<62))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		file, err := Parse(b)
		if err != nil {
			if file != nil {
				t.Fatal("Parse returned a file and an error")
			}
			return
		}
		n := int(binary.LittleEndian.Uint64(b))
		dataLen := len(b) - 8 - n
		pos := 0
		for _, ti := range file.Tensors {
			nb, ok := numBytes(ti.Shape, ti.DType.Size())
			if !ok || nb != len(ti.Data) {
				t.Fatalf("tensor %q: %d bytes for shape %v of %s", ti.Name, len(ti.Data), ti.Shape, ti.DType)
			}
			if g, ok := file.Get(ti.Name); !ok || g.Name != ti.Name {
				t.Fatalf("Get(%q) failed", ti.Name)
			}
			pos += len(ti.Data)
		}
		if pos != dataLen {
			t.Fatalf("tensors cover %d bytes of %d", pos, dataLen)
		}
		if len(file.Names()) != len(file.Tensors) {
			t.Fatal("Names and Tensors differ in length")
		}
		var out bytes.Buffer
		if err := Write(&out, file.Tensors, file.Metadata); err != nil {
			t.Fatalf("cannot write back a parsed file: %v", err)
		}
		again, err := Parse(out.Bytes())
		if err != nil {
			t.Fatalf("written file does not parse: %v\n%q", err, out.Bytes())
		}
		if len(again.Tensors) != len(file.Tensors) || len(again.Metadata) != len(file.Metadata) {
			t.Fatal("round trip changed the tensor or metadata count")
		}
		for k, v := range file.Metadata {
			if again.Metadata[k] != v {
				t.Fatalf("metadata %q changed", k)
			}
		}
		for _, ti := range file.Tensors {
			u, ok := again.Get(ti.Name)
			if !ok || u.DType != ti.DType || fmt.Sprint(u.Shape) != fmt.Sprint(ti.Shape) || !bytes.Equal(u.Data, ti.Data) {
				t.Fatalf("round trip changed tensor %q", ti.Name)
			}
		}
	})
}
