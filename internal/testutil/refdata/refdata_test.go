package refdata

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// fakeTB is a testing.TB that records Skip and Fatalf instead of stopping.
type fakeTB struct {
	testing.TB
	skipped, failed bool
	msg             string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Skip(args ...any) {
	f.skipped, f.msg = true, fmt.Sprint(args...)
}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.failed, f.msg = true, fmt.Sprintf(format, args...)
}

// TestMissingData: with the shared folder missing, every helper skips naming
// the missing path; with ROENTGO_REQUIRE_GOLDEN=1 it fails instead.
func TestMissingData(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-shared")
	t.Setenv(SharedDirEnv, missing)
	t.Setenv(GoldenDirEnv, "")
	calls := map[string]func(testing.TB) string{
		"Shared":    func(tb testing.TB) string { return Shared(tb, "data/clip-tokenizer") },
		"GoldenDir": GoldenDir,
		"Golden":    func(tb testing.TB) string { return Golden(tb, "index.json") },
	}
	for _, req := range []string{"", "0", "false", "1", "true"} {
		t.Setenv(RequireEnv, req)
		wantFail := req == "1" || req == "true"
		for name, call := range calls {
			f := &fakeTB{TB: t}
			call(f)
			if f.failed != wantFail || f.skipped == wantFail {
				t.Errorf("%s with %s=%q: failed %v, skipped %v; want failed %v", name, RequireEnv, req, f.failed, f.skipped, wantFail)
			}
			if !strings.Contains(f.msg, missing) {
				t.Errorf("%s with %s=%q: message does not name %s: %q", name, RequireEnv, req, missing, f.msg)
			}
		}
	}
}

// TestPresentData: existing paths are returned without skipping or failing,
// with ROENTGO_GOLDEN_DIR overriding the golden folder.
func TestPresentData(t *testing.T) {
	shared := t.TempDir()
	golden := filepath.Join(shared, "golden", "tiny-sd1")
	if err := os.MkdirAll(filepath.Join(shared, "data", "clip-tokenizer"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(golden, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv(SharedDirEnv, shared)
	t.Setenv(GoldenDirEnv, "")
	t.Setenv(RequireEnv, "1")
	f := &fakeTB{TB: t}
	if got, want := Shared(f, "data/clip-tokenizer"), filepath.Join(shared, "data", "clip-tokenizer"); got != want {
		t.Errorf("Shared = %s, want %s", got, want)
	}
	if got, want := Golden(f, "case.json"), filepath.Join(golden, "case.json"); got != want {
		t.Errorf("Golden = %s, want %s (the file itself need not exist)", got, want)
	}
	other := t.TempDir()
	t.Setenv(GoldenDirEnv, other)
	if got := GoldenDir(f); got != other {
		t.Errorf("GoldenDir with %s=%s = %s", GoldenDirEnv, other, got)
	}
	if f.failed || f.skipped {
		t.Errorf("present data: failed %v, skipped %v: %s", f.failed, f.skipped, f.msg)
	}
}

// TestSharedRootDefault: without the override, the shared folder is the
// folder "shared" beside the module root, whatever the package depth.
func TestSharedRootDefault(t *testing.T) {
	t.Setenv(SharedDirEnv, "")
	root, err := filepath.Abs(filepath.Join("..", "..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("expected the module root at %s: %v", root, err)
	}
	if got, want := SharedRoot(), filepath.Join(filepath.Dir(root), "shared"); got != want {
		t.Errorf("SharedRoot = %s, want %s", got, want)
	}
}

// TestRequired spells out which values of ROENTGO_REQUIRE_GOLDEN require the
// data.
func TestRequired(t *testing.T) {
	for v, want := range map[string]bool{"": false, "0": false, "false": false, "FALSE": false,
		"1": true, "true": true, "T": true, "yes": true} {
		t.Setenv(RequireEnv, v)
		if got := Required(); got != want {
			t.Errorf("Required with %s=%q = %v, want %v", RequireEnv, v, got, want)
		}
	}
}

// TestSubprocess runs TestNeedsMissingData in a child test binary: it must be
// reported skipped by default and failed with ROENTGO_REQUIRE_GOLDEN=1.
func TestSubprocess(t *testing.T) {
	if os.Getenv("REFDATA_CHILD") != "" {
		t.Skip("in the child")
	}
	missing := filepath.Join(t.TempDir(), "no-shared")
	for _, req := range []string{"", "1"} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestNeedsMissingData$", "-test.v")
		cmd.Env = append(os.Environ(), "REFDATA_CHILD=1", SharedDirEnv+"="+missing, GoldenDirEnv+"=", RequireEnv+"="+req)
		out, err := cmd.CombinedOutput()
		want := "--- SKIP: TestNeedsMissingData"
		if req != "" {
			want = "--- FAIL: TestNeedsMissingData"
		}
		if !strings.Contains(string(out), want) || (err != nil) != (req != "") {
			t.Errorf("%s=%q: exit error %v, want %q in:\n%s", RequireEnv, req, err, want, out)
		}
		if !strings.Contains(string(out), filepath.Join(missing, "golden", "tiny-sd1")) {
			t.Errorf("%s=%q: the output does not name the missing folder:\n%s", RequireEnv, req, out)
		}
	}
}

// TestNeedsMissingData is run by TestSubprocess in a child process; on its own
// it runs against the real shared folder (skipping when absent).
func TestNeedsMissingData(t *testing.T) {
	GoldenDir(t)
}
