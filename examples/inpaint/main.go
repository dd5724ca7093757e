// Command inpaint repaints the white part of a mask in an init image with
// Stable Diffusion from a prompt, and writes 8-bit PNGs with the generation
// parameters in tEXt chunks. It shares its flags with txt2img and img2img
// (diffusion/pipeline/cli), plus -init, -mask and -strength.
//
// An inpainting model (a 9-channel U-Net such as sd-v1-5-inpainting, as a
// diffusers folder or a single file) runs diffusers 0.16.1's
// StableDiffusionInpaintPipeline: the mask is thresholded at 0.5 (luma 128
// of 255 and more repaint; gray masks get a warning), the masked image's
// latents and the mask go into the U-Net at every step, and generation
// starts from pure noise (-strength is ignored, as in 0.16.1). An ordinary
// 4-channel model runs diffusers' legacy inpainting: img2img with
// -strength, the kept region restored from the noised init image after
// every step; gray mask values blend in proportion (with a warning).
//
// Init image and mask are resized to the output size (-width, -height;
// default the model's): the image with an antialiased filter, the mask
// nearest, both centre-cropped to the output's aspect ratio, so a mask of
// another size than the init image is stretched over it (with a warning).
// Unreadable images are errors before the model is loaded.
//
// Without -model it runs the built-in demo model (trained by roentgo on
// chest-radiograph phantoms, embedded in the program; package phantom/demo);
// -model builtin:tiny-random selects a tiny model with random weights. Example:
//
//	go run ./examples/inpaint -model sd-v1-5-inpainting -init cxr.png -mask box.png -prompt "right lower lobe consolidation" -out inpainted.png
package main

import (
	"os"

	"github.com/roentgo/roentgo/diffusion/pipeline/cli"
)

func main() {
	os.Exit(cli.Main(cli.Inpaint, os.Args[1:], os.Stdout, os.Stderr))
}
