package safetensors

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"

	"github.com/roentgo/roentgo/internal/atomicfile"
)

// Write writes tensors and metadata in the safetensors format. The tensors are
// laid out by decreasing dtype size and then by name (as the reference writer
// does), so every tensor is aligned to its element size; the header is padded
// with spaces to a multiple of 8 bytes. Metadata may be nil (no
// "__metadata__" entry). It returns an error, before writing anything, for a
// duplicate or reserved name, an unknown dtype, a negative dimension, or Data
// whose length does not match the shape.
func Write(w io.Writer, tensors []TensorInfo, metadata map[string]string) error {
	header, order, err := buildHeader(tensors, metadata)
	if err != nil {
		return err
	}
	var lenBuf [8]byte
	binary.LittleEndian.PutUint64(lenBuf[:], uint64(len(header)))
	if _, err := w.Write(lenBuf[:]); err != nil {
		return err
	}
	if _, err := w.Write(header); err != nil {
		return err
	}
	for _, i := range order {
		if _, err := w.Write(tensors[i].Data); err != nil {
			return err
		}
	}
	return nil
}

// buildHeader validates the tensors and returns the padded JSON header and
// the order in which their data follows it.
func buildHeader(tensors []TensorInfo, metadata map[string]string) ([]byte, []int, error) {
	seen := make(map[string]bool, len(tensors))
	for _, t := range tensors {
		if t.Name == metadataKey {
			return nil, nil, fmt.Errorf("safetensors: a tensor cannot be called %q (reserved for metadata)", metadataKey)
		}
		if seen[t.Name] {
			return nil, nil, fmt.Errorf("safetensors: tensor %q appears twice (names must be unique)", t.Name)
		}
		seen[t.Name] = true
		if !t.DType.Valid() {
			return nil, nil, fmt.Errorf("safetensors: tensor %q has unknown dtype %q (expected one of %v)", t.Name, string(t.DType), dtypeOrder)
		}
		for _, d := range t.Shape {
			if d < 0 {
				return nil, nil, fmt.Errorf("safetensors: tensor %q has negative dimension in shape %v", t.Name, t.Shape)
			}
		}
		nb, ok := numBytes(t.Shape, t.DType.Size())
		if !ok {
			return nil, nil, fmt.Errorf("safetensors: tensor %q: shape %v overflows the byte count", t.Name, t.Shape)
		}
		if nb != len(t.Data) {
			return nil, nil, fmt.Errorf("safetensors: tensor %q: shape %v of %s needs %d bytes of data, got %d", t.Name, t.Shape, t.DType, nb, len(t.Data))
		}
	}
	order := make([]int, len(tensors))
	for i := range order {
		order[i] = i
	}
	sort.Slice(order, func(a, b int) bool {
		ta, tb := tensors[order[a]], tensors[order[b]]
		ra, rb := dtypeInfo[ta.DType][1], dtypeInfo[tb.DType][1]
		if ra != rb {
			return ra > rb
		}
		return ta.Name < tb.Name
	})

	var h bytes.Buffer
	h.WriteByte('{')
	first := true
	sep := func() {
		if !first {
			h.WriteByte(',')
		}
		first = false
	}
	if metadata != nil {
		sep()
		writeString(&h, metadataKey)
		h.WriteString(":{")
		keys := make([]string, 0, len(metadata))
		for k := range metadata {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for i, k := range keys {
			if i > 0 {
				h.WriteByte(',')
			}
			writeString(&h, k)
			h.WriteByte(':')
			writeString(&h, metadata[k])
		}
		h.WriteByte('}')
	}
	offset := 0
	for _, i := range order {
		t := tensors[i]
		sep()
		writeString(&h, t.Name)
		h.WriteString(`:{"dtype":`)
		writeString(&h, string(t.DType))
		h.WriteString(`,"shape":[`)
		for j, d := range t.Shape {
			if j > 0 {
				h.WriteByte(',')
			}
			h.WriteString(strconv.Itoa(d))
		}
		h.WriteString(`],"data_offsets":[`)
		h.WriteString(strconv.Itoa(offset))
		h.WriteByte(',')
		offset += len(t.Data)
		h.WriteString(strconv.Itoa(offset))
		h.WriteString("]}")
	}
	h.WriteByte('}')
	for h.Len()%8 != 0 {
		h.WriteByte(' ')
	}
	if h.Len() > MaxHeaderSize {
		return nil, nil, fmt.Errorf("safetensors: header of %d bytes exceeds the %d-byte limit readers accept", h.Len(), MaxHeaderSize)
	}
	return h.Bytes(), order, nil
}

// writeString writes s as a JSON string (no HTML escaping).
func writeString(b *bytes.Buffer, s string) {
	enc := json.NewEncoder(b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)       // cannot fail for a string
	b.Truncate(b.Len() - 1) // drop the newline Encode appends
}

// WriteFile writes the tensors to path atomically: it writes a temporary file
// in the same directory, syncs it and renames it over path, so path is never
// left half-written; on any error the temporary file is removed and path is
// untouched. Only a regular file is replaced: a symbolic link is written
// through to its target, and a folder, device, FIFO or socket at path is
// refused.
func WriteFile(path string, tensors []TensorInfo, metadata map[string]string) error {
	// Validate before touching the file system.
	if _, _, err := buildHeader(tensors, metadata); err != nil {
		return err
	}
	err := atomicfile.Write(path, func(w io.Writer) error {
		bw := bufio.NewWriterSize(w, 1<<20)
		if err := Write(bw, tensors, metadata); err != nil {
			return err
		}
		return bw.Flush()
	})
	if err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	return nil
}
