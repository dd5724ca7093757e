package clip

import (
	"fmt"
	"reflect"
	"testing"
)

// Small assertion helpers (plain testing, so the tests need no extra module).

func must(t testing.TB, err error, what ...any) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: unexpected error: %v", fmt.Sprint(what...), err)
	}
}

func check(t testing.TB, ok bool, format string, args ...any) {
	t.Helper()
	if !ok {
		t.Fatalf(format, args...)
	}
}

func equal(t testing.TB, want, got any, what ...any) {
	t.Helper()
	if !reflect.DeepEqual(want, got) {
		t.Fatalf("%s:\n want %v\n  got %v", fmt.Sprint(what...), want, got)
	}
}
