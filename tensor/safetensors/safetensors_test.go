package safetensors

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/roentgo/roentgo/internal/testutil/refdata"
)

// rawFile assembles a file from a header string and data, with no padding.
func rawFile(header string, data []byte) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	b = append(b, header...)
	return append(b, data...)
}

func mustWrite(t testing.TB, tensors []TensorInfo, meta map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Write(&buf, tensors, meta); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestWriteReferenceBytes checks the writer against byte layouts derived by
// hand from the format description (and matching the reference writer):
// compact JSON, tensors' offsets from 0, header padded with spaces to 8.
func TestWriteReferenceBytes(t *testing.T) {
	data := make([]byte, 0, 24)
	for i := 0; i < 6; i++ {
		data = binary.LittleEndian.AppendUint32(data, math.Float32bits(float32(i)))
	}
	got := mustWrite(t, []TensorInfo{{Name: "attn.0", DType: F32, Shape: []int{1, 2, 3}, Data: data}}, nil)
	hdr := `{"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}` // 64 bytes: no padding
	if want := rawFile(hdr, data); !bytes.Equal(got, want) {
		t.Fatalf("got\n%q\nwant\n%q", got, want)
	}
	got = mustWrite(t, []TensorInfo{{Name: "attn0", DType: F32, Shape: []int{1, 1, 2, 3}, Data: data}}, nil)
	hdr = `{"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}}` + strings.Repeat(" ", 7) // 65+7 = 72
	if want := rawFile(hdr, data); !bytes.Equal(got, want) {
		t.Fatalf("got\n%q\nwant\n%q", got, want)
	}
	if got, want := mustWrite(t, nil, nil), rawFile("{}      ", nil); !bytes.Equal(got, want) {
		t.Fatalf("empty file: got %q want %q", got, want)
	}
	got = mustWrite(t, nil, map[string]string{"framework": "pt"})
	if want := rawFile(`{"__metadata__":{"framework":"pt"}}     `, nil); !bytes.Equal(got, want) {
		t.Fatalf("metadata only: got %q want %q", got, want)
	}
}

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7) + seed
	}
	return b
}

func TestRoundTripAllDTypes(t *testing.T) {
	var tensors []TensorInfo
	for i, d := range DTypes() {
		tensors = append(tensors,
			TensorInfo{Name: "t." + string(d) + ".mat", DType: d, Shape: []int{3, 5}, Data: pattern(15*d.Size(), byte(i))},
			TensorInfo{Name: "t." + string(d) + ".scalar", DType: d, Shape: []int{}, Data: pattern(d.Size(), byte(i+100))},
			TensorInfo{Name: "t." + string(d) + ".empty", DType: d, Shape: []int{0, 4}, Data: []byte{}},
			TensorInfo{Name: "t." + string(d) + ".odd", DType: d, Shape: []int{1, 3, 1}, Data: pattern(3*d.Size(), byte(i+50))},
		)
	}
	meta := map[string]string{"format": "pt", "note": "<quotes \" and \\ and ü>", "": ""}
	buf := mustWrite(t, tensors, meta)
	if n := binary.LittleEndian.Uint64(buf); n%8 != 0 {
		t.Fatalf("header length %d not a multiple of 8", n)
	}
	f, err := Parse(buf)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Metadata) != len(meta) {
		t.Fatalf("metadata %v", f.Metadata)
	}
	for k, v := range meta {
		if f.Metadata[k] != v {
			t.Fatalf("metadata[%q] = %q, want %q", k, f.Metadata[k], v)
		}
	}
	if len(f.Tensors) != len(tensors) {
		t.Fatalf("%d tensors, want %d", len(f.Tensors), len(tensors))
	}
	headerEnd := 8 + int(binary.LittleEndian.Uint64(buf))
	for _, want := range tensors {
		got, ok := f.Get(want.Name)
		if !ok {
			t.Fatalf("missing %s", want.Name)
		}
		if got.DType != want.DType || fmt.Sprint(got.Shape) != fmt.Sprint(want.Shape) || !bytes.Equal(got.Data, want.Data) {
			t.Fatalf("%s: got %s %v %x, want %s %v %x", want.Name, got.DType, got.Shape, got.Data, want.DType, want.Shape, want.Data)
		}
		if got.NumElements()*got.DType.Size() != len(got.Data) {
			t.Fatalf("%s: NumElements %d", want.Name, got.NumElements())
		}
		// Alignment: the writer orders by decreasing dtype size.
		if len(got.Data) > 0 {
			off := int(uintptr(unsafePointer(got.Data)) - uintptr(unsafePointer(buf[headerEnd:])))
			if (headerEnd+off)%got.DType.Size() != 0 {
				t.Fatalf("%s at file offset %d is not aligned to %d", want.Name, headerEnd+off, got.DType.Size())
			}
		}
	}
	// Tensors are in offset order; Names is sorted.
	names := f.Names()
	for i := 1; i < len(names); i++ {
		if names[i-1] >= names[i] {
			t.Fatalf("Names not sorted: %q, %q", names[i-1], names[i])
		}
	}
	// Writing the parsed file again gives the same bytes.
	if again := mustWrite(t, f.Tensors, f.Metadata); !bytes.Equal(again, buf) {
		t.Fatal("re-writing the parsed file changed its bytes")
	}
	if _, ok := f.Get("nope"); ok {
		t.Fatal("Get of a missing name succeeded")
	}
}

