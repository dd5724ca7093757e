package safetensors

import "syscall"

// dropPages tells the kernel that the process does not need the resident pages
// of the read-only file mapping b: they leave the process's resident set (they
// stay in the page cache) and the next access faults them back from the file.
func dropPages(b []byte) error { return syscall.Madvise(b, syscall.MADV_DONTNEED) }
