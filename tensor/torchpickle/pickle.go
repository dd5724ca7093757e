package torchpickle

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
)

// Values produced by the unpickler. Python None is nil; bool, int64, *big.Int,
// float64, string and []byte stand for themselves.
type (
	// pyTuple is an immutable Python tuple.
	pyTuple []any
	// pyList is a mutable Python list.
	pyList struct{ items []any }
	// pySet is a Python set or frozenset (items in pickle order).
	pySet struct{ items []any }
	// pyDict is an insertion-ordered Python dict (also OrderedDict).
	pyDict struct {
		keys, vals []any
		index      map[any]int // hashable keys -> position
		attrs      any         // state given by BUILD (OrderedDict._metadata)
	}
	// pyGlobal is a reference to module.name; it is never imported.
	pyGlobal struct{ module, name string }
	// pyObject is an opaque result of calling or instantiating something that
	// is not allow-listed. It only records the pickled data.
	pyObject struct {
		callable any
		args     any
		state    any
		items    []any
	}
	// pyStorage is a storage persistent id: ('storage', type, key, location, numel).
	pyStorage struct {
		dtype    dtypeInfo
		key      string
		location string
		numel    int64
	}
	// pyTensor is the result of torch._utils._rebuild_tensor_v2.
	pyTensor struct {
		storage *pyStorage
		offset  int64
		shape   []int64
		stride  []int64
	}
)

func (g pyGlobal) String() string { return g.module + "." + g.name }

// get returns the value stored under a string key.
func (d *pyDict) get(key string) (any, bool) {
	if i, ok := d.index[key]; ok {
		return d.vals[i], true
	}
	return nil, false
}

// set inserts or replaces key. Unhashable keys (tuples, big ints) are appended.
func (d *pyDict) set(k, v any) {
	h, ok := hashKey(k)
	if ok {
		if d.index == nil {
			d.index = make(map[any]int)
		}
		if i, dup := d.index[h]; dup {
			d.vals[i] = v
			return
		}
		d.index[h] = len(d.keys)
	}
	d.keys = append(d.keys, k)
	d.vals = append(d.vals, v)
}

func hashKey(k any) (any, bool) {
	switch k.(type) {
	case nil, bool, int64, float64, string, pyGlobal:
		return k, true
	}
	return nil, false
}

// pickleError is the panic value used inside the unpickler; unpickle turns it
// into an error. Any other panic is a bug and propagates.
type pickleError struct{ err error }

func fail(format string, args ...any) {
	panic(pickleError{fmt.Errorf(format, args...)})
}

// denied are module prefixes whose globals are refused anywhere in a pickle.
var denied = []string{
	"os", "posix", "nt", "subprocess", "builtins", "__builtin__", "sys", "shutil",
	"socket", "runpy", "importlib", "pickle", "_pickle", "pty", "webbrowser",
	"code", "ctypes", "multiprocessing", "signal", "pdb", "commands", "popen2",
	"marshal",
}

func isDenied(module string) bool {
	for _, d := range denied {
		if module == d || strings.HasPrefix(module, d+".") {
			return true
		}
	}
	return false
}

// unpickler is a restricted pickle virtual machine (protocols 0..5, the
// opcodes torch.save and ordinary Python containers use).
type unpickler struct {
	data  []byte
	pos   int
	stack []any
	marks []int
	memo  map[uint32]any
	// resolve turns a persistent id into a value (BINPERSID).
	resolve func(pid any) any
	// call interprets REDUCE / NEWOBJ of an allow-listed global; ok=false
	// means "not allow-listed": the caller builds an opaque record.
	call func(fn pyGlobal, args pyTuple) (v any, ok bool)
}

// unpickle runs data and returns the object STOP returns.
func unpickle(data []byte, resolve func(any) any, call func(pyGlobal, pyTuple) (any, bool)) (v any, err error) {
	u := &unpickler{data: data, memo: make(map[uint32]any), resolve: resolve, call: call}
	defer func() {
		if r := recover(); r != nil {
			pe, ok := r.(pickleError)
			if !ok {
				panic(r)
			}
			v, err = nil, pe.err
		}
	}()
	return u.run(), nil
}

func (u *unpickler) need(n int) []byte {
	if n < 0 || n > len(u.data)-u.pos {
		fail("pickle truncated at byte %d: need %d more bytes, %d left", u.pos, n, len(u.data)-u.pos)
	}
	b := u.data[u.pos : u.pos+n]
	u.pos += n
	return b
}

