package train

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"sync"
)

// LatentCache is a file of VAE posteriors keyed by what determines them, so
// that each training image is encoded once and reused across epochs and
// runs. A key (CacheKey) covers the image file (path, size, modification
// time), the resolution, the flip and the VAE (the hash of its folder's
// config and weights); a changed image or VAE simply misses.
//
// The file is a header ("RGLATC01") followed by appended records: the
// 32-byte key, the rank and dimensions (uint32), the float32 values and a
// CRC-32 (IEEE) of everything before it in the record, all little endian.
// Opening scans the records into an index; a torn or corrupt tail (a run
// killed while appending) is cut off. Reads use ReadAt on the open file.
// A LatentCache is safe for concurrent use.
type LatentCache struct {
	mu     sync.Mutex
	f      *os.File
	path   string
	index  map[[32]byte]cacheEntry
	end    int64
	hits   int
	misses int
}

// cacheEntry locates a record's values.
type cacheEntry struct {
	off   int64 // of the first value
	shape []int
}

// latentMagic starts a cache file.
const latentMagic = "RGLATC01"

// maxCacheDims bounds a record's rank, maxCacheValues its size, so that a
// corrupt length cannot make the scan allocate without bound.
const (
	maxCacheDims   = 8
	maxCacheValues = 1 << 28
)

// OpenLatentCache opens (or creates) the cache file path.
func OpenLatentCache(path string) (*LatentCache, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("train: latent cache: %w", err)
	}
	c := &LatentCache{f: f, path: path, index: map[[32]byte]cacheEntry{}}
	if err := c.scan(); err != nil {
		f.Close()
		return nil, err
	}
	return c, nil
}

// scan reads the index and truncates a bad tail.
func (c *LatentCache) scan() error {
	st, err := c.f.Stat()
	if err != nil {
		return fmt.Errorf("train: latent cache %s: %w", c.path, err)
	}
	if st.Size() == 0 {
		if _, err := c.f.WriteAt([]byte(latentMagic), 0); err != nil {
			return fmt.Errorf("train: latent cache %s: %w", c.path, err)
		}
		c.end = int64(len(latentMagic))
		return nil
	}
	head := make([]byte, len(latentMagic))
	if _, err := c.f.ReadAt(head, 0); err != nil || string(head) != latentMagic {
		return fmt.Errorf("train: %s is not a latent cache file (no %q header); remove it or choose another path", c.path, latentMagic)
	}
	r := bufio.NewReaderSize(io.NewSectionReader(c.f, 0, st.Size()), 1<<20)
	r.Discard(len(latentMagic))
	off := int64(len(latentMagic))
	for {
		n, key, shape, ok := readRecord(r)
		if !ok {
			break
		}
		values := int64(1)
		for _, d := range shape {
			values *= int64(d)
		}
		hdr := int64(32 + 4 + 4*len(shape))
		c.index[key] = cacheEntry{off: off + hdr, shape: shape}
		off += n
	}
	c.end = off
	if off < st.Size() {
		if err := c.f.Truncate(off); err != nil {
			return fmt.Errorf("train: latent cache %s: cutting a damaged tail: %w", c.path, err)
		}
	}
	return nil
}

