// Package benchmarks holds roentgo's end-to-end `go test -bench` suites: whole
// txt2img runs on the Stable Diffusion 1.5 architecture with random weights, timed
// per phase (text encoding, denoising, VAE decoding) with peak memory. Kernel- and
// model-level benchmarks live beside their packages (kernels/cpu, nn, unet, vae,
// clip); results measured on GPUs are kept under results/ with card, date and commit.
//
// Run (one SD1.5 generation takes minutes on 2 cores):
//
//	go test ./benchmarks -run '^$' -bench Txt2Img -benchtime 1x -timeout 60m
//	go test ./benchmarks -run '^$' -bench LoadSD15 -benchtime 5x
package benchmarks
