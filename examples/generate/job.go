package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/roentgo/roentgo/diffusion"
)

// settings are the program-level defaults and options that, with the prompt
// file and the model, define a job's images (hashed into the job id).
type settings struct {
	Negative        string   `json:"negative"`
	N               int      `json:"n"`
	Seed            uint64   `json:"seed"`
	Steps           int      `json:"steps"`
	Guidance        float64  `json:"guidance"`
	GuidanceRescale float64  `json:"guidance_rescale"`
	Scheduler       string   `json:"scheduler"`
	Width           int      `json:"width"`
	Height          int      `json:"height"`
	LongPrompt      string   `json:"long_prompt"`
	Formats         []string `json:"formats"`
	Labels          []string `json:"labels"`
	UIDSalt         string   `json:"uid_salt"`
	BodyPart        string   `json:"body_part"`
	// Strength is the default strength of rows with an init image.
	Strength float64 `json:"strength,omitempty"`
	// Inputs maps every init and mask image the prompt file names (as
	// written) to its SHA-256, so that changed images make another job.
	Inputs map[string]string `json:"inputs,omitempty"`
}

// jobFile is job<suffix>.json: what a shard of a job is.
type jobFile struct {
	Version      int      `json:"version"`
	Job          string   `json:"job"`
	Shard        int      `json:"shard"`
	Shards       int      `json:"shards"`
	Images       int      `json:"images"`
	Total        int      `json:"total"`
	PromptFile   string   `json:"prompt_file"`
	PromptSHA256 string   `json:"prompt_sha256"`
	Model        string   `json:"model"`
	ModelHash    string   `json:"model_hash"`
	Settings     settings `json:"settings"`
	LabelColumns []string `json:"label_columns,omitempty"`
}

// genImage is one image of the job.
type genImage struct {
	index, row, k    int
	id, key          string
	seed             uint64
	prompt, negative string
	steps            int
	guidance         float64
	scheduler        string
	width, height    int
	labels           map[string]string
	// init and mask as written in the prompt file, initPath and maskPath
	// resolved against its folder ("" for txt2img rows).
	init, mask         string
	initPath, maskPath string
	strength           float64
}

// mode is how the image is generated: "txt2img", "img2img" or "inpaint".
func (im *genImage) mode() string {
	switch {
	case im.mask != "":
		return "inpaint"
	case im.init != "":
		return "img2img"
	}
	return "txt2img"
}

// config is what images denoised together must share.
type config struct {
	width, height, steps int
	guidance             float64
	scheduler            string
	initPath, maskPath   string
	strength             float64
}

func (im *genImage) config() config {
	return config{im.width, im.height, im.steps, im.guidance, im.scheduler, im.initPath, im.maskPath, im.strength}
}

// job is a resolved job: its images and identity.
type job struct {
	file       jobFile
	hash       string
	images     []*genImage // the whole job, by index
	formats    []formatInfo
	modelFlag  string // -model as given (for regenerate commands)
	rescale    float64
	longPrompt string
	uidBase    string
	bodyPart   string
}

// imageKey is an image's key: the row id, "_", the image's number in the row.
func imageKey(id string, k int) string { return id + "_" + strconv.Itoa(k) }