func TestDTypeSizes(t *testing.T) {
	want := map[DType]int{BOOL: 1, U8: 1, I8: 1, F8E5M2: 1, F8E4M3: 1, F8E8M0: 1, I16: 2, U16: 2, F16: 2, BF16: 2,
		I32: 4, U32: 4, F32: 4, F64: 8, I64: 8, U64: 8, C64: 8}
	for d, s := range want {
		if d.Size() != s || !d.Valid() {
			t.Fatalf("%s: size %d valid %v, want %d", d, d.Size(), d.Valid(), s)
		}
	}
	if DType("F128").Valid() || DType("F128").Size() != 0 || DType("f32").Valid() {
		t.Fatal("unknown dtypes reported valid")
	}
	if len(DTypes()) != len(want) {
		t.Fatalf("DTypes has %d entries", len(DTypes()))
	}
}

func TestOpenWriteFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "model.safetensors")
	w := []TensorInfo{
		{Name: "b", DType: F16, Shape: []int{2}, Data: []byte{1, 2, 3, 4}},
		{Name: "a", DType: F32, Shape: []int{2, 1}, Data: pattern(8, 9)},
	}
	if err := WriteFile(path, w, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if f.Tensors[0].Name != "a" || f.Tensors[1].Name != "b" {
		t.Fatalf("offset order: %s, %s", f.Tensors[0].Name, f.Tensors[1].Name)
	}
	a, _ := f.Get("a")
	if !bytes.Equal(a.Data, pattern(8, 9)) || f.Metadata["format"] != "pt" {
		t.Fatalf("a = %x, metadata %v", a.Data, f.Metadata)
	}
	// Overwrite the file while it is mapped: the rename keeps the mapping valid.
	if err := WriteFile(path, []TensorInfo{{Name: "c", DType: U8, Shape: []int{1}, Data: []byte{7}}}, nil); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Data, pattern(8, 9)) {
		t.Fatal("mapped data changed after the file was replaced")
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	g, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if g.Names()[0] != "c" || g.Metadata != nil {
		t.Fatalf("after overwrite: %v %v", g.Names(), g.Metadata)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("directory holds %d entries, want only the output", len(entries))
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o644 {
		t.Fatalf("mode %v", st.Mode())
	}
}

func TestWriteFileFailureLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	good := []TensorInfo{{Name: "x", DType: F32, Shape: []int{1}, Data: make([]byte, 4)}}
	// Missing directory.
	if err := WriteFile(filepath.Join(dir, "missing", "m.safetensors"), good, nil); err == nil {
		t.Fatal("no error for a missing directory")
	}
	// Data length does not match the shape: no output, and an existing file
	// stays as it was.
	path := filepath.Join(dir, "m.safetensors")
	bad := []TensorInfo{{Name: "w", DType: F32, Shape: []int{2, 3}, Data: make([]byte, 20)}}
	err := WriteFile(path, bad, nil)
	if err == nil || !strings.Contains(err.Error(), `"w"`) || !strings.Contains(err.Error(), "needs 24 bytes") {
		t.Fatalf("error %v", err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatal("output exists after a failed write")
	}
	if err := WriteFile(path, good, nil); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(path)
	if err := WriteFile(path, bad, nil); err == nil {
		t.Fatal("no error")
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(before, after) {
		t.Fatal("a failed write changed the existing file")
	}
	// A writer error part-way: Write returns it.
	if err := Write(failingWriter{after: 10}, good, nil); err == nil {
		t.Fatal("Write ignored a writer error")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		names := []string{}
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Fatalf("directory holds %v, want only the output", names)
	}
}

type failingWriter struct{ after int }

func (w failingWriter) Write(p []byte) (int, error) {
	if len(p) > w.after {
		return 0, fmt.Errorf("disk full")
	}
	return len(p), nil
}

func TestWriteErrors(t *testing.T) {
	cases := []struct {
		name    string
		tensors []TensorInfo
		want    string
	}{
		{"duplicate", []TensorInfo{{Name: "a", DType: U8, Shape: []int{1}, Data: []byte{1}}, {Name: "a", DType: U8, Shape: []int{1}, Data: []byte{1}}}, `"a" appears twice`},
		{"reserved", []TensorInfo{{Name: "__metadata__", DType: U8, Shape: []int{}, Data: []byte{1}}}, "reserved"},
		{"dtype", []TensorInfo{{Name: "a", DType: "F128", Shape: []int{1}, Data: make([]byte, 16)}}, `unknown dtype "F128"`},
		{"negative", []TensorInfo{{Name: "a", DType: U8, Shape: []int{-1}, Data: nil}}, "negative dimension"},
		{"size", []TensorInfo{{Name: "a", DType: BF16, Shape: []int{3}, Data: make([]byte, 5)}}, "needs 6 bytes of data, got 5"},
		{"overflow", []TensorInfo{{Name: "a", DType: F64, Shape: []int{1 << 40, 1 << 40}, Data: nil}}, "overflows"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var buf bytes.Buffer
			err := Write(&buf, c.tensors, nil)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want %q", err, c.want)
			}
			if buf.Len() != 0 {
				t.Fatal("Write wrote bytes before failing validation")
			}
		})
	}
}

