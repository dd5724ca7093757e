package pipeline

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"image"
	"image/jpeg"
	"image/png"
	"os"
	"strings"
	"unicode/utf8"

	"github.com/roentgo/roentgo/internal/atomicfile"
	"github.com/roentgo/roentgo/internal/errctx"
)

// TextChunk is one key/value pair of PNG text metadata.
type TextChunk struct {
	Key, Value string
}

var pngSignature = []byte("\x89PNG\r\n\x1a\n")

// EncodePNG encodes img as a PNG (8-bit, grayscale for *image.Gray, RGB for
// opaque colour images) with the text chunks inserted before IEND: a tEXt
// chunk when the value is Latin-1 (every rune below U+0100; written as
// Latin-1 bytes), an uncompressed iTXt chunk (UTF-8) otherwise. Keys must be
// 1 to 79 Latin-1 characters without NUL.
func EncodePNG(img image.Image, text []TextChunk) ([]byte, error) {
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return nil, errctx.Wrap("pipeline: encoding PNG", err)
	}
	data := buf.Bytes()
	// The IEND chunk is the last 12 bytes: length 0, "IEND", CRC.
	if len(data) < len(pngSignature)+12 || string(data[len(data)-8:len(data)-4]) != "IEND" {
		return nil, errors.New("pipeline: encoding PNG: no IEND chunk at the end")
	}
	var chunks bytes.Buffer
	for _, t := range text {
		if len(t.Key) == 0 || len(t.Key) > 79 || bytes.IndexByte([]byte(t.Key), 0) >= 0 || !isASCII(t.Key) {
			return nil, fmt.Errorf("pipeline: PNG text key %q: expected 1 to 79 printable ASCII characters", t.Key)
		}
		if lat, ok := latin1(t.Value); ok {
			writeChunk(&chunks, "tEXt", append(append([]byte(t.Key), 0), lat...))
			continue
		}
		if !utf8.ValidString(t.Value) {
			return nil, fmt.Errorf("pipeline: PNG text %q: the value is not valid UTF-8", t.Key)
		}
		// keyword, NUL, compression flag 0, method 0, empty language tag NUL,
		// empty translated keyword NUL, text.
		body := append([]byte(t.Key), 0, 0, 0, 0, 0)
		writeChunk(&chunks, "iTXt", append(body, t.Value...))
	}
	out := make([]byte, 0, len(data)+chunks.Len())
	out = append(out, data[:len(data)-12]...)
	out = append(out, chunks.Bytes()...)
	out = append(out, data[len(data)-12:]...)
	return out, nil
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// latin1 returns s in ISO-8859-1 when every rune fits.
func latin1(s string) ([]byte, bool) {
	out := make([]byte, 0, len(s))
	for _, r := range s {
		if r >= 0x100 || r == utf8.RuneError || r == 0 {
			return nil, false
		}
		out = append(out, byte(r))
	}
	return out, true
}

func writeChunk(w *bytes.Buffer, typ string, data []byte) {
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(data)))
	w.Write(n[:])
	crc := crc32.NewIEEE()
	crc.Write([]byte(typ))
	crc.Write(data)
	w.WriteString(typ)
	w.Write(data)
	binary.BigEndian.PutUint32(n[:], crc.Sum32())
	w.Write(n[:])
}

// ReadPNGText returns the tEXt and iTXt (uncompressed) chunks of a PNG file's
// bytes in file order, checking the signature and every chunk's CRC.
// Compressed iTXt and zTXt chunks are skipped.
func ReadPNGText(data []byte) ([]TextChunk, error) {
	if !bytes.HasPrefix(data, pngSignature) {
		return nil, errors.New("pipeline: not a PNG file (bad signature)")
	}
	var out []TextChunk
	r := data[len(pngSignature):]
	for len(r) > 0 {
		if len(r) < 12 {
			return nil, errors.New("pipeline: PNG: truncated chunk")
		}
		n := binary.BigEndian.Uint32(r)
		if uint64(n)+12 > uint64(len(r)) {
			return nil, errors.New("pipeline: PNG: chunk longer than the file")
		}
		typ, body := string(r[4:8]), r[8:8+n]
		if crc32.ChecksumIEEE(r[4:8+n]) != binary.BigEndian.Uint32(r[8+n:]) {
			return nil, fmt.Errorf("pipeline: PNG: bad CRC in a %s chunk", typ)
		}
		r = r[12+n:]
		switch typ {
		case "tEXt":
			i := bytes.IndexByte(body, 0)
			if i < 0 {
				return nil, errors.New("pipeline: PNG: tEXt chunk without a NUL separator")
			}
			v := make([]rune, 0, len(body)-i-1)
			for _, b := range body[i+1:] {
				v = append(v, rune(b))
			}
			out = append(out, TextChunk{string(body[:i]), string(v)})
		case "iTXt":
			parts := bytes.SplitN(body, []byte{0}, 2)
			if len(parts) != 2 || len(parts[1]) < 2 {
				return nil, errors.New("pipeline: PNG: malformed iTXt chunk")
			}
			key, rest := string(parts[0]), parts[1]
			if rest[0] != 0 { // compressed
				continue
			}
			rest = rest[2:]
			f := bytes.SplitN(rest, []byte{0}, 3) // language, translated keyword, text
			if len(f) != 3 {
				return nil, errors.New("pipeline: PNG: malformed iTXt chunk")
			}
			out = append(out, TextChunk{key, string(f[2])})
		case "IEND":
			return out, nil
		}
	}
	return nil, errors.New("pipeline: PNG: no IEND chunk")
}

