package train

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/roentgo/roentgo/diffusion/dataset"
	"github.com/roentgo/roentgo/diffusion/pipeline"
	"github.com/roentgo/roentgo/internal/atomicfile"
	"github.com/roentgo/roentgo/internal/errctx"
	"github.com/roentgo/roentgo/nn"
	"github.com/roentgo/roentgo/tensor"
)

// Checkpoint files (inside a checkpoint folder).
const (
	stateFile     = "trainer.json"
	unetMasters   = "unet.safetensors"
	textMasters   = "text_encoder.safetensors"
	optimizerFile = "optimizer.safetensors"
	emaFile       = "ema.safetensors"
	latestFile    = "latest"
	checkpointPre = "checkpoint-"
	stateVersion  = 1
)

// resumeState is a checkpoint's trainer.json.
type resumeState struct {
	Version  int              `json:"version"`
	Step     int              `json:"step"`
	Total    int              `json:"total_steps"`
	Position dataset.Position `json:"position"`
	// Micro is the number of micro-batches drawn so far (Step *
	// Accumulate): the next one's generator is seeded from it.
	Micro  int      `json:"micro_batches"`
	Mode   string   `json:"mode"`
	Config Config   `json:"config"`
	Files  []string `json:"files"`
	dir    string
}

// CheckpointName returns the folder name of the checkpoint after step
// (checkpoint-000100), which sorts by step.
func CheckpointName(step int) string { return fmt.Sprintf("%s%06d", checkpointPre, step) }

// Checkpoint writes the run's state to Out/checkpoint-NNNNNN and returns
// its path: the trained parameters' F32 masters (unet.safetensors,
// text_encoder.safetensors, under their diffusers names), the AdamW state
// (optimizer.safetensors), the EMA averages (ema.safetensors) and
// trainer.json (step, dataset position, configuration). The folder is
// written under a temporary name and renamed when complete, then
// Out/latest is updated; a failure (a full disk) leaves the previous
// checkpoints and latest as they were (only a failure to write latest
// itself leaves the new folder, complete), and its error names the file
// and wraps the cause (errors.Is(err, syscall.ENOSPC) for a full disk).
// With KeepCheckpoints the oldest are removed.
func (t *Trainer) Checkpoint() (string, error) {
	if err := t.ensureOut(); err != nil {
		return "", err
	}
	name := CheckpointName(t.step)
	final := filepath.Join(t.cfg.Out, name)
	ctx := fmt.Sprintf("train: checkpoint at step %d", t.step)
	fail := func(err error) (string, error) {
		return "", fmt.Errorf("%w; the earlier checkpoints are untouched", errctx.Wrap(ctx, err))
	}
	tmp, err := os.MkdirTemp(t.cfg.Out, "."+name+".tmp-")
	if err != nil {
		return fail(err)
	}
	done := false
	defer func() {
		if !done {
			os.RemoveAll(tmp)
		}
	}()
	st := resumeState{Version: stateVersion, Step: t.step, Total: t.total, Position: t.it.Position(),
		Micro: t.step * t.cfg.Accumulate, Mode: t.mode.Name(), Config: t.cfg}
	meta := map[string]string{"roentgo.step": fmt.Sprint(t.step)}
	if len(t.unetTrain) > 0 {
		if err := t.models.UNet.SaveMasters(filepath.Join(tmp, unetMasters), meta); err != nil {
			return fail(err)
		}
		st.Files = append(st.Files, unetMasters)
	}
	if len(t.textTrain) > 0 {
		if err := t.models.Text.SaveMasters(filepath.Join(tmp, textMasters), meta); err != nil {
			return fail(err)
		}
		st.Files = append(st.Files, textMasters)
	}
	for i, x := range t.models.Extra {
		if len(t.extraTrain[i]) == 0 {
			continue
		}
		f := x.Name + ".safetensors"
		if err := x.Params.SaveMasters(filepath.Join(tmp, f), meta); err != nil {
			return fail(err)
		}
		st.Files = append(st.Files, f)
	}
	if err := t.opt.Save(filepath.Join(tmp, optimizerFile), meta); err != nil {
		return fail(err)
	}
	st.Files = append(st.Files, optimizerFile)
	if t.ema != nil {
		if err := t.ema.Save(filepath.Join(tmp, emaFile), meta); err != nil {
			return fail(err)
		}
		st.Files = append(st.Files, emaFile)
	}
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fail(err)
	}
	if err := atomicfile.WriteFile(filepath.Join(tmp, stateFile), append(data, '\n')); err != nil {
		return fail(err)
	}
	if err := replaceDir(tmp, final); err != nil {
		return fail(err)
	}
	done = true
	if err := atomicfile.WriteFile(filepath.Join(t.cfg.Out, latestFile), []byte(name+"\n")); err != nil {
		return "", fmt.Errorf("%w; %s is complete, but %s was not updated", errctx.Wrap(ctx, err), final, latestFile)
	}
	t.lastCheckpoint = final
	if t.cfg.KeepCheckpoints > 0 {
		t.prune(name)
	}
	return final, nil
}