func (u *unpickler) line() string {
	i := u.pos
	for i < len(u.data) && u.data[i] != '\n' {
		i++
	}
	if i == len(u.data) {
		fail("pickle truncated at byte %d: unterminated text argument", u.pos)
	}
	s := string(u.data[u.pos:i])
	u.pos = i + 1
	return s
}

func (u *unpickler) push(v any) { u.stack = append(u.stack, v) }

func (u *unpickler) pop() any {
	base := 0
	if len(u.marks) > 0 {
		base = u.marks[len(u.marks)-1]
	}
	if len(u.stack) <= base {
		fail("malformed pickle: stack underflow at byte %d", u.pos)
	}
	v := u.stack[len(u.stack)-1]
	u.stack = u.stack[:len(u.stack)-1]
	return v
}

func (u *unpickler) top() any {
	base := 0
	if len(u.marks) > 0 {
		base = u.marks[len(u.marks)-1]
	}
	if len(u.stack) <= base {
		fail("malformed pickle: stack underflow at byte %d", u.pos)
	}
	return u.stack[len(u.stack)-1]
}

// popMark pops everything above the last MARK and the mark itself.
func (u *unpickler) popMark() []any {
	if len(u.marks) == 0 {
		fail("malformed pickle: no MARK before byte %d", u.pos)
	}
	m := u.marks[len(u.marks)-1]
	u.marks = u.marks[:len(u.marks)-1]
	items := append([]any(nil), u.stack[m:]...)
	u.stack = u.stack[:m]
	return items
}

func (u *unpickler) memoGet(i uint32) any {
	v, ok := u.memo[i]
	if !ok {
		fail("malformed pickle: memo key %d is not defined (byte %d)", i, u.pos)
	}
	return v
}

func (u *unpickler) global(module, name string) any {
	if isDenied(module) {
		fail("refusing pickle: it references %s.%s, which Python's pickle would run (not allow-listed)", module, name)
	}
	return pyGlobal{module, name}
}

// apply implements REDUCE and NEWOBJ: allow-listed globals are interpreted,
// anything else becomes an opaque record.
func (u *unpickler) apply(fn, args any) any {
	t, ok := args.(pyTuple)
	if !ok {
		fail("malformed pickle: call arguments are %s, expected a tuple (byte %d)", describe(args), u.pos)
	}
	if g, ok := fn.(pyGlobal); ok && u.call != nil {
		if v, ok := u.call(g, t); ok {
			return v
		}
	}
	return &pyObject{callable: fn, args: t}
}

