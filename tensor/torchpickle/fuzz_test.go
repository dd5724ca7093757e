package torchpickle

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"encoding/binary"
	"hash/crc32"
	"io"
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

// FuzzArchive opens arbitrary bytes as a checkpoint and reads every tensor,
// through ReadAt and through the streaming path: it must return an error or
// the tensors, never panic, hang or allocate far beyond the input's size.
//
// The fuzzing engine minimises every new interesting input with about n^2/2
// runs of the target for an n-byte input, at some 50 µs a run. With the 3-7 KB
// fixtures as seeds that took far longer than the default -fuzzminimizetime
// (a minute), so a plain -fuzz run spent its time minimising and stalled. The
// seeds are therefore small hand-built archives (360-430 bytes: a few seconds
// to minimise) and inputs are capped at maxFuzzArchive bytes (older cached
// corpora may hold larger ones). See docs/TESTING.md. Most seeds have zero CRCs,
// which archive/zip and this package take as "unknown", so that mutations of
// data.pkl and of the storages reach the unpickler and the view checks
// instead of failing the checksum.
func FuzzArchive(f *testing.F) {
	for _, seed := range archiveSeeds(f) {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > maxFuzzArchive {
			return
		}
		tf, err := openBytes(data)
		if err != nil {
			return
		}
		tf.ReadAll()
		tf.noDirect = true
		tf.ReadAll()
	})
}

// maxFuzzArchive bounds FuzzArchive's inputs: room for every record kind and
// a few tensors, and under ten seconds to minimise.
const maxFuzzArchive = 512

// archiveSeeds returns FuzzArchive's seeds, one small archive per feature:
// the layout torch.save writes (OrderedDict, _rebuild_tensor_v2, CRCs);
// transposed and broadcast (stride 0, offset) views; a deflated record of
// big-endian data read in part; a .ckpt layout (nested state dict and extra
// entries) holding a scalar; parameters, one of them empty.
func archiveSeeds(tb testing.TB) [][]byte {
	f32 := string(f32Bytes(1, 2, 3, 4))
	torchSave := tinyZip(tb, zipOpts{crc: true},
		"a/data.pkl", string(smallPickle(pickleOpts{torchSave: true},
			testTensor{name: "a", class: "FloatStorage", key: "0", numel: 4, shape: []int64{2, 2}, stride: []int64{2, 1}})),
		"a/data/0", f32)
	views := tinyZip(tb, zipOpts{},
		"a/data.pkl", string(smallPickle(pickleOpts{},
			testTensor{name: "t", class: "FloatStorage", key: "0", numel: 4, shape: []int64{2, 2}, stride: []int64{1, 2}},
			testTensor{name: "e", class: "FloatStorage", key: "0", numel: 4, offset: 1, shape: []int64{2, 3}, stride: []int64{0, 1}})),
		"a/data/0", f32)
	deflated := tinyZip(tb, zipOpts{deflate: true},
		"a/data.pkl", string(smallPickle(pickleOpts{},
			testTensor{name: "h", class: "HalfStorage", key: "0", numel: 3, offset: 1, shape: []int64{2}, stride: []int64{1}})),
		"a/byteorder", "big",
		"a/data/0", "\x3c\x00\xc0\x00\x3c\x00")
	ckpt := tinyZip(tb, zipOpts{},
		"a/data.pkl", string(smallPickle(pickleOpts{ckpt: true},
			testTensor{name: "w", class: "BFloat16Storage", key: "0", numel: 2, offset: 1, shape: []int64{}, stride: []int64{}})),
		"a/data/0", "\x80\x3f\x00\x40")
	params := tinyZip(tb, zipOpts{},
		"a/data.pkl", string(smallPickle(pickleOpts{param: true},
			testTensor{name: "i", class: "LongStorage", key: "0", numel: 1, shape: []int64{1}, stride: []int64{1}},
			testTensor{name: "z", class: "BoolStorage", key: "0", numel: 0, shape: []int64{0}, stride: []int64{1}})),
		"a/data/0", "\x07\x00\x00\x00\x00\x00\x00\x00")
	return [][]byte{torchSave, views, deflated, ckpt, params}
}

