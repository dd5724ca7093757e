// Command genptx compiles the CUDA sources of kernels/cuda to PTX. It is run by
// `go generate ./kernels/cuda` from that directory:
//
//	for each *.cu: nvcc -arch=compute_80 -ptx -O3 -o ptx/<name>.ptx <name>.cu
//
// and prefixes each PTX file with one line per source file it was built from
// (the .cu and the headers it includes with #include "..."):
//
//	// roentgo-source: gemm.cu sha256=<hex of the file's SHA-256>
//
// The tests in package cuda check these hashes against the sources. Set NVCC to
// use another compiler binary; extra flags can be given as arguments.
package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

const prefix = "// roentgo-source: "

var includeRE = regexp.MustCompile(`^\s*#\s*include\s+"([^"]+)"`)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "genptx:", err)
		os.Exit(1)
	}
}

func run(extra []string) error {
	nvcc := os.Getenv("NVCC")
	if nvcc == "" {
		nvcc = "nvcc"
	}
	if _, err := exec.LookPath(nvcc); err != nil {
		return fmt.Errorf("%s not found on PATH (run scripts/install-cuda.sh): %w", nvcc, err)
	}
	srcs, err := filepath.Glob("*.cu")
	if err != nil {
		return err
	}
	if len(srcs) == 0 {
		return fmt.Errorf("no .cu files in the current directory; run from kernels/cuda")
	}
	sort.Strings(srcs)
	if err := os.MkdirAll("ptx", 0o755); err != nil {
		return err
	}
	for _, src := range srcs {
		if err := compile(nvcc, src, extra); err != nil {
			return err
		}
	}
	return nil
}

// deps returns src and the local headers it includes, transitively, sorted.
func deps(src string) ([]string, error) {
	seen := map[string]bool{}
	var walk func(string) error
	walk = func(f string) error {
		if seen[f] {
			return nil
		}
		seen[f] = true
		data, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			if m := includeRE.FindStringSubmatch(sc.Text()); m != nil {
				if err := walk(filepath.Join(filepath.Dir(f), m[1])); err != nil {
					return err
				}
			}
		}
		return sc.Err()
	}
	if err := walk(src); err != nil {
		return nil, err
	}
	out := make([]string, 0, len(seen))
	for f := range seen {
		out = append(out, f)
	}
	sort.Strings(out)
	return out, nil
}

func compile(nvcc, src string, extra []string) error {
	name := strings.TrimSuffix(src, ".cu")
	tmp, err := os.CreateTemp("", name+"-*.ptx")
	if err != nil {
		return err
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	args := append([]string{"-arch=compute_80", "-ptx", "-O3", "-std=c++17", "-o", tmp.Name()}, extra...)
	args = append(args, src)
	cmd := exec.Command(nvcc, args...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	fmt.Println(nvcc, strings.Join(args, " "))
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w", src, err)
	}
	ptx, err := os.ReadFile(tmp.Name())
	if err != nil {
		return err
	}
	files, err := deps(src)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(data)
		fmt.Fprintf(&buf, "%s%s sha256=%s\n", prefix, filepath.ToSlash(f), hex.EncodeToString(sum[:]))
	}
	buf.Write(ptx)
	return os.WriteFile(filepath.Join("ptx", name+".ptx"), buf.Bytes(), 0o644)
}
