package main

import (
	"bytes"
	"context"
	"encoding/json"
	"image"
	"image/png"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/roentgo/roentgo/diffusion/dataset"
	"github.com/roentgo/roentgo/diffusion/dicom/dicomtest"
	"github.com/roentgo/roentgo/diffusion/pipeline"
	"github.com/stretchr/testify/require"
)

// promptCSV is a small job: 3 rows, 7 images, labels, a row with its own
// seed, negative, steps and size.
const promptCSV = `id,prompt,negative,n,seed,steps,size,Cardiomegaly,Pleural Effusion
eff,small left pleural effusion,,3,,,,0,1
cm,"cardiomegaly, ""PA"" view",blurry,2,100,,,1,
big,normal chest,,2,,3,32x48,0,0
`

// genArgs are the flags every test run uses (tiny images, few steps).
func genArgs(prompts, out string, extra ...string) []string {
	return append([]string{"-model", "builtin:tiny-random", "-prompts", prompts, "-out", out, "-steps", "2", "-width", "32", "-height", "32", "-q"}, extra...)
}

func noEnv(string) (string, bool) { return "", false }

func envMap(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// gen runs the program in-process and returns its exit status and stderr.
func gen(t *testing.T, ctx context.Context, env func(string) (string, bool), args ...string) (int, string) {
	t.Helper()
	var stderr bytes.Buffer
	code := Main(ctx, args, env, &bytes.Buffer{}, &stderr)
	return code, stderr.String()
}

func writePrompts(t *testing.T, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, []byte(text), 0o644))
	return p
}

// manifestRows reads a manifest's rows by key, without their timings.
func manifestRows(t *testing.T, path string) map[string]string {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	out := map[string]string{}
	for _, l := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(l), &m), l)
		require.Contains(t, m, "timings")
		delete(m, "timings")
		b, err := json.Marshal(m)
		require.NoError(t, err)
		key := m["key"].(string)
		require.NotContains(t, out, key, "duplicate row")
		out[key] = string(b)
	}
	return out
}

// imageFiles returns every file under the format folders of dir.
func imageFiles(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, f := range formats {
		names, err := filepath.Glob(filepath.Join(dir, f.name, "*"))
		require.NoError(t, err)
		for _, n := range names {
			data, err := os.ReadFile(n)
			require.NoError(t, err)
			out[f.name+"/"+filepath.Base(n)] = data
		}
	}
	return out
}

