package train

import (
	"bytes"
	"context"
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

// snapshot returns every file under dir by relative path, with its
// content, and every folder (content nil).
func snapshot(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		if d.IsDir() {
			out[rel+"/"] = nil
			return nil
		}
		b, err := os.ReadFile(path)
		out[rel] = b
		return err
	})
	require.NoError(t, err)
	return out
}

// requireSameFiles requires two snapshots to hold the same files and
// folders with the same contents.
func requireSameFiles(t *testing.T, want, got map[string][]byte, what string) {
	t.Helper()
	for k, v := range want {
		g, ok := got[k]
		require.True(t, ok, "%s: %s is gone", what, k)
		require.True(t, bytes.Equal(v, g), "%s: %s changed", what, k)
	}
	for k := range got {
		_, ok := want[k]
		require.True(t, ok, "%s: %s was left behind", what, k)
	}
}

// TestCheckpointDiskFull fills a simulated disk at every operation of a
// checkpoint in turn — creating, writing (each write; half of the failing
// one's bytes land), syncing and renaming each file: the U-Net masters, the
// AdamW state, the EMA averages, trainer.json and then the latest pointer —
// with the disk staying full from there on. Each time Checkpoint returns an
// error that names the file and wraps syscall.ENOSPC; the output folder
// holds the previous checkpoint and latest exactly as before, and no
// temporary folder or file (a failure after the new folder is complete,
// while latest is written, may leave that folder, complete: it equals the
// one written with room). Then, as a process restarted with room again,
// Resume from the output folder starts at the previous checkpoint and its
// next step gives the checkpoint the uninterrupted run wrote, byte for
// byte (masters, AdamW moments and step counts, EMA averages).
func TestCheckpointDiskFull(t *testing.T) {
	c := testConfig(t, writeData(t, 2))
	c.Batch = 1
	c.Steps = 3
	c.EMA = true
	tr, err := New(c)
	require.NoError(t, err)
	defer tr.Close()
	for i := 0; i < 2; i++ {
		_, err := tr.Step()
		require.NoError(t, err)
	}
	prev, err := tr.Checkpoint()
	require.NoError(t, err)
	before := snapshot(t, c.Out)
	_, err = tr.Step()
	require.NoError(t, err)

	// The uninterrupted run's checkpoint at step 3, written elsewhere,
	// counting the operations.
	count := atomicfiletest.FullAfter(-1)
	restore := atomicfile.SetFault(count.Fault)
	tr.cfg.Out = t.TempDir()
	ref, err := tr.Checkpoint()
	tr.cfg.Out = c.Out
	restore()
	require.NoError(t, err)
	tr.lastCheckpoint = prev
	want := checkpointFiles(t, ref)
	require.Len(t, want, 3)
	ops := count.Ops()
	seen := map[string]bool{}
	for _, o := range ops {
		seen[filepath.Base(o.Path)+" "+o.Op] = true
	}
	for _, f := range []string{unetMasters, optimizerFile, emaFile, stateFile, latestFile} {
		for _, op := range []string{atomicfile.OpCreate, atomicfile.OpWrite, atomicfile.OpSync, atomicfile.OpRename} {
			require.True(t, seen[f+" "+op], "a checkpoint has no %s of %s: %v", op, f, ops)
		}
	}
	t.Logf("%d write operations in a checkpoint", len(ops))

	next := filepath.Join(c.Out, CheckpointName(3))
	for n := range ops {
		disk := atomicfiletest.FullAfter(n)
		restore := atomicfile.SetFault(disk.Fault)
		_, err := tr.Checkpoint()
		restore()
		failed, ok := disk.Failed()
		require.True(t, ok, "full after %d operations: nothing failed", n)
		require.Error(t, err, "full at %v", failed)
		require.ErrorIs(t, err, syscall.ENOSPC, "full at %v", failed)
		msg := err.Error()
		require.Contains(t, msg, failed.Path, "the error should name the file being written")
		require.Contains(t, msg, "no space left on device")
		require.Contains(t, msg, "checkpoint at step 3")
		t.Logf("full at %v: %s", failed, msg)

		after := snapshot(t, c.Out)
		if _, ok := after[CheckpointName(3)+"/"]; ok {
			require.Equal(t, latestFile, filepath.Base(failed.Path), "%s exists after a failure while writing it", next)
			got := checkpointFiles(t, next)
			require.Len(t, got, len(want))
			for name, b := range want {
				require.True(t, bytes.Equal(b, got[name]), "%s/%s differs from the complete checkpoint", next, name)
			}
			for k := range after {
				if strings.HasPrefix(k, CheckpointName(3)+"/") {
					delete(after, k)
				}
			}
		}
		requireSameFiles(t, before, after, "after a full disk at "+failed.String())
		cp, err := FindCheckpoint(c.Out)
		require.NoError(t, err)
		require.Equal(t, prev, cp)
		require.Equal(t, prev, tr.lastCheckpoint)
	}

	// Room again, in a new process: resume from the output folder.
	require.NoError(t, tr.Close())
	r, err := Resume(c.Out, nil)
	require.NoError(t, err)
	defer r.Close()
	require.Equal(t, 2, r.StepsDone())
	require.NoError(t, r.Run(context.Background()))
	got := checkpointFiles(t, next)
	for name, b := range want {
		require.True(t, bytes.Equal(b, got[name]), "%s differs between the uninterrupted run and the one resumed after the full disk", name)
	}
	cp, err := FindCheckpoint(c.Out)
	require.NoError(t, err)
	require.Equal(t, next, cp)
}

