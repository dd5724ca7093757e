// Command generate makes a synthetic dataset from a prompt file: many
// images, batched, written with a manifest so that a killed run resumes where
// it stopped, and split into shards for Kubernetes Indexed Jobs and Slurm
// job arrays (docs/GENERATE.md).
//
//	generate -model sd -prompts prompts.csv -out data/ -steps 75 -guidance 4 -batch 4 -format png,dcm16
//	generate -merge data/
//
// The prompt file is CSV (with a header) or JSONL: columns id, prompt,
// negative, n, seed, steps, guidance, scheduler, width, height or size; every
// other column is a label, written to a CheXpert-style labels.csv. Each image
// has its own seed (a row's seed + k, or -seed + the image's index), so any
// image is regenerated alone by the txt2img command its manifest row prints.
// Without -model it runs the built-in demo model (package phantom/demo).
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := Main(ctx, os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
