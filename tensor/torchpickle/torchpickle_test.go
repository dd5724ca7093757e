package torchpickle

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"encoding/binary"
	"math"
	"math/big"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/roentgo/roentgo/internal/npy"
	"github.com/stretchr/testify/require"
)

// marker is the file the malicious fixtures' payload would create.
const marker = "/tmp/roentgo_torchpickle_pwned"

// expectBytes converts a .npy array to the bytes Read must return for dt.
func expectBytes(t *testing.T, a *npy.Array, dt string) []byte {
	t.Helper()
	switch dt {
	case "BF16":
		require.Equal(t, "f4", a.DType)
		out := make([]byte, 2*a.Len())
		for i := 0; i < a.Len(); i++ {
			bits := binary.LittleEndian.Uint32(a.Data[4*i:])
			require.Zero(t, bits&0xffff, "bf16 expected value is not a bf16")
			binary.LittleEndian.PutUint16(out[2*i:], uint16(bits>>16))
		}
		return out
	case "I16":
		require.Equal(t, "i4", a.DType)
		out := make([]byte, 2*a.Len())
		for i := 0; i < a.Len(); i++ {
			v := int32(binary.LittleEndian.Uint32(a.Data[4*i:]))
			binary.LittleEndian.PutUint16(out[2*i:], uint16(int16(v)))
		}
		return out
	}
	want := map[string]string{"F32": "f4", "F16": "f2", "F64": "f8", "I64": "i8", "I32": "i4", "I8": "i1", "U8": "u1", "BOOL": "b1"}[dt]
	require.Equal(t, want, a.DType, "npy dtype for %s", dt)
	return a.Data
}

// checkAgainstNpy reads every tensor of path and compares it with
// testdata/<prefix>.<name>.npy exactly.
func checkAgainstNpy(t *testing.T, f *File, prefix string) {
	t.Helper()
	for _, name := range f.Names() {
		a, err := npy.Read(filepath.Join("testdata", prefix+"."+name+".npy"))
		require.NoError(t, err)
		tt, err := f.Read(name)
		require.NoError(t, err, name)
		shape := tt.Shape
		if len(shape) == 0 {
			shape = []int{}
		}
		require.Equal(t, a.Shape, shape, "%s shape", name)
		require.Equal(t, tt.NumElements()*tt.ElemSize(), len(tt.Data), name)
		require.True(t, bytes.Equal(expectBytes(t, a, tt.DType), tt.Data), "%s: data differs from PyTorch's", name)
	}
}

var tensorsOrder = []string{"f32", "f16", "bf16", "f64", "i64", "i32", "i16", "i8", "u8", "bool",
	"scalar", "empty", "shared_a", "shared_b", "transposed", "cols", "expanded", "param"}

func TestTensorsBin(t *testing.T) {
	for _, file := range []string{"tensors.bin", "tensors_deflate.bin"} {
		for _, direct := range []bool{true, false} {
			f, err := Open(filepath.Join("testdata", file))
			require.NoError(t, err)
			f.noDirect = !direct
			require.Equal(t, tensorsOrder, f.Names())
			require.Empty(t, f.Extra())
			checkAgainstNpy(t, f, "tensors")

			dtypes := map[string]string{"f32": "F32", "f16": "F16", "bf16": "BF16", "f64": "F64", "i64": "I64",
				"i32": "I32", "i16": "I16", "i8": "I8", "u8": "U8", "bool": "BOOL", "param": "F32"}
			for n, dt := range dtypes {
				info, ok := f.Info(n)
				require.True(t, ok)
				require.Equal(t, dt, info.DType, n)
			}
			a, _ := f.Info("shared_a")
			b, _ := f.Info("shared_b")
			require.Equal(t, a.Storage, b.Storage, "views of one storage")
			require.Equal(t, 2, a.Offset)
			require.Equal(t, 10, b.Offset)
			tr, _ := f.Info("transposed")
			require.Equal(t, []int{5, 3}, tr.Shape)
			require.Equal(t, []int{1, 5}, tr.Strides)
			require.False(t, tr.Contiguous())
			ex, _ := f.Info("expanded")
			require.Equal(t, []int{1, 0}, ex.Strides)
			cols, _ := f.Info("cols")
			require.Equal(t, []int{6, 2}, cols.Strides)
			require.Equal(t, 1, cols.Offset)
			sc, _ := f.Info("scalar")
			require.Empty(t, sc.Shape)
			f32, _ := f.Info("f32")
			require.True(t, f32.Contiguous())
			_, ok := f.Info("nope")
			require.False(t, ok)
			_, err = f.Read("nope")
			require.ErrorContains(t, err, `no tensor "nope"`)
			require.NoError(t, f.Close())
		}
	}
}

