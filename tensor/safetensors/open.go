package safetensors

import (
	"fmt"
	"io"
	"os"
)

// Open memory-maps the safetensors file at path read-only (where the platform
// supports it; otherwise it reads the file into memory) and validates it. The
// tensors' Data slices alias the mapping: call Close when done with them, and
// not before.
func Open(path string) (*File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("safetensors: %s is not a regular file", path)
	}
	size := st.Size()
	if size < 8 {
		return nil, fmt.Errorf("safetensors: %s: file is %d bytes, shorter than the 8-byte header length", path, size)
	}
	if int64(int(size)) != size {
		return nil, fmt.Errorf("safetensors: %s: file of %d bytes is too large to map", path, size)
	}
	buf, unmap, err := mapFile(fh, int(size))
	if err != nil {
		// Fall back to reading the whole file.
		buf = make([]byte, size)
		if _, err := io.ReadFull(fh, buf); err != nil {
			return nil, fmt.Errorf("safetensors: reading %s: %w", path, err)
		}
		unmap = nil
	}
	f, err := Parse(buf)
	if err != nil {
		if unmap != nil {
			_ = unmap()
		}
		return nil, fmt.Errorf("%w (in %s)", err, path)
	}
	f.unmap = unmap
	if unmap != nil {
		f.mapped = buf
	}
	return f, nil
}
