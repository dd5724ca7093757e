package tensor

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// Scopes: lifetimes by block, not by handle.
//
// A scope is an arena of tensor handles. While Scope(f) runs f, every handle
// made on the calling goroutine (an op's output, a view, a constructor's
// result) belongs to the innermost open scope of that goroutine. When f
// returns, the scope releases every handle it owns except f's results, which
// move to the enclosing scope (or, outside any scope, to the caller, who may
// Release them or leave them to the garbage collector). A block's forward is
// then written as the paper writes it,
//
//	y := tensor.Scope(func() *tensor.Tensor {
//		h := conv1(silu(norm1(x)))
//		return conv2(silu(norm2(h))).AddInPlace(x)
//	})
//
// and its intermediates go back to the buffer pool when the block ends.
//
// Rules:
//   - Release stays legal inside a scope (and idempotent): a scope skips the
//     handles released before it ends.
//   - A result may be anything: a tensor made in the scope, a view of one, an
//     input, nil. Only the handles the scope owns are released.
//   - Tensors that must outlive the scope without being returned move out
//     with Escape (to the enclosing scope: values handed to an outer
//     structure) or Persist (out of every scope: a module's cache, state kept
//     across calls).
//   - Scope(f, consume...) also frees the consumed tensors at its end (unless
//     f returns them) when a scope enclosing it owns them: the previous value
//     of a chain (h = block(h)) goes as soon as the next exists, a skip
//     connection as soon as it is concatenated, as an explicit Release would
//     do. Consume only values whose last use is in f. Tensors that no open
//     scope of the goroutine owns (made outside every scope: the caller's
//     inputs to a model) are never freed by a scope.
//   - A panic inside f releases everything the scope owns before it
//     propagates.
//   - Autograd is unaffected: the values a recorded op saves for its backward
//     rule are separate handles that no scope owns, and Backward runs outside
//     every scope (the gradients it makes are its own business).
//   - Scopes belong to a goroutine: a tensor made on another goroutine, even
//     while the first has a scope open, is not captured by it. Work handed to
//     other goroutines opens its own scopes there, and its results reach the
//     scope's goroutine unowned.
//
// Cost: with no scope open anywhere, one atomic load per handle. With a scope
// open, each new handle also costs the goroutine's identity (one instruction
// on amd64 and arm64, a runtime.Stack call of a few microseconds elsewhere),
// finding the goroutine's innermost scope (one atomic load when the goroutine
// is the one that last opened or closed a scope, else a mutex-guarded map
// lookup) and an append; opening and closing a scope costs about as much as
// two handles (BenchmarkScopeHandle).

// scope is an open scope: the handles it owns (those whose sc points to it;
// an entry whose sc has moved on is skipped) and the enclosing scope.
type scope struct {
	gid     atomic.Uintptr // the goroutine that opened it (read by others through hot)
	parent  *scope         // enclosing scope of the same goroutine, or nil
	owned   []*Tensor
	barrier bool // captures nothing (Backward): results leave every scope
}

var (
	// scopesOpen counts the open scopes of all goroutines, so that making a
	// handle costs one atomic load while none is open.
	scopesOpen atomic.Int64
	scopesMu   sync.Mutex
	// scopeTop maps a goroutine to its innermost open scope.
	scopeTop = map[uintptr]*scope{}
	// hot is nil or the innermost open scope of the goroutine that last
	// opened or closed one (updated with scopeTop, under scopesMu): the
	// lock-free path of currentScope for that goroutine.
	hot atomic.Pointer[scope]
	// scopeFree recycles scopes (and their owned slices).
	scopeFree = sync.Pool{New: func() any { return new(scope) }}
)

// currentScope returns the innermost open scope of the calling goroutine,
// or nil.
func currentScope() *scope {
	if scopesOpen.Load() == 0 {
		return nil
	}
	id := goroutineID()
	// A scope whose goroutine is the caller's stays its innermost until the
	// caller itself opens or closes one, so this check cannot go stale.
	if s := hot.Load(); s != nil && s.gid.Load() == id {
		return s
	}
	scopesMu.Lock()
	s := scopeTop[id]
	scopesMu.Unlock()
	return s
}

// track makes the new handle t belong to the calling goroutine's innermost
// scope, if any (called by wrap for every handle).
func track(t *Tensor) {
	s := currentScope()
	if s == nil || s.barrier {
		return
	}
	t.sc = s
	s.owned = append(s.owned, t)
}

// openScope pushes a new scope on the calling goroutine and moves into it
// the consumed tensors that an enclosing scope (up to a barrier) owns.
func openScope(barrier bool, consume []*Tensor) *scope {
	id := goroutineID()
	s := scopeFree.Get().(*scope)
	s.gid.Store(id)
	s.barrier = barrier
	scopesMu.Lock()
	s.parent = scopeTop[id]
	scopeTop[id] = s
	hot.Store(s)
	scopesMu.Unlock()
	scopesOpen.Add(1)
	for _, t := range consume {
		if t == nil || t.sc == nil {
			continue
		}
		for p := s.parent; p != nil && !p.barrier; p = p.parent {
			if t.sc == p {
				t.sc = s
				s.owned = append(s.owned, t)
				break
			}
		}
	}
	return s
}