// sameOutput checks that two output folders hold the same images byte for
// byte and the same manifest rows modulo timings.
func sameOutput(t *testing.T, want, got string) {
	t.Helper()
	wr, gr := manifestRows(t, filepath.Join(want, "manifest.jsonl")), manifestRows(t, filepath.Join(got, "manifest.jsonl"))
	require.Equal(t, len(wr), len(gr))
	var differ []string
	for k, v := range wr {
		if gr[k] != v {
			differ = append(differ, k)
		}
	}
	sort.Strings(differ)
	require.Empty(t, differ, "manifest rows differ (beyond timings):\n%s\n%s", wr[first(differ)], gr[first(differ)])
	a, b := imageFiles(t, want), imageFiles(t, got)
	require.Equal(t, len(a), len(b))
	for k, v := range a {
		require.True(t, bytes.Equal(v, b[k]), "file %s differs", k)
	}
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

func TestPromptFiles(t *testing.T) {
	pf, err := parsePrompts("p.csv", []byte(promptCSV), nil)
	require.NoError(t, err)
	require.Len(t, pf.rows, 3)
	require.Equal(t, []string{"Cardiomegaly", "Pleural Effusion"}, pf.labelCols)
	require.Equal(t, `cardiomegaly, "PA" view`, pf.rows[1].prompt)
	require.Equal(t, "blurry", *pf.rows[1].negative)
	require.Equal(t, map[string]string{"Cardiomegaly": "1", "Pleural Effusion": ""}, pf.rows[1].labels)
	images, err := buildJob(pf, settings{N: 1, Seed: 42, Steps: 5, Guidance: 4, Scheduler: "pndm", Width: 64, Height: 64}, ".", false)
	require.NoError(t, err)
	require.Len(t, images, 7)
	var seeds []uint64
	for _, im := range images {
		seeds = append(seeds, im.seed)
	}
	// Row seeds: 42+index without a seed column, seed+k with one.
	require.Equal(t, []uint64{42, 43, 44, 100, 101, 47, 48}, seeds)
	require.Equal(t, "big_1", images[6].key)
	require.Equal(t, [3]int{32, 48, 3}, [3]int{images[6].width, images[6].height, images[6].steps})
	require.Equal(t, 5, images[0].steps)

	jsonl := `{"prompt": "effusion", "n": 2, "seed": 18446744073709551615, "labels": {"Edema": 1.0}, "Sex": "F"}
{"prompt": "edema", "size": 64, "guidance": 3.5, "scheduler": "Euler a", "Edema": null}
`
	pf, err = parsePrompts("p.jsonl", []byte(jsonl), nil)
	require.NoError(t, err)
	require.Equal(t, []string{"Edema", "Sex"}, pf.labelCols)
	require.Equal(t, uint64(18446744073709551615), *pf.rows[0].seed)
	require.Equal(t, map[string]string{"Edema": "1.0", "Sex": "F"}, pf.rows[0].labels)
	require.Equal(t, map[string]string{"Edema": "", "Sex": ""}, pf.rows[1].labels)
	images, err = buildJob(pf, settings{N: 1, Steps: 5, Scheduler: "pndm", Width: 8, Height: 8}, ".", false)
	require.NoError(t, err)
	require.Equal(t, "euler_a", images[2].scheduler)
	require.Equal(t, 64, images[2].width)

	bad := map[string]string{
		"no prompt column":  "id,text\na,b\n",
		"duplicate ids":     "id,prompt\na,x\na,y\n",
		"bad id":            "id,prompt\n../a,x\n",
		"bad n":             "prompt,n\nx,0\n",
		"bad seed":          "prompt,seed\nx,-1\n",
		"bad size":          "prompt,size\nx,big\n",
		"size disagrees":    "prompt,width,size\nx,64,32x32\n",
		"field count":       "prompt,n\nx,1,2\n",
		"duplicate header":  "prompt,prompt\nx,y\n",
		"empty":             "prompt\n",
		"json type":         `{"prompt": "x", "n": "3"}`,
		"json no prompt":    `{"text": "x"}`,
		"json not object":   `["x"]`,
		"json labels type":  `{"prompt": "x", "labels": [1]}`,
		"json label nested": `{"prompt": "x", "Edema": {"a": 1}}`,
		"not utf8":          "prompt\n\xff\xfe\n",
	}
	for name, text := range bad {
		ext := "p.csv"
		if strings.HasPrefix(name, "json") {
			ext = "p.jsonl"
		}
		_, err := parsePrompts(ext, []byte(text), nil)
		require.Error(t, err, name)
	}
	// -labels: listed columns are labels, any other unknown column an error.
	_, err = parsePrompts("p.csv", []byte("prompt,Edema,extra\nx,1,2\n"), []string{"Edema"})
	require.ErrorContains(t, err, `unknown column "extra"`)
	pf, err = parsePrompts("p.csv", []byte("prompt,Edema\nx,1\n"), []string{"Edema"})
	require.NoError(t, err)
	require.Equal(t, []string{"Edema"}, pf.labelCols)
	_, err = parsePrompts("p.csv", []byte("prompt\nx\n"), []string{"Edema"})
	require.ErrorContains(t, err, "does not have")
}

func TestResolveShard(t *testing.T) {
	cases := []struct {
		flag   string
		shards int
		env    map[string]string
		want   [2]int
		err    string
	}{
		{"", 0, nil, [2]int{0, 1}, ""},
		{"2/5", 0, nil, [2]int{2, 5}, ""},
		{"5/5", 0, nil, [2]int{}, "expected i/n"},
		{"2/5", 3, nil, [2]int{}, "already gives"},
		{"", 4, nil, [2]int{}, "without a shard index"},
		{"", 0, map[string]string{"JOB_COMPLETION_INDEX": "3", ShardsEnv: "8"}, [2]int{3, 8}, ""},
		{"", 8, map[string]string{"JOB_COMPLETION_INDEX": "3"}, [2]int{3, 8}, ""},
		{"", 0, map[string]string{"JOB_COMPLETION_INDEX": "3"}, [2]int{}, "no shard count"},
		{"", 0, map[string]string{"JOB_COMPLETION_INDEX": "8", ShardsEnv: "8"}, [2]int{}, "expected an index"},
		{"1/2", 0, map[string]string{"JOB_COMPLETION_INDEX": "3", ShardsEnv: "8"}, [2]int{1, 2}, ""},
		{"", 0, map[string]string{"SLURM_ARRAY_TASK_ID": "4", "SLURM_ARRAY_TASK_COUNT": "10", "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_MAX": "9"}, [2]int{4, 10}, ""},
		{"", 0, map[string]string{"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "10", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_MAX": "10"}, [2]int{0, 10}, ""},
		{"", 0, map[string]string{"SLURM_ARRAY_TASK_ID": "10", "SLURM_ARRAY_TASK_COUNT": "10", "SLURM_ARRAY_TASK_MIN": "1"}, [2]int{9, 10}, ""},
		{"", 0, map[string]string{"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "3", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_MAX": "5"}, [2]int{}, "contiguous"},
		{"", 0, map[string]string{"SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_TASK_COUNT": "3", "SLURM_ARRAY_TASK_STEP": "2"}, [2]int{}, "contiguous"},
		{"", 0, map[string]string{"SLURM_ARRAY_TASK_ID": "2"}, [2]int{}, "SLURM_ARRAY_TASK_COUNT"},
		{"", 0, map[string]string{"SLURM_ARRAY_TASK_ID": "x", "SLURM_ARRAY_TASK_COUNT": "3"}, [2]int{}, "expected an integer"},
	}
	for _, c := range cases {
		s, err := resolveShard(c.flag, c.shards, envMap(c.env))
		if c.err != "" {
			require.ErrorContains(t, err, c.err, "%+v", c)
			continue
		}
		require.NoError(t, err, "%+v", c)
		require.Equal(t, c.want, [2]int{s.index, s.count}, "%+v", c)
	}
}

// TestRunResumeAndRegenerate: a run writes every image, its manifest row and
// the labels; a second run does nothing; damaged outputs (a deleted file, a
// changed file, a torn manifest line) are redone exactly; each image is what
// its seed gives alone (the regenerate command's txt2img request).
func TestRunResumeAndRegenerate(t *testing.T) {
	dir := t.TempDir()
	prompts := writePrompts(t, dir, "p.csv", promptCSV)
	ref := filepath.Join(dir, "ref")
	code, stderr := gen(t, context.Background(), noEnv, genArgs(prompts, ref, "-batch", "2", "-format", "png,gray")...)
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stderr, "images/min")
	rows := manifestRows(t, filepath.Join(ref, "manifest.jsonl"))
	require.Len(t, rows, 7)
	labels, err := os.ReadFile(filepath.Join(ref, "labels.csv"))
	require.NoError(t, err)
	require.Equal(t, "Path,Cardiomegaly,Pleural Effusion\npng/eff_0.png,0,1\npng/eff_1.png,0,1\npng/eff_2.png,0,1\npng/cm_0.png,1,\npng/cm_1.png,1,\npng/big_0.png,0,0\npng/big_1.png,0,0\n", string(labels))

	// Every image is its seed's image alone.
	p, err := pipeline.Demo()
	require.NoError(t, err)
	for _, row := range rows {
		var r record
		require.NoError(t, json.Unmarshal([]byte(row), &r))
		require.Contains(t, r.Regenerate, "-seed "+itoa(r.Seed))
		res, err := p.Txt2Img(context.Background(), pipeline.Request{Prompt: r.Prompt, Negative: r.Negative, Seed: r.Seed,
			Steps: r.Steps, Guidance: r.Guidance, Scheduler: r.Scheduler, Width: r.Width, Height: r.Height})
		require.NoError(t, err)
		img := readPNG(t, filepath.Join(ref, "png", r.Key+".png"))
		require.Equal(t, res.Images[0].Pix, toNRGBA(img).Pix, "image %s", r.Key)
	}

	// Re-running does nothing.
	work := filepath.Join(dir, "work")
	code, stderr = gen(t, context.Background(), noEnv, genArgs(prompts, work, "-batch", "3", "-format", "png,gray")...)
	require.Equal(t, 0, code, stderr)
	before, err := os.ReadFile(filepath.Join(work, "manifest.jsonl"))
	require.NoError(t, err)
	code, stderr = gen(t, context.Background(), noEnv, genArgs(prompts, work, "-batch", "3", "-format", "png,gray")...)
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stderr, "0 image(s) generated, 7 already done")
	after, err := os.ReadFile(filepath.Join(work, "manifest.jsonl"))
	require.NoError(t, err)
	require.Equal(t, before, after)
	sameOutput(t, ref, work)

	// Damage: a deleted file, a changed file, a torn last line.
	require.NoError(t, os.Remove(filepath.Join(work, "png", "cm_0.png")))
	require.NoError(t, os.WriteFile(filepath.Join(work, "gray", "eff_1.png"), []byte("x"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(work, "manifest.jsonl"), after[:len(after)-40], 0o644))
	code, stderr = gen(t, context.Background(), noEnv, genArgs(prompts, work, "-batch", "3", "-format", "png,gray")...)
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stderr, "3 image(s) generated, 4 already done")
	sameOutput(t, ref, work)

	// Another job in the same folder is refused; so is a second process on
	// the same shard.
	code, stderr = gen(t, context.Background(), noEnv, genArgs(prompts, work, "-format", "png,gray", "-seed", "1")...)
	require.Equal(t, 2, code)
	require.Contains(t, stderr, "belongs to another job")
	release, err := lockFile(filepath.Join(work, ".lock"))
	require.NoError(t, err)
	code, stderr = gen(t, context.Background(), noEnv, genArgs(prompts, work, "-format", "png,gray")...)
	release()
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "another generate process")
}

