//go:build !unix

package safetensors

import (
	"errors"
	"os"
)

// mapFile is unsupported here; Open reads the file instead.
func mapFile(f *os.File, size int) ([]byte, func() error, error) {
	return nil, nil, errors.New("mmap not supported")
}
