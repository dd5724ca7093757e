package nn

import (
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/roentgo/roentgo/tensor"
	"github.com/roentgo/roentgo/tensor/rng"
)

// Source supplies stored parameters by name.
type Source interface {
	// Keys returns the names of all stored tensors.
	Keys() []string
	// Info returns the stored dtype and shape of name without loading it; ok is
	// false when the source has no such key.
	Info(name string) (dt string, shape []int, ok bool)
	// Load returns the tensor stored under name. It returns an error when the key
	// is absent or the tensor cannot be represented (unsupported dtype, bad data).
	Load(name string) (*tensor.Tensor, error)
}

// MapSource is a Source over tensors held in memory, keyed by name. Load returns
// the map's tensors themselves (no copy).
type MapSource map[string]*tensor.Tensor

// Keys returns the map's keys in sorted order.
func (m MapSource) Keys() []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// Info returns the dtype name and shape of m[name].
func (m MapSource) Info(name string) (string, []int, bool) {
	t, ok := m[name]
	if !ok || t == nil {
		return "", nil, false
	}
	return t.DType().String(), t.Shape(), true
}

// Load returns m[name].
func (m MapSource) Load(name string) (*tensor.Tensor, error) {
	t, ok := m[name]
	if !ok || t == nil {
		return nil, fmt.Errorf("no tensor %q", name)
	}
	return t, nil
}

// Param is one named parameter created by a Builder.
type Param struct {
	Name   string
	Tensor *tensor.Tensor
}

// initKind enumerates the random initialisations.
type initKind uint8

const (
	initNormal initKind = iota
	initUniform
	initKaiming
	initConst
)

// Init says how a NewRandomBuilder fills a parameter. Builders over a Source
// ignore it.
type Init struct {
	kind    initKind
	a, b    float32 // normal: mean, std; uniform: from, to; const: a
	fanInOf []int   // kaiming: computed from the shape
}

// InitNormal draws from N(mean, std^2) (nn.Embedding's default is N(0, 1)).
func InitNormal(mean, std float32) Init { return Init{kind: initNormal, a: mean, b: std} }

// InitUniform draws from U[from, to).
func InitUniform(from, to float32) Init { return Init{kind: initUniform, a: from, b: to} }

// InitConst sets every element to v (norm weights 1, norm biases 0).
func InitConst(v float32) Init { return Init{kind: initConst, a: v} }

// InitKaimingUniform is PyTorch's default for nn.Linear and nn.Conv2d weights,
// kaiming_uniform_(a=sqrt(5)): U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with fan_in the
// product of all dimensions but the first (gain sqrt(2/(1+5)) times sqrt(3/fan_in)).
func InitKaimingUniform() Init { return Init{kind: initKaiming} }

// InitBias is PyTorch's default for the bias of a Linear or Conv2d layer whose
// weight has fan_in inputs per output: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
func InitBias(fanIn int) Init {
	bound := float32(1 / math.Sqrt(float64(max(fanIn, 1))))
	return InitUniform(-bound, bound)
}

// builderState is shared by a Builder and all its sub-builders.
type builderState struct {
	mu     sync.Mutex
	src    Source // nil: random initialisation
	seed   uint64
	dtype  tensor.DType
	convTo bool // convert float parameters to dtype (random builders, WithDType)

	params  []Param
	index   map[string]int
	errs    []error
	missing []string

	// Background fills of a random builder (FillInBackground).
	async bool
	fills sync.WaitGroup
	slots chan struct{} // bounds the fills running at once
}

// Builder hands out the parameters of a model by path (diffusers state-dict keys).
// Sub and Path return builders at longer prefixes that share one state: the
// parameter list, the error list and the record of used keys. A Builder is safe
// for concurrent use.
type Builder struct {
	prefix string
	st     *builderState
}

// NewBuilder returns a Builder that loads parameters from src as stored (F16 and
// BF16 tensors stay 16-bit).
func NewBuilder(src Source) *Builder {
	return &Builder{st: &builderState{src: src, index: map[string]int{}}}
}

