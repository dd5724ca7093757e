// Package clip holds CLIP's text side for Stable Diffusion: the tokenizer and
// the text encoder.
//
// TextModel is transformers' CLIPTextModel (Radford et al. 2021, "Learning
// Transferable Visual Models From Natural Language Supervision"), built with
// NewTextModel or loaded from a diffusers text_encoder/ folder with
// LoadTextModel: Forward gives the last hidden state (Stable Diffusion's prompt
// embeddings), HiddenState(ids, -2, ln) the penultimate ("clip skip") states,
// and ForwardOutput all hidden states and the pooled EOS output. Weights
// whose position_ids buffer is damaged (stored as F16 or F32 by conversion
// scripts, averaged by merges) load with a warning in TextModel.Warnings
// (see NewTextModel), for the caller to show.
//
// CLIPTokenizer reproduces the ids of transformers' CLIPTokenizer with ftfy
// installed, which are those of OpenAI's CLIP tokenizer, as the diffusers
// pipelines use it: it loads a diffusers tokenizer/ folder (vocab.json,
// merges.txt, tokenizer_config.json, special_tokens_map.json) with Load, and
// Encode returns 77 ids (BOS 49406, the prompt's BPE tokens, EOS 49407,
// padding) and the attention mask. Stable Diffusion 1.x pads with
// <|endoftext|>, 2.x with "!" (id 0); the folder's config says which.
//
// Radiology reports are often longer than 75 tokens. Encode truncates them
// as diffusers does; EncodeChunks keeps every token instead, as chunks of 75
// each wrapped in BOS/EOS and padded to 77, so that the text encoder can run
// per chunk and the embeddings be concatenated along the sequence (the way
// popular Stable Diffusion front ends handle long prompts).
//
// Text cleaning follows ftfy.fix_text (a subset; tokenizer_clean.go lists
// what is and is not reproduced), then collapses white space and
// lower-cases. Special tokens written in the prompt are split out before
// cleaning, as transformers does.
//
// ByteTokenizer needs no files: one id per UTF-8 byte, for the built-in
// random demo model. Both implement Tokenizer.
package clip
