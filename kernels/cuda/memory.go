//go:build cuda

package cuda

import (
	"errors"
	"fmt"
	"sync"
	"unsafe"

	"github.com/roentgo/roentgo/kernels"
	"gorgonia.org/cu"
)

// Buffer is device memory holding Len elements of one dtype (F32 as float32,
// F16/BF16 as 16-bit words). A Buffer from Alloc owns a block of the caching
// allocator until Free; a View shares its parent's memory and must not outlive it.
type Buffer struct {
	dev   *Device
	ptr   cu.DevicePtr
	n     int
	dtype kernels.DType
	class int64 // allocator size class; 0 for views
	freed bool
}

// Len returns the number of elements.
func (b *Buffer) Len() int { return b.n }

// DType returns the element type.
func (b *Buffer) DType() kernels.DType { return b.dtype }

// Bytes returns the size of the elements in bytes.
func (b *Buffer) Bytes() int64 { return int64(b.n) * int64(elemSize(b.dtype)) }

// View returns the elements [off, off+n) of b as a Buffer sharing b's memory.
func (b *Buffer) View(off, n int) *Buffer {
	if off < 0 || n < 0 || off+n > b.n {
		panic(fmt.Sprintf("cuda: View [%d, %d) of a buffer of %d elements", off, off+n, b.n))
	}
	return &Buffer{dev: b.dev, ptr: b.ptr + cu.DevicePtr(int64(off)*int64(elemSize(b.dtype))), n: n, dtype: b.dtype}
}

// elemSize returns the size of one element of dtype t in bytes.
func elemSize(t kernels.DType) int { return t.Size() }

func (b *Buffer) aligned16() bool { return b == nil || uintptr(b.ptr)%16 == 0 }

// MemStats describes the allocator's state.
type MemStats struct {
	InUse        int64 // bytes in live buffers (size classes)
	Cached       int64 // bytes in the free lists, ready for reuse
	Peak         int64 // high-water mark of InUse
	DriverAllocs int   // cuMemAlloc calls so far
	DriverFrees  int   // cuMemFree calls so far
}

// allocator is a caching allocator with size-class free lists: freed blocks go
// back to their list and are handed out again without calling the driver, so a
// sampling loop that allocates the same shapes every step stops calling
// cuMemAlloc/cuMemFree after its first step.
//
// Reuse is safe without waiting for the GPU because every use of device
// memory is queued through the device goroutine onto one stream, in the order
// the calls were made: a block is freed only after the calls that use it were
// queued (its owner is done with it), so whoever gets it next queues its own
// work after them, and the stream runs it after them. For the same reason the
// free lists need no trip to the device thread: Free and cache hits of Alloc
// take the mutex on the caller's goroutine; only the driver calls
// (cuMemAlloc, cuMemFree) run on the device thread. The one rule that follows:
// queued work must not allocate when it runs (a freed block may still be read
// by work queued before it); launchers allocate their workspaces when they
// queue.
type allocator struct {
	mu   sync.Mutex
	free map[int64][]cu.DevicePtr
	st   MemStats
}

func (a *allocator) init() { a.free = map[int64][]cu.DevicePtr{} }

// cached pops a block of bytes' size class from the free lists, if one is there.
func (a *allocator) cached(bytes int64) (cu.DevicePtr, int64, bool) {
	c := sizeClass(bytes)
	a.mu.Lock()
	defer a.mu.Unlock()
	l := a.free[c]
	if len(l) == 0 {
		return 0, 0, false
	}
	p := l[len(l)-1]
	a.free[c] = l[:len(l)-1]
	a.st.Cached -= c
	a.use(c)
	return p, c, true
}