func itoa(u uint64) string { return strconv.FormatUint(u, 10) }

func readPNG(t *testing.T, path string) image.Image {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	img, err := png.Decode(bytes.NewReader(data))
	require.NoError(t, err)
	return img
}

func toNRGBA(img image.Image) *image.NRGBA {
	if n, ok := img.(*image.NRGBA); ok {
		return n
	}
	b := img.Bounds()
	out := image.NewNRGBA(b)
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			out.Set(x, y, img.At(x, y))
		}
	}
	return out
}

// TestInterruptedRunsResume cancels in-process runs at random moments
// (mid-denoising or right after a manifest row), resumes each time, and
// checks that the result equals an uninterrupted run byte for byte.
func TestInterruptedRunsResume(t *testing.T) {
	dir := t.TempDir()
	prompts := writePrompts(t, dir, "p.csv", promptCSV)
	ref := filepath.Join(dir, "ref")
	code, stderr := gen(t, context.Background(), noEnv, genArgs(prompts, ref, "-format", "png,dcm16")...)
	require.Equal(t, 0, code, stderr)

	seed := time.Now().UnixNano()
	t.Logf("random seed %d", seed)
	rnd := rand.New(rand.NewSource(seed))
	work := filepath.Join(dir, "work")
	for round := 0; ; round++ {
		require.Less(t, round, 50, "never finished")
		// Runs start by building the model: allow them longer and longer.
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(rnd.Intn(60+20*round))*time.Millisecond)
		code, stderr = gen(t, ctx, noEnv, genArgs(prompts, work, "-format", "png,dcm16", "-batch", "2")...)
		cancel()
		if code == 0 {
			t.Logf("finished after %d interruptions", round)
			break
		}
		require.Equal(t, 130, code, stderr)
		require.Contains(t, stderr, "run the same command again to resume")
	}
	sameOutput(t, ref, work)
}