func (u *unpickler) run() any {
	for {
		if u.pos >= len(u.data) {
			fail("pickle truncated: no STOP opcode (read %d bytes)", len(u.data))
		}
		op := u.data[u.pos]
		u.pos++
		switch op {
		case 0x80: // PROTO
			p := u.need(1)[0]
			if p > 5 {
				fail("unsupported pickle protocol %d (expected 0..5)", p)
			}
		case 0x95: // FRAME
			u.need(8)
		case '.': // STOP
			return u.pop()
		case '(': // MARK
			u.marks = append(u.marks, len(u.stack))
		case '0': // POP
			if len(u.marks) > 0 && u.marks[len(u.marks)-1] == len(u.stack) {
				u.marks = u.marks[:len(u.marks)-1]
			} else {
				u.pop()
			}
		case '1': // POP_MARK
			u.popMark()
		case '2': // DUP
			u.push(u.top())
		case 'N':
			u.push(nil)
		case 0x88:
			u.push(true)
		case 0x89:
			u.push(false)
		case 'J': // BININT
			u.push(int64(int32(binary.LittleEndian.Uint32(u.need(4)))))
		case 'K': // BININT1
			u.push(int64(u.need(1)[0]))
		case 'M': // BININT2
			u.push(int64(binary.LittleEndian.Uint16(u.need(2))))
		case 0x8a: // LONG1
			n := int(u.need(1)[0])
			u.push(decodeLong(u.need(n)))
		case 0x8b: // LONG4
			n := int32(binary.LittleEndian.Uint32(u.need(4)))
			if n < 0 {
				fail("malformed pickle: negative LONG4 length at byte %d", u.pos)
			}
			u.push(decodeLong(u.need(int(n))))
		case 'I': // INT (text)
			s := u.line()
			switch s {
			case "00":
				u.push(false)
			case "01":
				u.push(true)
			default:
				v, err := strconv.ParseInt(s, 10, 64)
				if err != nil {
					fail("malformed pickle: bad INT %q", s)
				}
				u.push(v)
			}
		case 'L': // LONG (text)
			s := strings.TrimSuffix(u.line(), "L")
			b, ok := new(big.Int).SetString(s, 10)
			if !ok {
				fail("malformed pickle: bad LONG %q", s)
			}
			u.push(normInt(b))
		case 'G': // BINFLOAT
			u.push(math.Float64frombits(binary.BigEndian.Uint64(u.need(8))))
		case 'F': // FLOAT (text)
			s := u.line()
			v, err := strconv.ParseFloat(s, 64)
			if err != nil {
				fail("malformed pickle: bad FLOAT %q", s)
			}
			u.push(v)
		case 'X': // BINUNICODE
			n := binary.LittleEndian.Uint32(u.need(4))
			u.push(string(u.need(int(min(n, math.MaxInt32)))))
		case 0x8c: // SHORT_BINUNICODE
			n := u.need(1)[0]
			u.push(string(u.need(int(n))))
		case 0x8d: // BINUNICODE8
			n := binary.LittleEndian.Uint64(u.need(8))
			u.push(string(u.need(int(min(n, math.MaxInt32)))))
		case 'T': // BINSTRING (Python 2 str, decoded as Latin-1-ish bytes)
			n := int32(binary.LittleEndian.Uint32(u.need(4)))
			u.push(string(u.need(int(n))))
		case 'U': // SHORT_BINSTRING
			n := u.need(1)[0]
			u.push(string(u.need(int(n))))
		case 'B': // BINBYTES
			n := binary.LittleEndian.Uint32(u.need(4))
			u.push(append([]byte(nil), u.need(int(min(n, math.MaxInt32)))...))
		case 'C': // SHORT_BINBYTES
			n := u.need(1)[0]
			u.push(append([]byte(nil), u.need(int(n))...))
		case 0x8e, 0x96: // BINBYTES8, BYTEARRAY8
			n := binary.LittleEndian.Uint64(u.need(8))
			u.push(append([]byte(nil), u.need(int(min(n, math.MaxInt32)))...))
		case '}': // EMPTY_DICT
			u.push(&pyDict{})
		case 'd': // DICT
			items := u.popMark()
			if len(items)%2 != 0 {
				fail("malformed pickle: DICT with an odd number of items at byte %d", u.pos)
			}
			d := &pyDict{}
			for i := 0; i < len(items); i += 2 {
				d.set(items[i], items[i+1])
			}
			u.push(d)
		case ']': // EMPTY_LIST
			u.push(&pyList{})
		case 'l': // LIST
			u.push(&pyList{items: u.popMark()})
		case ')': // EMPTY_TUPLE
			u.push(pyTuple{})
		case 't': // TUPLE
			u.push(pyTuple(u.popMark()))
		case 0x85, 0x86, 0x87: // TUPLE1..3
			n := int(op-0x85) + 1
			t := make(pyTuple, n)
			for i := n - 1; i >= 0; i-- {
				t[i] = u.pop()
			}
			u.push(t)
		case 0x8f: // EMPTY_SET
			u.push(&pySet{})
		case 0x90: // ADDITEMS
			items := u.popMark()
			s, ok := u.top().(*pySet)
			if !ok {
				fail("malformed pickle: ADDITEMS on %s at byte %d", describe(u.top()), u.pos)
			}
			s.items = append(s.items, items...)
		case 0x91: // FROZENSET
			u.push(&pySet{items: u.popMark()})
		case 's': // SETITEM
			v := u.pop()
			k := u.pop()
			u.setItems(u.top(), []any{k, v})
		case 'u': // SETITEMS
			items := u.popMark()
			if len(items)%2 != 0 {
				fail("malformed pickle: SETITEMS with an odd number of items at byte %d", u.pos)
			}
			u.setItems(u.top(), items)
		case 'a': // APPEND
			v := u.pop()
			u.appendItems(u.top(), []any{v})
		case 'e': // APPENDS
			items := u.popMark()
			u.appendItems(u.top(), items)
		case 'q': // BINPUT
			u.memo[uint32(u.need(1)[0])] = u.top()
		case 'r': // LONG_BINPUT
			u.memo[binary.LittleEndian.Uint32(u.need(4))] = u.top()
		case 0x94: // MEMOIZE
			u.memo[uint32(len(u.memo))] = u.top()
		case 'p': // PUT (text)
			s := u.line()
			i, err := strconv.ParseUint(s, 10, 32)
			if err != nil {
				fail("malformed pickle: bad PUT index %q", s)
			}
			u.memo[uint32(i)] = u.top()
		case 'h': // BINGET
			u.push(u.memoGet(uint32(u.need(1)[0])))
		case 'j': // LONG_BINGET
			u.push(u.memoGet(binary.LittleEndian.Uint32(u.need(4))))
		case 'g': // GET (text)
			s := u.line()
			i, err := strconv.ParseUint(s, 10, 32)
			if err != nil {
				fail("malformed pickle: bad GET index %q", s)
			}
			u.push(u.memoGet(uint32(i)))
		case 'c': // GLOBAL
			module := u.line()
			name := u.line()
			u.push(u.global(module, name))
		case 0x93: // STACK_GLOBAL
			name, ok1 := u.pop().(string)
			module, ok2 := u.pop().(string)
			if !ok1 || !ok2 {
				fail("malformed pickle: STACK_GLOBAL needs two strings (byte %d)", u.pos)
			}
			u.push(u.global(module, name))
		case 'R': // REDUCE
			args := u.pop()
			fn := u.pop()
			u.push(u.apply(fn, args))
		case 0x81: // NEWOBJ
			args := u.pop()
			cls := u.pop()
			u.push(u.apply(cls, args))
		case 0x92: // NEWOBJ_EX
			kwargs := u.pop()
			args := u.pop()
			cls := u.pop()
			o := u.apply(cls, args)
			if obj, ok := o.(*pyObject); ok {
				obj.state = kwargs
			}
			u.push(o)
		case 'b': // BUILD
			state := u.pop()
			switch t := u.top().(type) {
			case *pyObject:
				t.state = state
			case *pyDict:
				t.attrs = state
			default:
				fail("malformed pickle: BUILD on %s at byte %d", describe(t), u.pos)
			}
		case 'Q': // BINPERSID
			pid := u.pop()
			if u.resolve == nil {
				fail("malformed pickle: unexpected persistent id")
			}
			u.push(u.resolve(pid))
		case 'P': // PERSID
			s := u.line()
			if u.resolve == nil {
				fail("malformed pickle: unexpected persistent id")
			}
			u.push(u.resolve(s))
		default:
			fail("malformed pickle: unsupported or invalid opcode 0x%02x at byte %d", op, u.pos-1)
		}
	}
}

