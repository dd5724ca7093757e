package tensor

import (
	"math"
	"math/rand"
	"sync"
	"testing"
)

func released(t *Tensor) bool { return t.st == nil }

// noScopeLeft fails when the calling goroutine still has a scope open.
func noScopeLeft(t *testing.T) {
	t.Helper()
	if s := currentScope(); s != nil {
		t.Fatalf("a scope is still open on this goroutine")
	}
}

func TestScopeReleasesAllButResult(t *testing.T) {
	x := Ones(F32, 4)
	var a, b, v *Tensor
	y := Scope(func() *Tensor {
		a = x.AddScalar(1)
		b = a.MulScalar(2)
		v = b.View(2, 2) // a view of the result's storage, dropped
		return b
	})
	noScopeLeft(t)
	if !released(a) || !released(v) {
		t.Fatal("intermediates not released")
	}
	if released(y) || released(x) {
		t.Fatal("result or input released")
	}
	if y != b || y.sc != nil {
		t.Fatalf("result %p (scope %p), want %p unowned", y, y.sc, b)
	}
	if got := y.Float32s(); got[0] != 4 {
		t.Fatalf("result %v", got)
	}
	// The buffer of a went back to the pool: the same block again is served
	// from it.
	p0 := GetPoolStats()
	Scope(func() *Tensor { return x.AddScalar(1) }).Release()
	if p := GetPoolStats(); p.Misses != p0.Misses {
		t.Errorf("pool misses %d -> %d: intermediates not recycled", p0.Misses, p.Misses)
	}
}

func TestScopeNested(t *testing.T) {
	x := Ones(F32, 3)
	var inner, innerTmp, outerTmp *Tensor
	out := Scope(func() *Tensor {
		outerTmp = x.AddScalar(1)
		inner = Scope(func() *Tensor {
			innerTmp = outerTmp.AddScalar(1)
			return innerTmp.AddScalar(1)
		})
		if !released(innerTmp) || released(inner) {
			t.Fatal("inner scope: temporary kept or result released")
		}
		if inner.sc == nil || inner.sc != currentScope() {
			t.Fatal("inner result not moved to the enclosing scope")
		}
		return inner.AddScalar(1)
	})
	if !released(inner) || !released(outerTmp) || released(out) {
		t.Fatal("outer scope did not release its own (moved) handles")
	}
	if got := out.Float32s()[0]; got != 5 {
		t.Fatalf("got %v", got)
	}
	noScopeLeft(t)
}

func TestScopeReturnsInputsViewsAndReleased(t *testing.T) {
	x := Ones(F32, 2, 3)
	// The input itself: untouched.
	if y := Scope(func() *Tensor { return x }); y != x || released(x) {
		t.Fatal("returning the input")
	}
	// A view of an intermediate keeps its storage; the intermediate's handle goes.
	var tmp *Tensor
	v := Scope(func() *Tensor {
		tmp = x.AddScalar(1)
		return tmp.Transpose(0, 1)
	})
	if !released(tmp) || released(v) || v.Float32s()[0] != 2 {
		t.Fatal("view of an intermediate")
	}
	// Release inside a scope, twice, and nil results.
	if y := Scope(func() *Tensor {
		a := x.AddScalar(1)
		a.Release()
		a.Release()
		return nil
	}); y != nil {
		t.Fatal("nil result")
	}
	noScopeLeft(t)
}

func TestScopeMultiResults(t *testing.T) {
	x := Ones(F32, 2)
	var tmp *Tensor
	a, b := Scope2(func() (*Tensor, *Tensor) {
		tmp = x.AddScalar(1)
		return tmp.AddScalar(1), tmp.AddScalar(2)
	})
	if !released(tmp) || released(a) || released(b) {
		t.Fatal("Scope2")
	}
	outs := ScopeN(func() []*Tensor {
		tmp = x.AddScalar(1)
		c := tmp.AddScalar(1)
		return []*Tensor{c, c, x, nil} // duplicates, inputs and nils are fine
	})
	if !released(tmp) || released(outs[0]) || outs[0].Float32s()[0] != 3 {
		t.Fatal("ScopeN")
	}
	var kept, dropped *Tensor
	Do(func() {
		kept = x.AddScalar(1)
		dropped = x.AddScalar(1)
		Escape(kept)
	})
	if released(kept) || !released(dropped) {
		t.Fatal("Do with Escape")
	}
	noScopeLeft(t)
}

func TestScopeEscapeAndPersist(t *testing.T) {
	x := Ones(F32, 2)
	var skips []*Tensor
	var cache, esc *Tensor
	out := Scope(func() *Tensor {
		Do(func() {
			esc = x.AddScalar(1)
			Escape(esc) // to the outer scope, not beyond
			skips = append(skips, esc)
			cache = Persist(x.AddScalar(2)) // out of every scope
		})
		if released(esc) || esc.sc != currentScope() {
			t.Fatal("escaped tensor not in the enclosing scope")
		}
		return x.AddScalar(3)
	})
	if !released(esc) {
		t.Fatal("escaped tensor not released by the enclosing scope")
	}
	if released(cache) || cache.sc != nil || released(out) {
		t.Fatal("persisted tensor released")
	}
	Escape(x)    // outside any scope: nothing
	Persist(nil) // nil: nothing
	noScopeLeft(t)
}

