package dicom

import (
	"crypto/rand"
	"crypto/sha1"
	"fmt"
	"math/big"
	"strings"
)

// uidRoot is the root of UUID-derived UIDs (PS3.5 B.2).
const uidRoot = "2.25."

// namespace is the UUID (f0f4420f-e072-4565-ad65-a8ea43f58372, drawn once
// at random) under which NameUID derives its name-based UUIDs.
var namespace = [16]byte{0xf0, 0xf4, 0x42, 0x0f, 0xe0, 0x72, 0x45, 0x65, 0xad, 0x65, 0xa8, 0xea, 0x43, 0xf5, 0x83, 0x72}

// uuidUID returns the UID 2.25.<u as an unsigned 128-bit decimal integer>.
func uuidUID(u [16]byte) string {
	return uidRoot + new(big.Int).SetBytes(u[:]).String()
}

// NewUID returns a fresh UID 2.25.<n>, n a random (version 4) UUID read as
// a decimal integer, as PS3.5 B.2 describes. It fails only when the
// system's random source does.
func NewUID() (string, error) {
	var u [16]byte
	if _, err := rand.Read(u[:]); err != nil {
		return "", fmt.Errorf("dicom: drawing a UUID: %v", err)
	}
	u[6] = u[6]&0x0f | 0x40 // version 4
	u[8] = u[8]&0x3f | 0x80 // RFC 4122 variant
	return uuidUID(u), nil
}

// NameUID returns the UID 2.25.<n>, n the name-based (version 5, SHA-1)
// UUID of name in roentgo's UID namespace: the same name always gives the
// same UID, and distinct names give distinct UIDs (as far as SHA-1 does).
// Programs derive an image's UIDs from what identifies it (a job and an
// image key) so that a regenerated image and every shard of a job agree.
func NameUID(name string) string {
	h := sha1.New()
	h.Write(namespace[:])
	h.Write([]byte(name))
	var u [16]byte
	copy(u[:], h.Sum(nil))
	u[6] = u[6]&0x0f | 0x50 // version 5
	u[8] = u[8]&0x3f | 0x80
	return uuidUID(u)
}

// ImplementationClassUID identifies roentgo's writer in the File Meta
// Information (0002,0012).
var ImplementationClassUID = NameUID("roentgo dicom writer implementation class")

// ImplementationVersionName is written as (0002,0013).
const ImplementationVersionName = "ROENTGO_1"

// CheckUID reports whether s is a valid UID (PS3.5 9.1): at most 64
// characters, components of digits separated by single dots, no component
// empty or with a leading zero (except "0" itself).
func CheckUID(s string) error {
	if s == "" || len(s) > 64 {
		return fmt.Errorf("dicom: UID %q has %d characters; expected 1 to 64", s, len(s))
	}
	for _, c := range strings.Split(s, ".") {
		if c == "" {
			return fmt.Errorf("dicom: UID %q has an empty component", s)
		}
		for i := 0; i < len(c); i++ {
			if c[i] < '0' || c[i] > '9' {
				return fmt.Errorf("dicom: UID %q has the character %q; expected digits and dots", s, c[i])
			}
		}
		if len(c) > 1 && c[0] == '0' {
			return fmt.Errorf("dicom: UID %q has a component with a leading zero (%s)", s, c)
		}
	}
	return nil
}
