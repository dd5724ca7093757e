// Command txt2img generates images with Stable Diffusion from a prompt and writes
// them as 8-bit PNGs with the generation parameters in tEXt chunks.
//
// Without -model it runs the built-in tiny demo model (random weights, no
// downloads; its output is noise). Run with -h for the flags. Example:
//
//	go run ./examples/txt2img -prompt "small left-sided pleural effusion" -out xray.png
package main

import (
	"os"

	"github.com/roentgo/roentgo/diffusion/pipeline/cli"
)

func main() {
	os.Exit(cli.Main(cli.Txt2Img, os.Args[1:], os.Stdout, os.Stderr))
}
