package pipeline

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/roentgo/roentgo/internal/errctx"
)

// hashJob computes a model hash in the background (hashing gigabytes of
// weights takes seconds, which overlap with loading and sampling).
type hashJob struct {
	done chan struct{}
	sum  string
	err  error
}

func startHash(dir string) *hashJob {
	j := &hashJob{done: make(chan struct{})}
	go func() {
		defer close(j.done)
		j.sum, j.err = HashFolder(dir)
	}()
	return j
}

func fixedHash(s string) *hashJob {
	j := &hashJob{done: make(chan struct{}), sum: s}
	close(j.done)
	return j
}

// ModelHash returns the first 12 hex digits of HashFolder of the model's
// folder, or of the SHA-256 of a single-file checkpoint (waiting for the
// background computation Load started), the hash of the generating parameters
// for a random model, or "" when unknown.
func (p *Pipeline) ModelHash() string {
	if p.hash == nil {
		return ""
	}
	<-p.hash.done
	if p.hash.err != nil || len(p.hash.sum) < 12 {
		return ""
	}
	return p.hash.sum[:12]
}

// HashFolder returns the hex SHA-256 identifying a diffusers folder:
// SHA-256 over model_index.json, every component's config and tokenizer
// files and every weights file (.safetensors, .bin, .ckpt), in sorted
// order of their slash-separated paths relative to dir, each contributing
// its path, a NUL, its size as decimal text, a NUL and its bytes. Other files
// (README, images) do not count.
func HashFolder(dir string) (string, error) {
	var files []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if strings.HasPrefix(d.Name(), ".") && path != dir {
				return filepath.SkipDir
			}
			return nil
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		switch ext := filepath.Ext(rel); ext {
		case ".json", ".txt", ".safetensors", ".bin", ".ckpt":
			if ext == ".txt" && !strings.HasPrefix(rel, "tokenizer/") {
				return nil
			}
			files = append(files, rel)
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("pipeline: hashing %s: %w", dir, err)
	}
	sort.Strings(files)
	h := sha256.New()
	for _, rel := range files {
		f, err := os.Open(filepath.Join(dir, filepath.FromSlash(rel)))
		if err != nil {
			return "", errctx.Wrap("pipeline: hashing", err)
		}
		st, err := f.Stat()
		if err == nil {
			fmt.Fprintf(h, "%s\x00%d\x00", rel, st.Size())
			_, err = io.Copy(h, f)
		}
		f.Close()
		if err != nil {
			return "", fmt.Errorf("pipeline: hashing %s: %w", rel, err)
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