// TestKill9 builds the program and kills it with SIGKILL at random moments,
// then resumes: the result equals an uninterrupted run byte for byte.
func TestKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the program repeatedly")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "generate")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, "%s", out)
	var csv strings.Builder
	csv.WriteString("prompt,n\n")
	for i := 0; i < 8; i++ {
		csv.WriteString("finding " + itoa(uint64(i)) + ",4\n")
	}
	prompts := writePrompts(t, dir, "p.csv", csv.String())
	args := func(out string) []string {
		return []string{"-model", "builtin:tiny-random", "-prompts", prompts, "-out", out, "-steps", "3", "-width", "48", "-height", "48", "-q", "-format", "png16,dcm8", "-batch", "2"}
	}
	ref := filepath.Join(dir, "ref")
	code, stderr := gen(t, context.Background(), noEnv, args(ref)...)
	require.Equal(t, 0, code, stderr)

	seed := time.Now().UnixNano()
	t.Logf("random seed %d", seed)
	rnd := rand.New(rand.NewSource(seed))
	work := filepath.Join(dir, "work")
	kills := 0
	for round := 0; ; round++ {
		require.Less(t, round, 60, "never finished")
		cmd := exec.Command(bin, args(work)...)
		var errBuf bytes.Buffer
		cmd.Stderr = &errBuf
		require.NoError(t, cmd.Start())
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			require.NoError(t, err, errBuf.String())
		case <-time.After(time.Duration(rnd.Intn(150+50*round)) * time.Millisecond):
			require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
			<-done
			kills++
			continue
		}
		break
	}
	t.Logf("finished after %d kills", kills)
	sameOutput(t, ref, work)
}