func TestLoadMatchesRead(t *testing.T) {
	all, err := Load(filepath.Join("testdata", "tensors.bin"))
	require.NoError(t, err)
	require.Len(t, all, len(tensorsOrder))
	f, err := Open(filepath.Join("testdata", "tensors_deflate.bin"))
	require.NoError(t, err)
	defer f.Close()
	for _, n := range tensorsOrder {
		tt, err := f.Read(n)
		require.NoError(t, err)
		require.Equal(t, all[n].Data, tt.Data, n)
	}
}

func TestProtocol4(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "proto4.bin"))
	require.NoError(t, err)
	for _, op := range []string{"\x95", "\x93", "\x94"} { // FRAME, STACK_GLOBAL, MEMOIZE
		require.Contains(t, string(raw), op)
	}
	f, err := Open(filepath.Join("testdata", "proto4.bin"))
	require.NoError(t, err)
	defer f.Close()
	require.Equal(t, []string{"w", "t", "p"}, f.Names())
	checkAgainstNpy(t, f, "proto4")
}

func TestModuleStateDict(t *testing.T) {
	f, err := Open(filepath.Join("testdata", "module.bin"))
	require.NoError(t, err)
	defer f.Close()
	require.Equal(t, []string{"0.weight", "0.bias", "1.weight", "1.bias", "2.weight", "2.bias",
		"2.running_mean", "2.running_var", "2.num_batches_tracked", "3.weight", "3.bias"}, f.Names())
	checkAgainstNpy(t, f, "module")
	nb, _ := f.Info("2.num_batches_tracked")
	require.Equal(t, "I64", nb.DType)
	require.Empty(t, nb.Shape)
	w3, _ := f.Info("3.weight")
	require.Equal(t, "F16", w3.DType)
	require.Equal(t, []int{3, 4}, w3.Shape)
}

func TestCkpt(t *testing.T) {
	f, err := Open(filepath.Join("testdata", "sd.ckpt"))
	require.NoError(t, err)
	defer f.Close()
	require.Equal(t, []string{
		"model.diffusion_model.input_blocks.0.0.weight",
		"first_stage_model.quant_conv.bias",
		"cond_stage_model.transformer.text_model.embeddings.position_ids",
	}, f.Names())
	checkAgainstNpy(t, f, "sd")
	ex := f.Extra()
	require.Equal(t, int64(3), ex["global_step"])
	require.Equal(t, int64(1), ex["epoch"])
	require.Equal(t, "1.4.2", ex["pytorch-lightning_version"])
	cb := ex["callbacks"].(map[string]any)
	require.Contains(t, cb, "__main__.FakeCheckpointCallback")
	hp := ex["hparams"].(map[string]any)
	require.Equal(t, 1e-4, hp["lr"])
	flags := hp["flags"].([]any)
	require.Equal(t, true, flags[0])
	require.Nil(t, flags[1])
	require.Zero(t, new(big.Int).Lsh(big.NewInt(1), 70).Cmp(flags[2].(*big.Int)))
	require.Equal(t, Opaque{Global: "__main__.FakeCheckpointCallback"}, hp["obj"])
	opt := ex["optimizer_states"].([]any)[0].(map[string]any)
	avg := opt["state"].(map[string]any)["0"].(map[string]any)["exp_avg"].(Tensor)
	require.Equal(t, []int{2, 2}, avg.Shape)
	require.Equal(t, "F32", avg.DType)
}