// readRecord reads one record, returning its length, key and shape; ok is
// false at the end of the file or at a damaged record.
func readRecord(r *bufio.Reader) (n int64, key [32]byte, shape []int, ok bool) {
	h := crc32.NewIEEE()
	if _, err := io.ReadFull(r, key[:]); err != nil {
		return 0, key, nil, false
	}
	h.Write(key[:])
	var b4 [4]byte
	if _, err := io.ReadFull(r, b4[:]); err != nil {
		return 0, key, nil, false
	}
	h.Write(b4[:])
	rank := binary.LittleEndian.Uint32(b4[:])
	if rank == 0 || rank > maxCacheDims {
		return 0, key, nil, false
	}
	total := int64(1)
	for i := uint32(0); i < rank; i++ {
		if _, err := io.ReadFull(r, b4[:]); err != nil {
			return 0, key, nil, false
		}
		h.Write(b4[:])
		d := binary.LittleEndian.Uint32(b4[:])
		total *= int64(d)
		if d == 0 || total > maxCacheValues {
			return 0, key, nil, false
		}
		shape = append(shape, int(d))
	}
	buf := make([]byte, 4096)
	left := total * 4
	for left > 0 {
		k := min(left, int64(len(buf)))
		if _, err := io.ReadFull(r, buf[:k]); err != nil {
			return 0, key, nil, false
		}
		h.Write(buf[:k])
		left -= k
	}
	if _, err := io.ReadFull(r, b4[:]); err != nil || binary.LittleEndian.Uint32(b4[:]) != h.Sum32() {
		return 0, key, nil, false
	}
	return 32 + 4 + 4*int64(rank) + total*4 + 4, key, shape, true
}

// Get returns the values and shape stored under key.
func (c *LatentCache) Get(key [32]byte) ([]float32, []int, bool, error) {
	c.mu.Lock()
	e, ok := c.index[key]
	if !ok {
		c.misses++
	} else {
		c.hits++
	}
	c.mu.Unlock()
	if !ok {
		return nil, nil, false, nil
	}
	n := 1
	for _, d := range e.shape {
		n *= d
	}
	raw := make([]byte, 4*n)
	if _, err := c.f.ReadAt(raw, e.off); err != nil {
		return nil, nil, false, fmt.Errorf("train: latent cache %s: %w", c.path, err)
	}
	out := make([]float32, n)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	return out, append([]int(nil), e.shape...), true, nil
}

// Put appends values of the given shape under key (a key already present
// is left as it is).
func (c *LatentCache) Put(key [32]byte, values []float32, shape []int) error {
	n := 1
	for _, d := range shape {
		n *= d
	}
	if len(shape) == 0 || len(shape) > maxCacheDims || n != len(values) || n > maxCacheValues {
		return fmt.Errorf("train: latent cache: %d values for shape %v", len(values), shape)
	}
	rec := make([]byte, 0, 32+4+4*len(shape)+4*n+4)
	rec = append(rec, key[:]...)
	rec = binary.LittleEndian.AppendUint32(rec, uint32(len(shape)))
	for _, d := range shape {
		rec = binary.LittleEndian.AppendUint32(rec, uint32(d))
	}
	for _, v := range values {
		rec = binary.LittleEndian.AppendUint32(rec, math.Float32bits(v))
	}
	rec = binary.LittleEndian.AppendUint32(rec, crc32.ChecksumIEEE(rec))
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.index[key]; ok {
		return nil
	}
	if _, err := c.f.WriteAt(rec, c.end); err != nil {
		return fmt.Errorf("train: latent cache %s: %w", c.path, err)
	}
	c.index[key] = cacheEntry{off: c.end + int64(32+4+4*len(shape)), shape: append([]int(nil), shape...)}
	c.end += int64(len(rec))
	return nil
}

// Len returns the number of cached entries.
func (c *LatentCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.index)
}

// Stats returns the lookups that hit and missed since the cache was opened.
func (c *LatentCache) Stats() (hits, misses int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hits, c.misses
}

// Close syncs and closes the file.
func (c *LatentCache) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.f == nil {
		return nil
	}
	err := errors.Join(c.f.Sync(), c.f.Close())
	c.f = nil
	return err
}

// CacheKey returns the key of the posterior of the image file at path
// (absolute), encoded at the given resolution and flip by the VAE whose
// folder hash is vaeHash.
func CacheKey(path string, resolution int, flip bool, vaeHash string) ([32]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return [32]byte{}, err
	}
	h := sha256.New()
	fmt.Fprintf(h, "roentgo latent v1\x00%s\x00%d\x00%t\x00%s\x00%d\x00%d", vaeHash, resolution, flip, path, st.Size(), st.ModTime().UnixNano())
	var k [32]byte
	copy(k[:], h.Sum(nil))
	return k, nil
}