// NewRandomBuilder returns a Builder that creates parameters with random values
// (PyTorch's default initialisations, given by each layer's constructor) stored
// as dtype dt (F32, F16 or BF16). The values of a parameter depend only on seed
// and its full name, not on the order of construction: the same model built
// twice with the same seed has the same weights. The generator is
// tensor/rng's (PyTorch's mt19937), seeded per parameter.
func NewRandomBuilder(seed uint64, dt tensor.DType) *Builder {
	if dt == tensor.I64 {
		panic("nn: NewRandomBuilder: dtype must be F32, F16 or BF16")
	}
	return &Builder{st: &builderState{seed: seed, dtype: dt, convTo: true, index: map[string]int{}}}
}

// WithDType makes the builder convert every floating-point parameter it loads to
// dt (e.g. F32 files to F16 to halve memory, or F16 files to F32). It affects b
// and every builder sharing its state, for parameters created afterwards, and
// returns b.
func (b *Builder) WithDType(dt tensor.DType) *Builder {
	if dt == tensor.I64 {
		panic("nn: WithDType: dtype must be F32, F16 or BF16")
	}
	b.st.mu.Lock()
	b.st.dtype, b.st.convTo = dt, true
	b.st.mu.Unlock()
	return b
}

// Prefix returns the builder's path, e.g. "down_blocks.1.attentions.0" ("" at the
// root).
func (b *Builder) Prefix() string { return b.prefix }

// Sub returns the builder at the child path part (a string or an integer index):
// b.Sub("down_blocks").Sub(1) is at "down_blocks.1".
func (b *Builder) Sub(part any) *Builder { return b.Path(part) }

// Path returns the builder at the child path made of parts (strings or integers),
// e.g. b.Path("attn2", "to_k"). A string part may itself contain dots.
func (b *Builder) Path(parts ...any) *Builder {
	p := b.prefix
	for _, x := range parts {
		var s string
		switch v := x.(type) {
		case string:
			s = v
		case int:
			s = strconv.Itoa(v)
		default:
			panic(fmt.Sprintf("nn: Builder.Path: part %v of type %T, want string or int", x, x))
		}
		if s == "" {
			panic("nn: Builder.Path: empty part")
		}
		if p == "" {
			p = s
		} else {
			p += "." + s
		}
	}
	return &Builder{prefix: p, st: b.st}
}

func (b *Builder) key(name string) string {
	if b.prefix == "" {
		return name
	}
	return b.prefix + "." + name
}

// Has reports whether the source holds name under b's path (always false for a
// random builder). Use it for parameters whose presence is not fixed by a config.
func (b *Builder) Has(name string) bool {
	if b.st.src == nil {
		return false
	}
	_, _, ok := b.st.src.Info(b.key(name))
	return ok
}

// Get returns the parameter name under b's path with the given shape; a random
// builder fills it from N(0, 1). See GetInit.
func (b *Builder) Get(name string, shape ...int) *tensor.Tensor {
	return b.GetInit(name, InitNormal(0, 1), shape...)
}

