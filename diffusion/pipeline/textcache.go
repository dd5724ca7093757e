package pipeline

import (
	"container/list"
	"errors"

	"github.com/roentgo/roentgo/tensor"
)

// TextCache keeps the text encoder's outputs (last hidden states [1, S, D],
// on the pipeline's device) of recently used texts, so that a program that
// generates many batches from a few prompts (a prompt file with n images a
// row, the negative prompt of every row) encodes each text once. It holds at
// most its capacity's texts and drops the least recently used. A cache
// belongs to one Pipeline; it is not safe for concurrent use.
type TextCache struct {
	capacity int
	entries  map[string]*list.Element
	order    *list.List // front: most recently used
	owner    *Pipeline
	// Hits and Misses count the texts found and encoded.
	Hits, Misses int
}

type cacheEntry struct {
	text string
	h    *tensor.Tensor // [1, S, D]
}

// NewTextCache returns a cache of at most capacity texts (at least 1). An
// SD 1.x text embedding takes 77 x 768 x 4 bytes (236 kB) in F32.
func NewTextCache(capacity int) *TextCache {
	return &TextCache{capacity: max(capacity, 1), entries: map[string]*list.Element{}, order: list.New()}
}

// Len returns the number of texts held.
func (c *TextCache) Len() int { return c.order.Len() }

// Close releases the cached tensors; the cache is empty afterwards.
func (c *TextCache) Close() {
	for e := c.order.Front(); e != nil; e = e.Next() {
		e.Value.(*cacheEntry).h.Release()
	}
	c.entries = map[string]*list.Element{}
	c.order.Init()
}

// trim drops the least recently used entries beyond the capacity.
func (c *TextCache) trim() {
	for c.order.Len() > c.capacity {
		e := c.order.Back()
		ce := e.Value.(*cacheEntry)
		ce.h.Release()
		delete(c.entries, ce.text)
		c.order.Remove(e)
	}
}

// encodeCached is encodeText through the cache c (nil: no cache; chunked
// prompts are never cached, since every text of a batch gets as many
// windows as the longest). Each missing text is encoded alone.
func (p *Pipeline) encodeCached(c *TextCache, texts []string, chunk bool) (*tensor.Tensor, error) {
	if c == nil || chunk {
		return p.encodeText(texts, chunk)
	}
	if c.owner == nil {
		c.owner = p
	} else if c.owner != p {
		return nil, errors.New("pipeline: the request's TextCache belongs to another pipeline")
	}
	rows := make([]*tensor.Tensor, len(texts))
	for i, t := range texts {
		if e, ok := c.entries[t]; ok {
			c.order.MoveToFront(e)
			rows[i] = e.Value.(*cacheEntry).h
			c.Hits++
			continue
		}
		h, err := p.encodeText([]string{t}, false)
		if err != nil {
			return nil, err
		}
		c.entries[t] = c.order.PushFront(&cacheEntry{text: t, h: h})
		rows[i] = h
		c.Misses++
	}
	// Entries are dropped only once the batch is assembled, so that a batch
	// with more distinct texts than the capacity still finds all of them.
	out := tensor.Cat(0, rows...)
	c.trim()
	return out, nil
}
