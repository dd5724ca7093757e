//go:build !unix

package main

import (
	"fmt"
	"os"
)

// lockFile creates path; without flock, two processes on the same shard
// are not detected on this system.
func lockFile(path string) (release func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("cannot create the lock file %s: %v", path, err)
	}
	return func() { f.Close() }, nil
}
