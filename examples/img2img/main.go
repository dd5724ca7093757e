// Command img2img generates images with Stable Diffusion from an init image and a prompt and writes
// them as 8-bit PNGs with the generation parameters in tEXt chunks.
//
// Without -model it runs the built-in demo model (trained by roentgo on
// chest-radiograph phantoms, embedded in the program; package phantom/demo);
// -model builtin:tiny-random selects a tiny model with random weights. Run with -h for the flags. Example:
//
//	go run ./examples/img2img -init in.png -strength 0.6 -prompt "small left-sided pleural effusion" -out xray.png
package main

import (
	"os"

	"github.com/roentgo/roentgo/diffusion/pipeline/cli"
)

func main() {
	os.Exit(cli.Main(cli.Img2Img, os.Args[1:], os.Stdout, os.Stderr))
}