// TestShardsMergeEqualsUnsharded: three shards (from -shard, a Kubernetes
// Indexed Job's environment and a Slurm array's) with different batch sizes,
// merged, equal the unsharded run: the same image files, the same manifest
// rows but for timings, the same labels and job file.
func TestShardsMergeEqualsUnsharded(t *testing.T) {
	dir := t.TempDir()
	prompts := writePrompts(t, dir, "p.csv", promptCSV)
	ref := filepath.Join(dir, "ref")
	fmtArgs := []string{"-format", "png,png16"}
	code, stderr := gen(t, context.Background(), noEnv, genArgs(prompts, ref, append(fmtArgs, "-batch", "4")...)...)
	require.Equal(t, 0, code, stderr)

	sh := filepath.Join(dir, "shards")
	runs := []struct {
		env  map[string]string
		args []string
	}{
		{nil, []string{"-shard", "0/3", "-batch", "1"}},
		{map[string]string{"JOB_COMPLETION_INDEX": "1", ShardsEnv: "3"}, []string{"-batch", "2"}},
		{map[string]string{"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_MAX": "3", "SLURM_ARRAY_TASK_COUNT": "3"}, []string{"-batch", "3"}},
	}
	// Merging before the last shard ran names what is missing.
	for i, r := range runs {
		if i == 2 {
			code, stderr = gen(t, context.Background(), noEnv, "-merge", sh)
			require.Equal(t, 1, code)
			require.Contains(t, stderr, "shard(s) 2 of 3 missing")
		}
		code, stderr = gen(t, context.Background(), envMap(r.env), genArgs(prompts, sh, append(fmtArgs, r.args...)...)...)
		require.Equal(t, 0, code, stderr)
		require.Contains(t, stderr, "shard "+itoa(uint64(i))+"/3")
	}
	require.FileExists(t, filepath.Join(sh, "manifest-00001-of-00003.jsonl"))
	code, stderr = gen(t, context.Background(), noEnv, "-merge", sh)
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stderr, "7 images, none missing or duplicated")
	sameOutput(t, ref, sh)
	for _, f := range []string{"labels.csv", "job.json"} {
		a, err := os.ReadFile(filepath.Join(ref, f))
		require.NoError(t, err)
		b, err := os.ReadFile(filepath.Join(sh, f))
		require.NoError(t, err)
		require.Equal(t, string(a), string(b), f)
	}
	// A second merge gives the same files; the merged folder resumes as a
	// finished unsharded run.
	code, stderr = gen(t, context.Background(), noEnv, "-merge", sh)
	require.Equal(t, 0, code, stderr)
	code, stderr = gen(t, context.Background(), noEnv, genArgs(prompts, sh, fmtArgs...)...)
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stderr, "0 image(s) generated, 7 already done")

	// Shards in separate folders merge into another one, paths rewritten.
	var srcs []string
	for i := 0; i < 2; i++ {
		d := filepath.Join(dir, "s"+itoa(uint64(i)))
		srcs = append(srcs, d)
		code, stderr = gen(t, context.Background(), noEnv, genArgs(prompts, d, append(fmtArgs, "-shard", itoa(uint64(i))+"/2")...)...)
		require.Equal(t, 0, code, stderr)
	}
	merged := filepath.Join(dir, "merged")
	code, stderr = gen(t, context.Background(), noEnv, append([]string{"-merge", "-out", merged}, srcs...)...)
	require.Equal(t, 0, code, stderr)
	rows := manifestRows(t, filepath.Join(merged, "manifest.jsonl"))
	require.Len(t, rows, 7)
	require.Contains(t, rows["cm_0"], `"path":"../s1/png/cm_0.png"`) // index 3: shard 1
	require.Contains(t, rows["cm_1"], `"path":"../s0/png/cm_1.png"`)

	// A duplicated or damaged shard is refused.
	code, stderr = gen(t, context.Background(), noEnv, "-merge", "-out", filepath.Join(dir, "m2"), srcs[0], srcs[0]+"/../s0", sh)
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "holds shard")
	require.NoError(t, os.WriteFile(filepath.Join(srcs[1], "png", "cm_0.png"), []byte("x"), 0o644))
	code, stderr = gen(t, context.Background(), noEnv, append([]string{"-merge", "-out", merged}, srcs...)...)
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "does not match the manifest")
	m1 := filepath.Join(srcs[0], "manifest-00000-of-00002.jsonl")
	data, err := os.ReadFile(m1)
	require.NoError(t, err)
	lines := strings.SplitAfter(string(data), "\n")
	require.NoError(t, os.WriteFile(m1, []byte(strings.Join(lines[1:], "")), 0o644))
	code, stderr = gen(t, context.Background(), noEnv, append([]string{"-merge", "-verify=false", "-out", merged}, srcs...)...)
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "run that shard again")
}

