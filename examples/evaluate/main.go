// Command evaluate measures synthetic chest radiographs as RoentGen's
// evaluation does, in one program: FID and KID on Inception-v3, XRV
// DenseNet-121 and CLIP ViT-B/32 features (each when its weights are
// given), within-prompt MS-SSIM diversity, prompt adherence judged by XRV's
// pathology classifier (or, with -classifier, by a phantom/classify findings
// classifier), and memorisation (nearest real images by feature cosine
// similarity and by pixel correlation). docs/EVALUATION.md describes the
// inputs, the protocol and the output.
//
//	evaluate -real train/ -gen data/ -out eval/ -inception inception.safetensors -xrv xrv.safetensors -cache cache/
//	evaluate -real train/ -gen data/ -out eval/ -features pixels -size 256     # weight-free sanity mode
//	evaluate -real train/ -prompts prompts.csv -model sd/ -gen data/ -out eval/   # generate first
//	evaluate -real phantoms/ -gen data/ -out eval/ -features pixels -classifier classifier.safetensors
//
// The output folder receives evaluation.json (every number), summary.txt
// (also printed), memorization_SPACE.png sheets of the closest pairs and
// report.html, a self-contained HTML report of it all with charts
// (chart_*.png) and image grids per prompt (grids/).
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