func TestMalformed(t *testing.T) {
	f32 := func(name string, shape string, b, e int) string {
		return fmt.Sprintf(`%q:{"dtype":"F32","shape":%s,"data_offsets":[%d,%d]}`, name, shape, b, e)
	}
	hugeLen := binary.LittleEndian.AppendUint64(nil, 1<<40)
	cases := []struct {
		name string
		file []byte
		want string
	}{
		{"empty", nil, "shorter than the 8-byte header length"},
		{"7 bytes", []byte{1, 2, 3, 4, 5, 6, 7}, "shorter than the 8-byte"},
		{"header too large", append(hugeLen, "{}"...), "exceeds the 100000000-byte limit"},
		{"header past end", append(binary.LittleEndian.AppendUint64(nil, 100), "{}"...), "runs past the end"},
		{"not utf8", rawFile("{\"a\xff\":1}", nil), "not valid UTF-8"},
		{"not object", rawFile(`[1,2]`, nil), "not a JSON object"},
		{"empty header", rawFile(``, nil), "not a JSON object"},
		{"bad json", rawFile(`{"a":{"dtype":"F32",}}`, nil), "invalid JSON"},
		{"truncated json", rawFile(`{"a":{"dtype":"F32"`, nil), "invalid JSON"},
		{"trailing garbage", rawFile(`{} x`, nil), "unexpected bytes after the JSON object"},
		{"second object", rawFile(`{}{}`, nil), "unexpected bytes after"},
		{"duplicate name", rawFile("{"+f32("w", "[1]", 0, 4)+","+f32("w", "[1]", 4, 8)+"}", make([]byte, 8)), `tensor "w" appears twice`},
		{"duplicate metadata", rawFile(`{"__metadata__":{},"__metadata__":{}}`, nil), "__metadata__ twice"},
		{"metadata not map", rawFile(`{"__metadata__":["a"]}`, nil), "__metadata__ must be an object of strings"},
		{"metadata value number", rawFile(`{"__metadata__":{"epoch":3}}`, nil), `__metadata__["epoch"] must be a string, found number 3`},
		{"metadata value object", rawFile(`{"__metadata__":{"x":{}}}`, nil), `__metadata__["x"] must be a string`},
		{"metadata dup key", rawFile(`{"__metadata__":{"k":"a","k":"b"}}`, nil), `key "k" twice`},
		{"unknown dtype", rawFile(`{"w":{"dtype":"F128","shape":[1],"data_offsets":[0,16]}}`, make([]byte, 16)), `tensor "w" has unknown dtype "F128"`},
		{"lowercase dtype", rawFile(`{"w":{"dtype":"f32","shape":[1],"data_offsets":[0,4]}}`, make([]byte, 4)), `unknown dtype "f32"`},
		{"dtype not string", rawFile(`{"w":{"dtype":4,"shape":[1],"data_offsets":[0,4]}}`, make([]byte, 4)), "dtype must be a string"},
		{"negative dim", rawFile("{"+f32("w", "[-1]", 0, 4)+"}", make([]byte, 4)), `tensor "w": shape entry -1 is not a non-negative integer`},
		{"float dim", rawFile("{"+f32("w", "[1.0]", 0, 4)+"}", make([]byte, 4)), "shape entry 1.0 is not a non-negative integer"},
		{"exp dim", rawFile("{"+f32("w", "[1e0]", 0, 4)+"}", make([]byte, 4)), "not a non-negative integer"},
		{"string dim", rawFile("{"+f32("w", `["1"]`, 0, 4)+"}", make([]byte, 4)), "shape must hold non-negative integers"},
		{"huge dim", rawFile("{"+f32("w", "[9223372036854775808]", 0, 4)+"}", make([]byte, 4)), "below 2^63"},
		{"shape not array", rawFile("{"+f32("w", "4", 0, 16)+"}", make([]byte, 16)), "shape must be an array"},
		{"missing shape", rawFile(`{"w":{"dtype":"F32","data_offsets":[0,4]}}`, make([]byte, 4)), `tensor "w" has no shape`},
		{"missing offsets", rawFile(`{"w":{"dtype":"F32","shape":[1]}}`, make([]byte, 4)), `tensor "w" has no data_offsets`},
		{"missing dtype", rawFile(`{"w":{"shape":[1],"data_offsets":[0,4]}}`, make([]byte, 4)), `tensor "w" has no dtype`},
		{"three offsets", rawFile(`{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}}`, make([]byte, 4)), "data_offsets has 3 entries, expected 2"},
		{"tensor not object", rawFile(`{"w":[1,2]}`, nil), `tensor "w": expected an object`},
		{"size mismatch", rawFile("{"+f32("w", "[2,3]", 0, 20)+"}", make([]byte, 20)), `tensor "w": shape [2 3] of F32 needs 24 bytes, but data_offsets [0, 20] hold 20`},
		{"shape overflow", rawFile("{"+f32("w", "[4294967296,4294967296]", 0, 4)+"}", make([]byte, 4)), "overflows"},
		{"begin after end", rawFile("{"+f32("w", "[1]", 8, 4)+"}", make([]byte, 8)), "begin after they end"},
		{"out of range", rawFile("{"+f32("w", "[4]", 0, 16)+"}", make([]byte, 12)), "run past the end of the 12-byte data region"},
		{"huge offset", rawFile("{"+f32("w", "[1]", 9223372036854775800, 9223372036854775804)+"}", make([]byte, 4)), "run past the end"},
		{"overlap", rawFile("{"+f32("a", "[2]", 0, 8)+","+f32("b", "[2]", 4, 12)+"}", make([]byte, 12)), `tensor "b": data_offsets [4, 12] overlap tensor "a", which ends at 8`},
		{"same range", rawFile("{"+f32("a", "[1]", 0, 4)+","+f32("b", "[1]", 0, 4)+"}", make([]byte, 4)), `overlap tensor "a"`},
		{"gap", rawFile("{"+f32("a", "[1]", 0, 4)+","+f32("b", "[1]", 8, 12)+"}", make([]byte, 12)), `tensor "b" begins at 8, leaving a 4-byte gap after tensor "a"`},
		{"leading gap", rawFile("{"+f32("a", "[1]", 4, 8)+"}", make([]byte, 8)), "gap after the start of the data region"},
		{"trailing bytes", rawFile("{"+f32("a", "[1]", 0, 4)+"}", make([]byte, 5)), "the tensors cover 4 bytes but the data region has 5"},
		{"data without tensors", rawFile(`{}`, make([]byte, 3)), "cover 0 bytes but the data region has 3"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := Parse(c.file)
			if err == nil {
				t.Fatalf("parsed: %+v", f)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q, want it to contain %q", err, c.want)
			}
		})
	}
}