func (u *unpickler) setItems(target any, items []any) {
	switch t := target.(type) {
	case *pyDict:
		for i := 0; i < len(items); i += 2 {
			t.set(items[i], items[i+1])
		}
	case *pyObject:
		t.items = append(t.items, items...)
	default:
		fail("malformed pickle: SETITEM on %s at byte %d", describe(target), u.pos)
	}
}

func (u *unpickler) appendItems(target any, items []any) {
	switch t := target.(type) {
	case *pyList:
		t.items = append(t.items, items...)
	case *pyObject:
		t.items = append(t.items, items...)
	default:
		fail("malformed pickle: APPEND on %s at byte %d", describe(target), u.pos)
	}
}

// decodeLong decodes a little-endian two's-complement integer.
func decodeLong(b []byte) any {
	if len(b) == 0 {
		return int64(0)
	}
	if len(b) <= 8 {
		var v uint64
		for i := len(b) - 1; i >= 0; i-- {
			v = v<<8 | uint64(b[i])
		}
		if shift := uint(64 - 8*len(b)); shift > 0 {
			return int64(v<<shift) >> shift
		}
		return int64(v)
	}
	be := make([]byte, len(b))
	for i := range b {
		be[len(b)-1-i] = b[i]
	}
	x := new(big.Int).SetBytes(be)
	if b[len(b)-1]&0x80 != 0 {
		x.Sub(x, new(big.Int).Lsh(big.NewInt(1), uint(8*len(b))))
	}
	return normInt(x)
}

func normInt(x *big.Int) any {
	if x.IsInt64() {
		return x.Int64()
	}
	return x
}

// describe names a value's Python type for error messages.
func describe(v any) string {
	switch t := v.(type) {
	case nil:
		return "None"
	case bool:
		return "a bool"
	case int64, *big.Int:
		return "an int"
	case float64:
		return "a float"
	case string:
		return "a str"
	case []byte:
		return "bytes"
	case pyTuple:
		return "a tuple"
	case *pyList:
		return "a list"
	case *pySet:
		return "a set"
	case *pyDict:
		return "a dict"
	case pyGlobal:
		return "the global " + t.String()
	case *pyObject:
		return "an object built by " + callableName(t)
	case *pyStorage:
		return "a storage"
	case *pyTensor:
		return "a tensor"
	}
	return fmt.Sprintf("%T", v)
}

// callableName names the global at the root of an opaque object's constructor.
func callableName(o *pyObject) string {
	for depth := 0; depth < 64; depth++ {
		switch c := o.callable.(type) {
		case pyGlobal:
			return c.String()
		case *pyObject:
			o = c
			continue
		default:
			return describe(c)
		}
	}
	return "a deeply nested call"
}