// replaceDir renames the complete folder tmp to final, moving an existing
// final aside first and removing it after.
func replaceDir(tmp, final string) error {
	var old string
	if _, err := os.Lstat(final); err == nil {
		old = final + ".old"
		os.RemoveAll(old)
		if err := os.Rename(final, old); err != nil {
			return fmt.Errorf("train: replacing %s: %w", final, err)
		}
	}
	if err := os.Rename(tmp, final); err != nil {
		if old != "" {
			os.Rename(old, final)
		}
		return fmt.Errorf("train: %w", err)
	}
	if d, err := os.Open(filepath.Dir(final)); err == nil {
		d.Sync()
		d.Close()
	}
	if old != "" {
		os.RemoveAll(old)
	}
	return nil
}

// prune removes the oldest checkpoints beyond KeepCheckpoints, never keep.
func (t *Trainer) prune(keep string) {
	ents, err := os.ReadDir(t.cfg.Out)
	if err != nil {
		return
	}
	var names []string
	for _, e := range ents {
		if e.IsDir() && strings.HasPrefix(e.Name(), checkpointPre) && !strings.HasSuffix(e.Name(), ".old") {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	for len(names) > t.cfg.KeepCheckpoints {
		if names[0] != keep {
			os.RemoveAll(filepath.Join(t.cfg.Out, names[0]))
		}
		names = names[1:]
	}
}

// FindCheckpoint resolves path to a checkpoint folder: a checkpoint folder
// itself (holding trainer.json), or an output folder whose latest file
// names one.
func FindCheckpoint(path string) (string, error) {
	if _, err := os.Stat(filepath.Join(path, stateFile)); err == nil {
		return path, nil
	}
	data, err := os.ReadFile(filepath.Join(path, latestFile))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("train: %s is neither a checkpoint (no %s) nor an output folder with checkpoints (no %s)", path, stateFile, latestFile)
		}
		return "", fmt.Errorf("train: %w", err)
	}
	name := strings.TrimSpace(string(data))
	if name == "" || strings.ContainsAny(name, `/\`) {
		return "", fmt.Errorf("train: %s: bad checkpoint name %q", filepath.Join(path, latestFile), name)
	}
	dir := filepath.Join(path, name)
	if _, err := os.Stat(filepath.Join(dir, stateFile)); err != nil {
		return "", fmt.Errorf("train: %s names %s, which is not a checkpoint", filepath.Join(path, latestFile), dir)
	}
	return dir, nil
}

// ReadCheckpointConfig returns the configuration stored in a checkpoint
// (see FindCheckpoint for path).
func ReadCheckpointConfig(path string) (Config, error) {
	st, err := readState(path)
	if err != nil {
		return Config{}, err
	}
	return st.Config, nil
}

// readState reads a checkpoint's trainer.json.
func readState(path string) (*resumeState, error) {
	dir, err := FindCheckpoint(path)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	st := &resumeState{dir: dir}
	if err := json.Unmarshal(data, st); err != nil {
		return nil, fmt.Errorf("train: %s: %v", filepath.Join(dir, stateFile), err)
	}
	if st.Version != stateVersion {
		return nil, fmt.Errorf("train: %s: state version %d, this program reads %d", filepath.Join(dir, stateFile), st.Version, stateVersion)
	}
	return st, nil
}

// Resume continues the run of a checkpoint (a checkpoint folder, or an
// output folder: its latest checkpoint). change, if not nil, may adjust the
// stored configuration first; changing Workers, Out, CheckpointEvery,
// KeepCheckpoints or LatentCache keeps the run exact, changing anything
// else (Steps changes the learning-rate schedule) makes a different run.
// Without changes, N steps straight and k steps, a checkpoint, Resume and
// N-k steps give bit-identical weights and optimiser state on the CPU.
func Resume(path string, change func(*Config)) (*Trainer, error) {
	st, err := readState(path)
	if err != nil {
		return nil, err
	}
	cfg := st.Config
	if change != nil {
		change(&cfg)
	}
	if cfg.Mode != st.Mode {
		return nil, fmt.Errorf("train: checkpoint %s was made in mode %s, not %s", st.dir, st.Mode, cfg.Mode)
	}
	if cfg.Accumulate != st.Config.Accumulate {
		return nil, fmt.Errorf("train: checkpoint %s: accumulate %d cannot change on resume (was %d)", st.dir, cfg.Accumulate, st.Config.Accumulate)
	}
	return newTrainer(cfg, st)
}

// restore loads a checkpoint's masters, optimiser and EMA state.
func (t *Trainer) restore(st *resumeState) error {
	if st.Step > t.total {
		return fmt.Errorf("train: checkpoint %s is at step %d, past the run's %d steps", st.dir, st.Step, t.total)
	}
	if len(t.unetTrain) > 0 {
		if err := t.models.UNet.LoadMasters(filepath.Join(st.dir, unetMasters)); err != nil {
			return errctx.Wrap("train: resume", err)
		}
	}
	if len(t.textTrain) > 0 {
		if err := t.models.Text.LoadMasters(filepath.Join(st.dir, textMasters)); err != nil {
			return errctx.Wrap("train: resume", err)
		}
	}
	for i, x := range t.models.Extra {
		if len(t.extraTrain[i]) == 0 {
			continue
		}
		if err := x.Params.LoadMasters(filepath.Join(st.dir, x.Name+".safetensors")); err != nil {
			return errctx.Wrap("train: resume", err)
		}
	}
	if err := t.opt.Load(filepath.Join(st.dir, optimizerFile)); err != nil {
		return errctx.Wrap("train: resume", err)
	}
	if t.ema != nil {
		if err := t.ema.Load(filepath.Join(st.dir, emaFile)); err != nil {
			return errctx.Wrap("train: resume", err)
		}
	}
	t.step = st.Step
	t.lastCheckpoint = st.dir
	return nil
}

// weight returns the final value of a trained parameter (the EMA average
// when the run keeps one).
func (t *Trainer) weight(p *nn.Trainable) *tensor.Tensor {
	if t.ema != nil {
		if s := t.ema.Shadow(p.Name); s != nil {
			return s
		}
	}
	return p.Master
}

// SaveModel writes the trained model to dir through the mode (a diffusers
// folder for the built-in modes), under a temporary name renamed when
// complete (an existing dir is replaced).
func (t *Trainer) SaveModel(dir string) error {
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return fmt.Errorf("train: %w", err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "."+filepath.Base(dir)+".tmp-")
	if err != nil {
		return fmt.Errorf("train: %w", err)
	}
	os.Remove(tmp) // SaveOutput creates it
	if err := t.mode.SaveOutput(t.models, t.weight, tmp); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	if err := replaceDir(tmp, dir); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	return nil
}

// isWeightFile reports whether name is a weights file of a component
// folder (what nn.FindWeights looks for).
func isWeightFile(name string) bool {
	for _, ext := range []string{".safetensors", ".bin", ".ckpt", ".index.json"} {
		if strings.HasSuffix(name, ext) {
			return true
		}
	}
	return false
}

// SaveDiffusers writes m's pipeline as a diffusers folder dir (created): the
// components named in trained get new weights — every parameter in F32, the
// trained ones from weight, the frozen ones from the model — as
// diffusion_pytorch_model.safetensors (unet) or model.safetensors
// (text_encoder) beside their config.json; every other file of the source
// folder is hard-linked where possible, else copied.
func SaveDiffusers(m *Models, weight WeightFunc, dir string, trained ...string) error {
	src := m.Pipeline.Path
	if src == "" {
		return errors.New("train: the pipeline has no source folder to copy")
	}
	isTrained := map[string]bool{}
	for _, c := range trained {
		isTrained[c] = true
	}
	err := filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		if d.IsDir() {
			if rel != "." && strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir
			}
			return os.MkdirAll(filepath.Join(dir, rel), 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		comp := strings.Split(filepath.ToSlash(rel), "/")[0]
		if isTrained[comp] && isWeightFile(d.Name()) {
			return nil
		}
		return linkOrCopy(path, filepath.Join(dir, rel))
	})
	if err != nil {
		return fmt.Errorf("train: writing the model: %w", err)
	}
	for _, comp := range trained {
		var ps *nn.ParamSet
		var file string
		switch comp {
		case "unet":
			ps, file = m.UNet, "diffusion_pytorch_model.safetensors"
		case "text_encoder":
			ps, file = m.Text, "model.safetensors"
		default:
			return fmt.Errorf("train: unknown component %q", comp)
		}
		if err := os.MkdirAll(filepath.Join(dir, comp), 0o755); err != nil {
			return fmt.Errorf("train: %w", err)
		}
		var params []nn.Param
		var free []*tensor.Tensor
		for _, p := range ps.All() {
			var v *tensor.Tensor
			if !p.Frozen() && p.Master != nil {
				v = weight(p)
			} else {
				d := p.Tensor.Detach()
				v = d.To(tensor.F32)
				free = append(free, d, v)
			}
			params = append(params, nn.Param{Name: p.Name, Tensor: v})
		}
		err := nn.SaveSafetensors(filepath.Join(dir, comp, file), params, map[string]string{"format": "pt"})
		for _, f := range free {
			f.Release()
		}
		if err != nil {
			return errctx.Wrap("train: writing "+comp, err)
		}
	}
	return nil
}

// linkOrCopy makes dst a hard link of src, or a copy when linking fails.
func linkOrCopy(src, dst string) error {
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return errors.Join(out.Sync(), out.Close())
}

// Sample generates an image from prompt with the current weights (not the
// EMA averages) and writes it as a PNG to path: size Resolution, the
// pipeline's scheduler, steps inference steps, guidance scale guidance, seed
// seed. It draws nothing from the training's random streams, so it does
// not change the run.
func (t *Trainer) Sample(ctx context.Context, prompt string, seed uint64, steps int, guidance float64, path string) error {
	var res *pipeline.Result
	var err error
	tensor.NoGrad(func() {
		res, err = t.pipe.Txt2Img(ctx, pipeline.Request{Prompt: prompt, Height: t.cfg.Resolution, Width: t.cfg.Resolution,
			Steps: steps, Guidance: guidance, Seed: seed})
	})
	if err != nil {
		return errctx.Wrap("train: validation sample", err)
	}
	data, err := pipeline.EncodePNG(res.Images[0], res.Text(0))
	if err != nil {
		return errctx.Wrap("train: validation sample", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("train: %w", err)
	}
	return errctx.Wrap("train: validation sample", pipeline.WriteFileAtomic(path, data))
}