// WriteFileAtomic writes data to path through a temporary file in the same
// folder and a rename: path either keeps its old content (or does not
// exist) or holds all of data, never a part. Only a regular file is ever
// replaced: a symbolic link is written through to its target, and a folder,
// device, FIFO or socket at path is refused (package internal/atomicfile).
func WriteFileAtomic(path string, data []byte) error {
	return atomicfile.WriteFile(path, data)
}

// CheckWritable reports whether WriteFileAtomic(path, ...) would be allowed
// (a new name, a regular file, or a link to one) and whether a file can be
// created in the folder (by creating and removing a temporary file there),
// so that a program can refuse an unusable output before spending minutes
// on generation.
func CheckWritable(path string) error {
	return atomicfile.CheckWritable(path)
}

// cause strips the path from an *os.PathError (the caller names the path).
func cause(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// jpegQuality is the quality EncodeJPEG writes at.
const jpegQuality = 95

// EncodeJPEG encodes img as a baseline JPEG of quality 95 (grayscale for
// *image.Gray) with the text's "parameters" entry (or, without one, every
// entry as "key: value" lines) in a comment (COM) segment right after the
// start of the image, where exiftool and image viewers show it. A comment
// longer than a segment holds (65533 bytes) is cut.
func EncodeJPEG(img image.Image, text []TextChunk) ([]byte, error) {
	var body bytes.Buffer
	if err := jpeg.Encode(&body, img, &jpeg.Options{Quality: jpegQuality}); err != nil {
		return nil, errctx.Wrap("pipeline: encoding JPEG", err)
	}
	comment := ""
	for _, c := range text {
		if c.Key == "parameters" {
			comment = c.Value
		}
	}
	if comment == "" {
		var b strings.Builder
		for _, c := range text {
			fmt.Fprintf(&b, "%s: %s\n", c.Key, c.Value)
		}
		comment = b.String()
	}
	data := body.Bytes()
	if comment == "" || len(data) < 2 {
		return data, nil
	}
	if len(comment) > 65533 {
		comment = comment[:65533]
	}
	var out bytes.Buffer
	out.Write(data[:2]) // SOI
	out.Write([]byte{0xFF, 0xFE, byte((len(comment) + 2) >> 8), byte(len(comment) + 2)})
	out.WriteString(comment)
	out.Write(data[2:])
	return out.Bytes(), nil
}

// ReadJPEGComment returns the text of a JPEG's first comment (COM) segment,
// or "" when it has none before the image data.
func ReadJPEGComment(data []byte) (string, error) {
	if len(data) < 2 || data[0] != 0xFF || data[1] != 0xD8 {
		return "", errors.New("pipeline: not a JPEG (no start-of-image marker)")
	}
	for i := 2; i+4 <= len(data); {
		if data[i] != 0xFF {
			return "", fmt.Errorf("pipeline: JPEG: expected a marker at byte %d", i)
		}
		marker := data[i+1]
		if marker == 0xDA || marker == 0xD9 { // start of scan, end of image
			return "", nil
		}
		n := int(data[i+2])<<8 | int(data[i+3])
		if n < 2 || i+2+n > len(data) {
			return "", fmt.Errorf("pipeline: JPEG: segment at byte %d runs past the end", i)
		}
		if marker == 0xFE {
			return string(data[i+4 : i+2+n]), nil
		}
		i += 2 + n
	}
	return "", nil
}
