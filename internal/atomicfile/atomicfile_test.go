package atomicfile

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestWriteNewAndRegular(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a.png")
	if err := WriteFile(p, []byte("one")); err != nil {
		t.Fatal(err)
	}
	if got := read(t, p); got != "one" {
		t.Fatalf("content %q, want one", got)
	}
	if err := os.Chmod(p, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(p, []byte("two")); err != nil {
		t.Fatal(err)
	}
	if got := read(t, p); got != "two" {
		t.Fatalf("content %q, want two", got)
	}
	st, _ := os.Stat(p)
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v after replacing a 0600 file; want it kept", st.Mode().Perm())
	}
	assertNoTemp(t, dir)
}

// assertNoTemp fails if a temporary or probe file was left in dir.
func assertNoTemp(t *testing.T, dir string) {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.Contains(e.Name(), ".tmp-") || strings.Contains(e.Name(), ".probe-") {
			t.Errorf("left behind %s", e.Name())
		}
	}
}

func TestWriteThroughSymlink(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "real")
	os.Mkdir(sub, 0o755)
	target := filepath.Join(sub, "target.png")
	os.WriteFile(target, []byte("old"), 0o644)
	link := filepath.Join(dir, "latest.png")
	if err := os.Symlink("real/target.png", link); err != nil {
		t.Fatal(err)
	}
	// A chain: link2 -> link -> real/target.png.
	link2 := filepath.Join(dir, "chain.png")
	os.Symlink(link, link2)
	if err := WriteFile(link2, []byte("new")); err != nil {
		t.Fatal(err)
	}
	for _, l := range []string{link, link2} {
		st, err := os.Lstat(l)
		if err != nil || st.Mode()&fs.ModeSymlink == 0 {
			t.Fatalf("%s is no longer a symbolic link (%v, %v)", l, st.Mode(), err)
		}
	}
	if got := read(t, target); got != "new" {
		t.Fatalf("target holds %q, want new", got)
	}
	assertNoTemp(t, dir)
	assertNoTemp(t, sub)

	// A dangling link creates its target.
	dangling := filepath.Join(dir, "dangling.png")
	os.Symlink("real/fresh.png", dangling)
	if err := WriteFile(dangling, []byte("fresh")); err != nil {
		t.Fatal(err)
	}
	if got := read(t, filepath.Join(sub, "fresh.png")); got != "fresh" {
		t.Fatalf("dangling link's target holds %q", got)
	}
}

func TestRefuseNonRegular(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	folder := filepath.Join(dir, "folder")
	os.Mkdir(folder, 0o755)
	toNull := filepath.Join(dir, "null.png")
	os.Symlink("/dev/null", toNull)
	loop := filepath.Join(dir, "loop.png")
	os.Symlink("loop.png", loop)
	cases := []struct {
		path, want string
	}{
		{"/dev/null", "character device"},
		{fifo, "named pipe"},
		{folder, "a folder"},
		{toNull, "links to /dev/null, which is a character device"},
		{loop, "symbolic links"},
		{filepath.Join(dir, "nofolder", "x.png"), "no such file"},
		{filepath.Join(dir, "fifo", "x.png"), "not a directory"},
	}
	for _, c := range cases {
		for name, f := range map[string]func(string) error{
			"WriteFile":     func(p string) error { return WriteFile(p, []byte("x")) },
			"CheckWritable": CheckWritable,
		} {
			err := f(c.path)
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), c.path) {
				t.Errorf("%s(%s) = %v; want an error naming the path and %q", name, c.path, err, c.want)
			}
		}
	}
	st, err := os.Lstat("/dev/null")
	if err != nil || st.Mode()&fs.ModeCharDevice == 0 {
		t.Fatalf("/dev/null is no longer a character device: %v %v", st.Mode(), err)
	}
	st, _ = os.Lstat(fifo)
	if st.Mode()&fs.ModeNamedPipe == 0 {
		t.Fatalf("the FIFO was replaced: %v", st.Mode())
	}
	assertNoTemp(t, dir)
}

func TestWriteErrorLeavesOld(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a.bin")
	os.WriteFile(p, []byte("old"), 0o644)
	boom := errors.New("boom")
	err := Write(p, func(w io.Writer) error {
		w.Write([]byte("partial"))
		return boom
	})
	if err == nil || !strings.Contains(err.Error(), "boom") || !strings.Contains(err.Error(), p) {
		t.Fatalf("Write = %v; want the writer's error with the path", err)
	}
	if got := read(t, p); got != "old" {
		t.Fatalf("after a failed write the file holds %q, want old", got)
	}
	assertNoTemp(t, dir)
}