func TestScopeConsume(t *testing.T) {
	x := Ones(F32, 2)
	var chain []*Tensor
	Scope(func() *Tensor {
		h := x
		for i := 0; i < 3; i++ {
			h = Scope(func() *Tensor { return h.AddScalar(1) }, h)
			chain = append(chain, h)
			if i > 0 && !released(chain[i-1]) {
				t.Fatalf("link %d kept after the next was made", i-1)
			}
		}
		if released(x) {
			t.Fatal("the caller's input was consumed")
		}
		if released(h) || h.Float32s()[0] != 4 {
			t.Fatal("last link")
		}
		// Consuming a value that is also returned keeps it.
		g := x.AddScalar(1)
		if Scope(func() *Tensor { return g }, g) != g || released(g) {
			t.Fatal("consumed and returned")
		}
		return nil
	})
	// Outside any scope nothing is consumed.
	y := x.AddScalar(1)
	Scope(func() *Tensor { return y.AddScalar(1) }, y)
	if released(y) {
		t.Fatal("consumed an unowned tensor")
	}
	noScopeLeft(t)
}

func TestScopePanicReleases(t *testing.T) {
	x := Ones(F32, 2)
	var a, b *Tensor
	func() {
		defer func() {
			if r := recover(); r != "boom" {
				t.Fatalf("recovered %v", r)
			}
		}()
		Scope(func() *Tensor {
			a = x.AddScalar(1)
			Scope(func() *Tensor {
				b = x.AddScalar(1)
				panic("boom")
			})
			return a
		})
	}()
	if !released(a) || !released(b) || released(x) {
		t.Fatal("a panic leaked or released the wrong handles")
	}
	noScopeLeft(t)
	// A shape error inside a scope (a panic of an op) too.
	func() {
		defer func() { recover() }()
		Scope(func() *Tensor {
			a = x.AddScalar(1)
			return a.Add(Ones(F32, 3))
		})
	}()
	if !released(a) {
		t.Fatal("op panic")
	}
	noScopeLeft(t)
}

// TestScopeOtherGoroutines: tensors made on other goroutines while a scope
// is open are not captured, and goroutines' scopes are independent.
func TestScopeOtherGoroutines(t *testing.T) {
	x := Ones(F32, 8)
	const workers = 4
	var (
		wg          sync.WaitGroup
		start, done = make(chan struct{}), make(chan struct{})
		plain       [workers]*Tensor
		scoped      [workers]*Tensor
		tmps        [workers]*Tensor
	)
	var mine *Tensor
	Scope(func() *Tensor {
		mine = x.AddScalar(1)
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				plain[w] = x.AddScalar(float32(w)) // no scope on this goroutine
				scoped[w] = Scope(func() *Tensor {
					tmps[w] = x.AddScalar(1)
					return tmps[w].AddScalar(float32(w))
				})
			}()
		}
		close(start)
		wg.Wait()
		for w := range workers {
			if plain[w].sc != nil || scoped[w].sc != nil {
				t.Errorf("worker %d: a tensor was captured by another goroutine's scope", w)
			}
			if !released(tmps[w]) {
				t.Errorf("worker %d: its own scope did not release", w)
			}
		}
		close(done)
		return nil
	})
	<-done
	for w := range workers {
		if released(plain[w]) || released(scoped[w]) || scoped[w].Float32s()[0] != float32(2+w) {
			t.Errorf("worker %d: tensor released by another goroutine's scope", w)
		}
	}
	if !released(mine) {
		t.Fatal("own tensor kept")
	}
	noScopeLeft(t)
}

func TestGoroutineIDs(t *testing.T) {
	if a, b := goroutineID(), goroutineID(); a != b || a == 0 {
		t.Fatalf("ids %d, %d", a, b)
	}
	if a, b := slowGoroutineID(), slowGoroutineID(); a != b || a == 0 {
		t.Fatalf("slow ids %d, %d", a, b)
	}
	ids := make(chan uintptr, 8)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			ids <- goroutineID()
			wg.Wait() // keep all alive until every id is taken
		}()
	}
	seen := map[uintptr]bool{goroutineID(): true}
	for range 8 {
		id := <-ids
		if seen[id] {
			t.Fatalf("two live goroutines share id %#x", id)
		}
		seen[id] = true
	}
	wg.Add(-8)
}

// scopedMLP is y = W2 GELU(LN(x) W1^T + b1) + x with the block in a scope.
func scopedMLP(x, w1, b1, w2, g, be *Tensor, scoped bool) *Tensor {
	f := func() *Tensor {
		n := LayerNorm(x, g, be, 1e-5)
		h := Linear(n, w1, b1)
		a := GELU(h)
		return Linear(a, w2, nil).Add(x)
	}
	if !scoped {
		return f()
	}
	return Scope(f)
}