// TestFormats: 16-bit PNG and DICOM outputs hold the same values; the DICOM
// files pass dcmtk/dicom3tools and read back through the dataset package's
// DICOM reader.
func TestFormats(t *testing.T) {
	dir := t.TempDir()
	prompts := writePrompts(t, dir, "p.jsonl", `{"id": "x", "prompt": "épanchement pleural gauche", "n": 2, "Edema": 1}`+"\n")
	out := filepath.Join(dir, "out")
	code, stderr := gen(t, context.Background(), noEnv, genArgs(prompts, out, "-format", "gray,png16,dcm8,dcm16")...)
	require.Equal(t, 0, code, stderr)
	var dcms []string
	for k := 0; k < 2; k++ {
		key := "x_" + itoa(uint64(k))
		g16 := readPNG(t, filepath.Join(out, "png16", key+".png")).(*image.Gray16)
		g8 := readPNG(t, filepath.Join(out, "gray", key+".png")).(*image.Gray)
		for _, f := range []string{"dcm8", "dcm16"} {
			p := filepath.Join(out, f, key+".dcm")
			dcms = append(dcms, p)
			data, err := os.ReadFile(p)
			require.NoError(t, err)
			px, err := dataset.Decode(data, 32, false)
			require.NoError(t, err)
			for i := 0; i < 32*32; i++ {
				var want float64
				if f == "dcm16" {
					want = float64(uint16(g16.Pix[2*i])<<8|uint16(g16.Pix[2*i+1])) / 65535
				} else {
					want = float64(g8.Pix[i]) / 255
				}
				require.InDelta(t, 2*want-1, float64(px[i]), 1e-6, "%s pixel %d", p, i)
			}
			require.True(t, bytes.Contains(data, []byte("épanchement pleural gauche")))
			require.True(t, bytes.Contains(data, []byte("ISO_IR 192")))
		}
	}
	sort.Strings(dcms)
	dicomtest.Validate(t, dcms...)
}

