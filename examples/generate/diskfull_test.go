package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/roentgo/roentgo/internal/atomicfile"
	"github.com/roentgo/roentgo/internal/atomicfile/atomicfiletest"
	"github.com/stretchr/testify/require"
)

// diskCSV is the full-disk tests' job: 2 images in one batch (with
// -batch 2), with a label.
const diskCSV = "id,prompt,n,Edema\na,left pleural effusion,2,1\n"

// diskArgs are the full-disk tests' flags: 8x8 images, 1 step, two formats.
func diskArgs(prompts, out string) []string {
	return []string{"-model", "builtin:tiny-random", "-prompts", prompts, "-out", out, "-steps", "1",
		"-width", "8", "-height", "8", "-q", "-format", "png,gray", "-batch", "2"}
}

// useDisk routes every write of the program — the atomic writes of the
// images, job and labels files, and the manifest's appends — through d
// until the returned function is called (or the test ends).
func useDisk(t *testing.T, d *atomicfiletest.Disk) (restore func()) {
	undo := atomicfile.SetFault(d.Fault)
	manifestFault = d.Fault
	restore = func() {
		undo()
		manifestFault = nil
	}
	t.Cleanup(restore)
	return restore
}

// runErr runs the program in-process and returns its error.
func runErr(args []string) error {
	return run(context.Background(), args, noEnv, io.Discard, io.Discard)
}

// checkAfterFullDisk checks an output folder that a full disk stopped,
// against the uninterrupted run ref: no temporary file anywhere; every file
// there is the reference's, byte for byte (none half-written under its
// final name); the manifest holds only whole rows, each the reference's
// (but for timings) with its files intact. It returns the number of rows.
func checkAfterFullDisk(t *testing.T, ref, work string) int {
	t.Helper()
	refRows := manifestRows(t, filepath.Join(ref, "manifest.jsonl"))
	err := filepath.WalkDir(work, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(work, path)
		name := d.Name()
		require.False(t, strings.Contains(name, ".tmp-") || strings.Contains(name, ".probe-"), "temporary file %s left", rel)
		if name == ".lock" || name == "manifest.jsonl" {
			return nil
		}
		got, err := os.ReadFile(path)
		require.NoError(t, err)
		want, err := os.ReadFile(filepath.Join(ref, rel))
		require.NoError(t, err, "%s is not a file of the uninterrupted run", rel)
		require.True(t, bytes.Equal(want, got), "%s differs from the uninterrupted run's (%d bytes, want %d): half-written?", rel, len(got), len(want))
		return nil
	})
	require.NoError(t, err)
	mpath := filepath.Join(work, "manifest.jsonl")
	data, err := os.ReadFile(mpath)
	if errors.Is(err, fs.ErrNotExist) {
		return 0
	}
	require.NoError(t, err)
	if len(data) == 0 {
		return 0
	}
	require.True(t, bytes.HasSuffix(data, []byte("\n")), "the manifest ends with a torn row: %q", data[bytes.LastIndexByte(data, '\n')+1:])
	rows, torn, err := readManifest(mpath)
	require.NoError(t, err)
	require.False(t, torn)
	got := manifestRows(t, mpath)
	require.Len(t, got, len(rows))
	for _, r := range rows {
		require.NoError(t, verifyFiles(work, &r.rec), "row %s", r.rec.Key)
		require.Equal(t, refRows[r.rec.Key], got[r.rec.Key], "row %s", r.rec.Key)
	}
	return len(rows)
}

