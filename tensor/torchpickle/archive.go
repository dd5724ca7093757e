package torchpickle

import (
	"archive/zip"
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/bits"
	"os"
	"strings"
)

// Tensor describes one tensor of a checkpoint.
type Tensor struct {
	// Name is the state-dict key ("model.diffusion_model.out.2.weight").
	Name string
	// DType is the element type as package tensor/safetensors spells it:
	// "F32", "F16", "BF16", "F64", "I64", "I32", "I16", "I8", "U8", "BOOL".
	DType string
	// Shape is the tensor's shape ([] for a scalar).
	Shape []int
	// Strides and Offset place the stored view in its storage, in elements.
	// They describe the file, not Data, which is always contiguous.
	Strides []int
	Offset  int
	// Storage is the key of the storage record (<archive>/data/<Storage>).
	Storage string
	// Data holds the elements in C order, little-endian; nil in the metadata
	// returned by File.Tensors and File.Info.
	Data []byte
}

// NumElements returns the product of the shape (1 for a scalar).
func (t *Tensor) NumElements() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// ElemSize returns the size in bytes of one element of t.DType.
func (t *Tensor) ElemSize() int { return elemSize(t.DType) }

// Contiguous reports whether the stored view is C-contiguous (dimensions of
// size 1 may have any stride).
func (t *Tensor) Contiguous() bool {
	want := 1
	for i := len(t.Shape) - 1; i >= 0; i-- {
		if t.Shape[i] != 1 && t.Strides[i] != want {
			return false
		}
		want *= t.Shape[i]
	}
	return true
}

func elemSize(dt string) int {
	for _, v := range storageTypes {
		if v.name == dt {
			return v.size
		}
	}
	return 0
}

// maxRepeat bounds how many times larger than its storage an overlapping
// view (stride 0) may be when materialised.
const maxRepeat = 16

func numel(shape []int64) int64 {
	n := int64(1)
	for _, d := range shape {
		n *= d // bounded by maxElements in rebuildTensor
	}
	return n
}

// maxPickle bounds the size of data.pkl read into memory.
const maxPickle = 1 << 30

// File is an open PyTorch zip checkpoint. Tensor data is read on demand; Read
// may be called from several goroutines at once.
type File struct {
	path    string
	r       io.ReaderAt
	closer  io.Closer
	zr      *zip.Reader
	prefix  string               // "<archive>/"
	records map[string]*zip.File // storage key -> entry
	big     bool                 // byteorder record says "big"
	tensors []entry
	byName  map[string]int
	extra   map[string]any
	// noDirect forces the streaming path (tests and benchmarks).
	noDirect bool
}

// Open opens the checkpoint at path and parses its data.pkl. The caller must
// Close the file.
func Open(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("torchpickle: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("torchpickle: %w", err)
	}
	tf, err := newFile(f, st.Size(), path)
	if err != nil {
		f.Close()
		return nil, err
	}
	tf.closer = f
	return tf, nil
}

// NewReader parses a checkpoint held by r (size bytes long). The caller keeps
// r open while it reads tensors.
func NewReader(r io.ReaderAt, size int64) (*File, error) {
	return newFile(r, size, "checkpoint")
}