// GetInit returns the parameter name under b's path, which must have the given
// shape and a floating-point dtype. From a Source the tensor is loaded as stored
// (converted when WithDType was set); a random builder creates it filled as init
// says. Asking twice for the same key returns the same tensor.
//
// On a problem (missing key, other shape, unsupported dtype) it records an error
// naming the full key, the expected and the found shape, and returns nil: check
// Err or Check before using the model.
func (b *Builder) GetInit(name string, init Init, shape ...int) *tensor.Tensor {
	for _, d := range shape {
		if d < 0 {
			panic(fmt.Sprintf("nn: Builder.Get %q: negative size in shape %v", b.key(name), shape))
		}
	}
	key := b.key(name)
	st := b.st
	st.mu.Lock()
	defer st.mu.Unlock()
	want := tensor.Shape(shape)
	if t, seen := st.cached(key, want); seen {
		return t
	}
	var t *tensor.Tensor
	if st.src == nil && st.async {
		t = st.fillLater(key, init, want)
		st.markUsed(key, t)
		return t
	}
	if st.src == nil {
		t = randomParam(st.seed, key, init, want)
	} else {
		lt := st.load(key, want, fmt.Sprintf("shape %v", want))
		if lt == nil {
			return nil
		}
		if lt.DType() == tensor.I64 {
			st.errs = append(st.errs, fmt.Errorf("nn: %s: dtype %v, want a floating-point tensor (F32, F16 or BF16)", key, lt.DType()))
			st.markUsed(key, nil)
			return nil
		}
		t = lt
	}
	if st.convTo && t.DType() != st.dtype {
		c := t.To(st.dtype)
		if st.src == nil {
			t.Release()
		}
		t = c
	}
	st.markUsed(key, t)
	return t
}

// GetInt64 returns the I64 buffer name under b's path with the given shape (e.g.
// CLIP's position_ids), with the error handling of GetInit. A random builder
// returns zeros.
func (b *Builder) GetInt64(name string, shape ...int) *tensor.Tensor {
	key := b.key(name)
	st := b.st
	st.mu.Lock()
	defer st.mu.Unlock()
	want := tensor.Shape(shape)
	if t, seen := st.cached(key, want); seen {
		return t
	}
	var t *tensor.Tensor
	if st.src == nil {
		t = tensor.Zeros(tensor.I64, shape...)
	} else {
		lt := st.load(key, want, fmt.Sprintf("I64 %v", want))
		if lt == nil {
			return nil
		}
		if lt.DType() != tensor.I64 {
			st.errs = append(st.errs, fmt.Errorf("nn: %s: dtype %v, want I64", key, lt.DType()))
			st.markUsed(key, nil)
			return nil
		}
		t = lt
	}
	st.markUsed(key, t)
	return t
}

// Info returns the stored dtype name ("F32", "F16", "BF16", "I64", or another
// safetensors name such as "F64" or "I32") and shape of name under b's path,
// without loading it; ok is false when the source lacks it and always for a
// random builder.
func (b *Builder) Info(name string) (dt string, shape []int, ok bool) {
	if b.st.src == nil {
		return "", nil, false
	}
	return b.st.src.Info(b.key(name))
}

// GetStored returns the tensor name under b's path as the source stores it: any
// dtype the source can load (F32, F16, BF16 or I64), not converted by WithDType.
// It is meant for buffers whose stored dtype varies between files, such as
// CLIP's position_ids (I64 in most files, F16 or F32 in some conversions). The
// error handling is GetInit's: a missing key, another shape or an unreadable
// tensor is recorded as an error and the result is nil. A random builder
// stores nothing: it returns nil and records nothing (ask Has or Info first).
func (b *Builder) GetStored(name string, shape ...int) *tensor.Tensor {
	st := b.st
	if st.src == nil {
		return nil
	}
	key := b.key(name)
	st.mu.Lock()
	defer st.mu.Unlock()
	want := tensor.Shape(shape)
	if t, seen := st.cached(key, want); seen {
		return t
	}
	t := st.load(key, want, fmt.Sprintf("shape %v", want))
	if t == nil {
		return nil
	}
	st.markUsed(key, t)
	return t
}