// close ends s: the results it owns move to the enclosing scope, everything
// else it owns is released, and the goroutine's innermost scope becomes the
// enclosing one.
func (s *scope) close(results ...*Tensor) {
	for _, t := range results {
		if t != nil && t.sc == s {
			s.escape(t)
		}
	}
	for i, t := range s.owned {
		if t.sc == s {
			t.sc = nil
			t.Release()
		}
		s.owned[i] = nil
	}
	id := s.gid.Load()
	scopesMu.Lock()
	if s.parent != nil {
		scopeTop[id] = s.parent
	} else {
		delete(scopeTop, id)
	}
	if hot.Load() == s {
		hot.Store(s.parent)
	}
	s.gid.Store(0)
	scopesMu.Unlock()
	scopesOpen.Add(-1)
	s.parent, s.barrier, s.owned = nil, false, s.owned[:0]
	scopeFree.Put(s)
}

// escape moves t, which s owns, to the enclosing scope (none: to nobody).
func (s *scope) escape(t *Tensor) {
	p := s.parent
	if p == nil || p.barrier {
		t.sc = nil
		return
	}
	t.sc = p
	p.owned = append(p.owned, t)
}

// Scope runs f in a new scope on the calling goroutine and returns its
// result: every tensor handle made inside (on this goroutine) is released
// when f returns or panics, except the result, which moves to the enclosing
// scope (see the package documentation, "Scopes"). The tensors in consume
// that an enclosing scope owns move into the new scope first, so that they
// too are freed at its end unless returned: pass the values whose last use
// is in f (the previous value of a chain, a skip connection f
// concatenates).
func Scope(f func() *Tensor, consume ...*Tensor) (out *Tensor) {
	s := openScope(false, consume)
	defer func() { s.close(out) }()
	return f()
}

// Scope2 is Scope for a block with two results.
func Scope2(f func() (*Tensor, *Tensor), consume ...*Tensor) (a, b *Tensor) {
	s := openScope(false, consume)
	defer func() { s.close(a, b) }()
	return f()
}

// ScopeN is Scope for a block with any number of results.
func ScopeN(f func() []*Tensor, consume ...*Tensor) (out []*Tensor) {
	s := openScope(false, consume)
	defer func() { s.close(out...) }()
	return f()
}

// Do is Scope for a block without tensor results (what must survive it
// leaves with Escape or Persist).
func Do(f func(), consume ...*Tensor) {
	s := openScope(false, consume)
	defer s.close()
	f()
}

// Chain returns fs[n-1](...fs[0](x)...) with each link in a scope that
// consumes its input (see Scope): every intermediate is freed as soon as
// the next exists, and so is x when a scope enclosing the call owns it. It
// is the loop h = f(h) of a model (layers, blocks); pass x only when the
// chain is its last use.
func Chain(x *Tensor, fs ...func(*Tensor) *Tensor) *Tensor {
	for _, f := range fs {
		x = Scope(func() *Tensor { return f(x) }, x)
	}
	return x
}

// Escape moves each of ts that the calling goroutine's innermost scope owns
// to the enclosing scope, as if the block had returned it: for values handed
// to a structure of the caller (a list of skip connections). Other tensors
// are left alone.
func Escape(ts ...*Tensor) {
	s := currentScope()
	if s == nil {
		return
	}
	for _, t := range ts {
		if t != nil && t.sc == s {
			s.escape(t)
		}
	}
}

// Persist takes t out of the scope that owns it, whichever it is, so that
// no scope releases it: for tensors kept across calls (a module's cache).
// It returns t. Call it on the goroutine that made t.
func Persist(t *Tensor) *Tensor {
	if t != nil {
		t.sc = nil
	}
	return t
}

// Unscoped runs f with no scope capturing the handles it makes (a barrier
// on the goroutine's scope stack): for code called from inside a block
// whose tensors belong elsewhere, such as a user's callback that keeps
// copies of intermediates, and Backward, whose gradients outlive the
// caller's blocks. Scopes opened inside f work as usual; their results
// leave every scope, and f cannot consume tensors of the scopes outside.
func Unscoped(f func()) {
	if scopesOpen.Load() == 0 {
		f()
		return
	}
	s := openScope(true, nil)
	defer s.close()
	f()
}

// goroutineID returns an identifier of the calling goroutine that no other
// live goroutine shares: the address of its runtime g on amd64 and arm64
// (getg), its number (from runtime.Stack) elsewhere.
func goroutineID() uintptr {
	if fastGoroutineID {
		return getg()
	}
	return slowGoroutineID()
}

// slowGoroutineID parses the goroutine number from the first line of
// runtime.Stack ("goroutine 18 [running]:").
func slowGoroutineID() uintptr {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	const prefix = "goroutine "
	if len(b) < len(prefix) {
		panic("tensor: cannot identify the goroutine")
	}
	var id uintptr
	for _, c := range b[len(prefix):] {
		if c < '0' || c > '9' {
			break
		}
		id = id*10 + uintptr(c-'0')
	}
	return id
}
