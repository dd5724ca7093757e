// Package refdata locates the reference data of the shared folder beside the
// checkout — ../shared, holding the golden outputs of the reference Python
// implementation (golden/tiny-sd1) and the CLIP tokenizer vocabulary
// (data/clip-tokenizer) — for tests. It is the one place that decides what a
// test does when that data is absent: skip, naming the missing path, or fail
// when $ROENTGO_REQUIRE_GOLDEN is set (as .ci/run does). See docs/TESTING.md.
//
// It imports nothing of this module, so that the tests of every package
// (tensor, internal/npy, ...) can use it; package testutil re-exports it for
// the model packages.
package refdata

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// The environment variables that place the shared reference data and decide
// what a test does when it is absent (docs/TESTING.md).
const (
	// SharedDirEnv names the variable that overrides the shared data folder
	// (by default ../shared beside the repository root). An absolute path;
	// a relative one is taken from each package's directory.
	SharedDirEnv = "ROENTGO_SHARED_DIR"
	// GoldenDirEnv names the variable that overrides the tiny-sd1 golden
	// folder (by default golden/tiny-sd1 under the shared folder); the GPU
	// check points it at the copy it carries.
	GoldenDirEnv = "ROENTGO_GOLDEN_DIR"
	// RequireEnv names the variable that turns a missing data folder from a
	// skip into a failure: set to 1 (any value strconv.ParseBool reads as
	// true, or any value it cannot read), the tests that need the data fail;
	// unset, empty or false ("0", "false"), they skip. .ci/run sets it to 1.
	RequireEnv = "ROENTGO_REQUIRE_GOLDEN"
)

// SharedRoot returns the shared data folder: $ROENTGO_SHARED_DIR if set,
// else the folder "shared" beside the repository root (the directory holding
// go.mod, found from the working directory upwards) as an absolute path. It
// does not check that the folder exists; tests call Shared or Golden.
func SharedRoot() string {
	if d := os.Getenv(SharedDirEnv); d != "" {
		return d
	}
	wd, err := os.Getwd()
	if err != nil {
		return filepath.Join("..", "shared")
	}
	for dir := wd; ; {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(filepath.Dir(dir), "shared")
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			// No go.mod above: a test binary run outside the tree.
			return filepath.Join(wd, "..", "shared")
		}
		dir = parent
	}
}

// GoldenRoot returns the tiny-sd1 golden folder: $ROENTGO_GOLDEN_DIR if set,
// else golden/tiny-sd1 under SharedRoot. It does not check that it exists;
// tests call Golden or GoldenDir.
func GoldenRoot() string {
	if d := os.Getenv(GoldenDirEnv); d != "" {
		return d
	}
	return filepath.Join(SharedRoot(), "golden", "tiny-sd1")
}

// Required reports whether $ROENTGO_REQUIRE_GOLDEN asks for missing shared
// data to fail the tests that need it rather than skip them.
func Required() bool {
	v := os.Getenv(RequireEnv)
	if v == "" {
		return false
	}
	b, err := strconv.ParseBool(v)
	return b || err != nil
}

// Shared returns the path of rel (slash-separated, "" for the folder
// itself) under SharedRoot. When that path does not exist it skips the test
// with a message naming it — or fails the test when Required.
func Shared(t testing.TB, rel string) string {
	t.Helper()
	p := filepath.Join(SharedRoot(), filepath.FromSlash(rel))
	need(t, p)
	return p
}

// GoldenDir returns the tiny-sd1 golden folder (GoldenRoot). When it does not
// exist it skips the test with a message naming it — or fails the test when
// Required.
func GoldenDir(t testing.TB) string {
	t.Helper()
	p := GoldenRoot()
	need(t, p)
	return p
}

// Golden returns the path of rel (slash-separated) under the tiny-sd1 golden
// folder, skipping (or, when Required, failing) the test when the folder is
// absent. Only the folder is checked: rel itself may be a file that some
// golden cases lack.
func Golden(t testing.TB, rel string) string {
	t.Helper()
	return filepath.Join(GoldenDir(t), filepath.FromSlash(rel))
}

// need skips or fails t when path does not exist: the one place where tests
// decide what missing reference data means.
func need(t testing.TB, path string) {
	t.Helper()
	_, err := os.Stat(path)
	if err == nil {
		return
	}
	why := "is absent"
	if !errors.Is(err, fs.ErrNotExist) {
		why = fmt.Sprintf("cannot be read (%v)", err)
	}
	msg := fmt.Sprintf("reference data %s %s: it is the shared folder beside the checkout (../shared), "+
		"or $%s / $%s; see docs/TESTING.md", path, why, SharedDirEnv, GoldenDirEnv)
	if Required() {
		t.Fatalf("%s; $%s=%s requires it", msg, RequireEnv, os.Getenv(RequireEnv))
	} else {
		t.Skip(msg)
	}
}