func TestMaliciousRefused(t *testing.T) {
	os.Remove(marker)
	cases := map[string][]string{
		"evil_entry.bin":      {"posix.system", "not allow-listed"},
		"evil_callbacks.ckpt": {"posix.system", "not allow-listed"},
		"evil_top.bin":        {"posix.system", "not allow-listed"},
		"evil_os.bin":         {"os.system", "not allow-listed"},
		"numpy_entry.bin":     {`state dict entry "w"`, "numpy.core.multiarray._reconstruct is not allow-listed"},
		"subclass.bin":        {`state dict entry "w"`, "torch._tensor._rebuild_from_type_v2 is not allow-listed"},
	}
	for file, want := range cases {
		_, err := Open(filepath.Join("testdata", file))
		require.Error(t, err, file)
		for _, w := range want {
			require.ErrorContains(t, err, w, file)
		}
		t.Logf("%s: %v", file, err)
	}
	_, err := os.Stat(marker)
	require.True(t, os.IsNotExist(err), "the payload ran")
}

func simpleTensors() []testTensor {
	return []testTensor{
		{name: "a", class: "FloatStorage", key: "0", numel: 6, offset: 0, shape: []int64{2, 3}, stride: []int64{3, 1},
			storage: f32Bytes(1, 2, 3, 4, 5, 6)},
		{name: "b", class: "FloatStorage", key: "0", numel: 6, offset: 1, shape: []int64{2, 2}, stride: []int64{1, 3},
			storage: f32Bytes(1, 2, 3, 4, 5, 6)},
		{name: "h", class: "HalfStorage", key: "1", numel: 2, offset: 0, shape: []int64{2}, stride: []int64{1},
			storage: []byte{0x00, 0x3c, 0x00, 0xc0}},
	}
}

func openBytes(b []byte) (*File, error) { return NewReader(bytes.NewReader(b), int64(len(b))) }

func TestWriterRoundTrip(t *testing.T) {
	for _, deflate := range []bool{false, true} {
		f, err := openBytes(checkpointBytes(t, simpleTensors(), writeOpts{deflate: deflate}))
		require.NoError(t, err)
		all, err := f.ReadAll()
		require.NoError(t, err)
		require.Equal(t, f32Bytes(1, 2, 3, 4, 5, 6), all["a"].Data)
		// b[i][j] = storage[1 + i + 3j]
		require.Equal(t, f32Bytes(2, 5, 3, 6), all["b"].Data)
		require.Equal(t, []byte{0x00, 0x3c, 0x00, 0xc0}, all["h"].Data)
	}
}

func TestBigEndian(t *testing.T) {
	ts := simpleTensors()
	for i := range ts {
		sw := append([]byte(nil), ts[i].storage...)
		swapBytes(sw, map[string]int{"FloatStorage": 4, "HalfStorage": 2}[ts[i].class])
		ts[i].storage = sw
	}
	f, err := openBytes(checkpointBytes(t, ts, writeOpts{byteorder: "big"}))
	require.NoError(t, err)
	all, err := f.ReadAll()
	require.NoError(t, err)
	require.Equal(t, f32Bytes(2, 5, 3, 6), all["b"].Data)
	require.Equal(t, []byte{0x00, 0x3c, 0x00, 0xc0}, all["h"].Data)

	_, err = openBytes(checkpointBytes(t, ts, writeOpts{byteorder: "middle"}))
	require.ErrorContains(t, err, `byteorder record says "middle"`)
}

