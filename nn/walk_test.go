package nn

import (
	"reflect"
	"testing"
)

type walkLeaf struct{ N int }

type walkNode struct {
	A, B   *walkLeaf
	M      map[string]*walkLeaf
	hidden *walkLeaf
}

// TestWalk: visit sees a shared pointer every time it is reached but Walk
// descends into it once; maps are walked in key order; unexported fields
// are skipped.
func TestWalk(t *testing.T) {
	shared, x, y, h := &walkLeaf{1}, &walkLeaf{2}, &walkLeaf{3}, &walkLeaf{4}
	root := &walkNode{A: shared, B: shared, M: map[string]*walkLeaf{"z": y, "a": x}, hidden: h}
	var got []int
	visits := map[*walkLeaf]int{}
	Walk(reflect.ValueOf(root), func(p reflect.Value) bool {
		if l, ok := p.Interface().(*walkLeaf); ok {
			visits[l]++
			got = append(got, l.N)
		}
		return true
	})
	if want := []int{1, 1, 2, 3}; !reflect.DeepEqual(got, want) {
		t.Fatalf("visited %v, want %v (A, B sharing one leaf, then the map in key order)", got, want)
	}
	if visits[h] != 0 {
		t.Fatal("an unexported field was walked")
	}
}
