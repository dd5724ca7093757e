//go:build !cuda

// These checks need neither a GPU nor gorgonia.org/cu, so they stay out of the
// cuda-tagged test binaries (which can only run on a GPU machine).

package cuda

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// recordedSources parses the "// roentgo-source: file sha256=hex" header lines.
func recordedSources(t *testing.T, ptx []byte) map[string]string {
	t.Helper()
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(ptx))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, SourceHashPrefix) {
			break
		}
		f, h, ok := strings.Cut(strings.TrimPrefix(line, SourceHashPrefix), " sha256=")
		if !ok {
			t.Fatalf("malformed header line %q", line)
		}
		out[f] = h
	}
	return out
}

// TestPTXMatchesSources checks that every committed PTX records the SHA-256 of
// the .cu it came from and of every header that .cu includes, that those match
// the files on disk, and that every .cu has a PTX.
func TestPTXMatchesSources(t *testing.T) {
	srcs, err := filepath.Glob("*.cu")
	if err != nil {
		t.Fatal(err)
	}
	mods := ModuleNames()
	var want []string
	for _, s := range srcs {
		want = append(want, strings.TrimSuffix(s, ".cu"))
	}
	sort.Strings(want)
	if fmt.Sprint(want) != fmt.Sprint(mods) {
		t.Fatalf("PTX modules %v, .cu sources %v: run go generate ./kernels/cuda", mods, want)
	}
	for _, m := range mods {
		ptx, err := PTX(m)
		if err != nil {
			t.Fatal(err)
		}
		rec := recordedSources(t, ptx)
		if _, ok := rec[m+".cu"]; !ok {
			t.Errorf("ptx/%s.ptx records no hash of %s.cu", m, m)
		}
		if data, err := os.ReadFile(m + ".cu"); err == nil && bytes.Contains(data, []byte(`#include "common.cuh"`)) {
			if _, ok := rec["common.cuh"]; !ok {
				t.Errorf("ptx/%s.ptx records no hash of common.cuh, which %s.cu includes", m, m)
			}
		}
		for f, h := range rec {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Errorf("ptx/%s.ptx: recorded source %s: %v", m, f, err)
				continue
			}
			sum := sha256.Sum256(data)
			if got := hex.EncodeToString(sum[:]); got != h {
				t.Errorf("ptx/%s.ptx is stale: %s has sha256 %s, PTX was made from %s; run go generate ./kernels/cuda", m, f, got, h)
			}
		}
	}
}

// ptxasInfo is what ptxas -v reports for one entry function.
type ptxasInfo struct {
	regs, spillStores, spillLoads, stack, smem int
}

var (
	reEntry = regexp.MustCompile(`Compiling entry function '([^']+)'`)
	reStack = regexp.MustCompile(`(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads`)
	reRegs  = regexp.MustCompile(`Used (\d+) registers(?:, (\d+) bytes smem)?`)
)

// parsePtxasV parses `ptxas -v` output into per-function numbers.
func parsePtxasV(out string) map[string]*ptxasInfo {
	res := map[string]*ptxasInfo{}
	var cur *ptxasInfo
	atoi := func(s string) int { v, _ := strconv.Atoi(s); return v }
	for _, line := range strings.Split(out, "\n") {
		if m := reEntry.FindStringSubmatch(line); m != nil {
			cur = &ptxasInfo{}
			res[m[1]] = cur
			continue
		}
		if cur == nil {
			continue
		}
		if m := reStack.FindStringSubmatch(line); m != nil {
			cur.stack, cur.spillStores, cur.spillLoads = atoi(m[1]), atoi(m[2]), atoi(m[3])
		}
		if m := reRegs.FindStringSubmatch(line); m != nil {
			cur.regs = atoi(m[1])
			if m[2] != "" {
				cur.smem = atoi(m[2])
			}
		}
	}
	return res
}

func TestParsePtxasV(t *testing.T) {
	out := `ptxas info    : 0 bytes gmem
ptxas info    : Compiling entry function 'gemm_f16_nt_of32_128' for 'sm_90'
ptxas info    : Function properties for gemm_f16_nt_of32_128
    16 bytes stack frame, 4 bytes spill stores, 8 bytes spill loads
ptxas info    : Used 123 registers, 40960 bytes smem, 536 bytes cmem[0]
ptxas info    : Compiling entry function 'act_f32' for 'sm_90'
ptxas info    : Function properties for act_f32
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 18 registers, 380 bytes cmem[0]
`
	got := parsePtxasV(out)
	want := map[string]ptxasInfo{
		"gemm_f16_nt_of32_128": {regs: 123, spillStores: 4, spillLoads: 8, stack: 16, smem: 40960},
		"act_f32":              {regs: 18},
	}
	if len(got) != len(want) {
		t.Fatalf("parsed %d functions, want %d", len(got), len(want))
	}
	for k, w := range want {
		if g := got[k]; g == nil || *g != w {
			t.Errorf("%s: got %+v, want %+v", k, g, w)
		}
	}
}