func TestBadUsage(t *testing.T) {
	dir := t.TempDir()
	prompts := writePrompts(t, dir, "p.csv", promptCSV)
	out := filepath.Join(dir, "out")
	cases := map[string][]string{
		"-prompts is empty":       {"-out", out},
		"-out is empty":           {"-prompts", prompts},
		"unknown format":          genArgs(prompts, out, "-format", "tiff"),
		"names png twice":         genArgs(prompts, out, "-format", "png,png"),
		"-batch 0":                genArgs(prompts, out, "-batch", "0"),
		"unknown scheduler":       genArgs(prompts, out, "-scheduler", "nope"),
		"expected i/n":            genArgs(prompts, out, "-shard", "3/3"),
		"no such file":            genArgs(filepath.Join(dir, "none.csv"), out),
		"unexpected argument":     append(genArgs(prompts, out), "extra"),
		"multiples of":            {"-prompts", prompts, "-out", out, "-width", "30", "-q"},
		`unknown column "Pleural`: genArgs(prompts, out, "-labels", "Cardiomegaly"),
	}
	for want, args := range cases {
		code, stderr := gen(t, context.Background(), noEnv, args...)
		require.Equal(t, 2, code, "%s: %s", want, stderr)
		require.Contains(t, stderr, want)
	}
	code, stderr := gen(t, context.Background(), noEnv, "-merge")
	require.Equal(t, 2, code, stderr)
}

