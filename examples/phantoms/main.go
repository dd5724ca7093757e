// Command phantoms writes a dataset of procedural chest radiograph
// phantoms (package phantom): PNG images with sidecar .txt captions (the
// impression of each phantom's report), the folder layout that
// diffusion/dataset opens and examples/train reads, and a CheXpert-style
// labels.csv.
//
//	go run ./examples/phantoms -n 1000 -size 256 -seed 1 -out /tmp/phantoms
//	go run ./examples/phantoms -grid docs/phantoms.png   # the preview sheet
//
// The output is deterministic: the same flags write byte-identical files,
// whatever -workers is. Image i is phantom.Random(phantom.DatasetSeed(seed,
// i), ...), so a dataset's first images do not depend on -n.
package main

import (
	"bytes"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/roentgo/roentgo/internal/atomicfile"
	"github.com/roentgo/roentgo/phantom"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

type config struct {
	n, size, workers, bits int
	seed                   uint64
	rate                   float64
	out                    string
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("phantoms", flag.ContinueOnError)
	var c config
	fs.IntVar(&c.n, "n", 100, "number of images")
	fs.IntVar(&c.size, "size", 256, "image width and height, pixels")
	fs.Uint64Var(&c.seed, "seed", 1, "dataset seed")
	fs.StringVar(&c.out, "out", "", "folder to write (new or empty)")
	fs.Float64Var(&c.rate, "findings-rate", 0.5, "fraction of images with findings (pathology or support devices)")
	fs.IntVar(&c.workers, "workers", runtime.GOMAXPROCS(0), "rendering goroutines")
	fs.IntVar(&c.bits, "bits", 8, "PNG bit depth: 8 or 16")
	grid := fs.String("grid", "", "write the preview sheet (normal + each finding, 4x3 tiles) to this PNG instead of a dataset; captions go to stdout")
	tile := fs.Int("tile", 128, "tile size of -grid, pixels")
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, "Usage: phantoms -out DIR [-n N] [-size PX] [-seed S] [-findings-rate F] [-workers W] [-bits 8|16]\n       phantoms -grid FILE.png [-tile PX] [-seed S]\n\nWrites procedural chest radiograph phantoms with reports and labels.\n\nFlags:")
			fs.SetOutput(stderr)
			fs.PrintDefaults()
			return 0
		}
		fmt.Fprintf(stderr, "phantoms: %v (run with -h for the flags)\n", err)
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "phantoms: unexpected argument %q; the folder goes in -out\n", fs.Arg(0))
		return 2
	}
	if *grid != "" {
		if err := writeGrid(*grid, *tile, c.seed, stdout); err != nil {
			fmt.Fprintf(stderr, "phantoms: %v\n", err)
			return 1
		}
		return 0
	}
	if err := c.check(); err != nil {
		fmt.Fprintf(stderr, "phantoms: %v\n", err)
		return 2
	}
	start := time.Now()
	if err := c.write(); err != nil {
		fmt.Fprintf(stderr, "phantoms: %v\n", err)
		return 1
	}
	dt := time.Since(start).Seconds()
	fmt.Fprintf(stderr, "phantoms: wrote %d images (%dx%d, %d-bit) with captions and labels.csv to %s in %.1fs (%.1f images/s)\n",
		c.n, c.size, c.size, c.bits, c.out, dt, float64(c.n)/dt)
	return 0
}

func (c *config) check() error {
	switch {
	case c.out == "":
		return errors.New("-out is empty; expected the folder to write the dataset to")
	case c.n < 1:
		return fmt.Errorf("-n %d, expected at least 1 image", c.n)
	case c.size < phantom.MinSize || c.size > phantom.MaxSize:
		return fmt.Errorf("-size %d, expected %d to %d pixels", c.size, phantom.MinSize, phantom.MaxSize)
	case !(c.rate >= 0 && c.rate <= 1):
		return fmt.Errorf("-findings-rate %v, expected a fraction in [0, 1]", c.rate)
	case c.workers < 1:
		return fmt.Errorf("-workers %d, expected at least 1", c.workers)
	case c.bits != 8 && c.bits != 16:
		return fmt.Errorf("-bits %d, expected 8 or 16", c.bits)
	}
	if es, err := os.ReadDir(c.out); err == nil && len(es) > 0 {
		return fmt.Errorf("-out %s is not empty; expected a new or empty folder", c.out)
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("-out %s: %v", c.out, err)
	}
	return nil
}

// name returns image i's file stem: zero-padded, at least five digits.
func (c *config) name(i int) string {
	w := max(len(fmt.Sprint(c.n-1)), 5)
	return fmt.Sprintf("%0*d", w, i)
}

// write renders and writes the dataset with c.workers goroutines.
func (c *config) write() error {
	if err := os.MkdirAll(c.out, 0o755); err != nil {
		return err
	}
	rows := make([][]string, c.n)
	errs := make([]error, c.n)
	jobs := make(chan int)
	var wg sync.WaitGroup
	var mu sync.Mutex
	failed := false
	for range min(c.workers, c.n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				rows[i], errs[i] = c.one(i)
				if errs[i] != nil {
					mu.Lock()
					failed = true
					mu.Unlock()
				}
			}
		}()
	}
	for i := range c.n {
		mu.Lock()
		stop := failed
		mu.Unlock()
		if stop {
			break
		}
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	w.Write(phantom.Columns())
	w.WriteAll(rows)
	if err := w.Error(); err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(c.out, "labels.csv"), b.Bytes())
}

// one renders image i and writes its PNG and caption.
func (c *config) one(i int) ([]string, error) {
	p := phantom.Random(phantom.DatasetSeed(c.seed, i), phantom.Options{FindingsRate: c.rate})
	im, err := phantom.Render(p, c.size, c.size)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.DefaultCompression}
	if c.bits == 16 {
		err = enc.Encode(&b, im.Gray16())
	} else {
		err = enc.Encode(&b, im.Gray())
	}
	if err != nil {
		return nil, err
	}
	stem := c.name(i)
	if err := atomicfile.WriteFile(filepath.Join(c.out, stem+".png"), b.Bytes()); err != nil {
		return nil, err
	}
	rep := phantom.MakeReport(p)
	if err := atomicfile.WriteFile(filepath.Join(c.out, stem+".txt"), []byte(rep.Text+"\n")); err != nil {
		return nil, err
	}
	return rep.Row(stem+".png", p), nil
}

// writeGrid writes the preview sheet and prints each tile's caption.
func writeGrid(path string, tile int, seed uint64, stdout io.Writer) error {
	if tile < phantom.MinSize || tile > 1024 {
		return fmt.Errorf("-tile %d, expected %d to 1024 pixels", tile, phantom.MinSize)
	}
	ps := phantom.Showcase(seed)
	g, err := phantom.Grid(ps, tile, 4)
	if err != nil {
		return err
	}
	var b bytes.Buffer
	if err := (&png.Encoder{CompressionLevel: png.BestCompression}).Encode(&b, g); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(path, b.Bytes()); err != nil {
		return err
	}
	for i, p := range ps {
		fmt.Fprintf(stdout, "%d (row %d, column %d): %s\n", i+1, i/4+1, i%4+1, phantom.MakeReport(p).Text)
	}
	return nil
}