func newFile(r io.ReaderAt, size int64, path string) (*File, error) {
	errf := func(format string, args ...any) error {
		return fmt.Errorf("torchpickle: %s: "+format, append([]any{path}, args...)...)
	}
	zr, err := zip.NewReader(r, size)
	if err != nil {
		head := make([]byte, 16)
		n, _ := r.ReadAt(head, 0)
		head = head[:n]
		switch {
		case bytes.HasPrefix(head, []byte{0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19}):
			return nil, errf("legacy torch.save format (PyTorch < 1.6) is not supported; expected the zip format (re-save with a newer PyTorch)")
		case bytes.HasPrefix(head, []byte("PK")):
			return nil, errf("corrupt or truncated zip archive: %v", err)
		default:
			return nil, errf("not a PyTorch zip checkpoint (%v); expected a torch.save file (.bin/.pt/.ckpt)", err)
		}
	}
	f := &File{path: path, r: r, zr: zr, records: map[string]*zip.File{}, byName: map[string]int{}}
	var pkl *zip.File
	for _, zf := range zr.File {
		if i := strings.IndexByte(zf.Name, '/'); i > 0 && zf.Name[i+1:] == "data.pkl" {
			if pkl != nil {
				return nil, errf("the archive has two data.pkl records (%s and %s)", pkl.Name, zf.Name)
			}
			pkl, f.prefix = zf, zf.Name[:i+1]
		}
	}
	if pkl == nil {
		return nil, errf("no <archive>/data.pkl record in the zip; expected a torch.save checkpoint")
	}
	for _, zf := range zr.File {
		if !strings.HasPrefix(zf.Name, f.prefix) {
			continue
		}
		rest := zf.Name[len(f.prefix):]
		switch {
		case strings.HasPrefix(rest, "data/"):
			if err := checkSizes(zf, size); err != nil {
				return nil, errf("%v", err)
			}
			f.records[rest[len("data/"):]] = zf
		case rest == "byteorder":
			b, err := readEntry(zf, 64)
			if err != nil {
				return nil, errf("byteorder record: %v", err)
			}
			switch s := strings.TrimSpace(string(b)); s {
			case "little":
			case "big":
				f.big = true
			default:
				return nil, errf("byteorder record says %q, expected \"little\" or \"big\"", s)
			}
		}
	}
	data, err := readEntry(pkl, maxPickle)
	if err != nil {
		return nil, errf("%s: %v", pkl.Name, err)
	}
	p, err := parsePickle(data)
	if err != nil {
		return nil, errf("%s: %v", pkl.Name, err)
	}
	f.tensors, f.extra = p.entries, p.extra
	for i, e := range f.tensors {
		f.byName[e.name] = i
		if err := f.check(e); err != nil {
			return nil, errf("%v", err)
		}
	}
	return f, nil
}

// checkSizes rejects records whose declared sizes cannot be right, so that a
// corrupt header cannot make Read allocate more than the archive can hold.
func checkSizes(zf *zip.File, archiveSize int64) error {
	off, err := zf.DataOffset()
	if err != nil {
		return fmt.Errorf("%s: %v", zf.Name, err)
	}
	if off < 0 || zf.CompressedSize64 > uint64(archiveSize) || uint64(off)+zf.CompressedSize64 > uint64(archiveSize) {
		return fmt.Errorf("%s: record of %d bytes at offset %d runs past the end of the %d-byte archive (truncated?)",
			zf.Name, zf.CompressedSize64, off, archiveSize)
	}
	switch zf.Method {
	case zip.Store:
		if zf.UncompressedSize64 != zf.CompressedSize64 {
			return fmt.Errorf("%s: stored record declares %d bytes but holds %d (corrupt archive)",
				zf.Name, zf.UncompressedSize64, zf.CompressedSize64)
		}
	case zip.Deflate:
		// Deflate cannot expand more than about 1032:1.
		if zf.UncompressedSize64/1032 > zf.CompressedSize64+1 {
			return fmt.Errorf("%s: declares %d bytes from %d compressed bytes (corrupt archive)",
				zf.Name, zf.UncompressedSize64, zf.CompressedSize64)
		}
	default:
		return fmt.Errorf("%s: unsupported zip compression method %d (expected stored or deflate)", zf.Name, zf.Method)
	}
	return nil
}

// readEntry reads a whole (small) zip entry, verifying its CRC.
func readEntry(zf *zip.File, limit int64) ([]byte, error) {
	if zf.UncompressedSize64 > uint64(limit) {
		return nil, fmt.Errorf("record is %d bytes, more than the %d limit", zf.UncompressedSize64, limit)
	}
	rc, err := zf.Open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("record is more than %d bytes", limit)
	}
	return b, nil
}

// span returns the range of storage elements [lo, hi) a tensor touches; hi=lo
// for an empty tensor. ok=false on overflow.
func span(t *pyTensor) (lo, hi int64, ok bool) {
	lo = t.offset
	last := t.offset
	for i, d := range t.shape {
		if d == 0 {
			return lo, lo, true
		}
		hiMul, m := bits.Mul64(uint64(d-1), uint64(t.stride[i]))
		if hiMul != 0 || m > uint64(maxElements) {
			return 0, 0, false
		}
		last += int64(m)
		if last > maxElements || last < 0 {
			return 0, 0, false
		}
	}
	return lo, last + 1, true
}