// TestInitAndMaskColumns: rows with init (img2img) and init+mask
// (inpainting) columns, paths relative to the prompt file, are routed to
// Img2Img and Inpaint, recorded in the manifest, and each image is its
// regenerate command's image; bad rows are refused before any work.
func TestInitAndMaskColumns(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "in"), 0o755))
	initImg := image.NewGray(image.Rect(0, 0, 40, 40))
	for i := range initImg.Pix {
		initImg.Pix[i] = uint8(i * 5)
	}
	mask := image.NewGray(image.Rect(0, 0, 40, 40))
	for y := 10; y < 30; y++ {
		for x := 5; x < 25; x++ {
			mask.Pix[y*40+x] = 255
		}
	}
	for name, img := range map[string]image.Image{"a.png": initImg, "m.png": mask} {
		f, err := os.Create(filepath.Join(dir, "in", name))
		require.NoError(t, err)
		require.NoError(t, png.Encode(f, img))
		require.NoError(t, f.Close())
	}
	prompts := writePrompts(t, dir, "p.csv", `id,prompt,n,init,mask,strength
t,plain,1,,,
i,from image,2,in/a.png,,0.5
m,inpainted,1,in/a.png,in/m.png,
`)
	out := filepath.Join(dir, "out")
	code, stderr := gen(t, context.Background(), noEnv, genArgs(prompts, out, "-batch", "2")...)
	require.Equal(t, 0, code, stderr)
	rows := manifestRows(t, filepath.Join(out, "manifest.jsonl"))
	require.Len(t, rows, 4)
	p, err := pipeline.Demo()
	require.NoError(t, err)
	defer p.Close()
	modes := map[string]string{}
	for _, row := range rows {
		var r record
		require.NoError(t, json.Unmarshal([]byte(row), &r))
		modes[r.Key] = r.Mode
		req := pipeline.Request{Prompt: r.Prompt, Negative: r.Negative, Seed: r.Seed,
			Steps: r.Steps, Guidance: r.Guidance, Scheduler: r.Scheduler, Width: r.Width, Height: r.Height}
		var res *pipeline.Result
		switch r.Mode {
		case "":
			require.True(t, strings.HasPrefix(r.Regenerate, "txt2img "), r.Regenerate)
			res, err = p.Txt2Img(context.Background(), req)
		case "img2img":
			require.Equal(t, "in/a.png", r.Init)
			require.Equal(t, 0.5, *r.Strength)
			require.True(t, strings.HasPrefix(r.Regenerate, "img2img "), r.Regenerate)
			require.Contains(t, r.Regenerate, "-init "+filepath.Join(dir, "in", "a.png")+" -strength 0.5")
			req.InitImage, req.Strength = initImg, *r.Strength
			res, err = p.Img2Img(context.Background(), req)
		case "inpaint":
			require.Equal(t, "in/m.png", r.Mask)
			require.Equal(t, 0.8, *r.Strength, "the -strength default")
			require.Equal(t, pipeline.InpaintLegacy, r.Inpaint, "the demo model has a 4-channel U-Net")
			require.Contains(t, r.Regenerate, "-mask "+filepath.Join(dir, "in", "m.png"))
			req.InitImage, req.MaskImage, req.Strength = initImg, mask, *r.Strength
			res, err = p.Inpaint(context.Background(), req)
		}
		require.NoError(t, err)
		img := readPNG(t, filepath.Join(out, "png", r.Key+".png"))
		require.Equal(t, res.Images[0].Pix, toNRGBA(img).Pix, "image %s", r.Key)
	}
	require.Equal(t, map[string]string{"t_0": "", "i_0": "img2img", "i_1": "img2img", "m_0": "inpaint"}, modes)
	job, err := os.ReadFile(filepath.Join(out, "job.json"))
	require.NoError(t, err)
	require.Contains(t, string(job), `"in/m.png"`, "the inputs' hashes are part of the job")

	// A changed init image is another job.
	initImg.Pix[0] = 1
	f, err := os.Create(filepath.Join(dir, "in", "a.png"))
	require.NoError(t, err)
	require.NoError(t, png.Encode(f, initImg))
	require.NoError(t, f.Close())
	code, stderr = gen(t, context.Background(), noEnv, genArgs(prompts, out, "-batch", "2")...)
	require.Equal(t, 2, code, stderr)
	require.Contains(t, stderr, "belongs to another job")

	for _, c := range []struct{ csv, want string }{
		{"prompt,mask\nx,in/m.png\n", "column mask \"in/m.png\" without an init image"},
		{"prompt,strength\nx,0.5\n", "column strength without an init image"},
		{"prompt,init,strength\nx,in/a.png,1.5\n", "column strength: \"1.5\"; expected a number in [0, 1]"},
		{"prompt,init\nx,in/missing.png\n", "line 2: init image: open"},
		{"prompt,init,mask\nx,in/a.png,p.csv\n", "line 2: mask"},
	} {
		bad := writePrompts(t, dir, "bad.csv", c.csv)
		code, stderr := gen(t, context.Background(), noEnv, genArgs(bad, filepath.Join(dir, "badout"))...)
		require.Equal(t, 2, code, stderr)
		require.Contains(t, stderr, c.want)
	}
}
