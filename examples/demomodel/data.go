package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"sync"

	"github.com/roentgo/roentgo/diffusion/pipeline"
	"github.com/roentgo/roentgo/phantom"
	"github.com/roentgo/roentgo/tensor"
)

// recipeFile records the settings that fix a work folder's data and
// architecture; later runs must agree with it.
const recipeFile = "recipe.json"

// recipe is the content of recipeFile.
type recipe struct {
	Images     int     `json:"images"`
	Resolution int     `json:"resolution"`
	Seed       uint64  `json:"seed"`
	Rate       float64 `json:"findings_rate"`
	Vocab      int     `json:"vocab_size"`
}

// path returns a path inside the work folder.
func (o *options) path(parts ...string) string {
	return filepath.Join(append([]string{o.Out}, parts...)...)
}

// checkRecipe compares the flags with the work folder's recipe.json (when
// it exists) and returns the stored recipe.
func (o *options) checkRecipe() (*recipe, error) {
	b, err := os.ReadFile(o.path(recipeFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var r recipe
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %v", o.path(recipeFile), err)
	}
	if r.Images != o.Images || r.Resolution != o.Res || r.Seed != o.Seed || r.Rate != o.Rate {
		return nil, fmt.Errorf("the work folder %s was made with -images %d -resolution %d -seed %d -findings-rate %v; give the same flags or use a new -out",
			o.Out, r.Images, r.Resolution, r.Seed, r.Rate)
	}
	return &r, nil
}

// needRecipe returns the recipe, which stage data writes.
func (o *options) needRecipe() (*recipe, error) {
	r, err := o.checkRecipe()
	if err == nil && r == nil {
		err = fmt.Errorf("%s has no %s; run stage data first", o.Out, recipeFile)
	}
	return r, err
}

// imageName returns image i's file stem.
func imageName(i int) string { return fmt.Sprintf("%05d", i) }

// stageData writes the phantoms (OUT/data: NNNNN.png, NNNNN.txt,
// labels.csv; images already written are kept, they are deterministic),
// the reduced tokenizer and the random-weight model OUT/init.
func (o *options) stageData(ctx context.Context) error {
	if _, err := o.checkRecipe(); err != nil {
		return err
	}
	dir := o.path("data")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	rows := make([][]string, o.Images)
	errs := make([]error, o.Images)
	jobs := make(chan int)
	var wg sync.WaitGroup
	made := 0
	var mu sync.Mutex
	for range min(o.Workers, o.Images) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				var fresh bool
				rows[i], fresh, errs[i] = o.phantom(dir, i)
				if fresh {
					mu.Lock()
					made++
					mu.Unlock()
				}
			}
		}()
	}
	for i := 0; i < o.Images && ctx.Err() == nil; i++ {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	if ctx.Err() != nil {
		return errInterrupted
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	w.Write(phantom.Columns())
	w.WriteAll(rows)
	if err := w.Error(); err != nil {
		return err
	}
	if err := pipeline.WriteFileAtomic(filepath.Join(dir, "labels.csv"), b.Bytes()); err != nil {
		return err
	}
	o.logf("data: %d phantoms in %s (%d rendered now)", o.Images, dir, made)

	// The tokenizer and the initial model.
	full, err := loadFullTokenizer(o.Tokenizer)
	if err != nil {
		return fmt.Errorf("the full CLIP tokenizer (-clip-tokenizer): %v", err)
	}
	rv, err := reduceVocab(full, vocabCorpus(o.Seed, o.Rate, o.Images))
	if err != nil {
		return fmt.Errorf("reduced vocabulary: %v", err)
	}
	o.logf("data: reduced CLIP vocabulary: %d tokens (%d words in the corpus; %d merges of %d)", rv.Size, rv.Words, rv.Size-514, len(full.merges))
	if _, err := os.Stat(o.path("init", "model_index.json")); err != nil {
		a, err := demoArchitecture(rv.Size, o.Res)
		if err != nil {
			return err
		}
		m, err := newRandomModels(a, o.Seed, tensor.F32)
		if err != nil {
			return err
		}
		if err := writeFolderAtomic(o.path("init"), func(tmp string) error {
			return writeModelFolder(tmp, rv, o.Res, 1, m.text.Params(), m.unet.Params(), m.vae.Params())
		}); err != nil {
			return err
		}
		o.logf("data: random-weight model in %s", o.path("init"))
	}
	rb, err := json.MarshalIndent(recipe{Images: o.Images, Resolution: o.Res, Seed: o.Seed, Rate: o.Rate, Vocab: rv.Size}, "", "  ")
	if err != nil {
		return err
	}
	return pipeline.WriteFileAtomic(o.path(recipeFile), rb)
}

// phantom renders and writes image i unless its files exist; it returns
// its labels row and whether it was rendered now.
func (o *options) phantom(dir string, i int) ([]string, bool, error) {
	p := phantom.Random(phantom.DatasetSeed(o.Seed, i), phantom.Options{FindingsRate: o.Rate})
	rep := phantom.MakeReport(p)
	stem := imageName(i)
	row := rep.Row(stem+".png", p)
	pngPath, txtPath := filepath.Join(dir, stem+".png"), filepath.Join(dir, stem+".txt")
	_, e1 := os.Stat(pngPath)
	_, e2 := os.Stat(txtPath)
	if e1 == nil && e2 == nil {
		return row, false, nil
	}
	im, err := phantom.Render(p, o.Res, o.Res)
	if err != nil {
		return nil, false, err
	}
	var b bytes.Buffer
	if err := png.Encode(&b, im.Gray()); err != nil {
		return nil, false, err
	}
	if err := pipeline.WriteFileAtomic(pngPath, b.Bytes()); err != nil {
		return nil, false, err
	}
	if err := pipeline.WriteFileAtomic(txtPath, []byte(rep.Text+"\n")); err != nil {
		return nil, false, err
	}
	return row, true, nil
}

// writeFolderAtomic creates the folder dir by calling fill on a temporary
// folder beside it and renaming it when fill succeeds (an existing dir is
// replaced).
func writeFolderAtomic(dir string, fill func(tmp string) error) error {
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "."+filepath.Base(dir)+".tmp-")
	if err != nil {
		return err
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	if err := fill(tmp); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	if err := os.Rename(tmp, dir); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	return nil
}