// TestDiskFullMidRun fills a simulated disk at every write operation of a
// run in turn — creating, writing (half of the failing write's bytes land),
// syncing and renaming each temporary file of job.json, the image files
// and labels.csv, and each append and sync of a manifest row —, with the
// disk staying full from there on. Each time the run stops with an error
// that names the file and wraps syscall.ENOSPC; no temporary or
// half-written file is left; the manifest holds only whole rows whose files
// are intact; and running again once the disk has room finishes the job
// with the uninterrupted run's files, byte for byte, and its manifest rows.
func TestDiskFullMidRun(t *testing.T) {
	dir := t.TempDir()
	prompts := writePrompts(t, dir, "p.csv", diskCSV)
	ref := filepath.Join(dir, "ref")
	count := atomicfiletest.FullAfter(-1)
	restore := useDisk(t, count)
	require.NoError(t, runErr(diskArgs(prompts, ref)))
	restore()
	ops := count.Ops()
	kinds := map[string]bool{}
	for _, o := range ops {
		kinds[filepath.Base(o.Path)+" "+o.Op] = true
	}
	for _, k := range []string{"job.json create", "job.json write", "job.json rename", "a_0.png write", "a_1.png sync",
		"manifest.jsonl write", "manifest.jsonl sync", "labels.csv write"} {
		require.True(t, kinds[k], "the run has no %s operation: %v", k, ops)
	}
	t.Logf("%d write operations in a run", len(ops))

	for n := range ops {
		work := filepath.Join(dir, fmt.Sprintf("work%02d", n))
		disk := atomicfiletest.FullAfter(n)
		restore := useDisk(t, disk)
		err := runErr(diskArgs(prompts, work))
		restore()
		failed, ok := disk.Failed()
		require.True(t, ok, "full after %d operations: nothing failed", n)
		require.Error(t, err, "full at %v", failed)
		require.ErrorIs(t, err, syscall.ENOSPC, "full at %v", failed)
		var ue usageError
		require.False(t, errors.As(err, &ue), "a full disk is not a usage error")
		msg := err.Error()
		require.Contains(t, msg, failed.Path, "the error should name the file being written")
		require.Contains(t, msg, "no space left on device")
		rows := checkAfterFullDisk(t, ref, work)
		t.Logf("full at %-70v -> %d row(s) kept; %s", failed, rows, msg)

		// Room again: the run finishes the job exactly.
		require.NoError(t, runErr(diskArgs(prompts, work)))
		sameOutput(t, ref, work)
		for _, f := range []string{"job.json", "labels.csv"} {
			want, err := os.ReadFile(filepath.Join(ref, f))
			require.NoError(t, err)
			got, err := os.ReadFile(filepath.Join(work, f))
			require.NoError(t, err)
			require.Equal(t, string(want), string(got), f)
		}
		checkAfterFullDisk(t, ref, work)
	}
}

// TestDiskFullTmpfs runs the job on a real tiny tmpfs (root on Linux only;
// skipped otherwise) filled to 0, 4096, 8192, ... free bytes until the run
// fits: each run that does not fit stops with an error naming a file and
// wrapping ENOSPC, leaves no temporary or half-written file and a manifest
// of whole rows, and finishes exactly once the space is freed.
func TestDiskFullTmpfs(t *testing.T) {
	dir := t.TempDir()
	prompts := writePrompts(t, dir, "p.csv", diskCSV)
	ref := filepath.Join(dir, "ref")
	require.NoError(t, runErr(diskArgs(prompts, ref)))
	mnt := atomicfiletest.Tmpfs(t, 1<<20)
	for free := int64(0); ; free += 4096 {
		require.Less(t, free, int64(1<<20), "the run never fitted")
		work := filepath.Join(mnt, fmt.Sprintf("work%07d", free))
		release := atomicfiletest.Fill(t, mnt, free)
		err := runErr(diskArgs(prompts, work))
		release()
		if err == nil {
			t.Logf("the run fits in %d free bytes", free)
			sameOutput(t, ref, work)
			break
		}
		require.ErrorIs(t, err, syscall.ENOSPC)
		require.Contains(t, err.Error(), "no space left on device")
		require.Contains(t, err.Error(), work)
		rows := checkAfterFullDisk(t, ref, work)
		t.Logf("%d bytes free: %d row(s) kept; %v", free, rows, err)
		require.NoError(t, runErr(diskArgs(prompts, work)))
		sameOutput(t, ref, work)
	}
}