func TestArchiveErrors(t *testing.T) {
	good := checkpointBytes(t, simpleTensors(), writeOpts{})

	_, err := openBytes(checkpointBytes(t, simpleTensors(), writeOpts{noPickle: true}))
	require.ErrorContains(t, err, "no <archive>/data.pkl")

	_, err = openBytes(checkpointBytes(t, simpleTensors(), writeOpts{skipKey: "1"}))
	require.ErrorContains(t, err, `tensor "h": storage record archive/data/1 is missing`)

	small := simpleTensors()
	small[0].storage = f32Bytes(1, 2, 3) // 12 bytes for numel 6
	_, err = openBytes(checkpointBytes(t, small, writeOpts{}))
	require.ErrorContains(t, err, "has 12 bytes, expected at least 24 for 6 F32 elements")

	past := simpleTensors()
	past[1].offset = 3 // last element 3+1+3 = 7 >= 6
	_, err = openBytes(checkpointBytes(t, past, writeOpts{}))
	require.ErrorContains(t, err, `tensor "b": shape [2 2], strides [1 3] and offset 3 reach past the end of storage 0 (6 elements)`)

	huge := simpleTensors()
	huge[1].stride = []int64{1, math.MaxInt64 / 2}
	_, err = openBytes(checkpointBytes(t, huge, writeOpts{}))
	require.ErrorContains(t, err, "reach past the end")

	_, err = openBytes([]byte("hello, not a zip"))
	require.ErrorContains(t, err, "not a PyTorch zip checkpoint")

	legacy := []byte{0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e}
	_, err = openBytes(legacy)
	require.ErrorContains(t, err, "legacy torch.save format")

	// Every truncation of a good archive is an error, never a panic.
	for n := 0; n < len(good); n++ {
		f, err := openBytes(good[:n])
		if err == nil {
			_, err = f.ReadAll()
		}
		require.Error(t, err, "truncated at %d of %d bytes", n, len(good))
	}

	// A flipped byte in a stored storage record fails the checksum.
	i := bytes.Index(good, f32Bytes(1, 2, 3, 4, 5, 6))
	require.Positive(t, i)
	bad := append([]byte(nil), good...)
	bad[i+5] ^= 0xff
	f, err := openBytes(bad)
	require.NoError(t, err)
	_, err = f.Read("a")
	require.ErrorContains(t, err, "checksum mismatch")
	f.noDirect = true
	_, err = f.Read("a")
	require.ErrorContains(t, err, "checksum")
}

func TestPickleErrors(t *testing.T) {
	cases := []struct {
		pkl  []byte
		want string
	}{
		{[]byte{0x80, 0x02, '.'}, "stack underflow"},
		{[]byte{0x80, 0x02, 's'}, "stack underflow"},
		{[]byte{0x80, 0x02, 0xff}, "unsupported or invalid opcode 0xff"},
		{[]byte{0x80, 0x02, '}'}, "no STOP"},
		{[]byte{0x80, 0x02, 'X', 0xff, 0xff, 0, 0, 'a'}, "pickle truncated"},
		{[]byte{0x80, 0x02, 'h', 7, '.'}, "memo key 7 is not defined"},
		{[]byte{0x80, 0x02, 't', '.'}, "no MARK"},
		{[]byte{0x80, 0x09, '.'}, "unsupported pickle protocol 9"},
		{[]byte{0x80, 0x02, 'K', 1, '.'}, "the top-level object is an int, expected a dict of tensors"},
		{[]byte("\x80\x02cbuiltins\neval\n."), "builtins.eval"},
		{[]byte("\x80\x02csubprocess\nPopen\n."), "subprocess.Popen"},
		{[]byte("\x80\x02}X\x01\x00\x00\x00acfoo\nBar\n)Rs."), `state dict entry "a" is an object built by foo.Bar, expected a tensor (foo.Bar is not allow-listed)`},
		{[]byte("\x80\x02}X\x01\x00\x00\x00actorch._utils\n_rebuild_tensor_v2\n(cfoo\nStorage\nK\x00)))\x89}tRs."),
			"_rebuild_tensor_v2: storage is the global foo.Storage, expected a storage persistent id (foo.Storage is not allow-listed)"},
		{[]byte("\x80\x02}X\x01\x00\x00\x00a(X\x07\x00\x00\x00storagecfoo\nStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x01tQs."),
			"storage type is the global foo.Storage, expected a torch.*Storage class (foo.Storage is not allow-listed)"},
		{[]byte("\x80\x02}X\x01\x00\x00\x00a(X\x07\x00\x00\x00storagectorch\nComplexFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x01tQs."),
			"unsupported storage type torch.ComplexFloatStorage"},
	}
	for _, c := range cases {
		_, err := parsePickle(c.pkl)
		require.Error(t, err, "%q", c.pkl)
		require.ErrorContains(t, err, c.want, "%q", c.pkl)
		// And through a whole archive.
		_, err = openBytes(checkpointBytes(t, nil, writeOpts{pickle: c.pkl}))
		require.ErrorContains(t, err, c.want)
		require.True(t, strings.HasPrefix(err.Error(), "torchpickle: checkpoint: archive/data.pkl: "), err.Error())
	}
}