// check validates a tensor against its storage record: present, large
// enough for the view.
func (f *File) check(e entry) error {
	st := e.t.storage
	zf, ok := f.records[st.key]
	if !ok {
		return fmt.Errorf("tensor %q: storage record %sdata/%s is missing", e.name, f.prefix, st.key)
	}
	es := int64(st.dtype.size)
	if uint64(st.numel)*uint64(es) > zf.UncompressedSize64 {
		return fmt.Errorf("tensor %q: storage %sdata/%s has %d bytes, expected at least %d for %d %s elements",
			e.name, f.prefix, st.key, zf.UncompressedSize64, st.numel*es, st.numel, st.dtype.name)
	}
	lo, hi, ok := span(e.t)
	if ok && hi == lo {
		return nil // empty: reads nothing
	}
	if !ok || hi > st.numel {
		return fmt.Errorf("tensor %q: shape %v, strides %v and offset %d reach past the end of storage %s (%d elements)",
			e.name, e.t.shape, e.t.stride, e.t.offset, st.key, st.numel)
	}
	// A view without repeated elements has at most numel elements; only
	// overlapping views (stride 0, as torch.expand makes) have more. Bound
	// them so that a tiny file cannot ask for gigabytes.
	if n := numel(e.t.shape); n > st.numel && n > maxRepeat*st.numel+(1<<20)/es {
		return fmt.Errorf("tensor %q: shape %v with strides %v repeats the %d elements of storage %s %d times; expected at most %dx",
			e.name, e.t.shape, e.t.stride, st.numel, st.key, n/max(st.numel, 1), maxRepeat)
	}
	return nil
}

// Close closes the underlying file (a no-op for NewReader).
func (f *File) Close() error {
	if f.closer == nil {
		return nil
	}
	return f.closer.Close()
}

// Names returns the tensor names in checkpoint order.
func (f *File) Names() []string {
	out := make([]string, len(f.tensors))
	for i, e := range f.tensors {
		out[i] = e.name
	}
	return out
}

// Len returns the number of tensors.
func (f *File) Len() int { return len(f.tensors) }

// Info returns the metadata of the named tensor (Data is nil).
func (f *File) Info(name string) (Tensor, bool) {
	i, ok := f.byName[name]
	if !ok {
		return Tensor{}, false
	}
	return tensorInfo(name, f.tensors[i].t), true
}

// Tensors returns the metadata of every tensor in checkpoint order.
func (f *File) Tensors() []Tensor {
	out := make([]Tensor, len(f.tensors))
	for i, e := range f.tensors {
		out[i] = tensorInfo(e.name, e.t)
	}
	return out
}

// Extra returns the top-level entries of a checkpoint that nests its tensors
// under "state_dict" (global_step, epoch, ...), as plain Go values: nil, bool,
// int64, *big.Int, float64, string, []byte, []any (lists, tuples, sets),
// map[string]any (dicts, keys formatted with fmt), Tensor (metadata only) and
// Opaque for everything else. It is empty for a plain state dict.
func (f *File) Extra() map[string]any { return f.extra }

// Read returns the named tensor with its data, contiguous and little-endian.
func (f *File) Read(name string) (*Tensor, error) {
	i, ok := f.byName[name]
	if !ok {
		return nil, fmt.Errorf("torchpickle: %s: no tensor %q", f.path, name)
	}
	e := f.tensors[i]
	t := tensorInfo(name, e.t)
	data, err := f.materialise(e.t)
	if err != nil {
		return nil, fmt.Errorf("torchpickle: %s: tensor %q: %w", f.path, name, err)
	}
	t.Data = data
	return &t, nil
}

// ReadAll reads every tensor into a map keyed by name.
func (f *File) ReadAll() (map[string]*Tensor, error) {
	out := make(map[string]*Tensor, len(f.tensors))
	for _, e := range f.tensors {
		t, err := f.Read(e.name)
		if err != nil {
			return nil, err
		}
		out[e.name] = t
	}
	return out, nil
}

// Load opens path, reads every tensor and closes the file.
func Load(path string) (map[string]*Tensor, error) {
	f, err := Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.ReadAll()
}

