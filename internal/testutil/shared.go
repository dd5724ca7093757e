package testutil

import (
	"testing"

	"github.com/roentgo/roentgo/internal/testutil/refdata"
)

// SharedDir returns the path of rel (slash-separated) under the shared data
// folder beside the checkout (../shared, or $ROENTGO_SHARED_DIR), skipping the
// test when that path is absent — or failing it when $ROENTGO_REQUIRE_GOLDEN
// is set. It is refdata.Shared.
func SharedDir(t testing.TB, rel string) string {
	t.Helper()
	return refdata.Shared(t, rel)
}

// GoldenDir returns the tiny-sd1 golden folder (../shared/golden/tiny-sd1, or
// $ROENTGO_GOLDEN_DIR), skipping or failing the test like SharedDir when it is
// absent. It is refdata.GoldenDir.
func GoldenDir(t testing.TB) string {
	t.Helper()
	return refdata.GoldenDir(t)
}

// Golden returns the path of rel (slash-separated) under the tiny-sd1 golden
// folder, skipping or failing the test like SharedDir when the folder is
// absent (rel itself is not checked). It is refdata.Golden.
func Golden(t testing.TB, rel string) string {
	t.Helper()
	return refdata.Golden(t, rel)
}
