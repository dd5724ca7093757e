package dataset

import (
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"strings"
)

// scanFolder lists a folder of images with sidecar captions (the diffusers
// / kohya convention): every PNG, JPEG or DICOM file (by extension: .png,
// .jpg, .jpeg, .dcm, .dicom) in the tree, in lexical order, with the caption
// in the file of the same name and extension .txt (else .caption) beside it.
// Folders and files whose names start with "." are skipped. When an image
// lies under a top-level folder named train, test, val, valid, validate or
// validation, that is its split (as Hugging Face's imagefolder does).
func (d *Dataset) scanFolder() error {
	err := filepath.WalkDir(d.dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("dataset: %v", err)
		}
		name := e.Name()
		if p != d.dir && strings.HasPrefix(name, ".") {
			if e.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !e.IsDir() {
			return nil
		}
		entries, err := readDirNames(p)
		if err != nil {
			return fmt.Errorf("dataset: %v", err)
		}
		rel, err := filepath.Rel(d.dir, p)
		if err != nil {
			return fmt.Errorf("dataset: %v", err)
		}
		rel = filepath.ToSlash(rel)
		for _, n := range entries {
			if strings.HasPrefix(n.name, ".") || n.dir || !isImageName(n.name) {
				continue
			}
			img := path.Join(rel, n.name)
			stem := strings.TrimSuffix(n.name, path.Ext(n.name))
			capFile := ""
			for _, ext := range []string{".txt", ".caption"} {
				if c, ok := n.siblings[stem+ext]; ok && !c {
					capFile = path.Join(rel, stem+ext)
					break
				}
			}
			split := ""
			if i := strings.IndexByte(img, '/'); i > 0 {
				switch s := normSplit(img[:i]); s {
				case "train", "test", "validate":
					split = s
				}
			}
			if !d.keepSplit(split) {
				d.stats.FilteredSplit++
				continue
			}
			if capFile == "" {
				if d.opts.Strict {
					return &ItemError{Path: img, Err: fmt.Errorf("%w: expected a sidecar %s.txt", ErrNoCaption, stem)}
				}
				d.stats.NoCaption++
				d.stats.note(img + ": no sidecar caption " + stem + ".txt")
				continue
			}
			d.records = append(d.records, Record{Image: img, CaptionFile: capFile, ID: img, Split: split})
		}
		return nil
	})
	return err
}

type dirName struct {
	name     string
	dir      bool
	siblings map[string]bool // name -> is a directory, shared by the folder's entries
}

// readDirNames lists a folder's entries in lexical order.
func readDirNames(p string) ([]dirName, error) {
	es, err := readDir(p)
	if err != nil {
		return nil, err
	}
	sib := make(map[string]bool, len(es))
	out := make([]dirName, len(es))
	for i, e := range es {
		sib[e.Name()] = e.IsDir()
		out[i] = dirName{name: e.Name(), dir: e.IsDir(), siblings: sib}
	}
	return out, nil
}