// Skip marks the stored tensor name under b's path as used without loading it,
// so that Check does not list it as unused: for a buffer the model does not
// read from the file (it recomputes it, or the file stores it in a dtype the
// tensor package does not compute with, such as F64). When shape is given, a
// stored tensor of another shape is recorded as an error, as GetInit does. A
// source without name, or a random builder, records nothing.
func (b *Builder) Skip(name string, shape ...int) {
	st := b.st
	if st.src == nil {
		return
	}
	key := b.key(name)
	_, found, ok := st.src.Info(key)
	if !ok {
		return
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if _, done := st.index[key]; done {
		return
	}
	st.index[key] = skippedKey
	if shape != nil && !tensor.Shape(shape).Equal(found) {
		st.errs = append(st.errs, fmt.Errorf("nn: %s: shape %v in the source, want %v", key, tensor.Shape(found), tensor.Shape(shape)))
	}
}

// load reads key from the source after checking that the source holds it with
// shape want, and that the loaded tensor has that shape. On a problem it
// records an error (what describes the expected tensor for a missing key) and
// returns nil.
// The caller holds st.mu.
func (st *builderState) load(key string, want tensor.Shape, what string) *tensor.Tensor {
	dt, found, ok := st.src.Info(key)
	if !ok {
		st.missing = append(st.missing, key)
		st.errs = append(st.errs, fmt.Errorf("nn: %s: missing (want %s)", key, what))
		return nil
	}
	if !want.Equal(found) {
		st.errs = append(st.errs, fmt.Errorf("nn: %s: shape %v in the source, want %v", key, tensor.Shape(found), want))
		st.markUsed(key, nil)
		return nil
	}
	lt, err := st.src.Load(key)
	if err != nil {
		st.errs = append(st.errs, fmt.Errorf("nn: %s (%s %v): %w", key, dt, want, err))
		st.markUsed(key, nil)
		return nil
	}
	if !lt.Shape().Equal(want) {
		st.errs = append(st.errs, fmt.Errorf("nn: %s: shape %v in the source, want %v", key, lt.Shape(), want))
		st.markUsed(key, nil)
		return nil
	}
	return lt
}

// Values of builderState.index for keys without a parameter.
const (
	failedKey  = -1 // the load failed and an error was recorded
	skippedKey = -2 // Skip marked the key as used
)

// cached returns the tensor already created for key, with seen true, when key
// was asked for before: nil when that failed (already reported), or with a new
// error when the shape differs or the key was skipped. seen is false for a
// new key. The caller holds st.mu.
func (st *builderState) cached(key string, want tensor.Shape) (t *tensor.Tensor, seen bool) {
	i, ok := st.index[key]
	switch {
	case !ok:
		return nil, false
	case i == skippedKey:
		st.errs = append(st.errs, fmt.Errorf("nn: %s: requested after Skip", key))
		st.index[key] = failedKey
		return nil, true
	case i < 0:
		return nil, true // already reported
	}
	t = st.params[i].Tensor
	if !t.Shape().Equal(want) {
		st.errs = append(st.errs, fmt.Errorf("nn: %s: requested again with shape %v, first as %v", key, want, t.Shape()))
		return nil, true
	}
	return t, true
}

// markUsed records key as consumed; a nil t (a failed load) is not a parameter.
// The caller holds st.mu.
func (st *builderState) markUsed(key string, t *tensor.Tensor) {
	if t == nil {
		st.index[key] = failedKey
		return
	}
	if i, ok := st.index[key]; ok && i >= 0 {
		return
	}
	st.index[key] = len(st.params)
	st.params = append(st.params, Param{Name: key, Tensor: tensor.Persist(t)}) // a model built inside a scope keeps its weights
}

// FillInBackground makes a random builder fill the parameters it creates on
// background goroutines (as many at once as GOMAXPROCS), so that building a
// large random model uses every core; the values are the same as without it.
// GetInit then returns tensors whose values may not be there yet: call Wait
// (or Err, Check or Params, which wait) before reading them. It returns b, and
// changes nothing for a builder over a Source.
func (b *Builder) FillInBackground() *Builder {
	st := b.st
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.src == nil && !st.async {
		st.async = true
		st.slots = make(chan struct{}, runtime.GOMAXPROCS(0))
	}
	return b
}

// Wait waits until every parameter filled in the background is ready.
func (b *Builder) Wait() { b.st.fills.Wait() }

// fillLater returns a tensor for the random parameter key that a background
// goroutine fills. st.mu held.
func (st *builderState) fillLater(key string, init Init, shape tensor.Shape) *tensor.Tensor {
	dt := tensor.F32
	if st.convTo {
		dt = st.dtype
	}
	t := tensor.Empty(dt, shape...)
	seed := st.seed
	st.fills.Add(1)
	go func() {
		defer st.fills.Done()
		st.slots <- struct{}{}
		defer func() { <-st.slots }()
		r := randomParam(seed, key, init, shape)
		t.CopyFrom(r)
		r.Release()
	}()
	return t
}

// Err returns every problem recorded so far (missing keys, wrong shapes,
// unreadable tensors), joined, or nil. It waits for background fills.
func (b *Builder) Err() error {
	b.Wait()
	b.st.mu.Lock()
	defer b.st.mu.Unlock()
	if len(b.st.errs) == 0 {
		return nil
	}
	return errors.Join(b.st.errs...)
}

// Missing returns the keys that were asked for but absent from the source.
func (b *Builder) Missing() []string {
	b.st.mu.Lock()
	defer b.st.mu.Unlock()
	return slices.Clone(b.st.missing)
}

// Unused returns the source's keys that no constructor asked for, sorted (none
// for a random builder).
func (b *Builder) Unused() []string {
	st := b.st
	if st.src == nil {
		return nil
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	var un []string
	for _, k := range st.src.Keys() {
		if _, ok := st.index[k]; !ok {
			un = append(un, k)
		}
	}
	slices.Sort(un)
	return un
}

// Check is the strict report after constructing a model: it returns nil when
// every requested parameter loaded and every key of the source was used, and
// otherwise one error that counts and lists the problems (recorded errors, then
// the unused keys).
func (b *Builder) Check() error {
	b.Wait()
	b.st.mu.Lock()
	errs := slices.Clone(b.st.errs)
	nMissing := len(b.st.missing)
	b.st.mu.Unlock()
	unused := b.Unused()
	if len(errs) == 0 && len(unused) == 0 {
		return nil
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "nn: parameters do not match the model: %d missing, %d other errors, %d unused keys",
		nMissing, len(errs)-nMissing, len(unused))
	for _, e := range errs {
		sb.WriteString("\n  ")
		sb.WriteString(e.Error())
	}
	const maxList = 50
	for i, k := range unused {
		if i == maxList {
			fmt.Fprintf(&sb, "\n  ... and %d more unused keys", len(unused)-maxList)
			break
		}
		fmt.Fprintf(&sb, "\n  nn: %s: unused (in the source, not in the model)", k)
	}
	return errors.New(sb.String())
}

// Params returns every parameter created so far (by this builder and all that
// share its state), in order of creation.
func (b *Builder) Params() []Param {
	b.Wait()
	b.st.mu.Lock()
	defer b.st.mu.Unlock()
	return slices.Clone(b.st.params)
}

// randomParam returns an F32 tensor of the given shape filled as init says, from
// a generator seeded by seed and the key.
func randomParam(seed uint64, key string, init Init, shape tensor.Shape) *tensor.Tensor {
	n := shape.Numel()
	data := make([]float32, n)
	h := fnv.New64a()
	h.Write([]byte(key))
	g := rng.New(splitmix64(seed ^ h.Sum64()))
	switch init.kind {
	case initNormal:
		g.Normal(data, init.a, init.b)
	case initUniform:
		g.Uniform(data, init.a, init.b)
	case initKaiming:
		fanIn := 1
		for _, d := range shape[min(1, len(shape)):] {
			fanIn *= d
		}
		bound := float32(1 / math.Sqrt(float64(max(fanIn, 1))))
		g.Uniform(data, -bound, bound)
	case initConst:
		for i := range data {
			data[i] = init.a
		}
	}
	return tensor.FromFloat32(data, shape...)
}

// splitmix64 scrambles a 64-bit seed (Steele et al., SplitMix64 finaliser).
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}
