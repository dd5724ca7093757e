package dataset

import (
	"errors"
	"fmt"
	"io"
	"math/bits"
	"sync"
)

// Position is a place in the iteration order: the Index-th sample of epoch
// Epoch (both from 0). A training checkpoint stores the iterator's Position
// and resumes with Dataset.Iter(pos); the samples that follow are the same
// as those an uninterrupted run would have produced.
type Position struct {
	Epoch int
	Index int
}

// splitmix64 is the generator behind shuffling and flips. Its algorithm is
// part of this package's contract (orders must not change between
// versions): state += 0x9E3779B97F4A7C15, then the usual mix.
type splitmix64 struct{ s uint64 }

func (r *splitmix64) next() uint64 {
	r.s += 0x9E3779B97F4A7C15
	z := r.s
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
	z = (z ^ (z >> 27)) * 0x94D049BB133111EB
	return z ^ (z >> 31)
}

// below returns a uniform value in [0, n) (Lemire's multiply-and-reject).
func (r *splitmix64) below(n uint64) uint64 {
	hi, lo := bits.Mul64(r.next(), n)
	if lo < n {
		thresh := -n % n
		for lo < thresh {
			hi, lo = bits.Mul64(r.next(), n)
		}
	}
	return hi
}

// mix combines values into one seed.
func mix(vals ...uint64) uint64 {
	r := splitmix64{s: 0x243F6A8885A308D3}
	var h uint64
	for _, v := range vals {
		r.s ^= v
		h = r.next()
	}
	return h
}

// Order returns the record indices of an epoch in iteration order: 0..Len-1
// without Options.Shuffle, else a Fisher-Yates shuffle (from the last index
// down) driven by splitmix64 seeded with mix(Seed, epoch).
func (d *Dataset) Order(epoch int) []int {
	n := len(d.records)
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	if !d.opts.Shuffle {
		return order
	}
	r := splitmix64{s: mix(d.opts.Seed, uint64(epoch), 0x5348554646)}
	for i := n - 1; i > 0; i-- {
		j := int(r.below(uint64(i + 1)))
		order[i], order[j] = order[j], order[i]
	}
	return order
}

// flipAt reports whether record rec is flipped in epoch epoch: a value drawn
// from mix(Seed, epoch, rec) below FlipProbability.
func (d *Dataset) flipAt(epoch, rec int) bool {
	p := d.opts.FlipProbability
	if p <= 0 {
		return false
	}
	u := float64(mix(d.opts.Seed, uint64(epoch), uint64(rec), 0x464C4950)>>11) / (1 << 53)
	return u < p
}

// loadResult is what a worker returns for one position.
type loadResult struct {
	s           *Sample
	err         error
	pos         Position
	skip        bool // a data problem: skipped (counted) unless Strict
	noCaption   bool
	flipRefused bool
}

// Load reads record i, unflipped, as the iterator would (caption, decode,
// preprocess or Options.Load). Errors are *ItemError.
func (d *Dataset) Load(i int) (*Sample, error) {
	if i < 0 || i >= len(d.records) {
		return nil, fmt.Errorf("dataset: record %d out of range [0, %d)", i, len(d.records))
	}
	r := d.load(i, Position{}, false)
	return r.s, r.err
}

// load reads one record for position pos.
func (d *Dataset) load(i int, pos Position, flip bool) (res loadResult) {
	res.pos = pos
	defer func() {
		// Decoders are meant never to panic; if one does on some corrupt
		// file, the file is reported rather than the program brought down.
		if p := recover(); p != nil {
			res = loadResult{pos: pos, skip: true, err: &ItemError{Path: d.records[i].Image, Err: fmt.Errorf("decoder panic: %v", p)}}
		}
	}()
	rec := d.records[i]
	caption, err := d.caption(&rec)
	if err != nil {
		return loadResult{pos: pos, skip: true, err: &ItemError{Path: rec.Image, Err: fmt.Errorf("caption: %v", err)}}
	}
	if caption == "" {
		what := "empty caption"
		if rec.Report {
			what = "report " + rec.CaptionFile + " has no IMPRESSION or FINDINGS section"
		} else if rec.CaptionFile != "" {
			what = "caption file " + rec.CaptionFile + " is empty"
		}
		return loadResult{pos: pos, skip: true, noCaption: true, err: &ItemError{Path: rec.Image, Err: fmt.Errorf("%w: %s", ErrNoCaption, what)}}
	}
	if flip {
		swapped, ok := SwapLaterality(caption)
		if ok {
			caption = swapped
		} else {
			flip = false
			res.flipRefused = true
		}
	}
	res2 := d.pixels(rec, i, flip)
	if res2.err != nil {
		return loadResult{pos: pos, skip: true, err: res2.err}
	}
	res2.s.Caption = caption
	res2.s.Pos = pos
	res2.flipRefused = res.flipRefused
	res2.pos = pos
	return res2
}

