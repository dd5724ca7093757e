// Package torchpickle reads PyTorch checkpoints written by torch.save in its
// zip format (PyTorch >= 1.6): `.bin` files such as pytorch_model.bin and the
// `.ckpt` files of original Stable Diffusion releases — without executing
// anything.
//
// # Format
//
// A checkpoint is a zip archive whose entries share one top-level folder
// (the archive name): `<archive>/data.pkl` is a pickle of the saved object,
// `<archive>/data/<key>` holds the raw bytes of each storage, and
// `<archive>/version` (plus, in newer releases, `<archive>/byteorder`)
// describe the format. In data.pkl, each storage appears as a persistent id
// ('storage', torch.FloatStorage, key, location, numel) and each tensor as a
// call torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...).
//
// # Safety rules
//
// Python's pickle module runs code while loading: GLOBAL imports any module,
// REDUCE calls any callable, BUILD calls __setstate__. This package has its
// own small unpickler that never imports, calls or constructs anything:
//
//   - Allow-listed globals are interpreted by Go code with no side effects:
//     collections.OrderedDict, torch._utils._rebuild_tensor,
//     torch._utils._rebuild_tensor_v2, torch._utils._rebuild_parameter,
//     torch._utils._rebuild_parameter_with_state, the torch.*Storage classes
//     and the torch dtype objects (torch.float16, ...).
//   - Every other global becomes an opaque record (its module and name), and a
//     REDUCE, NEWOBJ or BUILD on an opaque record becomes another opaque
//     record that keeps its arguments. Constructing such a value only stores
//     the pickled data; nothing is executed, so it is safe to keep opaque
//     values for entries that are not tensors, like the "callbacks" or
//     "optimizer_states" of a Lightning .ckpt.
//   - An opaque value on the path to a tensor — as an argument of a tensor
//     rebuild, as the top-level object, or as a value in the state dict — is
//     an error naming it: "module.name is not allow-listed".
//   - Globals from modules that exist to run code or touch the system (os,
//     posix, subprocess, builtins, sys, shutil, socket, runpy, importlib,
//     pickle, ...) are refused wherever they appear, because no legitimate
//     checkpoint needs them and Python's pickle would run them.
//
// # Result
//
// The tensors are those of the state dict: the top-level dict's "state_dict"
// entry when it is a dict (Lightning/.ckpt layout), else the top-level dict
// itself. Nested dicts are flattened with "." (so {"a": {"b": t}} gives
// "a.b"); non-tensor leaves (numbers, strings, None, lists) are skipped.
// Other top-level entries of a .ckpt (global_step, epoch, ...) are available
// as plain Go values through File.Extra.
//
// Tensor data is read lazily from the open file: storages of stored
// (uncompressed) zip entries, which is what torch.save writes, are read in
// place with ReadAt; compressed entries are streamed. Views are materialised:
// File.Read always returns contiguous row-major little-endian bytes, whatever
// the stored strides, offset and byte order.
package torchpickle
