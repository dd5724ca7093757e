package pipeline

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
)

// hashJob computes a model hash in the background (hashing gigabytes of
// weights takes seconds, which overlap with loading and sampling).
type hashJob struct {
	done chan struct{}
	sum  string
	err  error
}

func startHash(dir string) *hashJob {
	return startHashJob(func() (string, error) { return HashFolder(dir) })
}

// startHashFS starts computing HashFS of fsys.
func startHashFS(fsys fs.FS) *hashJob {
	return startHashJob(func() (string, error) { return HashFS(fsys) })
}

func startHashJob(hash func() (string, error)) *hashJob {
	j := &hashJob{done: make(chan struct{})}
	go func() {
		defer close(j.done)
		j.sum, j.err = hash()
	}()
	return j
}

func fixedHash(s string) *hashJob {
	j := &hashJob{done: make(chan struct{}), sum: s}
	close(j.done)
	return j
}

// ModelHash returns the first 12 hex digits of HashFolder of the model's
// folder (HashFS of a model from LoadFS), or of the SHA-256 of a single-file checkpoint (waiting for the
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
// (README, images) and folders whose names start with "." do not count.
func HashFolder(dir string) (string, error) {
	if dir == "" {
		return "", errors.New("pipeline: hashing: no folder given")
	}
	sum, err := hashFS(os.DirFS(dir))
	if err != nil {
		return "", fmt.Errorf("pipeline: hashing %s: %w", dir, err)
	}
	return sum, nil
}

// HashFS is HashFolder for the diffusers folder at the root of fsys (as
// LoadFS reads it): the same files give the same hash, so a model embedded
// in a program is identified as the folder it was made from.
func HashFS(fsys fs.FS) (string, error) {
	if fsys == nil {
		return "", errors.New("pipeline: hashing: no file system given")
	}
	sum, err := hashFS(fsys)
	if err != nil {
		return "", fmt.Errorf("pipeline: hashing: %w", err)
	}
	return sum, nil
}

// hashFS computes HashFolder's hash of the root of fsys.
func hashFS(fsys fs.FS) (string, error) {
	var files []string
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if strings.HasPrefix(d.Name(), ".") && p != "." {
				return fs.SkipDir
			}
			return nil
		}
		switch ext := path.Ext(p); ext {
		case ".json", ".txt", ".safetensors", ".bin", ".ckpt":
			if ext == ".txt" && !strings.HasPrefix(p, "tokenizer/") {
				return nil
			}
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	sort.Strings(files)
	h := sha256.New()
	for _, rel := range files {
		if err := hashFSFile(h, fsys, rel); err != nil {
			return "", fmt.Errorf("%s: %w", rel, err)
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// hashFSFile writes the path, size and bytes of the file rel of fsys to h.
func hashFSFile(h io.Writer, fsys fs.FS, rel string) error {
	f, err := fsys.Open(rel)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	fmt.Fprintf(h, "%s\x00%d\x00", rel, st.Size())
	_, err = io.Copy(h, f)
	return err
}
