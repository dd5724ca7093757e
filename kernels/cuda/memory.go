//go:build cuda

package cuda

import (
	"errors"
	"fmt"
	"unsafe"

	"github.com/roentgo/roentgo/kernels/cpu"
	"gorgonia.org/cu"
)

// Buffer is device memory holding Len elements of one dtype (F32 as float32,
// F16/BF16 as 16-bit words). A Buffer from Alloc owns a block of the caching
// allocator until Free; a View shares its parent's memory and must not outlive it.
type Buffer struct {
	dev   *Device
	ptr   cu.DevicePtr
	n     int
	dtype cpu.DType
	class int64 // allocator size class; 0 for views
	freed bool
}

// Len returns the number of elements.
func (b *Buffer) Len() int { return b.n }

// DType returns the element type.
func (b *Buffer) DType() cpu.DType { return b.dtype }

// Bytes returns the size of the elements in bytes.
func (b *Buffer) Bytes() int64 { return int64(b.n) * int64(elemSize(b.dtype)) }

// View returns the elements [off, off+n) of b as a Buffer sharing b's memory.
func (b *Buffer) View(off, n int) *Buffer {
	if off < 0 || n < 0 || off+n > b.n {
		panic(fmt.Sprintf("cuda: View [%d, %d) of a buffer of %d elements", off, off+n, b.n))
	}
	return &Buffer{dev: b.dev, ptr: b.ptr + cu.DevicePtr(int64(off)*int64(elemSize(b.dtype))), n: n, dtype: b.dtype}
}

func elemSize(t cpu.DType) int {
	if t == cpu.F32 {
		return 4
	}
	return 2
}

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
// cuMemAlloc/cuMemFree after its first step. All work runs on one stream, so a
// block freed after queueing the kernels that use it may be reused at once by
// work queued later. Device thread only.
type allocator struct {
	free map[int64][]cu.DevicePtr
	st   MemStats
}

func (a *allocator) init() { a.free = map[int64][]cu.DevicePtr{} }

func (a *allocator) get(bytes int64) (cu.DevicePtr, int64, error) {
	c := sizeClass(bytes)
	if l := a.free[c]; len(l) > 0 {
		p := l[len(l)-1]
		a.free[c] = l[:len(l)-1]
		a.st.Cached -= c
		a.use(c)
		return p, c, nil
	}
	p, err := cu.MemAlloc(c)
	if err != nil && a.st.Cached > 0 {
		// Give the cached blocks back to the driver and try once more.
		if rerr := a.releaseCached(); rerr != nil {
			return 0, 0, rerr
		}
		p, err = cu.MemAlloc(c)
	}
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

func (a *allocator) use(c int64) {
	a.st.InUse += c
	a.st.Peak = max(a.st.Peak, a.st.InUse)
}

func (a *allocator) put(p cu.DevicePtr, c int64) {
	a.free[c] = append(a.free[c], p)
	a.st.InUse -= c
	a.st.Cached += c
}

func (a *allocator) releaseCached() error {
	var errs []error
	for c, l := range a.free {
		for _, p := range l {
			if err := cu.MemFree(p); err != nil {
				errs = append(errs, fmt.Errorf("cuda: cuMemFree(%d bytes): %w", c, err))
			}
			a.st.DriverFrees++
			a.st.Cached -= c
		}
		delete(a.free, c)
	}
	return errors.Join(errs...)
}

// releaseAll frees the cached blocks; live buffers are leaked to the context,
// which is released right after (Close).
func (a *allocator) releaseAll() error { return a.releaseCached() }

// Alloc returns a buffer of n elements of dtype t. Its contents are undefined.
func (d *Device) Alloc(t cpu.DType, n int) (*Buffer, error) {
	if n < 0 {
		panic("cuda: Alloc: negative length")
	}
	b := &Buffer{dev: d, n: n, dtype: t}
	err := d.do(func() error {
		p, c, err := d.alloc.get(max(b.Bytes(), 1))
		b.ptr, b.class = p, c
		return err
	})
	if err != nil {
		return nil, err
	}
	return b, nil
}

// Free returns b's memory to the allocator's free list. Work already queued
// that uses b still sees valid memory (one stream: later work comes after it).
// Freeing a view or freeing twice panics.
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
	_ = b.dev.queue(func() error {
		b.dev.alloc.put(b.ptr, b.class)
		return nil
	})
}

// MemStats returns the allocator statistics.
func (d *Device) MemStats() MemStats {
	var s MemStats
	_ = d.do(func() error { s = d.alloc.st; return nil })
	return s
}

// Trim waits for queued work and gives the allocator's cached blocks back to the driver.
func (d *Device) Trim() error {
	return d.do(func() error {
		if err := d.stream.Synchronize(); err != nil {
			return fmt.Errorf("cuda: synchronize: %w", err)
		}
		return d.alloc.releaseCached()
	})
}

func checkCopy(op string, b *Buffer, t cpu.DType, n int) {
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
	checkCopy("UploadF32", dst, cpu.F32, len(src))
	if len(src) == 0 {
		return nil
	}
	return d.do(func() error {
		return wrap("upload", cu.MemcpyHtoDAsync(dst.ptr, unsafe.Pointer(&src[0]), int64(len(src))*4, d.stream))
	})
}

// UploadU16 is UploadF32 for F16/BF16 buffers (raw 16-bit words).
func (d *Device) UploadU16(dst *Buffer, src []uint16) error {
	if dst.dtype == cpu.F32 {
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
	checkCopy("DownloadF32", src, cpu.F32, len(dst))
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
	if src.dtype == cpu.F32 {
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

// Copy queues a device-to-device copy of src into dst (same dtype, dst at least as long).
func (d *Device) Copy(dst, src *Buffer) error {
	if dst.dtype != src.dtype || dst.n < src.n {
		panic(fmt.Sprintf("cuda: Copy of %d %v into %d %v", src.n, src.dtype, dst.n, dst.dtype))
	}
	if src.n == 0 {
		return nil
	}
	return d.queue(func() error { return wrap("copy", cu.MemcpyDtoDAsync(dst.ptr, src.ptr, src.Bytes(), d.stream)) })
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