func TestDecodeLong(t *testing.T) {
	cases := []struct {
		b    []byte
		want string
	}{
		{nil, "0"}, {[]byte{0xff}, "-1"}, {[]byte{0x7f}, "127"}, {[]byte{0x80}, "-128"},
		{[]byte{0x00, 0x80}, "-32768"}, {[]byte{0xff, 0x00}, "255"},
		{[]byte{0, 0, 0, 0, 0, 0, 0, 0x80}, "-9223372036854775808"},
		{[]byte{0, 0, 0, 0, 0, 0, 0, 0, 1}, "18446744073709551616"},
		{[]byte{0, 0, 0, 0, 0, 0, 0, 0, 0xff}, "-18446744073709551616"},
	}
	for _, c := range cases {
		v := decodeLong(c.b)
		var s string
		switch x := v.(type) {
		case int64:
			s = big.NewInt(x).String()
		case *big.Int:
			s = x.String()
		}
		require.Equal(t, c.want, s, "% x", c.b)
	}
}

// TestClaimedSizeNotAllocated: a deflated storage record whose header claims
// far more bytes than its stream holds (within the deflate ratio that
// checkSizes allows) fails to read without allocating the claimed size.
func TestClaimedSizeNotAllocated(t *testing.T) {
	const claim = 1 << 20 // bytes: 262144 F32 elements
	pk := smallPickle(pickleOpts{}, testTensor{name: "x", class: "FloatStorage", key: "0", numel: claim / 4,
		offset: 1, shape: []int64{claim/4 - 1}, stride: []int64{1}})
	var comp bytes.Buffer
	fw, err := flate.NewWriter(&comp, flate.NoCompression)
	require.NoError(t, err)
	fw.Write(make([]byte, 1100)) // stored blocks: 1100 bytes give a ~1.1 KB stream
	require.NoError(t, fw.Close())
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, r := range []struct {
		name   string
		method uint16
		data   []byte
		size   uint64
	}{{"a/data.pkl", zip.Store, pk, uint64(len(pk))}, {"a/data/0", zip.Deflate, comp.Bytes(), claim}} {
		w, err := zw.CreateRaw(&zip.FileHeader{Name: r.name, Method: r.method,
			CompressedSize64: uint64(len(r.data)), UncompressedSize64: r.size})
		require.NoError(t, err)
		_, err = w.Write(r.data)
		require.NoError(t, err)
	}
	require.NoError(t, zw.Close())

	f, err := openBytes(buf.Bytes())
	require.NoError(t, err, "the claim is within the deflate ratio: caught only when reading")
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	_, err = f.Read("x")
	runtime.ReadMemStats(&m1)
	require.ErrorContains(t, err, "unexpected EOF")
	require.Less(t, m1.TotalAlloc-m0.TotalAlloc, uint64(claim/4), "bytes allocated for a %d-byte claim backed by %d bytes",
		claim, comp.Len())
}