// hotPrefixes name the kernels that must not spill registers.
var hotPrefixes = []string{"gemm_f16_", "gemm_bf16_", "conv2d_f16_", "conv2d_bf16_",
	"attention_f16_", "attention_bf16_", "groupnorm_"}

// TestPTXAssemblesForSM90 runs ptxas -arch=sm_90 -v over every embedded PTX
// (skipped when ptxas is not on PATH, and in -short mode): every module must
// assemble, the hot kernels must report 0 bytes of spill stores and loads, and
// every kernel must fit the 48 KiB of static shared memory a launch gets
// without opting in.
func TestPTXAssemblesForSM90(t *testing.T) {
	ptxas, err := exec.LookPath("ptxas")
	if err != nil {
		t.Skip("ptxas not on PATH (scripts/install-cuda.sh installs it); PTX not assembled")
	}
	if testing.Short() {
		t.Skip("ptxas takes 10-30 s; skipped in -short mode")
	}
	t.Parallel()
	mods := ModuleNames()
	outs := make([]string, len(mods))
	errs := make([]error, len(mods))
	dir := t.TempDir()
	var wg sync.WaitGroup
	for i, m := range mods {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ptx, err := PTX(m)
			if err != nil {
				errs[i] = err
				return
			}
			in := filepath.Join(dir, m+".ptx")
			if err := os.WriteFile(in, ptx, 0o644); err != nil {
				errs[i] = err
				return
			}
			cmd := exec.Command(ptxas, "-arch=sm_90", "-v", "-o", filepath.Join(dir, m+".cubin"), in)
			b, err := cmd.CombinedOutput()
			outs[i] = string(b)
			errs[i] = err
		}()
	}
	wg.Wait()
	nhot := 0
	for i, m := range mods {
		if errs[i] != nil {
			t.Errorf("ptxas %s.ptx: %v\n%s", m, errs[i], outs[i])
			continue
		}
		info := parsePtxasV(outs[i])
		if len(info) == 0 {
			t.Errorf("ptxas %s.ptx: no entry functions reported:\n%s", m, outs[i])
		}
		names := make([]string, 0, len(info))
		for k := range info {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			f := info[k]
			hot := false
			for _, p := range hotPrefixes {
				hot = hot || strings.HasPrefix(k, p)
			}
			t.Logf("%-24s %-28s regs %3d  smem %6d  stack %3d  spill st/ld %d/%d  hot=%v",
				m, k, f.regs, f.smem, f.stack, f.spillStores, f.spillLoads, hot)
			if hot {
				nhot++
				if f.spillStores != 0 || f.spillLoads != 0 {
					t.Errorf("%s: %d bytes spill stores, %d bytes spill loads; hot kernels must not spill",
						k, f.spillStores, f.spillLoads)
				}
			}
			if f.smem > 48*1024 {
				t.Errorf("%s: %d bytes of static shared memory, more than 48 KiB", k, f.smem)
			}
		}
	}
	if nhot == 0 {
		t.Error("no hot kernels found in the ptxas output")
	}
}

func TestSizeClass(t *testing.T) {
	cases := []struct{ n, want int64 }{
		{0, 512}, {1, 512}, {512, 512}, {513, 1024}, {1000, 1024}, {4096, 4096}, {4097, 8192},
		{1 << 20, 1 << 20}, {1<<20 + 1, 1<<20 + 1<<17}, {3 << 20, 3 << 20},
		{100 << 20, 104 << 20}, // step 8 MiB above 64 MiB
	}
	for _, c := range cases {
		if got := sizeClass(c.n); got != c.want {
			t.Errorf("sizeClass(%d) = %d, want %d", c.n, got, c.want)
		}
	}
	for n := int64(1); n < 1<<28; n = n*3/2 + 7 {
		c := sizeClass(n)
		if c < n || (n > 1<<20 && float64(c) > 1.125*float64(n)+1) || c%512 != 0 {
			t.Fatalf("sizeClass(%d) = %d: below the request, over 12.5%% waste, or not a multiple of 512", n, c)
		}
	}
}

