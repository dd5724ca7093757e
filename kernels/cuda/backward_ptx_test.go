//go:build !cuda

package cuda

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"
)

// backwardModules are the modules of the training kernels (launch_backward.go).
var backwardModules = []string{"attention_backward", "conv_backward", "normact_backward"}

// TestBackwardEntryParams checks that every kernel launch_backward.go names is
// in the PTX with the parameter sizes its launcher passes.
func TestBackwardEntryParams(t *testing.T) {
	all := map[string][]int{}
	for _, m := range backwardModules {
		ptx, err := PTX(m)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range EntryParams(ptx) {
			all[k] = v
		}
	}
	const p, i, l, f = 8, 4, 8, 4 // pointer, int, long long, float
	attnBwd := []int{p, p, p, p, p, p, p, p, i, i, i, i, i, i, i, f, i, i, i}
	attnDQ := []int{p, p, p, p, p, p, p, i, i, i, i, i, i, i, f, i, i, i}
	want := map[string][]int{
		"conv2d_bwd_data":          {p, p, p, i, i, i, i, i, i, i, i, i, i, i, i, i, i, i, i, i},
		"conv2d_bwd_weight":        {p, p, p, i, i, i, i, i, i, i, i, i, i, i, i, i, i, i},
		"conv2d_bwd_weight_reduce": {p, p, l, i},
		"conv2d_bwd_bias":          {p, i, p, i, i, l},
		"attn_lse_fwd":             {p, p, p, p, p, i, i, i, i, i, i, i, i, f, i, i, i},
		"attn_bwd_dot":             {p, p, p, i, i, i, i},
		"attn_bwd_dkdv_d64":        attnBwd,
		"attn_bwd_dkdv_d160":       attnBwd,
		"attn_bwd_dkdv_d256":       attnBwd,
		"attn_bwd_dq_d64":          attnDQ,
		"attn_bwd_dq_d160":         attnDQ,
		"attn_bwd_dq_d256":         attnDQ,
		"gn_save_stats":            {p, i, p, l, i},
		"gn_save_finalize":         {p, p, p, p, i, i, f},
		"gn_save_apply":            {p, i, p, i, p, p, p, p, i, i, i, l, i},
		"gn_bwd_chan":              {p, i, p, i, p, p, p, p, i, i, i, i, p},
		"gn_bwd_reduce":            {p, p, p, p, p, i, i, i},
		"gn_bwd_dx":                {p, i, p, i, p, i, p, p, p, p, p, i, i, i, l, i},
		"ln_save":                  {p, i, p, i, i, i, f, p, p, p, p},
		"ln_bwd_dx":                {p, i, p, i, p, i, i, i, p, p, p},
		"ln_bwd_params":            {p, i, p, i, i, i, p, p, p, i},
		"ln_bwd_params_reduce":     {p, i, i, p, p},
		"softmax_bwd":              {p, i, p, i, p, i, i, i},
		"act_bwd":                  {i, p, i, p, i, p, i, l},
		"geglu_bwd":                {p, i, p, i, p, i, i, i},
		"upsample2x_bwd":           {p, i, p, i, i, i, i},
		"embedding_bwd":            {p, i, i, p, i, p, i},
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
	if len(all) != len(want) {
		t.Errorf("the backward modules hold %d kernels, the test knows %d", len(all), len(want))
	}
}

// TestBackwardPTXNoSpills assembles the backward modules with ptxas -arch=sm_90
// (skipped without ptxas and in -short mode) and requires every kernel in them
// to be free of register spills and within 48 KiB of static shared memory.
func TestBackwardPTXNoSpills(t *testing.T) {
	ptxas, err := exec.LookPath("ptxas")
	if err != nil {
		t.Skip("ptxas not on PATH; PTX not assembled")
	}
	if testing.Short() {
		t.Skip("ptxas takes several seconds; skipped in -short mode")
	}
	dir := t.TempDir()
	for _, m := range backwardModules {
		ptx, err := PTX(m)
		if err != nil {
			t.Fatal(err)
		}
		in := filepath.Join(dir, m+".ptx")
		if err := os.WriteFile(in, ptx, 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(ptxas, "-arch=sm_90", "-v", "-o", filepath.Join(dir, m+".cubin"), in).CombinedOutput()
		if err != nil {
			t.Fatalf("ptxas %s.ptx: %v\n%s", m, err, out)
		}
		info := parsePtxasV(string(out))
		names := make([]string, 0, len(info))
		for k := range info {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			f := info[k]
			t.Logf("%-20s %-26s regs %3d  smem %6d  spill st/ld %d/%d", m, k, f.regs, f.smem, f.spillStores, f.spillLoads)
			if f.spillStores != 0 || f.spillLoads != 0 || f.stack != 0 {
				t.Errorf("%s: %d bytes stack, %d/%d bytes spill stores/loads", k, f.stack, f.spillStores, f.spillLoads)
			}
			if f.smem > 48*1024 {
				t.Errorf("%s: %d bytes of static shared memory, more than 48 KiB", k, f.smem)
			}
		}
	}
}