// TestAccepted lists unusual but valid inputs.
func TestAccepted(t *testing.T) {
	cases := []struct {
		name   string
		file   []byte
		tensor string
	}{
		{"padding", rawFile(`{"w":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}  `+"\n", []byte{1, 2}), "w"},
		{"unknown field", rawFile(`{"w":{"dtype":"U8","extra":{"a":[1]},"shape":[2],"data_offsets":[0,2]}}`, []byte{1, 2}), "w"},
		{"any key order", rawFile(`{"w":{"data_offsets":[0,2],"shape":[2],"dtype":"U8"}}`, []byte{1, 2}), "w"},
		{"null metadata", rawFile(`{"__metadata__":null,"w":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}`, []byte{1, 2}), "w"},
		{"unordered offsets", rawFile(`{"z":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}`, []byte{1, 2}), "a"},
		{"empty tensors share an offset", rawFile(`{"e":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},"f":{"dtype":"F32","shape":[2,0],"data_offsets":[0,0]},"w":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}`, []byte{1, 2}), "e"},
		{"unicode name", rawFile(`{"wé\u00e9":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}`, []byte{1, 2}), "wéé"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := Parse(c.file)
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := f.Get(c.tensor); !ok {
				t.Fatalf("no tensor %q in %v", c.tensor, f.Names())
			}
		})
	}
	f, _ := Parse(cases[4].file)
	if f.Tensors[0].Name != "z" || f.Tensors[1].Data[0] != 2 {
		t.Fatal("tensors not in offset order")
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Open(filepath.Join(dir, "none.safetensors")); err == nil {
		t.Fatal("no error for a missing file")
	}
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("directory: %v", err)
	}
	p := filepath.Join(dir, "short")
	os.WriteFile(p, []byte{1, 2}, 0o644)
	if _, err := Open(p); err == nil || !strings.Contains(err.Error(), "shorter than") {
		t.Fatalf("short file: %v", err)
	}
	p = filepath.Join(dir, "bad")
	os.WriteFile(p, rawFile(`{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}`, make([]byte, 4)), 0o644)
	if _, err := Open(p); err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), `"w"`) {
		t.Fatalf("bad file: %v", err)
	}
}

