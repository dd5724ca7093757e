//go:build unix

package main

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// lockFile takes an exclusive advisory lock (flock) on path, created if
// needed, so that two processes never write the same shard of an output
// folder; the kernel drops it when the process ends, even by kill -9.
func lockFile(path string) (release func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("cannot create the lock file %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("another generate process is writing this shard (it holds the lock %s); run one process per shard", path)
		}
		return nil, fmt.Errorf("cannot lock %s: %v", path, err)
	}
	return func() { f.Close() }, nil
}