// TestScopeAutograd: gradients through scoped blocks equal the unscoped ones
// bit for bit and central differences, with Backward inside or outside the
// scope, and through Checkpoint of a scoped block.
func TestScopeAutograd(t *testing.T) {
	r := rand.New(rand.NewSource(7))
	x := leaf(r, 1, 0, 3, 4)
	w1, b1 := leaf(r, 0.5, 0, 6, 4), leaf(r, 0.1, 0, 6)
	w2 := leaf(r, 0.5, 0, 4, 6)
	g, be := leaf(r, 0.1, 1, 4), leaf(r, 0.1, 0, 4)
	params := []*Tensor{x, w1, b1, w2, g, be}
	R := randT(r, 3, 4)
	lossOf := func(mode string) *Tensor {
		switch mode {
		case "plain":
			y := scopedMLP(scopedMLP(x, w1, b1, w2, g, be, false), w1, b1, w2, g, be, false)
			return y.Mul(R).SumAll()
		case "checkpoint":
			return Scope(func() *Tensor {
				y := Checkpoint(func(in []*Tensor) *Tensor {
					return scopedMLP(scopedMLP(in[0], w1, b1, w2, g, be, true), w1, b1, w2, g, be, true)
				}, x)
				return y.Mul(R).SumAll()
			})
		}
		return Scope(func() *Tensor {
			y := scopedMLP(scopedMLP(x, w1, b1, w2, g, be, true), w1, b1, w2, g, be, true)
			return y.Mul(R).SumAll()
		})
	}
	grads := func(mode string, backwardInside bool) [][]float32 {
		for _, p := range params {
			p.ZeroGrad()
		}
		if backwardInside {
			Do(func() {
				if err := Backward(lossOf(mode)); err != nil {
					t.Fatal(err)
				}
			})
		} else if err := Backward(lossOf(mode)); err != nil {
			t.Fatal(err)
		}
		noScopeLeft(t)
		out := make([][]float32, len(params))
		for i, p := range params {
			if p.Grad() == nil || released(p.Grad()) {
				t.Fatalf("%s: parameter %d has no gradient", mode, i)
			}
			out[i] = p.Grad().Float32s()
		}
		return out
	}
	want := grads("plain", false)
	for _, c := range []struct {
		mode   string
		inside bool
	}{{"scoped", false}, {"scoped", true}, {"checkpoint", false}, {"checkpoint", true}} {
		got := grads(c.mode, c.inside)
		for i := range got {
			for j := range got[i] {
				if got[i][j] != want[i][j] {
					t.Fatalf("%s (Backward in scope %v): parameter %d [%d]: %v, unscoped %v", c.mode, c.inside, i, j, got[i][j], want[i][j])
				}
			}
		}
	}
	// Central differences of the scoped loss.
	for i, p := range params {
		num := numGrad(p, func() float64 {
			var v float64
			NoGrad(func() { v = float64(lossOf("scoped").Item()) })
			return v
		}, 1e-2)
		var scale float64
		for _, v := range num {
			scale = math.Max(scale, math.Abs(v))
		}
		for j := range num {
			if !near(float64(want[i][j]), num[j], 2e-2*scale, 0) {
				t.Fatalf("parameter %d [%d]: autograd %v, central difference %v", i, j, want[i][j], num[j])
			}
		}
	}
}

// BenchmarkScopeHandle measures what scopes cost: a block making 8 handles
// (views) and releasing them by hand, the same block in a scope, a handle
// made while another goroutine has a scope open, an empty scope, and the
// goroutine identity (fast and runtime.Stack fallback).
func BenchmarkScopeHandle(b *testing.B) {
	x := Ones(F32, 4, 4)
	b.Run("block-of-8-release", func(b *testing.B) {
		for range b.N {
			for range 8 {
				x.Transpose(0, 1).Release()
			}
		}
	})
	b.Run("block-of-8-scope", func(b *testing.B) {
		for range b.N {
			Do(func() {
				for range 8 {
					x.Transpose(0, 1)
				}
			})
		}
	})
	b.Run("handle-other-goroutine-in-scope", func(b *testing.B) {
		hold, stop := make(chan struct{}), make(chan struct{})
		go Do(func() { close(hold); <-stop })
		<-hold
		for range b.N {
			x.Transpose(0, 1).Release()
		}
		close(stop)
	})
	b.Run("open-close", func(b *testing.B) {
		for range b.N {
			Scope(func() *Tensor { return nil })
		}
	})
	b.Run("goroutineID", func(b *testing.B) {
		for range b.N {
			goroutineID()
		}
	})
	b.Run("slowGoroutineID", func(b *testing.B) {
		for range b.N {
			slowGoroutineID()
		}
	})
}