// get returns a block from the free lists or the driver. Device thread only.
func (a *allocator) get(bytes int64) (cu.DevicePtr, int64, error) {
	if p, c, ok := a.cached(bytes); ok {
		return p, c, nil
	}
	c := sizeClass(bytes)
	p, err := cu.MemAlloc(c)
	if err != nil {
		// Give the cached blocks back to the driver and try once more.
		if rerr := a.releaseCached(); rerr != nil {
			return 0, 0, rerr
		}
		p, err = cu.MemAlloc(c)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if err != nil {
		free, total, _ := cu.MemInfo()
		return 0, 0, fmt.Errorf("cuda: out of device memory allocating %d bytes (size class %d): "+
			"%d bytes in use by live buffers, %d cached, driver reports %d of %d bytes free: %w",
			bytes, c, a.st.InUse, a.st.Cached, free, total, err)
	}
	a.st.DriverAllocs++
	a.use(c)
	return p, c, nil
}

// use counts c more bytes in use. a.mu held.
func (a *allocator) use(c int64) {
	a.st.InUse += c
	a.st.Peak = max(a.st.Peak, a.st.InUse)
}

// put returns a block to its free list (any goroutine).
func (a *allocator) put(p cu.DevicePtr, c int64) {
	a.mu.Lock()
	a.free[c] = append(a.free[c], p)
	a.st.InUse -= c
	a.st.Cached += c
	a.mu.Unlock()
}

// stats returns a copy of the statistics.
func (a *allocator) stats() MemStats {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.st
}

// releaseCached gives every cached block back to the driver. Device thread only.
func (a *allocator) releaseCached() error {
	a.mu.Lock()
	free := a.free
	a.free = map[int64][]cu.DevicePtr{}
	a.mu.Unlock()
	var errs []error
	for c, l := range free {
		for _, p := range l {
			if err := cu.MemFree(p); err != nil {
				errs = append(errs, fmt.Errorf("cuda: cuMemFree(%d bytes): %w", c, err))
			}
			a.mu.Lock()
			a.st.DriverFrees++
			a.st.Cached -= c
			a.mu.Unlock()
		}
	}
	return errors.Join(errs...)
}

// releaseAll frees the cached blocks; live buffers are leaked to the context,
// which is released right after (Close).
func (a *allocator) releaseAll() error { return a.releaseCached() }

// Alloc returns a buffer of n elements of dtype t. Its contents are undefined.
func (d *Device) Alloc(t kernels.DType, n int) (*Buffer, error) {
	if n < 0 {
		panic("cuda: Alloc: negative length")
	}
	b := &Buffer{dev: d, n: n, dtype: t}
	bytes := max(b.Bytes(), 1)
	if p, c, ok := d.alloc.cached(bytes); ok {
		b.ptr, b.class = p, c
		return b, nil
	}
	err := d.do(func() error {
		p, c, err := d.alloc.get(bytes)
		b.ptr, b.class = p, c
		return err
	})
	if err != nil {
		return nil, err
	}
	return b, nil
}

// Free returns b's memory to the allocator's free list, from any goroutine.
// Work already queued that uses b still sees valid memory (one stream: later
// work comes after it). Freeing a view or freeing twice panics.
func (b *Buffer) Free() {
	if b == nil {
		return
	}
	if b.class == 0 {
		panic("cuda: Free of a buffer view")
	}
	if b.freed {
		panic("cuda: Buffer freed twice")
	}
	b.freed = true
	b.dev.alloc.put(b.ptr, b.class)
}

// MemStats returns the allocator statistics.
func (d *Device) MemStats() MemStats {
	s := d.alloc.stats()
	return s
}

// Stats returns the bytes in live buffers, the bytes cached by the allocator
// and the device's total memory (kernels.Device).
func (d *Device) Stats() (inUse, cached, total int64) {
	s := d.alloc.stats()
	return s.InUse, s.Cached, d.totalMem
}

// Free is b.Free() (kernels.Device): it returns b's memory to the allocator.
func (d *Device) Free(b *Buffer) { b.Free() }

// View is b.View(off, n) (kernels.Device).
func (d *Device) View(b *Buffer, off, n int) *Buffer { return b.View(off, n) }

// Trim waits for queued work and gives the allocator's cached blocks back to the driver.
func (d *Device) Trim() error {
	return d.do(func() error {
		if err := d.stream.Synchronize(); err != nil {
			return fmt.Errorf("cuda: synchronize: %w", err)
		}
		return d.alloc.releaseCached()
	})
}

func checkCopy(op string, b *Buffer, t kernels.DType, n int) {
	if b.dtype != t {
		panic(fmt.Sprintf("cuda: %s: buffer is %v, host data is %v", op, b.dtype, t))
	}
	if n > b.n {
		panic(fmt.Sprintf("cuda: %s: %d host elements, buffer holds %d", op, n, b.n))
	}
}

// UploadF32 queues a copy of src into the first len(src) elements of the F32
// buffer dst. The driver stages pageable host memory before returning, so src
// may be reused as soon as UploadF32 returns; the copy itself completes in
// stream order (before any kernel queued later).
func (d *Device) UploadF32(dst *Buffer, src []float32) error {
	checkCopy("UploadF32", dst, kernels.F32, len(src))
	if len(src) == 0 {
		return nil
	}
	return d.do(func() error {
		return wrap("upload", cu.MemcpyHtoDAsync(dst.ptr, unsafe.Pointer(&src[0]), int64(len(src))*4, d.stream))
	})
}

// UploadU16 is UploadF32 for F16/BF16 buffers (raw 16-bit words).
func (d *Device) UploadU16(dst *Buffer, src []uint16) error {
	if dst.dtype == kernels.F32 {
		panic("cuda: UploadU16 into an F32 buffer")
	}
	if len(src) > dst.n {
		panic(fmt.Sprintf("cuda: UploadU16: %d host elements, buffer holds %d", len(src), dst.n))
	}
	if len(src) == 0 {
		return nil
	}
	return d.do(func() error {
		return wrap("upload", cu.MemcpyHtoDAsync(dst.ptr, unsafe.Pointer(&src[0]), int64(len(src))*2, d.stream))
	})
}

// DownloadF32 queues a copy of the first len(dst) elements of src into dst and
// waits for the stream (so also for all work queued before it). It returns the
// first error of earlier queued work, if any.
func (d *Device) DownloadF32(dst []float32, src *Buffer) error {
	checkCopy("DownloadF32", src, kernels.F32, len(dst))
	if len(dst) == 0 {
		return nil
	}
	return d.do(func() error {
		if err := cu.MemcpyDtoHAsync(unsafe.Pointer(&dst[0]), src.ptr, int64(len(dst))*4, d.stream); err != nil {
			return wrap("download", err)
		}
		if err := wrap("synchronize after download", d.stream.Synchronize()); err != nil {
			return err
		}
		return d.takePending()
	})
}

// DownloadU16 is DownloadF32 for F16/BF16 buffers.
func (d *Device) DownloadU16(dst []uint16, src *Buffer) error {
	if src.dtype == kernels.F32 {
		panic("cuda: DownloadU16 from an F32 buffer")
	}
	if len(dst) > src.n {
		panic(fmt.Sprintf("cuda: DownloadU16: %d host elements, buffer holds %d", len(dst), src.n))
	}
	if len(dst) == 0 {
		return nil
	}
	return d.do(func() error {
		if err := cu.MemcpyDtoHAsync(unsafe.Pointer(&dst[0]), src.ptr, int64(len(dst))*2, d.stream); err != nil {
			return wrap("download", err)
		}
		if err := wrap("synchronize after download", d.stream.Synchronize()); err != nil {
			return err
		}
		return d.takePending()
	})
}

// Copy queues a device-to-device copy of the first n elements of src into
// dst (same dtype; they must not overlap).
func (d *Device) Copy(dst, src *Buffer, n int) error {
	if dst.dtype != src.dtype || n < 0 || dst.n < n || src.n < n {
		panic(fmt.Sprintf("cuda: Copy of %d elements from %d %v into %d %v", n, src.n, src.dtype, dst.n, dst.dtype))
	}
	if n == 0 {
		return nil
	}
	bytes := int64(n) * int64(elemSize(src.dtype))
	return d.queue(func() error { return wrap("copy", cu.MemcpyDtoDAsync(dst.ptr, src.ptr, bytes, d.stream)) })
}

// Zero queues setting every byte of b to zero (0.0 in every dtype).
func (d *Device) Zero(b *Buffer) error {
	if b.n == 0 {
		return nil
	}
	return d.queue(func() error { return wrap("memset", cu.MemsetD8Async(b.ptr, 0, b.Bytes(), d.stream)) })
}

func wrap(op string, err error) error {
	if err != nil {
		return fmt.Errorf("cuda: %s: %w", op, err)
	}
	return nil
}