// zipOpts choose how tinyZip writes its records.
type zipOpts struct {
	deflate bool // compress every record (else store)
	crc     bool // write CRC-32s (else 0: not checked)
}

// tinyZip returns a zip archive of the (name, content) pairs in order, in the
// smallest layout archive/zip writes: no data descriptors, timestamps or
// extra fields.
func tinyZip(tb testing.TB, o zipOpts, pairs ...string) []byte {
	tb.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for i := 0; i+1 < len(pairs); i += 2 {
		content := []byte(pairs[i+1])
		h := &zip.FileHeader{Name: pairs[i], Method: zip.Store, UncompressedSize64: uint64(len(content))}
		if o.crc {
			h.CRC32 = crc32.ChecksumIEEE(content)
		}
		if o.deflate {
			var c bytes.Buffer
			fw, err := flate.NewWriter(&c, flate.BestCompression)
			if err != nil {
				tb.Fatal(err)
			}
			fw.Write(content)
			if err := fw.Close(); err != nil {
				tb.Fatal(err)
			}
			h.Method, content = zip.Deflate, c.Bytes()
		}
		h.CompressedSize64 = uint64(len(content))
		w, err := zw.CreateRaw(h)
		if err != nil {
			tb.Fatal(err)
		}
		if _, err := w.Write(content); err != nil {
			tb.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// pickleOpts choose the layout smallPickle writes.
type pickleOpts struct {
	// torchSave writes what torch.save does: an OrderedDict of
	// _rebuild_tensor_v2(storage, offset, size, stride, requires_grad,
	// backward_hooks) calls, strings as BINUNICODE. Else a plain dict of the shorter
	// _rebuild_tensor(storage, offset, size, stride).
	torchSave bool
	// ckpt nests the state dict as a .ckpt does, with other entries of
	// several kinds: {"global_step": 7, "extra": [None, True, 1.5, "s", (1,),
	// {}, foo.bar], "state_dict": {"model": {...}}}.
	ckpt bool
	// param wraps each tensor in _rebuild_parameter(tensor, False, ()).
	param bool
}

// smallPickle is statePickle in the shortest opcodes (BININT1/2,
// SHORT_BINUNICODE unless torchSave, TUPLE1..3, memoised globals and repeated
// strings), for small fuzz seeds.
func smallPickle(o pickleOpts, ts ...testTensor) []byte {
	var p bytes.Buffer
	memo := map[string]byte{}
	// put memoises the value just written under key; get writes it again
	// from the memo if it is there.
	put := func(key string) {
		memo[key] = byte(len(memo))
		p.WriteByte('q')
		p.WriteByte(memo[key])
	}
	get := func(key string) bool {
		i, ok := memo[key]
		if ok {
			p.WriteByte('h')
			p.WriteByte(i)
		}
		return ok
	}
	str := func(s string) {
		again := s == "storage" || s == "cpu"
		if again && get(s) {
			return
		}
		if o.torchSave { // BINUNICODE, as torch.save's protocol 2
			p.WriteByte('X')
			binary.Write(&p, binary.LittleEndian, uint32(len(s)))
		} else {
			p.WriteByte(0x8c)
			p.WriteByte(byte(len(s)))
		}
		p.WriteString(s)
		if again {
			put(s)
		}
	}
	num := func(v int64) {
		switch {
		case v >= 0 && v < 1<<8:
			p.WriteByte('K')
			p.WriteByte(byte(v))
		case v >= 0 && v < 1<<16:
			p.WriteByte('M')
			binary.Write(&p, binary.LittleEndian, uint16(v))
		default:
			p.WriteByte('J')
			binary.Write(&p, binary.LittleEndian, int32(v))
		}
	}
	tuple := func(v []int64) {
		if len(v) == 0 {
			p.WriteByte(')')
			return
		}
		if len(v) > 3 {
			p.WriteByte('(')
		}
		for _, x := range v {
			num(x)
		}
		if len(v) > 3 {
			p.WriteByte('t')
		} else {
			p.WriteByte(byte(0x84 + len(v)))
		}
	}
	global := func(module, name string) {
		k := "c" + module + "\n" + name + "\n"
		if !get(k) {
			p.WriteString(k)
			put(k)
		}
	}
	dict := func() {
		if o.torchSave {
			global("collections", "OrderedDict")
			p.WriteString(")R(")
		} else {
			p.WriteString("}(")
		}
	}
	p.Write([]byte{0x80, 0x02})
	if o.ckpt {
		p.WriteString("}(")
		str("global_step")
		num(7)
		str("extra")
		p.WriteString("](N\x88G?\xf8\x00\x00\x00\x00\x00\x00")
		str("s")
		p.WriteString("K\x01\x85}cfoo\nbar\ne")
		str("state_dict")
		p.WriteString("}(")
		str("model")
	}
	dict()
	for _, t := range ts {
		str(t.name)
		if o.param {
			global("torch._utils", "_rebuild_parameter")
			p.WriteByte('(')
		}
		if o.torchSave {
			global("torch._utils", "_rebuild_tensor_v2")
		} else {
			global("torch._utils", "_rebuild_tensor")
		}
		p.WriteString("((")
		str("storage")
		global("torch", t.class)
		str(t.key)
		str("cpu")
		num(t.numel)
		p.WriteString("tQ")
		num(t.offset)
		tuple(t.shape)
		tuple(t.stride)
		if o.torchSave {
			p.WriteByte(0x89) // requires_grad=False
			global("collections", "OrderedDict")
			p.WriteString(")R")
		}
		p.WriteString("tR")
		if o.param {
			p.WriteString("\x89)tR")
		}
	}
	p.WriteByte('u')
	if o.ckpt {
		p.WriteString("uu")
	}
	p.WriteByte('.')
	return p.Bytes()
}

// TestArchiveSeeds checks that FuzzArchive's seeds are valid checkpoints that
// read back as intended, and stay small.
func TestArchiveSeeds(t *testing.T) {
	want := []map[string][]byte{
		{"a": f32Bytes(1, 2, 3, 4)},
		{"t": f32Bytes(1, 3, 2, 4), "e": f32Bytes(2, 3, 4, 2, 3, 4)},
		{"h": {0x00, 0xc0, 0x00, 0x3c}},
		{"model.w": {0x00, 0x40}},
		{"i": {7, 0, 0, 0, 0, 0, 0, 0}, "z": {}},
	}
	for i, seed := range archiveSeeds(t) {
		t.Logf("seed %d: %d bytes", i, len(seed))
		if len(seed) > 450 {
			t.Errorf("seed %d is %d bytes; keep seeds under 450 bytes (see FuzzArchive)", i, len(seed))
		}
		for _, direct := range []bool{true, false} {
			f, err := openBytes(seed)
			if err != nil {
				t.Fatalf("seed %d: %v", i, err)
			}
			f.noDirect = !direct
			all, err := f.ReadAll()
			if err != nil {
				t.Fatalf("seed %d: %v", i, err)
			}
			if ex := f.Extra(); i == 3 && (ex["global_step"] != int64(7) || len(ex["extra"].([]any)) != 7) {
				t.Errorf("seed %d: extra entries %v", i, ex)
			}
			if len(all) != len(want[i]) {
				t.Errorf("seed %d: tensors %v, want %d", i, f.Names(), len(want[i]))
			}
			for name, data := range want[i] {
				if got, ok := all[name]; !ok || !bytes.Equal(got.Data, data) {
					t.Errorf("seed %d (direct %v): %s = %v, want %v", i, direct, name, got, data)
				}
			}
		}
	}
}
