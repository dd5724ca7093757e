// Package features holds the feature extractors of RoentGen's evaluation,
// built from nn layers like the clip, unet and vae models, with their
// preprocessing:
//
//   - Inception: Inception-v3 as pytorch-fid's FIDInceptionV3 (the TF
//     2015-12-05 graph FID is defined with): FIDInceptionA/C/E_1 average
//     pooling without the padding, FIDInceptionE_2 max pooling, the 2048-d
//     pool3 output; inputs 299x299 in [0, 1], normalised to 2x - 1
//     (pytorch-fid) or (255x - 128)/128 (clean-fid, CleanFIDInput).
//     PreprocessInception is clean-fid's "clean" resize: Pillow's
//     antialiased bicubic on float images (ResizeBicubic), clipped to 0..255.
//     Keys are pytorch-fid's; LoadInception reads
//     pt_inception-2015-12-05-6726825d.pth when it is a zip checkpoint, or a
//     safetensors conversion.
//   - DenseNet: torchxrayvision's DenseNet-121 (densenet121-res224-all): one
//     input channel at 224x224 in XRV's range [-1024, 1024]; Features is the
//     1024-d features2 output (ReLU and global average pool after norm5),
//     Logits the 18 pathology logits, Calibrated xrv's sigmoid + op_norm
//     against XRVOpThresholds. PreprocessXRV is xrv's normalise, centre crop
//     and XRayResizer (skimage's antialiased linear resize, ResizeXRV).
//   - CLIPVision: CLIP's ViT-B/32 image tower (transformers'
//     CLIPVisionModelWithProjection: 512-d image_embeds); keys are
//     transformers' names, OpenAI / open_clip visual.* state dicts are
//     renamed (OpenAIVisionSource). PreprocessCLIP is OpenAI's resize of the
//     shorter side (bicubic), centre crop and mean/std normalisation.
//
// BatchNorm layers run in eval mode (running statistics). Those that follow
// a convolution are folded into it at load time (W' = W γ/√(σ²+ε),
// b' = β - μ γ/√(σ²+ε), F32); the others (DenseNet's pre-activation norms)
// run as a per-channel affine map fused with ReLU (tensor.ChannelAffine).
// The pooling ops are tensor.MaxPool2d, AvgPool2d (count_include_pad either
// way) and AdaptiveAvgPool2d, forward only.
//
// The configs default to the real architectures; they also take reduced
// sizes (InceptionConfig.WidthDiv, DenseNetConfig, CLIPVisionConfig), which
// the tests use: scripts/golden_features.py writes the same architectures in
// plain PyTorch with seeded random weights at reduced sizes and their
// outputs at several layers (testdata/), and the tests compare every layer.
// With the real weights present (ROENTGO_INCEPTION, ROENTGO_XRV_DENSENET,
// ROENTGO_CLIP_VIT naming the files) further tests load and run them.
// docs/EVALUATION.md says where to get the weights and how to convert them.
//
// Every extractor runs under tensor.NoGrad and returns F32 [N, D] features.
package features