// readRange reads bytes [lo, hi) of a storage record.
func (f *File) readRange(zf *zip.File, lo, hi int64) ([]byte, error) {
	whole := lo == 0 && uint64(hi) == zf.UncompressedSize64
	if zf.Method == zip.Store && !f.noDirect {
		buf := make([]byte, hi-lo) // within the archive (checkSizes)
		off, err := zf.DataOffset()
		if err != nil {
			return nil, err
		}
		if _, err := f.r.ReadAt(buf, off+lo); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, fmt.Errorf("reading %s: %w", zf.Name, err)
		}
		if whole && zf.CRC32 != 0 && crc32.ChecksumIEEE(buf) != zf.CRC32 {
			return nil, fmt.Errorf("%s: checksum mismatch (corrupt archive)", zf.Name)
		}
		return buf, nil
	}
	rc, err := zf.Open()
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", zf.Name, err)
	}
	defer rc.Close()
	if whole {
		// Reading to EOF makes archive/zip verify the CRC.
		b, err := io.ReadAll(rc)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", zf.Name, err)
		}
		if int64(len(b)) != hi {
			return nil, fmt.Errorf("reading %s: got %d bytes, expected %d", zf.Name, len(b), hi)
		}
		return b, nil
	}
	if _, err := io.CopyN(io.Discard, rc, lo); err != nil {
		return nil, fmt.Errorf("reading %s: %w", zf.Name, err)
	}
	// A compressed record's declared size is bounded only by the deflate
	// ratio (checkSizes), about 1000 times its compressed size, so the
	// buffer starts at what the compressed bytes plausibly hold and grows
	// with the bytes the stream yields, not with what the header claims.
	pre := min(hi-lo, 4*int64(min(zf.CompressedSize64, 1<<40))+1<<16)
	buf := bytes.NewBuffer(make([]byte, 0, pre))
	if _, err := buf.ReadFrom(io.LimitReader(rc, hi-lo)); err != nil {
		return nil, fmt.Errorf("reading %s: %w", zf.Name, err)
	}
	if int64(buf.Len()) != hi-lo {
		return nil, fmt.Errorf("reading %s: %w", zf.Name, io.ErrUnexpectedEOF)
	}
	return buf.Bytes(), nil
}

// materialise reads a tensor's view and returns it contiguous, little-endian.
func (f *File) materialise(t *pyTensor) ([]byte, error) {
	st := t.storage
	es := int64(st.dtype.size)
	zf := f.records[st.key]
	lo, hi, _ := span(t) // checked at open
	if hi == lo {
		return []byte{}, nil
	}
	raw, err := f.readRange(zf, lo*es, hi*es)
	if err != nil {
		return nil, err
	}
	info := tensorInfo("", t)
	n := int64(info.NumElements())
	var out []byte
	if info.Contiguous() && hi-lo == n {
		out = raw
	} else {
		out = make([]byte, n*es)
		gather(out, raw, t.shape, t.stride, int(es))
	}
	if f.big && es > 1 {
		swapBytes(out, int(es))
	}
	return out, nil
}

// gather copies the strided view of src (element strides, origin at src[0])
// into dst in C order.
func gather(dst, src []byte, shape, stride []int64, es int) {
	if len(dst) == 0 {
		return
	}
	nd := len(shape)
	if nd == 0 {
		copy(dst, src[:es])
		return
	}
	// Innermost run: contiguous rows are copied at once.
	inner := shape[nd-1]
	rowCopy := stride[nd-1] == 1
	idx := make([]int64, nd-1)
	o := 0
	for {
		var base int64
		for i := 0; i < nd-1; i++ {
			base += idx[i] * stride[i]
		}
		if rowCopy {
			n := int(inner) * es
			copy(dst[o:o+n], src[int(base)*es:])
			o += n
		} else {
			s := stride[nd-1]
			for j := int64(0); j < inner; j++ {
				p := int(base+j*s) * es
				copy(dst[o:o+es], src[p:p+es])
				o += es
			}
		}
		// Next index of the outer dimensions.
		i := nd - 2
		for ; i >= 0; i-- {
			idx[i]++
			if idx[i] < shape[i] {
				break
			}
			idx[i] = 0
		}
		if i < 0 {
			return
		}
	}
}

func swapBytes(b []byte, es int) {
	for i := 0; i+es <= len(b); i += es {
		for a, z := i, i+es-1; a < z; a, z = a+1, z-1 {
			b[a], b[z] = b[z], b[a]
		}
	}
}