// pixels produces the sample data of record i.
func (d *Dataset) pixels(rec Record, i int, flip bool) loadResult {
	res := d.opts.Resolution
	decode := func() ([]float32, error) {
		b, err := d.readImageFile(rec.Image)
		if err != nil {
			return nil, err
		}
		img, err := decodeImage(b, d.maxPix)
		if err != nil {
			return nil, err
		}
		out := make([]float32, 3*res*res)
		preprocess(img, res, flip, out)
		return out, nil
	}
	var data []float32
	var shape []int
	var err error
	if d.opts.Load != nil {
		data, shape, err = d.opts.Load(rec, flip, decode)
		if err == nil {
			n := 1
			for _, s := range shape {
				n *= s
			}
			if len(shape) == 0 || n != len(data) {
				err = fmt.Errorf("Options.Load returned %d values for shape %v", len(data), shape)
			}
		}
	} else {
		data, err = decode()
		shape = []int{3, res, res}
	}
	if err != nil {
		return loadResult{err: &ItemError{Path: rec.Image, Err: err}}
	}
	return loadResult{s: &Sample{Pixels: data, Shape: shape, Path: rec.Image, ID: rec.ID, Split: rec.Split, Flipped: flip, Index: i}}
}

// Iterator yields samples in the order of Dataset.Order, epoch after
// epoch, decoding ahead on worker goroutines. Its methods are not safe for
// concurrent use; Close must be called.
type Iterator struct {
	d       *Dataset
	pos     Position // of the next sample to return
	pending chan chan loadResult
	done    chan struct{}
	wg      sync.WaitGroup
	stats   Stats
	closed  bool
	err     error
}

// Iter returns an iterator that starts at from ({0, 0} for the beginning).
// With Options.Epochs > 0 it ends (io.EOF) after that many epochs.
func (d *Dataset) Iter(from Position) (*Iterator, error) {
	n := len(d.records)
	if from.Epoch < 0 || from.Index < 0 || from.Index > n {
		return nil, fmt.Errorf("dataset: position %+v out of range: expected epoch >= 0 and index in [0, %d]", from, n)
	}
	if from.Index == n {
		from = Position{from.Epoch + 1, 0}
	}
	workers := d.opts.Workers
	if workers == 0 {
		workers = defaultWorkers()
	}
	prefetch := d.opts.Prefetch
	if prefetch == 0 {
		prefetch = 2 * workers
	}
	it := &Iterator{
		d:       d,
		pos:     from,
		pending: make(chan chan loadResult, prefetch),
		done:    make(chan struct{}),
		stats:   d.Stats(),
	}
	type job struct {
		rec  int
		pos  Position
		flip bool
		out  chan loadResult
	}
	jobs := make(chan job)
	for w := 0; w < workers; w++ {
		it.wg.Add(1)
		go func() {
			defer it.wg.Done()
			for j := range jobs {
				j.out <- d.load(j.rec, j.pos, j.flip)
			}
		}()
	}
	it.wg.Add(1)
	go func() { // dispatcher: positions in order
		defer it.wg.Done()
		defer close(jobs)
		defer close(it.pending)
		pos := from
		for d.opts.Epochs == 0 || pos.Epoch < d.opts.Epochs {
			order := d.Order(pos.Epoch)
			for ; pos.Index < n; pos.Index++ {
				rec := order[pos.Index]
				out := make(chan loadResult, 1)
				select {
				case it.pending <- out:
				case <-it.done:
					return
				}
				select {
				case jobs <- job{rec: rec, pos: pos, flip: d.flipAt(pos.Epoch, rec), out: out}:
				case <-it.done:
					return
				}
			}
			pos = Position{pos.Epoch + 1, 0}
		}
	}()
	return it, nil
}

// Next returns the next sample; io.EOF after the last epoch. A record that
// cannot be used (no caption, unreadable or corrupt image) is skipped and
// counted in Stats, or returned as an *ItemError with Options.Strict (the
// iterator then stays at that error, and Position is the failing record's).
func (it *Iterator) Next() (*Sample, error) {
	if it.err != nil {
		return nil, it.err
	}
	if it.closed {
		return nil, errors.New("dataset: Next on a closed iterator")
	}
	for {
		out, ok := <-it.pending
		if !ok {
			it.err = io.EOF
			return nil, io.EOF
		}
		r := <-out
		if r.err != nil && (it.d.opts.Strict || !r.skip) {
			it.pos = r.pos // resuming retries the failing record
			it.err = r.err
			return nil, r.err
		}
		it.pos = it.advance(r.pos)
		if r.flipRefused {
			it.stats.FlipRefused++
		}
		if r.err != nil {
			if r.noCaption {
				it.stats.NoCaption++
			} else {
				it.stats.Corrupt++
			}
			it.stats.note(r.err.Error())
			continue
		}
		it.stats.Loaded++
		if r.s.Flipped {
			it.stats.Flipped++
		}
		return r.s, nil
	}
}

// advance returns the position after p.
func (it *Iterator) advance(p Position) Position {
	p.Index++
	if p.Index >= len(it.d.records) {
		p = Position{p.Epoch + 1, 0}
	}
	return p
}

// Position returns the position of the next sample Next will consider: a
// checkpoint that stores it resumes right after the last returned sample
// (records skipped in between are skipped again).
func (it *Iterator) Position() Position { return it.pos }

// Stats returns the dataset's open-time counts plus what this iterator has
// loaded and skipped so far.
func (it *Iterator) Stats() Stats {
	s := it.stats
	s.Skipped = append([]string(nil), s.Skipped...)
	return s
}

// Close stops the workers and waits for them.
func (it *Iterator) Close() {
	if it.closed {
		return
	}
	it.closed = true
	close(it.done)
	// Drain so that the dispatcher is not blocked on a full pending channel.
	go func() {
		for range it.pending {
		}
	}()
	it.wg.Wait()
}