// TestEmulatedKernels compiles the CUDA sources for the CPU emulator of
// emu/emu.h (fibers for threads, the PTX fragment layouts for ldmatrix and
// mma.sync) with g++ and runs emu/emu_main.cpp, which checks GEMM, convolution,
// attention, norm and elementwise kernels on small edge-crossing shapes against
// double-precision loops. It checks index logic and numerics, not timing or
// asynchronous-copy hazards. Skipped without g++ and in -short mode.
func TestEmulatedKernels(t *testing.T) {
	gxx, err := exec.LookPath("g++")
	if err != nil {
		t.Skip("g++ not on PATH; kernel emulation skipped")
	}
	if testing.Short() {
		t.Skip("kernel emulation takes 20-60 s; skipped in -short mode")
	}
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bin := filepath.Join(t.TempDir(), "emu")
	build := exec.CommandContext(ctx, gxx, "-std=c++20", "-O1", "-Wno-unknown-pragmas", "-DROENTGO_EMU",
		"-o", bin, filepath.Join("emu", "emu_main.cpp"))
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the emulator: %v\n%s", err, out)
	}
	out, err := exec.CommandContext(ctx, bin).CombinedOutput()
	t.Logf("emulated kernels:\n%s", out)
	if err != nil {
		t.Fatalf("emulated kernels failed: %v", err)
	}
	if !strings.Contains(string(out), "0 failure(s)") {
		t.Fatal("emulator output lacks its summary line")
	}
}

// TestEntryParams checks the PTX parameter parser on the committed modules: every
// kernel the launchers name exists with the parameter sizes they pass.
func TestEntryParams(t *testing.T) {
	all := map[string][]int{}
	for _, m := range ModuleNames() {
		ptx, err := PTX(m)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range EntryParams(ptx) {
			all[k] = v
		}
	}
	const p, i, l, f = 8, 4, 8, 4 // pointer, int, long long, float
	// The strided kernels take 6 sizes, then 6 strides per operand, all 64-bit.
	strided := func(operands int) []int {
		out := make([]int, 6*(1+operands))
		for j := range out {
			out[j] = l
		}
		return out
	}
	gemm := []int{p, p, p, p, p, i, i, i, i, i, i, i, l, l, l, l, f, f, i}
	want := map[string][]int{
		"gemm_f16_nt_of32_128":   gemm,
		"gemm_bf16_nn_oh_64":     gemm,
		"gemm_simt":              append(append([]int{}, gemm...), i, i, i, i, i),
		"conv2d_f16_k3_of32":     {p, p, p, p, p, i, i, i, i, i, i, i, i, i, i, i, i, i},
		"conv2d_simt":            {p, p, p, p, p, i, i, i, i, i, i, i, i, i, i, i, i, i, i, i, i, i},
		"attention_bf16_d160":    {p, p, p, p, i, i, i, i, i, i, f, i},
		"attention_simt_f16":     {p, p, p, p, i, i, i, i, i, i, i, f, i},
		"groupnorm_stats_f32":    {p, p, l, i},
		"groupnorm_apply_bf16":   {p, p, p, p, p, i, i, i, i, f, i},
		"layernorm_f16":          {p, p, i, i, f, p, p},
		"softmax_f32":            {p, p, i, i},
		"act_bf16":               {i, p, p, l},
		"geglu_f32":              {p, p, i, i},
		"add_f16":                {p, p, p, l, f},
		"add_bcast_f32":          {p, p, p, l, l, l, i},
		"upsample2x_f16":         {p, p, i, i, i},
		"concat_bf16":            {p, p, p, i, i, i, l},
		"timestep_embedding_f32": {p, p, i, i, i, f, f, f},
		"convert_f32_to_bf16":    {p, p, l},
		"copy_strided_b16":       append([]int{p, p, i, l}, strided(2)...),
		"copy_strided_b32":       append([]int{p, p, i, l}, strided(2)...),
		"unary_strided":          append([]int{i, f, f, p, i, p, i, i, l}, strided(2)...),
		"binary_strided":         append([]int{i, p, i, p, i, p, i, i, l}, strided(3)...),
		"fill_b16":               {p, l, i},
		"fill_b32":               {p, l, i},
	}
	for k, w := range want {
		got, ok := all[k]
		if !ok {
			t.Errorf("kernel %s not in the PTX", k)
			continue
		}
		if fmt.Sprint(got) != fmt.Sprint(w) {
			t.Errorf("%s: parameter sizes %v, want %v", k, got, w)
		}
	}
	if len(all) != 107 {
		t.Errorf("found %d kernels, want 107 (17 gemm, 9 conv, 11 attention, 12 norm, 31 elementwise; "+
			"backward: 4 conv, 8 attention, 15 norm/elementwise)", len(all))
	}
}