// TestCheckpointDiskFullTmpfs writes checkpoints to a real tiny tmpfs
// (root on Linux only; skipped otherwise) filled so that the disk fills in
// the middle of the U-Net masters, of the AdamW state, of the EMA
// averages, then exactly at trainer.json and at latest (the free space
// counted in pages from the previous checkpoint's files): each time
// Checkpoint fails with an error naming that file and wrapping ENOSPC, the
// previous checkpoint and latest are as they were and no temporary file or
// folder is left (but the new folder, complete, when latest failed); once
// the space is freed the checkpoint is written.
func TestCheckpointDiskFullTmpfs(t *testing.T) {
	mnt := atomicfiletest.Tmpfs(t, 96<<20)
	c := testConfig(t, writeData(t, 2))
	c.Out = filepath.Join(mnt, "out")
	c.Batch = 1
	c.Steps = 2
	c.EMA = true
	tr, err := New(c)
	require.NoError(t, err)
	defer tr.Close()
	_, err = tr.Step()
	require.NoError(t, err)
	prev, err := tr.Checkpoint()
	require.NoError(t, err)
	before := snapshot(t, c.Out)
	_, err = tr.Step()
	require.NoError(t, err)

	page := int64(os.Getpagesize())
	pages := func(f string) int64 {
		st, err := os.Stat(filepath.Join(prev, f))
		require.NoError(t, err)
		return (st.Size() + page - 1) / page * page
	}
	u, o, e, j := pages(unetMasters), pages(optimizerFile), pages(emaFile), pages(stateFile)
	cases := []struct {
		free int64
		file string
	}{
		{0, unetMasters},
		{u / 2 / page * page, unetMasters},
		{u + o/2/page*page, optimizerFile},
		{u + o + e/2/page*page, emaFile},
		{u + o + e, stateFile},
		{u + o + e + j, latestFile},
	}
	next := filepath.Join(c.Out, CheckpointName(2))
	for _, tc := range cases {
		release := atomicfiletest.Fill(t, mnt, tc.free)
		_, err := tr.Checkpoint()
		release()
		require.Error(t, err, "%d bytes free", tc.free)
		require.ErrorIs(t, err, syscall.ENOSPC)
		msg := err.Error()
		require.Contains(t, msg, "no space left on device")
		require.Contains(t, msg, string(filepath.Separator)+tc.file+":", "with %d bytes free the disk should fill while writing %s", tc.free, tc.file)
		t.Logf("%d bytes free: %s", tc.free, msg)
		after := snapshot(t, c.Out)
		if tc.file == latestFile {
			for k := range after {
				if strings.HasPrefix(k, CheckpointName(2)+"/") {
					delete(after, k)
				}
			}
		}
		requireSameFiles(t, before, after, "after a full disk")
		cp, err := FindCheckpoint(c.Out)
		require.NoError(t, err)
		require.Equal(t, prev, cp)
	}
	cp, err := tr.Checkpoint()
	require.NoError(t, err)
	require.Equal(t, next, cp)
	cp, err = FindCheckpoint(c.Out)
	require.NoError(t, err)
	require.Equal(t, next, cp)
}
