// Command mkmodel writes a Stable Diffusion model with random weights as a
// diffusers folder (model_index.json, tokenizer/, text_encoder/, unet/,
// vae/, scheduler/), for tests and benchmarks without downloads. The
// tokenizer is a byte-level CLIP vocabulary (every byte is a token).
//
// Configurations: tiny (a few hundred thousand parameters, default
// 256x256 images), sd15 (Stable Diffusion 1.5's architecture: 1.07 B
// parameters, about 2 GB in f16, 4 GB in f32) and sd21 (2.1-base's).
//
//	go run ./examples/mkmodel -config tiny -out /tmp/tiny-sd
//	go run ./examples/txt2img -model /tmp/tiny-sd -prompt "test" -out test.png
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/roentgo/roentgo/diffusion/pipeline"
	"github.com/roentgo/roentgo/tensor"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

func run(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("mkmodel", flag.ContinueOnError)
	config := fs.String("config", "tiny", "architecture: "+strings.Join(pipeline.RandomConfigs, ", "))
	out := fs.String("out", "", "folder to create (must not hold a model already)")
	seed := fs.Uint64("seed", pipeline.DemoSeed, "seed of the random weights")
	dtype := fs.String("dtype", "f32", "weight dtype: f32, f16 or bf16")
	fs.SetOutput(io.Discard)
	// Parse reports errors itself through Usage: keep it silent and print
	// the usage once, here, for -h.
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stderr, "Usage: mkmodel -config %s -out DIR [-seed N] [-dtype f32|f16|bf16]\n\nWrites a Stable Diffusion model with random weights as a diffusers folder.\n\nFlags:\n", strings.Join(pipeline.RandomConfigs, "|"))
			fs.SetOutput(stderr)
			fs.PrintDefaults()
			return 0
		}
		fmt.Fprintf(stderr, "mkmodel: %v (run with -h for the flags)\n", err)
		return 2
	}
	if fs.NArg() > 0 {
		hint := ""
		for _, c := range pipeline.RandomConfigs {
			if fs.Arg(0) == c {
				hint = fmt.Sprintf("; the configuration goes in -config %s", c)
			}
		}
		if hint == "" {
			hint = "; the configuration goes in -config and the folder in -out"
		}
		fmt.Fprintf(stderr, "mkmodel: unexpected argument %q%s\n", fs.Arg(0), hint)
		return 2
	}
	if *out == "" {
		fmt.Fprintln(stderr, "mkmodel: -out is empty; expected the folder to write the model to")
		return 2
	}
	dt, err := tensor.ParseDType(strings.ToUpper(*dtype))
	if err != nil || (dt != tensor.F32 && dt != tensor.F16 && dt != tensor.BF16) {
		fmt.Fprintf(stderr, "mkmodel: -dtype %q; expected f32, f16 or bf16\n", *dtype)
		return 2
	}
	if err := pipeline.WriteRandom(*out, *config, *seed, dt); err != nil {
		fmt.Fprintf(stderr, "mkmodel: %s\n", strings.TrimPrefix(err.Error(), "pipeline: "))
		return 1
	}
	fmt.Fprintf(stderr, "mkmodel: wrote the random %s model (seed %d, %v) to %s\n", *config, *seed, dt, *out)
	return 0
}