// buildJob expands the rows into images with the defaults of s filled in:
//
//	seed of image k of a row = row's seed + k            (seed column given)
//	                         = s.Seed + the image's index (otherwise)
//
// where the index counts the images of the whole file in order (row by row).
// Init and mask paths are resolved against dir (the prompt file's folder)
// unless absolute. Rows with an init image take s.Strength unless they give
// one; inpainting rows with an inpainting model (inpaintModel), which
// ignores strength, get 1.
func buildJob(pf *promptFile, s settings, dir string, inpaintModel bool) ([]*genImage, error) {
	var out []*genImage
	resolve := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(dir, filepath.FromSlash(p))
	}
	for ri, r := range pf.rows {
		im := genImage{row: ri, id: r.id, prompt: r.prompt, negative: s.Negative, steps: s.Steps,
			guidance: s.Guidance, scheduler: s.Scheduler, width: s.Width, height: s.Height, labels: r.labels,
			init: r.init, mask: r.mask, initPath: resolve(r.init), maskPath: resolve(r.mask)}
		if r.init != "" {
			im.strength = s.Strength
			if r.mask != "" && inpaintModel {
				im.strength = 1
			}
			if r.strength != nil {
				im.strength = *r.strength
			}
		}
		if r.negative != nil {
			im.negative = *r.negative
		}
		if r.steps != 0 {
			im.steps = r.steps
		}
		if r.guidance != nil {
			im.guidance = *r.guidance
		}
		if r.scheduler != "" {
			name, ok := diffusion.CanonicalSchedulerName(r.scheduler)
			if !ok {
				return nil, fmt.Errorf("prompt file line %d: unknown scheduler %q; expected one of %s", r.line, r.scheduler, strings.Join(diffusion.SchedulerNames, ", "))
			}
			im.scheduler = name
		}
		if r.width != 0 {
			im.width = r.width
		}
		if r.height != 0 {
			im.height = r.height
		}
		n := s.N
		if r.n != 0 {
			n = r.n
		}
		if len(out)+n > maxJobImages {
			return nil, fmt.Errorf("the prompt file asks for more than %d images", maxJobImages)
		}
		for k := 0; k < n; k++ {
			c := im
			c.index, c.k, c.key = len(out), k, imageKey(r.id, k)
			if r.seed != nil {
				c.seed = *r.seed + uint64(k)
			} else {
				c.seed = s.Seed + uint64(c.index)
			}
			out = append(out, &c)
		}
	}
	return out, nil
}

// maxJobImages bounds the images of one job.
const maxJobImages = 100_000_000

// jobHash is the job's identity: a SHA-256 (first 16 hex digits) over the
// prompt file's hash, the model's hash and the settings.
func jobHash(promptSHA, modelHash string, s settings) string {
	b, err := json.Marshal(struct {
		Prompt, Model string
		Settings      settings
	}{promptSHA, modelHash, s})
	if err != nil {
		panic(err)
	}
	return sha256Hex(b)[:16]
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	safe := s != ""
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_./:=,+-@%", r)) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// regenerate is the txt2img, img2img or inpaint command that makes image im
// alone (as an 8-bit PNG; -gray for the grayscale formats).
func (j *job) regenerate(im *genImage) string {
	var b strings.Builder
	b.WriteString(im.mode())
	if j.modelFlag != "" {
		b.WriteString(" -model " + shellQuote(j.modelFlag))
	}
	b.WriteString(" -prompt " + shellQuote(im.prompt))
	if im.negative != "" {
		b.WriteString(" -negative " + shellQuote(im.negative))
	}
	fmt.Fprintf(&b, " -seed %d -steps %d -guidance %s -scheduler %s -width %d -height %d",
		im.seed, im.steps, strconv.FormatFloat(im.guidance, 'g', -1, 64), im.scheduler, im.width, im.height)
	if j.rescale != 0 {
		b.WriteString(" -guidance-rescale " + strconv.FormatFloat(j.rescale, 'g', -1, 64))
	}
	if j.longPrompt != "truncate" {
		b.WriteString(" -long-prompt " + j.longPrompt)
	}
	if im.init != "" {
		b.WriteString(" -init " + shellQuote(im.initPath) + " -strength " + strconv.FormatFloat(im.strength, 'g', -1, 64))
	}
	if im.mask != "" {
		b.WriteString(" -mask " + shellQuote(im.maskPath))
	}
	if j.formats[0].name != "png" {
		b.WriteString(" -gray")
	}
	b.WriteString(" -out " + shellQuote(im.key+".png"))
	return b.String()
}

// outFiles are a shard's file names in the output root.
type outFiles struct {
	manifest, job, labels, lock string
}

func shardFiles(dir string, s shard) outFiles {
	x := s.suffix()
	return outFiles{
		manifest: filepath.Join(dir, "manifest"+x+".jsonl"),
		job:      filepath.Join(dir, "job"+x+".json"),
		labels:   filepath.Join(dir, "labels"+x+".csv"),
		lock:     filepath.Join(dir, ".lock"+x),
	}
}