// TestGoldenModels opens the safetensors files of the golden tiny SD1 model
// (written by PyTorch/diffusers); the expected counts and dtypes were read
// from their headers with Python's json module.
func TestGoldenModels(t *testing.T) {
	root := refdata.Golden(t, "model")
	cases := []struct {
		path     string
		count    int
		i64      int
		format   string
		posIDs   string
		someName string
	}{
		{"tiny-sd1-fp32.safetensors", 513, 1, "", "cond_stage_model.transformer.text_model.embeddings.position_ids", "model.diffusion_model.input_blocks.0.0.weight"},
		{"diffusers/unet/diffusion_pytorch_model.safetensors", 304, 0, "pt", "", "conv_in.weight"},
		{"diffusers/text_encoder/model.safetensors", 85, 1, "pt", "text_model.embeddings.position_ids", "text_model.final_layer_norm.weight"},
		{"diffusers/vae/diffusion_pytorch_model.safetensors", 124, 0, "pt", "", "decoder.conv_in.bias"},
	}
	for _, c := range cases {
		t.Run(c.path, func(t *testing.T) {
			f, err := Open(filepath.Join(root, c.path))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if len(f.Tensors) != c.count {
				t.Fatalf("%d tensors, want %d", len(f.Tensors), c.count)
			}
			if f.Metadata["format"] != c.format {
				t.Fatalf("metadata %v", f.Metadata)
			}
			i64 := 0
			for _, ti := range f.Tensors {
				switch ti.DType {
				case I64:
					i64++
				case F32:
					for i := 0; i < len(ti.Data); i += 4 {
						v := math.Float32frombits(binary.LittleEndian.Uint32(ti.Data[i:]))
						if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) || math.Abs(float64(v)) > 1e4 {
							t.Fatalf("%s holds %v", ti.Name, v)
						}
					}
				default:
					t.Fatalf("%s has dtype %s", ti.Name, ti.DType)
				}
			}
			if i64 != c.i64 {
				t.Fatalf("%d I64 tensors, want %d", i64, c.i64)
			}
			if _, ok := f.Get(c.someName); !ok {
				t.Fatalf("no %s", c.someName)
			}
			if c.posIDs != "" {
				p, ok := f.Get(c.posIDs)
				if !ok || fmt.Sprint(p.Shape) != "[1 77]" {
					t.Fatalf("position_ids %v %v", ok, p.Shape)
				}
				for i := 0; i < 77; i++ {
					if v := int64(binary.LittleEndian.Uint64(p.Data[8*i:])); v != int64(i) {
						t.Fatalf("position_ids[%d] = %d", i, v)
					}
				}
			}
			// Round trip through Write: same tensors and bytes.
			var buf bytes.Buffer
			if err := Write(&buf, f.Tensors, f.Metadata); err != nil {
				t.Fatal(err)
			}
			g, err := Parse(buf.Bytes())
			if err != nil {
				t.Fatal(err)
			}
			for _, ti := range f.Tensors {
				u, ok := g.Get(ti.Name)
				if !ok || u.DType != ti.DType || fmt.Sprint(u.Shape) != fmt.Sprint(ti.Shape) || !bytes.Equal(u.Data, ti.Data) {
					t.Fatalf("round trip changed %s", ti.Name)
				}
			}
		})
	}
}
